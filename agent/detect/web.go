package detect

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
	"github.com/picket-agent/picket/schema"
)

// attackMarkers are request fragments that are exploitation attempts rather
// than mere probing (path traversal, SQL injection, command injection, local
// file inclusion). They are matched on the lower-cased, once-decoded path.
var attackMarkers = [...]string{
	"../", "..%2f", "%2e%2e", "/etc/passwd", "/proc/self/environ",
	"union select", "union+select", "union%20select", "' or '1'='1", "%27%20or%20", "sleep(", "benchmark(",
	"information_schema", "<script", "%3cscript", "${jndi:", "$%7bjndi:", ";wget ", ";curl ", "|sh", "cmd.exe",
	"php://input", "allow_url_include",
}

type webSource struct {
	hits      ring // times of scanner-path/marker hits
	first     time.Time
	last      time.Time
	count     int // scanner-path or marker hits in the episode
	attacks   int // of which attack markers
	paths     nameSet
	next      int       // hit count at which the scan signal reports next
	reported  int       // hit count of the last scan report
	reportAt  time.Time // time of the last scan report
	winStart  time.Time
	winReqs   int
	winErrs   int
	errFired  bool
	evidence  evidence
	reportedA bool
}

type webDetector struct {
	cfg     schema.WebScan
	paths   []string
	sources *lru[netip.Addr, webSource]
	held    int // evidence events held by all sources (evidenceBudget)
}

func newWebDetector(cfg schema.WebScan, capacity int) *webDetector {
	d := &webDetector{cfg: cfg, sources: newLRU[netip.Addr, webSource](capacity)}
	d.sources.onEvict = func(_ netip.Addr, src *webSource) { src.evidence.release(&d.held) }
	for _, p := range cfg.Paths {
		d.paths = append(d.paths, strings.ToLower(p))
	}
	return d
}

func (d *webDetector) newSource() webSource { return webSource{hits: newRing(d.cfg.MinHits)} }

// classify says whether a request path is a scanner probe or an attack.
func (d *webDetector) classify(path string) (probe, attack bool) {
	p := strings.ToLower(path)
	for _, m := range attackMarkers {
		if strings.Contains(p, m) {
			return true, true
		}
	}
	for _, x := range d.paths {
		if strings.Contains(p, x) {
			return true, false
		}
	}
	return false, false
}

func (d *webDetector) Observe(ev *event.Event, emit func(signal.Signal)) {
	if ev.Kind != event.WebRequest || !ev.Addr.IsValid() {
		return
	}
	probe, attack := d.classify(ev.Path)
	isErr := ev.Status >= 400 && ev.Status < 500
	src, ok := d.sources.peek(ev.Addr)
	if !ok {
		if !probe && !isErr {
			// Clean traffic from an unknown source costs no memory.
			return
		}
		src = d.sources.get(ev.Addr, d.newSource)
	}
	w := d.cfg.Window.D()
	now := ev.Time
	if src.count > 0 && now.Sub(src.last) > w {
		src.evidence.release(&d.held)
		fresh := d.newSource()
		fresh.winStart, fresh.winReqs, fresh.winErrs, fresh.errFired = src.winStart, src.winReqs, src.winErrs, src.errFired
		*src = fresh
	}
	// Error ratio uses a tumbling window: cheap, and bursts are what matter.
	if src.winStart.IsZero() || now.Sub(src.winStart) > w {
		src.winStart, src.winReqs, src.winErrs, src.errFired = now, 0, 0, false
	}
	src.winReqs++
	if isErr {
		src.winErrs++
	}
	if probe {
		if src.count == 0 {
			src.first = now
		}
		src.count++
		src.last = now
		src.hits.push(now)
		if attack {
			src.attacks++
		}
		src.paths.add(ev.Path, 5)
		src.evidence.add(ev, &d.held)
		if attack && !src.reportedA {
			src.reportedA = true
			emit(signal.Signal{
				Time: now, Rule: RuleWebAttack, Stage: signal.InitialAccess, Weight: d.cfg.Weight,
				Entities: []signal.Entity{ipEntity(ev.Addr)},
				Reason: fmt.Sprintf("exploitation attempt from %s: %s %q answered %d",
					ev.Addr.Unmap(), ev.HTTPMethod, ev.Path, ev.Status),
				Evidence: []event.Event{*ev},
			})
		}
		if (src.next == 0 && src.hits.within(now, w)) || (src.next != 0 && (src.count >= src.next || (src.count > src.reported && now.Sub(src.reportAt) >= w))) {
			src.next = src.count * 2
			emit(d.scanSignal(ev.Addr, src))
		}
	}
	if d.cfg.ErrorRatio > 0 && !src.errFired && src.next == 0 && src.winErrs >= d.cfg.MinHits &&
		float64(src.winErrs) >= d.cfg.ErrorRatio*float64(src.winReqs) {
		src.errFired = true
		emit(signal.Signal{
			Time: now, Rule: RuleWebScan, Stage: signal.Recon, Weight: d.cfg.Weight,
			Entities: []signal.Entity{ipEntity(ev.Addr)},
			Reason: fmt.Sprintf("%d of %d requests from %s answered 4xx in %s (threshold %d and %.0f%% within %s)",
				src.winErrs, src.winReqs, ev.Addr.Unmap(), span(src.winStart, now), d.cfg.MinHits, d.cfg.ErrorRatio*100, d.cfg.Window),
			Evidence: []event.Event{*ev},
		})
	}
}

func (d *webDetector) scanSignal(addr netip.Addr, src *webSource) signal.Signal {
	src.reported, src.reportAt = src.count, src.last
	return signal.Signal{
		Time: src.last, Rule: RuleWebScan, Stage: signal.Recon, Weight: d.cfg.Weight,
		Entities: []signal.Entity{ipEntity(addr)},
		Reason: fmt.Sprintf("%d requests for scanner paths from %s in %s (threshold %d within %s): %s",
			src.count, addr.Unmap(), span(src.first, src.last), d.cfg.MinHits, d.cfg.Window, src.paths.String()),
		Evidence: src.evidence.shared(),
	}
}

// settle reports the final count of scan episodes that grew since their
// last report (see sshDetector.settle).
func (d *webDetector) settle(now time.Time, final bool, emit func(signal.Signal)) {
	var out []signal.Signal
	d.sources.each(func(addr netip.Addr, src *webSource) {
		if src.next == 0 || src.count <= src.reported {
			return
		}
		if final || now.Sub(src.last) > d.cfg.Window.D() {
			out = append(out, d.scanSignal(addr, src))
		}
	})
	sortSignals(out)
	for _, s := range out {
		emit(s)
	}
}
