package persist

import (
	"os"
	"path"
	"strings"
)

// unitSuffixes are the unit types that start something. Targets, slices
// and mounts run no command of their own.
func unitFile(name string) bool {
	for _, s := range []string{".service", ".timer", ".socket", ".path"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// maxUnitDepth bounds the walk of a unit tree (unit dir → x.wants or
// x.service.d → files).
const maxUnitDepth = 3

func (inv *inventory) systemd() {
	inv.unitTree("/etc/systemd/system", "", false)
	inv.unitTree("/etc/systemd/user", "", false)
	// Vendor directories: /lib is a link to /usr/lib on merged-/usr
	// systems; one directory is read once.
	var seen []os.FileInfo
	for _, d := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		fi, err := os.Stat(inv.host(d))
		if err != nil {
			inv.interest(d, true)
			continue
		}
		dup := false
		for _, s := range seen {
			dup = dup || os.SameFile(s, fi)
		}
		if dup {
			continue
		}
		seen = append(seen, fi)
		inv.unitTree(d, "", true)
		// Links name either spelling of the vendor directory.
		inv.unitRoots = append(inv.unitRoots, "/usr/lib/systemd/system", "/lib/systemd/system")
	}
}

// unitTree inventories the units, drop-ins and enablement links below a
// unit directory. Vendor trees are read one level deep: their .wants
// links come with the package.
func (inv *inventory) unitTree(dir, user string, vendor bool) {
	inv.unitRoots = append(inv.unitRoots, dir)
	inv.walkUnits(dir, user, vendor, 0)
}

func (inv *inventory) walkUnits(dir, user string, vendor bool, depth int) {
	inv.interest(dir, true)
	ents, err := os.ReadDir(inv.host(dir))
	if err != nil {
		return
	}
	dropin := strings.HasSuffix(dir, ".d")
	for _, e := range ents {
		name := e.Name()
		p := path.Join(dir, name)
		switch {
		case e.IsDir():
			if !vendor && depth < maxUnitDepth && (strings.HasSuffix(name, ".d") || strings.HasSuffix(name, ".wants") ||
				strings.HasSuffix(name, ".requires") || strings.HasSuffix(name, ".upholds")) {
				inv.walkUnits(p, user, vendor, depth+1)
			}
		case dropin && strings.HasSuffix(name, ".conf"), unitFile(name):
			if ent := inv.file(WhatSystemdUnit, p, user, parseUnitEntry); ent != nil {
				ent.Vendor = vendor
			}
		}
	}
}

// parseUnitEntry keeps a unit's directives as one item: the unit is the
// thing added or changed, its ExecStart (and timer, socket, environment)
// lines what the event shows.
func parseUnitEntry(data []byte, e *FileEntry) {
	ds := ParseUnit(data)
	if len(ds) == 0 {
		return
	}
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.String()
	}
	text := strings.Join(lines, "\n")
	it := Item{Key: text, Text: text, Line: ds[0].Line, User: e.User}
	for _, d := range ds {
		if d.Key == "User" {
			it.Attrs = map[string]string{"run_as": d.Value}
		}
	}
	e.Items = []Item{it}
}
