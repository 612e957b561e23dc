// Command load is the measuring half of ci/bench-load.sh: it appends a
// botnet's sshd failures to the log file a live `picket run` watches (from
// its own network, PID and mount namespaces, started by the script) at
// full speed, and measures what the agent does with them:
//
//   - lines/s ingested: the auth sensor's read position committed in the
//     agent's state (a position is committed with its effects, so this is
//     what the agent has processed, not merely read);
//   - peak RSS (VmHWM) and CPU seconds of the agent, from /proc;
//   - blocks in the kernel: the elements of the agent's nftables set
//     (inet picket block4) in its network namespace, polled; each
//     address's latency is from the write of its crossing line (the one
//     that reaches the brute-force threshold) to the first poll that sees
//     it in the set.
//
// It prints the figures beside fail2ban 1.0.2's on the same workload
// (issue 12) and exits 1 when a target is missed. It only writes the one
// file it is given and only reads the agent's state.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/picket-agent/picket/agent/tail"
	"github.com/picket-agent/picket/state"
)

func main() {
	var c config
	flag.StringVar(&c.file, "file", "", "the log file the agent watches (host path), appended to")
	flag.StringVar(&c.source, "source", "auth:file:/var/log/auth.log", "the agent's name for that file's sensor (its read position key in state)")
	flag.StringVar(&c.stateDir, "state-dir", "", "the agent's state directory (read only)")
	flag.IntVar(&c.pid, "pid", 0, "the agent's PID (host PID namespace)")
	flag.StringVar(&c.netns, "netns", "", "the agent's network namespace (for nft)")
	flag.IntVar(&c.addrs, "addrs", 50000, "distinct attacking addresses (198.18.0.0/15)")
	flag.IntVar(&c.perAddr, "per-addr", 20, "failure lines per address")
	flag.IntVar(&c.threshold, "threshold", 5, "failures that cross the brute-force threshold (policy ssh_bruteforce.max_failures)")
	flag.DurationVar(&c.timeout, "timeout", 5*time.Minute, "give up this long after the first line")
	flag.DurationVar(&c.poll, "poll", time.Second, "how often the kernel set is listed (the latency figures' resolution)")
	flag.Parse()
	if c.file == "" || c.stateDir == "" || c.pid == 0 || c.netns == "" {
		fmt.Fprintln(os.Stderr, "load: --file, --state-dir, --pid and --netns are required")
		os.Exit(2)
	}
	r, err := run(context.Background(), c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	if !r.print(os.Stdout, c) {
		os.Exit(1)
	}
}

type config struct {
	file, source, stateDir, netns string
	pid                           int
	addrs, perAddr, threshold     int
	timeout, poll                 time.Duration
}

// addrOf is the i-th attacking address: 198.18.0.0 + i, inside the
// benchmarking range 198.18.0.0/15 (131,072 addresses).
func addrOf(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)})
}

// message is the sshd text of line r (round) for address a: the forms a
// botnet produces that the parser counts as a failure.
func message(b []byte, a, r int, addr netip.Addr) []byte {
	port := strconv.Itoa(32768 + (a*31+r*7)%28000)
	switch (a + r) % 20 {
	case 0, 1, 2, 3, 4, 5:
		b = append(b, "Failed password for root from "...)
	case 6:
		b = append(b, "Failed publickey for root from "...)
	case 7:
		b = append(b, "Failed password for ubuntu from "...)
	case 8:
		b = append(b, "Failed keyboard-interactive/pam for invalid user oracle from "...)
	default:
		b = append(b, "Failed password for invalid user "...)
		b = append(b, users[(a*7+r)%len(users)]...)
		b = append(b, " from "...)
	}
	b = addr.AppendTo(b)
	b = append(b, " port "...)
	b = append(b, port...)
	return append(b, " ssh2"...)
}

var users = []string{"admin", "test", "user", "guest", "oracle", "postgres", "git", "ftpuser", "pi", "support",
	"deploy", "jenkins", "ubnt", "minecraft", "www", "mysql", "hadoop", "dev", "nagios", "tomcat"}

type result struct {
	lines          int
	firstWrite     time.Time
	lastWrite      time.Time
	ingestedAt     time.Time // when the committed position reached the end
	ingested       int       // lines committed by then (or at the end)
	samples        []sample
	crossing       []time.Time // per address: write time of its crossing line
	seen           map[netip.Addr]time.Time
	lastBlock      time.Time
	hwmKB, rssKB   int64
	cpu            float64
	agentDied      string
	gaveUp         bool
	pollResolution time.Duration
}

type sample struct {
	at    time.Time
	lines int
}

