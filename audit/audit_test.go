package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func chain(n int) []Entry {
	var out []Entry
	var seq int64
	prev := ""
	for i := 0; i < n; i++ {
		e := Seal(seq, prev, Entry{Time: time.Unix(int64(i), 0), Kind: KindIncident, Message: "m", Data: []byte(`{}`)})
		out = append(out, e)
		seq, prev = e.Seq, e.Hash
	}
	return out
}

func verify(es []Entry) error {
	var v Verifier
	for _, e := range es {
		if err := v.Next(e); err != nil {
			return err
		}
	}
	return nil
}

func TestChain(t *testing.T) {
	es := chain(4)
	if err := verify(es); err != nil {
		t.Fatal(err)
	}
	if es[0].Prev != Genesis || es[1].Prev != es[0].Hash {
		t.Fatal("links wrong")
	}
	cases := map[string]func([]Entry) []Entry{
		"message":  func(es []Entry) []Entry { es[2].Message = "x"; return es },
		"data":     func(es []Entry) []Entry { es[2].Data = []byte(`{"a":1}`); return es },
		"time":     func(es []Entry) []Entry { es[2].Time = es[2].Time.Add(time.Nanosecond); return es },
		"removed":  func(es []Entry) []Entry { return append(es[:2], es[3:]...) },
		"swapped":  func(es []Entry) []Entry { es[1], es[2] = es[2], es[1]; return es },
		"resealed": func(es []Entry) []Entry { es[2].Message = "x"; es[2].Hash = es[2].ComputeHash(); return es },
	}
	for name, mut := range cases {
		es := mut(chain(4))
		err := verify(es)
		var ce *ChainError
		if !errors.As(err, &ce) || !errors.Is(err, ErrBroken) {
			t.Errorf("%s: not detected: %v", name, err)
		}
	}
}

func TestFieldBoundaries(t *testing.T) {
	// Moving bytes between fields must change the hash.
	a := Entry{Seq: 1, Prev: Genesis, Time: time.Unix(0, 0), Kind: "ab", Subject: "c", Message: "m"}
	b := Entry{Seq: 1, Prev: Genesis, Time: time.Unix(0, 0), Kind: "a", Subject: "bc", Message: "m"}
	if a.ComputeHash() == b.ComputeHash() {
		t.Fatal("field boundary not part of the hash")
	}
}

func TestHead(t *testing.T) {
	es := chain(3)
	var v Verifier
	for _, e := range es[:2] {
		v.Next(e)
	}
	if err := v.Head(es[2].Seq, es[2].Hash); err == nil {
		t.Fatal("truncated chain accepted against its recorded head")
	}
	v.Next(es[2])
	if err := v.Head(es[2].Seq, es[2].Hash); err != nil {
		t.Fatal(err)
	}
}

// TestExportedEntryVerifies: an entry written as a JSON line and read back
// verifies, even when its Data was given with whitespace and HTML
// characters.
func TestExportedEntryVerifies(t *testing.T) {
	e := Seal(0, "", Entry{Time: time.Unix(5, 7), Kind: "k", Message: "<m>", Data: []byte(`{ "a" : "<b> & c" }`)})
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		t.Fatal(err)
	}
	var back Entry
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	var v Verifier
	if err := v.Next(back); err != nil {
		t.Fatalf("exported entry does not verify: %v (%s)", err, buf.String())
	}
}
