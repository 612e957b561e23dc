package sensor

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/tail"
)

func collect(t *testing.T, s Sensor, write func(), want int) []Item {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan Item, 100)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	time.Sleep(50 * time.Millisecond) // the follower opens the file at its end
	write()
	var items []Item
	deadline := time.After(10 * time.Second)
	for len(items) < want {
		select {
		case it := <-out:
			items = append(items, it)
		case <-deadline:
			t.Fatalf("got %d items, want %d", len(items), want)
		}
	}
	cancel()
	<-done
	return items
}

func appendTo(t *testing.T, path, text string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(text)
	f.Close()
}

func TestAuthFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.log")
	appendTo(t, path, "Dec 10 06:55:46 h sshd[1]: Failed password for root from 192.0.2.1 port 1 ssh2\n") // before start: skipped
	s := &AuthFile{Path: path, Poll: 10 * time.Millisecond}
	items := collect(t, s, func() {
		appendTo(t, path, "Dec 10 06:55:47 h sshd[1]: Failed password for root from 192.0.2.2 port 1 ssh2\n"+
			"Dec 10 06:55:48 h CRON[2]: pam_unix(cron:session): session opened for user root\n"+
			"garbage\n")
	}, 3)
	if items[0].Event == nil || items[0].Event.Kind != event.AuthFailure || items[0].Event.Addr.String() != "192.0.2.2" {
		t.Errorf("first item %+v", items[0])
	}
	if items[1].Event != nil || items[1].Unparsed {
		t.Errorf("cron line: %+v, want no event and not unparsed", items[1])
	}
	if !items[2].Unparsed {
		t.Errorf("garbage line not counted as unparsed: %+v", items[2])
	}
	pos, ok := items[2].Pos.(tail.Position)
	fi, _ := os.Stat(path)
	if !ok || pos.Offset != fi.Size() || items[2].Source != "auth:file:"+path {
		t.Errorf("last position %+v (source %s), file size %d", items[2].Pos, items[2].Source, fi.Size())
	}
}

func TestWebFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	s := &WebFile{Path: path, Format: "auto", Poll: 10 * time.Millisecond}
	items := collect(t, s, func() {
		appendTo(t, path, `192.0.2.9 - - [10/Dec/2024:10:00:00 +0000] "GET /.env HTTP/1.1" 404 1 "-" "x"`+"\n"+
			`{"time_iso8601":"2024-12-10T10:00:01+00:00","remote_addr":"192.0.2.9","request":"GET / HTTP/1.1","status":200}`+"\n")
	}, 2)
	for i, it := range items {
		if it.Event == nil || it.Event.Kind != event.WebRequest || it.Event.Addr.String() != "192.0.2.9" {
			t.Errorf("item %d: %+v", i, it)
		}
	}
	if items[0].Event.Path != "/.env" || items[0].Event.Status != 404 || items[1].Event.Status != 200 {
		t.Errorf("fields: %+v / %+v", items[0].Event, items[1].Event)
	}
}

func TestProcessSkipsTheAgent(t *testing.T) {
	s := &Process{Self: 500}
	for _, c := range []struct {
		p    *event.Process
		want bool
	}{
		{&event.Process{PID: 500}, true},
		{&event.Process{PID: 501, PPID: 500}, true},
		{&event.Process{PID: 502, PPID: 501, Lineage: []event.Ancestor{{PID: 501}, {PID: 500}, {PID: 1}}}, true},
		{&event.Process{PID: 503, PPID: 1, Lineage: []event.Ancestor{{PID: 1}}}, false},
		{nil, false},
	} {
		if got := s.own(c.p); got != c.want {
			t.Errorf("own(%+v) = %v, want %v", c.p, got, c.want)
		}
	}
}
