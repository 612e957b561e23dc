// Package feedback is the operator's verdict on what picket did or missed,
// and its immediate, local, temporary effects. A verdict is recorded in
// state (pending) and audited; the processor then applies it:
//
//   - false-positive: the incident's actions in force are rolled back, each
//     (rule, entity) of the incident is suppressed locally until TTL
//     (default 7 days), and a whitelist proposal is queued for each IP or
//     user entity (sync/proposals; a merge ends the suppression);
//   - too-aggressive: the actions are rolled back and each rule of the
//     incident is damped (weight × DampenFactor) for DampenTTL (24 h);
//   - missed: the entity's recent events in the window become a labelled
//     case and the baseline keys they cover stop counting as normal;
//   - correct: the incident is kept as a labelled case; nothing changes.
//
// The agent runs the processor (agent/feedback.go) behind the control
// socket; `picket feedback` runs it itself when no agent listens.
package feedback

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/baseline"
	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/state"
	"github.com/picket-agent/picket/sync/proposals"
)

// Verdicts.
const (
	Correct       = "correct"
	FalsePositive = "false-positive"
	TooAggressive = "too-aggressive"
	Missed        = "missed"
)

// Statuses of a stored verdict.
const (
	StatusPending = "pending"
	StatusApplied = "applied"
	StatusFailed  = "failed"
)

// KindFeedback is the audit kind of verdicts and their effects.
const KindFeedback = audit.KindFeedback

// Defaults.
const (
	DefaultTTL       = 7 * 24 * time.Hour
	DefaultDampenTTL = 24 * time.Hour
	DefaultMissed    = time.Hour // window of a "missed" given without --from
	maxCaseEvents    = 500
)

// ErrInvalid: the verdict request is malformed.
var ErrInvalid = errors.New("feedback: invalid verdict")

// Request is a verdict as the operator gives it.
type Request struct {
	Verdict  string    `json:"verdict"`
	Incident int64     `json:"incident,omitempty"`
	Action   int64     `json:"action,omitempty"`
	Entity   string    `json:"entity,omitempty"` // kind:value
	From     time.Time `json:"from,omitzero"`
	To       time.Time `json:"to,omitzero"`
	Note     string    `json:"note,omitempty"`
	Who      string    `json:"who,omitempty"`
}

// Validate checks the request's shape.
func (r Request) Validate() error {
	switch r.Verdict {
	case Correct, FalsePositive, TooAggressive:
		if (r.Incident == 0) == (r.Action == 0) {
			return fmt.Errorf("%w: %s needs an incident id or action:N", ErrInvalid, r.Verdict)
		}
	case Missed:
		if r.Entity == "" && r.From.IsZero() {
			return fmt.Errorf("%w: missed needs --entity kind:value or --from/--to", ErrInvalid)
		}
		if r.Entity != "" {
			if _, err := ParseEntity(r.Entity); err != nil {
				return err
			}
		}
		if !r.From.IsZero() && !r.To.IsZero() && r.To.Before(r.From) {
			return fmt.Errorf("%w: --to is before --from", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: unknown verdict %q (correct, false-positive, too-aggressive, missed)", ErrInvalid, r.Verdict)
	}
	if len(r.Note) > 4096 {
		return fmt.Errorf("%w: note longer than 4096 bytes", ErrInvalid)
	}
	return nil
}

// ParseEntity reads kind:value (ip, user, process, container, file).
func ParseEntity(s string) (signal.Entity, error) {
	k, v, ok := strings.Cut(s, ":")
	ent := signal.Entity{Kind: signal.EntityKind(k), Value: v}
	if !ok || v == "" {
		return ent, fmt.Errorf("%w: entity %q is not kind:value", ErrInvalid, s)
	}
	switch ent.Kind {
	case signal.IP:
		a, err := netip.ParseAddr(v)
		if err != nil {
			return ent, fmt.Errorf("%w: entity %q: %v", ErrInvalid, s, err)
		}
		ent.Value = a.Unmap().String()
	case signal.User, signal.Process, signal.Container, signal.File:
	default:
		return ent, fmt.Errorf("%w: entity kind %q (ip, user, process, container, file)", ErrInvalid, k)
	}
	return ent, nil
}

// Record stores a verdict as pending, with its audit entry, and returns it.
func Record(ctx context.Context, st *state.Store, r Request, now time.Time) (state.FeedbackRow, error) {
	if err := r.Validate(); err != nil {
		return state.FeedbackRow{}, err
	}
	row := state.FeedbackRow{Created: now, Verdict: r.Verdict, Incident: r.Incident, Action: r.Action, Entity: r.Entity,
		From: r.From, To: r.To, Note: r.Note, Who: r.Who, Status: StatusPending}
	err := st.Update(ctx, func(tx *state.Tx) error {
		if r.Incident != 0 {
			if _, err := tx.Incident(ctx, r.Incident); err != nil {
				return fmt.Errorf("feedback: %w", err)
			}
		}
		if r.Action != 0 {
			a, err := tx.Action(ctx, r.Action)
			if err != nil {
				return fmt.Errorf("feedback: %w", err)
			}
			row.Incident = a.Incident
		}
		id, err := tx.AddFeedback(ctx, row)
		if err != nil {
			return err
		}
		row.ID = id
		data, _ := json.Marshal(r)
		e, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: KindFeedback, Subject: fmt.Sprintf("feedback:%d", id),
			Message: fmt.Sprintf("verdict %d recorded: %s on %s by %s%s", id, r.Verdict, target(row), orUnknown(r.Who), noteSuffix(r.Note)), Data: data})
		if err != nil {
			return err
		}
		row.AuditSeq = e.Seq
		return tx.PutFeedback(ctx, row)
	})
	return row, err
}

