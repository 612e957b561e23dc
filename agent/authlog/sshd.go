package authlog

import (
	"net/netip"
	"strings"

	"github.com/picket-agent/picket/agent/event"
)

// Preauth disconnect details: stable tokens rather than sshd's free text, so
// detectors can tell a scanner that never spoke SSH from a client that gave
// up after failing.
const (
	DetailReceivedDisconnect = "received_disconnect"
	DetailDisconnected       = "disconnected"
	DetailConnectionClosed   = "connection_closed"
	DetailConnectionReset    = "connection_reset"
	DetailNoIdentification   = "no_identification"
	DetailBannerExchange     = "banner_exchange"
	DetailTimeout            = "timeout"
	// DetailInvalidUser marks failures and too-many events for names that
	// do not exist on the host.
	DetailInvalidUser = "invalid_user"
)

// parseSSHD classifies an sshd message. repeat is false inside a "message
// repeated" wrapper so a crafted inner text cannot nest.
func parseSSHD(ev *event.Event, msg string, repeat bool) error {
	if msg == "" {
		return ErrNotAuth
	}
	switch msg[0] {
	case 'F':
		if r, ok := strings.CutPrefix(msg, "Failed "); ok {
			return sshdOutcome(ev, event.AuthFailure, r)
		}
	case 'A':
		if r, ok := strings.CutPrefix(msg, "Accepted "); ok {
			return sshdOutcome(ev, event.AuthSuccess, r)
		}
	case 'I':
		if r, ok := strings.CutPrefix(msg, "Invalid user "); ok {
			return sshdInvalidUser(ev, r)
		}
	case 'p':
		return parsePAMLine(ev, msg, "sshd")
	case 'P':
		if r, ok := strings.CutPrefix(msg, "PAM "); ok {
			return pamMore(ev, r)
		}
	case 'm':
		if r, ok := strings.CutPrefix(msg, "message repeated "); ok && repeat {
			return sshdRepeated(ev, r)
		}
		if r, ok := strings.CutPrefix(msg, "maximum authentication attempts exceeded for "); ok {
			return sshdMaxAttempts(ev, r)
		}
	case 'e':
		if r, ok := strings.CutPrefix(msg, "error: "); ok && r != "" {
			switch r[0] {
			case 'R', 'm':
				return parseSSHD(ev, r, false)
			}
		}
	case 'D':
		if r, ok := strings.CutPrefix(msg, "Disconnecting"); ok {
			return sshdDisconnecting(ev, r)
		}
		if r, ok := strings.CutPrefix(msg, "Disconnected from "); ok {
			return preauthUser(ev, r, DetailDisconnected)
		}
		if r, ok := strings.CutPrefix(msg, "Did not receive identification string from "); ok {
			return preauthAddr(ev, r, DetailNoIdentification)
		}
	case 'R':
		if r, ok := strings.CutPrefix(msg, "Received disconnect from "); ok {
			return sshdReceivedDisconnect(ev, r)
		}
	case 'C':
		if r, ok := strings.CutPrefix(msg, "Connection closed by "); ok {
			return preauthUser(ev, r, DetailConnectionClosed)
		}
		if r, ok := strings.CutPrefix(msg, "Connection reset by "); ok {
			return preauthUser(ev, r, DetailConnectionReset)
		}
	case 'T':
		if r, ok := strings.CutPrefix(msg, "Timeout before authentication for "); ok {
			if r2, ok := strings.CutPrefix(r, "connection from "); ok {
				r = r2 // OpenSSH 9.x: "... for connection from IP to IP, pid = N"
			}
			return preauthAddr(ev, r, DetailTimeout)
		}
	case 'b':
		if r, ok := strings.CutPrefix(msg, "banner exchange: Connection from "); ok {
			return preauthAddr(ev, r, DetailBannerExchange)
		}
	}
	return ErrNotAuth
}

// sshdOutcome parses `METHOD for [invalid user ]U from IP port N ssh2[: KEY]`
// after "Failed " or "Accepted ".
func sshdOutcome(ev *event.Event, kind event.Kind, s string) error {
	method, s, ok := strings.Cut(s, " for ")
	if !ok || method == "" || strings.IndexByte(method, ' ') >= 0 {
		return ErrNotAuth
	}
	user, addr, port, tail, ok := lastFrom(s)
	if !ok {
		return ErrNotAuth
	}
	if u, ok := strings.CutPrefix(user, "invalid user "); ok {
		user = u
		ev.Detail = DetailInvalidUser
	}
	// keyboard-interactive/pam and keyboard-interactive/bsdauth are one
	// method to a detector.
	if i := strings.IndexByte(method, '/'); i > 0 {
		method = method[:i]
	}
	if kind == event.AuthSuccess {
		// Keep the key type and fingerprint: they say which key got in.
		if k, ok := strings.CutPrefix(tail, " ssh2: "); ok {
			ev.Detail = k
		}
	}
	ev.Kind, ev.Method, ev.User, ev.Addr, ev.Port = kind, method, user, addr, port
	return nil
}

