package fim

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Progress is where a full scan stands (issue 5, item 7): `picket status`
// prints it through Live, a terminal through ProgressBar.
type Progress struct {
	Files      int64         // files done (hashed or skipped as unchanged)
	Bytes      int64         // bytes done (sizes of skipped files included)
	ReadBytes  int64         // bytes actually read
	TotalFiles int64         // estimate until Exact
	TotalBytes int64         // estimate until Exact
	Exact      bool          // totals are counted, not taken from the previous scan
	Rate       float64       // bytes done per second
	ETA        time.Duration // 0 when unknown or done
	Elapsed    time.Duration
	Running    bool // a full scan is under way
	Done       bool // a full scan has completed (the last one, if Running)
}

// progress is the scan's progress, shared by the walker, the workers and
// readers of Progress.
type progress struct {
	mu         sync.Mutex
	p          Progress
	started    time.Time
	countFiles int64 // precount's running totals
	countBytes int64
}

func (g *progress) start(now time.Time, files, bytes int64, fromPrevious bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	done := g.p.Done
	g.p = Progress{TotalFiles: files, TotalBytes: bytes, Running: true, Done: done}
	if !fromPrevious {
		g.p.TotalFiles, g.p.TotalBytes = 0, 0
	}
	g.started = now
	g.countFiles, g.countBytes = 0, 0
}

// add counts work of a full scan (realtime checks between scans do not
// move the last scan's figures).
func (g *progress) add(files, bytes, read int64) {
	g.mu.Lock()
	if !g.p.Running {
		g.mu.Unlock()
		return
	}
	g.p.Files += files
	g.p.Bytes += bytes
	g.p.ReadBytes += read
	g.mu.Unlock()
}

func (g *progress) counted(files, bytes int64, final bool) {
	g.mu.Lock()
	g.countFiles, g.countBytes = files, bytes
	if final && g.p.Running {
		g.p.TotalFiles, g.p.TotalBytes, g.p.Exact = files, bytes, true
	}
	g.mu.Unlock()
}

func (g *progress) finish(now time.Time) Progress {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.p.Running, g.p.Done, g.p.Exact = false, true, true
	g.p.TotalFiles, g.p.TotalBytes = g.p.Files, g.p.Bytes
	g.p.Elapsed = now.Sub(g.started)
	return g.p
}

func (g *progress) get(now time.Time) Progress {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.p
	if !p.Running {
		return p
	}
	p.Elapsed = now.Sub(g.started)
	// An estimate never shows less than what is already known.
	p.TotalFiles = max(p.TotalFiles, p.Files, g.countFiles)
	p.TotalBytes = max(p.TotalBytes, p.Bytes, g.countBytes)
	if secs := p.Elapsed.Seconds(); secs > 0 {
		p.Rate = float64(p.Bytes) / secs
	}
	if p.Rate > 0 && p.TotalBytes > p.Bytes {
		p.ETA = time.Duration(float64(p.TotalBytes-p.Bytes) / p.Rate * float64(time.Second))
		if p.ETA > time.Minute {
			p.ETA = p.ETA.Round(time.Second)
		} else {
			p.ETA = p.ETA.Round(100 * time.Millisecond)
		}
	}
	return p
}

// Progress returns the current or last full scan's progress.
func (s *Scanner) Progress() Progress { return s.prog.get(time.Now()) }

// precount walks the roots for metadata only, to give the first scan ever
// a total (later scans use the previous scan's totals).
func (s *Scanner) precount(ctx context.Context, roots []string) {
	lowerPriority(s.opts.Priority)
	var files, bytes int64
	for _, r := range roots {
		_ = filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil || excluded(p, s.opts.Excludes) {
				if d != nil && d.IsDir() && err == nil {
					return fs.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0 {
				files++
				if info, err := d.Info(); err == nil && d.Type().IsRegular() {
					bytes += info.Size()
				}
				if files%4096 == 0 {
					s.prog.counted(files, bytes, false)
				}
			}
			return nil
		})
	}
	if ctx.Err() == nil {
		s.prog.counted(files, bytes, true)
	}
}

// String renders a one-line summary, as status prints it.
func (p Progress) String() string {
	if !p.Running {
		if !p.Done {
			return "no full scan yet"
		}
		return fmt.Sprintf("last full scan: %d files, %s in %s", p.Files, humanBytes(p.Bytes), p.Elapsed.Round(time.Second))
	}
	total := "~"
	if p.Exact {
		total = ""
	}
	s := fmt.Sprintf("scanning: %s %d/%s%d files, %s/%s%s, %s/s", percent(p), p.Files, total, p.TotalFiles,
		humanBytes(p.Bytes), total, humanBytes(p.TotalBytes), humanBytes(int64(p.Rate)))
	if p.ETA > 0 {
		s += ", ETA " + p.ETA.String()
	}
	return s
}

func percent(p Progress) string {
	if p.TotalBytes <= 0 {
		return "?%"
	}
	return strconv.Itoa(int(min(100, 100*p.Bytes/p.TotalBytes))) + "%"
}

// ProgressBar draws p as one terminal line, redrawn in place with a
// carriage return: [=========>          ]  45% 31200/72600 files 1.7 GB/3.9 GB 610 MB/s ETA 4s.
// Call it on a ticker and once more with the final Progress, then print a
// newline.
func ProgressBar(w io.Writer, p Progress) {
	const width = 30
	frac := 0.0
	switch {
	case p.Done && !p.Running:
		frac = 1
	case p.TotalBytes > 0:
		frac = min(1, float64(p.Bytes)/float64(p.TotalBytes))
	}
	n := int(frac * width)
	bar := strings.Repeat("=", n)
	if n < width {
		bar += ">" + strings.Repeat(" ", width-n-1)
	}
	line := fmt.Sprintf("\r[%s] %3d%% %d/%d files %s/%s %s/s", bar, int(frac*100), p.Files, max(p.TotalFiles, p.Files),
		humanBytes(p.Bytes), humanBytes(max(p.TotalBytes, p.Bytes)), humanBytes(int64(p.Rate)))
	if p.Running && p.ETA > 0 {
		line += " ETA " + p.ETA.String()
	}
	// Pad: a shorter line must erase the previous one's tail.
	fmt.Fprintf(w, "%-100s", line)
}

func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTP"[exp])
}

// names caches uid and gid names (os/user without cgo parses /etc/passwd
// and /etc/group on each lookup). Bounded: a host has few owners, and the
// cache is dropped if a tree with random uids fills it.
type names struct {
	mu     sync.Mutex
	users  map[uint32]string
	groups map[uint32]string
}

func newNames() *names { return &names{users: map[uint32]string{}, groups: map[uint32]string{}} }

const maxNames = 4096

func (n *names) user(uid uint32) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if v, ok := n.users[uid]; ok {
		return v
	}
	id := strconv.FormatUint(uint64(uid), 10)
	v := id
	if u, err := user.LookupId(id); err == nil {
		v = u.Username
	}
	if len(n.users) >= maxNames {
		clear(n.users)
	}
	n.users[uid] = v
	return v
}

func (n *names) group(gid uint32) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if v, ok := n.groups[gid]; ok {
		return v
	}
	id := strconv.FormatUint(uint64(gid), 10)
	v := id
	if g, err := user.LookupGroupId(id); err == nil {
		v = g.Name
	}
	if len(n.groups) >= maxNames {
		clear(n.groups)
	}
	n.groups[gid] = v
	return v
}

func (n *names) owner(uid, gid uint32) string { return n.user(uid) + ":" + n.group(gid) }
