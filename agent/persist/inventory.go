package persist

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/accounts"
)

// Location kinds: the Change.What of PersistChanged events.
const (
	WhatCronLine      = "cron_line"    // a job (or a dangerous environment line) in a crontab
	WhatCronScript    = "cron_script"  // a script in /etc/cron.{hourly,daily,weekly,monthly}
	WhatSystemdUnit   = "systemd_unit" // a unit, timer, drop-in or enablement link
	WhatRCLocal       = "rc_local"
	WhatInitScript    = "init_script"
	WhatShellProfile  = "shell_profile"
	WhatAuthorizedKey = "authorized_key"
	WhatLDPreload     = "ld_preload"
	WhatSetuid        = "setuid_file"
	WhatFileCap       = "file_capability"
)

// stateVersion is bumped when State's meaning changes, so an old stored
// baseline is dropped rather than misread.
const stateVersion = 1

// State is one inventory: every persistence location found, with what it
// holds.
type State struct {
	Version int `json:"version"`
	// Entries are keyed by What + " " + Path.
	Entries map[string]*FileEntry `json:"entries"`
	// SetuidScan is when the setuid/capability scan last ran; SetuidCapped
	// says it stopped at Options.SetuidMaxFiles.
	SetuidScan   time.Time `json:"setuid_scan"`
	SetuidCapped bool      `json:"setuid_capped,omitempty"`
	// Errors are locations that could not be read (permission), for status.
	Errors []string `json:"errors,omitempty"`
}

// FileEntry is one file of a location and its meaningful content.
type FileEntry struct {
	What string `json:"what"`
	Path string `json:"path"` // host path
	// User is the account the location belongs to (a home's owner, a
	// spool crontab's name); empty for system-wide locations.
	User string `json:"user,omitempty"`
	// Vendor marks package-owned unit directories (/lib/systemd/system):
	// only new files there are reported.
	Vendor bool `json:"vendor,omitempty"`
	// Target is where a symlink points (host path), for units enabled by
	// a link in a .wants directory.
	Target string `json:"target,omitempty"`
	// TargetTracked: the link's target is itself in an inventoried unit
	// directory, which reports its content changes; the link only reports
	// being added, removed or repointed.
	TargetTracked bool   `json:"target_tracked,omitempty"`
	Sig           string `json:"sig"`
	Items         []Item `json:"items,omitempty"`
	Truncated     bool   `json:"truncated,omitempty"`
}

// Item is one entry of a file: a cron line, a key, a library, a script
// line, a unit's directives, a setuid file's mode.
type Item struct {
	Key   string            `json:"key"`  // identity, blanks normalised
	Text  string            `json:"text"` // what an operator reads
	Line  int               `json:"line,omitempty"`
	User  string            `json:"user,omitempty"`
	Attrs map[string]string `json:"attrs,omitempty"`
}

func entryKey(what, p string) string { return what + " " + p }

// inventory is one pass over the locations. It records, besides the
// state, what to watch and which notifications matter.
type inventory struct {
	o     Options
	prev  *State
	cur   *State
	users []accounts.User
	// watch lists existing directories to watch; files, dirs and
	// ancestors decide which notifications trigger a new pass.
	watch     map[string]bool
	files     map[string]bool
	dirs      map[string]bool
	ancestors map[string]bool
	// unitRoots are the unit directories walked.
	unitRoots []string
}

// Inventory takes a full inventory below o.Root. prev (may be nil) lets
// unchanged files be reused without reading them; the setuid scan runs
// when scanSetuid is set, and is otherwise carried over from prev.
func Inventory(o Options, prev *State, scanSetuid bool) *State {
	inv := newInventory(o.withDefaults(), prev)
	inv.run(scanSetuid)
	return inv.cur
}

func newInventory(o Options, prev *State) *inventory {
	return &inventory{o: o, prev: prev, cur: &State{Version: stateVersion, Entries: map[string]*FileEntry{}},
		watch: map[string]bool{}, files: map[string]bool{}, dirs: map[string]bool{}, ancestors: map[string]bool{}}
}

func (inv *inventory) run(scanSetuid bool) {
	if data, err := os.ReadFile(inv.host("/etc/passwd")); err == nil {
		inv.users, _ = accounts.ParsePasswd(data)
	}
	inv.interest("/etc/passwd", false) // new homes
	inv.cron()
	inv.systemd()
	inv.file(WhatRCLocal, "/etc/rc.local", "", parseLines)
	inv.dir(WhatInitScript, "/etc/init.d", "", parseLines)
	for _, p := range []string{"/etc/profile", "/etc/bash.bashrc", "/etc/bashrc", "/etc/environment", "/etc/zsh/zshrc"} {
		inv.file(WhatShellProfile, p, "", parseLines)
	}
	inv.dir(WhatShellProfile, "/etc/profile.d", "", parseLines)
	inv.file(WhatLDPreload, "/etc/ld.so.preload", "", parsePreload)
	inv.homes()
	if scanSetuid || inv.prev == nil {
		inv.setuid()
	} else {
		inv.cur.SetuidScan, inv.cur.SetuidCapped = inv.prev.SetuidScan, inv.prev.SetuidCapped
		for k, e := range inv.prev.Entries {
			if e.What == WhatSetuid || e.What == WhatFileCap {
				inv.cur.Entries[k] = e
			}
		}
	}
	for _, e := range inv.cur.Entries {
		if e.What != WhatSystemdUnit || e.Target == "" {
			continue
		}
		for _, r := range inv.unitRoots {
			if strings.HasPrefix(e.Target, r+"/") {
				e.TargetTracked = true
			}
		}
	}
	sort.Strings(inv.cur.Errors)
}

