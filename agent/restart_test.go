package agent

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/sensor"
	"github.com/picket-agent/picket/audit"
	"github.com/picket-agent/picket/schema"
	"github.com/picket-agent/picket/state"
)

// TestRestartNeededSections: only the sensor sections that differ are
// named; empty and absent lists are the same setting.
func TestRestartNeededSections(t *testing.T) {
	p, err := schema.Default()
	if err != nil {
		t.Fatal(err)
	}
	q := *p
	if got := RestartNeeded(p, &q); got != nil {
		t.Fatalf("identical: %v", got)
	}
	q.Sensors.Auth.Files = []string{"/var/log/other.log"}
	q.Sensors.Web.Enabled = !p.Sensors.Web.Enabled
	q.Mode = "enforce" // not a sensor setting: applied live
	if got := RestartNeeded(p, &q); !slices.Equal(got, []string{"sensors.auth", "sensors.web"}) {
		t.Fatalf("changed auth and web: %v", got)
	}
	r := *p
	r.Sensors.Files.Roots, q.Sensors.Files.Roots = nil, []string{}
	r.Sensors.Auth, r.Sensors.Web = q.Sensors.Auth, q.Sensors.Web
	if got := RestartNeeded(&r, &q); got != nil {
		t.Fatalf("nil and empty roots differ: %v", got)
	}
}

// TestReloadSaysRestartNeeded: a reload that changes the auth sensor's
// files is applied, and status and the config.applied entry say the
// sensor needs a restart; Apply (the sync's path) returns the sections;
// going back to the running settings clears it.
func TestReloadSaysRestartNeeded(t *testing.T) {
	h := newHarness(t)
	h.start()
	orig := h.policy
	changed := *orig
	changed.Sensors.Auth.Files = []string{"/var/log/elsewhere.log"}
	h.policy = &changed
	h.reload <- struct{}{}
	h.waitFor("status naming sensors.auth", func() bool {
		return slices.Equal(h.status().RestartNeeded, []string{"sensors.auth"})
	})
	ro, err := state.OpenReadOnly(context.Background(), h.dir)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	ro.EachAudit(context.Background(), state.AuditFilter{Kind: audit.KindConfigApplied}, func(e audit.Entry) error {
		msgs = append(msgs, e.Message)
		return nil
	})
	ro.Close()
	if len(msgs) != 2 || !strings.HasSuffix(msgs[1], "; restart needed for: sensors.auth") || strings.Contains(msgs[0], "restart") {
		t.Fatalf("config.applied entries: %q", msgs)
	}
	h.stop()
}

// TestApplyNotingRestart: the sync's path gets the sections back.
func TestApplyNotingRestart(t *testing.T) {
	h := newHarness(t)
	p := h.policy
	a, err := New(Config{Version: "test", StateDir: h.dir, Notifier: h.notes,
		Policy: func(context.Context) (*schema.Policy, ConfigStatus, error) {
			return p, ConfigStatus{Source: "test"}, nil
		},
		Sensors: func(context.Context, *schema.Policy, *state.Store) ([]sensor.Sensor, []SensorStatus) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	h.waitFor("READY", func() bool { return h.notes.has("READY=1") })
	web := *p
	web.Sensors.Web.Files = []string{"/srv/www/access.log"}
	actx, acancel := context.WithTimeout(ctx, 10*time.Second)
	defer acancel()
	got, err := a.ApplyNoting(actx, &web, ConfigStatus{Source: "repository", Revision: "abc"})
	if err != nil || !slices.Equal(got, []string{"sensors.web"}) {
		t.Fatalf("ApplyNoting: %v %v", got, err)
	}
	if RestartNote(got) != "restart needed for: sensors.web" {
		t.Fatalf("note %q", RestartNote(got))
	}
	back := *p
	if got, err := a.ApplyNoting(actx, &back, ConfigStatus{Source: "repository", Revision: "def"}); err != nil || got != nil {
		t.Fatalf("back to the running settings: %v %v", got, err)
	}
}
