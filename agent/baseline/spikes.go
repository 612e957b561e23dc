package baseline

import (
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

// maxTrackedClients bounds the per-client minute counters of the rate
// rules: past it, counters of finished minutes are dropped, and if the
// current minute alone has more clients, all of them (a flood of distinct
// clients is the source rule's business).
const maxTrackedClients = 50000

// minuteCount is one key's requests in the minute in progress.
type minuteCount struct {
	minute    int64
	n, e4, e5 uint32
	fired     uint8 // rate, 4xx, 5xx already reported this minute
}

const (
	firedRate = 1 << iota
	fired4xx
	fired5xx
)

type rateTracker struct {
	src, cli map[string]*minuteCount
}

func newRateTracker() *rateTracker {
	return &rateTracker{src: map[string]*minuteCount{}, cli: map[string]*minuteCount{}}
}

// count adds one request to key's minute and returns the counter, nil for
// a request older than the minute in progress (read out of order: it
// cannot start a spike that is already over).
func count(m map[string]*minuteCount, key string, minute int64, n uint32, status int, limit int) *minuteCount {
	c := m[key]
	if c == nil {
		if len(m) >= limit {
			for k, v := range m {
				if v.minute < minute {
					delete(m, k)
				}
			}
			if len(m) >= limit {
				clear(m)
			}
		}
		c = &minuteCount{minute: minute}
		m[key] = c
	}
	switch {
	case minute < c.minute:
		return nil
	case minute > c.minute:
		*c = minuteCount{minute: minute}
	}
	c.n += n
	switch {
	case status >= 400 && status < 500:
		c.e4 += n
	case status >= 500 && status < 600:
		c.e5 += n
	}
	return c
}

func (x *Deviations) web(ev *event.Event, emit func(signal.Signal)) {
	minute := ev.Time.Unix() / 60
	n := uint32(ev.N())
	src := webSourceOf(ev)
	if c := count(x.rates.src, src, minute, n, ev.Status, maxTrackedLogSources); c != nil {
		x.spike(ev, c, "source "+src, x.idx.webSrc[src], x.c.SourceRateFloor, sourceEntity(ev), emit,
			DriftKey{Kind: DriftWebSource, Web: src})
	}
	if !ev.Addr.IsValid() {
		return
	}
	cli := ev.Addr.Unmap().WithZone("").String()
	if c := count(x.rates.cli, cli, minute, n, ev.Status, maxTrackedClients); c != nil {
		x.spike(ev, c, "client "+cli, x.idx.webCli[cli], x.c.ClientRateFloor,
			[]signal.Entity{{Kind: signal.IP, Value: cli}}, emit, DriftKey{Kind: DriftWebClient, Web: cli})
	}
}

// maxTrackedLogSources bounds the per-source counters (sources are few:
// log files and virtual hosts).
const maxTrackedLogSources = 10000

// sourceEntity names a log source as the file it is read from, so a spike
// joins other findings about that site's log.
func sourceEntity(ev *event.Event) []signal.Entity {
	f, ok := strings.CutPrefix(ev.Source, "file:")
	if !ok || f == "" {
		return nil
	}
	return []signal.Entity{{Kind: signal.File, Value: f}}
}

// spike checks one key's minute against its learned rates and reports a
// request-rate or error-rate spike once per minute and kind.
func (x *Deviations) spike(ev *event.Event, c *minuteCount, who string, ref *rateRef, floor int, ents []signal.Entity,
	emit func(signal.Signal), dk DriftKey) {
	local := time.Unix(c.minute*60, 0).In(x.c.Loc)
	at := local.Format("15:04 MST")
	dk.Hour = local.Hour()
	if c.fired&firedRate != 0 {
		// The rest of a spiking minute raises the peak drift would learn.
		x.noteDrift(dk, ev.Time, 0, c.n, nil)
	}
	if w := x.c.Weights.RequestRate; w > 0 && c.fired&firedRate == 0 {
		limit := float64(floor)
		learned := "never seen during the baseline"
		if ref != nil {
			peak := peakAround(ref.peaks, local.Hour())
			limit = max(limit, math.Ceil(x.c.RateFactor*float64(peak)))
			learned = fmt.Sprintf("learned peak %d/min around %02dh", peak, local.Hour())
		}
		if float64(c.n) > limit {
			c.fired |= firedRate
			x.noteDrift(dk, ev.Time, 1, c.n, ents)
			x.emitWeb(ev, emit, RuleRequestRate, w, ents, fmt.Sprintf("%s: %d requests in the minute from %s, above its limit of %g/min (%s; limit: %g × peak, at least %d)",
				who, c.n, at, limit, learned, x.c.RateFactor, floor), "rate:"+who)
		}
	}
	w := x.c.Weights.ErrorRate
	if w <= 0 {
		return
	}
	for _, class := range []struct {
		name  string
		bit   uint8
		errs  uint32
		share float64
	}{{"4xx", fired4xx, c.e4, refShare(ref, false)}, {"5xx", fired5xx, c.e5, refShare(ref, true)}} {
		if c.fired&class.bit != 0 || int(class.errs) < x.c.ErrorMin {
			continue
		}
		threshold := max(x.c.ErrorRatio, min(1, x.c.RateFactor*class.share))
		got := float64(class.errs) / float64(c.n)
		if got < threshold {
			continue
		}
		c.fired |= class.bit
		x.emitWeb(ev, emit, RuleErrorRate, w, ents, fmt.Sprintf("%s: %d of %d answers %s in the minute from %s (%.0f%%), learned share %.1f%% (threshold %.0f%%, at least %d)",
			who, class.errs, c.n, class.name, at, 100*got, 100*class.share, 100*threshold, x.c.ErrorMin), "errors:"+class.name+":"+who)
	}
}

func refShare(r *rateRef, fivexx bool) float64 {
	switch {
	case r == nil:
		return 0
	case fivexx:
		return r.s5
	}
	return r.s4
}

func (x *Deviations) emitWeb(ev *event.Event, emit func(signal.Signal), rule string, w float64, ents []signal.Entity, reason, subject string) {
	emit(signal.Signal{Time: ev.Time, Rule: rule, Stage: signal.Recon, Weight: w, Entities: slices.Clone(ents),
		Reason: reason, Evidence: []event.Event{*ev}, Subject: subject})
}

// persist reports persistence entries the baseline does not hold.
func (x *Deviations) persist(ev *event.Event, emit func(signal.Signal)) {
	var fresh []string
	var k0 persistKey
	var keys []persistKey
	for _, k := range persistKeysOf(ev) {
		if !x.idx.pers[k] && !slices.Contains(fresh, k.entry) {
			if len(fresh) == 0 {
				k0 = k
			}
			fresh = append(fresh, k.entry)
			keys = append(keys, k)
		}
	}
	if len(fresh) == 0 {
		return
	}
	c := ev.Change
	shown := fresh[:min(len(fresh), 3)]
	quoted := make([]string, len(shown))
	for i, e := range shown {
		quoted[i] = strconv.Quote(e)
	}
	more := ""
	if len(fresh) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(fresh)-len(shown))
	}
	reason := fmt.Sprintf("%s entry in %s not in the baseline: %s%s (%d entries of it known)",
		c.What, orUnknown(c.Path), strings.Join(quoted, ", "), more, x.idx.persPath[[2]string{k0.what, k0.path}])
	var ents []signal.Entity
	// As the persistence detector: the user joins the change with that
	// user's logins and processes, root is everyone's.
	if ev.User != "" && ev.User != "root" {
		ents = append(ents, signal.Entity{Kind: signal.User, Value: ev.User})
	}
	if c.Path != "" {
		ents = append(ents, signal.Entity{Kind: signal.File, Value: c.Path})
	}
	for _, k := range keys {
		x.noteEvent(persistDrift(k), ev, ents)
	}
	emit(signal.Signal{Time: ev.Time, Rule: RuleNewPersistence, Stage: signal.Persistence, Weight: x.c.Weights.NewPersistence,
		Entities: ents, Reason: reason, Evidence: []event.Event{*ev}, Subject: "persist:" + k0.what + ":" + k0.path + ":" + k0.entry})
}

