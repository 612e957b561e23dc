// Package agent is picket's runtime: it opens the state, starts the sensors,
// runs every event through the pipeline (detectors, correlator, responder),
// commits the results with the sensors' read positions in one transaction
// per batch, publishes its status, and talks to systemd (readiness,
// watchdog). Sub-packages hold the parts; `picket run` builds an Agent and
// calls Run.
//
// Shutdown contract: Run returns when ctx is cancelled (SIGTERM/SIGINT in
// main). It stops the sensors, processes what they already delivered,
// commits the last batch and the read positions, writes an agent.stop audit
// entry and the stopped status, tells systemd STOPPING=1, and closes the
// database. Nothing acknowledged is lost; lines not yet committed are read
// again on the next start (positions are committed with their effects).
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/picket-agent/picket/agent/baseline"
	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/detect"
	"github.com/picket-agent/picket/agent/fim"
	"github.com/picket-agent/picket/agent/pipeline"
	"github.com/picket-agent/picket/agent/sensor"
	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

// State keys owned by the agent.
const (
	MetaPolicy          = "policy"
	MetaLearningStarted = "learning_started"
)

// Notifier sends sd_notify messages ("READY=1", "WATCHDOG=1"); declared
// here where it is consumed. A nil Notifier sends nothing.
type Notifier interface {
	Notify(state string) error
	// WatchdogInterval is systemd's WatchdogSec (0 when disabled).
	WatchdogInterval() time.Duration
}

// PolicySource loads the policy to apply (at start and on SIGHUP).
type PolicySource func(ctx context.Context) (*schema.Policy, ConfigStatus, error)

// Config wires an Agent.
type Config struct {
	Version  string
	Hostname string
	StateDir string
	Logger   *slog.Logger
	Notifier Notifier
	// Store is the open state database of StateDir, shared with the
	// action engine (one connection: writers queue in Go instead of in
	// SQLite's sleeping busy handler); nil opens one for this Run.
	Store *state.Store
	// Policy loads the configuration; called at start and on every Reload.
	Policy PolicySource
	// Reload receives a value for every SIGHUP.
	Reload <-chan struct{}
	// Detectors builds the detectors that come with sensors outside package
	// detect (network, accounts, persistence, files) for a policy.
	Detectors func(p *schema.Policy) []detect.Detector
	// Sensors builds the sensors for a policy given saved positions; nil
	// uses DefaultSensors.
	Sensors func(ctx context.Context, p *schema.Policy, st *state.Store) ([]sensor.Sensor, []SensorStatus)
	// Actions receives the committed plans (the action engine); nil
	// records plans only.
	Actions ActionSink
	// Workers run beside the main loop (the git sync) and are cancelled
	// before the final commit at shutdown. An error from one is logged; it
	// does not stop the agent.
	Workers []func(ctx context.Context) error
	// Progress, when set (a terminal), receives a progress bar of the
	// file integrity's initial scan.
	Progress io.Writer
	// FlushEvery bounds how long processed events wait for their commit.
	FlushEvery time.Duration
	// Heartbeat is how often status is rewritten.
	Heartbeat time.Duration
}

// Agent is one running picket.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	applyCh chan *applyReq
}

// applyReq carries a new policy to the main loop, which owns the pipeline.
type applyReq struct {
	policy *schema.Policy
	status ConfigStatus
	done   chan error
	// restart is set, before done is sent, to the sections that need a
	// restart to follow the policy (RestartNeeded).
	restart []string
}

// New checks cfg and returns an agent.
func New(cfg Config) (*Agent, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("agent: no state directory")
	}
	if cfg.Policy == nil {
		return nil, errors.New("agent: no policy source")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = 500 * time.Millisecond
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 5 * time.Second
	}
	if cfg.Sensors == nil {
		cfg.Sensors = DefaultSensors(cfg.Logger)
		if cfg.Detectors == nil {
			cfg.Detectors = DefaultDetectors
		}
	}
	return &Agent{cfg: cfg, log: cfg.Logger.With(slog.String("subsystem", "agent")), applyCh: make(chan *applyReq)}, nil
}

