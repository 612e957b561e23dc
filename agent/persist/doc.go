// Package persist inventories the places where an attacker makes access
// survive a reboot or a logout — cron (system crontab, cron.d, periodic
// script directories, user crontabs), systemd units and timers (system,
// vendor, per-user), /etc/rc.local, /etc/init.d, shell profiles (system
// and per user), every user's authorized_keys, /etc/ld.so.preload, and
// setuid/setgid files or file capabilities in system binary directories —
// and reports what changed in them.
//
// The persistence Sensor takes the inventory at start as its baseline (no
// events), then re-inventories on fsnotify notifications and on a period
// (files whose inode, size, mtime and ctime did not change are not read
// again), and sends a PersistChanged event per semantic change saying what
// was added: the cron line, the unit's ExecStart, the key's fingerprint,
// the lines added to a profile. The Detector turns additions into
// persistence signals. The parsers (ParseCrontab, ParseAuthorizedKeys,
// ParseUnit, DecodeCapabilities) are usable on their own.
//
// Every path is below Options.Root, so tests and scenarios run against a
// private copy of the host's files; paths in events are host paths.
package persist
