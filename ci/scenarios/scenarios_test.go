package scenarios

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/correlate"
	"github.com/picket-agent/picket/internal/integration"
)

// Timing defaults (expect.json may override timeout and settle).
const (
	defaultTimeout = 15 * time.Second // positive expectations: poll this long after run.sh
	defaultSettle  = 3 * time.Second  // negative checks: wait this long for late signals
	scriptTimeout  = 60 * time.Second // run.sh is killed (SIGTERM to its group) after this
	agentStartup   = 20 * time.Second
	sensorWarmup   = time.Second // after "running": let the sensors subscribe
)

// expectation is a scenario's expect.json (README.md documents it).
type expectation struct {
	Needs          []string         `json:"needs"`
	Sensors        []string         `json:"sensors"`
	Incidents      []incidentExpect `json:"incidents"`
	ForbiddenRules []string         `json:"forbidden_rules"`
	NoIncidents    bool             `json:"no_incidents"`
	Timeout        string           `json:"timeout"`
	Settle         string           `json:"settle"`
	// LiveOnly: the expectation needs sensors beyond the process sensor
	// (network, files, accounts), so only the live run can check it, not
	// the no-root replay of observed execs through the detectors.
	LiveOnly bool `json:"live_only"`
}

type incidentExpect struct {
	Rules          []string       `json:"rules"`
	MinLevel       string         `json:"min_level"`
	Stages         []string       `json:"stages"`
	Entities       []string       `json:"entities"`
	ReasonContains []string       `json:"reason_contains"`
	Signals        []signalExpect `json:"signals"`
	OneIncident    bool           `json:"one_incident"`
}

type signalExpect struct {
	Rule           string   `json:"rule"`
	Stage          string   `json:"stage"`
	ReasonContains []string `json:"reason_contains"`
}

// incident is the part of `picket incidents --json` the runner reads.
type incident struct {
	ID       int64    `json:"id"`
	Status   string   `json:"status"`
	Level    string   `json:"level"`
	Score    float64  `json:"score"`
	Stages   []string `json:"stages"`
	Entities []entity `json:"entities"`
	Signals  []sig    `json:"signals"`
}

type entity struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

func (e entity) String() string { return e.Kind + ":" + e.Value }

type sig struct {
	Time     time.Time `json:"time"`
	Rule     string    `json:"rule"`
	Stage    string    `json:"stage"`
	Entities []entity  `json:"entities"`
	Reason   string    `json:"reason"`
	Evidence []string  `json:"evidence"`
	foreign  bool      // set by attribute: the signal is about processes outside the scenario
}

func TestScenarios(t *testing.T) {
	integration.Root(t)
	integration.Binary(t, "ip")
	bash := integration.Binary(t, "bash")
	root := repoRoot(t)
	here := filepath.Join(root, "ci", "scenarios")
	entries, err := os.ReadDir(here)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			if _, err := os.Stat(filepath.Join(here, e.Name(), "run.sh")); err == nil {
				names = append(names, e.Name())
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("no scenarios (directories with run.sh) in ci/scenarios")
	}
	bin := integration.BuildPicket(t)
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			runScenario(t, scenario{name: name, dir: filepath.Join(here, name), root: root, bin: bin, bash: bash,
				prefix: fmt.Sprintf("pk%04x%d-", os.Getpid()&0xffff, i)})
		})
	}
}

type scenario struct {
	name, dir, root, bin, bash string
	prefix                     string // network namespace prefix, unique per run and scenario
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "picket")); err != nil {
		t.Fatalf("cmd/picket not found in %s: %v", root, err)
	}
	return root
}

