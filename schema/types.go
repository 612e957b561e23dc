package schema

import (
	"encoding/json"
	"fmt"
	"time"
)

// Policy is the merged, validated configuration for one host: the fleet
// policy (picket.cue), the whitelists (whitelists/*.cue) and the host's
// overrides (hosts/<hostname>.cue). Field names mirror the CUE schema in
// policy.cue; the JSON tags are the CUE field names.
type Policy struct {
	// Mode "enforce" lets the responder act at contain and above (after the
	// learning period); "observe" records plans and never acts.
	Mode        string      `json:"mode"`
	Learning    Learning    `json:"learning"`
	Levels      Levels      `json:"levels"`
	Correlation Correlation `json:"correlation"`
	Detectors   Detectors   `json:"detectors"`
	Actions     Actions     `json:"actions"`
	Sensors     Sensors     `json:"sensors"`
	Processes   Processes   `json:"processes"`
	Whitelist   Whitelist   `json:"whitelist"`
}

// Processes are the name lists of the process invariants.
type Processes struct {
	WebServers         []string `json:"web_servers"`
	Shells             []string `json:"shells"`
	SuspiciousChildren []string `json:"suspicious_children"`
	DBServers          []string `json:"db_servers"`
	DBAllowedChildren  []string `json:"db_allowed_children"`
	TempDirs           []string `json:"temp_dirs"`
	// Sessions are the ordinary-session processes (init, sshd, tmux,
	// cron, container shims...) that never join two processes into one
	// incident; interactive shells directly below them belong to them.
	Sessions []string `json:"sessions"`
	// KnownRuntimes run from a memfd or a deleted file as part of their
	// work (runc's cloned binary): never flagged below their parents.
	KnownRuntimes []KnownRuntime `json:"known_runtimes"`
}

// KnownRuntime is an executable path (exact, or a prefix ending in "*")
// that is normal below one of Parents (process names, wildcards allowed).
type KnownRuntime struct {
	Exe     string   `json:"exe"`
	Parents []string `json:"parents"`
}

// NetworkInvariants configures the network rules.
type NetworkInvariants struct {
	Enabled           bool     `json:"enabled"`
	DBEgressWeight    float64  `json:"db_egress_weight"`
	NewListenerWeight float64  `json:"new_listener_weight"`
	ListenerPorts     []int    `json:"listener_ports"`
	ListenerProcesses []string `json:"listener_processes"`
	WebEgressWeight   float64  `json:"web_egress_weight"`
	ToolWeight        float64  `json:"tool_weight"`
	Tools             []string `json:"tools"`
	ScanWeight        float64  `json:"scan_weight"`
	ScanPorts         int      `json:"scan_ports"`
	ScanHosts         int      `json:"scan_hosts"`
	ScanWindow        Duration `json:"scan_window"`
}

// ProcessInvariants weighs the process invariant rules.
type ProcessInvariants struct {
	Enabled            bool    `json:"enabled"`
	WebShellWeight     float64 `json:"web_shell_weight"`
	WebChildWeight     float64 `json:"web_child_weight"`
	DBChildWeight      float64 `json:"db_child_weight"`
	ReverseShellWeight float64 `json:"reverse_shell_weight"`
	ExecTmpWeight      float64 `json:"exec_tmp_weight"`
	ExecDeletedWeight  float64 `json:"exec_deleted_weight"`
	ExecMemfdWeight    float64 `json:"exec_memfd_weight"`
}

// Learning is the read-only period at the start of the agent's life.
type Learning struct {
	// Period is 0 (skip learning) or between 24h and 72h.
	Period Duration `json:"period"`
	// Drift is slow learning after the first promotion.
	Drift Drift `json:"drift"`
}

// Drift folds keys the deviation rules report as new on at least MinDays
// distinct days (and in no open incident) into the baseline, promoting a
// new version at most every Every. Off by default.
type Drift struct {
	Enabled bool     `json:"enabled"`
	MinDays int      `json:"min_days"`
	Every   Duration `json:"every"`
}

