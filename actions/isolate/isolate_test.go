package isolate

import "testing"

func TestProtected(t *testing.T) {
	d := inspect{ID: "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c", Name: "web-1"}
	tests := []struct {
		protect []string
		want    bool
	}{
		{nil, false},
		{[]string{"web-1"}, true},
		{[]string{"/web-1"}, true},
		{[]string{"web"}, false},
		{[]string{d.ID}, true},
		{[]string{d.ID[:12]}, true},
		{[]string{d.ID[:11]}, false}, // too short to be unambiguous
		{[]string{"", "db"}, false},
	}
	for _, tc := range tests {
		if got := protected(d, tc.protect); got != tc.want {
			t.Errorf("protected(%v) = %v, want %v", tc.protect, got, tc.want)
		}
	}
}

func TestValidVersion(t *testing.T) {
	for v, want := range map[string]bool{"1.47": true, "1.50": true, "1": false, "1.x": false, "../1.4": false, "": false, "1.4/": false} {
		if validVersion(v) != want {
			t.Errorf("validVersion(%q) != %v", v, want)
		}
	}
}
