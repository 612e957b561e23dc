package schema

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDurationJSON(t *testing.T) {
	for _, d := range []time.Duration{0, time.Second, 90 * time.Minute, 48 * time.Hour, -5 * time.Minute} {
		b, err := json.Marshal(Duration(d))
		if err != nil {
			t.Fatal(err)
		}
		var got Duration
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if got.D() != d {
			t.Errorf("%s: got %v, want %v", b, got, d)
		}
	}
	var d Duration
	for _, bad := range []string{`"10x"`, `600`, `""`} {
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// The whole policy survives JSON, which is how the agent records the
// config it applied.
func TestPolicyJSONRoundTrip(t *testing.T) {
	p, err := LoadDir("testdata/merge", "web1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var q Policy
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(&q)
	if string(b) != string(b2) {
		t.Errorf("round trip differs:\n%s\n%s", b, b2)
	}
}
