package hostbranch

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// Appending to the host branch's log files exactly once.

// edit returns the function that computes path's new content and records
// what it wrote.
func (st *stats) edit(p string, c *change) fileEdit {
	return func(old []byte, exists bool) ([]byte, error) {
		if c.isReplace {
			if !exists || !bytes.Equal(old, c.replace) {
				switch {
				case p == StatusPath:
					st.status = true
				case strings.HasPrefix(p, BaselineDir+"/"):
					st.baselines = append(st.baselines, strings.TrimSuffix(strings.TrimPrefix(p, BaselineDir+"/"), ".json"))
				default:
					st.other = append(st.other, p)
				}
			}
			return c.replace, nil
		}
		out := appendLines(old, c, st)
		return out, nil
	}
}

// appendLines appends c's lines to old unless already present.
func appendLines(old []byte, c *change, st *stats) []byte {
	n := len(old) + 1
	for _, l := range c.lines {
		n += len(l) + 1
	}
	out := make([]byte, 0, n)
	out = append(out, old...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n') // repair a torn last line rather than glue to it
	}
	last, haveLast := lastSeq(old)
	var present map[entryID]bool // built only when a seq at or below last shows up
	for _, l := range c.lines {
		if c.bySeq {
			info, ok := lineInfo(l)
			if ok {
				if !haveLast || info.seq > last {
					last, haveLast = info.seq, true
				} else {
					if present == nil {
						present = entriesIn(out)
					}
					if present[info.entryID] {
						st.skipped++
						continue
					}
				}
				if present != nil {
					present[info.entryID] = true
				}
				out = append(append(out, l...), '\n')
				st.entries++
				st.kinds[info.kind]++
				if st.minSeq == 0 || info.seq < st.minSeq {
					st.minSeq = info.seq
				}
				if info.seq > st.maxSeq {
					st.maxSeq = info.seq
				}
				continue
			}
			// A line without a seq: fall through to content dedupe.
		}
		if containsLine(out, l) {
			if !c.checkpoint {
				st.skipped++
			}
			continue
		}
		out = append(append(out, l...), '\n')
		if c.checkpoint {
			st.checkpoints++
		} else {
			st.entries++
		}
	}
	return out
}

// entryID identifies an audit entry in a day file. The seq alone is not
// enough: a re-imaged host starts a new chain at seq 1 on the same branch,
// and its entries must not be taken for the old chain's.
type entryID struct {
	seq  int64
	hash string
}

type lineFields struct {
	entryID
	kind string
}

// lineInfo reads seq, hash and kind of an audit JSON line. Lines written by
// this package start with {"seq":N and end with "hash":"..."} (Entry's
// first and last fields), which are read without a JSON decoder because a
// day file may hold tens of thousands of lines.
func lineInfo(l []byte) (lineFields, bool) {
	const prefix = `{"seq":`
	if bytes.HasPrefix(l, []byte(prefix)) {
		rest := l[len(prefix):]
		end := bytes.IndexAny(rest, ",}")
		if end > 0 {
			if n, err := strconv.ParseInt(string(rest[:end]), 10, 64); err == nil {
				return lineFields{
					entryID: entryID{seq: n, hash: stringField(l, `"hash":"`, true)},
					kind:    stringField(l, `"kind":"`, false),
				}, true
			}
		}
	}
	var v struct {
		Seq  *int64 `json:"seq"`
		Kind string `json:"kind"`
		Hash string `json:"hash"`
	}
	if json.Unmarshal(l, &v) != nil || v.Seq == nil {
		return lineFields{}, false
	}
	return lineFields{entryID: entryID{seq: *v.Seq, hash: v.Hash}, kind: v.Kind}, true
}

// stringField finds key"value" cheaply; last picks the last occurrence
// (Entry's own hash comes after any "hash" inside its data).
func stringField(l []byte, key string, last bool) string {
	var i int
	if last {
		i = bytes.LastIndex(l, []byte(key))
	} else {
		i = bytes.Index(l, []byte(key))
	}
	if i < 0 {
		return ""
	}
	rest := l[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

func lastSeq(data []byte) (int64, bool) {
	data = bytes.TrimRight(data, "\r\n")
	for len(data) > 0 {
		i := bytes.LastIndexByte(data, '\n')
		if info, ok := lineInfo(bytes.TrimSpace(data[i+1:])); ok {
			return info.seq, true
		}
		if i < 0 {
			break
		}
		data = bytes.TrimRight(data[:i], "\r\n")
	}
	return 0, false
}

func entriesIn(data []byte) map[entryID]bool {
	m := map[entryID]bool{}
	for _, l := range bytes.Split(data, []byte("\n")) {
		if info, ok := lineInfo(bytes.TrimSpace(l)); ok {
			m[info.entryID] = true
		}
	}
	return m
}

func containsLine(data, line []byte) bool {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		cur := data
		if i >= 0 {
			cur, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if bytes.Equal(bytes.TrimRight(cur, "\r"), line) {
			return true
		}
	}
	return false
}