// BaselineDetector weighs the deviation rules (a weight of 0 turns a rule
// off) and sets their thresholds.
type BaselineDetector struct {
	Enabled              bool    `json:"enabled"`
	NewProcessWeight     float64 `json:"new_process_weight"`
	NewDestinationWeight float64 `json:"new_destination_weight"`
	NewListenerWeight    float64 `json:"new_listener_weight"`
	AuthAnomalyWeight    float64 `json:"auth_anomaly_weight"`
	// AuthMinLogins: hour-of-day alerts only for users with at least this
	// many learned logins.
	AuthMinLogins        int     `json:"auth_min_logins"`
	NewPersistenceWeight float64 `json:"new_persistence_weight"`
	FileChangedWeight    float64 `json:"file_changed_weight"`
	// SystemDirs: a file changed below these outside a package update is
	// a deviation; DpkgRoot is dpkg's database ("" disables the check).
	SystemDirs        []string `json:"system_dirs"`
	DpkgRoot          string   `json:"dpkg_root"`
	RequestRateWeight float64  `json:"request_rate_weight"`
	ErrorRateWeight   float64  `json:"error_rate_weight"`
	RateFactor        float64  `json:"rate_factor"`
	SourceRateFloor   int      `json:"source_rate_floor"`
	ClientRateFloor   int      `json:"client_rate_floor"`
	ErrorRatio        float64  `json:"error_ratio"`
	ErrorMin          int      `json:"error_min"`
}

// Levels are the incident score thresholds, strictly increasing. A score
// below Observe is recorded but has no level.
type Levels struct {
	Observe    float64 `json:"observe"`
	Contain    float64 `json:"contain"`
	Aggressive float64 `json:"aggressive"`
	Lockdown   float64 `json:"lockdown"`
}

// Correlation controls how signals are grouped into incidents.
type Correlation struct {
	// Window: a signal joins an open incident that shares an entity with it
	// and whose last signal is at most Window older.
	Window Duration `json:"window"`
	// StageEscalation: each distinct kill-chain stage beyond the first raises
	// the level by one step (capped at lockdown).
	StageEscalation bool `json:"stage_escalation"`
	// MaxOpenIncidents caps the open incidents (whole or summarised, see
	// agent/correlate); the least recently updated is closed first.
	MaxOpenIncidents int `json:"max_open_incidents"`
}

// Detectors holds one block per rule family.
type Detectors struct {
	SSHBruteForce      SSHBruteForce      `json:"ssh_bruteforce"`
	PasswordSpray      PasswordSpray      `json:"password_spray"`
	LoginAfterFailures LoginAfterFailures `json:"login_after_failures"`
	WebScan            WebScan            `json:"web_scan"`
	ProcessInvariants  ProcessInvariants  `json:"process_invariants"`
	NetworkInvariants  NetworkInvariants  `json:"network_invariants"`
	Baseline           BaselineDetector   `json:"baseline"`
	// MaxTrackedSources caps per-source state in every detector; the least
	// recently seen source is evicted first.
	MaxTrackedSources int `json:"max_tracked_sources"`
}

// SSHBruteForce: MaxFailures failed logins from one source within Window.
type SSHBruteForce struct {
	Enabled     bool     `json:"enabled"`
	MaxFailures int      `json:"max_failures"`
	Window      Duration `json:"window"`
	Weight      float64  `json:"weight"`
}

// PasswordSpray: DistinctUsers different user names tried from one source
// within Window.
type PasswordSpray struct {
	Enabled       bool     `json:"enabled"`
	DistinctUsers int      `json:"distinct_users"`
	Window        Duration `json:"window"`
	Weight        float64  `json:"weight"`
}

// LoginAfterFailures: a successful login from a source that failed at least
// MinFailures times within Window before it.
type LoginAfterFailures struct {
	Enabled     bool     `json:"enabled"`
	MinFailures int      `json:"min_failures"`
	Window      Duration `json:"window"`
	Weight      float64  `json:"weight"`
}

