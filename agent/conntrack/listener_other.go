//go:build !linux

package conntrack

import (
	"context"
	"fmt"
)

// Run reports that conntrack exists only on Linux.
func (l *Listener) Run(ctx context.Context, out chan<- Flow) error {
	err := fmt.Errorf("%w: conntrack events need Linux", ErrUnavailable)
	l.update(func(st *Stats) { st.Unavailable, st.LastError = "conntrack events need Linux", err.Error() })
	return err
}
