package emergency

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The stop file is how an emergency stop reaches a running agent without
// the database or the control socket: the standalone script (or `picket
// emergency-stop`) creates it before undoing anything, the agent checks for
// it every second and trips its breaker, and `picket actions resume`
// removes it. Its presence is what counts; the content (one line,
// "RFC3339-UTC-time who") is for the operator and the audit entry, so a
// file that cannot be parsed still stops the agent.

// StopFile returns the stop file's path inside a state directory.
func StopFile(stateDir string) string { return filepath.Join(DirIn(stateDir), "stop") }

// Stop is what the stop file says.
type Stop struct {
	At  time.Time // zero when the file could not be parsed
	By  string    // who ran the stop; "" when unknown
	Raw string    // the line as written, for messages
}

// WriteStop creates (or replaces) the stop file, atomically: a reader sees
// either no file or the whole line. The directory is created if needed.
func WriteStop(stateDir string, at time.Time, by string) error {
	by = strings.Join(strings.Fields(by), "_") // one line, one field
	if by == "" {
		by = "unknown"
	}
	line := at.UTC().Format(time.RFC3339) + " " + by + "\n"
	dir := DirIn(stateDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("emergency: stop file: %w", err)
	}
	path := StopFile(stateDir)
	tmp, err := os.CreateTemp(dir, "stop.tmp*")
	if err != nil {
		return fmt.Errorf("emergency: stop file: %w", err)
	}
	_, err = tmp.WriteString(line)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("emergency: write stop file %s: %w", path, err)
	}
	// The rename is durable only once the directory is synced; a stop must
	// survive a crash of the host right after it.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// ReadStop reports whether the stop file exists and what it says. A file
// that exists but cannot be parsed is still a stop (ok is true, At zero).
func ReadStop(stateDir string) (s Stop, ok bool, err error) {
	b, err := os.ReadFile(StopFile(stateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return Stop{}, false, nil
	}
	if err != nil {
		// Unreadable but maybe present: the caller decides; a stat tells.
		if _, serr := os.Lstat(StopFile(stateDir)); serr == nil {
			return Stop{}, true, fmt.Errorf("emergency: read stop file: %w", err)
		}
		return Stop{}, false, fmt.Errorf("emergency: read stop file: %w", err)
	}
	return parseStop(string(b)), true, nil
}

func parseStop(content string) Stop {
	line, _, _ := strings.Cut(content, "\n")
	line = strings.TrimSpace(line)
	s := Stop{Raw: line}
	when, who, _ := strings.Cut(line, " ")
	if t, err := time.Parse(time.RFC3339, when); err == nil {
		s.At = t.UTC()
		s.By = strings.TrimSpace(who)
	}
	return s
}

// ClearStop removes the stop file; it is not an error if there is none.
func ClearStop(stateDir string) error {
	err := os.Remove(StopFile(stateDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("emergency: remove stop file: %w", err)
	}
	return nil
}

// String renders the stop for messages: "at TIME by WHO".
func (s Stop) String() string {
	if s.At.IsZero() {
		if s.Raw == "" {
			return "emergency stop"
		}
		return fmt.Sprintf("emergency stop (%q)", s.Raw)
	}
	by := s.By
	if by == "" {
		by = "unknown"
	}
	return "emergency stop at " + s.At.Format(time.RFC3339) + " by " + by
}
