package baseline

import (
	"cmp"
	"time"

	"github.com/picket-agent/picket/schema"
)

// Deviation rule ids (the first four are the original rules).
const (
	RuleNewProcess     = "baseline.new_process"
	RuleNewDestination = "baseline.new_destination"
	RuleNewListener    = "baseline.new_listener"
	RuleAuthAnomaly    = "baseline.auth_anomaly"
	RuleNewPersistence = "baseline.new_persistence"
	RuleFileChanged    = "baseline.file_changed"
	RuleRequestRate    = "baseline.request_rate"
	RuleErrorRate      = "baseline.error_rate"
)

// Weights are the signal weights of the deviation rules (from config);
// zero fields take DefaultWeights. Stages are fixed per rule: process →
// execution, destination → exfiltration, listener, persistence entry and
// changed system file → persistence, login → initial-access, request and
// error rate spikes → recon.
type Weights struct {
	NewProcess, NewDestination, NewListener, AuthAnomaly float64
	NewPersistence, FileChanged, RequestRate, ErrorRate  float64
}

// DefaultWeights are the weights the issue starts from.
func DefaultWeights() Weights {
	return Weights{NewProcess: 30, NewDestination: 30, NewListener: 30, AuthAnomaly: 30,
		NewPersistence: 40, FileChanged: 40, RequestRate: 20, ErrorRate: 20}
}

func (w Weights) orDefault() Weights {
	d := DefaultWeights()
	return Weights{NewProcess: cmp.Or(w.NewProcess, d.NewProcess), NewDestination: cmp.Or(w.NewDestination, d.NewDestination),
		NewListener: cmp.Or(w.NewListener, d.NewListener), AuthAnomaly: cmp.Or(w.AuthAnomaly, d.AuthAnomaly),
		NewPersistence: cmp.Or(w.NewPersistence, d.NewPersistence), FileChanged: cmp.Or(w.FileChanged, d.FileChanged),
		RequestRate: cmp.Or(w.RequestRate, d.RequestRate), ErrorRate: cmp.Or(w.ErrorRate, d.ErrorRate)}
}

// Config is what the Deviations detector needs beyond the model: weights
// and thresholds (from the policy's detectors.baseline block) and the host
// facts a test replaces. Zero fields take DefaultConfig's value.
type Config struct {
	Weights Weights
	// Loc is the host's time zone for hour-of-day comparisons (logins,
	// request rates); nil is time.Local. It must be the zone the model
	// learned in.
	Loc *time.Location
	// AuthMinLogins: hour-of-day alerts for a user only once the baseline
	// holds at least this many of their logins (fewer say nothing about
	// their habits).
	AuthMinLogins int
	// RateFactor: a per-minute request count above RateFactor × the
	// learned peak of that hour of day (±1 hour) is a spike.
	RateFactor float64
	// SourceRateFloor and ClientRateFloor are the lowest per-minute
	// counts that can be a spike, per log source and per client, so a
	// quiet site's baseline of 2 requests a minute does not make 7 news.
	SourceRateFloor, ClientRateFloor int
	// ErrorRatio is the lowest share of 4xx (or 5xx) answers in one
	// minute that can be an error spike, ErrorMin the lowest count.
	ErrorRatio float64
	ErrorMin   int
	// SystemDirs are where a changed file is news unless a package update
	// explains it.
	SystemDirs []string
	// Packages tells package updates apart; nil counts none.
	Packages PackageCheck
	// PackageWindow: a change this soon after a package manager ran (seen
	// in the event stream) is a package update.
	PackageWindow time.Duration
	// Disabled turns every deviation rule off.
	Disabled bool
	// Distrusted, when set, names baseline keys (see KeysOf) that an
	// operator's "missed" verdict took out of the normal: an event with
	// such a key is flagged as if the baseline had never seen it.
	Distrusted func(key string) bool
}

// DefaultConfig are the defaults of the detectors.baseline schema block.
func DefaultConfig() Config {
	return Config{Weights: DefaultWeights(), AuthMinLogins: 10, RateFactor: 3, SourceRateFloor: 120, ClientRateFloor: 60,
		ErrorRatio: 0.5, ErrorMin: 20, SystemDirs: []string{"/usr", "/bin", "/sbin", "/lib", "/lib64"},
		PackageWindow: 10 * time.Minute}
}

func (c Config) orDefault() Config {
	d := DefaultConfig()
	c.Weights = c.Weights.orDefault()
	if c.Loc == nil {
		c.Loc = time.Local
	}
	c.AuthMinLogins = cmp.Or(c.AuthMinLogins, d.AuthMinLogins)
	c.RateFactor = cmp.Or(c.RateFactor, d.RateFactor)
	c.SourceRateFloor = cmp.Or(c.SourceRateFloor, d.SourceRateFloor)
	c.ClientRateFloor = cmp.Or(c.ClientRateFloor, d.ClientRateFloor)
	c.ErrorRatio = cmp.Or(c.ErrorRatio, d.ErrorRatio)
	c.ErrorMin = cmp.Or(c.ErrorMin, d.ErrorMin)
	if c.SystemDirs == nil {
		c.SystemDirs = d.SystemDirs
	}
	c.PackageWindow = cmp.Or(c.PackageWindow, d.PackageWindow)
	return c
}

// ConfigFromPolicy reads the detectors.baseline block. The package check
// reads dpkg's database under its dpkg_root and the files themselves
// under hostRoot ("" is /).
func ConfigFromPolicy(p *schema.Policy, hostRoot string) Config {
	b := p.Detectors.Baseline
	c := Config{
		// In the policy a weight of 0 turns its rule off; here 0 means
		// "default", so off is negative.
		Weights: Weights{NewProcess: off(b.NewProcessWeight), NewDestination: off(b.NewDestinationWeight),
			NewListener: off(b.NewListenerWeight), AuthAnomaly: off(b.AuthAnomalyWeight),
			NewPersistence: off(b.NewPersistenceWeight), FileChanged: off(b.FileChangedWeight),
			RequestRate: off(b.RequestRateWeight), ErrorRate: off(b.ErrorRateWeight)},
		AuthMinLogins: b.AuthMinLogins, RateFactor: b.RateFactor, SourceRateFloor: b.SourceRateFloor,
		ClientRateFloor: b.ClientRateFloor, ErrorRatio: b.ErrorRatio, ErrorMin: b.ErrorMin, SystemDirs: b.SystemDirs,
		Disabled: !b.Enabled,
	}
	if b.DpkgRoot != "" {
		c.Packages = NewDpkg(b.DpkgRoot, hostRoot)
	}
	return c
}

func off(w float64) float64 {
	if w <= 0 {
		return -1
	}
	return w
}