func (inv *inventory) host(p string) string {
	if inv.o.Root == "/" {
		return p
	}
	return filepath.Join(inv.o.Root, p)
}

func (inv *inventory) cron() {
	inv.file(WhatCronLine, "/etc/crontab", "", parseCron(true))
	inv.dir(WhatCronLine, "/etc/cron.d", "", parseCron(true))
	for _, d := range []string{"hourly", "daily", "weekly", "monthly"} {
		inv.dir(WhatCronScript, "/etc/cron."+d, "", parseLines)
	}
	// Debian keeps user crontabs in crontabs/, Red Hat directly in
	// /var/spool/cron; either way the file's name is the user.
	for _, d := range []string{"/var/spool/cron/crontabs", "/var/spool/cron"} {
		inv.interest(d, true)
		for _, name := range inv.list(d) {
			inv.file(WhatCronLine, path.Join(d, name), name, parseCron(false))
		}
	}
}

// list returns the names of the regular files and symlinks in a host
// directory, sorted; editor backups ("~") and package leftovers are
// skipped, hidden files are not (an attacker's ".x" runs too).
func (inv *inventory) list(dir string) []string {
	ents, err := os.ReadDir(inv.host(dir))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			inv.cur.Errors = append(inv.cur.Errors, dir+": "+err.Error())
		}
		return nil
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || strings.HasSuffix(n, "~") || strings.Contains(n, ".dpkg-") || strings.HasSuffix(n, ".swp") {
			continue
		}
		out = append(out, n)
	}
	return out
}

// dir inventories every file of a directory location.
func (inv *inventory) dir(what, dir, user string, parse parser) {
	inv.interest(dir, true)
	for _, name := range inv.list(dir) {
		inv.file(what, path.Join(dir, name), user, parse)
	}
}

// interest records a location the next notifications must cover: its
// directory (or, while it is missing, its nearest existing ancestor) is
// watched, and every ancestor's creation triggers a pass.
func (inv *inventory) interest(p string, isDir bool) {
	if isDir {
		inv.dirs[p] = true
	} else {
		inv.files[p] = true
	}
	d := p
	if !isDir {
		d = path.Dir(p)
	}
	for {
		if fi, err := os.Stat(inv.host(d)); err == nil && fi.IsDir() {
			inv.watch[d] = true
			break
		}
		if d == "/" || d == "." {
			break
		}
		d = path.Dir(d)
	}
	for a := path.Dir(p); a != "/" && a != "."; a = path.Dir(a) {
		inv.ancestors[a] = true
	}
}

// interesting reports whether a notification for host path p (below
// Root) may change the inventory.
func (inv *inventory) interesting(p string) bool {
	return inv.files[p] || inv.dirs[p] || inv.dirs[path.Dir(p)] || inv.ancestors[p]
}

type parser func(data []byte, e *FileEntry)

// maxSymlinks bounds symlink resolution below Root.
const maxSymlinks = 8

// resolve follows symlinks in the last element of host path p below
// Root (absolute targets are taken relative to Root, as they would be
// on the host). It returns the final host path.
func (inv *inventory) resolve(p string) (string, error) {
	for i := 0; i < maxSymlinks; i++ {
		fi, err := os.Lstat(inv.host(p))
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return p, nil
		}
		t, err := os.Readlink(inv.host(p))
		if err != nil {
			return "", err
		}
		if !path.IsAbs(t) {
			t = path.Join(path.Dir(p), t)
		}
		p = path.Clean(t)
	}
	return "", errors.New("too many symlinks")
}

