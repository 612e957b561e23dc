package schema

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"cuelang.org/go/cue/token"
)

// Issue is one problem in one configuration file.
type Issue struct {
	// File is relative to the repository root, slash-separated (for the
	// bootstrap file: the path as given).
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
	// Path is the field path ("levels.contain"), "" for a whole file.
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (i Issue) String() string {
	loc := fmt.Sprintf("%s:%d:%d", i.File, i.Line, i.Column)
	if i.Path == "" {
		return loc + ": " + i.Message
	}
	return loc + ": " + i.Path + ": " + i.Message
}

// ValidationError lists every problem found, so that one run of
// `picket validate` shows everything a pull request must fix.
type ValidationError struct {
	Issues []Issue
}

// Error prints one issue per line as file:line:col: path: message.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		lines[i] = is.String()
	}
	return strings.Join(lines, "\n")
}

// issueAt builds an Issue at a CUE position.
func issueAt(pos token.Pos, path, msg string) Issue {
	is := Issue{Path: path, Message: msg}
	if pos.IsValid() {
		is.File, is.Line, is.Column = pos.Filename(), pos.Line(), pos.Column()
	}
	return is
}

// sortIssues orders issues by file and position and drops exact
// duplicates (CUE reports some errors once per disjunct).
func sortIssues(issues []Issue) []Issue {
	slices.SortStableFunc(issues, func(a, b Issue) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column),
			cmp.Compare(a.Path, b.Path),
			cmp.Compare(a.Message, b.Message),
		)
	})
	return slices.Compact(issues)
}

// asError returns nil for no issues, else a *ValidationError.
func asError(issues []Issue) error {
	if len(issues) == 0 {
		return nil
	}
	return &ValidationError{Issues: sortIssues(issues)}
}
