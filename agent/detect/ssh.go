package detect

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/schema"
)

// maxNames bounds the user names remembered per source for reasons and
// spraying; spraying needs only distinct_users of them to trigger, and
// 50,000 sources each trying new names must not cost more than a few
// hundred bytes apiece.
const maxNames = 16

// sshSource is everything remembered about one remote address.
type sshSource struct {
	// Brute force episode: it starts at the first failure and ends after a
	// quiet gap longer than the window.
	recent    ring       // times of the last max_failures failures
	first     time.Time  // first failure of the episode
	last      time.Time  // last failure of the episode
	failures  int        // failures in the episode
	users     nameSet    // users tried in the episode
	bfNext    int        // failure count at which brute force reports next (0: not yet reported)
	bfReport  int        // failure count of the last brute-force report
	bfAt      time.Time  // time of the last brute-force report
	userTimes []userSeen // last time each user name was tried, at most maxNames
	sprayNext int        // distinct-user count at which spraying reports next
	evidence  evidence
}

type userSeen struct {
	name string
	at   int64 // unix nanoseconds: a third of a time.Time
}

type sshDetector struct {
	bf      schema.SSHBruteForce
	spray   schema.PasswordSpray
	after   schema.LoginAfterFailures
	sources *lru[netip.Addr, sshSource]
	quiet   time.Duration // gap that ends an episode: the longest enabled window
	held    int           // evidence events held by all sources (evidenceBudget)
}

func newSSHDetector(d schema.Detectors, capacity int) *sshDetector {
	s := &sshDetector{bf: d.SSHBruteForce, spray: d.PasswordSpray, after: d.LoginAfterFailures,
		sources: newLRU[netip.Addr, sshSource](capacity)}
	s.sources.onEvict = func(_ netip.Addr, src *sshSource) { src.evidence.release(&s.held) }
	for _, w := range []schema.Duration{d.SSHBruteForce.Window, d.PasswordSpray.Window, d.LoginAfterFailures.Window} {
		if w.D() > s.quiet {
			s.quiet = w.D()
		}
	}
	return s
}

func (d *sshDetector) newSource() sshSource {
	n := d.bf.MaxFailures
	if n < 1 {
		n = 1
	}
	return sshSource{recent: newRing(n)}
}

func (d *sshDetector) Observe(ev *event.Event, emit func(signal.Signal)) {
	if !ev.Addr.IsValid() {
		return
	}
	switch ev.Kind {
	case event.AuthFailure:
		d.failure(ev, emit)
	case event.AuthInvalidUser:
		// Names the user for spraying; sshd logs a Failed line for the same
		// attempt, which is what counts as the failure.
		if src, ok := d.sources.peek(ev.Addr); ok || d.spray.Enabled {
			if !ok {
				src = d.sources.get(ev.Addr, d.newSource)
			}
			d.sprayUser(src, ev, emit)
		}
	case event.AuthSuccess:
		d.success(ev, emit)
	}
}

func (d *sshDetector) failure(ev *event.Event, emit func(signal.Signal)) {
	src := d.sources.get(ev.Addr, d.newSource)
	now := ev.Time
	if src.failures > 0 && now.Sub(src.last) > d.quiet {
		src.evidence.release(&d.held)
		*src = d.newSource()
	}
	if src.failures == 0 {
		src.first = now
	}
	n := ev.N()
	src.failures += n
	src.last = now
	for i := 0; i < n && i < len(src.recent.t); i++ {
		src.recent.push(now)
	}
	if ev.User != "" {
		src.users.add(ev.User, maxNames)
	}
	src.evidence.add(ev, &d.held)
	if d.bf.Enabled {
		d.bruteForce(src, ev, emit)
	}
	if d.spray.Enabled && ev.User != "" {
		d.sprayUser(src, ev, emit)
	}
}

// bruteForce reports when max_failures fall within the window, then again
// each time the episode's count doubles, so a long attack updates its
// incident with the true count without a signal per line.
func (d *sshDetector) bruteForce(src *sshSource, ev *event.Event, emit func(signal.Signal)) {
	if src.bfNext == 0 {
		if !src.recent.within(ev.Time, d.bf.Window.D()) {
			return
		}
	} else if src.failures < src.bfNext && ev.Time.Sub(src.bfAt) < d.bf.Window.D() {
		// Re-report at doubling counts, and at least once per window while
		// the attack goes on, so its incident stays open and current.
		return
	}
	src.bfNext = src.failures * 2
	emit(d.bruteForceSignal(ev.Addr, src, ev.Time))
}

