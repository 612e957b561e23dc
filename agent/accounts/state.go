package accounts

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/picket-agent/picket/agent/event"
)

// Host paths of the files the sensor reads (below Options.Root).
const (
	PathPasswd    = "/etc/passwd"
	PathGroup     = "/etc/group"
	PathShadow    = "/etc/shadow"
	PathSudoers   = "/etc/sudoers"
	PathLoginDefs = "/etc/login.defs"
)

// Change kinds (event.Change.What) of AccountChanged events.
const (
	WhatUID0            = "uid0_account"
	WhatPrivilegedGroup = "privileged_group_member"
	WhatSystemShell     = "login_shell_on_system_account"
	WhatPasswordRemoved = "password_removed"
	WhatSudoNoPasswd    = "sudoers_nopasswd"
	WhatSudoRule        = "sudoers_rule"
	WhatAccountAdded    = "account_added"
	WhatAccountRemoved  = "account_removed"
)

// Change operations.
const (
	OpAdded    = "added"
	OpRemoved  = "removed"
	OpModified = "modified"
)

// stateVersion is bumped when State's meaning changes, so a persisted
// baseline from an older agent is dropped rather than misread.
const stateVersion = 1

// State is the account database the sensor diffs: what the agent keeps
// between two reads (and, through a Store, across restarts). It never
// holds a password hash.
type State struct {
	Version int       `json:"version"`
	Users   []User    `json:"users"`
	Groups  []Group   `json:"groups"`
	Shadow  []Shadow  `json:"shadow"`
	Grants  []Grant   `json:"grants"`
	Defs    LoginDefs `json:"login_defs"`
	// ShadowRead is false when /etc/shadow could not be read (an agent
	// without root): password states are then unknown, not empty.
	ShadowRead bool `json:"shadow_read"`
	// SudoFiles and SudoDirs are the sudoers files read and includedirs,
	// so the sensor knows what to watch.
	SudoFiles []string `json:"sudo_files"`
	SudoDirs  []string `json:"sudo_dirs"`
	// Bad lists unparsable lines ("path:line"), for status.
	Bad []string `json:"bad,omitempty"`
}

// ReadState reads the account database below root. A missing passwd is an
// error (every Linux system has one: the root is wrong); a missing or
// unreadable shadow, group, login.defs or sudoers is tolerated.
func ReadState(root string) (*State, error) {
	st := &State{Version: stateVersion}
	data, err := os.ReadFile(hostPath(root, PathPasswd))
	if err != nil {
		return nil, err
	}
	var bad []int
	st.Users, bad = ParsePasswd(data)
	st.addBad(PathPasswd, bad)
	if data, err = os.ReadFile(hostPath(root, PathGroup)); err == nil {
		st.Groups, bad = ParseGroup(data)
		st.addBad(PathGroup, bad)
	}
	if data, err = os.ReadFile(hostPath(root, PathShadow)); err == nil {
		st.Shadow, bad = ParseShadow(data)
		st.ShadowRead = true
		st.addBad(PathShadow, bad)
		clear(data) // hashes do not outlive the parse
	}
	st.Defs = DefaultLoginDefs()
	if data, err = os.ReadFile(hostPath(root, PathLoginDefs)); err == nil {
		st.Defs = ParseLoginDefs(data)
	}
	sud, err := LoadSudoers(root, PathSudoers)
	if err != nil && !errors.Is(err, os.ErrPermission) {
		return nil, err
	}
	st.Grants = sud.Grants()
	st.SudoFiles, st.SudoDirs = sud.Files, sud.Dirs
	st.Bad = append(st.Bad, sud.Bad...)
	return st, nil
}

func (st *State) addBad(path string, lines []int) {
	for _, n := range lines {
		st.Bad = append(st.Bad, path+":"+strconv.Itoa(n))
	}
}