// WebScan: MinHits requests for scanner paths (or attack markers) from one
// source within Window.
type WebScan struct {
	Enabled bool     `json:"enabled"`
	MinHits int      `json:"min_hits"`
	Window  Duration `json:"window"`
	Weight  float64  `json:"weight"`
	// Paths are path prefixes or substrings that only scanners ask for.
	Paths []string `json:"paths"`
	// ErrorRatio: a burst of at least MinHits 4xx answers from one source
	// within Window whose share of its requests is at least ErrorRatio also
	// counts as scanning (0 disables).
	ErrorRatio float64 `json:"error_ratio"`
}

// Actions holds the responder's policy: what it may do and for how long.
type Actions struct {
	// DefaultTTL applies to actions without their own TTL; MaxTTL caps every
	// TTL (the schema rejects any TTL above it).
	DefaultTTL Duration `json:"default_ttl"`
	MaxTTL     Duration `json:"max_ttl"`
	// MaxPerHour trips the circuit breaker to observe-only when exceeded.
	MaxPerHour int `json:"max_per_hour"`
	// MaxBlocksPerHour caps the firewall actions (block-source,
	// block-destination, rate-limit) applied per hour; they do not count
	// toward MaxPerHour.
	MaxBlocksPerHour int `json:"max_blocks_per_hour"`
	// BlockTTL is the TTL of a temporary IP block.
	BlockTTL Duration `json:"block_ttl"`
	// ContainmentTTL is the TTL of containment mode (lockdown).
	ContainmentTTL Duration `json:"containment_ttl"`
	// OnLevel lists the actions of each level (cumulative).
	OnLevel OnLevel `json:"on_level"`
	// Corroboration is, per action name, the evidence an incident needs
	// before that action is planned (kill-tree, disable-user,
	// end-sessions and isolate-container by default); see Corroboration.
	Corroboration map[string]Corroboration `json:"corroboration"`
	// TTL overrides default_ttl per action name.
	TTL map[string]Duration `json:"ttl"`
	// Containment is what containment mode still lets through.
	Containment Containment `json:"containment"`
	// Isolate is "disconnect" or "pause".
	Isolate string `json:"isolate"`
	// ReconcileInterval is the reconciler's period.
	ReconcileInterval Duration `json:"reconcile_interval"`
	Health            Health   `json:"health"`
}

// OnLevel maps the acting levels to action names.
type OnLevel struct {
	Contain    []string `json:"contain"`
	Aggressive []string `json:"aggressive"`
	Lockdown   []string `json:"lockdown"`
}

// Containment configures containment mode.
type Containment struct {
	Allow       []string `json:"allow"`
	InboundRate int      `json:"inbound_rate"`
}

// Health configures the health checks guarding actions.
type Health struct {
	Interval Duration `json:"interval"`
	Checks   []Check  `json:"checks"`
}

// Check is one health check; exactly one of TCP, HTTP, SSHD, GitRemote and
// Exec is set.
type Check struct {
	Name      string   `json:"name"`
	TCP       string   `json:"tcp,omitempty"`
	HTTP      string   `json:"http,omitempty"`
	Status    int      `json:"status,omitempty"`
	SSHD      bool     `json:"sshd,omitempty"`
	GitRemote bool     `json:"git_remote,omitempty"`
	Exec      []string `json:"exec,omitempty"`
	Timeout   Duration `json:"timeout"`
}

// TTLOf returns the TTL of the named action, capped by MaxTTL.
func (a Actions) TTLOf(name string) Duration {
	d, ok := a.TTL[name]
	switch {
	case ok:
	case name == "block-source" || name == "rate-limit":
		d = a.BlockTTL
	case name == "containment":
		d = a.ContainmentTTL
	default:
		d = a.DefaultTTL
	}
	if d <= 0 {
		d = a.DefaultTTL
	}
	if a.MaxTTL > 0 && d > a.MaxTTL {
		d = a.MaxTTL
	}
	return d
}