// sshdInvalidUser parses `U from IP[ port N]`.
func sshdInvalidUser(ev *event.Event, s string) error {
	user, addr, port, _, ok := lastFrom(s)
	if !ok {
		return ErrNotAuth
	}
	ev.Kind, ev.User, ev.Addr, ev.Port = event.AuthInvalidUser, user, addr, port
	return nil
}

// sshdRepeated parses `N times: [ INNER]`, rsyslog's reduction of repeated
// messages: INNER happened N more times.
func sshdRepeated(ev *event.Event, s string) error {
	n, i := leadingInt(s)
	if i == 0 {
		return ErrNotAuth
	}
	inner, ok := strings.CutPrefix(s[i:], " times: [")
	if !ok {
		return ErrNotAuth
	}
	inner = strings.TrimSuffix(strings.TrimPrefix(inner, " "), "]")
	if err := parseSSHD(ev, inner, false); err != nil {
		return err
	}
	ev.Count = n
	return nil
}

// sshdMaxAttempts parses `[invalid user ]U from IP port N ssh2 [preauth]`.
func sshdMaxAttempts(ev *event.Event, s string) error {
	user, addr, port, _, ok := lastFrom(s)
	if !ok {
		return ErrNotAuth
	}
	if u, ok := strings.CutPrefix(user, "invalid user "); ok {
		user = u
		ev.Detail = DetailInvalidUser
	}
	ev.Kind, ev.User, ev.Addr, ev.Port = event.AuthTooMany, user, addr, port
	return nil
}

// sshdDisconnecting handles the text after "Disconnecting":
// `: Too many authentication failures[ for U] [preauth]` (older sshd, no
// address: the detector joins it by pid) and
// ` [invalid |authenticating ]user U IP port N: Too many authentication failures [preauth]`.
func sshdDisconnecting(ev *event.Event, s string) error {
	const tooMany = "Too many authentication failures"
	if r, ok := strings.CutPrefix(s, ": "+tooMany); ok {
		r = trimPreauth(r)
		if u, ok := strings.CutPrefix(r, " for "); ok {
			if v, ok := strings.CutPrefix(u, "invalid user "); ok {
				u = v
				ev.Detail = DetailInvalidUser
			}
			ev.User = u
		} else if r != "" {
			return ErrNotAuth
		}
		ev.Kind = event.AuthTooMany
		return nil
	}
	i := strings.LastIndex(s, ": "+tooMany)
	if i < 0 || s == "" || s[0] != ' ' {
		return ErrNotAuth
	}
	user, invalid, addr, port, ok := userAddrPort(s[1:i])
	if !ok {
		return ErrNotAuth
	}
	if invalid {
		ev.Detail = DetailInvalidUser
	}
	ev.Kind, ev.User, ev.Addr, ev.Port = event.AuthTooMany, user, addr, port
	return nil
}

func trimPreauth(s string) string {
	s = strings.TrimRight(s, " ")
	if r, ok := strings.CutSuffix(s, "[preauth]"); ok {
		return strings.TrimRight(r, " ")
	}
	return s
}

// preauthUser parses disconnects of the form
// `[[invalid |authenticating ]user U ]IP[ port N] [preauth]`. Only the
// preauth ones count: the same words after a session are a normal logout.
func preauthUser(ev *event.Event, s, detail string) error {
	r, ok := strings.CutSuffix(strings.TrimRight(s, " "), "[preauth]")
	if !ok {
		return ErrNotAuth
	}
	user, _, addr, port, ok := userAddrPort(r)
	if !ok {
		return ErrNotAuth
	}
	ev.Kind, ev.User, ev.Addr, ev.Port, ev.Detail = event.AuthPreauthDisconnect, user, addr, port, detail
	return nil
}

// preauthAddr parses `IP[ port N]...` for messages that are preauth by
// nature (no identification, banner errors, login grace timeout).
func preauthAddr(ev *event.Event, s, detail string) error {
	addr, port, _, ok := addrPort(trimAddrColon(s))
	if !ok {
		return ErrNotAuth
	}
	ev.Kind, ev.Addr, ev.Port, ev.Detail = event.AuthPreauthDisconnect, addr, port, detail
	return nil
}

// trimAddrColon drops a colon glued to the first token (`IP: reason`),
// which an IPv6 address can never end with unless it ends in "::", where the
// extra colon is still the separator.
func trimAddrColon(s string) string {
	tok, _, _ := strings.Cut(s, " ")
	if strings.HasSuffix(tok, ":") && !strings.HasSuffix(tok, "::") || strings.HasSuffix(tok, ":::") {
		return tok[:len(tok)-1] + s[len(tok):]
	}
	return s
}

