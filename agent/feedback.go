package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/picket-agent/picket/actions"
	"github.com/picket-agent/picket/agent/baseline"
	"github.com/picket-agent/picket/agent/control"
	"github.com/picket-agent/picket/agent/feedback"
)

// OpFeedback is the control request that carries a verdict
// (feedback.Request); the response body is a feedback.Result.
const OpFeedback = "feedback"

// feedbackEvery is how often pending verdicts, expiries and merges (marked
// in state by the syncer) are picked up. Verdicts over the control socket
// take effect at once; these are slower paths, and a faster tick kept an
// idle agent awake (three queries a second).
const feedbackEvery = 5 * time.Second

// feedbackRunner holds the verdicts' live effects for the runner: the
// pipeline and the baseline consult fx; the control socket and a ticker
// apply verdicts.
type feedbackRunner struct {
	r    *runner
	fx   *feedback.Effects
	proc *feedback.Processor
	mu   sync.Mutex // one verdict at a time
}

func newFeedbackRunner(r *runner, host string) *feedbackRunner {
	if host == "" {
		host, _ = os.Hostname()
	}
	f := &feedbackRunner{r: r, fx: feedback.NewEffects(nil)}
	f.proc = feedback.NewProcessor(feedback.Config{Store: r.st, Effects: f.fx, Rollback: f.rollback, Hostname: host})
	if err := f.fx.Load(context.Background(), r.st); err != nil {
		r.a.log.Warn("feedback effects unreadable; starting without them", "err", err)
	}
	return f
}

// baselineConfig lets the deviation rules ask about distrusted keys.
func (f *feedbackRunner) baselineConfig(c baseline.Config) baseline.Config {
	c.Distrusted = f.fx.Distrusted
	return c
}

// rollback asks the engine to undo an action and waits for it: the
// engine's own loop does it (never two goroutines on one executor).
func (f *feedbackRunner) rollback(ctx context.Context, id int64, why string) error {
	if _, err := actions.RequestRollback(ctx, f.r.st, id, why); err != nil {
		return err
	}
	h, ok := f.r.a.cfg.Actions.(*Hands)
	if !ok || h == nil {
		return errors.New("no action engine in this agent: the rollback is requested")
	}
	h.Engine.Nudge()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		a, err := f.r.st.Action(ctx, id)
		if err != nil {
			return err
		}
		if a.Status != actions.StatusRollbackRequested {
			if a.Status == actions.StatusRolledBack {
				return nil
			}
			return fmt.Errorf("action %d is %s: %s", id, a.Status, a.Note)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("action %d: the engine did not roll it back within 10s", id)
}

// run starts the control socket and the feedback ticker as workers.
func (f *feedbackRunner) run(ctx context.Context, wg *sync.WaitGroup) {
	log := f.r.a.log
	srv, err := control.Listen(control.Path(f.r.a.cfg.StateDir), log)
	if err != nil {
		log.Warn("control socket unavailable; verdicts are picked up from state", "err", err)
	} else {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ctx, f.handle); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("control socket stopped", "err", err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(feedbackEvery)
		defer t.Stop()
		for {
			f.tick(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (f *feedbackRunner) tick(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.proc.Pending(ctx); err != nil && ctx.Err() == nil {
		f.r.a.log.Error("applying a pending verdict failed", "err", err)
	}
	if _, err := f.proc.Expire(ctx); err != nil && ctx.Err() == nil {
		f.r.a.log.Error("expiring feedback effects failed", "err", err)
	}
	// Merges are marked in state by the syncer: reload.
	if err := f.fx.Load(ctx, f.r.st); err != nil && ctx.Err() == nil {
		f.r.a.log.Error("reloading feedback effects failed", "err", err)
	}
}

func (f *feedbackRunner) handle(ctx context.Context, req control.Request, peer control.Peer) control.Response {
	switch req.Op {
	case "ping":
		return control.Response{OK: true}
	case OpFeedback:
	default:
		return control.Response{Error: "unknown op " + req.Op}
	}
	var fr feedback.Request
	if err := json.Unmarshal(req.Body, &fr); err != nil {
		return control.Response{Error: "bad feedback request: " + err.Error()}
	}
	if fr.Who == "" {
		fr.Who = fmt.Sprintf("uid %d", peer.UID)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	row, err := feedback.Record(ctx, f.r.st, fr, time.Now())
	if err != nil {
		return control.Response{Error: err.Error()}
	}
	res, err := f.proc.Apply(ctx, row.ID)
	body, _ := json.Marshal(res)
	if err != nil {
		return control.Response{Error: err.Error(), Body: body}
	}
	return control.Response{OK: true, Body: body}
}

// FeedbackCounts reports signals dropped and damped by verdicts.
func (f *feedbackRunner) counts() (int64, int64) { return f.fx.Counts() }