// Sensors selects and configures the sensors.
type Sensors struct {
	Auth       AuthSensor       `json:"auth"`
	Web        WebSensor        `json:"web"`
	Process    ProcessSensor    `json:"process"`
	Network    NetworkSensor    `json:"network"`
	Files      FilesSensor      `json:"files"`
	Users      UsersSensor      `json:"users"`
	Persist    PersistSensor    `json:"persistence"`
	Containers ContainersSensor `json:"containers"`
}

// ContainersSensor configures the container inventory.
type ContainersSensor struct {
	Enabled  bool     `json:"enabled"`
	Interval Duration `json:"interval"`
}

// UsersSensor configures the accounts and sudoers watch.
type UsersSensor struct {
	Enabled          bool     `json:"enabled"`
	PrivilegedGroups []string `json:"privileged_groups"`
}

// PersistSensor configures the persistence inventory.
type PersistSensor struct {
	Enabled        bool     `json:"enabled"`
	SetuidInterval Duration `json:"setuid_interval"`
}

// FilesSensor configures file integrity monitoring.
type FilesSensor struct {
	Enabled  bool     `json:"enabled"`
	Roots    []string `json:"roots"`
	WebRoots []string `json:"web_roots"`
	WebUsers []string `json:"web_users"`
	RateMBps float64  `json:"rate_mbps"`
	Rescan   Duration `json:"rescan"`
}

// NetworkSensor configures socket polling.
type NetworkSensor struct {
	Enabled  bool     `json:"enabled"`
	Interval Duration `json:"interval"`
}

// ProcessSensor configures process sensing.
type ProcessSensor struct {
	Enabled      bool     `json:"enabled"`
	Mode         string   `json:"mode"` // auto | connector | scan
	ScanInterval Duration `json:"scan_interval"`
	DockerSocket string   `json:"docker_socket"`
}

// AuthSensor: Source "auto" picks journald when journalctl works and sshd
// logs there, else the first readable file of Files.
type AuthSensor struct {
	Enabled bool     `json:"enabled"`
	Source  string   `json:"source"` // auto | journald | file
	Files   []string `json:"files"`
	// Identifiers are the journald SYSLOG_IDENTIFIERs read.
	Identifiers []string `json:"identifiers"`
}

// WebSensor lists access logs to follow; Format "auto" detects
// combined/common/JSON per line.
type WebSensor struct {
	Enabled bool     `json:"enabled"`
	Files   []string `json:"files"`
	Format  string   `json:"format"` // auto | combined | common | json
}

// Whitelist entries are keyed by a name so that several files can add to
// the same list (CUE unifies structs, not lists).
type Whitelist struct {
	// AdminIPs are never acted against and never counted as attackers.
	AdminIPs map[string]WhitelistIP `json:"admin_ips"`
	// IPs are trusted sources: their signals are recorded but do not raise
	// incidents above observe.
	IPs   map[string]WhitelistIP   `json:"ips"`
	Users map[string]WhitelistUser `json:"users"`
}

// WhitelistIP is an address or CIDR with a note saying why.
type WhitelistIP struct {
	CIDR string `json:"cidr"`
	Note string `json:"note,omitempty"`
}

// WhitelistUser is a user name with a note.
type WhitelistUser struct {
	Name string `json:"name"`
	Note string `json:"note,omitempty"`
}

// Bootstrap is the local file (/etc/picket/picket.cue) that tells the agent
// where its config repository and trust root are. Everything has a default,
// so the agent runs without it.
type Bootstrap struct {
	Hostname    string     `json:"hostname"`
	Repository  Repository `json:"repository"`
	TrustDir    string     `json:"trust_dir"`
	StateDir    string     `json:"state_dir"`
	Credentials string     `json:"credentials"`
}

// Repository names the config repository (an empty URL means none) and
// how the agent syncs with it.
type Repository struct {
	URL        string   `json:"url"`
	Branch     string   `json:"branch"`
	Verify     string   `json:"verify"`
	KnownHosts string   `json:"known_hosts"`
	Interval   Duration `json:"interval"`
	BatchSize  int      `json:"batch_size"`
	HostKey    string   `json:"host_key"`
}

// Duration is a time.Duration written as a Go duration string ("10m",
// "48h") in CUE and JSON.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"10m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
