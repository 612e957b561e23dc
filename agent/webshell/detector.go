package webshell

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

// Rule ids (a public contract, like every rule id).
const (
	RuleWebshell = "file.webshell"
	RuleChanged  = "file.changed"
)

// Change.What values of file integrity events, and the attributes the
// scanner (agent/fim) sets on them. Defined here, beside their consumer,
// because the scanner imports this package for Classify.
const (
	WhatCreated = "file_created"
	WhatChanged = "file_modified"
	WhatDeleted = "file_deleted"
	WhatMode    = "file_mode"
	WhatOwner   = "file_owner"

	AttrOwner  = "owner" // owner's user name (or uid when unknown)
	AttrUID    = "uid"   // owner's uid
	AttrGroup  = "group" // group name (or gid)
	AttrMode   = "mode"  // permission bits, octal
	AttrSize   = "size"  // bytes
	AttrScore  = "webshell_score"
	AttrTraits = "webshell_traits" // comma-separated, sorted
	AttrVia    = "via"             // "scan" or "inotify": how the change was found
)

// DefaultWebRoots are the document roots of Debian/RHEL web servers.
func DefaultWebRoots() []string { return []string{"/var/www", "/srv/www", "/usr/share/nginx/html"} }

// DefaultWebUsers are the accounts web servers and PHP-FPM run as on
// Debian (www-data), RHEL (apache, nginx) and Arch (http).
func DefaultWebUsers() []string { return []string{"www-data", "nginx", "apache", "http"} }

// DefaultWatched are the prefixes whose changes are worth a low-weight
// file.changed signal: configuration and the startup locations.
func DefaultWatched() []string {
	return []string{"/etc", "/var/spool/cron", "/usr/lib/systemd/system", "/lib/systemd/system", "/usr/local/lib/systemd/system", "/root", "/home"}
}

// Config configures the Detector; zero fields take the defaults.
type Config struct {
	WebRoots       []string
	WebUsers       []string
	Watched        []string
	WebshellWeight float64 // default 70
	ChangedWeight  float64 // default 10
}

// Detector turns file integrity events into signals:
//   - a script created or modified in a web root is file.webshell when its
//     content scored at least Threshold or it is owned by a web server
//     account (a web server writing a script is how shells are dropped:
//     inotify cannot name the writing process, its owner is the trace left);
//   - any other change under the watched prefixes is file.changed.
//
// It keeps no state: everything is in the event.
type Detector struct {
	cfg Config
}

// NewDetector applies the defaults to cfg.
func NewDetector(cfg Config) *Detector {
	if cfg.WebRoots == nil {
		cfg.WebRoots = DefaultWebRoots()
	}
	if cfg.WebUsers == nil {
		cfg.WebUsers = DefaultWebUsers()
	}
	if cfg.Watched == nil {
		cfg.Watched = DefaultWatched()
	}
	if cfg.WebshellWeight == 0 {
		cfg.WebshellWeight = 70
	}
	if cfg.ChangedWeight == 0 {
		cfg.ChangedWeight = 10
	}
	return &Detector{cfg: cfg}
}

// under reports whether p is one of the prefixes or below one.
func under(p string, prefixes []string) bool {
	for _, r := range prefixes {
		r = strings.TrimRight(r, "/")
		if p == r || strings.HasPrefix(p, r+"/") || r == "" {
			return true
		}
	}
	return false
}

// Observe implements the detector interface of agent/detect.
func (d *Detector) Observe(ev *event.Event, emit func(signal.Signal)) {
	if ev.Kind != event.FileChanged || ev.Change == nil {
		return
	}
	c := ev.Change
	owner := c.Attrs[AttrOwner]
	uid := c.Attrs[AttrUID]
	if (c.What == WhatCreated || c.What == WhatChanged) && IsScript(c.Path) && under(c.Path, d.cfg.WebRoots) {
		score, _ := strconv.ParseFloat(c.Attrs[AttrScore], 64)
		traits := c.Attrs[AttrTraits]
		byContent := score >= Threshold
		byOwner := owner != "" && d.isWebUser(owner)
		if byContent || byOwner {
			verb := "new"
			if c.What == WhatChanged {
				verb = "modified"
			}
			var why []string
			if byContent {
				why = append(why, fmt.Sprintf("web shell traits (score %.2f): %s", score, traits))
			} else if traits != "" {
				why = append(why, fmt.Sprintf("weak traits (score %.2f): %s", score, traits))
			}
			if byOwner {
				why = append(why, fmt.Sprintf("written as web server user %s (uid %s)", owner, uid))
			} else {
				why = append(why, fmt.Sprintf("owner %s (uid %s)", owner, uid))
			}
			d.emit(ev, emit, RuleWebshell, d.cfg.WebshellWeight, owner, uid,
				fmt.Sprintf("%s script in web root %s: %s", verb, c.Path, strings.Join(why, "; ")))
			return
		}
	}
	if !under(c.Path, d.cfg.Watched) {
		return
	}
	var detail string
	switch c.What {
	case WhatCreated:
		detail = "created"
	case WhatChanged:
		detail = "content changed"
	case WhatDeleted:
		detail = "deleted"
	case WhatMode:
		detail = fmt.Sprintf("mode %s → %s", c.Before, c.After)
	case WhatOwner:
		detail = fmt.Sprintf("owner %s → %s", c.Before, c.After)
	default:
		detail = c.What
	}
	reason := fmt.Sprintf("%s %s", c.Path, detail)
	if owner != "" && c.What != WhatOwner && c.What != WhatDeleted {
		reason += fmt.Sprintf(" (owner %s)", owner)
	}
	d.emit(ev, emit, RuleChanged, d.cfg.ChangedWeight, owner, uid, reason)
}

func (d *Detector) isWebUser(owner string) bool {
	for _, u := range d.cfg.WebUsers {
		if u == owner {
			return true
		}
	}
	return false
}

func (d *Detector) emit(ev *event.Event, emit func(signal.Signal), rule string, w float64, owner, uid, reason string) {
	ents := []signal.Entity{{Kind: signal.File, Value: ev.Change.Path}}
	// Root owns most of /etc: keyed on it, every change would join one
	// incident (the process detector makes the same choice).
	if owner != "" && owner != "root" && uid != "0" {
		ents = append(ents, signal.Entity{Kind: signal.User, Value: owner})
	}
	emit(signal.Signal{Time: ev.Time, Rule: rule, Stage: signal.Persistence, Weight: w, Entities: ents,
		Reason: reason, Evidence: []event.Event{*ev}, Subject: ev.Change.What})
}