// packageManager notes when dpkg, apt or unattended-upgrade ran: the
// system files changing in the next minutes are theirs.
func (x *Deviations) packageManager(ev *event.Event) {
	p := ev.Proc
	if p == nil {
		return
	}
	if packageManagers[p.Comm] || (p.Exe != "" && packageManagers[path.Base(p.Exe)]) {
		if ev.Time.After(x.lastPkg) {
			x.lastPkg = ev.Time
		}
	}
}

// file reports a system file whose new content neither the baseline nor
// a package update explains.
func (x *Deviations) file(ev *event.Event, emit func(signal.Signal)) {
	p, h, ok := fileHashOf(ev)
	if !ok || !underAny(p, x.c.SystemDirs) {
		return
	}
	old, had := x.idx.files[p]
	if had && old == h {
		return // back to the content the baseline knows
	}
	if !x.lastPkg.IsZero() && ev.Time.Sub(x.lastPkg) <= x.c.PackageWindow && ev.Time.Sub(x.lastPkg) >= -time.Minute {
		return
	}
	if x.c.Packages != nil {
		if ok, _ := x.c.Packages.Explains(p); ok {
			return
		}
	}
	was := "not in the baseline"
	if had {
		was = "baseline sha256:" + old[:12] + "…"
	}
	reason := fmt.Sprintf("%s %s outside a package update: now sha256:%s… (%s); no package manager ran and dpkg's md5sums do not list this content",
		p, strings.TrimPrefix(ev.Change.What, "file_"), h[:12], was)
	ents := []signal.Entity{{Kind: signal.File, Value: p}}
	x.noteEvent(fileDrift(p, h), ev, ents)
	emit(signal.Signal{Time: ev.Time, Rule: RuleFileChanged, Stage: signal.Persistence, Weight: x.c.Weights.FileChanged,
		Entities: ents, Reason: reason, Evidence: []event.Event{*ev},
		Subject: "file:" + p + ":" + h})
}

func underAny(p string, dirs []string) bool {
	for _, d := range dirs {
		d = strings.TrimSuffix(d, "/")
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}
