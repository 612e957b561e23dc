package accounts

import (
	"path/filepath"
	"strconv"
	"strings"
)

// Grant is what one rule gives one principal: the answer to "who can
// sudo, as whom, what, and without a password". Aliases are expanded, so
// a member added to a User_Alias, or ALL added to a Cmnd_Alias, changes
// the grants even though no rule line changed.
type Grant struct {
	// Principal is a user name, "%group", "%#gid", "#uid", "+netgroup" or
	// "ALL".
	Principal string `json:"principal"`
	Hosts     string `json:"hosts"`
	RunAs     string `json:"runas"`
	NoPasswd  bool   `json:"nopasswd"`
	// NoAuthDefault: NOPASSWD comes from `Defaults !authenticate`, not
	// from the rule's tag.
	NoAuthDefault bool   `json:"noauth_default,omitempty"`
	Commands      string `json:"commands"`
	File          string `json:"file"`
	Line          int    `json:"line"`
	Text          string `json:"text"` // the rule's line as written
}

// String renders the grant in sudoers syntax, one principal:
// `alice ALL=(ALL:ALL) NOPASSWD: ALL`.
func (g Grant) String() string {
	tag := ""
	if g.NoPasswd {
		tag = "NOPASSWD: "
	}
	return g.Principal + " " + g.Hosts + "=(" + g.RunAs + ") " + tag + g.Commands
}

// Key identifies a grant regardless of where it is written, so moving a
// rule between files or lines is not a change.
func (g Grant) Key() string {
	return g.String()
}

// Alias expansion bounds: aliases may name aliases, and a malformed (or
// hostile) policy may loop or fan out; the sensor must not hang on it.
const (
	maxAliasDepth  = 16
	maxAliasOutput = 1024
	maxAliasSteps  = 100000
)

func (s *Sudoers) expand(kind string, items []string, depth int, keepNegated bool) []string {
	var out []string
	steps := 0
	s.expandInto(&out, &steps, kind, items, depth, keepNegated, map[string]bool{})
	return out
}

func (s *Sudoers) expandInto(out *[]string, steps *int, kind string, items []string, depth int, keepNegated bool, active map[string]bool) {
	for _, it := range items {
		*steps++
		if len(*out) >= maxAliasOutput || *steps > maxAliasSteps {
			return
		}
		neg := strings.HasPrefix(it, "!")
		name := strings.TrimLeft(it, "! ")
		if m, ok := s.Aliases[kind+" "+name]; ok {
			if neg {
				if keepNegated {
					*out = append(*out, "!"+name)
				}
				continue
			}
			if active[name] || depth >= maxAliasDepth {
				continue // a loop: sudo rejects it, the agent just stops
			}
			active[name] = true
			s.expandInto(out, steps, kind, m, depth+1, keepNegated, active)
			delete(active, name)
			continue
		}
		if neg && !keepNegated {
			continue
		}
		*out = append(*out, it)
	}
}

// Grants expands every rule into one grant per principal, in policy
// order.
func (s *Sudoers) Grants() []Grant {
	var out []Grant
	for _, r := range s.Rules {
		hosts := strings.Join(s.expand("Host_Alias", r.Hosts, 0, true), ",")
		runas := r.RunAs
		if u, g, ok := strings.Cut(runas, ":"); ok {
			runas = strings.Join(s.expand("Runas_Alias", strings.Split(u, ","), 0, true), ",") + ":" + g
		} else {
			runas = strings.Join(s.expand("Runas_Alias", strings.Split(runas, ","), 0, true), ",")
		}
		cmds := strings.Join(s.expand("Cmnd_Alias", r.Commands, 0, true), ", ")
		for _, p := range s.expand("User_Alias", r.Users, 0, false) {
			g := Grant{Principal: p, Hosts: hosts, RunAs: runas, NoPasswd: r.NoPasswd, Commands: cmds,
				File: r.File, Line: r.Line, Text: r.Text}
			if !g.NoPasswd && s.noAuth(p) {
				g.NoPasswd, g.NoAuthDefault = true, true
			}
			out = append(out, g)
		}
	}
	return out
}

func (s *Sudoers) noAuth(principal string) bool {
	for _, l := range s.NoAuth {
		for _, u := range s.expand("User_Alias", l, 0, false) {
			if u == "ALL" || u == principal {
				return true
			}
		}
	}
	return false
}

// Access is what one user may do through sudo.
type Access struct {
	User     string
	NoPasswd bool    // at least one grant needs no password
	Grants   []Grant // the grants that match the user
}

// Who answers "who can sudo, and who without a password" for the local
// users, resolving %group through /etc/group and primary groups.
// Netgroups and non-Unix groups (%:name) are not resolved.
func Who(grants []Grant, users []User, groups []Group) []Access {
	gidName := map[int]string{}
	members := map[string]map[string]bool{}
	for _, g := range groups {
		gidName[g.GID] = g.Name
		m := members[g.Name]
		if m == nil {
			m = map[string]bool{}
			members[g.Name] = m
		}
		for _, u := range g.Members {
			m[u] = true
		}
	}
	var out []Access
	for _, u := range users {
		a := Access{User: u.Name}
		for _, g := range grants {
			if principalMatches(g.Principal, u, gidName, members) {
				a.Grants = append(a.Grants, g)
				a.NoPasswd = a.NoPasswd || g.NoPasswd
			}
		}
		if len(a.Grants) > 0 {
			out = append(out, a)
		}
	}
	return out
}

func principalMatches(p string, u User, gidName map[int]string, members map[string]map[string]bool) bool {
	switch {
	case p == "ALL" || p == u.Name:
		return true
	case strings.HasPrefix(p, "#"):
		return p[1:] == strconv.Itoa(u.UID)
	case strings.HasPrefix(p, "%#"):
		gid, err := strconv.Atoi(p[2:])
		return err == nil && (gid == u.GID || members[gidName[gid]][u.Name])
	case strings.HasPrefix(p, "%") && !strings.HasPrefix(p, "%:"):
		g := p[1:]
		return gidName[u.GID] == g || members[g][u.Name]
	}
	return false
}

// hostPath maps a host path ("/etc/passwd") below root.
func hostPath(root, p string) string {
	if root == "" || root == "/" {
		return p
	}
	return filepath.Join(root, p)
}

func itoa(n int) string { return strconv.Itoa(n) }
