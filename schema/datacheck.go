package schema

import (
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/token"
)

// dataOnly reports the CUE constructs a configuration file may not use.
// picket's files are data: values, structs, lists, references and
// unification (&). Comprehensions, let clauses, interpolations, imports
// (builtins), disjunctions and arithmetic are computation, and a few lines
// of it take unbounded time or memory to evaluate (seven nested `for`
// over a ten-element list ran for 13 minutes; thirty lines doubling a
// string by interpolation or + exhausted 4 GB; a chain of 30 struct
// disjunctions did not finish), which would stall `picket validate` in CI
// and the agent's config sync. None is needed to write a policy.
func dataOnly(f *ast.File) []Issue {
	var issues []Issue
	deny := func(n ast.Node, what string) {
		issues = append(issues, issueAt(n.Pos(), "", what+" is not allowed: configuration files are data (values, structs, lists, references, &)"))
	}
	ast.Walk(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.ImportDecl:
			deny(x, "import")
		case *ast.Comprehension:
			deny(x, "a comprehension (for/if)")
		case *ast.LetClause:
			deny(x, "let")
		case *ast.Interpolation:
			deny(x, "string interpolation")
		case *ast.BinaryExpr:
			if x.Op == token.AND {
				return true
			}
			deny(x, "the operator "+x.Op.String())
		default:
			return true
		}
		return false
	}, nil)
	return issues
}
