package schema

import (
	_ "embed"
	"fmt"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/ast/astutil"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
)

//go:embed policy.cue
var schemaSource string

// schemaFile names the embedded schema in positions; no file picket reads
// from a repository can have this name.
const schemaFile = "picket:schema/policy.cue"

// Source returns the CUE text of the schema, for a command to print and for
// editors: it is the reference documentation of every field.
func Source() string { return schemaSource }

// compiled holds one CUE context with the schema compiled twice. A cue
// context is not safe for concurrent use, so each top-level call makes its
// own; compiling the schema takes milliseconds.
type compiled struct {
	ctx *cue.Context
	// strict is the schema as written, with defaults: it decides validity
	// and produces the values.
	strict cue.Value
	// plain is the schema with default disjuncts removed. It only explains
	// errors: with `*"10m" | #Duration` a bad value also fails the default
	// branch, and CUE reports both, which reads as noise ("conflicting
	// values "10m" and "10x"").
	plain cue.Value
}

func compile() (*compiled, error) {
	ctx := cuecontext.New()
	f, err := parser.ParseFile(schemaFile, schemaSource, parser.ParseComments)
	if err != nil {
		return nil, fmt.Errorf("embedded schema: %w", err)
	}
	strict := ctx.BuildFile(f)
	if err := strict.Err(); err != nil {
		return nil, fmt.Errorf("embedded schema: %w", err)
	}
	pf, err := parser.ParseFile(schemaFile, schemaSource)
	if err != nil {
		return nil, fmt.Errorf("embedded schema: %w", err)
	}
	plain := ctx.BuildFile(stripDefaults(pf))
	if err := plain.Err(); err != nil {
		return nil, fmt.Errorf("embedded schema without defaults: %w", err)
	}
	return &compiled{ctx: ctx, strict: strict, plain: plain}, nil
}

// def returns the definition (#Policy, #Bootstrap) from the strict or the
// plain schema.
func (c *compiled) def(name string, plain bool) cue.Value {
	v := c.strict
	if plain {
		v = c.plain
	}
	return v.LookupPath(cue.MakePath(cue.Def(name)))
}

// stripDefaults rewrites `*d | T` into `T`, keeping the star-less
// alternatives, except in enumerations (all alternatives literals) where
// the default is one of the allowed values and only loses its star.
func stripDefaults(f *ast.File) *ast.File {
	astutil.Apply(f, nil, func(c astutil.Cursor) bool {
		b, ok := c.Node().(*ast.BinaryExpr)
		if !ok || b.Op != token.OR {
			return true
		}
		// Only rewrite at the top of a disjunction chain; the parent call
		// sees the whole flattened chain.
		if p, ok := c.Parent().Node().(*ast.BinaryExpr); ok && p.Op == token.OR {
			return true
		}
		terms := flattenOr(b)
		var kept []ast.Expr
		enum, starred := true, false
		for _, t := range terms {
			if u, ok := t.(*ast.UnaryExpr); ok && u.Op == token.MUL {
				starred = true
				continue
			}
			if _, ok := t.(*ast.BasicLit); !ok {
				enum = false
			}
			kept = append(kept, t)
		}
		if !starred {
			return true
		}
		if enum || len(kept) == 0 {
			kept = kept[:0]
			for _, t := range terms {
				if u, ok := t.(*ast.UnaryExpr); ok && u.Op == token.MUL {
					t = u.X
				}
				kept = append(kept, t)
			}
		}
		var e ast.Expr = kept[0]
		for _, t := range kept[1:] {
			e = &ast.BinaryExpr{X: e, Op: token.OR, Y: t}
		}
		c.Replace(e)
		return true
	})
	return f
}

func flattenOr(e ast.Expr) []ast.Expr {
	if p, ok := e.(*ast.ParenExpr); ok {
		// Parentheses group a different disjunction; keep them whole.
		return []ast.Expr{p}
	}
	b, ok := e.(*ast.BinaryExpr)
	if !ok || b.Op != token.OR {
		return []ast.Expr{e}
	}
	return append(flattenOr(b.X), flattenOr(b.Y)...)
}