func run(ctx context.Context, c config) (*result, error) {
	st, err := state.OpenReadOnly(ctx, c.stateDir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	f, err := os.OpenFile(c.file, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	base := fi.Size()
	cpu0, err := cpuSeconds(c.pid)
	if err != nil {
		return nil, fmt.Errorf("agent pid %d: %w", c.pid, err)
	}
	total := c.addrs * c.perAddr
	res := &result{lines: total, crossing: make([]time.Time, c.addrs), seen: map[netip.Addr]time.Time{}, pollResolution: c.poll}
	// ends[i] is the file offset after line i, so a committed position
	// converts to lines exactly.
	ends := make([]int64, 0, total)
	var mu sync.Mutex // guards ends (appended by the writer, searched by the sampler)
	linesAt := func(off int64) int {
		mu.Lock()
		defer mu.Unlock()
		return sort.Search(len(ends), func(i int) bool { return ends[i] > off })
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res.firstWrite = time.Now()
	writeErr := make(chan error, 1)
	go func() {
		writeErr <- write(f, base, c, res, func(e int64) { mu.Lock(); ends = append(ends, e); mu.Unlock() })
	}()

	// Sample the committed position often (ingest rate) and the kernel
	// set at the poll interval (it costs the agent's cores: nft lists
	// every element).
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	nextPoll := time.Now()
	writing := true
	for {
		select {
		case err := <-writeErr:
			if err != nil {
				return nil, err
			}
			writing = false
		case <-ctx.Done():
			res.gaveUp = true
		case <-tick.C:
		}
		now := time.Now()
		var pos tail.Position
		if ok, err := st.Offset(ctx, c.source, &pos); err == nil && ok {
			n := linesAt(pos.Offset - base)
			res.samples = append(res.samples, sample{now, n})
			res.ingested = n
			if n >= total && res.ingestedAt.IsZero() {
				res.ingestedAt = now
			}
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", c.pid)); err != nil {
			res.agentDied = "the agent exited"
		}
		if !now.Before(nextPoll) || res.gaveUp || res.agentDied != "" {
			nextPoll = now.Add(c.poll)
			if err := pollSet(ctx, c.netns, res); err != nil && !res.gaveUp && res.agentDied == "" {
				// No table yet (no block applied): not an error.
				_ = err
			}
		}
		if res.gaveUp || res.agentDied != "" {
			break
		}
		if !writing && !res.ingestedAt.IsZero() && len(res.seen) >= c.addrs {
			break
		}
	}
	res.hwmKB, res.rssKB = memKB(c.pid)
	if cpu1, err := cpuSeconds(c.pid); err == nil {
		res.cpu = cpu1 - cpu0
	}
	return res, nil
}

// write appends every line, in rounds over the addresses (each address's
// attempts spread over the whole attack, as a botnet's are), in chunks of
// one write(2) each, stamping each chunk with the current time so the
// agent sees a live attack. It records when each address's crossing line
// was written.
func write(f *os.File, base int64, c config, res *result, end func(int64)) error {
	const chunk = 2000
	buf := make([]byte, 0, chunk*128)
	off := int64(0)
	var pending []int // addresses whose crossing line is in buf
	line := 0
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if _, err := f.Write(buf); err != nil {
			return fmt.Errorf("append to %s: %w", c.file, err)
		}
		now := time.Now()
		for _, a := range pending {
			res.crossing[a] = now
		}
		pending, buf = pending[:0], buf[:0]
		return nil
	}
	var stamp []byte
	for r := 0; r < c.perAddr; r++ {
		for a := 0; a < c.addrs; a++ {
			if line%chunk == 0 {
				if err := flush(); err != nil {
					return err
				}
				stamp = time.Now().UTC().AppendFormat(stamp[:0], "2006-01-02T15:04:05.000000-07:00")
			}
			n0 := len(buf)
			buf = append(buf, stamp...)
			buf = append(buf, " bench sshd["...)
			buf = strconv.AppendInt(buf, int64(2000+line%30000), 10)
			buf = append(buf, "]: "...)
			buf = message(buf, a, r, addrOf(a))
			buf = append(buf, '\n')
			off += int64(len(buf) - n0)
			end(off)
			if r == c.threshold-1 {
				pending = append(pending, a)
			}
			line++
		}
	}
	if err := flush(); err != nil {
		return err
	}
	res.lastWrite = time.Now()
	return nil
}

// pollSet lists the agent's IPv4 block set and records the first time each
// attacking address is seen in it.
func pollSet(ctx context.Context, netns string, res *result) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, "ip", "netns", "exec", netns, "nft", "list", "set", "inet", "picket", "block4").Output()
	if err != nil {
		return err
	}
	now := time.Now()
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	sc.Split(bufio.ScanWords)
	for sc.Scan() {
		w := strings.Trim(sc.Text(), "{},")
		a, err := netip.ParseAddr(w)
		if err != nil || !a.Is4() || a.As4()[0] != 198 || a.As4()[1]&0xfe != 18 {
			continue
		}
		if _, ok := res.seen[a]; !ok {
			res.seen[a] = now
			res.lastBlock = now
		}
	}
	return sc.Err()
}

func memKB(pid int) (hwm, rss int64) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmHWM":
			hwm = n
		case "VmRSS":
			rss = n
		}
	}
	return hwm, rss
}

// cpuSeconds is the process's user+system time (clock ticks of 1/100 s,
// the Linux USER_HZ).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unreadable stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short stat")
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100, nil
}
