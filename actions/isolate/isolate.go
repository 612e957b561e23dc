// Package isolate cuts a container off through the Docker Engine API over
// its unix socket, and puts it back: either by disconnecting it from every
// network (after saving each endpoint: network, aliases, static addresses,
// links) or by pausing it (freezing every process in it). The Snapshot
// Isolate returns is plain data; the action engine (package actions)
// journals it and hands it to Restore at expiry or rollback, possibly after
// a restart.
package isolate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// How a container is isolated.
type How string

const (
	// Disconnect removes the container from every network; its
	// processes keep running but can reach nothing (loopback aside).
	Disconnect How = "disconnect"
	// Pause freezes every process of the container.
	Pause How = "pause"
)

// Sentinel errors; callers match them with errors.Is.
var (
	ErrProtected = errors.New("isolate: protected container")
	ErrNotFound  = errors.New("isolate: no such container")
	// ErrUnsupported: the container shares another namespace's network
	// (host, container:<id>) or has none, so disconnect cannot isolate
	// it; pause can.
	ErrUnsupported = errors.New("isolate: cannot isolate this way")
	ErrInvalid     = errors.New("isolate: invalid request")
)

// Endpoint is one network attachment, as needed to reconnect it.
type Endpoint struct {
	NetworkID   string            `json:"network_id"`
	NetworkName string            `json:"network_name"`
	Aliases     []string          `json:"aliases,omitempty"`
	Links       []string          `json:"links,omitempty"`
	IPv4Address string            `json:"ipv4_address,omitempty"` // static (IPAMConfig) only
	IPv6Address string            `json:"ipv6_address,omitempty"` // static (IPAMConfig) only
	LinkLocal   []string          `json:"link_local,omitempty"`
	DriverOpts  map[string]string `json:"driver_opts,omitempty"`
	// Dynamic addresses at isolation time, for the audit trail; the
	// daemon may hand out others on reconnect.
	IPAddress         string `json:"ip_address,omitempty"`
	GlobalIPv6Address string `json:"global_ipv6_address,omitempty"`
}

// Snapshot is what Isolate changed.
type Snapshot struct {
	ContainerID string `json:"container_id"`
	Name        string `json:"name"`
	How         How    `json:"how"`
	// Endpoints are the networks the container was disconnected from
	// (Disconnect), sorted by network name.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// WasPaused is true when the container was already paused before a
	// Pause; Restore then leaves it paused.
	WasPaused bool `json:"was_paused,omitempty"`
}

// inspect is the part of GET /containers/{id}/json used here.
type inspect struct {
	ID    string `json:"Id"`
	Name  string `json:"Name"`
	State struct {
		Running bool `json:"Running"`
		Paused  bool `json:"Paused"`
	} `json:"State"`
	HostConfig struct {
		NetworkMode string `json:"NetworkMode"`
	} `json:"HostConfig"`
	NetworkSettings struct {
		Networks map[string]*endpointSettings `json:"Networks"`
	} `json:"NetworkSettings"`
}

type endpointSettings struct {
	IPAMConfig *struct {
		IPv4Address  string   `json:"IPv4Address,omitempty"`
		IPv6Address  string   `json:"IPv6Address,omitempty"`
		LinkLocalIPs []string `json:"LinkLocalIPs,omitempty"`
	} `json:"IPAMConfig,omitempty"`
	Links             []string          `json:"Links,omitempty"`
	Aliases           []string          `json:"Aliases,omitempty"`
	DriverOpts        map[string]string `json:"DriverOpts,omitempty"`
	NetworkID         string            `json:"NetworkID,omitempty"`
	IPAddress         string            `json:"IPAddress,omitempty"`
	GlobalIPv6Address string            `json:"GlobalIPv6Address,omitempty"`
}

