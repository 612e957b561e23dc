// Package audit defines the agent's audit trail: append-only entries, each
// carrying the hash of the one before it, so that altering, removing or
// reordering any stored entry breaks the chain at a point Verify can name.
// The state package stores entries; the pipeline, the config sync and the
// CLI create them; `picket audit verify` checks them. The package is pure:
// no I/O, so the same code verifies the database and exported JSON lines.
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Entry kinds. They are a public contract (JSON output, host branch).
const (
	KindAgentStart     = "agent.start"
	KindAgentStop      = "agent.stop"
	KindConfigApplied  = "config.applied"
	KindConfigRejected = "config.rejected"
	KindLearning       = "learning"
	KindIncident       = "incident"
	KindPlan           = "plan"
	KindSensor         = "sensor"
	KindBaseline       = "baseline"
	// KindAction: an action applied, renewed, re-asserted, expired,
	// rolled back, refused or suppressed (the message says which).
	KindAction = "action"
	// KindBreaker: the actions circuit breaker tripped or was reset.
	KindBreaker = "action.breaker"
	// KindFeedback: an operator verdict and its local effects.
	KindFeedback = "feedback"
	// KindProposal: a whitelist proposal queued, pushed, merged or expired.
	KindProposal = "proposal"
)

// Entry is one audit record. Seq, Prev and Hash are filled by Seal.
type Entry struct {
	Seq     int64           `json:"seq"`
	Time    time.Time       `json:"time"`
	Kind    string          `json:"kind"`
	Subject string          `json:"subject,omitempty"` // what it is about: "incident:12", "config:<rev>"
	Message string          `json:"message"`           // the explanation, for humans
	Data    json.RawMessage `json:"data,omitempty"`    // structured detail, for machines
	Prev    string          `json:"prev"`
	Hash    string          `json:"hash"`
}

// Genesis is the Prev of the first entry.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// ComputeHash returns the hash of e's content and its Prev. Every field is
// length-prefixed so no two different entries encode the same bytes, and
// time is in UTC nanoseconds so the hash does not depend on the zone.
func (e *Entry) ComputeHash() string {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte("picket-audit-v1"))
	field([]byte(e.Prev))
	field([]byte(strconv.FormatInt(e.Seq, 10)))
	field([]byte(strconv.FormatInt(e.Time.UTC().UnixNano(), 10)))
	field([]byte(e.Kind))
	field([]byte(e.Subject))
	field([]byte(e.Message))
	field(e.Data)
	return hex.EncodeToString(h.Sum(nil))
}

// Seal links e after prev (nil for the first entry): sets Seq, Prev, Hash.
func Seal(prevSeq int64, prevHash string, e Entry) Entry {
	if prevHash == "" {
		prevHash = Genesis
	}
	e.Seq = prevSeq + 1
	e.Prev = prevHash
	// The hash covers Data byte for byte and exports are JSON lines, which
	// cannot keep whitespace: store it compact so an exported entry
	// verifies exactly like the stored one.
	if len(e.Data) > 0 {
		var b bytes.Buffer
		if json.Compact(&b, e.Data) == nil {
			e.Data = b.Bytes()
		}
	}
	e.Time = e.Time.UTC().Round(0)
	e.Hash = e.ComputeHash()
	return e
}

// ErrBroken is wrapped by every ChainError.
var ErrBroken = errors.New("audit chain broken")

// ChainError names the first entry at which the chain does not hold.
type ChainError struct {
	Seq    int64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit chain broken at entry %d: %s", e.Seq, e.Reason)
}

func (e *ChainError) Unwrap() error { return ErrBroken }

// Verifier checks entries one at a time, in stored order, in constant memory.
type Verifier struct {
	prevSeq  int64
	prevHash string
	n        int64
}

// Next checks e against the entries before it.
func (v *Verifier) Next(e Entry) error {
	if v.prevHash == "" {
		v.prevHash = Genesis
	}
	if e.Seq != v.prevSeq+1 {
		return &ChainError{Seq: e.Seq, Reason: fmt.Sprintf("sequence %d follows %d (entry removed or reordered)", e.Seq, v.prevSeq)}
	}
	if e.Prev != v.prevHash {
		return &ChainError{Seq: e.Seq, Reason: "previous-hash link does not match the entry before it (entry removed, inserted or reordered)"}
	}
	if got := e.ComputeHash(); got != e.Hash {
		return &ChainError{Seq: e.Seq, Reason: "content does not match its hash (entry altered)"}
	}
	v.prevSeq, v.prevHash = e.Seq, e.Hash
	v.n++
	return nil
}

// Head checks that the chain ends where the store's recorded head says
// (catches removal of the newest entries). Call after the last Next.
func (v *Verifier) Head(seq int64, hash string) error {
	if seq == 0 && hash == "" {
		return nil
	}
	if v.prevSeq != seq || v.prevHash != hash {
		return &ChainError{Seq: seq, Reason: fmt.Sprintf("recorded head is entry %d but the chain ends at entry %d (entries removed from the end)", seq, v.prevSeq)}
	}
	return nil
}

// Count returns how many entries verified.
func (v *Verifier) Count() int64 { return v.n }
