package baseline

import (
	"fmt"

	"github.com/picket-agent/picket/agent/event"
)

// KeysOf returns the baseline keys an event touches (process, outbound
// destination, listener), in the form the deviation rules use for their
// de-duplication: "exec:<parent>→<exe>@<user>",
// "connect:<exe>→<prefix>:<port>/<proto>", "listen:<exe>:<port>/<proto>".
// The feedback loop marks them untrusted when an operator says an attack
// was missed, so the same activity is news again.
func KeysOf(ev *event.Event) []string {
	var out []string
	switch ev.Kind {
	case event.ProcExec:
		if k, ok := procKeyOf(ev); ok {
			out = append(out, k.key())
		}
	case event.NetConnect:
		if k, ok := outKeyOf(ev); ok {
			out = append(out, k.key())
		}
	case event.NetListen:
		if k, ok := listenKeyOf(ev); ok {
			out = append(out, k.key())
		}
	}
	return out
}

func (k procKey) key() string { return "exec:" + k.parent + "→" + k.exe + "@" + k.user }

func (k outKey) key() string {
	return fmt.Sprintf("connect:%s→%s:%d/%s", k.exe, prefixString(k.prefix), k.port, k.proto)
}

func (k listenKey) key() string { return fmt.Sprintf("listen:%s:%d/%s", k.exe, k.port, k.proto) }

func (c Config) distrusts(key string) bool { return c.Distrusted != nil && c.Distrusted(key) }
