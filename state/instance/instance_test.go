package instance

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The helper process: when PICKET_LOCK_HELPER names a directory, the test
// binary takes the lock there, says so, and holds it until stdin closes.
func TestMain(m *testing.M) {
	if dir := os.Getenv("PICKET_LOCK_HELPER"); dir != "" {
		l, err := Acquire(dir)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		bufio.NewReader(os.Stdin).ReadString('\n')
		l.Release()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holder starts a second process that holds the lock on dir.
func holder(t *testing.T, dir string) (*exec.Cmd, func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PICKET_LOCK_HELPER="+dir)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper: %q %v", line, err)
	}
	return cmd, func() { in.Close(); cmd.Wait() }
}

func TestSecondProcessRefused(t *testing.T) {
	dir := t.TempDir()
	cmd, release := holder(t, dir)
	_, err := Acquire(dir)
	var he *HeldError
	if !errors.As(err, &he) || he.PID != cmd.Process.Pid || he.Dir != dir {
		t.Fatalf("second acquire: %v (%+v)", err, he)
	}
	want := fmt.Sprintf("another picket (pid %d) is running on %s", cmd.Process.Pid, dir)
	if err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
	if pid, held, err := Holder(dir); err != nil || !held || pid != cmd.Process.Pid {
		t.Fatalf("Holder: %d %v %v", pid, held, err)
	}
	release()
	if _, held, _ := Holder(dir); held {
		t.Fatal("still held after the holder released")
	}
	l, err := Acquire(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	b, _ := os.ReadFile(Path(dir))
	if strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Fatalf("lock file holds %q", b)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(Path(dir)); len(b) != 0 {
		t.Fatalf("pid left after release: %q", b)
	}
}

// TestKilledHolderFreesLock: SIGKILL leaves the file with a stale pid, but
// the kernel dropped the lock, so a restart is not blocked.
func TestKilledHolderFreesLock(t *testing.T) {
	dir := t.TempDir()
	cmd, _ := holder(t, dir)
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := Acquire(dir)
		if err == nil {
			l.Release()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lock not freed by SIGKILL: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSameProcessTwice: flock is per open file description, so even one
// process cannot take it twice (two agents in one test binary).
func TestSameProcessTwice(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if _, err := Acquire(dir); err == nil {
		t.Fatal("second lock in the same process granted")
	}
	var nilLock *Lock
	if err := nilLock.Release(); err != nil {
		t.Fatal(err)
	}
}
