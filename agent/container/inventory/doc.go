// Package inventory watches the containers a Docker daemon runs and flags
// the risky ones. The Sensor polls the Docker Engine API over the daemon's
// unix socket (read-only: GET requests only) and reports each running
// container added, modified or removed as an event.ContainerChanged with
// the configuration that matters for an escape: image, privileged flag,
// added capabilities, host network or PID namespace, and bind mounts. The
// Detector turns a new or changed container that is privileged, mounts a
// sensitive host path, shares a host namespace or adds a dangerous
// capability into privilege-escalation signals keyed on the container.
//
// It is a package of its own, not part of agent/container, because the
// sensor implements sensor.Sensor and agent/sensor already depends on
// agent/container (through the process table's attribution).
package inventory
