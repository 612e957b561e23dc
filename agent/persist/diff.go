package persist

import (
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/picket-agent/picket/agent/event"
)

// Change operations.
const (
	OpAdded    = "added"
	OpRemoved  = "removed"
	OpModified = "modified"
)

// Bounds of the text an event carries (a dropped 10,000-line script is
// reported, not copied).
const (
	maxEventLines = 20
	maxEventBytes = 2048
)

// Finding is one change between two inventories, ready to become a
// PersistChanged event.
type Finding struct {
	User   string
	Change event.Change
}

type diffMode int

const (
	perItem  diffMode = iota // each item is an entry: cron lines, keys, preloaded libraries
	perFile                  // the file's content is one value: units, set-id modes, capabilities
	perLines                 // a script: report the lines added
)

func modeOf(what string) diffMode {
	switch what {
	case WhatCronLine, WhatAuthorizedKey, WhatLDPreload:
		return perItem
	case WhatSystemdUnit, WhatSetuid, WhatFileCap:
		return perFile
	}
	return perLines
}

// Diff reports what changed from old to cur, ordered by location kind and
// path, then line.
func Diff(old, cur *State) []Finding {
	keys := map[string]bool{}
	for k := range old.Entries {
		keys[k] = true
	}
	for k := range cur.Entries {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	var out []Finding
	for _, k := range sorted {
		o, c := old.Entries[k], cur.Entries[k]
		if o != nil && c != nil && o.Sig == c.Sig && o.User == c.User {
			continue
		}
		ref := c
		if ref == nil {
			ref = o
		}
		switch modeOf(ref.What) {
		case perItem:
			out = append(out, diffItems(o, c)...)
		case perFile:
			if f, ok := diffFile(o, c); ok {
				out = append(out, f)
			}
		default:
			if f, ok := diffLines(o, c); ok {
				out = append(out, f)
			}
		}
	}
	return out
}

func items(e *FileEntry) []Item {
	if e == nil {
		return nil
	}
	return e.Items
}

func diffItems(o, c *FileEntry) []Finding {
	var out []Finding
	had, has := map[string]bool{}, map[string]bool{}
	for _, it := range items(o) {
		had[it.Key] = true
	}
	for _, it := range items(c) {
		has[it.Key] = true
	}
	done := map[string]bool{}
	for _, it := range items(c) {
		if !had[it.Key] && !done[it.Key] {
			done[it.Key] = true
			out = append(out, itemFinding(c, it, OpAdded))
		}
	}
	for _, it := range items(o) {
		if !has[it.Key] && !done[it.Key] {
			done[it.Key] = true
			out = append(out, itemFinding(o, it, OpRemoved))
		}
	}
	return out
}

func itemFinding(e *FileEntry, it Item, op string) Finding {
	attrs := map[string]string{"line": strconv.Itoa(it.Line)}
	for k, v := range it.Attrs {
		attrs[k] = v
	}
	ch := event.Change{What: e.What, Op: op, Path: e.Path, Name: it.User, Attrs: attrs}
	if op == OpRemoved {
		ch.Before = it.Text
	} else {
		ch.After = it.Text
	}
	return Finding{User: it.User, Change: ch}
}

func fileText(e *FileEntry) string {
	if e == nil || len(e.Items) == 0 {
		return ""
	}
	return e.Items[0].Text
}

func diffFile(o, c *FileEntry) (Finding, bool) {
	ot, ct := fileText(o), fileText(c)
	if ot == ct {
		return Finding{}, false
	}
	ref := c
	if ref == nil {
		ref = o
	}
	ch := event.Change{What: ref.What, Path: ref.Path, Attrs: map[string]string{}}
	switch {
	case ot == "":
		ch.Op, ch.After = OpAdded, ct
	case ct == "":
		ch.Op, ch.Before = OpRemoved, ot
	default:
		ch.Op, ch.Before, ch.After = OpModified, ot, ct
	}
	// Package-owned units change with every upgrade; only a new one is
	// news. An enablement link reports being added, removed or
	// repointed; its target's own entry reports content changes.
	if ref.Vendor && (o != nil || ch.Op != OpAdded) {
		return Finding{}, false
	}
	if o != nil && c != nil && c.TargetTracked && o.Target == c.Target {
		return Finding{}, false
	}
	if ref.What == WhatSystemdUnit {
		ch.Name = path.Base(ref.Path)
		if ref.Target != "" {
			ch.Attrs["target"] = ref.Target
		}
		if ref.Vendor {
			ch.Attrs["vendor"] = "true"
		}
		if it := items(ref); len(it) > 0 {
			if u := it[0].Attrs["run_as"]; u != "" {
				ch.Attrs["run_as"] = u
			}
			ch.Attrs["line"] = strconv.Itoa(it[0].Line)
		}
	}
	if ref.User != "" {
		ch.Attrs["user"] = ref.User
	}
	if len(ch.Attrs) == 0 {
		ch.Attrs = nil
	}
	return Finding{User: ref.User, Change: ch}, true
}

func diffLines(o, c *FileEntry) (Finding, bool) {
	count := map[string]int{}
	for _, it := range items(o) {
		count[it.Key]++
	}
	var added []Item
	for _, it := range items(c) {
		if count[it.Key] > 0 {
			count[it.Key]--
			continue
		}
		added = append(added, it)
	}
	count = map[string]int{}
	for _, it := range items(c) {
		count[it.Key]++
	}
	var removed []Item
	for _, it := range items(o) {
		if count[it.Key] > 0 {
			count[it.Key]--
			continue
		}
		removed = append(removed, it)
	}
	if len(added) == 0 && len(removed) == 0 {
		return Finding{}, false
	}
	ref := c
	if ref == nil {
		ref = o
	}
	ch := event.Change{What: ref.What, Path: ref.Path, Name: ref.User, After: joinLines(added), Before: joinLines(removed)}
	switch {
	case o == nil:
		ch.Op = OpAdded
	case len(added) == 0:
		ch.Op = OpRemoved
	default:
		ch.Op = OpModified
	}
	if len(added) > 0 {
		ch.Attrs = map[string]string{"lines": lineNumbers(added)}
	}
	if ref.Truncated {
		if ch.Attrs == nil {
			ch.Attrs = map[string]string{}
		}
		ch.Attrs["truncated"] = "true"
	}
	return Finding{User: ref.User, Change: ch}, true
}

// joinLines renders lines for an event, bounded.
func joinLines(its []Item) string {
	var b strings.Builder
	for i, it := range its {
		if i == maxEventLines || b.Len()+len(it.Text) > maxEventBytes {
			b.WriteString("\n… (" + strconv.Itoa(len(its)-i) + " more lines)")
			break
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(it.Text)
	}
	return b.String()
}

func lineNumbers(its []Item) string {
	var ns []string
	for i, it := range its {
		if i == maxEventLines {
			ns = append(ns, "…")
			break
		}
		ns = append(ns, strconv.Itoa(it.Line))
	}
	return strings.Join(ns, ",")
}
