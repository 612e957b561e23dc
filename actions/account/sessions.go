package account

import (
	"context"
	"fmt"

	"github.com/picket-agent/picket/actions/proctree"
)

// EndSessions stops and kills every process whose real or effective uid is
// uid, and every descendant of those (a root shell the user reached through
// sudo included), with proctree's pidfd-based freeze-then-kill, until none
// is left. uid 0 is refused. Processes proctree protects (PID 1, the
// caller and its ancestors, o.Protect) are spared and listed in
// Result.Skipped. Disable first, so no new session starts meanwhile.
func EndSessions(ctx context.Context, uid int, o proctree.Options) (proctree.Result, error) {
	if uid == 0 {
		return proctree.Result{}, fmt.Errorf("uid 0: %w", ErrProtected)
	}
	if uid < 0 {
		return proctree.Result{}, fmt.Errorf("account: invalid uid %d: %w", uid, ErrNoUser)
	}
	proc := o.Proc
	match := func(i proctree.Info) bool {
		u, err := proctree.UIDs(proc, i.PID)
		return err == nil && (u[0] == uid || u[1] == uid)
	}
	r, err := proctree.KillMatching(ctx, match, true, o)
	if err != nil {
		return r, fmt.Errorf("account: end sessions of uid %d: %w", uid, err)
	}
	return r, nil
}

// UID returns user's uid from the passwd file.
func UID(f Files, user string) (int, error) {
	return lookupUID(f.Passwd, user)
}
