// Package event defines the typed events that sensors produce and detectors
// consume. It is the vocabulary of the pipeline: every sensor (auth log,
// journald, web access log, and later processes, network, files) turns what it
// reads into an Event, and nothing downstream ever looks at raw input again
// except as evidence.
package event

import (
	"net/netip"
	"time"
)

// Kind names what happened. Kinds are stable strings: they appear in audit
// entries, in JSON output and in rule documentation.
type Kind string

// Authentication and account kinds, produced by the auth sensor.
const (
	// AuthFailure is one failed authentication attempt that counts toward
	// brute-force detection (sshd "Failed password", "Failed none", old-style
	// sshd(pam_unix) authentication failures). Count may be >1 for
	// "message repeated N times" lines.
	AuthFailure Kind = "auth.failure"
	// AuthInvalidUser is sshd's "Invalid user X from IP": the user does not
	// exist. It is context for spraying, not a separate failure count, because
	// sshd also logs a Failed line for the same attempt.
	AuthInvalidUser Kind = "auth.invalid_user"
	// AuthPAMFailure is a pam_unix failure logged by sshd itself; sshd logs
	// its own Failed line for the same attempt, so it does not count again.
	AuthPAMFailure Kind = "auth.pam_failure"
	// AuthTooMany is "Too many authentication failures" / "maximum
	// authentication attempts exceeded".
	AuthTooMany Kind = "auth.too_many"
	// AuthPreauthDisconnect is a disconnect or close before authentication.
	AuthPreauthDisconnect Kind = "auth.preauth_disconnect"
	// AuthSuccess is an accepted login (password, publickey, ...).
	AuthSuccess Kind = "auth.success"
	// Sudo is a sudo command (Detail holds the command, User the invoking
	// user, TargetUser the user it ran as); Outcome "failure" for refused.
	Sudo Kind = "auth.sudo"
	// Su is an su session or failure.
	Su Kind = "auth.su"
	// UserAdd, UserMod, GroupAdd, GroupMod and PasswdChange are account
	// changes logged by shadow-utils.
	UserAdd      Kind = "account.useradd"
	UserMod      Kind = "account.usermod"
	UserDel      Kind = "account.userdel"
	GroupAdd     Kind = "account.groupadd"
	GroupMod     Kind = "account.groupmod"
	PasswdChange Kind = "account.passwd"
)

// Process kinds, produced by the process sensor (netlink proc connector or
// /proc scan). Proc is set on all of them.
const (
	ProcExec Kind = "process.exec"
	ProcFork Kind = "process.fork"
	ProcExit Kind = "process.exit"
)

// Network kinds, produced by the network sensor. Net is set.
const (
	NetListen   Kind = "net.listen"   // a socket started listening
	NetUnlisten Kind = "net.unlisten" // a listener closed
	NetConnect  Kind = "net.connect"  // an outbound connection (established, or conntrack NEW)
)

// Account kinds from the semantic diff of passwd/group/shadow/sudoers
// (the auth log's account.* kinds are what tools logged; these are what
// changed). Change is set.
const (
	AccountChanged Kind = "account.changed"
)

// Persistence and file kinds. Change is set.
const (
	PersistChanged Kind = "persistence.changed" // a startup location gained, lost or changed an entry
	FileChanged    Kind = "file.changed"        // file integrity: created, modified, deleted, mode/owner
)

// Container kinds, from the Docker Engine API inventory. Change is set,
// Proc.Container names the container.
const (
	ContainerChanged Kind = "container.changed"
)

// Web kinds, produced by the web access-log sensor.
const (
	WebRequest Kind = "web.request"
)

