// Package fim is the agent's file integrity monitor: it hashes the files of
// the watched roots (web roots, /etc, startup locations) into the state
// database, follows them in real time with inotify, rescans periodically,
// and reports created, modified, deleted, chmod'ed and chown'ed files as
// event.FileChanged events. The agent runs a Scanner as one of its sensors;
// agent/webshell's Detector turns the events into signals, and `picket
// status` shows the Scanner's Live() line (the initial scan's progress).
//
// It is built not to hurt the server it protects (Wazuh's syscheck is known
// for pinning a CPU for half an hour): files whose size, mtime, ctime and
// inode are unchanged since the stored row are not read again, reads go
// through a byte-rate limit, the hashing threads run at the lowest CPU and
// I/O priority, and rows are written in batched transactions.
//
// inotify does not say which process wrote a file (fanotify would, but
// needs CAP_SYS_ADMIN and a mark on a whole mount): events carry the file's
// owner and group instead, which for a web shell dropped by PHP is the web
// server's account.
package fim

import (
	"log/slog"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/webshell"
)

// Priorities of the scanning threads.
const (
	PriorityLow    = "low"    // nice 19, I/O best-effort level 7 (default)
	PriorityIdle   = "idle"   // nice 19, I/O idle class: only when the disk is otherwise unused
	PriorityNormal = "normal" // unchanged
)

// Options configure a Scanner. Start from DefaultOptions: zero fields other
// than RateMBps and MaxWatches are replaced by their defaults, but a zero
// RateMBps means unlimited.
type Options struct {
	// Roots are files or directories, watched recursively; shell globs are
	// expanded at each scan (/home/*/.ssh), symlinked roots are resolved,
	// roots below another root are dropped.
	Roots []string
	// Excludes: a pattern with a slash matches the full path or a directory
	// above it (/etc/mtab, /var/www/*/cache); without one, the base name
	// (*.swp).
	Excludes []string
	// WebRoots: created or modified scripts below them are classified by
	// agent/webshell (the score and traits go into the event).
	WebRoots []string
	// MaxHashSize: larger files are recorded by metadata only (size,
	// mtime, ctime, inode, mode, owner).
	MaxHashSize int64
	// Workers hash files in parallel.
	Workers int
	// RateMBps limits the bytes read per second, in MB (10^6) per second,
	// across workers; 0 is unlimited.
	RateMBps float64
	// Priority of the scanning threads: PriorityLow, PriorityIdle or
	// PriorityNormal.
	Priority string
	// Interval between full rescans.
	Interval time.Duration
	// FallbackInterval: when the inotify watch limit is hit, the
	// directories left without a watch are rescanned this often.
	FallbackInterval time.Duration
	// MaxWatches caps the inotify watches (0: as many as the kernel's
	// fs.inotify.max_user_watches allows).
	MaxWatches int
	// Realtime: follow changes with inotify between scans.
	Realtime bool
	// Debounce: a path is checked this long after its last inotify event,
	// so a file being written is hashed once, not per write(2).
	Debounce time.Duration
	// BatchSize: rows per transaction.
	BatchSize int
	Logger    *slog.Logger
}

// DefaultRoots are the web roots, /etc, and the startup locations outside
// /etc: crontabs, systemd units, root's and users' shell profiles,
// authorized_keys and systemd user units.
func DefaultRoots() []string {
	return append(webshell.DefaultWebRoots(),
		"/etc",
		"/var/spool/cron",
		"/usr/lib/systemd/system", "/usr/local/lib/systemd/system",
		"/root/.ssh", "/root/.bashrc", "/root/.profile", "/root/.bash_profile", "/root/.config/systemd/user",
		"/home/*/.ssh", "/home/*/.bashrc", "/home/*/.profile", "/home/*/.bash_profile", "/home/*/.config/systemd/user",
	)
}

// DefaultExcludes are files that change on their own on every host.
func DefaultExcludes() []string {
	return []string{"/etc/mtab", "/etc/adjtime", "/etc/.pwd.lock", "/etc/ld.so.cache", "*.swp", "*.swx", "*~", "4913"}
}

// DefaultOptions are the defaults (issue 5): 2 workers, 50 MB/s, low
// priority, 6 h rescans, realtime on.
func DefaultOptions() Options {
	return Options{
		Roots:            DefaultRoots(),
		Excludes:         DefaultExcludes(),
		WebRoots:         webshell.DefaultWebRoots(),
		MaxHashSize:      256 << 20,
		Workers:          2,
		RateMBps:         50,
		Priority:         PriorityLow,
		Interval:         6 * time.Hour,
		FallbackInterval: 10 * time.Minute,
		Realtime:         true,
		Debounce:         200 * time.Millisecond,
		BatchSize:        500,
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Roots == nil {
		o.Roots = d.Roots
	}
	if o.Excludes == nil {
		o.Excludes = d.Excludes
	}
	if o.WebRoots == nil {
		o.WebRoots = d.WebRoots
	}
	if o.MaxHashSize <= 0 {
		o.MaxHashSize = d.MaxHashSize
	}
	if o.Workers <= 0 {
		o.Workers = d.Workers
	}
	if o.RateMBps < 0 {
		o.RateMBps = 0
	}
	if o.Priority == "" {
		o.Priority = d.Priority
	}
	if o.Interval <= 0 {
		o.Interval = d.Interval
	}
	if o.FallbackInterval <= 0 {
		o.FallbackInterval = d.FallbackInterval
	}
	if o.Debounce <= 0 {
		o.Debounce = d.Debounce
	}
	if o.BatchSize <= 0 {
		o.BatchSize = d.BatchSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// excluded reports whether p matches one of the patterns.
func excluded(p string, patterns []string) bool {
	base := path.Base(p)
	for _, pat := range patterns {
		if !strings.Contains(pat, "/") {
			if ok, _ := path.Match(pat, base); ok {
				return true
			}
			continue
		}
		// A full-path pattern also excludes what is below what it names.
		for q := p; q != "/" && q != "."; q = path.Dir(q) {
			if ok, _ := path.Match(pat, q); ok {
				return true
			}
		}
	}
	return false
}

// resolveRoots expands globs, resolves symlinks (a symlinked root such as
// /lib -> /usr/lib would otherwise be recorded as one link) and drops
// missing roots and roots inside another root.
func resolveRoots(roots []string) (live []string, missing []string) {
	seen := map[string]bool{}
	var all []string
	for _, r := range roots {
		matches := []string{r}
		if strings.ContainsAny(r, "*?[") {
			matches, _ = filepath.Glob(r)
		}
		if len(matches) == 0 {
			missing = append(missing, r)
		}
		for _, m := range matches {
			real, err := filepath.EvalSymlinks(m)
			if err != nil {
				missing = append(missing, m)
				continue
			}
			real = filepath.Clean(real)
			if !seen[real] {
				seen[real] = true
				all = append(all, real)
			}
		}
	}
	for _, r := range all {
		inner := false
		for _, o := range all {
			if o != r && within(r, o) {
				inner = true
				break
			}
		}
		if !inner {
			live = append(live, r)
		}
	}
	return live, missing
}

// within reports whether p is root or below it.
func within(p, root string) bool {
	return p == root || root == "/" || strings.HasPrefix(p, root+"/")
}