// Positions reads saved sensor positions from state.
type Positions interface {
	Offset(ctx context.Context, source string, v any) (bool, error)
}

// runner is the state of one Run; it lives on the Run goroutine only.
type runner struct {
	a       *Agent
	st      *state.Store
	pl      *pipeline.Pipeline
	policy  *schema.Policy
	status  Status
	learnAt time.Time
	sensors []sensor.Sensor
	pending map[string]any // source -> position to commit
	// model learns what is normal while the learning period runs; at its
	// end it becomes a baseline version and deviations turns on.
	model      *baseline.Model
	versions   *baseline.Versions
	deviations *baseline.Deviations
	learning   bool
	// promotePending: the period ended while the agent was stopped.
	promotePending bool
	learningSaved  time.Time
	// relearn is the current or last relearn (relearn.go); relearnModel
	// learns while one runs.
	relearn      RelearnStatus
	relearnModel *baseline.Model
	relearnSaved time.Time
	dirty        bool
	counters     Counters

	// drift is the slow drift learner (drift.go), loaded on first use.
	drift *driftRun
	// fb holds the operator verdicts' local effects (feedback.go).
	fb *feedbackRunner

	// guard and held keep the agent running while the state cannot be
	// written (storeguard.go); held is the batch whose commit failed.
	guard storeGuard
	held  *pipeline.Batch
	// sensorPolicy is the policy the running sensors were built from: a
	// later one that changes their settings needs a restart (status and
	// the config.applied entry say which sections).
	sensorPolicy *schema.Policy
}