func (d *sshDetector) bruteForceSignal(addr netip.Addr, src *sshSource, at time.Time) signal.Signal {
	src.bfReport, src.bfAt = src.failures, at
	return signal.Signal{
		Time:     at,
		Rule:     RuleSSHBruteForce,
		Stage:    signal.Recon,
		Weight:   d.bf.Weight,
		Entities: []signal.Entity{ipEntity(addr)},
		Reason: fmt.Sprintf("%d failed SSH logins from %s in %s (threshold %d within %s); users tried: %s",
			src.failures, addr.Unmap(), span(src.first, src.last), d.bf.MaxFailures, d.bf.Window, src.users.String()),
		Evidence: src.evidence.shared(),
	}
}

// settle reports the final count of brute-force episodes that grew since
// their last report: those quiet for longer than the window at now, or all
// of them when final (end of a replay), so an incident ends with the true
// number of failures rather than the last power of two.
func (d *sshDetector) settle(now time.Time, final bool, emit func(signal.Signal)) {
	if !d.bf.Enabled {
		return
	}
	var out []signal.Signal
	d.sources.each(func(addr netip.Addr, src *sshSource) {
		if src.bfNext == 0 || src.failures <= src.bfReport {
			return
		}
		if final || now.Sub(src.last) > d.bf.Window.D() {
			out = append(out, d.bruteForceSignal(addr, src, src.last))
		}
	})
	sortSignals(out)
	for _, s := range out {
		emit(s)
	}
}

// intern returns a copy of name owned by the source (ev.User is a slice
// of the log line, which it would keep alive), shared with the names of
// the reason when it is one of them.
func (src *sshSource) intern(name string) string {
	if i := slices.Index(src.users.names, name); i >= 0 {
		return src.users.names[i]
	}
	return strings.Clone(name)
}

func (d *sshDetector) sprayUser(src *sshSource, ev *event.Event, emit func(signal.Signal)) {
	if ev.User == "" {
		return
	}
	now := ev.Time
	w := d.spray.Window.D()
	i := slices.IndexFunc(src.userTimes, func(u userSeen) bool { return u.name == ev.User })
	at := now.UnixNano()
	within := func(u userSeen) bool { return at-u.at <= int64(w) }
	if i < 0 && len(src.userTimes) >= maxNames {
		src.userTimes = slices.DeleteFunc(src.userTimes, func(u userSeen) bool { return !within(u) })
		if len(src.userTimes) >= maxNames {
			return
		}
	}
	if i >= 0 {
		src.userTimes[i].at = at
	} else {
		src.userTimes = append(src.userTimes, userSeen{src.intern(ev.User), at})
	}
	distinct := 0
	for _, u := range src.userTimes {
		if within(u) {
			distinct++
		}
	}
	if distinct < d.spray.DistinctUsers || (src.sprayNext != 0 && distinct < src.sprayNext) {
		return
	}
	src.sprayNext = distinct * 2
	var recent []userSeen
	for _, u := range src.userTimes {
		if within(u) {
			recent = append(recent, u)
		}
	}
	sort.Slice(recent, func(i, j int) bool {
		if recent[i].at != recent[j].at {
			return recent[i].at < recent[j].at
		}
		return recent[i].name < recent[j].name
	})
	names := nameSet{}
	for _, r := range recent {
		names.add(r.name, 8)
	}
	sig := signal.Signal{
		Time:     now,
		Rule:     RulePasswordSpray,
		Stage:    signal.Recon,
		Weight:   d.spray.Weight,
		Entities: []signal.Entity{ipEntity(ev.Addr)},
		Reason: fmt.Sprintf("%d distinct user names tried from %s within %s (threshold %d); e.g. %s",
			distinct, ev.Addr.Unmap(), d.spray.Window, d.spray.DistinctUsers, names.String()),
		Evidence: src.evidence.shared(),
	}
	sig.AddEvidence(*ev)
	emit(sig)
}

// success flags a login that follows failures from the same source: the
// moment a guessing attack becomes access.
func (d *sshDetector) success(ev *event.Event, emit func(signal.Signal)) {
	if !d.after.Enabled {
		return
	}
	src, ok := d.sources.peek(ev.Addr)
	if !ok || src.failures < d.after.MinFailures || ev.Time.Sub(src.last) > d.after.Window.D() {
		return
	}
	sig := signal.Signal{
		Time:     ev.Time,
		Rule:     RuleLoginAfterFailures,
		Stage:    signal.InitialAccess,
		Weight:   d.after.Weight,
		Entities: []signal.Entity{ipEntity(ev.Addr), {Kind: signal.User, Value: ev.User}},
		Reason: fmt.Sprintf("successful %s login as %q from %s after %d failed logins from it in %s (threshold %d within %s)",
			ev.Method, ev.User, ev.Addr.Unmap(), src.failures, span(src.first, src.last), d.after.MinFailures, d.after.Window),
		Evidence: append(src.evidence.shared(), *ev),
	}
	emit(sig)
}