// Inspect returns a container's state; ErrNotFound when the daemon does
// not know it.
func (c *Client) inspect(ctx context.Context, id string) (inspect, error) {
	var d inspect
	err := c.call(ctx, http.MethodGet, "/containers/"+url.PathEscape(id)+"/json", nil, &d)
	if statusOf(err) == http.StatusNotFound {
		return d, fmt.Errorf("container %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return d, err
	}
	d.Name = strings.TrimPrefix(d.Name, "/")
	// Pause, disconnect and the snapshot name the container by the id
	// the daemon returns: it must be a plain id (it goes into request
	// paths) and belong to the container asked about.
	if !validID(d.ID) || d.ID != id && !strings.HasPrefix(d.ID, id) && d.Name != strings.TrimPrefix(id, "/") {
		return d, fmt.Errorf("inspect %q answered for container %q (%q): %w", id, d.ID, d.Name, ErrInvalid)
	}
	return d, nil
}

// validID accepts what engines use as container ids (64 hex digits for
// Docker and Podman) and names ([a-zA-Z0-9][a-zA-Z0-9_.-]*), and nothing
// that could change a request path ("/", "?", "%", "." or "..").
func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return id != "." && id != ".."
}

// protected reports whether the container matches an entry of protect:
// its name, its full id, or an id prefix of at least 12 characters (what
// `docker ps` shows).
func protected(d inspect, protect []string) bool {
	for _, p := range protect {
		p = strings.TrimPrefix(p, "/")
		if p == "" {
			continue
		}
		if p == d.Name || p == d.ID || (len(p) >= 12 && strings.HasPrefix(d.ID, p)) {
			return true
		}
	}
	return false
}

// Isolate isolates container id (name or id) as how says, unless protect
// names it. The Snapshot is returned even with an error when something was
// already changed (ContainerID set), so the caller can Restore it.
func (c *Client) Isolate(ctx context.Context, id string, how How, protect []string) (Snapshot, error) {
	if !validID(id) {
		return Snapshot{}, fmt.Errorf("container id %q: %w", id, ErrInvalid)
	}
	if how != Disconnect && how != Pause {
		return Snapshot{}, fmt.Errorf("how %q: %w", how, ErrInvalid)
	}
	d, err := c.inspect(ctx, id)
	if err != nil {
		return Snapshot{}, err
	}
	if protected(d, protect) {
		return Snapshot{}, fmt.Errorf("container %s (%s): %w", d.Name, short(d.ID), ErrProtected)
	}
	s := Snapshot{ContainerID: d.ID, Name: d.Name, How: how}
	if how == Pause {
		if d.State.Paused {
			s.WasPaused = true
			return s, nil
		}
		if !d.State.Running {
			return Snapshot{}, fmt.Errorf("container %s is not running: %w", d.Name, ErrUnsupported)
		}
		if err := c.call(ctx, http.MethodPost, "/containers/"+url.PathEscape(d.ID)+"/pause", nil, nil); err != nil {
			return Snapshot{}, fmt.Errorf("isolate: pause %s: %w", d.Name, err)
		}
		return s, nil
	}
	mode := d.HostConfig.NetworkMode
	if mode == "host" || strings.HasPrefix(mode, "container:") {
		return Snapshot{}, fmt.Errorf("container %s uses network mode %q: %w", d.Name, mode, ErrUnsupported)
	}
	var errs []error
	for name, e := range d.NetworkSettings.Networks {
		if e == nil || name == "none" {
			continue
		}
		if !validID(name) || e.NetworkID != "" && !validID(e.NetworkID) {
			// Docker allows neither; in a request path it could name
			// something else ("..").
			errs = append(errs, fmt.Errorf("isolate: %s: network %q (id %q): %w", d.Name, name, e.NetworkID, ErrInvalid))
			continue
		}
		ep := Endpoint{NetworkID: e.NetworkID, NetworkName: name, Aliases: e.Aliases, Links: e.Links,
			DriverOpts: e.DriverOpts, IPAddress: e.IPAddress, GlobalIPv6Address: e.GlobalIPv6Address}
		if e.IPAMConfig != nil {
			ep.IPv4Address, ep.IPv6Address, ep.LinkLocal = e.IPAMConfig.IPv4Address, e.IPAMConfig.IPv6Address, e.IPAMConfig.LinkLocalIPs
		}
		s.Endpoints = append(s.Endpoints, ep)
	}
	sort.Slice(s.Endpoints, func(i, j int) bool { return s.Endpoints[i].NetworkName < s.Endpoints[j].NetworkName })
	// Everything is saved before the first change.
	for _, ep := range s.Endpoints {
		net := ep.NetworkID
		if net == "" {
			net = ep.NetworkName
		}
		body := map[string]any{"Container": d.ID, "Force": true}
		err := c.call(ctx, http.MethodPost, "/networks/"+url.PathEscape(net)+"/disconnect", body, nil)
		if err != nil && !notConnected(err) {
			errs = append(errs, fmt.Errorf("isolate: disconnect %s from %s: %w", d.Name, ep.NetworkName, err))
		}
	}
	return s, errors.Join(errs...)
}

