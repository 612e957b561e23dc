package persist

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/picket-agent/picket/agent/accounts"
)

// setuid scans the system binary directories for setuid/setgid files and
// file capabilities. It is bounded by SetuidMaxFiles entries (the state
// says when it stopped early) and does not follow symlinks or leave the
// directories' filesystems.
func (inv *inventory) setuid() {
	inv.cur.SetuidScan = time.Now()
	names := map[int]string{}
	for _, u := range inv.users {
		if _, ok := names[u.UID]; !ok {
			names[u.UID] = u.Name
		}
	}
	groups := map[int]string{}
	if data, err := os.ReadFile(inv.host("/etc/group")); err == nil {
		gs, _ := accounts.ParseGroup(data)
		for _, g := range gs {
			if _, ok := groups[g.GID]; !ok {
				groups[g.GID] = g.Name
			}
		}
	}
	name := func(m map[int]string, id uint32) string {
		if n, ok := m[int(id)]; ok {
			return n
		}
		return strconv.FormatUint(uint64(id), 10)
	}
	count := 0
	var seen []os.FileInfo
	for _, d := range inv.o.SetuidPaths {
		real, err := inv.resolve(d)
		if err != nil {
			continue
		}
		top, err := os.Stat(inv.host(real))
		if err != nil || !top.IsDir() {
			continue
		}
		dup := false
		for _, s := range seen {
			dup = dup || os.SameFile(s, top)
		}
		if dup {
			continue // /bin → usr/bin
		}
		seen = append(seen, top)
		dev := uint64(0)
		if st, ok := top.Sys().(*syscall.Stat_t); ok {
			dev = uint64(st.Dev)
		}
		err = filepath.WalkDir(inv.host(real), func(hp string, de fs.DirEntry, err error) error {
			if err != nil {
				return nil // unreadable subtree: skip it, keep scanning
			}
			count++
			if count > inv.o.SetuidMaxFiles {
				inv.cur.SetuidCapped = true
				return fs.SkipAll
			}
			fi, err := de.Info()
			if err != nil {
				return nil
			}
			if de.IsDir() {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok && dev != 0 && uint64(st.Dev) != dev {
					return fs.SkipDir
				}
				return nil
			}
			if !fi.Mode().IsRegular() {
				return nil
			}
			rel, _ := filepath.Rel(inv.host(real), hp)
			p := path.Join(d, filepath.ToSlash(rel))
			var uid, gid uint32
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				uid, gid = st.Uid, st.Gid
			}
			if fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
				text := fmt.Sprintf("mode %04o owner %s:%s", unixMode(fi.Mode()), name(names, uid), name(groups, gid))
				inv.cur.Entries[entryKey(WhatSetuid, p)] = &FileEntry{What: WhatSetuid, Path: p, Sig: text,
					Items: []Item{{Key: text, Text: text}}}
			}
			raw, err := fileCapabilities(hp)
			if err != nil && !errors.Is(err, fs.ErrPermission) {
				return nil
			}
			if raw != nil {
				caps, err := DecodeCapabilities(raw)
				if err != nil {
					caps = "undecodable: " + err.Error()
				}
				inv.cur.Entries[entryKey(WhatFileCap, p)] = &FileEntry{What: WhatFileCap, Path: p, Sig: caps,
					Items: []Item{{Key: caps, Text: caps}}}
			}
			return nil
		})
		if err != nil {
			inv.cur.Errors = append(inv.cur.Errors, d+": "+err.Error())
		}
	}
}

// unixMode renders the permission and set-id bits as chmod's octal.
func unixMode(m fs.FileMode) uint32 {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}
