package trust

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testLoc stands in for the host's local zone so cases without a Z suffix
// have fixed expectations: times are read as UTC+2.
var testLoc = time.FixedZone("UTC+2", 2*3600)

func renderSigners(s []AllowedSigner) string {
	var b strings.Builder
	tm := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, e := range s {
		ns := "-"
		if e.Namespaces != nil {
			ns = strings.Join(e.Namespaces, ",")
		}
		fmt.Fprintf(&b, "%d %s ns=%s after=%s before=%s %s %s\n", e.Line, strings.Join(e.Principals, ","), ns,
			tm(e.ValidAfter), tm(e.ValidBefore), e.Key.Type(), e.Comment)
	}
	return b.String()
}

// Cases live in testdata/allowed_signers: NAME.in is the file, NAME.want
// either the parsed entries (renderSigners) or "error: LINE: message".
func TestParseAllowedSigners(t *testing.T) {
	ins, err := filepath.Glob("testdata/allowed_signers/*.in")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no test cases: %v", err)
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(strings.TrimSuffix(in, ".in") + ".want")
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseAllowedSigners(data, "signers", testLoc)
			if w, isErr := strings.CutPrefix(string(want), "error: "); isErr {
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("want error %q, got %v (%s)", w, err, renderSigners(got))
				}
				if !strings.HasPrefix(err.Error(), "signers:"+w) {
					t.Fatalf("error %q, want prefix %q", err, "signers:"+w)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r := renderSigners(got); r != string(want) {
				t.Fatalf("got\n%s\nwant\n%s", r, want)
			}
		})
	}
}

func TestParseLocalTime(t *testing.T) {
	// Without Z the host's zone applies, as ssh-keygen does.
	got, err := ParseAllowedSigners([]byte(`a valid-after="20240101" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICw6VwPZu9xP49W3YfF+ZTM6W9l/UNAhmPdjksig88Cf`), "f")
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 1, 1, 0, 0, 0, 0, time.Local); !got[0].ValidAfter.Equal(want) {
		t.Fatalf("valid-after %v, want %v", got[0].ValidAfter, want)
	}
}

func TestMatchPatternList(t *testing.T) {
	for _, c := range []struct {
		s, list string
		want    bool
	}{
		{"git", "git", true},
		{"git", "file", false},
		{"git", "git,file", true},
		{"git", "g*", true},
		{"git", "g?t", true},
		{"git", "g?", false},
		{"git", "*,!git", false},
		{"git", "!file", false}, // only negative patterns: nothing positive matched
		{"git", "*,!file", true},
		{"git", "", false},
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "*a*a*a*a*a*a*a*a*c", false},
	} {
		if got := matchPatternList(c.s, strings.Split(c.list, ",")); got != c.want {
			t.Errorf("match(%q, %q) = %v, want %v", c.s, c.list, got, c.want)
		}
	}
}

func TestLoadDir(t *testing.T) {
	const k1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICw6VwPZu9xP49W3YfF+ZTM6W9l/UNAhmPdjksig88Cf"
	const k4 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC1UbW69l/MtSuJqTZZZ+ftZnlgvwQfJ3p+ofjwUJ68T"
	write := func(t *testing.T, files map[string]string) string {
		dir := t.TempDir()
		for n, c := range files {
			if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	load := func(t *testing.T, files map[string]string) *TrustSet {
		t.Helper()
		ts, err := LoadDir(write(t, files))
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}

	empty := load(t, nil)
	if !empty.Empty() || empty.Hash() != load(t, map[string]string{"README": "x"}).Hash() {
		t.Fatal("empty directory (or only unrelated files) must be an empty, stable set")
	}
	if _, err := LoadDir(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing directory: %v", err)
	}

	a := load(t, map[string]string{"allowed_signers": "alice " + k1 + " laptop\n"})
	same := load(t, map[string]string{"allowed_signers": "# reordered, other comment\n\nalice   " + k1 + " desktop\n"})
	if a.Hash() != same.Hash() {
		t.Fatal("comments and spacing changed the hash")
	}
	for name, c := range map[string]string{
		"other principal": "bob " + k1,
		"namespace":       `alice namespaces="git" ` + k1,
		"validity":        `alice valid-before="20300101Z" ` + k1,
		"extra key":       "alice " + k1 + "\nbob " + k4,
	} {
		if load(t, map[string]string{"allowed_signers": c + "\n"}).Hash() == a.Hash() {
			t.Errorf("%s: hash unchanged", name)
		}
	}

	// Union with the repository's file: the local entries stay.
	u, err := a.With([]byte("bob "+k4+"\n"), RepoAllowedSigners)
	if err != nil || len(u.Signers()) != 2 || u.Hash() == a.Hash() {
		t.Fatalf("With: %v %d", err, len(u.Signers()))
	}
	if u2, _ := a.With([]byte("alice "+k1+" dup\n"), RepoAllowedSigners); u2.Hash() != a.Hash() {
		t.Fatal("a duplicate entry changed the set")
	}
	if _, err := a.With([]byte("\nx cert-authority "+k4+"\n"), RepoAllowedSigners); err == nil || !strings.Contains(err.Error(), "trust/allowed_signers:2: cert-authority is not supported") {
		t.Fatalf("With(cert-authority): %v", err)
	}

	// cert-authority in the local file: refused with file:line.
	dir := write(t, map[string]string{"allowed_signers": "alice " + k1 + "\n*@example.com cert-authority " + k4 + "\n"})
	_, err = LoadDir(dir)
	if want := filepath.Join(dir, "allowed_signers") + ":2: cert-authority is not supported: list the signing keys themselves"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}

	if _, err := LoadDir(write(t, map[string]string{"junk.asc": "not a key"})); err == nil || !strings.Contains(err.Error(), "junk.asc") {
		t.Fatalf("bad key file: %v", err)
	}
}

func FuzzParseAllowedSigners(f *testing.F) {
	ins, _ := filepath.Glob("testdata/allowed_signers/*.in")
	for _, in := range ins {
		if b, err := os.ReadFile(in); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseAllowedSigners(data, "f", testLoc)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 || pe.Source != "f" {
				t.Fatalf("error without a location: %v", err)
			}
			if got != nil {
				t.Fatal("entries returned with an error")
			}
			return
		}
		lines := strings.Count(string(data), "\n") + 1
		for _, e := range got {
			if e.Key == nil || len(e.Principals) == 0 || e.Line < 1 || e.Line > lines {
				t.Fatalf("bad entry %+v", e)
			}
			if !e.ValidAfter.IsZero() && !e.ValidBefore.IsZero() && !e.ValidBefore.After(e.ValidAfter) {
				t.Fatalf("inverted validity accepted: %+v", e)
			}
			_ = e.canonical()
		}
		// Building a set must never fail on what the parser accepted.
		_ = NewTrustSet(got, nil).Hash()
	})
}
