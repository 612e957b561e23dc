// Package account disables and re-enables a local user by account expiry,
// and ends a user's sessions. Expiry (field 8 of /etc/shadow set to 1, i.e.
// 1970-01-02) stops every PAM path, SSH keys included, which `passwd -l`
// does not. The shadow file is edited in place of usermod so that exactly
// one field changes and the previous raw value can be put back byte for
// byte, even after a restart: Disable returns it in Undo, plain data the
// action engine (package actions) journals and later hands to Enable.
//
// The file is locked as shadow-utils does on Debian 12 (see lock.go),
// rewritten atomically (temporary file in the same directory with the same
// mode and owner, fsync, rename, fsync of the directory), and never logged:
// errors name line numbers, never line contents, since those hold password
// hashes.
package account

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Sentinel errors; callers match them with errors.Is.
var (
	// ErrProtected refuses root, any uid-0 account and the protect list.
	ErrProtected = errors.New("account: protected account")
	// ErrNoUser means the user is not in passwd or not in shadow.
	ErrNoUser = errors.New("account: no such user")
	// ErrMalformed means the user's shadow entry (or the file) is not in
	// a shape this package can edit without guessing.
	ErrMalformed = errors.New("account: malformed entry")
	// ErrLocked means another program holds the password files' lock.
	ErrLocked = errors.New("account: password files locked")
)

// DisabledExpire is the expiry Disable writes: day 1 after the epoch, in
// the past for every PAM check (0 is treated specially by some tools).
const DisabledExpire = "1"

// Files are the account databases to work on; tests point them at a
// private copy of /etc. The locks live next to Shadow.
type Files struct {
	Passwd string `json:"passwd"`
	Shadow string `json:"shadow"`
}

// Default returns the system's files.
func Default() Files { return Files{Passwd: "/etc/passwd", Shadow: "/etc/shadow"} }

// Undo is what Disable changed, as plain data for the journal.
type Undo struct {
	User string `json:"user"`
	// PrevExpire is the raw field 8 before Disable ("" for no expiry).
	PrevExpire string `json:"prev_expire"`
	// Changed is false when the account was already expired with
	// DisabledExpire; Enable then leaves it alone.
	Changed bool `json:"changed"`
}

// EnableResult says what Enable found and did, for the audit entry.
type EnableResult struct {
	// Restored is true when the file was written.
	Restored bool `json:"restored"`
	// Found is the expiry field Enable found before restoring.
	Found string `json:"found"`
	// Drifted is true when Found was neither DisabledExpire nor
	// PrevExpire: someone changed the field after Disable. It was
	// restored anyway, and the caller should audit it.
	Drifted bool `json:"drifted,omitempty"`
	// Gone is true when the user no longer exists; nothing to restore.
	Gone bool `json:"gone,omitempty"`
}

// Disable sets user's account expiry to DisabledExpire and returns the
// previous value. It refuses root, any account with uid 0, and the users in
// protect.
func Disable(f Files, user string, protect []string) (Undo, error) {
	if err := validName(user); err != nil {
		return Undo{}, err
	}
	if user == "root" || slices.Contains(protect, user) {
		return Undo{}, fmt.Errorf("user %q: %w", user, ErrProtected)
	}
	if err := checkPasswd(f.Passwd, user); err != nil {
		return Undo{}, err
	}
	var u Undo
	err := withLock(f.Shadow, func() error {
		data, err := os.ReadFile(f.Shadow)
		if err != nil {
			return fmt.Errorf("account: read %s: %w", f.Shadow, err)
		}
		out, prev, err := setExpire(data, user, DisabledExpire)
		if err != nil {
			return fmt.Errorf("account: %s: %w", f.Shadow, err)
		}
		u = Undo{User: user, PrevExpire: prev, Changed: prev != DisabledExpire}
		if !u.Changed {
			return nil
		}
		return writeAtomic(f.Shadow, out)
	})
	if err != nil {
		return Undo{}, err
	}
	return u, nil
}

// Enable puts back the expiry Disable recorded. It is idempotent: when
// the field already holds PrevExpire, or the user is gone, nothing is
// written. When someone changed the field after Disable it still restores
// PrevExpire and reports Drifted.
func Enable(f Files, u Undo) (EnableResult, error) {
	if err := validName(u.User); err != nil {
		return EnableResult{}, err
	}
	if !u.Changed {
		return EnableResult{}, nil
	}
	if strings.ContainsAny(u.PrevExpire, ":\n") {
		return EnableResult{}, fmt.Errorf("account: previous expiry of %q is not a field: %w", u.User, ErrMalformed)
	}
	var r EnableResult
	err := withLock(f.Shadow, func() error {
		data, err := os.ReadFile(f.Shadow)
		if err != nil {
			return fmt.Errorf("account: read %s: %w", f.Shadow, err)
		}
		out, found, err := setExpire(data, u.User, u.PrevExpire)
		if errors.Is(err, ErrNoUser) {
			r.Gone = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("account: %s: %w", f.Shadow, err)
		}
		r.Found = found
		if found == u.PrevExpire {
			return nil
		}
		r.Drifted = found != DisabledExpire
		if err := writeAtomic(f.Shadow, out); err != nil {
			return err
		}
		r.Restored = true
		return nil
	})
	return r, err
}

