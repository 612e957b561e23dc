package emergency

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRegistry(t *testing.T) {
	r := &Registry{Dir: filepath.Join(t.TempDir(), "emergency")}
	if err := r.AddUser("alice", ""); err != nil {
		t.Fatal(err)
	}
	if err := r.AddUser("bob", "20000"); err != nil {
		t.Fatal(err)
	}
	// A second disable keeps the original value.
	if err := r.AddUser("bob", "1"); err != nil {
		t.Fatal(err)
	}
	if err := r.AddUser("evil\tname", ""); err == nil {
		t.Fatal("control characters accepted")
	}
	b, _ := os.ReadFile(filepath.Join(r.Dir, "users"))
	if string(b) != "alice\t\nbob\t20000\n" {
		t.Fatalf("users file: %q", b)
	}
	if fi, _ := os.Stat(r.Dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v", fi.Mode())
	}
	r.RemoveUser("alice")
	u, _ := r.Users()
	if len(u) != 1 || u["bob"] != "20000" {
		t.Fatalf("after remove: %v", u)
	}
	if err := r.SetNologin(true, []byte("maintenance\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(r.Dir, "nologin.saved")); string(b) != "maintenance\n" {
		t.Fatalf("nologin saved: %q", b)
	}
	r.ClearNologin()
	if _, err := os.Stat(filepath.Join(r.Dir, "nologin.saved")); err == nil {
		t.Fatal("nologin record left")
	}
	err := r.AddContainer("abc123", false, []ContainerNetwork{{Network: "net1", Body: []byte(`{"Container":"abc123"}`), Args: []string{"--alias", "web"}}})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(r.Dir, "containers", "abc123.0.args")); string(b) != "--alias web net1 abc123\n" {
		t.Fatalf("args: %q", b)
	}
	if err := r.AddContainer("../x", true, nil); err == nil {
		t.Fatal("path in container id accepted")
	}
	r.RemoveContainer("abc123")
	if m, _ := filepath.Glob(filepath.Join(r.Dir, "containers", "*")); len(m) != 0 {
		t.Fatalf("left: %v", m)
	}
}

// TestScriptSyntaxAndEmptyRun: the script parses, and with nothing
// recorded and no table it succeeds and says so.
func TestScriptSyntaxAndEmptyRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stop.sh")
	os.WriteFile(path, Script, 0o755)
	if out, err := exec.Command("sh", "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("sh -n: %v: %s", err, out)
	}
	if _, err := exec.LookPath("nft"); err != nil || os.Geteuid() != 0 {
		t.Skip("running it needs root and nft (covered by agent's TestEmergencyScript)")
	}
	stateDir := t.TempDir()
	cmd := exec.Command("sh", path)
	cmd.Env = append(os.Environ(), "PICKET_STATE_DIR="+stateDir, "PICKET_NFT_TABLE=picket-absent-test", "PICKET_NOLOGIN="+filepath.Join(t.TempDir(), "nologin"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "no nftables table inet picket-absent-test") || !strings.Contains(string(out), "done") {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, ok, _ := ReadStop(stateDir); !ok {
		t.Fatal("no stop file after a run")
	}
}

// TestScriptWritesStopFileFirst: the stop file exists, complete, before the
// script touches the firewall (a fake nft on PATH records what it saw),
// so a running agent has stopped acting when its table goes. No root
// needed: nothing real is changed.
func TestScriptWritesStopFileFirst(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	seen := filepath.Join(dir, "seen")
	fake := fmt.Sprintf("#!/bin/sh\ncat %q >>%q 2>/dev/null || echo missing >>%q\nexit 1\n", StopFile(stateDir), seen, seen)
	if err := os.WriteFile(filepath.Join(bin, "nft"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "stop.sh")
	os.WriteFile(script, Script, 0o755)
	cmd := exec.Command("sh", script)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "PICKET_STATE_DIR="+stateDir,
		"PICKET_NFT_TABLE=picket-fake", "PICKET_NOLOGIN="+filepath.Join(dir, "nologin"), "SUDO_USER=opsadmin")
	before := time.Now().Add(-time.Second)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b, _ := os.ReadFile(seen)
	line := strings.TrimSpace(string(b))
	if line == "" || line == "missing" {
		t.Fatalf("nft ran before the stop file existed (saw %q)\n%s", line, out)
	}
	s := parseStop(line)
	if s.By != "opsadmin" || s.At.Before(before.Truncate(time.Second)) || s.At.After(time.Now()) {
		t.Fatalf("stop file %q parsed as %+v", line, s)
	}
	if m, _ := filepath.Glob(filepath.Join(DirIn(stateDir), "stop.tmp*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
	if fi, err := os.Stat(DirIn(stateDir)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("registry dir: %v %v", fi, err)
	}
	// A second run replaces the file rather than failing on it.
	again := exec.Command("sh", script)
	again.Env = cmd.Env
	if out, err := again.CombinedOutput(); err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if _, ok, err := ReadStop(stateDir); !ok || err != nil {
		t.Fatalf("stop file after the second run: %v %v", ok, err)
	}
}
