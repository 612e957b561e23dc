package state

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestActionJournalRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	var ids []int64
	err = s.Update(ctx, func(tx *Tx) error {
		for i, st := range []string{"applied", "expired", "pending"} {
			id, err := tx.AddAction(ctx, ActionRow{Incident: 7, Kind: "block-source", Target: "198.51.100.7", Reason: "r",
				Status: st, Created: t0.Add(time.Duration(i) * time.Minute), Snapshot: []byte(`{"a":1}`)})
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Action(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if !a.Applied.IsZero() || !a.Expires.IsZero() || string(a.Snapshot) != `{"a":1}` || !a.Created.Equal(t0) {
		t.Fatalf("round trip: %+v", a)
	}
	a.Applied, a.Expires, a.Note = t0, t0.Add(time.Hour), "in force"
	if err := s.Update(ctx, func(tx *Tx) error { return tx.PutAction(ctx, a) }); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Action(ctx, ids[0])
	if !got.Expires.Equal(t0.Add(time.Hour)) || got.Note != "in force" {
		t.Fatalf("after put: %+v", got)
	}
	live, err := s.Actions(ctx, ActionFilter{Statuses: []string{"applied", "pending"}})
	if err != nil || len(live) != 2 || live[0].ID != ids[0] || live[1].ID != ids[2] {
		t.Fatalf("filter: %v %+v", err, live)
	}
	last, _ := s.Actions(ctx, ActionFilter{Limit: 1})
	if len(last) != 1 || last[0].ID != ids[2] {
		t.Fatalf("limit keeps the newest: %+v", last)
	}
	// Only what reached the host counts toward the hourly caps.
	if n, _ := s.CountAppliedSince(ctx, t0.Add(-time.Second), nil); n != 1 {
		t.Fatalf("applied since: %d", n)
	}
	if n, _ := s.CountAppliedSince(ctx, t0.Add(time.Second), nil); n != 0 {
		t.Fatalf("applied since later: %d", n)
	}
	if n, _ := s.CountAppliedSince(ctx, t0.Add(-time.Second), []string{"no-such-kind"}); n != 0 {
		t.Fatalf("applied of another kind: %d", n)
	}
	if _, err := s.Action(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.PutAction(ctx, ActionRow{ID: 999}) }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("put missing: %v", err)
	}
}
