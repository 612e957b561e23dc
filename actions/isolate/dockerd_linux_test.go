//go:build linux

package isolate

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
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

	"github.com/picket-agent/picket/internal/integration"
)

// testAPI sends the test's own setup requests (image import, networks,
// containers) to the daemon.
type testAPI struct {
	t    *testing.T
	http *http.Client
}

func (a *testAPI) do(method, path, ctype string, body []byte) (int, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, "http://docker"+path, bytes.NewReader(body))
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

func (a *testAPI) json(method, path string, in any, want int) []byte {
	a.t.Helper()
	b, _ := json.Marshal(in)
	code, out := a.do(method, path, "application/json", b)
	if code != want {
		a.t.Fatalf("%s %s: %d %s", method, path, code, out)
	}
	return out
}

// busyboxImage is a tar of a one-binary root filesystem (images cannot be
// pulled here).
func busyboxImage(t *testing.T) []byte {
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
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))})
	tw.Write(bin)
	for _, l := range []string{"sh", "sleep"} {
		tw.WriteHeader(&tar.Header{Name: "bin/" + l, Typeflag: tar.TypeSymlink, Linkname: "busybox"})
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// startDockerd runs a private dockerd (own socket, data and exec roots,
// vfs storage, no default bridge, no iptables) inside a network namespace
// of its own, so the bridges of the test's networks never touch the host.
// It returns the socket, or skips when dockerd cannot start here.
func startDockerd(t *testing.T) string {
	integration.Root(t)
	dockerd := integration.Binary(t, "dockerd")
	ip := integration.Binary(t, "ip")
	nsenter := integration.Binary(t, "nsenter")
	ns := fmt.Sprintf("picket-iso-%d", os.Getpid())
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		integration.Skip(t, fmt.Sprintf("ip netns add: %v: %s", err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ip, "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	// Short: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "picket-iso")
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
	c := NewClient(sock, 2*time.Second)
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := c.APIVersion(context.Background()); err == nil {
			return sock
		} else if time.Now().After(deadline) {
			dumpLog()
			integration.Skip(t, "dockerd did not answer: "+err.Error())
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

// unmountUnder detaches whatever is still mounted below dir.
func unmountUnder(t *testing.T, dir string) {
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

// networks returns a container's networks with their aliases and static
// IPv4 addresses, as the daemon reports them.
func networks(t *testing.T, c *Client, id string) map[string]string {
	t.Helper()
	d, err := c.inspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for name, e := range d.NetworkSettings.Networks {
		var aliases []string
		for _, a := range e.Aliases {
			if !strings.HasPrefix(d.ID, a) { // older APIs add the short id
				aliases = append(aliases, a)
			}
		}
		slices.Sort(aliases)
		v := strings.Join(aliases, ",")
		if e.IPAMConfig != nil && e.IPAMConfig.IPv4Address != "" {
			v += " static " + e.IPAMConfig.IPv4Address + " is " + e.IPAddress
		}
		out[name] = v
	}
	return out
}

func TestRealDockerd(t *testing.T) {
	image := busyboxImage(t)
	sock := startDockerd(t)
	api := &testAPI{t: t, http: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}}
	if code, out := api.do("POST", "/images/create?fromSrc=-&repo=picket-iso&tag=1", "application/x-tar", image); code != http.StatusOK {
		t.Fatalf("import: %d %s", code, out)
	}
	var containers, nets []string
	t.Cleanup(func() {
		for _, id := range containers {
			api.do("DELETE", "/containers/"+id+"?force=1", "", nil)
		}
		for _, n := range nets {
			api.do("DELETE", "/networks/"+n, "", nil)
		}
	})
	for i, n := range []string{"picket-front", "picket-back"} {
		api.json("POST", "/networks/create", map[string]any{"Name": n, "Driver": "bridge",
			"IPAM": map[string]any{"Config": []map[string]string{{"Subnet": fmt.Sprintf("198.18.%d.0/24", 70+i)}}}}, http.StatusCreated)
		nets = append(nets, n)
	}
	create := func(name string, endpoints map[string]any) string {
		out := api.json("POST", "/containers/create?name="+name, map[string]any{
			"Image": "picket-iso:1", "Cmd": []string{"sleep", "300"},
			"HostConfig":       map[string]any{"NetworkMode": "picket-front"},
			"NetworkingConfig": map[string]any{"EndpointsConfig": endpoints},
		}, http.StatusCreated)
		var r struct{ Id string }
		json.Unmarshal(out, &r)
		containers = append(containers, r.Id)
		api.json("POST", "/containers/"+r.Id+"/start", nil, http.StatusNoContent)
		return r.Id
	}
	web := create("picket-web", map[string]any{"picket-front": map[string]any{
		"Aliases": []string{"web", "www"}, "IPAMConfig": map[string]string{"IPv4Address": "198.18.70.10"}}})
	api.json("POST", "/networks/picket-back/connect", map[string]any{"Container": web,
		"EndpointConfig": map[string]any{"Aliases": []string{"api"}}}, http.StatusOK)
	db := create("picket-db", map[string]any{"picket-front": map[string]any{"Aliases": []string{"db"}}})

	c := NewClient(sock, 10*time.Second)
	defer c.Close()
	ctx := context.Background()
	before := networks(t, c, web)
	if want := map[string]string{"picket-front": "web,www static 198.18.70.10 is 198.18.70.10", "picket-back": "api"}; !mapsEqual(before, want) {
		t.Fatalf("setup: networks %v, want %v", before, want)
	}
	dbBefore := networks(t, c, db)

	t.Run("disconnect and restore", func(t *testing.T) {
		s, err := c.Isolate(ctx, "picket-web", Disconnect, []string{"picket-db"})
		if err != nil {
			t.Fatal(err)
		}
		if got := networks(t, c, web); len(got) != 0 {
			t.Errorf("after isolate: still on %v", got)
		}
		if got := networks(t, c, db); !mapsEqual(got, dbBefore) {
			t.Errorf("another container changed: %v", got)
		}
		// The snapshot goes through the journal as JSON.
		b, _ := json.Marshal(s)
		var back Snapshot
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.ContainerID != web || back.Name != "picket-web" || len(back.Endpoints) != 2 {
			t.Errorf("snapshot = %s", b)
		}
		for range 2 { // idempotent
			if err := c.Restore(ctx, back); err != nil {
				t.Fatal(err)
			}
			if got := networks(t, c, web); !mapsEqual(got, before) {
				t.Errorf("after restore: %v, want %v", got, before)
			}
		}
		// Isolating an isolated container, then restoring, is harmless.
		s1, err := c.Isolate(ctx, web, Disconnect, nil)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := c.Isolate(ctx, web, Disconnect, nil)
		if err != nil || len(s2.Endpoints) != 0 {
			t.Fatalf("second isolate: %+v, %v", s2, err)
		}
		if err := errors.Join(c.Restore(ctx, s2), c.Restore(ctx, s1)); err != nil {
			t.Fatal(err)
		}
		if got := networks(t, c, web); !mapsEqual(got, before) {
			t.Errorf("after nested restore: %v, want %v", got, before)
		}
	})

	t.Run("pause and restore", func(t *testing.T) {
		s, err := c.Isolate(ctx, web[:12], Pause, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := c.inspect(ctx, web); !d.State.Paused {
			t.Errorf("not paused: %+v", d.State)
		}
		// Already paused (by someone else, or a retry): Restore of
		// that snapshot must not unpause.
		s2, err := c.Isolate(ctx, web, Pause, nil)
		if err != nil || !s2.WasPaused {
			t.Fatalf("pause of a paused container: %+v, %v", s2, err)
		}
		if err := c.Restore(ctx, s2); err != nil {
			t.Fatal(err)
		}
		if d, _ := c.inspect(ctx, web); !d.State.Paused {
			t.Error("restore of a no-op pause unpaused")
		}
		for range 2 {
			if err := c.Restore(ctx, s); err != nil {
				t.Fatal(err)
			}
			if d, _ := c.inspect(ctx, web); d.State.Paused || !d.State.Running {
				t.Errorf("after restore: %+v", d.State)
			}
		}
	})

	t.Run("refusals", func(t *testing.T) {
		tests := []struct {
			id      string
			how     How
			protect []string
			want    error
		}{
			{"picket-db", Disconnect, []string{"picket-db"}, ErrProtected},
			{db, Pause, []string{"/picket-db"}, ErrProtected},
			{"picket-db", Pause, []string{db[:12]}, ErrProtected},
			{"picket-nope", Pause, nil, ErrNotFound},
			{"picket-db", "stop", nil, ErrInvalid},
			{"../x", Pause, nil, ErrInvalid},
		}
		for _, tc := range tests {
			if _, err := c.Isolate(ctx, tc.id, tc.how, tc.protect); !errors.Is(err, tc.want) {
				t.Errorf("Isolate(%s, %s, %v) = %v, want %v", tc.id, tc.how, tc.protect, err, tc.want)
			}
		}
		if d, _ := c.inspect(ctx, db); d.State.Paused || !mapsEqual(networks(t, c, db), dbBefore) {
			t.Error("a refused isolation changed the container")
		}
	})
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
