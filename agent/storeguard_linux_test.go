package agent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/sensor"
	"github.com/picket-agent/picket/agent/tail"
	"github.com/picket-agent/picket/internal/integration"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
	"golang.org/x/sys/unix"
)

// TestFullDisk: the state directory on a real 8 MiB tmpfs that fills up.
// The agent does not stop: status and log say the disk is full, intake
// pauses; once space returns it commits what it held by itself. Nothing
// acknowledged is lost, nothing is counted twice, the chain verifies.
func TestFullDisk(t *testing.T) {
	integration.Root(t)
	base := t.TempDir()
	mnt := filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=8m,mode=0700"); err != nil {
		integration.Skip(t, "cannot mount a tmpfs: "+err.Error())
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	h := newHarness(t)
	h.dir = filepath.Join(mnt, "state")
	logs := &syncBuffer{}
	startLogged(h, slog.New(slog.NewJSONHandler(logs, nil)))

	now := time.Now()
	time.Sleep(100 * time.Millisecond) // the follower opens the file at its end
	h.appendLines(failures("192.0.2.10", 6, now)...)
	h.waitFor("incident for 192.0.2.10", func() bool { return len(h.incidents()) == 1 })
	if _, err := os.Stat(filepath.Join(h.dir, reserveFile)); err != nil {
		t.Fatalf("no reserve file: %v", err)
	}

	// Fill the file system to the last block.
	filler := filepath.Join(mnt, "filler")
	fillUp(t, filler)

	h.appendLines(failures("192.0.2.20", 5, now.Add(time.Minute))...)
	var st Status
	h.waitFor("status saying the disk is full", func() bool {
		st = h.status()
		return st.Store != nil && st.Store.Full
	})
	if !strings.Contains(st.Store.Error, "full") || st.State != "running" {
		t.Errorf("status while full: %+v", st.Store)
	}
	if !strings.Contains(logs.String(), "state database not writable") {
		t.Errorf("log does not say it:\n%s", logs.String())
	}
	select {
	case err := <-h.done:
		t.Fatalf("agent stopped on a full disk: %v", err)
	default:
	}
	// Still full: nothing of 192.0.2.20 is acknowledged yet, and a few
	// heartbeats do not change that.
	time.Sleep(300 * time.Millisecond)
	for _, in := range h.incidents() {
		if in.Entities[0].Value == "192.0.2.20" {
			t.Fatal("an incident was committed on a full disk?")
		}
	}

	// Space returns: the agent commits the held batch by itself.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	h.waitFor("recovery", func() bool { return h.status().Store == nil && len(h.incidents()) == 2 })
	if !strings.Contains(logs.String(), "state database writable again") {
		t.Errorf("recovery not logged")
	}
	if _, err := os.Stat(filepath.Join(h.dir, reserveFile)); err != nil {
		t.Errorf("reserve not recreated: %v", err)
	}
	// Intake resumed: a later line is processed too.
	h.appendLines(failures("192.0.2.30", 5, now.Add(2*time.Minute))...)
	h.waitFor("incident for 192.0.2.30", func() bool { return len(h.incidents()) == 3 })
	h.stop()

	seen := map[string]int{}
	for _, in := range h.incidents() {
		seen[in.Entities[0].Value]++
		if in.Entities[0].Value == "192.0.2.20" && !strings.HasPrefix(in.Signals[len(in.Signals)-1].Reason, "5 failed") {
			t.Errorf("192.0.2.20 after the full disk: %q", in.Signals[len(in.Signals)-1].Reason)
		}
	}
	if seen["192.0.2.10"] != 1 || seen["192.0.2.20"] != 1 || seen["192.0.2.30"] != 1 {
		t.Errorf("incidents by address: %v", seen)
	}
	ro, err := state.OpenReadOnly(context.Background(), h.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.VerifyAudit(context.Background()); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
}

// fillUp writes to path until the file system is full.
func fillUp(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatal(err)
		}
	}
	// The last partial block too.
	for _, n := range []int{4096, 512, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
}

func (h *harness) status() Status {
	var st Status
	ro, err := state.OpenReadOnly(context.Background(), h.dir)
	if err != nil {
		return st
	}
	defer ro.Close()
	ro.MetaJSON(context.Background(), MetaStatus, &st)
	return st
}

// startLogged is harness.start with the agent's log kept.
func startLogged(h *harness, log *slog.Logger) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done, h.reload = cancel, make(chan error, 1), make(chan struct{}, 1)
	a, err := New(Config{
		Version: "test", StateDir: h.dir, Notifier: h.notes, Reload: h.reload, Logger: log,
		FlushEvery: 20 * time.Millisecond, Heartbeat: 50 * time.Millisecond,
		Policy: func(context.Context) (*schema.Policy, ConfigStatus, error) {
			return h.policy, ConfigStatus{Source: "test"}, nil
		},
		Sensors: func(ctx context.Context, p *schema.Policy, pos *state.Store) ([]sensor.Sensor, []SensorStatus) {
			s := &sensor.AuthFile{Path: h.authLog, Poll: 10 * time.Millisecond}
			var start tail.Position
			if ok, _ := pos.Offset(ctx, s.Name(), &start); ok {
				s.Start = start
			}
			return []sensor.Sensor{s}, []SensorStatus{{Name: "auth", State: SensorOK}}
		},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	go func() { h.done <- a.Run(ctx) }()
	h.waitFor("READY", func() bool { return h.notes.has("READY=1") })
}
