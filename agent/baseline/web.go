package baseline

import (
	"strings"
	"time"

	"github.com/picket-agent/picket/agent/event"
)

// rateStat is the request-rate model of one log source or one client:
// the highest per-minute request count seen in each hour of the day (host
// local time), so a site busy at noon and quiet at night is judged against
// its own hour; and the totals of answers, 4xx and 5xx, for error shares.
// The minute in progress is kept apart and folded into its hour's peak
// when the next minute starts (or when the model is snapshotted).
type rateStat struct {
	minute int64 // unix minute of cur
	cur    uint32
	peaks  [24]uint32
	req    uint64
	e4, e5 uint64
}

func (r *rateStat) add(at time.Time, loc *time.Location, n uint64, status int) {
	m := at.Unix() / 60
	switch {
	case r.cur == 0:
		r.minute = m
	case m > r.minute:
		r.fold(loc)
		r.cur, r.minute = 0, m
	}
	// An older minute (a log read out of order) counts into the current
	// one: an overestimate of one minute, never a lost hit.
	r.cur = uint32(min(uint64(r.cur)+n, 1<<31))
	r.req += n
	switch {
	case status >= 400 && status < 500:
		r.e4 += n
	case status >= 500 && status < 600:
		r.e5 += n
	}
}

// fold records the minute in progress as a candidate peak for its hour.
func (r *rateStat) fold(loc *time.Location) {
	if r.cur == 0 {
		return
	}
	h := time.Unix(r.minute*60, 0).In(loc).Hour()
	r.peaks[h] = max(r.peaks[h], r.cur)
}

// folded returns the peaks with the minute in progress included.
func (r rateStat) folded(loc *time.Location) [24]uint32 {
	r.fold(loc)
	return r.peaks
}

// peakAround is the highest learned peak at hour h and its neighbours:
// traffic shifts by an hour from day to day, a spike is far above that.
func peakAround(p [24]uint32, h int) uint32 {
	return max(p[(h+23)%24], p[h], p[(h+1)%24])
}

// webSourceOf names the log a request came from: the sensor's source
// ("file:/var/log/nginx/access.log"), with the virtual host when the log
// carries one, so two sites sharing a log keep their own rates.
func webSourceOf(ev *event.Event) string {
	s := clean(ev.Source)
	if s == "" {
		s = "(unknown)"
	}
	if ev.VHost != "" {
		s += " " + clean(ev.VHost)
	}
	return s
}

type strKey string

func (a strKey) cmp(b strKey) int { return strings.Compare(string(a), string(b)) }

// WebRate is one source's or client's learned request rate: per hour of
// the day (host local time) the highest per-minute count, and the answer
// totals for the error shares.
type WebRate struct {
	Key      string     `json:"key"`
	Peaks    [24]uint32 `json:"peaks"`
	Requests uint64     `json:"requests"`
	E4xx     uint64     `json:"e4xx"`
	E5xx     uint64     `json:"e5xx"`
	Seen
}

// WebDoc is the web document: rates per log source and per client.
type WebDoc struct {
	Sources []WebRate `json:"sources"`
	Clients []WebRate `json:"clients"`
}

func webRates(t *table[strKey, rateStat], loc *time.Location) []WebRate {
	out := []WebRate{}
	for _, k := range t.keys() {
		s := t.m[k]
		out = append(out, WebRate{Key: string(k), Peaks: s.v.folded(loc), Requests: s.v.req, E4xx: s.v.e4, E5xx: s.v.e5,
			Seen: seenOf(s.seen)})
	}
	return out
}

func restoreRates(t *table[strKey, rateStat], rs []WebRate) error {
	for _, r := range rs {
		if err := validText(r.Key); err != nil || r.Key == "" {
			return errInvalidKey
		}
		if r.E4xx+r.E5xx > r.Requests {
			return errCounts
		}
		if err := restore(t, strKey(r.Key), r.Seen); err != nil {
			return err
		}
		s := t.m[strKey(r.Key)]
		for h, p := range r.Peaks {
			s.v.peaks[h] = max(s.v.peaks[h], p)
		}
		s.v.req += r.Requests
		s.v.e4 += r.E4xx
		s.v.e5 += r.E5xx
	}
	return nil
}

// errorShare is the learned share of one error class, 0 without data.
func errorShare(errs, req uint64) float64 {
	if req == 0 {
		return 0
	}
	return float64(errs) / float64(req)
}
