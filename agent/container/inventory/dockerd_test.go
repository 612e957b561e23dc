//go:build linux

package inventory

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/container"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/internal/integration"
)

// dockerAPI sends the test's own write requests (image import, create,
// start, remove) to the real daemon; the code under test only reads.
type dockerAPI struct {
	t    *testing.T
	http *http.Client
}

func newDockerAPI(t *testing.T, socket string) *dockerAPI {
	return &dockerAPI{t: t, http: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}}}
}

// do returns the status and body; the API version is left out (latest),
// which is fine for a test that runs against whatever daemon is installed.
func (a *dockerAPI) do(method, path, ctype string, body io.Reader) (int, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, "http://docker"+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// create makes a container from a create request and returns its id.
func (a *dockerAPI) create(name string, cfg map[string]any) string {
	a.t.Helper()
	b, _ := json.Marshal(cfg)
	code, out := a.do("POST", "/containers/create?name="+name, "application/json", bytes.NewReader(b))
	var r struct{ Id string }
	if code != http.StatusCreated || json.Unmarshal(out, &r) != nil || r.Id == "" {
		a.t.Fatalf("create %s: %d %s", name, code, out)
	}
	return r.Id
}

// unmountUnder detaches what dockerd left mounted below dir (it keeps the
// host network's namespace bound under its exec root after it exits), so
// the directory can be removed.
func unmountUnder(t *testing.T, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Log(err)
		return
	}
	var points []string
	for line := range strings.SplitSeq(string(b), "\n") {
		// Field 5 is the mount point, octal-escaped.
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		p := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(f[4])
		if strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	// Deepest first.
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", p, err)
		}
	}
}

// rootfs is a tar of a minimal image: a static busybox and the applets
// the test runs.
func rootfs(t *testing.T, busybox string) []byte {
	f, err := elf.Open(busybox)
	if err != nil {
		integration.Skip(t, "busybox: "+err.Error())
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			integration.Skip(t, busybox+" is dynamically linked; install busybox-static")
		}
	}
	f.Close()
	bin, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}))
	must(tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))}))
	_, err = tw.Write(bin)
	must(err)
	for _, l := range []string{"sh", "sleep"} {
		must(tw.WriteHeader(&tar.Header{Name: "bin/" + l, Typeflag: tar.TypeSymlink, Linkname: "busybox"}))
	}
	must(tw.Close())
	return buf.Bytes()
}

