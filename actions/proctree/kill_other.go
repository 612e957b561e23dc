//go:build !linux

package proctree

import "context"

// KillTree needs pidfds, which only Linux has.
func KillTree(ctx context.Context, t Target, o Options) (Result, error) {
	return Result{}, ErrUnsupported
}

// KillMatching needs pidfds, which only Linux has.
func KillMatching(ctx context.Context, match func(Info) bool, descendants bool, o Options) (Result, error) {
	return Result{}, ErrUnsupported
}
