// Package procname recognises processes by name and lineage: configured
// name lists (web servers, database servers, shells, network tools...),
// the ordinary session at the top of a process tree (init, sshd, tmux,
// cron, login shells), and the known runtimes that run from a memfd (runc).
// The process and network detectors use it, so "php-fpm*" means the same
// thing everywhere.
package procname

import (
	"path"
	"strings"
)

// Names is a list of process names with shell wildcards ("php-fpm*").
type Names []string

// Match reports whether a process matches, on its comm and on its
// executable's base name: a binary renamed or symlinked as "httpd" still
// matches "httpd", and so does a copy of nginx renamed to something else
// whose comm was set by the attacker.
func (n Names) Match(comm, exe string) bool {
	base := path.Base(exe)
	for _, pat := range n {
		if glob(pat, comm) || (exe != "" && glob(pat, base)) {
			return true
		}
	}
	return false
}

func glob(pat, s string) bool {
	if s == "" {
		return false
	}
	if !strings.ContainsAny(pat, "*?[") {
		return pat == s
	}
	ok, err := path.Match(pat, s)
	return err == nil && ok
}
