package baseline

import (
	"cmp"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/event"
	"github.com/picket-agent/picket/agent/signal"
)

// maxKnownInText bounds how many known keys a reason lists, so a reason
// stays one readable line however large the baseline is.
const maxKnownInText = 5

// Deviations reports events the promoted baseline has never seen. It holds
// a frozen index of the baseline, built once, so each event costs a few map
// look-ups; it never learns (drift learning is the agent's job, gated by
// open incidents). Its only running state is the current minute's request
// counts (bounded) and when a package manager last ran.
type Deviations struct {
	idx     *index
	c       Config
	rates   *rateTracker
	lastPkg time.Time
	drift   *driftSlot // shared with the detectors WithConfig derives
}

// index is the frozen baseline, shared by the detectors built from it.
type index struct {
	procs     map[procKey]uint64
	children  map[string][]known // parent exe → child exes
	asUser    map[[2]string][]known
	out       map[outKey]uint64
	dests     map[string][]known // exe → destinations
	listen    map[listenKey]uint64
	listeners map[string][]known // exe → listeners
	users     map[string]*userIndex
	webSrc    map[string]*rateRef
	webCli    map[string]*rateRef
	pers      map[persistKey]bool
	persPath  map[[2]string]int // (what, path) → entries known
	files     map[string]string
}

// rateRef is one source's or client's learned rates.
type rateRef struct {
	peaks  [24]uint32
	s4, s5 float64 // learned 4xx and 5xx shares
}

// known is one known thing and how often it was seen, for reasons.
type known struct {
	name  string
	count uint64
}

type userIndex struct {
	prefixes map[netip.Prefix]bool
	methods  map[string]bool
	prefixL  []known
	methodL  []known
	hours    [24]uint64
	logins   uint64
}

// NewDeviations builds the detector from a promoted model.
func NewDeviations(m *Model, c Config) *Deviations {
	s := m.Snapshot()
	x := &index{procs: map[procKey]uint64{}, children: map[string][]known{}, asUser: map[[2]string][]known{},
		out: map[outKey]uint64{}, dests: map[string][]known{}, listen: map[listenKey]uint64{}, listeners: map[string][]known{},
		users: map[string]*userIndex{}, webSrc: map[string]*rateRef{}, webCli: map[string]*rateRef{},
		pers: map[persistKey]bool{}, persPath: map[[2]string]int{}, files: map[string]string{}}
	for _, e := range s.Process {
		x.procs[procKey{e.Parent, e.Exe, e.User}] = e.Count
		x.children[e.Parent] = addKnown(x.children[e.Parent], path.Base(e.Exe), e.Count)
		pe := [2]string{e.Parent, e.Exe}
		x.asUser[pe] = addKnown(x.asUser[pe], e.User, e.Count)
	}
	for _, e := range s.Outbound {
		p, _ := parsePrefix(e.Prefix) // valid: the model produced it
		x.out[outKey{e.Exe, p, e.Port, e.Proto}] = e.Count
		x.dests[e.Exe] = addKnown(x.dests[e.Exe], fmt.Sprintf("%s port %d/%s", orUnknown(e.Prefix), e.Port, e.Proto), e.Count)
	}
	for _, e := range s.Listener {
		x.listen[listenKey{e.Exe, e.Proto, e.Port}] = e.Count
		x.listeners[e.Exe] = addKnown(x.listeners[e.Exe], fmt.Sprintf("%d/%s", e.Port, e.Proto), e.Count)
	}
	for _, e := range s.Auth.Logins {
		u := x.user(e.User)
		p, _ := parsePrefix(e.Prefix)
		u.prefixes[p] = true
		u.prefixL = addKnown(u.prefixL, orLocal(e.Prefix), e.Count)
		u.methods[e.Method] = true
		u.methodL = addKnown(u.methodL, orUnknown(e.Method), e.Count)
	}
	for _, e := range s.Auth.Hours {
		u := x.user(e.User)
		u.hours = e.Hours
		for _, n := range e.Hours {
			u.logins += n
		}
	}
	for _, r := range s.Web.Sources {
		x.webSrc[r.Key] = &rateRef{peaks: r.Peaks, s4: errorShare(r.E4xx, r.Requests), s5: errorShare(r.E5xx, r.Requests)}
	}
	for _, r := range s.Web.Clients {
		x.webCli[r.Key] = &rateRef{peaks: r.Peaks, s4: errorShare(r.E4xx, r.Requests), s5: errorShare(r.E5xx, r.Requests)}
	}
	for _, e := range s.Persist {
		x.pers[persistKey{e.What, e.Path, e.Entry}] = true
		x.persPath[[2]string{e.What, e.Path}]++
	}
	for _, e := range s.Files {
		x.files[e.Path] = e.SHA256
	}
	return &Deviations{idx: x, c: c.orDefault(), rates: newRateTracker(), drift: &driftSlot{}}
}

