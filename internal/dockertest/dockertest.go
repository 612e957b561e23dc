//go:build linux

// Package dockertest runs a private Docker daemon for tests: its own
// socket, data and exec roots under a temporary directory, vfs storage, no
// default bridge and no iptables, inside a network namespace of its own so
// the bridges of test networks never touch the host. Images cannot be
// pulled here, so ImportBusybox imports a one-binary image made from the
// static busybox. The container inventory, isolation and emergency-stop
// tests use it; they skip (or fail in CI) when dockerd cannot start.
package dockertest

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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/integration"
)

var seq atomic.Int32

// Daemon is a running private dockerd.
type Daemon struct {
	Socket string
	t      testing.TB
	http   *http.Client
}

// Start runs dockerd and waits until its API answers.
func Start(t testing.TB) *Daemon {
	t.Helper()
	integration.Root(t)
	dockerd := integration.Binary(t, "dockerd")
	ip := integration.Binary(t, "ip")
	nsenter := integration.Binary(t, "nsenter")
	ns := fmt.Sprintf("picket-docker-%d-%d", os.Getpid(), seq.Add(1))
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		integration.Skip(t, fmt.Sprintf("ip netns add: %v: %s", err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ip, "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	// Short: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "picket-docker")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "d.sock")
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	// nsenter rather than `ip netns exec`: the latter mounts a fresh
	// /sys, which hides the cgroup mounts dockerd needs.
	cmd := exec.Command(nsenter, "--net=/run/netns/"+ns, dockerd, "--host", "unix://"+sock,
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "d.pid"), "--bridge", "none", "--iptables=false",
		"--ip6tables=false", "--storage-driver", "vfs")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	dumpLog := func() {
		if b, err := os.ReadFile(logf.Name()); err == nil {
			t.Logf("dockerd log:\n%s", b)
		}
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			dumpLog()
		}
		unmountUnder(t, dir)
		_ = os.RemoveAll(dir)
	})
	d := &Daemon{Socket: sock, t: t, http: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _, err := d.try("GET", "/version", "", nil); err == nil && code == http.StatusOK {
			return d
		} else if time.Now().After(deadline) {
			dumpLog()
			integration.Skip(t, fmt.Sprintf("dockerd did not answer: %v (status %d)", err, code))
		}
		select {
		case err := <-exited:
			exited <- err
			dumpLog()
			integration.Skip(t, fmt.Sprintf("dockerd exited: %v", err))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *Daemon) try(method, path, ctype string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, "http://docker"+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, nil
}

// Do sends the test's own request (the code under test has its own
// client) and returns the status and body.
func (d *Daemon) Do(method, path, ctype string, body []byte) (int, []byte) {
	d.t.Helper()
	code, b, err := d.try(method, path, ctype, body)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	return code, b
}

// JSON sends in as JSON and fails the test unless the status is want.
func (d *Daemon) JSON(method, path string, in any, want int) []byte {
	d.t.Helper()
	var body []byte
	if in != nil {
		body, _ = json.Marshal(in)
	}
	code, out := d.Do(method, path, "application/json", body)
	if code != want {
		d.t.Fatalf("%s %s: %d %s", method, path, code, out)
	}
	return out
}

// Container creates a container from a create request and returns its
// id; it is removed at cleanup.
func (d *Daemon) Container(name string, cfg map[string]any) string {
	d.t.Helper()
	out := d.JSON("POST", "/containers/create?name="+name, cfg, http.StatusCreated)
	var r struct{ Id string }
	if err := json.Unmarshal(out, &r); err != nil || r.Id == "" {
		d.t.Fatalf("create %s: %s", name, out)
	}
	d.t.Cleanup(func() { d.try("DELETE", "/containers/"+r.Id+"?force=1", "", nil) })
	return r.Id
}

// Run creates and starts a container.
func (d *Daemon) Run(name string, cfg map[string]any) string {
	d.t.Helper()
	id := d.Container(name, cfg)
	d.JSON("POST", "/containers/"+id+"/start", nil, http.StatusNoContent)
	return id
}

// Network creates a bridge network with subnet; removed at cleanup.
func (d *Daemon) Network(name, subnet string) {
	d.t.Helper()
	d.JSON("POST", "/networks/create", map[string]any{"Name": name, "Driver": "bridge",
		"IPAM": map[string]any{"Config": []map[string]string{{"Subnet": subnet}}}}, http.StatusCreated)
	d.t.Cleanup(func() { d.try("DELETE", "/networks/"+name, "", nil) })
}

// ImportBusybox imports a one-binary image (static busybox with sh and
// sleep) as ref ("repo:tag").
func (d *Daemon) ImportBusybox(ref string) {
	d.t.Helper()
	repo, tag, _ := strings.Cut(ref, ":")
	if tag == "" {
		tag = "latest"
	}
	if code, out := d.Do("POST", "/images/create?fromSrc=-&repo="+repo+"&tag="+tag, "application/x-tar", BusyboxTar(d.t)); code != http.StatusOK {
		d.t.Fatalf("import: %d %s", code, out)
	}
}

// BusyboxTar is a tar of a root filesystem holding only a static busybox.
func BusyboxTar(t testing.TB) []byte {
	t.Helper()
	busybox := integration.Binary(t, "busybox")
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

// unmountUnder detaches whatever dockerd left mounted below dir (it keeps
// network namespaces bound under its exec root after it exits).
func unmountUnder(t testing.TB, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", p, err)
		}
	}
}