// Event is one thing that happened on the host, with the time it happened
// (taken from the log line, not from when it was read, so replays are
// faithful). It is a flat value type: sensors fill what applies and leave the
// rest zero, which keeps the hot path free of allocations per field group.
type Event struct {
	Time   time.Time `json:"time"`
	Kind   Kind      `json:"kind"`
	Source string    `json:"source,omitempty"` // where it was read, e.g. "file:/var/log/auth.log", "journald"
	Line   string    `json:"line,omitempty"`   // the original input, kept as evidence
	Count  int       `json:"count,omitempty"`  // repetitions this event stands for (0 means 1)

	Host    string `json:"host,omitempty"`
	Program string `json:"program,omitempty"`
	PID     int    `json:"pid,omitempty"`

	User       string     `json:"user,omitempty"`        // account the event is about (login user, sudo caller, account added)
	TargetUser string     `json:"target_user,omitempty"` // sudo/su target, or group for group changes
	Addr       netip.Addr `json:"addr,omitzero"`         // remote address
	Port       int        `json:"port,omitempty"`        // remote port
	Method     string     `json:"method,omitempty"`      // auth method: password, publickey, keyboard-interactive, none
	Outcome    string     `json:"outcome,omitempty"`     // "success" or "failure" where the kind does not say it
	Detail     string     `json:"detail,omitempty"`      // free text the kind defines (sudo command, disconnect reason)

	HTTPMethod string `json:"http_method,omitempty"`
	Path       string `json:"path,omitempty"`
	Status     int    `json:"status,omitempty"`
	Size       int64  `json:"size,omitempty"`
	Referer    string `json:"referer,omitempty"`
	UserAgent  string `json:"user_agent,omitempty"`
	VHost      string `json:"vhost,omitempty"`

	// Proc is the process an event is about (process kinds only, and the
	// writing/connecting process of network and file events when known);
	// a pointer so log events do not carry its weight.
	Proc *Process `json:"proc,omitempty"`
	// Net is the socket of a network event.
	Net *Socket `json:"net,omitempty"`
	// Change describes an account, persistence, file or container change.
	Change *Change `json:"change,omitempty"`
}

// Socket is one endpoint pair seen by the network sensor.
type Socket struct {
	Proto  string     `json:"proto"` // tcp | tcp6 | udp | udp6
	Local  netip.Addr `json:"local,omitzero"`
	LPort  int        `json:"lport"`
	Remote netip.Addr `json:"remote,omitzero"`
	RPort  int        `json:"rport,omitempty"`
	Inode  uint64     `json:"inode,omitempty"`
	// NetNS identifies the network namespace (inode of /proc/<pid>/ns/net)
	// when it is not the host's.
	NetNS uint64 `json:"netns,omitempty"`
}

// Change is one semantic change the agent found on the host: what (a
// stable kind such as "uid0_account", "sudoers_nopasswd", "cron_line",
// "authorized_key", "systemd_unit", "file_modified", "webshell",
// "privileged_container"), where (file path, account, container), and the
// added or removed content as an operator would read it (the cron line,
// the unit's ExecStart, the key fingerprint; never a password hash).
type Change struct {
	What   string            `json:"what"`
	Op     string            `json:"op"` // added | removed | modified
	Path   string            `json:"path,omitempty"`
	Name   string            `json:"name,omitempty"` // account, group, unit, container name
	Before string            `json:"before,omitempty"`
	After  string            `json:"after,omitempty"`
	Attrs  map[string]string `json:"attrs,omitempty"`
}

// Process is what the process sensor knows about one process at an exec,
// fork or exit, and, once the process table has seen it, its ancestry.
type Process struct {
	PID  int `json:"pid"`
	PPID int `json:"ppid"`
	// StartTime is the process start time in clock ticks since boot
	// (/proc/<pid>/stat field 22): with the pid it identifies a process
	// across pid reuse.
	StartTime uint64   `json:"start_time,omitempty"`
	UID       int      `json:"uid"`
	GID       int      `json:"gid"`
	User      string   `json:"user,omitempty"`
	Comm      string   `json:"comm,omitempty"`
	Exe       string   `json:"exe,omitempty"`
	Args      []string `json:"args,omitempty"`
	Cwd       string   `json:"cwd,omitempty"`
	// Deleted: the executable was unlinked after it started (exe link
	// ends in " (deleted)").
	Deleted bool `json:"deleted,omitempty"`
	// Partial: the process exited before everything could be read; the
	// fields that could not be read are empty.
	Partial bool `json:"partial,omitempty"`
	// Cgroup is the process's cgroup v2 path (or the v1 name=systemd /
	// pids hierarchy), Container the container it belongs to, if any.
	Cgroup    string     `json:"cgroup,omitempty"`
	Container *Container `json:"container,omitempty"`
	// Lineage lists the ancestors, parent first, as far as known.
	Lineage []Ancestor `json:"lineage,omitempty"`
}

// Container identifies the container a process runs in.
type Container struct {
	Runtime string `json:"runtime"` // docker | containerd | podman | crio
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	Image   string `json:"image,omitempty"`
}

// Ancestor is one process up a lineage.
type Ancestor struct {
	PID  int      `json:"pid"`
	Comm string   `json:"comm,omitempty"`
	Exe  string   `json:"exe,omitempty"`
	Args []string `json:"args,omitempty"`
	UID  int      `json:"uid"`
	// Exited: the ancestor is gone; kept briefly so its children keep
	// their lineage.
	Exited bool `json:"exited,omitempty"`
}

// N returns how many occurrences the event stands for (at least 1).
func (e *Event) N() int {
	if e.Count > 1 {
		return e.Count
	}
	return 1
}
