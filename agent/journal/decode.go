package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// Entry is one journal entry, reduced to what the log sensors use.
type Entry struct {
	// Cursor is journald's opaque position of this entry; persist it and
	// pass it back as Reader.Cursor to resume after this entry.
	Cursor string
	// Time is __REALTIME_TIMESTAMP: when journald received the entry.
	Time time.Time
	// Identifier is SYSLOG_IDENTIFIER ("sshd", "sshd-session", "sudo").
	Identifier string
	// PID is _PID (the sender as the kernel saw it), or SYSLOG_PID when
	// _PID is absent (entries imported or forwarded); 0 when neither parses.
	PID int
	// Host is _HOSTNAME.
	Host string
	// Message is MESSAGE. journald stores non-UTF-8 or control-character
	// messages as binary, which journalctl prints as an array of bytes; the
	// bytes are returned as they are, so Message may be invalid UTF-8.
	Message string
}

// rawEntry lists the fields we read; every other field is skipped by the
// decoder without being materialised. Journal field names are upper case
// by rule, so encoding/json's case-insensitive matching cannot confuse two.
type rawEntry struct {
	Cursor     json.RawMessage `json:"__CURSOR"`
	Realtime   json.RawMessage `json:"__REALTIME_TIMESTAMP"`
	Identifier json.RawMessage `json:"SYSLOG_IDENTIFIER"`
	PID        json.RawMessage `json:"_PID"`
	SyslogPID  json.RawMessage `json:"SYSLOG_PID"`
	Host       json.RawMessage `json:"_HOSTNAME"`
	Message    json.RawMessage `json:"MESSAGE"`
}

var errNoCursor = errors.New("entry has no __CURSOR")

// decodeEntry parses one line of `journalctl -o json`. Only a line that is
// not a JSON object, or that lacks a cursor (without which the entry could
// not be resumed after), is an error; missing or odd fields are left empty.
func decodeEntry(line []byte) (Entry, error) {
	var raw rawEntry
	if err := json.Unmarshal(line, &raw); err != nil {
		return Entry{}, err
	}
	var e Entry
	e.Cursor, _ = fieldValue(raw.Cursor)
	if e.Cursor == "" {
		return Entry{}, errNoCursor
	}
	if s, ok := fieldValue(raw.Realtime); ok {
		if us, err := strconv.ParseInt(s, 10, 64); err == nil {
			e.Time = time.UnixMicro(us)
		}
	}
	e.Identifier, _ = fieldValue(raw.Identifier)
	e.Host, _ = fieldValue(raw.Host)
	e.Message, _ = fieldValue(raw.Message)
	for _, f := range []json.RawMessage{raw.PID, raw.SyslogPID} {
		if s, ok := fieldValue(f); ok {
			if pid, err := strconv.Atoi(s); err == nil && pid > 0 {
				e.PID = pid
				break
			}
		}
	}
	return e, nil
}

// fieldValue turns one field of journalctl's JSON output into a string.
// journalctl writes a field as
//   - a JSON string when it is printable UTF-8,
//   - an array of numbers (its bytes) when it is not,
//   - null when it is too large to show (we pass --all, but other
//     producers of this format may not),
//   - an array of the above when the entry has the field several times;
//     the first value is taken, as journalctl's own text output does.
func fieldValue(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	case '[':
		var elems []json.RawMessage
		if json.Unmarshal(raw, &elems) != nil {
			return "", false
		}
		if b, ok := byteArray(elems); ok {
			return string(b), true
		}
		for _, el := range elems {
			if s, ok := fieldValue(el); ok {
				return s, true
			}
		}
		return "", false
	}
	return "", false
}

// byteArray decodes elems as bytes if every element is an integer 0..255.
// An empty array counts as an empty binary value.
func byteArray(elems []json.RawMessage) ([]byte, bool) {
	b := make([]byte, 0, len(elems))
	for _, el := range elems {
		el = bytes.TrimSpace(el)
		if len(el) == 0 || el[0] < '0' || el[0] > '9' {
			return nil, false
		}
		n, err := strconv.ParseUint(string(el), 10, 8)
		if err != nil {
			return nil, false
		}
		b = append(b, byte(n))
	}
	return b, true
}