// WithConfig returns a detector on the same baseline with another
// configuration (a policy reload), its running counts fresh.
func (x *Deviations) WithConfig(c Config) *Deviations {
	return &Deviations{idx: x.idx, c: c.orDefault(), rates: newRateTracker(), drift: x.drift}
}

func (x *index) user(name string) *userIndex {
	u := x.users[name]
	if u == nil {
		u = &userIndex{prefixes: map[netip.Prefix]bool{}, methods: map[string]bool{}}
		x.users[name] = u
	}
	return u
}

// addKnown adds count to name in l (names repeat: one child exe under
// several users).
func addKnown(l []known, name string, count uint64) []known {
	for i := range l {
		if l[i].name == name {
			l[i].count += count
			return l
		}
	}
	return append(l, known{name, count})
}

// listKnown prints the most frequent known things first: "sh (3 times),
// cron (1 time) and 4 more".
func listKnown(l []known) string {
	if len(l) == 0 {
		return "none"
	}
	l = slices.Clone(l)
	slices.SortFunc(l, func(a, b known) int { return cmp.Or(cmp.Compare(b.count, a.count), strings.Compare(a.name, b.name)) })
	var b strings.Builder
	for i, k := range l[:min(len(l), maxKnownInText)] {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (%s)", k.name, times(k.count))
	}
	if len(l) > maxKnownInText {
		fmt.Fprintf(&b, " and %d more", len(l)-maxKnownInText)
	}
	return b.String()
}

func times(n uint64) string {
	if n == 1 {
		return "1 time"
	}
	return strconv.FormatUint(n, 10) + " times"
}

// Observe checks one event against the baseline.
func (x *Deviations) Observe(ev *event.Event, emit func(signal.Signal)) {
	if x.c.Disabled {
		return
	}
	switch ev.Kind {
	case event.ProcExec:
		x.packageManager(ev)
		if x.c.Weights.NewProcess > 0 {
			x.exec(ev, emit)
		}
	case event.NetConnect:
		if x.c.Weights.NewDestination > 0 {
			x.connect(ev, emit)
		}
	case event.NetListen:
		if x.c.Weights.NewListener > 0 {
			x.listenEv(ev, emit)
		}
	case event.AuthSuccess:
		if x.c.Weights.AuthAnomaly > 0 {
			x.login(ev, emit)
		}
	case event.WebRequest:
		x.web(ev, emit)
	case event.PersistChanged:
		if x.c.Weights.NewPersistence > 0 {
			x.persist(ev, emit)
		}
	case event.FileChanged:
		if x.c.Weights.FileChanged > 0 {
			x.file(ev, emit)
		}
	}
}

