package main

import (
	"bytes"
	"time"

	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/agent/respond"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/audit/explain"
	"github.com/picket-agent/picket/schema"
)

// incidentRecord is the JSON contract of `picket incidents --json`,
// `picket explain --json` and `picket replay --json`: one object per line.
// Fields are only ever added, never renamed or removed.
type incidentRecord struct {
	ID          int64             `json:"id"`
	Status      correlate.Status  `json:"status"`
	Level       correlate.Level   `json:"level"`
	Score       float64           `json:"score"`
	Opened      time.Time         `json:"opened"`
	Updated     time.Time         `json:"updated"`
	Stages      []signal.Stage    `json:"stages"`
	Entities    []signal.Entity   `json:"entities"`
	Signals     []signalRecord    `json:"signals"`
	Scoring     correlate.Scoring `json:"scoring"`
	Plans       []planRecord      `json:"plans"`
	Explanation string            `json:"explanation"`
}

type signalRecord struct {
	Time     time.Time       `json:"time"`
	Rule     string          `json:"rule"`
	Stage    signal.Stage    `json:"stage"`
	Weight   float64         `json:"weight"`
	Entities []signal.Entity `json:"entities"`
	Reason   string          `json:"reason"`
	Evidence []string        `json:"evidence"`
}

type planRecord struct {
	Time   time.Time       `json:"time"`
	Action string          `json:"action"`
	Target string          `json:"target"`
	TTL    string          `json:"ttl"`
	Level  correlate.Level `json:"level"`
	Status string          `json:"status"`
	Reason string          `json:"reason"`
}

func newIncidentRecord(in *correlate.Incident, p *schema.Policy, plans []respond.Plan) incidentRecord {
	sc := correlate.Score(in.Signals, p, nil)
	// The stored level may have been capped with a whitelist; keep it.
	sc.Level, sc.Capped = in.Level, in.Capped
	r := incidentRecord{ID: in.ID, Status: in.Status, Level: in.Level, Score: in.Score, Opened: in.Opened.UTC(),
		Updated: in.Updated.UTC(), Stages: nonNil(in.Stages), Entities: nonNil(in.Entities), Scoring: sc,
		Signals: []signalRecord{}, Plans: []planRecord{}}
	for _, s := range in.Signals {
		sr := signalRecord{Time: s.Time.UTC(), Rule: s.Rule, Stage: s.Stage, Weight: s.Weight, Entities: nonNil(s.Entities), Reason: s.Reason, Evidence: []string{}}
		for _, ev := range s.Evidence {
			if ev.Line != "" {
				sr.Evidence = append(sr.Evidence, ev.Line)
			}
		}
		r.Signals = append(r.Signals, sr)
	}
	for _, pl := range plans {
		r.Plans = append(r.Plans, planRecord{Time: pl.Time.UTC(), Action: pl.Action, Target: pl.Target, TTL: pl.TTL.String(),
			Level: pl.Level, Status: pl.Status, Reason: pl.Reason})
	}
	var b bytes.Buffer
	explain.Incident(&b, in, sc, p.Levels, plans, explain.Options{Evidence: 3})
	r.Explanation = b.String()
	return r
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