// Finding is one change between two states: the event.Change and the
// account it concerns, ready to become an AccountChanged event.
type Finding struct {
	User   string
	Change event.Change
	// Line is evidence: the entry as it now reads (a passwd line with any
	// hash redacted, a sudoers rule); never a shadow line.
	Line string
}

// passwdLine renders an entry with its password field reduced to its
// state, for evidence.
func passwdLine(u User) string {
	pw := "x"
	switch u.Password {
	case PasswordEmpty:
		pw = ""
	case PasswordLocked:
		pw = "!"
	case PasswordSet:
		pw = "<hash redacted>"
	}
	return fmt.Sprintf("%s:%s:%d:%d:%s:%s:%s", u.Name, pw, u.UID, u.GID, u.GECOS, u.Home, u.Shell)
}

func userAttrs(u User) map[string]string {
	return map[string]string{"uid": strconv.Itoa(u.UID), "gid": strconv.Itoa(u.GID), "home": u.Home,
		"shell": u.Shell, "line": strconv.Itoa(u.Line)}
}

// effectivePassword is the state that decides a login: passwd's field
// unless it defers to shadow ("x"). ok is false when unknown.
func (st *State) effectivePassword(u User) (PasswordState, string, bool) {
	if u.Password != PasswordShadow {
		return u.Password, PathPasswd, true
	}
	if !st.ShadowRead {
		return "", "", false
	}
	for _, s := range st.Shadow {
		if s.Name == u.Name {
			return s.Password, PathShadow, true
		}
	}
	return "", "", false
}

// Diff reports what changed from old to cur, in a stable order: accounts
// (passwd order), passwords, privileged groups, sudo grants. privileged
// lists the groups whose new members matter.
func Diff(old, cur *State, privileged []string) []Finding {
	var out []Finding
	oldUsers := map[string]User{}
	for _, u := range old.Users {
		oldUsers[u.Name] = u
	}
	curNames := map[string]bool{}
	for _, u := range cur.Users {
		curNames[u.Name] = true
		o, existed := oldUsers[u.Name]
		switch {
		case !existed:
			what := WhatAccountAdded
			if u.UID == 0 {
				what = WhatUID0
			}
			out = append(out, Finding{User: u.Name, Line: passwdLine(u), Change: event.Change{What: what, Op: OpAdded,
				Path: PathPasswd, Name: u.Name, After: passwdLine(u), Attrs: userAttrs(u)}})
		default:
			if o.UID != 0 && u.UID == 0 {
				out = append(out, Finding{User: u.Name, Line: passwdLine(u), Change: event.Change{What: WhatUID0, Op: OpModified,
					Path: PathPasswd, Name: u.Name, Before: passwdLine(o), After: passwdLine(u), Attrs: userAttrs(u)}})
			}
			if cur.Defs.System(u.UID) && nologin(o.Shell) && !nologin(u.Shell) {
				out = append(out, Finding{User: u.Name, Line: passwdLine(u), Change: event.Change{What: WhatSystemShell, Op: OpModified,
					Path: PathPasswd, Name: u.Name, Before: o.Shell, After: u.Shell, Attrs: userAttrs(u)}})
			}
		}
	}
	for _, o := range old.Users {
		if !curNames[o.Name] {
			out = append(out, Finding{User: o.Name, Line: passwdLine(o), Change: event.Change{What: WhatAccountRemoved, Op: OpRemoved,
				Path: PathPasswd, Name: o.Name, Before: passwdLine(o), Attrs: userAttrs(o)}})
		}
	}
	for _, u := range cur.Users {
		now, path, ok := cur.effectivePassword(u)
		if !ok || now != PasswordEmpty {
			continue
		}
		before, op := "none", OpAdded
		if o, existed := oldUsers[u.Name]; existed {
			was, _, known := old.effectivePassword(o)
			if !known || was == PasswordEmpty {
				continue
			}
			before, op = string(was), OpModified
		}
		out = append(out, Finding{User: u.Name, Change: event.Change{What: WhatPasswordRemoved, Op: op,
			Path: path, Name: u.Name, Before: before, After: string(PasswordEmpty)}})
	}
	out = append(out, groupDiff(old, cur, privileged)...)
	out = append(out, grantDiff(old, cur)...)
	return out
}

