// Package nologin pauses new non-root logins by creating /run/nologin,
// which pam_nologin honours for every PAM service (sshd, login, su to a
// non-root user), and puts back exactly what was there before. root is not
// stopped by it (pam_nologin lets uid 0 in), which is why the SSH pause
// action pairs it with a firewall rule.
//
// The action engine (package actions) calls Set for the "pause new SSH
// logins" and containment actions, journals the returned Undo (plain
// data) and hands it to Restore at expiry or rollback, possibly after a
// restart.
package nologin

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultPath is where systemd and pam_nologin look first.
const DefaultPath = "/run/nologin"

// ErrNotRegular means the path exists but is not a regular file (a
// symlink, say); it is left alone rather than followed or replaced.
var ErrNotRegular = errors.New("nologin: not a regular file")

// Undo is what Set found, as plain data for the journal.
type Undo struct {
	// Existed says whether the file was there before Set.
	Existed bool `json:"existed"`
	// Prev is its previous content (when Existed).
	Prev []byte `json:"prev,omitempty"`
	// Mode is its previous permission bits (when Existed).
	Mode fs.FileMode `json:"mode,omitempty"`
}

// Snapshot returns what is at path now, for Restore: the action engine
// journals it before Set changes anything. A symlink or other non-regular
// file is refused (never written through).
func Snapshot(path string) (Undo, error) {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Undo{}, nil
	case err != nil:
		return Undo{}, fmt.Errorf("nologin: stat %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return Undo{}, fmt.Errorf("nologin: %s (%s): %w", path, fi.Mode().Type(), ErrNotRegular)
	}
	prev, err := os.ReadFile(path)
	if err != nil {
		return Undo{}, fmt.Errorf("nologin: read %s: %w", path, err)
	}
	return Undo{Existed: true, Prev: prev, Mode: fi.Mode().Perm()}, nil
}

// Set writes message (plus a newline when it lacks one: pam_nologin shows
// the file to the user verbatim) to path and returns what was there.
func Set(path, message string) (Undo, error) {
	u, err := Snapshot(path)
	if err != nil {
		return Undo{}, err
	}
	msg := []byte(message)
	if !bytes.HasSuffix(msg, []byte("\n")) {
		msg = append(msg, '\n')
	}
	if err := writeAtomic(path, msg, 0o644); err != nil {
		return Undo{}, err
	}
	return u, nil
}

// Restore puts back what Set found: the previous content and mode, or no
// file at all. It is idempotent.
func Restore(path string, u Undo) error {
	if !u.Existed {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("nologin: remove %s: %w", path, err)
		}
		return nil
	}
	mode := u.Mode
	if mode == 0 {
		mode = 0o644
	}
	return writeAtomic(path, u.Prev, mode)
}

// writeAtomic replaces path with data (a temporary file in the same
// directory, fsynced, renamed over it): a login racing with it reads the
// old file or the new one. Renaming also replaces a symlink rather than
// writing through it.
func writeAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".picket-*")
	if err != nil {
		return fmt.Errorf("nologin: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("nologin: chmod %s: %w", tmp.Name(), err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("nologin: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("nologin: fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("nologin: close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("nologin: rename to %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
