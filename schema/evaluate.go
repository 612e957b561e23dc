package schema

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
)

// userFile is one configuration file compiled on its own: files of a
// repository are independent documents joined by unification, so a file
// cannot refer to another file's fields.
type userFile struct {
	name  string
	value cue.Value
}

// parseFile parses one file; syntax errors come back as issues.
func parseFile(name string, src []byte) (*ast.File, []Issue) {
	f, err := parser.ParseFile(name, src, parser.ParseComments)
	if err != nil {
		return nil, plainIssues(err, name)
	}
	if issues := dataOnly(f); len(issues) > 0 {
		return nil, issues
	}
	return f, nil
}

// build compiles one parsed file; unresolved references and conflicts
// inside the file come back as issues.
func (c *compiled) build(name string, f *ast.File) (userFile, []Issue) {
	v := c.ctx.BuildFile(f)
	if err := v.Err(); err != nil {
		return userFile{}, plainIssues(err, name)
	}
	if k := v.IncompleteKind(); k != cue.StructKind {
		// Unifying a list or a string with the schema prints the whole
		// schema in the error; say what is wrong instead.
		is := issueAt(v.Pos(), "", fmt.Sprintf("the file is a %v; it must contain fields (name: value)", k))
		if is.File == "" {
			is.File, is.Line, is.Column = name, 1, 1
		}
		return userFile{}, []Issue{is}
	}
	return userFile{name: name, value: v}, nil
}

// plainIssues converts errors that are not about the schema (syntax,
// unresolved references) to issues, falling back to the file name.
func plainIssues(err error, name string) []Issue {
	var issues []Issue
	for _, e := range cueerrors.Errors(err) {
		is := issueAt(userPos(e), pathString(e.Path()), errMsg(e))
		if is.File == "" {
			is.File, is.Line, is.Column = name, 1, 1
		}
		issues = append(issues, is)
	}
	return issues
}

// evaluate unifies the files with the definition and returns the result
// (valid only if there are no issues).
func (c *compiled) evaluate(def string, files []userFile) (cue.Value, []Issue) {
	v := c.def(def, false)
	for _, f := range files {
		v = v.Unify(f.value)
	}
	issues := unknownFields(c.def(def, false), files)
	if err := v.Validate(cue.Concrete(true)); err != nil {
		issues = append(issues, c.explain(def, files, err, issues)...)
	}
	return v, issues
}

// explain turns the CUE errors of the strict schema into issues. Where the
// default-free schema has an error at a related path, its message is used
// instead: it does not carry the default branch's noise.
func (c *compiled) explain(def string, files []userFile, err error, known []Issue) []Issue {
	strictErrs := cueerrors.Errors(err)
	failing := make([][]string, 0, len(strictErrs))
	for _, e := range strictErrs {
		failing = append(failing, trimDef(e.Path()))
	}
	pv := c.def(def, true)
	for _, f := range files {
		pv = pv.Unify(f.value)
	}
	var chosen []cueerrors.Error
	explained := make([]bool, len(failing))
	for _, e := range cueerrors.Errors(pv.Validate()) {
		p := trimDef(e.Path())
		used := false
		for i, fp := range failing {
			if related(p, fp) {
				explained[i], used = true, true
			}
		}
		if used {
			chosen = append(chosen, e)
		}
	}
	for i, e := range strictErrs {
		if !explained[i] {
			chosen = append(chosen, e)
		}
	}

	// A closed-struct error duplicates what unknownFields reported better.
	at := map[string]bool{}
	for _, is := range known {
		at[fmt.Sprintf("%s:%d:%d", is.File, is.Line, is.Column)] = true
	}

	type group struct {
		path   []string
		errs   []cueerrors.Error
		header bool
	}
	var order []string
	groups := map[string]*group{}
	for _, e := range chosen {
		p := trimDef(e.Path())
		key := strings.Join(p, "\x00")
		g := groups[key]
		if g == nil {
			g = &group{path: p}
			groups[key] = g
			order = append(order, key)
		}
		if emptyDisjunction.MatchString(errMsg(e)) {
			g.header = true
			continue
		}
		g.errs = append(g.errs, e)
	}

	var issues []Issue
	for _, key := range order {
		g := groups[key]
		if len(g.errs) == 0 {
			continue
		}
		path := pathString(g.path)
		if g.header && allConflicts(g.errs) {
			// An enumeration: say what is allowed rather than listing
			// one conflict per alternative.
			issues = append(issues, issueAt(posIn(files, g.errs[0], g.path), path, c.enumMessage(def, g.path, files)))
			continue
		}
		for _, e := range g.errs {
			pos := posIn(files, e, g.path)
			is := issueAt(pos, path, errMsg(e)+alsoSet(e, pos))
			if strings.HasPrefix(is.Message, "field not allowed") &&
				at[fmt.Sprintf("%s:%d:%d", is.File, is.Line, is.Column)] {
				continue
			}
			issues = append(issues, is)
		}
	}
	return issues
}