func (x *Deviations) exec(ev *event.Event, emit func(signal.Signal)) {
	k, ok := procKeyOf(ev)
	if !ok {
		return
	}
	if _, seen := x.idx.procs[k]; seen && !x.c.distrusts(k.key()) {
		return
	}
	p := ev.Proc
	parent := "an unknown parent"
	pname := "the unknown parent"
	if len(p.Lineage) > 0 {
		parent = ancestorName(p.Lineage[0])
		pname = nameOf(p.Lineage[0].Exe, p.Lineage[0].Comm)
	}
	reason := fmt.Sprintf("%s under %s has never run before", procName(p), parent)
	if users := x.idx.asUser[[2]string{k.parent, k.exe}]; len(users) > 0 {
		reason = fmt.Sprintf("%s under %s has never run as %s before, only as %s", procName(p), parent, k.user, listKnown(users))
	} else {
		reason += " (as " + k.user + ")"
	}
	reason += fmt.Sprintf("; known children of %s: %s", pname, listKnown(x.idx.children[k.parent]))
	ents := []signal.Entity{{Kind: signal.Process, Value: strconv.Itoa(p.PID)}}
	if p.PPID > 1 {
		ents = append(ents, signal.Entity{Kind: signal.Process, Value: strconv.Itoa(p.PPID)})
	}
	x.emit(ev, emit, RuleNewProcess, signal.Execution, x.c.Weights.NewProcess, ents, reason,
		"exec:"+k.parent+"→"+k.exe+"@"+k.user, x.learnable(procDrift(k), k.key()))
}

func (x *Deviations) connect(ev *event.Event, emit func(signal.Signal)) {
	k, ok := outKeyOf(ev)
	if !ok {
		return
	}
	if _, seen := x.idx.out[k]; seen && !x.c.distrusts(k.key()) {
		return
	}
	who := "an unattributed socket"
	if ev.Proc != nil {
		who = procName(ev.Proc) + " " + k.exe
	}
	reason := fmt.Sprintf("%s connected to %s port %d/%s: %s never seen for %s; known destinations: %s",
		who, ev.Net.Remote.Unmap(), k.port, k.proto, prefixString(k.prefix), orUnknown(k.exe), listKnown(x.idx.dests[k.exe]))
	ents := []signal.Entity{{Kind: signal.IP, Value: ev.Net.Remote.Unmap().WithZone("").String()}}
	if ev.Proc != nil {
		ents = append(ents, signal.Entity{Kind: signal.Process, Value: strconv.Itoa(ev.Proc.PID)})
	}
	x.emit(ev, emit, RuleNewDestination, signal.Exfiltration, x.c.Weights.NewDestination, ents, reason,
		fmt.Sprintf("connect:%s→%s:%d/%s", k.exe, prefixString(k.prefix), k.port, k.proto), x.learnable(outDrift(k), k.key()))
}

func (x *Deviations) listenEv(ev *event.Event, emit func(signal.Signal)) {
	k, ok := listenKeyOf(ev)
	if !ok {
		return
	}
	if _, seen := x.idx.listen[k]; seen && !x.c.distrusts(k.key()) {
		return
	}
	who := "an unattributed socket"
	var ents []signal.Entity
	if ev.Proc != nil {
		who = procName(ev.Proc) + " " + k.exe
		ents = append(ents, signal.Entity{Kind: signal.Process, Value: strconv.Itoa(ev.Proc.PID)})
	}
	reason := fmt.Sprintf("%s listens on %d/%s, never seen before; known listeners of %s: %s",
		who, k.port, k.proto, orUnknown(k.exe), listKnown(x.idx.listeners[k.exe]))
	x.emit(ev, emit, RuleNewListener, signal.Persistence, x.c.Weights.NewListener, ents, reason,
		fmt.Sprintf("listen:%s:%d/%s", k.exe, k.port, k.proto), x.learnable(listenDrift(k), k.key()))
}