func loadExpectation(t *testing.T, dir string) (expectation, time.Duration, time.Duration) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "expect.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp expectation
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&exp); err != nil {
		t.Fatalf("expect.json: %v", err)
	}
	if exp.NoIncidents && len(exp.Incidents) > 0 {
		t.Fatal("expect.json: no_incidents with incidents listed")
	}
	if !exp.NoIncidents && len(exp.Incidents) == 0 && len(exp.ForbiddenRules) == 0 {
		t.Fatal("expect.json: expects nothing (list incidents, forbidden_rules or set no_incidents)")
	}
	for _, ie := range exp.Incidents {
		if len(ie.Rules) == 0 && len(ie.Signals) == 0 {
			t.Fatal("expect.json: an incident expectation names no rules or signals")
		}
		if ie.MinLevel != "" {
			var l correlate.Level
			if err := l.UnmarshalText([]byte(ie.MinLevel)); err != nil {
				t.Fatalf("expect.json: %v", err)
			}
		}
		for _, e := range ie.Entities {
			if !strings.Contains(e, ":") {
				t.Fatalf("expect.json: entity %q is not kind:value", e)
			}
		}
	}
	dur := func(s string, def time.Duration) time.Duration {
		if s == "" {
			return def
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("expect.json: bad duration %q", s)
		}
		return d
	}
	return exp, dur(exp.Timeout, defaultTimeout), dur(exp.Settle, defaultSettle)
}