var mismatch = regexp.MustCompile(`^conflicting values (.+) and (.+) \(mismatched types (\S+) and (\S+)\)$`)

const maxMsg = 300

func isTypeName(s string) bool {
	switch s {
	case "int", "float", "number", "string", "bool", "bytes", "list", "struct", "null":
		return true
	}
	return false
}

var emptyDisjunction = regexp.MustCompile(`^\d+ errors in empty disjunction`)

func allConflicts(errs []cueerrors.Error) bool {
	for _, e := range errs {
		if !strings.HasPrefix(errMsg(e), "conflicting values") {
			return false
		}
	}
	return true
}

// enumMessage says which value was given and which are allowed.
func (c *compiled) enumMessage(def string, path []string, files []userFile) string {
	allowed := []string{}
	op, args := c.def(def, true).LookupPath(cuePath(path)).Expr()
	if op == cue.OrOp {
		for _, a := range args {
			allowed = append(allowed, fmt.Sprint(a))
		}
	}
	got := "this value"
	for i := len(files) - 1; i >= 0; i-- {
		if v := files[i].value.LookupPath(cuePath(path)); v.Exists() {
			got = fmt.Sprint(v)
			break
		}
	}
	if len(allowed) == 0 {
		return got + " is not allowed"
	}
	return got + " is not allowed; use one of " + strings.Join(allowed, ", ")
}

// unknownFields reports every field of the files that the closed schema
// does not define. CUE reports these too, but not all of them when other
// errors are present, and its message ("field not allowed") does not say
// what to check.
func unknownFields(schema cue.Value, files []userFile) []Issue {
	var issues []Issue
	var walk func(s, v cue.Value, path []string)
	walk = func(s, v cue.Value, path []string) {
		it, err := v.Fields()
		if err != nil {
			return
		}
		for it.Next() {
			sel := it.Selector()
			p := append(path[:len(path):len(path)], sel.Unquoted())
			if !s.Allows(sel) {
				issues = append(issues, issueAt(it.Value().Pos(), pathString(p),
					"unknown field (not in the schema: check the spelling and the nesting)"))
				continue
			}
			cs := s.LookupPath(cue.MakePath(sel))
			if !cs.Exists() {
				cs = s.LookupPath(cue.MakePath(cue.AnyString))
			}
			if cs.Exists() && cs.IncompleteKind() == cue.StructKind && it.Value().IncompleteKind() == cue.StructKind {
				walk(cs, it.Value(), p)
			}
		}
	}
	for _, f := range files {
		walk(schema, f.value, nil)
	}
	return issues
}

// posIn is the error's position in a user file or, for errors CUE places
// in the schema (a required field that is missing), the position of the
// closest enclosing field a file sets.
func posIn(files []userFile, e cueerrors.Error, path []string) token.Pos {
	if p := userPos(e); p.IsValid() && p.Filename() != schemaFile {
		return p
	}
	for n := len(path); n > 0; n-- {
		for i := len(files) - 1; i >= 0; i-- {
			v := files[i].value.LookupPath(cuePath(path[:n]))
			if v.Exists() && v.Pos().IsValid() {
				return v.Pos()
			}
		}
	}
	return userPos(e)
}