// login flags a new source prefix, a new method, or an unusual hour. The
// hour is the host's local time (people keep office hours in their own
// zone), a neighbouring hour counts as usual (a login at 08:55 and one at
// 09:05 are the same habit), and hours are judged only for users with
// enough learned logins to have a habit at all.
func (x *Deviations) login(ev *event.Event, emit func(signal.Signal)) {
	k, ok := loginKeyOf(ev)
	if !ok {
		return
	}
	local := ev.Time.In(x.c.Loc)
	hour := local.Hour()
	from := "locally"
	if ev.Addr.IsValid() {
		from = "from " + ev.Addr.Unmap().WithZone("").String()
	}
	head := fmt.Sprintf("%s logged in by %s %s at %02dh %s", k.user, orUnknown(k.method), from, hour, local.Format("MST"))
	var why []string
	newKey := false // the (user, prefix, method) key is new, not only the hour
	u := x.idx.users[k.user]
	switch {
	case u == nil:
		why = append(why, k.user+" never logged in during the baseline")
		newKey = true
	default:
		if !u.prefixes[k.prefix] {
			why = append(why, fmt.Sprintf("new source %s (known: %s)", orLocal(prefixString(k.prefix)), listKnown(u.prefixL)))
			newKey = true
		}
		if !u.methods[k.method] {
			why = append(why, fmt.Sprintf("new method %s (known: %s)", orUnknown(k.method), listKnown(u.methodL)))
			newKey = true
		}
		if u.logins >= uint64(x.c.AuthMinLogins) && u.hours[(hour+23)%24]+u.hours[hour]+u.hours[(hour+1)%24] == 0 {
			why = append(why, fmt.Sprintf("never logged in within an hour of %02dh before (known hours: %s)", hour, listHours(u.hours)))
		}
	}
	if len(why) == 0 {
		return
	}
	var ents []signal.Entity
	if ev.Addr.IsValid() {
		ents = append(ents, signal.Entity{Kind: signal.IP, Value: ev.Addr.Unmap().WithZone("").String()})
	}
	// The login's user is the actor (as in the ssh detector), root included.
	ents = append(ents, signal.Entity{Kind: signal.User, Value: k.user})
	// Drift learns the login and its hour as Learn does: the hour is
	// counted for every reported login, so the user's histogram grows.
	if newKey {
		x.noteEvent(loginDrift(k), ev, ents)
	}
	x.noteEvent(hourDrift(k.user, hour), ev, ents)
	emit(signal.Signal{Time: ev.Time, Rule: RuleAuthAnomaly, Stage: signal.InitialAccess, Weight: x.c.Weights.AuthAnomaly,
		Entities: ents, Reason: head + ": " + strings.Join(why, "; "), Evidence: []event.Event{*ev},
		Subject: fmt.Sprintf("login:%s/%s@%02d", prefixString(k.prefix), k.method, hour)})
}

// emit adds the entities every process finding carries, as the process
// detectors do: the user unless root (root is everyone's, keyed on it every
// root process would share one incident) and the container.
func (x *Deviations) emit(ev *event.Event, emit func(signal.Signal), rule string, stage signal.Stage, w float64,
	ents []signal.Entity, reason, subject string, dk DriftKey) {
	if p := ev.Proc; p != nil {
		if p.User != "" && p.UID != 0 {
			ents = append(ents, signal.Entity{Kind: signal.User, Value: p.User})
		}
		if p.Container != nil {
			ents = append(ents, signal.Entity{Kind: signal.Container, Value: p.Container.ID})
		}
	}
	x.noteEvent(dk, ev, ents)
	emit(signal.Signal{Time: ev.Time, Rule: rule, Stage: stage, Weight: w, Entities: ents, Reason: reason,
		Evidence: []event.Event{*ev}, Subject: subject})
}

// listHours prints the hours with logins: "08h, 09h, 17h".
func listHours(h [24]uint64) string {
	var hs []string
	for i, n := range h {
		if n > 0 {
			hs = append(hs, fmt.Sprintf("%02dh", i))
		}
	}
	if len(hs) == 0 {
		return "none"
	}
	return strings.Join(hs, ", ")
}

func nameOf(exe, comm string) string {
	if comm != "" {
		return comm
	}
	if exe != "" {
		return path.Base(exe)
	}
	return "?"
}

func procName(p *event.Process) string {
	return fmt.Sprintf("%s(%d)", nameOf(p.Exe, p.Comm), p.PID)
}

func ancestorName(a event.Ancestor) string {
	return fmt.Sprintf("%s(%d)", nameOf(a.Exe, a.Comm), a.PID)
}
