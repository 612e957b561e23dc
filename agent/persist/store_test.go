package persist

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/picket-agent/picket/agent/sensor"
)

type memStore struct {
	mu   sync.Mutex
	data map[string][]byte
}

func (m *memStore) LoadBaseline(_ context.Context, name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data[name], nil
}

func (m *memStore) SaveBaseline(_ context.Context, name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data[name] = data
	return nil
}

func (m *memStore) get(name string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data[name]
}

// TestSensorStoredBaseline: a key appended while the agent was down is
// reported when it starts again.
func TestSensorStoredBaseline(t *testing.T) {
	fr := newFakeRoot(t)
	store := &memStore{data: map[string][]byte{}}
	s := testSensor(fr.root)
	s.Store = store
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx, make(chan sensor.Item, 8)) }()
	for store.get(SensorName) == nil {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done

	fr.appendLine("/root/.ssh/authorized_keys", keyAttacker)
	s2 := testSensor(fr.root)
	s2.Store = store
	r := startSensor(t, s2)
	r.expect("authorized_key | added | /root/.ssh/authorized_keys | name=root | user=root | before= | after=" + fpAttacker +
		" | {fingerprint=SHA256:BY6yPWarLoCMsdiPXHvJvHzaH6HENGehsLW6YN7NJOI line=2 type=ssh-rsa}")
}

// TestSensorNewAccount: a new account's home is inventoried as soon as
// passwd names it, keys included.
func TestSensorNewAccount(t *testing.T) {
	fr := newFakeRoot(t)
	fr.write("/srv/backup/.ssh/authorized_keys", keyAttacker+"\n")
	r := startSensor(t, testSensor(fr.root))
	r.quiet(150 * time.Millisecond)
	fr.appendLine("/etc/passwd", "backup2:x:1001:1001::/srv/backup:/bin/bash")
	r.expect("authorized_key | added | /srv/backup/.ssh/authorized_keys | name=backup2 | user=backup2 | before= | after=" + fpAttacker +
		" | {fingerprint=SHA256:BY6yPWarLoCMsdiPXHvJvHzaH6HENGehsLW6YN7NJOI line=1 type=ssh-rsa}")
	if _, detail := r.s.Live(); !strings.Contains(detail, "watches") {
		t.Errorf("detail %q", detail)
	}
}