func runScenario(t *testing.T, sc scenario) {
	exp, timeout, settle := loadExpectation(t, sc.dir)
	for _, b := range exp.Needs {
		integration.Binary(t, b)
	}

	// The scenario's files: world-traversable, because daemons it starts
	// drop privileges (php-fpm's pool runs as www-data).
	tmp, err := os.MkdirTemp("", "picket-scenario-"+sc.name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(t.TempDir(), "state")
	hostRoot := filepath.Join(tmp, "hostroot")
	makeHostRoot(t, hostRoot)

	agent := startAgent(t, sc.bin, stateDir, hostRoot)
	// A scenario is meaningless without the sensors it exercises (a benign
	// control "passes" trivially with the process sensor off).
	var sensorErrs []string
	for _, name := range exp.Sensors {
		if st, ok := agent.sensors[name]; !ok || st == "off" {
			sensorErrs = append(sensorErrs, fmt.Sprintf("sensor %q is %s in the agent (need it on: ok or degraded)", name, cmp.Or(st, "absent")))
		}
	}
	// Registered after the agent's cleanup, so it runs before it: the
	// scenario's leftovers go before the agent stops.
	t.Cleanup(func() { sweepNamespaces(t, sc.prefix) })

	watch, werr := watchForks()
	if werr != nil {
		t.Logf("attribution off (every signal counts as the scenario's): %v", werr)
	} else {
		defer watch.Close()
	}

	pid, runErr := runScript(t, sc, tmp)
	sweepNamespaces(t, sc.prefix)
	var ours map[int]bool
	if watch != nil {
		watch.Close()
		var lost error
		ours, lost = watch.Descendants(pid)
		if lost != nil {
			t.Logf("attribution off (proc connector lost events): %v", lost)
			ours = nil
		} else {
			t.Logf("scenario ran %d processes", len(ours))
		}
	}
	if runErr != nil {
		t.Errorf("run.sh: %v", runErr)
	}
	if !agent.alive() {
		t.Fatalf("the agent died during the scenario; stderr:\n%s", agent.stderr())
	}

	// Poll until the positive expectations hold, then give late signals a
	// moment before the negative checks.
	var incs []incident
	var missing []string
	deadline := time.Now().Add(timeout)
	if len(exp.Incidents) == 0 {
		deadline = time.Now().Add(settle)
	}
	if len(sensorErrs) > 0 {
		deadline = time.Now() // nothing to wait for: look once and report
	}
	for {
		incs = readIncidents(t, sc.bin, stateDir)
		attribute(incs, ours)
		missing = checkPositive(exp, incs)
		if len(exp.Incidents) > 0 && len(missing) == 0 {
			time.Sleep(time.Second)
			incs = readIncidents(t, sc.bin, stateDir)
			attribute(incs, ours)
			missing = checkPositive(exp, incs)
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	problems := append(append(sensorErrs, missing...), checkNegative(exp, incs)...)
	if len(problems) == 0 {
		t.Log(describe(incs))
	} else {
		var b strings.Builder
		for _, p := range problems {
			fmt.Fprintf(&b, "\n  - %s", p)
		}
		t.Errorf("scenario %s: expectation not met:%s\n%s\nagent sensors: %s", sc.name, b.String(), describe(incs), sensors(sc.bin, stateDir))
	}
	agent.stop(t)
}

// --- the agent -------------------------------------------------------------

type agentProc struct {
	cmd     *exec.Cmd
	sensors map[string]string // name → state at startup
	mu      sync.Mutex
	errBuf  bytes.Buffer
	exited  chan struct{}
	err     error
}

func (a *agentProc) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.errBuf.Write(p)
}

func (a *agentProc) stderr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.errBuf.String()
}

func (a *agentProc) alive() bool {
	select {
	case <-a.exited:
		return false
	default:
		return true
	}
}

// makeHostRoot writes the private copy of the host's account and startup
// files that the agent's users and persistence sensors watch (--host-root):
// scenarios edit it as an attacker would edit /etc, and the real /etc is
// never touched. The files are synthetic (no password hash is copied).
func makeHostRoot(t *testing.T, root string) {
	t.Helper()
	files := map[string]string{
		"etc/passwd":                   "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"etc/group":                    "root:x:0:\ndaemon:x:1:\nadm:x:4:\nsudo:x:27:alice\nwww-data:x:33:\nalice:x:1000:\nnogroup:x:65534:\n",
		"etc/shadow":                   "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nwww-data:*:19000:0:99999:7:::\nalice:!:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
		"etc/sudoers":                  "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n",
		"etc/crontab":                  "SHELL=/bin/sh\n17 * * * * root cd / && run-parts --report /etc/cron.hourly\n",
		"root/.ssh/authorized_keys":    "",
		"home/alice/.profile":          "# ~/.profile\n",
		"var/www/html/index.php":       "<?php echo 'hello'; ?>\n",
		"usr/lib/libdemo/libdemo.so.1": "ELF-ish placeholder v1\n",
		"var/log/app/app.log":          "started\n",
	}
	for _, d := range []string{"etc/sudoers.d", "etc/cron.d", "etc/cron.hourly", "etc/systemd/system", "etc/profile.d", "var/spool/cron/crontabs"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The web root belongs to the web server's user, as on a real host
	// where the application can write its uploads.
	if err := os.Chown(filepath.Join(root, "var/www/html"), 33, 33); err != nil {
		t.Fatal(err)
	}
}

func startAgent(t *testing.T, bin, stateDir, hostRoot string) *agentProc {
	t.Helper()
	a := &agentProc{exited: make(chan struct{})}
	a.cmd = exec.Command(bin, "run", "--state-dir", stateDir, "--config", filepath.Join(filepath.Dir(stateDir), "absent.cue"),
		"--mode", "observe", "--learning-period", "0s", "--host-root", hostRoot)
	a.cmd.Stdout, a.cmd.Stderr = a, a
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.err = a.cmd.Wait(); close(a.exited) }()
	t.Cleanup(func() {
		if a.alive() {
			a.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-a.exited:
			case <-time.After(15 * time.Second):
				a.cmd.Process.Kill()
				<-a.exited
			}
		}
		if t.Failed() {
			t.Logf("agent stderr (last 4000 bytes):\n%s", tail(a.stderr(), 4000))
		}
	})
	deadline := time.Now().Add(agentStartup)
	for {
		out, err := picket(bin, "status", "--state-dir", stateDir, "--json")
		var st struct {
			Running bool `json:"running"`
			Sensors []struct {
				Name, State, Detail string
			} `json:"sensors"`
		}
		if err == nil && json.Unmarshal([]byte(out), &st) == nil && st.Running {
			var ss []string
			a.sensors = map[string]string{}
			for _, s := range st.Sensors {
				ss = append(ss, s.Name+"="+s.State)
				a.sensors[s.Name] = s.State
			}
			t.Logf("agent running (pid %d); sensors: %s", a.cmd.Process.Pid, strings.Join(ss, " "))
			break
		}
		if !a.alive() {
			t.Fatalf("agent exited during startup (%v); stderr:\n%s", a.err, a.stderr())
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not running after %s; last status: %s %v; stderr:\n%s", agentStartup, out, err, a.stderr())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(sensorWarmup)
	return a
}

// stop sends SIGTERM and fails the test unless the agent exits cleanly.
func (a *agentProc) stop(t *testing.T) {
	t.Helper()
	if !a.alive() {
		t.Errorf("agent already exited: %v", a.err)
		return
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
		if a.err != nil {
			t.Errorf("agent exit after SIGTERM: %v", a.err)
		}
	case <-time.After(15 * time.Second):
		t.Error("agent did not stop within 15s of SIGTERM")
	}
}

func picket(bin string, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("picket %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

// sensors summarises the agent's sensors for a failure message, e.g.
// "process=off (not built yet), auth=ok".
func sensors(bin, stateDir string) string {
	out, err := picket(bin, "status", "--state-dir", stateDir, "--json")
	if err != nil {
		return err.Error()
	}
	var st struct {
		Sensors []struct{ Name, State, Detail string } `json:"sensors"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return fmt.Sprintf("unreadable status: %v: %s", err, out)
	}
	var p []string
	for _, s := range st.Sensors {
		x := s.Name + "=" + s.State
		if s.Detail != "" {
			x += " (" + s.Detail + ")"
		}
		p = append(p, x)
	}
	return strings.Join(p, ", ")
}

func readIncidents(t *testing.T, bin, stateDir string) []incident {
	t.Helper()
	out, err := picket(bin, "incidents", "--state-dir", stateDir, "--all", "--json", "--limit", "0")
	if err != nil {
		t.Fatal(err)
	}
	var incs []incident
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var in incident
		if err := json.Unmarshal([]byte(line), &in); err != nil {
			t.Fatalf("picket incidents --json: %v: %s", err, line)
		}
		incs = append(incs, in)
	}
	sort.Slice(incs, func(i, j int) bool { return incs[i].ID < incs[j].ID })
	return incs
}

// --- the scenario script ---------------------------------------------------

// runScript runs run.sh in its own process group and returns its pid. On
// timeout the group gets SIGTERM (lib.sh's traps clean up), then SIGKILL.
// Whatever is left in the group afterwards is a leak: reported and killed.
func runScript(t *testing.T, sc scenario, tmp string) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, sc.bash, filepath.Join(sc.dir, "run.sh"))
	cmd.Dir = tmp
	cmd.Env = scriptEnv(tmp, sc)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	err := cmd.Wait()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s (%v)", scriptTimeout, err)
	}
	t.Logf("run.sh (pid %d, %s):\n%s", pid, time.Since(start).Round(time.Millisecond), strings.TrimRight(out.String(), "\n"))
	leaked := false
	for i := 0; i < 40 && syscall.Kill(-pid, 0) == nil; i++ {
		leaked = i == 39
		time.Sleep(50 * time.Millisecond)
	}
	if leaked {
		t.Errorf("run.sh left processes behind in its process group %d; killing them", pid)
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	return pid, err
}

func scriptEnv(tmp string, sc scenario) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PICKET_SCENARIO_TMP", "SCENARIO_NS_PREFIX", "PICKET_REPO_ROOT", "PICKET_BIN", "TMPDIR", "PICKET_HOST_ROOT":
			continue
		}
		env = append(env, kv)
	}
	path := os.Getenv("PATH")
	for _, d := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		if !slices.Contains(filepath.SplitList(path), d) {
			path += string(filepath.ListSeparator) + d
		}
	}
	return append(env, "PATH="+path, "PICKET_SCENARIO_TMP="+tmp, "SCENARIO_NS_PREFIX="+sc.prefix,
		"PICKET_REPO_ROOT="+sc.root, "PICKET_BIN="+sc.bin, "TMPDIR="+tmp, "PICKET_HOST_ROOT="+filepath.Join(tmp, "hostroot"))
}

// sweepNamespaces deletes network namespaces with the scenario's prefix
// (and kills what runs in them): lib.sh's traps should have done it, so
// anything found is reported.
func sweepNamespaces(t *testing.T, prefix string) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Errorf("ip netns list: %v", err)
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], prefix) {
			continue
		}
		ns := f[0]
		t.Errorf("network namespace %s left behind by the scenario; deleting it", ns)
		if pids, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, p := range strings.Fields(string(pids)) {
				if n, err := strconv.Atoi(p); err == nil && n > 1 {
					syscall.Kill(n, syscall.SIGKILL)
				}
			}
		}
		if b, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v %s", ns, err, b)
		}
	}
}

// --- checking --------------------------------------------------------------

// attribute marks signals about processes outside the scenario (ours ==
// nil: attribution off, nothing is foreign). A signal is foreign when it
// names processes and none of them descended from run.sh; a signal that
// names no process counts as the scenario's.
func attribute(incs []incident, ours map[int]bool) {
	if ours == nil {
		return
	}
	for i := range incs {
		for j := range incs[i].Signals {
			s := &incs[i].Signals[j]
			named, mine := false, false
			for _, e := range s.Entities {
				if e.Kind != "process" {
					continue
				}
				named = true
				if n, err := strconv.Atoi(e.Value); err == nil && ours[n] {
					mine = true
				}
			}
			s.foreign = named && !mine
		}
	}
}

// scenarioSignals are an incident's signals that are not foreign.
func scenarioSignals(in incident) []sig {
	var out []sig
	for _, s := range in.Signals {
		if !s.foreign {
			out = append(out, s)
		}
	}
	return out
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// matchIncident returns "" when in satisfies ie, else what is missing.
func matchIncident(ie incidentExpect, in incident) string {
	sigs := scenarioSignals(in)
	if len(sigs) == 0 {
		return "no signal from the scenario"
	}
	var why []string
	rules := map[string]bool{}
	for _, s := range sigs {
		rules[s.Rule] = true
	}
	for _, r := range ie.Rules {
		if !rules[r] {
			why = append(why, "no "+r+" signal")
		}
	}
	if ie.MinLevel != "" {
		var want, got correlate.Level
		want.UnmarshalText([]byte(ie.MinLevel))
		if err := got.UnmarshalText([]byte(in.Level)); err != nil || got < want {
			why = append(why, fmt.Sprintf("level %s < %s", in.Level, ie.MinLevel))
		}
	}
	for _, st := range ie.Stages {
		if !slices.Contains(in.Stages, st) {
			why = append(why, "no stage "+st)
		}
	}
	ents := map[string]bool{}
	for _, e := range in.Entities {
		ents[e.String()] = true
	}
	for _, s := range sigs {
		for _, e := range s.Entities {
			ents[e.String()] = true
		}
	}
	for _, e := range ie.Entities {
		if !ents[e] {
			why = append(why, "no entity "+e)
		}
	}
	if len(ie.ReasonContains) > 0 {
		ok := false
		for _, s := range sigs {
			if containsAll(s.Reason, ie.ReasonContains) {
				ok = true
				break
			}
		}
		if !ok {
			why = append(why, fmt.Sprintf("no signal reason containing all of %q", ie.ReasonContains))
		}
	}
	for _, se := range ie.Signals {
		ok := false
		for _, s := range sigs {
			if (se.Rule == "" || s.Rule == se.Rule) && (se.Stage == "" || s.Stage == se.Stage) && containsAll(s.Reason, se.ReasonContains) {
				ok = true
				break
			}
		}
		if !ok {
			why = append(why, fmt.Sprintf("no signal rule=%q stage=%q with reason containing all of %q", se.Rule, se.Stage, se.ReasonContains))
		}
	}
	return strings.Join(why, "; ")
}

// checkPositive returns one line per unmet incident expectation.
func checkPositive(exp expectation, incs []incident) []string {
	var out []string
	for i, ie := range exp.Incidents {
		want := describeExpect(ie)
		var near []string
		var found *incident
		for k := range incs {
			why := matchIncident(ie, incs[k])
			if why == "" {
				found = &incs[k]
				break
			}
			if why != "no signal from the scenario" {
				near = append(near, fmt.Sprintf("#%d: %s", incs[k].ID, why))
			}
		}
		if found == nil {
			msg := fmt.Sprintf("missing incident %d: want %s", i+1, want)
			if len(near) > 0 {
				msg += "; closest: " + strings.Join(near, " | ")
			}
			out = append(out, msg)
			continue
		}
		if ie.OneIncident {
			for _, in := range incs {
				if in.ID == found.ID {
					continue
				}
				for _, s := range scenarioSignals(in) {
					if slices.Contains(ie.Rules, s.Rule) {
						out = append(out, fmt.Sprintf("incident %d: want a single incident for %v, but #%d also has %s (%s)", i+1, ie.Rules, in.ID, s.Rule, s.Reason))
						break
					}
				}
			}
		}
	}
	return out
}

func checkNegative(exp expectation, incs []incident) []string {
	var out []string
	for _, in := range incs {
		sigs := scenarioSignals(in)
		if exp.NoIncidents && len(sigs) > 0 {
			out = append(out, fmt.Sprintf("want no incidents, got #%d (%s) with %s", in.ID, in.Level, summarizeSignals(sigs)))
		}
		for _, s := range sigs {
			if slices.Contains(exp.ForbiddenRules, s.Rule) {
				out = append(out, fmt.Sprintf("forbidden rule %s fired (incident #%d): %s", s.Rule, in.ID, s.Reason))
			}
		}
	}
	return out
}

func describeExpect(ie incidentExpect) string {
	var p []string
	if len(ie.Rules) > 0 {
		p = append(p, fmt.Sprintf("rules %v in one incident", ie.Rules))
	}
	if ie.MinLevel != "" {
		p = append(p, "level >= "+ie.MinLevel)
	}
	if len(ie.Stages) > 0 {
		p = append(p, fmt.Sprintf("stages %v", ie.Stages))
	}
	if len(ie.Entities) > 0 {
		p = append(p, fmt.Sprintf("entities %v", ie.Entities))
	}
	if len(ie.ReasonContains) > 0 {
		p = append(p, fmt.Sprintf("a reason containing %q", ie.ReasonContains))
	}
	for _, s := range ie.Signals {
		p = append(p, fmt.Sprintf("a %s signal whose reason contains %q", s.Rule, s.ReasonContains))
	}
	if ie.OneIncident {
		p = append(p, "and no other incident with those rules")
	}
	return strings.Join(p, ", ")
}

func summarizeSignals(sigs []sig) string {
	var p []string
	for _, s := range sigs {
		p = append(p, fmt.Sprintf("%s (%s)", s.Rule, s.Reason))
	}
	return strings.Join(p, "; ")
}

// describe lists the incidents for a failure message.
func describe(incs []incident) string {
	if len(incs) == 0 {
		return "incidents present: none"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "incidents present (%d):", len(incs))
	for _, in := range incs {
		ents := make([]string, len(in.Entities))
		for i, e := range in.Entities {
			ents[i] = e.String()
		}
		fmt.Fprintf(&b, "\n  #%d %s level=%s score=%g stages=%v entities=[%s]", in.ID, in.Status, in.Level, in.Score, in.Stages, strings.Join(ents, " "))
		for _, s := range in.Signals {
			tag := ""
			if s.foreign {
				tag = " [not the scenario's: ignored]"
			}
			fmt.Fprintf(&b, "\n      %s %s%s: %s", s.Rule, s.Stage, tag, s.Reason)
		}
	}
	return b.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