// alsoSet names the other user-file positions of a conflict: when two
// files set the same field, the operator needs both.
func alsoSet(e cueerrors.Error, reported token.Pos) string {
	var others []string
	for _, p := range e.InputPositions() {
		if p.IsValid() && p.Filename() != schemaFile && p != reported {
			loc := fmt.Sprintf("%s:%d:%d", p.Filename(), p.Line(), p.Column())
			if !slices.Contains(others, loc) {
				others = append(others, loc)
			}
		}
	}
	if len(others) == 0 {
		return ""
	}
	return " (also set at " + strings.Join(others, ", ") + ")"
}

// related reports whether two error paths are about the same value: one
// contains the other, or both are elements of the same list (a list
// default fails at element 0 while the user's mistake is at element 1).
func related(a, b []string) bool {
	a, b = trimIndex(a), trimIndex(b)
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	return hasPrefix(a, b) || hasPrefix(b, a)
}

func trimIndex(p []string) []string {
	for len(p) > 0 {
		if _, err := strconv.Atoi(p[len(p)-1]); err != nil {
			break
		}
		p = p[:len(p)-1]
	}
	return p
}

// userPos picks the position of an error in a user file; the schema's own
// positions say nothing to an operator.
func userPos(e cueerrors.Error) token.Pos {
	cands := append([]token.Pos{e.Position()}, e.InputPositions()...)
	for _, p := range cands {
		if p.IsValid() && p.Filename() != schemaFile {
			return p
		}
	}
	for _, p := range cands {
		if p.IsValid() {
			return p
		}
	}
	return token.NoPos
}

// errMsg is the error's message without position or path, rephrased where
// CUE's wording assumes CUE knowledge.
func errMsg(e cueerrors.Error) string {
	format, args := e.Msg()
	msg := fmt.Sprintf(format, args...)
	if m := mismatch.FindStringSubmatch(msg); m != nil {
		// One side is the schema's type, the other the value written.
		a, b, ta, tb := m[1], m[2], m[3], m[4]
		if isTypeName(a) {
			a, b, ta, tb = b, a, tb, ta
		}
		return fmt.Sprintf("got %s %s, want %s", ta, a, tb)
	}
	if len(msg) > maxMsg {
		// CUE can print whole structs; the position says enough.
		msg = strings.ToValidUTF8(msg[:maxMsg], "") + "..."
	}
	switch {
	case strings.Contains(msg, "does not satisfy time.Duration"):
		return strings.Replace(msg, "does not satisfy time.Duration",
			`not a duration: use Go syntax such as "90s", "10m", "48h"`, 1)
	case strings.Contains(msg, `out of bound =~"^/"`):
		return strings.Replace(msg, `out of bound =~"^/"`, "must be an absolute path", 1)
	case strings.Contains(msg, `out of bound =~"^[a-z0-9_]+\\.[a-z0-9_]+$"`):
		return msg[:strings.Index(msg, "(out of bound")] + "(not a rule id such as \"process.reverse_shell\")"
	case msg == "field is required but not present":
		return "required field is missing"
	case strings.Contains(msg, `out of bound !=""`):
		return strings.Replace(msg, `out of bound !=""`, "must not be empty", 1)
	}
	return msg
}

func trimDef(p []string) []string {
	if len(p) > 0 && strings.HasPrefix(p[0], "#") {
		return p[1:]
	}
	return p
}

func hasPrefix(p, prefix []string) bool {
	if len(prefix) > len(p) {
		return false
	}
	for i := range prefix {
		if p[i] != prefix[i] {
			return false
		}
	}
	return true
}

func pathString(p []string) string { return cue.MakePath(selectors(p)...).String() }

func cuePath(p []string) cue.Path { return cue.MakePath(selectors(p)...) }

func selectors(p []string) []cue.Selector {
	sels := make([]cue.Selector, len(p))
	for i, s := range p {
		// CUE error paths spell list indexes as decimal strings.
		if n, err := strconv.Atoi(s); err == nil && n >= 0 && strconv.Itoa(n) == s {
			sels[i] = cue.Index(n)
			continue
		}
		// CUE error paths keep the quotes of labels that need them
		// ("kill-tree"): unquote, or the path prints them twice.
		if u, err := strconv.Unquote(s); err == nil && strings.HasPrefix(s, `"`) {
			s = u
		}
		sels[i] = cue.Str(s)
	}
	return sels
}