// Expire returns user's raw expiry field, for checks and tests.
func Expire(f Files, user string) (string, error) {
	data, err := os.ReadFile(f.Shadow)
	if err != nil {
		return "", fmt.Errorf("account: read %s: %w", f.Shadow, err)
	}
	_, fields, err := findEntry(bytes.Split(data, []byte("\n")), user)
	if err != nil {
		return "", fmt.Errorf("account: %s: %w", f.Shadow, err)
	}
	return fields[7], nil
}

func validName(user string) error {
	if user == "" || strings.ContainsAny(user, ":\n\x00") || user[0] == '+' || user[0] == '-' {
		return fmt.Errorf("account: invalid user name %q: %w", user, ErrNoUser)
	}
	return nil
}

// passwdUIDs returns the uids of user's entries in the passwd file (more
// than one when the user is listed twice).
func passwdUIDs(path, user string) ([]int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("account: read %s: %w", path, err)
	}
	var uids []int
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 || f[0] != user {
			continue
		}
		uid, err := strconv.Atoi(f[2])
		if err != nil || uid < 0 {
			return nil, fmt.Errorf("account: %s: uid of %q: %w", path, user, ErrMalformed)
		}
		uids = append(uids, uid)
	}
	if len(uids) == 0 {
		return nil, fmt.Errorf("user %q not in %s: %w", user, path, ErrNoUser)
	}
	return uids, nil
}

// checkPasswd refuses a user that is missing from passwd or has uid 0 in
// any of its entries.
func checkPasswd(path, user string) error {
	uids, err := passwdUIDs(path, user)
	if err != nil {
		return err
	}
	if slices.Contains(uids, 0) {
		return fmt.Errorf("user %q has uid 0: %w", user, ErrProtected)
	}
	return nil
}

// lookupUID returns user's uid; a user listed twice with different uids
// is ErrMalformed.
func lookupUID(path, user string) (int, error) {
	uids, err := passwdUIDs(path, user)
	if err != nil {
		return 0, err
	}
	for _, u := range uids[1:] {
		if u != uids[0] {
			return 0, fmt.Errorf("account: %s: %q listed with uids %v: %w", path, user, uids, ErrMalformed)
		}
	}
	return uids[0], nil
}

// findEntry returns the index and the fields of user's line. A shadow
// entry has nine fields (shadow(5)); anything else, or a user listed
// twice, is ErrMalformed rather than a guess.
func findEntry(lines [][]byte, user string) (int, []string, error) {
	idx := -1
	var fields []string
	for i, line := range lines {
		name, _, ok := bytes.Cut(line, []byte(":"))
		if !ok || string(name) != user {
			continue
		}
		if idx >= 0 {
			return 0, nil, fmt.Errorf("user %q listed twice (lines %d and %d): %w", user, idx+1, i+1, ErrMalformed)
		}
		idx = i
		fields = strings.Split(string(line), ":")
		if len(fields) != 9 {
			return 0, nil, fmt.Errorf("line %d: %d fields, want 9: %w", i+1, len(fields), ErrMalformed)
		}
	}
	if idx < 0 {
		return 0, nil, fmt.Errorf("user %q: %w", user, ErrNoUser)
	}
	return idx, fields, nil
}

// setExpire returns data with user's field 8 set to val, and the previous
// value; every other byte is kept.
func setExpire(data []byte, user, val string) ([]byte, string, error) {
	lines := bytes.Split(data, []byte("\n"))
	i, fields, err := findEntry(lines, user)
	if err != nil {
		return nil, "", err
	}
	prev := fields[7]
	fields[7] = val
	lines[i] = []byte(strings.Join(fields, ":"))
	return bytes.Join(lines, []byte("\n")), prev, nil
}

// chownLike gives f the owner and group of fi.
func chownLike(f *os.File, fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return f.Chown(int(st.Uid), int(st.Gid))
}

// writeAtomic replaces path with data: a reader sees the old file or the
// new one, never a mix, and a crash leaves one of them on disk.
func writeAtomic(path string, data []byte) (err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("account: stat %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".picket-*")
	if err != nil {
		return fmt.Errorf("account: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		return fmt.Errorf("account: chmod %s: %w", tmp.Name(), err)
	}
	if err := chownLike(tmp, fi); err != nil {
		return fmt.Errorf("account: chown %s: %w", tmp.Name(), err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("account: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("account: fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("account: close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("account: rename to %s: %w", path, err)
	}
	// The rename is durable only once the directory is.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