// Run runs the agent until ctx is cancelled. See the package comment for
// the shutdown contract.
func (a *Agent) Run(ctx context.Context) error {
	st := a.cfg.Store
	if st == nil {
		var err error
		if st, err = state.Open(ctx, a.cfg.StateDir); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		defer st.Close()
	}
	pol, cs, err := a.cfg.Policy(ctx)
	if err != nil {
		return fmt.Errorf("agent: load policy: %w", err)
	}
	r := &runner{a: a, st: st, policy: pol, pending: map[string]any{}, guard: storeGuard{dir: a.cfg.StateDir}}
	if err := r.start(ctx, cs); err != nil {
		return err
	}

	sctx, stopSensors := context.WithCancel(context.Background())
	items := make(chan sensor.Item, 1024)
	sensors, statuses := a.cfg.Sensors(ctx, pol, st)
	r.status.Sensors = statuses
	r.sensors, r.sensorPolicy = sensors, pol
	var wg sync.WaitGroup
	for _, s := range sensors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(sctx, items); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error("sensor stopped", "sensor", s.Name(), "err", err)
			}
		}()
	}
	sensorsDone := make(chan struct{})
	go func() { wg.Wait(); close(sensorsDone) }()
	wctx, stopWorkers := context.WithCancel(ctx)
	var workers sync.WaitGroup
	for _, w := range a.cfg.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			if err := w(wctx); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error("worker stopped", "err", err)
			}
		}()
	}
	r.fb.run(wctx, &workers)
	defer func() { stopWorkers(); workers.Wait() }()
	if a.cfg.Progress != nil {
		workers.Add(1)
		go func() { defer workers.Done(); showProgress(wctx, a.cfg.Progress, sensors) }()
	}

	if err := r.writeStatus(ctx, time.Now()); err != nil {
		stopSensors()
		return err
	}
	a.notify("READY=1\nSTATUS=picket running")
	a.log.Info("agent running", "state_dir", a.cfg.StateDir, "mode", pol.Mode, "sensors", len(sensors), "learning", r.status.Learning.Active)

	// The flush timer runs only while processed items wait for their
	// commit: an idle agent must not wake up twice a second for nothing.
	flush := time.NewTimer(a.cfg.FlushEvery)
	defer flush.Stop()
	flushArmed := true
	beat := time.NewTicker(a.cfg.Heartbeat)
	defer beat.Stop()
	var wdC <-chan time.Time
	if a.cfg.Notifier != nil {
		if iv := a.cfg.Notifier.WatchdogInterval(); iv > 0 {
			wd := time.NewTicker(iv / 2)
			defer wd.Stop()
			wdC = wd.C
		}
	}
	applied := a.appliedCh()
	var runErr error
	// intake is nil while the state cannot be written (storeguard.go):
	// the sensors then wait, and nothing is read past the held commit.
	intake := (<-chan sensor.Item)(items)
	// failed handles an error from a step that writes the state: during
	// shutdown it ends the loop (the final commit below retries), else
	// the agent keeps running with intake paused until a commit works.
	failed := func(err error) bool {
		if ctx.Err() != nil {
			runErr = err
			return true
		}
		r.storeFailed(ctx, err, time.Now())
		intake = nil
		return false
	}
	if err := r.guard.ensureReserve(); err != nil {
		a.log.Warn("no reserve for a full disk: status may not show a full state directory", "err", err)
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case it := <-intake:
			r.handle(it)
			if !flushArmed {
				flush.Reset(a.cfg.FlushEvery)
				flushArmed = true
			}
			if r.counters.Events%1024 == 0 && r.dirty {
				if err := r.commit(ctx); err != nil && failed(err) {
					break loop
				}
			}
		case <-flush.C:
			flushArmed = false
			if !r.storing() {
				continue // retried on the heartbeat
			}
			if err := r.commit(ctx); err != nil && failed(err) {
				break loop
			}
		case now := <-beat.C:
			if !r.storing() {
				if !r.storeRetry(ctx, now) {
					if ctx.Err() != nil {
						break loop
					}
					continue
				}
				intake = items
			}
			if err := r.learningTick(ctx, now); err != nil && failed(err) {
				break loop
			}
			// A failed relearn step is retried on the next beat; it must
			// not stop the agent.
			if err := r.relearnTick(ctx, now); err != nil && ctx.Err() == nil {
				a.log.Error("baseline relearn", "err", err)
			}
			if err := r.driftTick(ctx, now); err != nil && ctx.Err() == nil {
				a.log.Error("baseline drift", "err", err)
			}
			r.pl.Tick(now)
			if err := r.commit(ctx); err != nil {
				if failed(err) {
					break loop
				}
				continue
			}
			if err := r.writeStatus(ctx, now); err != nil && failed(err) {
				break loop
			}
		case <-wdC:
			// The watchdog is fed from the main loop, and only when the
			// database answers: a wedged loop or store stops the pings and
			// systemd restarts us. (A full disk still answers reads: the
			// agent waits for space rather than restarting in a loop.)
			if err := r.health(ctx); err != nil {
				a.log.Error("health check failed; not feeding the watchdog", "err", err)
				continue
			}
			a.notify("WATCHDOG=1")
		case <-a.cfg.Reload:
			r.reload(ctx)
		case req := <-a.applyCh:
			req.done <- r.apply(ctx, req)
		case <-applied:
			r.contained()
		}
	}
	// A step that lost the race with the cancellation failed only for
	// that: the final commit below, on a fresh context, does its work.
	if runErr != nil && ctx.Err() != nil && errors.Is(runErr, context.Canceled) {
		runErr = nil
	}
	a.notify("STOPPING=1")
	// Workers (git sync) stop before the last commit so nothing they
	// write races the shutdown.
	stopWorkers()
	workers.Wait()
	stopSensors()
	// Drain what the sensors already delivered so its positions commit
	// with its effects.
