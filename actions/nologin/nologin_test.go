package nologin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestSetRestore(t *testing.T) {
	tests := []struct {
		name    string
		prev    []byte // nil: no file
		mode    fs.FileMode
		message string
		want    string
	}{
		{"no file before", nil, 0, "Logins paused by picket", "Logins paused by picket\n"},
		{"operator's file kept", []byte("maintenance until 14:00\n"), 0o600, "paused\n", "paused\n"},
		{"empty file before", []byte{}, 0o644, "paused", "paused\n"},
		{"binary, no newline", []byte("a\x00b"), 0o640, "x", "x\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "nologin")
			if tc.prev != nil {
				if err := os.WriteFile(path, tc.prev, tc.mode); err != nil {
					t.Fatal(err)
				}
				os.Chmod(path, tc.mode) // umask
			}
			u, err := Set(path, tc.message)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(path); err != nil || string(got) != tc.want {
				t.Errorf("after Set: %q, %v", got, err)
			}
			// The Undo survives the journal.
			b, _ := json.Marshal(u)
			var back Undo
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			for range 2 { // idempotent
				if err := Restore(path, back); err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(path)
				if tc.prev == nil {
					if !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("file left behind: %q, %v", got, err)
					}
					continue
				}
				fi, _ := os.Stat(path)
				if err != nil || !bytes.Equal(got, tc.prev) || fi.Mode().Perm() != tc.mode {
					t.Errorf("restored %q mode %v, %v; want %q mode %v", got, fi.Mode(), err, tc.prev, tc.mode)
				}
			}
			if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) > 1 {
				t.Errorf("temporary files left: %v", ents)
			}
		})
	}
}

func TestSetRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "passwd")
	os.WriteFile(target, []byte("root:x:0:0::/root:/bin/sh\n"), 0o644)
	path := filepath.Join(dir, "nologin")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if _, err := Set(path, "x"); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("Set on a symlink: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "root:x:0:0::/root:/bin/sh\n" {
		t.Error("wrote through the symlink")
	}
}

func TestSetMissingDir(t *testing.T) {
	if _, err := Set(filepath.Join(t.TempDir(), "no", "nologin"), "x"); err == nil {
		t.Error("Set into a missing directory succeeded")
	}
}
