package main

import (
	"fmt"
	"io"
	"sort"
	"time"
)

// Targets (issue 12) and fail2ban 1.0.2's figures on the same workload,
// measured as a live daemon (sandboxed, nftables-multiport), 15 minutes.
const (
	targetLinesPerSec = 100000
	targetRSSMB       = 100
	targetLatency     = 10 * time.Second

	f2bLinesPerSec = 4060
	f2bBansPerSec  = 21
	f2bBanned      = 19238
	f2bRSSMB       = 449
	f2bCores       = 1.1
)

// print writes the figures and reports whether every target was met.
func (r *result) print(w io.Writer, c config) bool {
	ok := true
	miss := func(format string, a ...any) {
		ok = false
		fmt.Fprintf(w, "MISSED: "+format+"\n", a...)
	}
	end := time.Now()
	if !r.ingestedAt.IsZero() {
		end = r.ingestedAt
	}
	ingestSecs := end.Sub(r.firstWrite).Seconds()
	rate := float64(r.ingested) / ingestSecs
	writeSecs := r.lastWrite.Sub(r.firstWrite).Seconds()
	fmt.Fprintf(w, "workload: %d sshd failure lines from %d addresses (%d each, interleaved), written in %.2fs\n",
		r.lines, c.addrs, c.perAddr, writeSecs)
	fmt.Fprintf(w, "ingest: %d of %d lines committed in %.2fs = %.0f lines/s (best 1 s: %.0f lines/s)\n",
		r.ingested, r.lines, ingestSecs, rate, bestSecond(r.samples))

	fmt.Fprintf(w, "lines committed after:")
	for _, at := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 20 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute} {
		if n, ok := linesAt(r.samples, r.firstWrite.Add(at)); ok {
			fmt.Fprintf(w, " %s %d;", at, n)
		}
	}
	fmt.Fprintln(w)

	var lat []time.Duration
	late := 0
	for a := 0; a < c.addrs; a++ {
		at, ok := r.seen[addrOf(a)]
		if !ok {
			continue
		}
		d := at.Sub(r.crossing[a])
		if r.crossing[a].IsZero() {
			d = 0
		}
		lat = append(lat, d)
		if d > targetLatency {
			late++
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	blocked := len(lat)
	var lastBlock, bansPerSec float64
	if blocked > 0 {
		lastBlock = r.lastBlock.Sub(r.firstWrite).Seconds()
		bansPerSec = float64(blocked) / lastBlock
	}
	fmt.Fprintf(w, "blocks in the kernel set: %d of %d expected; last one %.1fs after the first line\n", blocked, c.addrs, lastBlock)
	if blocked > 0 {
		fmt.Fprintf(w, "crossing line -> in the set (resolution %s): p50 %s, p99 %s, max %s; %d later than %s\n",
			r.pollResolution, pct(lat, 50), pct(lat, 99), lat[len(lat)-1].Round(10*time.Millisecond), late, targetLatency)
	}
	cores := r.cpu / time.Since(r.firstWrite).Seconds()
	fmt.Fprintf(w, "agent: peak RSS %d MB (now %d MB), %.1f CPU seconds (%.2f cores over the run)\n",
		r.hwmKB/1024, r.rssKB/1024, r.cpu, cores)
	if r.agentDied != "" {
		fmt.Fprintln(w, "agent:", r.agentDied)
	}
	if r.gaveUp {
		fmt.Fprintf(w, "gave up after %s\n", c.timeout)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-26s %14s %14s %12s\n", "", "picket", "fail2ban 1.0.2", "target")
	fmt.Fprintf(w, "%-26s %14.0f %14d %12s\n", "ingest lines/s", rate, f2bLinesPerSec, ">= 100000")
	fmt.Fprintf(w, "%-26s %14.0f %14d %12s\n", "bans/s", bansPerSec, f2bBansPerSec, "")
	fmt.Fprintf(w, "%-26s %14s %14s %12s\n", "banned of 50,000", fmt.Sprintf("%d", blocked), fmt.Sprintf("%d (15 min)", f2bBanned), "all, <= 10 s")
	fmt.Fprintf(w, "%-26s %14d %14d %12s\n", "peak RSS MB", r.hwmKB/1024, f2bRSSMB, "< 100")
	fmt.Fprintf(w, "%-26s %14.2f %14.1f %12s\n", "cores", cores, f2bCores, "")
	fmt.Fprintln(w)
	if rate < targetLinesPerSec {
		miss("ingest %.0f lines/s, below %d", rate, targetLinesPerSec)
	}
	if r.ingested < r.lines {
		miss("%d lines never ingested", r.lines-r.ingested)
	}
	if r.hwmKB/1024 >= targetRSSMB {
		miss("peak RSS %d MB, not below %d", r.hwmKB/1024, targetRSSMB)
	}
	if blocked < c.addrs {
		miss("%d of %d addresses never blocked", c.addrs-blocked, c.addrs)
	}
	if late > 0 {
		miss("%d addresses blocked later than %s after their crossing line", late, targetLatency)
	}
	return ok
}

// bestSecond is the highest ingest rate over any one-second span of the
// samples.
func bestSecond(s []sample) float64 {
	best := 0.0
	j := 0
	for i := range s {
		for j < i && s[i].at.Sub(s[j].at) > time.Second {
			j++
		}
		if d := s[i].at.Sub(s[j].at).Seconds(); d >= 0.5 {
			if r := float64(s[i].lines-s[j].lines) / d; r > best {
				best = r
			}
		}
	}
	return best
}

func pct(d []time.Duration, p int) time.Duration {
	i := len(d) * p / 100
	if i >= len(d) {
		i = len(d) - 1
	}
	return d[i].Round(10 * time.Millisecond)
}

// linesAt is the committed count of the last sample at or before t.
func linesAt(s []sample, t time.Time) (int, bool) {
	i := sort.Search(len(s), func(i int) bool { return s[i].at.After(t) })
	if i == 0 || i == len(s) {
		return 0, false
	}
	return s[i-1].lines, true
}
