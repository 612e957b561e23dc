//go:build linux

package isolate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/internal/dockertest"
)

// networks returns a container's networks with their aliases and static
// IPv4 addresses, as the daemon reports them.
func networks(t *testing.T, c *Client, id string) map[string]string {
	t.Helper()
	d, err := c.inspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for name, e := range d.NetworkSettings.Networks {
		var aliases []string
		for _, a := range e.Aliases {
			if !strings.HasPrefix(d.ID, a) { // older APIs add the short id
				aliases = append(aliases, a)
			}
		}
		slices.Sort(aliases)
		v := strings.Join(aliases, ",")
		if e.IPAMConfig != nil && e.IPAMConfig.IPv4Address != "" {
			v += " static " + e.IPAMConfig.IPv4Address + " is " + e.IPAddress
		}
		out[name] = v
	}
	return out
}

func TestRealDockerd(t *testing.T) {
	api := dockertest.Start(t)
	sock := api.Socket
	api.ImportBusybox("picket-iso:1")
	for i, n := range []string{"picket-front", "picket-back"} {
		api.Network(n, fmt.Sprintf("198.18.%d.0/24", 70+i))
	}
	create := func(name string, endpoints map[string]any) string {
		return api.Run(name, map[string]any{
			"Image": "picket-iso:1", "Cmd": []string{"sleep", "300"},
			"HostConfig":       map[string]any{"NetworkMode": "picket-front"},
			"NetworkingConfig": map[string]any{"EndpointsConfig": endpoints},
		})
	}
	web := create("picket-web", map[string]any{"picket-front": map[string]any{
		"Aliases": []string{"web", "www"}, "IPAMConfig": map[string]string{"IPv4Address": "198.18.70.10"}}})
	api.JSON("POST", "/networks/picket-back/connect", map[string]any{"Container": web,
		"EndpointConfig": map[string]any{"Aliases": []string{"api"}}}, http.StatusOK)
	db := create("picket-db", map[string]any{"picket-front": map[string]any{"Aliases": []string{"db"}}})

	c := NewClient(sock, 10*time.Second)
	defer c.Close()
	ctx := context.Background()
	before := networks(t, c, web)
	if want := map[string]string{"picket-front": "web,www static 198.18.70.10 is 198.18.70.10", "picket-back": "api"}; !mapsEqual(before, want) {
		t.Fatalf("setup: networks %v, want %v", before, want)
	}
	dbBefore := networks(t, c, db)

	t.Run("disconnect and restore", func(t *testing.T) {
		s, err := c.Isolate(ctx, "picket-web", Disconnect, []string{"picket-db"})
		if err != nil {
			t.Fatal(err)
		}
		if got := networks(t, c, web); len(got) != 0 {
			t.Errorf("after isolate: still on %v", got)
		}
		if got := networks(t, c, db); !mapsEqual(got, dbBefore) {
			t.Errorf("another container changed: %v", got)
		}
		// The snapshot goes through the journal as JSON.
		b, _ := json.Marshal(s)
		var back Snapshot
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.ContainerID != web || back.Name != "picket-web" || len(back.Endpoints) != 2 {
			t.Errorf("snapshot = %s", b)
		}
		for range 2 { // idempotent
			if err := c.Restore(ctx, back); err != nil {
				t.Fatal(err)
			}
			if got := networks(t, c, web); !mapsEqual(got, before) {
				t.Errorf("after restore: %v, want %v", got, before)
			}
		}
		// Isolating an isolated container, then restoring, is harmless.
		s1, err := c.Isolate(ctx, web, Disconnect, nil)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := c.Isolate(ctx, web, Disconnect, nil)
		if err != nil || len(s2.Endpoints) != 0 {
			t.Fatalf("second isolate: %+v, %v", s2, err)
		}
		if err := errors.Join(c.Restore(ctx, s2), c.Restore(ctx, s1)); err != nil {
			t.Fatal(err)
		}
		if got := networks(t, c, web); !mapsEqual(got, before) {
			t.Errorf("after nested restore: %v, want %v", got, before)
		}
	})

	t.Run("pause and restore", func(t *testing.T) {
		s, err := c.Isolate(ctx, web[:12], Pause, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := c.inspect(ctx, web); !d.State.Paused {
			t.Errorf("not paused: %+v", d.State)
		}
		// Already paused (by someone else, or a retry): Restore of
		// that snapshot must not unpause.
		s2, err := c.Isolate(ctx, web, Pause, nil)
		if err != nil || !s2.WasPaused {
			t.Fatalf("pause of a paused container: %+v, %v", s2, err)
		}
		if err := c.Restore(ctx, s2); err != nil {
			t.Fatal(err)
		}
		if d, _ := c.inspect(ctx, web); !d.State.Paused {
			t.Error("restore of a no-op pause unpaused")
		}
		for range 2 {
			if err := c.Restore(ctx, s); err != nil {
				t.Fatal(err)
			}
			if d, _ := c.inspect(ctx, web); d.State.Paused || !d.State.Running {
				t.Errorf("after restore: %+v", d.State)
			}
		}
	})

	t.Run("refusals", func(t *testing.T) {
		tests := []struct {
			id      string
			how     How
			protect []string
			want    error
		}{
			{"picket-db", Disconnect, []string{"picket-db"}, ErrProtected},
			{db, Pause, []string{"/picket-db"}, ErrProtected},
			{"picket-db", Pause, []string{db[:12]}, ErrProtected},
			{"picket-nope", Pause, nil, ErrNotFound},
			{"picket-db", "stop", nil, ErrInvalid},
			{"../x", Pause, nil, ErrInvalid},
		}
		for _, tc := range tests {
			if _, err := c.Isolate(ctx, tc.id, tc.how, tc.protect); !errors.Is(err, tc.want) {
				t.Errorf("Isolate(%s, %s, %v) = %v, want %v", tc.id, tc.how, tc.protect, err, tc.want)
			}
		}
		if d, _ := c.inspect(ctx, db); d.State.Paused || !mapsEqual(networks(t, c, db), dbBefore) {
			t.Error("a refused isolation changed the container")
		}
	})
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
