package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"
)

// Layout of a config repository (see DESIGN.md, "Config repository").
const (
	policyFile   = "picket.cue"
	whitelistDir = "whitelists"
	hostsDir     = "hosts"
)

// hostName matches #Bootstrap.hostname in policy.cue.
var hostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)

// source is one file's bytes under its repository-relative name.
type source struct {
	name string
	data []byte
}

// repo is a config repository read into memory: loading is then
// independent of where it came from (a directory, a git tree).
type repo struct {
	fleet  []source          // picket.cue (if present), then whitelists/*.cue by name
	hosts  map[string]source // host name -> hosts/<host>.cue
	issues []Issue           // layout problems
}

// readRepo reads the files picket uses and reports files that look like
// configuration but would be silently ignored.
func readRepo(fsys fs.FS) (*repo, error) {
	r := &repo{hosts: map[string]source{}}
	top, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("config repository: %w", err)
	}
	for _, e := range top {
		name := e.Name()
		switch {
		case name == policyFile:
			if e.IsDir() {
				r.issues = append(r.issues, fileIssue(name, "must be a file"))
				continue
			}
			data, err := fs.ReadFile(fsys, name)
			if err != nil {
				return nil, fmt.Errorf("config repository: %w", err)
			}
			r.fleet = append(r.fleet, source{name, data})
		case name == whitelistDir || name == hostsDir:
			if !e.IsDir() {
				r.issues = append(r.issues, fileIssue(name, "must be a directory of .cue files"))
			}
		case strings.HasSuffix(name, ".cue") && !e.IsDir():
			r.issues = append(r.issues, fileIssue(name,
				"not read: only picket.cue, whitelists/*.cue and hosts/<hostname>.cue are configuration"))
		}
	}

	wl, err := readCueDir(fsys, whitelistDir, &r.issues)
	if err != nil {
		return nil, err
	}
	r.fleet = append(r.fleet, wl...)

	hosts, err := readCueDir(fsys, hostsDir, &r.issues)
	if err != nil {
		return nil, err
	}
	for _, h := range hosts {
		name := strings.TrimSuffix(path.Base(h.name), ".cue")
		if !hostName.MatchString(name) {
			// No agent can have this name, so the file would never apply.
			r.issues = append(r.issues, fileIssue(h.name, fmt.Sprintf("%q is not a valid host name (letters, digits, '.', '_', '-')", name)))
			continue
		}
		r.hosts[name] = h
	}
	return r, nil
}

// readCueDir reads dir/*.cue sorted by name. Documentation and dot files
// are left alone; any other file or a subdirectory is an issue, because the
// operator who put it there expects it to be read.
func readCueDir(fsys fs.FS, dir string, issues *[]Issue) ([]source, error) {
	info, err := fs.Stat(fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config repository: %w", err)
	}
	if !info.IsDir() {
		return nil, nil // reported by readRepo
	}
	// Sorted by name, so that issues and merges are in a stable order.
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("config repository: %w", err)
	}
	var out []source
	for _, e := range entries {
		name := e.Name()
		rel := dir + "/" + name
		switch {
		case ignored(name):
		case e.IsDir():
			*issues = append(*issues, fileIssue(rel, "subdirectories are not read: move the .cue files up into "+dir+"/"))
		case !strings.HasSuffix(name, ".cue"):
			*issues = append(*issues, fileIssue(rel, "not a .cue file: only *.cue (plus README, *.md, *.txt and dot files) may be in "+dir+"/"))
		default:
			data, err := fs.ReadFile(fsys, rel)
			if err != nil {
				return nil, fmt.Errorf("config repository: %w", err)
			}
			out = append(out, source{rel, data})
		}
	}
	return out, nil
}

// ignored reports names that are documentation or tooling, never
// configuration.
func ignored(name string) bool {
	lower := strings.ToLower(name)
	return strings.HasPrefix(name, ".") ||
		strings.HasPrefix(lower, "readme") ||
		strings.HasSuffix(lower, ".md") ||
		strings.HasSuffix(lower, ".txt")
}

func fileIssue(name, msg string) Issue {
	return Issue{File: name, Line: 1, Column: 1, Message: msg}
}
