package schema

import (
	"fmt"
	"io/fs"
	"os"
	"sort"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/token"
)

// Default returns the embedded default policy: what an empty config
// repository means, and what the agent runs before it has ever verified a
// config.
func Default() (*Policy, error) {
	c, err := compile()
	if err != nil {
		return nil, err
	}
	p, issues := c.policy(nil)
	if err := asError(issues); err != nil {
		return nil, fmt.Errorf("embedded default policy: %w", err)
	}
	return p, nil
}

// LoadDir is LoadFS on a directory.
func LoadDir(dir, host string) (*Policy, error) {
	return LoadFS(os.DirFS(dir), host)
}

// LoadFS loads the config repository at the root of fsys as the policy of
// host: picket.cue and whitelists/*.cue unified with the schema, then
// hosts/<host>.cue (if host is not "" and the file exists) laid over it,
// and the result validated. Any problem in a file that is read, or any
// stray file where configuration is expected, makes the whole repository
// invalid: the error is a *ValidationError. Other errors (unreadable
// files) are returned as they are.
func LoadFS(fsys fs.FS, host string) (*Policy, error) {
	r, err := readRepo(fsys)
	if err != nil {
		return nil, err
	}
	c, err := compile()
	if err != nil {
		return nil, err
	}
	var hs *source
	if h, ok := r.hosts[host]; ok && host != "" {
		hs = &h
	}
	p, issues := c.load(r, hs)
	if err := asError(append(r.issues, issues...)); err != nil {
		return nil, err
	}
	return p, nil
}

// ValidateDir is `picket validate DIR [--host NAME]`. With a host it checks
// what LoadDir(dir, host) would load. Without one it checks the fleet
// policy and every hosts/*.cue merged for its host, so one run covers
// every host the repository configures.
func ValidateDir(dir, host string) error {
	return validateFS(os.DirFS(dir), host)
}

func validateFS(fsys fs.FS, host string) error {
	r, err := readRepo(fsys)
	if err != nil {
		return err
	}
	c, err := compile()
	if err != nil {
		return err
	}
	issues := r.issues
	if host != "" {
		var hs *source
		if h, ok := r.hosts[host]; ok {
			hs = &h
		}
		_, is := c.load(r, hs)
		return asError(append(issues, is...))
	}
	_, is := c.load(r, nil)
	issues = append(issues, is...)
	names := make([]string, 0, len(r.hosts))
	for name := range r.hosts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		h := r.hosts[name]
		// Fleet issues come back once per host; asError drops the copies.
		_, is := c.load(r, &h)
		issues = append(issues, is...)
	}
	return asError(issues)
}

// load merges the fleet files and, if host is not nil, its override, and
// returns the validated policy or the issues.
func (c *compiled) load(r *repo, host *source) (*Policy, []Issue) {
	var issues []Issue
	// Parsed afresh on every call: pruning for a host edits the syntax.
	fleet := make([]*ast.File, 0, len(r.fleet))
	for _, s := range r.fleet {
		f, is := parseFile(s.name, s.data)
		issues = append(issues, is...)
		fleet = append(fleet, f)
	}
	var hostFile *userFile
	if host != nil {
		f, is := parseFile(host.name, host.data)
		issues = append(issues, is...)
		if f != nil {
			hf, is := c.build(host.name, f)
			issues = append(issues, is...)
			hostFile = &hf
		}
	}
	if len(issues) > 0 {
		return nil, issues
	}

	var leaves map[string]bool
	if hostFile != nil {
		leaves = overrideLeaves(hostFile.value)
	}
	files := make([]userFile, 0, len(fleet)+1)
	for i, f := range fleet {
		prune(f, leaves)
		uf, is := c.build(r.fleet[i].name, f)
		issues = append(issues, is...)
		files = append(files, uf)
	}
	if len(issues) > 0 {
		return nil, issues
	}
	if hostFile != nil {
		files = append(files, *hostFile)
	}
	return c.policy(files)
}

// policy validates files (later files take precedence for positions) as a
// #Policy, then applies the rules checked in Go.
func (c *compiled) policy(files []userFile) (*Policy, []Issue) {
	v, issues := c.evaluate("Policy", files)
	if len(issues) > 0 {
		return nil, issues
	}
	var p Policy
	if err := v.Decode(&p); err != nil {
		// The schema admits only what the types can hold; reaching this
		// is a bug, reported where an operator will see it.
		return nil, plainIssues(err, firstName(files))
	}
	for _, vi := range policyRules(&p) {
		issues = append(issues, locate(files, vi))
	}
	if len(issues) > 0 {
		return nil, issues
	}
	return &p, nil
}

// locate places a violation at the first candidate path a file sets,
// looking at the host override first since its values win.
func locate(files []userFile, vi violation) Issue {
	is := Issue{Path: pathString(vi.paths[0]), Message: vi.msg}
	for _, p := range vi.paths {
		for i := len(files) - 1; i >= 0; i-- {
			v := files[i].value.LookupPath(cuePath(p))
			if pos := valuePos(v); v.Exists() && pos.IsValid() {
				is.File, is.Line, is.Column = pos.Filename(), pos.Line(), pos.Column()
				return is
			}
		}
	}
	// Only defaults are involved: the embedded policy itself is wrong.
	is.File, is.Line, is.Column = schemaFile, 1, 1
	return is
}

// valuePos is where a field's value starts, like the positions CUE gives
// its own errors; Pos() would be the label's.
func valuePos(v cue.Value) token.Pos {
	if f, ok := v.Source().(*ast.Field); ok && f.Value != nil && f.Value.Pos().IsValid() {
		return f.Value.Pos()
	}
	return v.Pos()
}

func firstName(files []userFile) string {
	if len(files) == 0 {
		return schemaFile
	}
	return files[0].name
}
