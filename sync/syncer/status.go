package syncer

import (
	"encoding/json"
	"time"
)

// State keys owned by the syncer.
const (
	// MetaSync holds Status: what `picket status` shows about the remote.
	MetaSync = "sync"
	// MetaApplied holds Applied: the last verified, validated, applied
	// config; the agent starts on it when the remote is unreachable.
	MetaApplied = "config_applied"
)

// Status is the sync state published for `picket status`.
type Status struct {
	Remote string `json:"remote"`
	Branch string `json:"branch"`
	// Applied revision and who signed it.
	AppliedRevision string    `json:"applied_revision,omitempty"`
	AppliedSigner   string    `json:"applied_signer,omitempty"`
	AppliedAt       time.Time `json:"applied_at,omitzero"`
	LastFetch       time.Time `json:"last_fetch,omitzero"`
	LastFetchError  string    `json:"last_fetch_error,omitempty"`
	LastPush        time.Time `json:"last_push,omitzero"`
	LastPushError   string    `json:"last_push_error,omitempty"`
	// OfflineSince is set while the remote cannot be reached.
	OfflineSince time.Time `json:"offline_since,omitzero"`
	// Queued audit entries not yet pushed to the host branch.
	Queued       int64  `json:"queued"`
	PushedSeq    int64  `json:"pushed_seq"`
	CommittedSeq int64  `json:"committed_seq"`
	HostBranch   string `json:"host_branch"`
	// BaselineVersion is the newest baseline version written to the host
	// branch (baseline/<kind>.json).
	BaselineVersion int        `json:"baseline_version,omitempty"`
	LastRejection   *Rejection `json:"last_rejection,omitempty"`
}

// Rejection is the last config the agent refused, and why.
type Rejection struct {
	Revision string    `json:"revision"`
	Kind     string    `json:"kind"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// Applied is the config in force from the repository.
type Applied struct {
	Revision string          `json:"revision"`
	Signer   string          `json:"signer"`
	At       time.Time       `json:"at"`
	Policy   json.RawMessage `json:"policy"`
}
