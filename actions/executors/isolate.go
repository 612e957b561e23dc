package executors

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/picket-agent/picket/actions"
	"github.com/picket-agent/picket/actions/emergency"
	"github.com/picket-agent/picket/actions/isolate"
)

// Isolator isolates and restores containers (isolate.Client).
type Isolator interface {
	Isolate(ctx context.Context, id string, how isolate.How, protect []string) (isolate.Snapshot, error)
	Restore(ctx context.Context, s isolate.Snapshot) error
}

// isolateContainer cuts a container off its networks (or pauses it). The
// endpoints are only known as the daemon hands them over, so Apply
// completes the journal's undo data itself and records the reconnect
// bodies for the emergency script.
type isolateContainer struct{ h *Host }

func (x *isolateContainer) Snapshot(context.Context, *actions.Action) (json.RawMessage, error) {
	return nil, nil
}

func (x *isolateContainer) Apply(ctx context.Context, a *actions.Action) (string, error) {
	how := isolate.Disconnect
	if x.h.IsolateHow != nil {
		how = isolate.How(x.h.IsolateHow())
	}
	if how == "" {
		how = isolate.Disconnect
	}
	snap, err := x.h.Isolator.Isolate(ctx, a.Target, how, nil)
	if snap.ContainerID != "" {
		a.Undo, _ = json.Marshal(snap)
		if rerr := x.h.Registry.AddContainer(snap.ContainerID, snap.How == isolate.Pause, reconnects(snap)); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err != nil {
		return "", err
	}
	if snap.How == isolate.Pause {
		return fmt.Sprintf("container %s paused", a.Target), nil
	}
	return fmt.Sprintf("container %s disconnected from %d network(s)", a.Target, len(snap.Endpoints)), nil
}

func (x *isolateContainer) Revert(ctx context.Context, a *actions.Action) error {
	if len(a.Undo) == 0 {
		return nil // never got as far as the daemon
	}
	var s isolate.Snapshot
	if err := json.Unmarshal(a.Undo, &s); err != nil {
		return fmt.Errorf("executors: isolate %d: snapshot: %w", a.ID, err)
	}
	if err := x.h.Isolator.Restore(ctx, s); err != nil {
		return err
	}
	return x.h.Registry.RemoveContainer(s.ContainerID)
}

// InForce: an operator who reconnects a container made a decision; the
// reconciler does not fight it.
func (x *isolateContainer) InForce(context.Context, *actions.Action) (bool, error) { return true, nil }

// reconnects turns saved endpoints into Docker API bodies and CLI
// arguments for the emergency script.
func reconnects(s isolate.Snapshot) []emergency.ContainerNetwork {
	var out []emergency.ContainerNetwork
	for _, ep := range s.Endpoints {
		ipam := map[string]any{}
		var args []string
		if ep.IPv4Address != "" {
			ipam["IPv4Address"] = ep.IPv4Address
			args = append(args, "--ip", ep.IPv4Address)
		}
		if ep.IPv6Address != "" {
			ipam["IPv6Address"] = ep.IPv6Address
			args = append(args, "--ip6", ep.IPv6Address)
		}
		if len(ep.LinkLocal) > 0 {
			ipam["LinkLocalIPs"] = ep.LinkLocal
		}
		for _, al := range ep.Aliases {
			args = append(args, "--alias", al)
		}
		cfg := map[string]any{"Aliases": ep.Aliases, "Links": ep.Links, "DriverOpts": ep.DriverOpts}
		if len(ipam) > 0 {
			cfg["IPAMConfig"] = ipam
		}
		body, _ := json.Marshal(map[string]any{"Container": s.ContainerID, "EndpointConfig": cfg})
		net := ep.NetworkID
		if net == "" {
			net = ep.NetworkName
		}
		out = append(out, emergency.ContainerNetwork{Network: net, Body: body, Args: args})
	}
	return out
}