// Restore undoes Isolate: reconnects every saved endpoint with its aliases,
// links and static addresses, or unpauses. It is idempotent: a network the
// container is already on, or a container that is not paused, is left as
// it is. A network that was removed meanwhile is looked up by name (it may
// have been recreated); if it is gone, the others are still reconnected and
// the error names it.
func (c *Client) Restore(ctx context.Context, s Snapshot) error {
	if !validID(s.ContainerID) {
		return fmt.Errorf("snapshot container %q: %w", s.ContainerID, ErrInvalid)
	}
	d, err := c.inspect(ctx, s.ContainerID)
	if err != nil {
		return err
	}
	switch s.How {
	case Pause:
		if s.WasPaused || !d.State.Paused {
			return nil
		}
		if err := c.call(ctx, http.MethodPost, "/containers/"+url.PathEscape(d.ID)+"/unpause", nil, nil); err != nil {
			return fmt.Errorf("isolate: unpause %s: %w", d.Name, err)
		}
		return nil
	case Disconnect:
	default:
		return fmt.Errorf("snapshot how %q: %w", s.How, ErrInvalid)
	}
	var errs []error
	for _, ep := range s.Endpoints {
		if connected(d, ep) {
			continue
		}
		cfg := map[string]any{}
		if len(ep.Aliases) > 0 {
			cfg["Aliases"] = ep.Aliases
		}
		if len(ep.Links) > 0 {
			cfg["Links"] = ep.Links
		}
		if len(ep.DriverOpts) > 0 {
			cfg["DriverOpts"] = ep.DriverOpts
		}
		if ep.IPv4Address != "" || ep.IPv6Address != "" || len(ep.LinkLocal) > 0 {
			cfg["IPAMConfig"] = map[string]any{"IPv4Address": ep.IPv4Address, "IPv6Address": ep.IPv6Address, "LinkLocalIPs": ep.LinkLocal}
		}
		body := map[string]any{"Container": d.ID, "EndpointConfig": cfg}
		var err error
		for _, net := range []string{ep.NetworkID, ep.NetworkName} {
			if net == "" {
				continue
			}
			err = c.call(ctx, http.MethodPost, "/networks/"+url.PathEscape(net)+"/connect", body, nil)
			if statusOf(err) != http.StatusNotFound {
				break
			}
		}
		if err != nil && !alreadyConnected(err) {
			errs = append(errs, fmt.Errorf("isolate: reconnect %s to %s: %w", d.Name, ep.NetworkName, err))
		}
	}
	return errors.Join(errs...)
}

// connected reports whether d is attached to ep's network (by id, or by
// name when the network was recreated).
func connected(d inspect, ep Endpoint) bool {
	for name, e := range d.NetworkSettings.Networks {
		if e != nil && (e.NetworkID != "" && e.NetworkID == ep.NetworkID || name == ep.NetworkName) {
			return true
		}
	}
	return false
}

// notConnected recognises the daemon's answer to disconnecting a container
// that is not on the network: nothing to do.
func notConnected(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && strings.Contains(ae.Message, "is not connected")
}

// alreadyConnected recognises the daemon's answer to connecting a
// container that already has an endpoint on the network.
func alreadyConnected(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && (strings.Contains(ae.Message, "already exists") || strings.Contains(ae.Message, "already attached"))
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