// members returns, for each privileged group, its members with how they
// are members: listed in /etc/group, or by primary gid in /etc/passwd.
// uid-0 accounts are left out: they are root whatever their groups.
func (st *State) members(privileged []string) map[string]map[string]string {
	out := map[string]map[string]string{}
	uid0 := map[string]bool{}
	for _, u := range st.Users {
		if u.UID == 0 {
			uid0[u.Name] = true
		}
	}
	for _, g := range st.Groups {
		if !slices.Contains(privileged, g.Name) {
			continue
		}
		m := out[g.Name]
		if m == nil {
			m = map[string]string{}
			out[g.Name] = m
		}
		for _, u := range g.Members {
			if !uid0[u] {
				m[u] = PathGroup
			}
		}
		for _, u := range st.Users {
			if u.GID == g.GID && u.UID != 0 {
				if _, ok := m[u.Name]; !ok {
					m[u.Name] = PathPasswd
				}
			}
		}
	}
	return out
}

func groupDiff(old, cur *State, privileged []string) []Finding {
	var out []Finding
	before, after := old.members(privileged), cur.members(privileged)
	gid := map[string]int{}
	for _, g := range cur.Groups {
		gid[g.Name] = g.GID
	}
	for _, g := range privileged {
		var added []string
		for u := range after[g] {
			if _, ok := before[g][u]; !ok {
				added = append(added, u)
			}
		}
		slices.Sort(added)
		for _, u := range added {
			via := after[g][u]
			ch := event.Change{What: WhatPrivilegedGroup, Op: OpAdded, Path: via, Name: u, After: g,
				Attrs: map[string]string{"group": g, "gid": strconv.Itoa(gid[g])}}
			if via == PathPasswd {
				ch.Attrs["via"] = "primary group"
			} else {
				ch.Attrs["via"] = "member list"
			}
			out = append(out, Finding{User: u, Change: ch})
		}
	}
	return out
}

func grantDiff(old, cur *State) []Finding {
	var out []Finding
	oldKeys, curKeys := map[string]bool{}, map[string]bool{}
	for _, g := range old.Grants {
		oldKeys[g.Key()] = true
	}
	for _, g := range cur.Grants {
		curKeys[g.Key()] = true
	}
	seen := map[string]bool{}
	for _, g := range cur.Grants {
		if oldKeys[g.Key()] || seen[g.Key()] {
			continue
		}
		seen[g.Key()] = true
		out = append(out, grantFinding(g, OpAdded))
	}
	for _, g := range old.Grants {
		if curKeys[g.Key()] || seen[g.Key()] {
			continue
		}
		seen[g.Key()] = true
		out = append(out, grantFinding(g, OpRemoved))
	}
	return out
}

func grantFinding(g Grant, op string) Finding {
	what := WhatSudoRule
	if g.NoPasswd {
		what = WhatSudoNoPasswd
	}
	ch := event.Change{What: what, Op: op, Path: g.File, Name: g.Principal,
		Attrs: map[string]string{"line": strconv.Itoa(g.Line), "rule": g.Text, "runas": g.RunAs, "commands": g.Commands}}
	if g.NoAuthDefault {
		ch.Attrs["nopasswd_by"] = "Defaults !authenticate"
	}
	if op == OpAdded {
		ch.After = g.String()
	} else {
		ch.Before = g.String()
	}
	f := Finding{Change: ch, Line: g.Text}
	if plainUser(g.Principal) {
		f.User = g.Principal
	}
	return f
}

// plainUser reports a principal that is one account's name (not a group,
// uid, netgroup, alias or ALL).
func plainUser(p string) bool {
	return p != "" && p != "ALL" && !strings.ContainsAny(p[:1], "%#+!")
}
