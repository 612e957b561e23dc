package procname

import "testing"

func TestMatch(t *testing.T) {
	n := Names{"nginx", "php-fpm*", "python?"}
	for _, c := range []struct {
		comm, exe string
		want      bool
	}{
		{"nginx", "/usr/sbin/nginx", true},
		{"worker", "/usr/sbin/nginx", true}, // comm changed, exe still nginx
		{"nginx", "/tmp/x", true},           // renamed binary run as nginx
		{"php-fpm8.2", "/usr/sbin/php-fpm8.2", true},
		{"python3", "/usr/bin/python3.11", true},
		{"python3.11", "/usr/bin/python3.11", false},
		{"bash", "/usr/bin/bash", false},
		{"", "", false},
	} {
		if got := n.Match(c.comm, c.exe); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.comm, c.exe, got, c.want)
		}
	}
	if (Names{"[bad"}).Match("x", "/x") {
		t.Error("a malformed pattern matched")
	}
}