// file inventories one file, reusing the previous pass's result when the
// file's signature did not change.
func (inv *inventory) file(what, p, user string, parse parser) *FileEntry {
	inv.interest(p, false)
	target, err := inv.resolve(p)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			inv.cur.Errors = append(inv.cur.Errors, p+": "+err.Error())
		}
		return nil
	}
	fi, err := os.Stat(inv.host(target))
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	e := &FileEntry{What: what, Path: p, User: user, Sig: accounts.FileSignature(fi)}
	if target != p {
		e.Target = target
		e.Sig += " -> " + target
	}
	key := entryKey(what, p)
	if old := inv.prevEntry(key); old != nil && old.Sig == e.Sig && old.User == user {
		inv.cur.Entries[key] = old
		return old
	}
	f, err := os.Open(inv.host(target))
	if err != nil {
		inv.cur.Errors = append(inv.cur.Errors, p+": "+err.Error())
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(f, inv.o.MaxFileBytes+1))
	f.Close()
	if err != nil {
		inv.cur.Errors = append(inv.cur.Errors, p+": "+err.Error())
		return nil
	}
	if int64(len(data)) > inv.o.MaxFileBytes {
		data, e.Truncated = data[:inv.o.MaxFileBytes], true
	}
	parse(data, e)
	inv.cur.Entries[key] = e
	return e
}

func (inv *inventory) prevEntry(key string) *FileEntry {
	if inv.prev == nil {
		return nil
	}
	return inv.prev.Entries[key]
}

// cronEnvNames are the environment settings that change what a cron job
// runs (the rest — MAILTO, a PATH — are routine edits).
func cronEnvMatters(name string) bool {
	switch name {
	case "BASH_ENV", "ENV", "SHELL", "LD_PRELOAD", "LD_LIBRARY_PATH":
		return true
	}
	return false
}

func parseCron(system bool) parser {
	return func(data []byte, e *FileEntry) {
		entries, _ := ParseCrontab(data, system)
		for _, c := range entries {
			if c.Env != "" && !cronEnvMatters(c.Env) {
				continue
			}
			it := Item{Key: c.Key(), Text: c.Text, Line: c.Line, User: c.User}
			if it.User == "" {
				it.User = e.User
			}
			if c.Env != "" {
				it.Attrs = map[string]string{"env": c.Env}
			} else {
				it.Attrs = map[string]string{"schedule": c.Schedule, "command": c.Command}
			}
			e.Items = append(e.Items, it)
		}
	}
}

// parseLines keeps a script's meaningful lines: not blank, not a comment,
// blanks collapsed in the key so re-indenting is not a change.
func parseLines(data []byte, e *FileEntry) {
	n := 0
	for len(data) > 0 {
		n++
		var l []byte
		if i := strings.IndexByte(string(data), '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			l, data = data, nil
		}
		t := strings.TrimSpace(string(l))
		if t == "" || t[0] == '#' {
			continue
		}
		e.Items = append(e.Items, Item{Key: strings.Join(strings.Fields(t), " "), Text: t, Line: n})
	}
}

// parsePreload reads ld.so.preload: library paths separated by blanks or
// colons.
func parsePreload(data []byte, e *FileEntry) {
	for i, l := range strings.Split(string(data), "\n") {
		if t := strings.TrimSpace(l); t == "" || t[0] == '#' {
			continue
		}
		for _, lib := range strings.FieldsFunc(l, func(r rune) bool { return r == ' ' || r == '\t' || r == ':' }) {
			e.Items = append(e.Items, Item{Key: lib, Text: lib, Line: i + 1})
		}
	}
}

func parseKeys(data []byte, e *FileEntry) {
	keys, _ := ParseAuthorizedKeys(data)
	for _, k := range keys {
		it := Item{Key: k.Key(), Text: k.String(), Line: k.Line, User: e.User,
			Attrs: map[string]string{"type": k.Type, "fingerprint": k.Fingerprint}}
		if len(k.Options) > 0 {
			it.Attrs["options"] = strings.Join(k.Options, ",")
		}
		if c := k.Command(); c != "" {
			it.Attrs["command"] = c
		}
		e.Items = append(e.Items, it)
	}
}

// homes inventories each account's profiles, keys and user units. A home
// shared by several accounts belongs to the first in passwd.
func (inv *inventory) homes() {
	seen := map[string]bool{}
	for _, u := range inv.users {
		h := path.Clean(u.Home)
		if u.Home == "" || h == "/" || h == "/nonexistent" || h == "/dev/null" || !path.IsAbs(h) || seen[h] {
			continue
		}
		if len(seen) >= inv.o.MaxHomes {
			inv.cur.Errors = append(inv.cur.Errors, "more than "+strconv.Itoa(inv.o.MaxHomes)+" homes: the rest are not inventoried")
			return
		}
		seen[h] = true
		for _, f := range inv.o.ProfileFiles {
			inv.file(WhatShellProfile, path.Join(h, f), u.Name, parseLines)
		}
		for _, f := range inv.o.AuthorizedKeysFiles {
			p := strings.NewReplacer("%h", h, "%u", u.Name, "%%", "%").Replace(f)
			if !path.IsAbs(p) {
				p = path.Join(h, p)
			}
			inv.file(WhatAuthorizedKey, p, u.Name, parseKeys)
		}
		inv.unitTree(path.Join(h, ".config/systemd/user"), u.Name, false)
	}
}
