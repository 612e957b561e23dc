// Package accounts watches the local account database — /etc/passwd,
// /etc/group, /etc/shadow, /etc/sudoers and the files it includes — and
// reports semantic changes: a new uid-0 account, a new member of a
// privileged group, a login shell given to a system account, a password
// removed, a new sudo rule (NOPASSWD or not), accounts added and removed.
//
// It has three layers, each usable alone: parsers (ParsePasswd,
// ParseGroup, ParseShadow, ParseSudoers/LoadSudoers with Grants and Who,
// which answer "who can sudo, and without a password"), the users Sensor
// the agent runs (baseline at start, fsnotify plus a periodic stat check,
// AccountChanged events), and the Detector that turns those events into
// signals. The persistence sensor (agent/persist) uses the passwd parser
// to find home directories.
//
// Password hashes are never kept, logged or put in an event: shadow
// entries are reduced to a state (empty, locked, set) and a change date as
// soon as they are parsed.
package accounts