// TestRealDockerd runs containers on a private dockerd (its own socket,
// data and exec roots, no bridge, no iptables) and checks what the
// inventory and the detector make of them.
func TestRealDockerd(t *testing.T) {
	integration.Root(t)
	dockerd := integration.Binary(t, "dockerd")
	image := rootfs(t, integration.Binary(t, "busybox"))

	// A short directory: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "picket-dockerd")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "d.sock")
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dockerd, "--host", "unix://"+sock, "--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"), "--pidfile", filepath.Join(dir, "d.pid"),
		"--bridge", "none", "--iptables=false", "--ip6tables=false",
		// vfs works on any filesystem the temporary directory is on; the
		// image is one file.
		"--storage-driver", "vfs")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("dockerd log:\n%s", b)
			}
		}
		unmountUnder(t, dir)
		_ = os.RemoveAll(dir)
	})

	c := container.NewClient(sock, 2*time.Second)
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := c.Version(context.Background()); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("dockerd did not answer: %v", err)
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("dockerd exited: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}

	api := newDockerAPI(t, sock)
	if code, out := api.do("POST", "/images/create?fromSrc=-&repo=picket-test&tag=1", "application/x-tar", bytes.NewReader(image)); code != http.StatusOK {
		t.Fatalf("import: %d %s", code, out)
	}
	var ids []string
	t.Cleanup(func() {
		for _, id := range ids {
			api.do("DELETE", "/containers/"+id+"?force=1", "", nil)
		}
	})

	s := New(Options{Socket: sock, Timeout: 5 * time.Second})
	ctx := context.Background()
	if evs, err := s.Poll(ctx, t0); err != nil || len(evs) != 0 {
		t.Fatalf("baseline: %q, %v", brief(evs), err)
	}
	det := NewDetector(DefaultDetectorOptions())

	// Host namespaces, an added capability and /etc from the host.
	toolsID := api.create("picket-tools", map[string]any{"Image": "picket-test:1", "Cmd": []string{"sleep", "30"},
		"HostConfig": map[string]any{"Binds": []string{"/etc:/host-etc:ro"}, "NetworkMode": "host", "PidMode": "host", "CapAdd": []string{"SYS_PTRACE"}}})
	ids = append(ids, toolsID)
	if code, out := api.do("POST", "/containers/"+toolsID+"/start", "", nil); code != http.StatusNoContent {
		t.Fatalf("start: %d %s", code, out)
	}
	evs, err := s.Poll(ctx, t0.Add(time.Second))
	if err != nil || brief(evs) != "added picket-tools" {
		t.Fatalf("after start: %q, %v", brief(evs), err)
	}
	a := evs[0].Change.Attrs
	if a[AttrID] != toolsID || a[AttrImage] != "picket-test:1" || a[AttrPrivileged] != "false" || a[AttrCapAdd] != "SYS_PTRACE" ||
		a[AttrNetworkMode] != "host" || a[AttrPidMode] != "host" || a[AttrMounts] != "/etc:/host-etc:ro" {
		t.Errorf("attrs = %v", a)
	}
	var got []signal.Signal
	det.Observe(&evs[0], func(s signal.Signal) { got = append(got, s) })
	const l = `container "picket-tools" (picket-test:1) `
	want := `container.host_mount 60: ` + l + `mounts host /etc read-only at /host-etc` + "\n" +
		`container.host_namespace 30: ` + l + `shares the host's network and PID namespaces` + "\n" +
		`container.dangerous_caps 40: ` + l + `adds capabilities SYS_PTRACE` + "\n"
	if r := render(got); r != want {
		t.Errorf("signals:\n%s\nwant\n%s", r, want)
	}

	// Privileged. Starting it needs every capability in the daemon's
	// bounding set, which a sandbox may not grant; the flag is checked
	// on the created container either way.
	privID := api.create("picket-priv", map[string]any{"Image": "picket-test:1", "Cmd": []string{"sleep", "30"},
		"HostConfig": map[string]any{"Privileged": true, "Binds": []string{"/etc:/host-etc:ro"}, "NetworkMode": "none"}})
	ids = append(ids, privID)
	d, err := c.Details(ctx, privID)
	if err != nil || !d.Privileged || d.NetworkMode != "none" || d.Running {
		t.Fatalf("privileged details = %+v, %v", d, err)
	}
	code, out := api.do("POST", "/containers/"+privID+"/start", "", nil)
	evs, err = s.Poll(ctx, t0.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if code == http.StatusNoContent {
		if brief(evs) != "added picket-priv" || evs[0].Change.Attrs[AttrPrivileged] != "true" {
			t.Fatalf("privileged: %q", brief(evs))
		}
		got = nil
		det.Observe(&evs[0], func(s signal.Signal) { got = append(got, s) })
		if r := render(got); !strings.HasPrefix(r, `container.privileged 50: container "picket-priv" (picket-test:1) runs privileged`) {
			t.Errorf("privileged signals:\n%s", r)
		}
	} else {
		t.Logf("privileged container cannot start here (%d %s); checked its flag only", code, strings.TrimSpace(string(out)))
		if len(evs) != 0 {
			t.Errorf("a container that did not start was reported: %q", brief(evs))
		}
	}

	// Removed.
	if code, out := api.do("DELETE", "/containers/"+toolsID+"?force=1", "", nil); code != http.StatusNoContent {
		t.Fatalf("remove: %d %s", code, out)
	}
	evs, err = s.Poll(ctx, t0.Add(3*time.Second))
	if err != nil || !strings.Contains(brief(evs), "removed picket-tools") {
		t.Errorf("after remove: %q, %v", brief(evs), err)
	}
	if degraded, detail := s.Live(); degraded || !strings.Contains(detail, fmt.Sprintf("(API %s)", s.Stats().APIVersion)) {
		t.Errorf("Live = %v %q", degraded, detail)
	}
}
