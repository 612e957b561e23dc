package agent

import (
	"time"
)

// MetaStatus is the state key under which the running agent publishes its
// Status; `picket status` reads it without talking to the agent.
const MetaStatus = "status"

// Status is the agent's self-description, rewritten every heartbeat. Its JSON
// form is the `picket status --json` contract.
type Status struct {
	Version   string         `json:"version"`
	Hostname  string         `json:"hostname"`
	PID       int            `json:"pid"`
	State     string         `json:"state"` // running | stopped
	Started   time.Time      `json:"started"`
	Heartbeat time.Time      `json:"heartbeat"`
	Root      bool           `json:"root"`
	Mode      string         `json:"mode"`
	Learning  LearningStatus `json:"learning"`
	Config    ConfigStatus   `json:"config"`
	Sensors   []SensorStatus `json:"sensors"`
	Counters  Counters       `json:"counters"`
	// Store is set while commits to the state database fail (a full
	// disk): what failed, since when, and that intake is paused.
	Store *StoreStatus `json:"store,omitempty"`
	// RestartNeeded names the config sections the running config changed
	// that take effect only at the next start ("sensors.auth", ...).
	RestartNeeded []string `json:"restart_needed,omitempty"`
}

// StoreStatus describes failing writes to the state database.
type StoreStatus struct {
	Error string    `json:"error"`
	Since time.Time `json:"since"`
	// Full: the file system is out of space (else another write error).
	// Intake is paused until a commit succeeds, so nothing past the held
	// batch is read.
	Full bool `json:"full"`
}

// LearningStatus reports the read-only learning period.
type LearningStatus struct {
	Active   bool      `json:"active"`
	Started  time.Time `json:"started"`
	Ends     time.Time `json:"ends"`
	Period   string    `json:"period"`
	Progress float64   `json:"progress"` // 0..1
}

// ConfigStatus says which configuration is in force.
type ConfigStatus struct {
	Source   string    `json:"source"` // embedded-default | repository
	Revision string    `json:"revision,omitempty"`
	Signer   string    `json:"signer,omitempty"`
	Applied  time.Time `json:"applied"`
}

// SensorStatus is one sensor's state: ok, degraded or off, with why.
type SensorStatus struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// Sensor states.
const (
	SensorOK       = "ok"
	SensorDegraded = "degraded"
	SensorOff      = "off"
)

// Counters are cumulative since start.
type Counters struct {
	Events        int64 `json:"events"`
	Signals       int64 `json:"signals"`
	Unparsed      int64 `json:"unparsed"`
	OpenIncidents int   `json:"open_incidents"`
}

// LearningAt computes the learning status at now for a period that started
// at start.
func LearningAt(start time.Time, period time.Duration, now time.Time) LearningStatus {
	ls := LearningStatus{Started: start, Ends: start.Add(period), Period: period.String()}
	if period <= 0 {
		ls.Progress = 1
		return ls
	}
	el := now.Sub(start)
	switch {
	case el <= 0:
		ls.Progress = 0
	case el >= period:
		ls.Progress = 1
	default:
		ls.Progress = float64(el) / float64(period)
	}
	ls.Active = ls.Progress < 1
	return ls
}