drain:
	for {
		select {
		case it := <-items:
			r.handle(it)
		case <-sensorsDone:
			// Nothing more will be sent; take what is still buffered.
			for len(items) > 0 {
				r.handle(<-items)
			}
			break drain
		}
	}
	// Detector state is not persisted: settle running episodes so their
	// incidents carry the counts seen so far.
	r.pl.Flush()
	if r.learning {
		if err := r.saveLearning(context.Background(), time.Now()); err != nil {
			r.a.log.Error("saving the learned model failed", "err", err)
		}
	}
	if r.relearn.Active {
		if err := r.saveRelearn(context.Background(), time.Now(), true); err != nil {
			r.a.log.Error("saving the relearned model failed", "err", err)
		}
	}
	if r.drift != nil {
		if err := r.saveDrift(context.Background(), time.Now()); err != nil {
			r.a.log.Error("saving drift counts failed", "err", err)
		}
	}
	// A fresh context: the run's is cancelled, the last writes must happen.
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.commit(fctx); err != nil && runErr == nil {
		runErr = err
	}
	r.status.State = "stopped"
	err = st.Update(fctx, func(tx *state.Tx) error {
		if _, err := tx.AppendAudit(fctx, audit.Entry{Time: time.Now(), Kind: audit.KindAgentStop, Subject: "agent",
			Message: fmt.Sprintf("agent stopped (pid %d): %d events, %d signals processed", os.Getpid(), r.counters.Events, r.counters.Signals)}); err != nil {
			return err
		}
		r.status.Heartbeat = time.Now()
		return tx.SetMetaJSON(fctx, MetaStatus, r.status)
	})
	if err != nil && runErr == nil {
		runErr = err
	}
	a.log.Info("agent stopped", "events", r.counters.Events, "signals", r.counters.Signals)
	return runErr
}

func (a *Agent) notify(s string) {
	if a.cfg.Notifier == nil {
		return
	}
	if err := a.cfg.Notifier.Notify(s); err != nil {
		a.log.Warn("sd_notify failed", "err", err)
	}
}

// start restores incidents, fixes the learning period and records the start.
func (r *runner) start(ctx context.Context, cs ConfigStatus) error {
	now := time.Now()
	var started time.Time
	ok, err := r.st.MetaJSON(ctx, MetaLearningStarted, &started)
	if err != nil {
		return err
	}
	first := !ok
	if first {
		started = now
	}
	r.learnAt = started
	maxID, err := r.st.MaxIncidentID(ctx)
	if err != nil {
		return err
	}
	if r.versions, err = LoadBaselines(ctx, r.st); err != nil {
		return fmt.Errorf("agent: baselines: %w", err)
	}
	r.model = baseline.NewModel(baseline.DefaultCaps())
	if latest, ok := r.versions.Latest(); ok {
		m, err := latest.Model(baseline.DefaultCaps())
		if err != nil {
			r.a.log.Warn("stored baseline unreadable; deviation rules off until the next promotion", "version", latest.N, "err", err)
		} else {
			r.model = m
			r.deviations = baseline.NewDeviations(m, baseline.Config{})
		}
	}
	r.learning = LearningAt(started, r.policy.Learning.Period.D(), now).Active
	if err := r.resumeRelearn(ctx); err != nil {
		return fmt.Errorf("agent: relearn: %w", err)
	}
	if _, ok := r.versions.Latest(); !ok {
		m, ok, err := loadLearning(ctx, r.st)
		if err != nil {
			r.a.log.Warn("saved learning unreadable; learning goes on from now", "err", err)
		} else if ok {
			r.model = m
			r.promotePending = !r.learning
		}
	}
	r.fb = newFeedbackRunner(r, r.a.cfg.Hostname)
	r.pl, err = pipeline.New(r.policy, pipeline.Options{
		Feedback:        r.fb.fx,
		Clock:           time.Now,
		Learning:        func(t time.Time) bool { return LearningAt(r.learnAt, r.policy.Learning.Period.D(), t).Active },
		FirstIncidentID: maxID + 1,
		Detectors:       r.detectors,
	})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	rows, err := r.st.Incidents(ctx, state.IncidentFilter{Status: "open"})
	if err != nil {
		return err
	}
	for _, row := range rows {
		var in correlate.Incident
		if err := json.Unmarshal(row.Doc, &in); err != nil {
			r.a.log.Warn("open incident unreadable; not restored", "incident", row.ID, "err", err)
			continue
		}
		in.Status = correlate.Status(row.Status)
		r.pl.Restore(&in)
	}
	host, _ := os.Hostname()
	if r.a.cfg.Hostname != "" {
		host = r.a.cfg.Hostname
	}
	cs.Applied = now
	r.status = Status{Version: r.a.cfg.Version, Hostname: host, PID: os.Getpid(), State: "running", Started: now,
		Root: os.Geteuid() == 0, Mode: r.policy.Mode, Config: cs}
	r.status.Learning = LearningAt(started, r.policy.Learning.Period.D(), now)
	r.actionPolicy()
	err = r.st.Update(ctx, func(tx *state.Tx) error {
		if first {
			if err := tx.SetMetaJSON(ctx, MetaLearningStarted, started); err != nil {
				return err
			}
			if _, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: audit.KindLearning, Subject: "learning",
				Message: fmt.Sprintf("learning period of %s started: read-only until %s", r.policy.Learning.Period, started.Add(r.policy.Learning.Period.D()).UTC().Format(time.RFC3339))}); err != nil {
				return err
			}
		}
		if _, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: audit.KindAgentStart, Subject: "agent",
			Message: fmt.Sprintf("agent %s started (pid %d, root=%v, %d open incidents restored)", r.a.cfg.Version, os.Getpid(), r.status.Root, len(rows))}); err != nil {
			return err
		}
		if err := r.appliedEntry(ctx, tx, cs, now, nil); err != nil {
			return err
		}
		return tx.SetMetaJSON(ctx, MetaPolicy, r.policy)
	})
	if err != nil {
		return err
	}
	// A relearn requested while the agent was stopped starts now.
	return r.relearnTick(ctx, now)
}