// sshdReceivedDisconnect parses `IP port N:11: Bye Bye [preauth]` (newer)
// and `IP: 11: Bye Bye [preauth]` (older).
func sshdReceivedDisconnect(ev *event.Event, s string) error {
	if !strings.HasSuffix(strings.TrimRight(s, " "), "[preauth]") {
		return ErrNotAuth
	}
	tok, rest, _ := strings.Cut(s, " ")
	var addr netip.Addr
	var port int
	var ok bool
	if t, colon := strings.CutSuffix(tok, ":"); colon && (!strings.HasSuffix(tok, "::") || strings.HasSuffix(tok, ":::")) {
		addr, ok = parseAddr(t)
	} else {
		addr, ok = parseAddr(tok)
		if r, found := strings.CutPrefix(rest, "port "); ok && found {
			if n, i := leadingInt(r); i > 0 && n <= 65535 {
				port = n
			}
		}
	}
	if !ok {
		return ErrNotAuth
	}
	ev.Kind, ev.Addr, ev.Port, ev.Detail = event.AuthPreauthDisconnect, addr, port, DetailReceivedDisconnect
	return nil
}

// parsePAMLine handles `pam_MODULE(SERVICE:TYPE): TEXT` lines, which every
// PAM-using program writes under its own name.
func parsePAMLine(ev *event.Event, msg, program string) error {
	if !strings.HasPrefix(msg, "pam_") {
		return ErrNotAuth
	}
	head, text, ok := strings.Cut(msg, "): ")
	if !ok {
		return ErrNotAuth
	}
	open := strings.IndexByte(head, '(')
	if open < 0 {
		return ErrNotAuth
	}
	service, typ, _ := strings.Cut(head[open+1:], ":")
	switch typ {
	case "auth":
		r, ok := strings.CutPrefix(text, "authentication failure;")
		if !ok || program != "sshd" {
			// su and sudo log their own failure lines; counting PAM's too
			// would double them.
			return ErrNotAuth
		}
		pamFailure(ev, r)
		ev.Kind = event.AuthPAMFailure
		return nil
	case "chauthtok":
		if u, ok := strings.CutPrefix(text, "password changed for "); ok {
			ev.Kind, ev.User = event.PasswdChange, strings.TrimRight(u, " ")
			return nil
		}
	case "session":
		if (service == "su" || service == "su-l") && program == "su" {
			return suSession(ev, text)
		}
	}
	return ErrNotAuth
}

// pamFailure fills Addr and User from pam_unix's
// `logname= uid=0 euid=0 tty=ssh ruser= rhost=IP  user=U`. rhost comes
// before the attacker-chosen user, so it is found from the left; the user is
// the rest of the line. A host name in rhost (UseDNS) leaves Addr zero and
// goes to Detail as "rhost=NAME" so the evidence is not lost.
func pamFailure(ev *event.Event, s string) {
	i := strings.Index(s, " rhost=")
	if i < 0 {
		return
	}
	v := s[i+1:]
	end := strings.IndexByte(v, ' ')
	if end < 0 {
		end = len(v)
	}
	rhost := v[len("rhost="):end]
	if a, ok := parseAddr(rhost); ok {
		ev.Addr = a
	} else if rhost != "" {
		ev.Detail = v[:end]
	}
	if j := strings.Index(v[end:], " user="); j >= 0 {
		ev.User = strings.TrimRight(v[end+j+len(" user="):], " ")
	}
}

// pamMore parses `N more authentication failure[s]; logname=...`, libpam's
// summary when sshd gives up; sshd logged each attempt already.
func pamMore(ev *event.Event, s string) error {
	n, i := leadingInt(s)
	if i == 0 {
		return ErrNotAuth
	}
	r, ok := strings.CutPrefix(s[i:], " more authentication failure")
	if !ok {
		return ErrNotAuth
	}
	r = strings.TrimPrefix(r, "s")
	pamFailure(ev, r)
	ev.Kind, ev.Count = event.AuthPAMFailure, n
	return nil
}

// parseOldSSHDPAM handles the pre-2008 `sshd(pam_unix)[pid]: authentication
// failure; ...` style, where sshd wrote no Failed line of its own: this line
// is the only record of the attempt, so it counts as a password failure.
func parseOldSSHDPAM(ev *event.Event, msg string) error {
	if r, ok := strings.CutPrefix(msg, "authentication failure;"); ok {
		pamFailure(ev, r)
		ev.Kind, ev.Method = event.AuthFailure, "password"
		return nil
	}
	if n, i := leadingInt(msg); i > 0 {
		if r, ok := strings.CutPrefix(msg[i:], " more authentication failure"); ok {
			pamFailure(ev, strings.TrimPrefix(r, "s"))
			ev.Kind, ev.Count = event.AuthPAMFailure, n
			return nil
		}
	}
	return ErrNotAuth
}
