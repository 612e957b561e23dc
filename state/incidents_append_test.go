package state

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/picket-agent/picket/audit"
)

// A summarised incident's newest signals are appended to the stored
// story; the other fields take the new values; a first write inserts.
func TestAppendIncident(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	row := func(level string, doc string) IncidentRow {
		return IncidentRow{ID: 7, Opened: at, Updated: at, Status: "open", Level: level, Score: 50, Summary: level, Doc: []byte(doc)}
	}
	put := func(f func(tx *Tx) error) {
		t.Helper()
		if err := s.Update(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	put(func(tx *Tx) error {
		return tx.AppendIncident(ctx, row("contain", `{"id":7,"level":"contain","signals":[{"rule":"a"}]}`))
	})
	put(func(tx *Tx) error {
		return tx.AppendIncident(ctx, row("aggressive", `{"id":7,"level":"aggressive","signals":[{"rule":"b"},{"rule":"c"}]}`))
	})
	put(func(tx *Tx) error {
		return tx.AppendIncident(ctx, row("aggressive", `{"id":7,"level":"aggressive","signals":null}`))
	})
	got, err := s.Incident(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Level   string `json:"level"`
		Signals []struct {
			Rule string `json:"rule"`
		} `json:"signals"`
	}
	if err := json.Unmarshal(got.Doc, &doc); err != nil {
		t.Fatalf("%s: %v", got.Doc, err)
	}
	var rules string
	for _, sg := range doc.Signals {
		rules += sg.Rule
	}
	if got.Level != "aggressive" || doc.Level != "aggressive" || rules != "abc" {
		t.Fatalf("row level %s, doc %s", got.Level, got.Doc)
	}
}

// A batch of entries chains exactly like one AppendAudit each, before and
// after single appends, and the chain verifies.
func TestAppendAudits(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	err = s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.AppendAudit(ctx, audit.Entry{Time: at, Kind: "test", Subject: "a", Message: "one"}); err != nil {
			return err
		}
		var es []audit.Entry
		for i := 0; i < 5; i++ {
			es = append(es, audit.Entry{Time: at, Kind: "test", Subject: "b", Message: "batch", Data: []byte(`{"i": 1}`)})
		}
		if err := tx.AppendAudits(ctx, es); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Entry{Time: at, Kind: "test", Subject: "c", Message: "last"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var prev audit.Entry
	err = s.EachAudit(ctx, AuditFilter{}, func(e audit.Entry) error {
		n++
		if e.Seq != int64(n) || (n > 1 && e.Prev != prev.Hash) || e.Hash != e.ComputeHash() {
			t.Fatalf("entry %d: seq %d prev %s hash %s", n, e.Seq, e.Prev, e.Hash)
		}
		prev = e
		return nil
	})
	if err != nil || n != 7 {
		t.Fatalf("%d entries, %v", n, err)
	}
	if _, err := s.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
}

// The text splice keeps a trailing "capped", ignores an escaped
// `"signals":[` inside evidence, and a document of another shape is merged
// as JSON.
func TestAppendIncidentShapes(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	write := func(id int64, doc string) {
		t.Helper()
		err := s.Update(ctx, func(tx *Tx) error {
			return tx.AppendIncident(ctx, IncidentRow{ID: id, Opened: at, Updated: at, Status: "open", Level: "observe", Doc: []byte(doc)})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	rules := func(id int64) string {
		t.Helper()
		got, err := s.Incident(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Capped  string `json:"capped"`
			Signals []struct {
				Rule string `json:"rule"`
			} `json:"signals"`
		}
		if err := json.Unmarshal(got.Doc, &doc); err != nil {
			t.Fatalf("%s: %v", got.Doc, err)
		}
		out := doc.Capped + ":"
		for _, sg := range doc.Signals {
			out += sg.Rule
		}
		return out
	}
	write(8, `{"id":8,"signals":[{"rule":"a","line":"x \"signals\":[ y"}],"capped":"c1"}`)
	write(8, `{"id":8,"signals":[{"rule":"b"}],"capped":"c2"}`)
	if got := rules(8); got != "c2:ab" {
		t.Fatalf("capped incident: %s", got)
	}
	write(9, `{"signals":[{"rule":"a"}],"id":9}`)
	write(9, `{"signals":[{"rule":"b"}],"id":9}`)
	if got := rules(9); got != ":ab" {
		t.Fatalf("other shape: %s", got)
	}
}

// A status change without new signals rewrites only the head of the
// stored document.
func TestAppendIncidentHead(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	write := func(status, doc string) {
		t.Helper()
		err := s.Update(ctx, func(tx *Tx) error {
			return tx.AppendIncident(ctx, IncidentRow{ID: 3, Opened: at, Updated: at, Status: status, Level: "contain", Doc: []byte(doc)})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	write("open", `{"id":3,"status":"open","stages":["recon"],"entities":[],"signals":[{"rule":"a"}]}`)
	write("contained", `{"id":3,"status":"contained","stages":["recon"],"entities":["x"],"signals":null}`)
	got, err := s.Incident(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":3,"status":"contained","stages":["recon"],"entities":["x"],"signals":[{"rule":"a"}]}`; string(got.Doc) != want || got.Status != "contained" {
		t.Fatalf("got %s %s", got.Status, got.Doc)
	}
}