func (r *runner) appliedEntry(ctx context.Context, tx *state.Tx, cs ConfigStatus, now time.Time, restart []string) error {
	msg := "config applied: embedded default policy"
	if cs.Source != "embedded-default" {
		msg = fmt.Sprintf("config applied: %s", cs.Source)
		if cs.Revision != "" {
			msg += " " + cs.Revision
		}
	}
	if note := RestartNote(restart); note != "" {
		msg += "; " + note
	}
	data, _ := json.Marshal(struct {
		ConfigStatus
		RestartNeeded []string `json:"restart_needed,omitempty"`
	}{cs, restart})
	_, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: audit.KindConfigApplied, Subject: "config", Message: msg, Data: data})
	return err
}

// handle runs one sensor item through the pipeline.
func (r *runner) handle(it sensor.Item) {
	if it.Source != "" && it.Pos != nil {
		r.pending[it.Source] = it.Pos
		r.dirty = true
	}
	if it.Unparsed {
		r.counters.Unparsed++
		return
	}
	if it.Event == nil {
		return
	}
	r.counters.Events++
	if r.learning {
		r.model.Learn(it.Event)
	}
	if r.relearnModel != nil {
		r.relearnModel.Learn(it.Event)
	}
	r.pl.Process(it.Event)
}

// commit writes the pipeline's batch and the positions in one transaction.
func (r *runner) commit(ctx context.Context) error {
	b := r.takeBatch()
	if b.Empty() && len(r.pending) == 0 {
		return nil
	}
	err := r.st.Update(ctx, func(tx *state.Tx) error {
		if err := WriteBatch(ctx, tx, b); err != nil {
			return err
		}
		for src, pos := range r.pending {
			if err := tx.SetOffset(ctx, src, pos); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		r.holdBatch(b) // and r.pending: retried with the next commit
		return fmt.Errorf("agent: commit: %w", err)
	}
	clear(r.pending)
	r.dirty = false
	r.submitPlans(b.Plans)
	return nil
}

// WriteBatch stores a pipeline batch: incidents (latest state), plans and
// audit entries, within the caller's transaction.
func WriteBatch(ctx context.Context, tx *state.Tx, b pipeline.Batch) error {
	for _, in := range b.Incidents {
		doc, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("agent: encode incident %d: %w", in.ID, err)
		}
		row := state.IncidentRow{ID: in.ID, Opened: in.Opened, Updated: in.Updated, Status: string(in.Status),
			Level: in.Level.String(), Score: in.Score, Summary: in.Summary(), Doc: doc}
		put := tx.PutIncident
		if in.Summarised > 0 {
			// Only its newest signals are in memory: append them to the
			// stored story instead of replacing it.
			put = tx.AppendIncident
		}
		if err := put(ctx, row); err != nil {
			return err
		}
	}
	for _, p := range b.Plans {
		if _, err := tx.AddPlan(ctx, state.PlanRow{Incident: p.Incident, Time: p.Time, Action: p.Action, Target: p.Target,
			TTL: p.TTL.D(), Level: p.Level.String(), Status: p.Status, Reason: p.Reason}); err != nil {
			return err
		}
	}
	return tx.AppendAudits(ctx, b.Audit)
}

// progressSensor is a sensor with a long first pass (file integrity).
type progressSensor interface{ Progress() fim.Progress }

// showProgress redraws the initial scan's progress bar on a terminal until
// the scan is done.
func showProgress(ctx context.Context, w io.Writer, sensors []sensor.Sensor) {
	var ps []progressSensor
	for _, s := range sensors {
		if p, ok := s.(progressSensor); ok {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	started := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, s := range ps {
			p := s.Progress()
			switch {
			case p.Running:
				started = true
				fim.ProgressBar(w, p)
			case p.Done && started:
				fim.ProgressBar(w, p)
				fmt.Fprintln(w)
				return
			case p.Done:
				return
			}
		}
	}
}

// detectors adds the baseline's deviation rules, once promoted, to the
// detectors the configuration asks for.
func (r *runner) detectors(p *schema.Policy) []detect.Detector {
	var out []detect.Detector
	if r.a.cfg.Detectors != nil {
		out = r.a.cfg.Detectors(p)
	}
	if r.deviations != nil {
		out = append(out, r.deviations.WithConfig(r.fb.baselineConfig(baseline.ConfigFromPolicy(p, ""))))
	}
	return out
}

// learningTick ends the learning period: the model learned so far becomes
// baseline version 1 (a period of 0 skips learning and so has nothing to
// promote: deviations stay off rather than flag everything as new).
func (r *runner) learningTick(ctx context.Context, now time.Time) error {
	active := LearningAt(r.learnAt, r.policy.Learning.Period.D(), now).Active
	was := r.learning || r.promotePending
	r.learning, r.promotePending = active, false
	if active {
		if now.Sub(r.learningSaved) >= learningSaveEvery {
			return r.saveLearning(ctx, now)
		}
		return nil
	}
	if !was {
		return nil
	}
	if _, ok := r.versions.Latest(); ok {
		return nil
	}
	if _, err := r.promote(ctx, r.model, "end of learning period", now); err != nil {
		return fmt.Errorf("agent: promote baseline: %w", err)
	}
	r.a.log.Info("baseline promoted", "keys", r.model.Len())
	return nil
}

// liveSensor is a sensor that can say how it is doing while it runs.
type liveSensor interface {
	Name() string
	Live() (degraded bool, detail string)
}

func (r *runner) writeStatus(ctx context.Context, now time.Time) error {
	r.status.Heartbeat = now
	for _, s := range r.sensors {
		ls, ok := s.(liveSensor)
		if !ok {
			continue
		}
		degraded, detail := ls.Live()
		for i := range r.status.Sensors {
			if r.status.Sensors[i].Name == ls.Name() {
				r.status.Sensors[i].Detail = detail
				r.status.Sensors[i].State = SensorOK
				if degraded {
					r.status.Sensors[i].State = SensorDegraded
				}
			}
		}
	}
	r.status.Learning = LearningAt(r.learnAt, r.policy.Learning.Period.D(), now)
	r.status.Mode = r.policy.Mode
	c := r.counters
	// Counted, not listed: a flood leaves tens of thousands open.
	c.OpenIncidents, _ = r.pl.OpenCount()
	r.status.Counters = c
	return r.st.Update(ctx, func(tx *state.Tx) error { return tx.SetMetaJSON(ctx, MetaStatus, r.status) })
}

func (r *runner) health(ctx context.Context) error {
	_, _, err := r.st.Meta(ctx, MetaStatus)
	return err
}

// Apply swaps the running policy from another goroutine (the git sync) and
// waits until the main loop has done it. The caller audits it.
func (a *Agent) Apply(ctx context.Context, p *schema.Policy, cs ConfigStatus) error {
	_, err := a.ApplyNoting(ctx, p, cs)
	return err
}

// ApplyNoting is Apply that also returns the config sections that take
// effect only after a restart ("sensors.auth", ...), for the caller's
// audit entry.
func (a *Agent) ApplyNoting(ctx context.Context, p *schema.Policy, cs ConfigStatus) ([]string, error) {
	req := &applyReq{policy: p, status: cs, done: make(chan error, 1)}
	select {
	case a.applyCh <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case err := <-req.done:
		return req.restart, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// RestartNote renders RestartNeeded's sections for messages ("" for none).
func RestartNote(sections []string) string {
	if len(sections) == 0 {
		return ""
	}
	return "restart needed for: " + strings.Join(sections, ", ")
}

// noteRestart records which sections the new policy cannot change live.
func (r *runner) noteRestart(p *schema.Policy) []string {
	need := RestartNeeded(r.sensorPolicy, p)
	r.status.RestartNeeded = need
	if len(need) > 0 {
		r.a.log.Warn("config changes settings the sensors read at start: restart the agent for them to take effect", "sections", need)
	}
	return need
}

func (r *runner) apply(ctx context.Context, req *applyReq) error {
	if err := r.pl.SetPolicy(req.policy); err != nil {
		return err
	}
	r.policy = req.policy
	r.actionPolicy()
	req.restart = r.noteRestart(req.policy)
	req.status.Applied = time.Now()
	r.status.Config = req.status
	r.status.Mode = req.policy.Mode
	if err := r.st.Update(ctx, func(tx *state.Tx) error { return tx.SetMetaJSON(ctx, MetaPolicy, req.policy) }); err != nil {
		return err
	}
	r.a.log.Info("config applied", "source", req.status.Source, "revision", req.status.Revision, "signer", req.status.Signer)
	return r.writeStatus(ctx, time.Now())
}

// reload re-reads the policy; a failure keeps the running one.
func (r *runner) reload(ctx context.Context) {
	pol, cs, err := r.a.cfg.Policy(ctx)
	now := time.Now()
	if err == nil {
		err = r.pl.SetPolicy(pol)
	}
	if err != nil {
		r.a.log.Error("reload rejected; keeping the running config", "err", err)
		r.st.Update(ctx, func(tx *state.Tx) error {
			_, aerr := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: audit.KindConfigRejected, Subject: "config",
				Message: "config reload rejected, last good config stays in force: " + err.Error()})
			return aerr
		})
		return
	}
	r.policy = pol
	r.actionPolicy()
	need := r.noteRestart(pol)
	cs.Applied = now
	r.status.Config = cs
	if err := r.st.Update(ctx, func(tx *state.Tx) error {
		if err := r.appliedEntry(ctx, tx, cs, now, need); err != nil {
			return err
		}
		return tx.SetMetaJSON(ctx, MetaPolicy, pol)
	}); err != nil {
		r.a.log.Error("recording reload failed", "err", err)
	}
	r.a.log.Info("config reloaded", "source", cs.Source)
}
