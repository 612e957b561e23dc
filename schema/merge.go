package schema

import (
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
)

// A host override is laid over the fleet policy: scalars and lists it sets
// replace the fleet's, structs merge. CUE unification cannot replace a
// concrete value (5 & 3 is an error), so the fleet files' fields that the
// host replaces are cut out of their syntax before unification. Everything
// else, including every position used in error messages, stays as written.

// overrideLeaves returns the paths, joined by pathSep, of the scalars and
// lists set by a host file.
func overrideLeaves(v cue.Value) map[string]bool {
	leaves := map[string]bool{}
	var walk func(v cue.Value, path []string)
	walk = func(v cue.Value, path []string) {
		it, err := v.Fields()
		if err != nil {
			return
		}
		for it.Next() {
			p := append(path[:len(path):len(path)], it.Selector().Unquoted())
			if it.Value().IncompleteKind() == cue.StructKind {
				walk(it.Value(), p)
				continue
			}
			leaves[strings.Join(p, pathSep)] = true
		}
	}
	walk(v, nil)
	return leaves
}

// pathSep cannot occur in a CUE label that matters here.
const pathSep = "\x00"

// prune removes from f every field at a path in leaves. Fields it cannot
// name statically (dynamic labels, comprehensions) stay; if they clash
// with the host value, CUE reports the conflict with both positions.
func prune(f *ast.File, leaves map[string]bool) {
	if len(leaves) == 0 {
		return
	}
	f.Decls = pruneDecls(f.Decls, nil, leaves)
}

func pruneDecls(decls []ast.Decl, path []string, leaves map[string]bool) []ast.Decl {
	out := decls[:0]
	for _, d := range decls {
		switch d := d.(type) {
		case *ast.Field:
			name, _, err := ast.LabelName(d.Label)
			if err != nil {
				break
			}
			p := append(path[:len(path):len(path)], name)
			if leaves[strings.Join(p, pathSep)] {
				continue
			}
			if s, ok := d.Value.(*ast.StructLit); ok {
				s.Elts = pruneDecls(s.Elts, p, leaves)
			}
		case *ast.EmbedDecl:
			if s, ok := d.Expr.(*ast.StructLit); ok {
				s.Elts = pruneDecls(s.Elts, path, leaves)
			}
		}
		out = append(out, d)
	}
	return out
}
