package baseline

import (
	"cmp"
	"errors"
	"regexp"
	"strings"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/webshell"
)

var (
	errInvalidKey = errors.New("invalid key")
	errCounts     = errors.New("error counts above the request count")
)

// persistKey is one persistence entry as the persistence sensor reports
// it: what (cron_line, systemd_unit, authorized_key, ld_preload,
// setuid_file, …), where, and the entry itself (the cron line, the unit's
// ExecStart, the key's fingerprint, the preloaded library, the set-id
// mode). The sensor reports changes only (its start-up inventory is its
// own baseline), so this table holds the entries added or changed while
// the model learned: the deploys' and package updates' routine.
type persistKey struct{ what, path, entry string }

func (a persistKey) cmp(b persistKey) int {
	return cmp.Or(strings.Compare(a.what, b.what), strings.Compare(a.path, b.path), strings.Compare(a.entry, b.entry))
}

// maxEntryLen bounds one stored entry: a long line is identified by its
// beginning (a 4 KB cron line is not routine either way).
const maxEntryLen = 512

// moreLines matches the persistence sensor's "… (3 more lines)" marker.
var moreLines = regexp.MustCompile(`^… \(\d+ more lines\)$`)

// persistKeysOf lists the entries an addition or modification brings: one
// per added line.
func persistKeysOf(ev *event.Event) []persistKey {
	c := ev.Change
	if c == nil || c.Op == "removed" || c.After == "" {
		return nil
	}
	var out []persistKey
	for _, line := range strings.Split(c.After, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || moreLines.MatchString(line) {
			continue
		}
		if len(line) > maxEntryLen {
			line = line[:maxEntryLen]
		}
		out = append(out, persistKey{what: clean(c.What), path: clean(c.Path), entry: clean(line)})
	}
	return out
}

// PersistEntry is one learned persistence entry.
type PersistEntry struct {
	What  string `json:"what"`
	Path  string `json:"path"`
	Entry string `json:"entry"`
	Seen
}

// File content changes the file integrity sensor reports (agent/fim,
// agent/webshell names), and the hash prefix of its After field.
const (
	whatFileCreated = webshell.WhatCreated
	whatFileChanged = webshell.WhatChanged
	hashPrefix      = "sha256:"
)

// fileHashOf returns the path and content hash of a file change, false
// for metadata-only rows, links, deletions and mode or owner changes.
func fileHashOf(ev *event.Event) (string, string, bool) {
	c := ev.Change
	if c == nil || (c.What != whatFileCreated && c.What != whatFileChanged) || !strings.HasPrefix(c.After, hashPrefix) {
		return "", "", false
	}
	h := strings.TrimPrefix(c.After, hashPrefix)
	if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" || c.Path == "" {
		return "", "", false
	}
	return clean(c.Path), h, true
}

// FileHash is one watched file's learned content.
type FileHash struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Seen
}