func target(f state.FeedbackRow) string {
	switch {
	case f.Action != 0:
		return fmt.Sprintf("action %d (incident %d)", f.Action, f.Incident)
	case f.Incident != 0:
		return fmt.Sprintf("incident %d", f.Incident)
	}
	s := "activity"
	if f.Entity != "" {
		s += " of " + f.Entity
	}
	if !f.From.IsZero() {
		s += " from " + f.From.UTC().Format(time.RFC3339)
	}
	if !f.To.IsZero() {
		s += " to " + f.To.UTC().Format(time.RFC3339)
	}
	return s
}

func noteSuffix(n string) string {
	if n == "" {
		return ""
	}
	return ": " + n
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// Result says what applying a verdict changed.
type Result struct {
	Feedback     int64     `json:"feedback"`
	Verdict      string    `json:"verdict"`
	Status       string    `json:"status"`
	RolledBack   []int64   `json:"rolled_back,omitempty"`
	Suppressions []int64   `json:"suppressions,omitempty"`
	Dampers      []string  `json:"dampers,omitempty"`
	Proposals    []int64   `json:"proposals,omitempty"`
	Case         int64     `json:"case,omitempty"`
	Untrusted    []string  `json:"untrusted,omitempty"`
	Until        time.Time `json:"until,omitzero"`
	Notes        []string  `json:"notes,omitempty"`
}

// Rollback undoes one action now (the engine's rollback); why is recorded
// in the journal.
type Rollback func(ctx context.Context, id int64, why string) error

// Config wires a Processor.
type Config struct {
	Store    *state.Store
	Effects  *Effects // nil: verdicts are stored, the agent's view loads them later
	Rollback Rollback // nil: actions are left for the engine (RequestRollback)
	Hostname string
	TTL      time.Duration
	DampTTL  time.Duration
	Now      func() time.Time
}

// Processor applies stored verdicts.
type Processor struct{ cfg Config }

// NewProcessor fills defaults.
func NewProcessor(cfg Config) *Processor {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.DampTTL <= 0 {
		cfg.DampTTL = DefaultDampenTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Processor{cfg: cfg}
}

// Pending applies every pending verdict (those given while no agent ran).
func (p *Processor) Pending(ctx context.Context) ([]Result, error) {
	rows, err := p.cfg.Store.FeedbackList(ctx, StatusPending)
	if err != nil {
		return nil, err
	}
	var out []Result
	var errs []error
	for _, f := range rows {
		r, err := p.Apply(ctx, f.ID)
		out = append(out, r)
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// Apply applies one pending verdict and records its result. Applying an
// already applied verdict returns its stored result.
func (p *Processor) Apply(ctx context.Context, id int64) (Result, error) {
	st := p.cfg.Store
	f, err := st.Feedback(ctx, id)
	if err != nil {
		return Result{}, err
	}
	res := Result{Feedback: id, Verdict: f.Verdict, Status: f.Status}
	if f.Status != StatusPending {
		if len(f.Result) > 0 {
			json.Unmarshal(f.Result, &res)
		}
		return res, nil
	}
	now := p.cfg.Now()
	var in *correlate.Incident
	if f.Incident != 0 {
		row, err := st.Incident(ctx, f.Incident)
		if err != nil {
			return res, p.fail(ctx, f, res, err)
		}
		in = &correlate.Incident{}
		if err := json.Unmarshal(row.Doc, in); err != nil {
			return res, p.fail(ctx, f, res, fmt.Errorf("feedback: incident %d unreadable: %w", f.Incident, err))
		}
	}
	switch f.Verdict {
	case FalsePositive, TooAggressive:
		p.rollback(ctx, f, &res)
	}
	err = st.Update(ctx, func(tx *state.Tx) error {
		switch f.Verdict {
		case FalsePositive:
			if err := p.suppress(ctx, tx, f, in, now, &res); err != nil {
				return err
			}
		case TooAggressive:
			if err := p.dampen(ctx, tx, f, in, now, &res); err != nil {
				return err
			}
		case Missed:
			if err := p.missed(ctx, tx, f, now, &res); err != nil {
				return err
			}
		case Correct:
			doc, _ := json.Marshal(map[string]any{"incident": in, "note": f.Note})
			cid, err := tx.AddCase(ctx, state.CaseRow{Feedback: f.ID, Label: Correct, Created: now, Doc: doc})
			if err != nil {
				return err
			}
			res.Case = cid
			res.Notes = append(res.Notes, fmt.Sprintf("incident %d kept as a labelled example (case %d); nothing changes", f.Incident, cid))
		}
		res.Status = StatusApplied
		f.Status = StatusApplied
		f.Result, _ = json.Marshal(res)
		if err := tx.PutFeedback(ctx, f); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: KindFeedback, Subject: fmt.Sprintf("feedback:%d", f.ID),
			Message: fmt.Sprintf("verdict %d (%s on %s) applied: %s", f.ID, f.Verdict, target(f), strings.Join(res.Notes, "; ")), Data: f.Result})
		return err
	})
	if err != nil {
		return res, p.fail(ctx, f, res, err)
	}
	if p.cfg.Effects != nil {
		if err := p.cfg.Effects.Load(ctx, st); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (p *Processor) fail(ctx context.Context, f state.FeedbackRow, res Result, cause error) error {
	res.Status = StatusFailed
	res.Notes = append(res.Notes, cause.Error())
	f.Status = StatusFailed
	f.Result, _ = json.Marshal(res)
	err := p.cfg.Store.Update(ctx, func(tx *state.Tx) error {
		if err := tx.PutFeedback(ctx, f); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, audit.Entry{Time: p.cfg.Now(), Kind: KindFeedback, Subject: fmt.Sprintf("feedback:%d", f.ID),
			Message: fmt.Sprintf("verdict %d (%s) could not be applied: %v", f.ID, f.Verdict, cause)})
		return err
	})
	return errors.Join(cause, err)
}

// rollback undoes the verdict's actions in force: the one named, or all of
// the incident's.
func (p *Processor) rollback(ctx context.Context, f state.FeedbackRow, res *Result) {
	rows, err := p.cfg.Store.Actions(ctx, state.ActionFilter{Statuses: []string{"applying", "applied", "rollback-requested"}})
	if err != nil {
		res.Notes = append(res.Notes, "listing actions failed: "+err.Error())
		return
	}
	why := fmt.Sprintf("rolled back: verdict %d %s by %s%s", f.ID, f.Verdict, orUnknown(f.Who), noteSuffix(f.Note))
	for _, a := range rows {
		if (f.Action != 0 && a.ID != f.Action) || (f.Action == 0 && a.Incident != f.Incident) {
			continue
		}
		if p.cfg.Rollback == nil {
			res.Notes = append(res.Notes, fmt.Sprintf("action %d left to the engine", a.ID))
			continue
		}
		if err := p.cfg.Rollback(ctx, a.ID, why); err != nil {
			res.Notes = append(res.Notes, fmt.Sprintf("rollback of action %d (%s %s) failed: %v", a.ID, a.Kind, a.Target, err))
			continue
		}
		res.RolledBack = append(res.RolledBack, a.ID)
		res.Notes = append(res.Notes, fmt.Sprintf("action %d (%s %s) rolled back", a.ID, a.Kind, a.Target))
	}
}

// patterns are the (rule, entity) pairs of an incident, restricted to the
// action's target when the verdict names an action.
func (p *Processor) patterns(ctx context.Context, f state.FeedbackRow, in *correlate.Incident) ([][2]string, map[string][]string) {
	var only string
	if f.Action != 0 {
		if a, err := p.cfg.Store.Action(ctx, f.Action); err == nil {
			if ad, err := netip.ParsePrefix(a.Target); err == nil && ad.IsSingleIP() {
				only = "ip:" + ad.Addr().String()
			} else if ad, err := netip.ParseAddr(a.Target); err == nil {
				only = "ip:" + ad.Unmap().String()
			}
		}
	}
	var pairs [][2]string
	reasons := map[string][]string{} // entity → signal reasons
	if in == nil {
		return nil, reasons
	}
	for _, s := range in.Signals {
		for _, e := range s.Entities {
			ent := e.String()
			if only != "" && ent != only {
				continue
			}
			pr := [2]string{s.Rule, ent}
			if !slices.Contains(pairs, pr) {
				pairs = append(pairs, pr)
			}
			if len(reasons[ent]) < 5 && !slices.Contains(reasons[ent], s.Rule+": "+s.Reason) {
				reasons[ent] = append(reasons[ent], s.Rule+": "+s.Reason)
			}
		}
	}
	return pairs, reasons
}

func (p *Processor) suppress(ctx context.Context, tx *state.Tx, f state.FeedbackRow, in *correlate.Incident, now time.Time, res *Result) error {
	until := now.Add(p.cfg.TTL)
	res.Until = until
	pairs, reasons := p.patterns(ctx, f, in)
	rules := map[string][]string{}
	for _, pr := range pairs {
		id, err := tx.AddSuppression(ctx, state.SuppressionRow{Kind: KindSuppress, Rule: pr[0], Entity: pr[1], Feedback: f.ID, Created: now, Expires: until})
		if err != nil {
			return err
		}
		res.Suppressions = append(res.Suppressions, id)
		rules[pr[1]] = append(rules[pr[1]], pr[0])
		res.Notes = append(res.Notes, fmt.Sprintf("%s suppressed for %s until %s", pr[0], pr[1], until.UTC().Format(time.RFC3339)))
	}
	var ents []string
	for e := range rules {
		ents = append(ents, e)
	}
	slices.Sort(ents)
	for _, ent := range ents {
		k, v, _ := strings.Cut(ent, ":")
		if !proposals.Supported(k) {
			res.Notes = append(res.Notes, fmt.Sprintf("no whitelist for %s: local suppression only", ent))
			continue
		}
		d := proposals.Doc{Kind: k, Value: v, Rules: rules[ent], Host: p.cfg.Hostname, Verdict: f.Verdict, Note: f.Note, Who: f.Who,
			Feedback: f.ID, Incident: f.Incident, Action: f.Action, AuditSeq: f.AuditSeq, Evidence: reasons[ent], Created: now}
		id, dup, err := proposals.Queue(ctx, tx, d, until, now)
		if err != nil {
			return err
		}
		res.Proposals = append(res.Proposals, id)
		if dup {
			res.Notes = append(res.Notes, fmt.Sprintf("proposal %d for %s already stands", id, ent))
		} else {
			res.Notes = append(res.Notes, fmt.Sprintf("proposal %d queued for %s", id, ent))
		}
	}
	return nil
}

func (p *Processor) dampen(ctx context.Context, tx *state.Tx, f state.FeedbackRow, in *correlate.Incident, now time.Time, res *Result) error {
	until := now.Add(p.cfg.DampTTL)
	res.Until = until
	pairs, _ := p.patterns(ctx, f, in)
	for _, pr := range pairs {
		if slices.Contains(res.Dampers, pr[0]) {
			continue
		}
		if _, err := tx.AddSuppression(ctx, state.SuppressionRow{Kind: KindDampen, Rule: pr[0], Feedback: f.ID, Created: now, Expires: until}); err != nil {
			return err
		}
		res.Dampers = append(res.Dampers, pr[0])
		res.Notes = append(res.Notes, fmt.Sprintf("%s weight ×%g until %s", pr[0], DampenFactor, until.UTC().Format(time.RFC3339)))
	}
	return nil
}

// missed turns the window's events into a case and distrusts their keys.
func (p *Processor) missed(ctx context.Context, tx *state.Tx, f state.FeedbackRow, now time.Time, res *Result) error {
	from, to := f.From, f.To
	if to.IsZero() {
		to = f.Created
	}
	if from.IsZero() {
		from = to.Add(-DefaultMissed)
	}
	var ent *signal.Entity
	if f.Entity != "" {
		e, err := ParseEntity(f.Entity)
		if err != nil {
			return err
		}
		ent = &e
	}
	var evs []*event.Event
	if p.cfg.Effects != nil {
		evs = p.cfg.Effects.Recent(func(ev *event.Event) bool {
			return !ev.Time.Before(from) && !ev.Time.After(to) && (ent == nil || Involves(ev, *ent))
		})
	}
	var keys []string
	for _, ev := range evs {
		for _, k := range baseline.KeysOf(ev) {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	if len(evs) > maxCaseEvents {
		evs = evs[len(evs)-maxCaseEvents:]
	}
	doc, _ := json.Marshal(map[string]any{"entity": f.Entity, "from": from, "to": to, "note": f.Note, "events": evs, "baseline_keys": keys})
	cid, err := tx.AddCase(ctx, state.CaseRow{Feedback: f.ID, Label: Missed, Created: now, Doc: doc})
	if err != nil {
		return err
	}
	if err := tx.Untrust(ctx, f.ID, now, keys...); err != nil {
		return err
	}
	res.Case, res.Untrusted = cid, keys
	res.Notes = append(res.Notes, fmt.Sprintf("case %d labelled missed with %d event(s); %d baseline key(s) no longer normal", cid, len(evs), len(keys)))
	if p.cfg.Effects == nil {
		res.Notes = append(res.Notes, "no running agent: no recent events in memory")
	}
	return nil
}

// Involves reports whether an event concerns the entity.
func Involves(ev *event.Event, e signal.Entity) bool {
	switch e.Kind {
	case signal.IP:
		if ev.Addr.IsValid() && ev.Addr.Unmap().String() == e.Value {
			return true
		}
		return ev.Net != nil && ev.Net.Remote.IsValid() && ev.Net.Remote.Unmap().String() == e.Value
	case signal.User:
		return ev.User == e.Value || ev.TargetUser == e.Value || (ev.Proc != nil && ev.Proc.User == e.Value)
	case signal.Process:
		pid, _ := strconv.Atoi(e.Value)
		return ev.PID == pid || (ev.Proc != nil && ev.Proc.PID == pid)
	}
	return false
}

// Expire ends suppressions and dampers whose time is over, and the
// proposals that waited on them; it returns how many ended.
func (p *Processor) Expire(ctx context.Context) (int, error) {
	now := p.cfg.Now()
	n := 0
	err := p.cfg.Store.Update(ctx, func(tx *state.Tx) error {
		sups, err := tx.Suppressions(ctx, true)
		if err != nil {
			return err
		}
		for _, s := range sups {
			if now.Before(s.Expires) {
				continue
			}
			ok, err := tx.EndSuppression(ctx, s.ID, now, "expired")
			if err != nil || !ok {
				return err
			}
			n++
			what := fmt.Sprintf("%s for %s", s.Rule, s.Entity)
			if s.Kind == KindDampen {
				what = s.Rule + " damper"
			}
			if _, err := tx.AppendAudit(ctx, audit.Entry{Time: now, Kind: KindFeedback, Subject: fmt.Sprintf("feedback:%d", s.Feedback),
				Message: fmt.Sprintf("local %s of %s expired", s.Kind, what)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	m, err := proposals.Expire(ctx, p.cfg.Store, now)
	if err == nil && n+m > 0 && p.cfg.Effects != nil {
		err = p.cfg.Effects.Load(ctx, p.cfg.Store)
	}
	return n + m, err
}
