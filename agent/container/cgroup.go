// Package container attributes processes to containers. The process sensor
// reads /proc/<pid>/cgroup on every exec and the process table
// (agent/proctable) asks ParseCgroup which container, if any, that cgroup
// belongs to, before the event reaches the detectors; a Resolver then names
// the container (name and image) from the Docker Engine API over its unix
// socket, so a signal can say "nginx in container web-1 (nginx:1.27)" rather
// than a bare 64-character id.
//
// Attribution works from the cgroup path alone because that is what every
// runtime writes and what the kernel reports for any pid, whether or not a
// daemon is reachable; the API only adds names.
//
// The same read-only Client also lists the running containers and inspects
// their security-relevant configuration (List, Details) for the container
// inventory, agent/container/inventory, which reports containers that come,
// change and go, and flags privileged ones, host mounts and host
// namespaces. That sensor lives in a package of its own because it
// implements sensor.Sensor, and agent/sensor depends on this package.
package container

import "strings"

// Runtime names, as stored in event.Container.Runtime.
const (
	Docker     = "docker"
	Containerd = "containerd"
	Podman     = "podman"
	CRIO       = "crio"
)

// idLen is the length of the ids the runtimes generate (sha256 hex). Every
// layout recognised here uses such ids; requiring exactly this shape is what
// keeps look-alike units (libpod-conmon-<id>.scope, crio-conmon-<id>.scope,
// docker.service, session-3.scope) from being taken for containers.
const idLen = 64

// ParseCgroup returns the container runtime and full container id for a
// process's cgroup. It accepts a bare cgroup path
// ("/system.slice/docker-<id>.scope"), one /proc/<pid>/cgroup line
// ("0::/…" for cgroup v2, "4:memory:/docker/<id>" for v1) or a whole
// /proc/<pid>/cgroup file, in which case the first line that names a
// container wins (v1 hierarchies normally agree).
//
// Recognised layouts (id = 64 lowercase hex):
//
//	docker      /docker/<id>                          cgroupfs driver, v1 and v2
//	            /system.slice/docker-<id>.scope       systemd driver (rootless: under user@<uid>.service)
//	            /<cgroup-parent>/<id>, /ecs/<task>/<id>
//	containerd  /kubepods/<qos>/pod<uid>/<id>         kubelet cgroupfs driver (also k3s)
//	            …/kubepods-<qos>-pod<uid>.slice/cri-containerd-<id>.scope
//	            …pod<uid>.slice:cri-containerd:<id>   SystemdCgroup mismatch (literal cgroupfs path)
//	            /system.slice/nerdctl-<id>.scope
//	crio        …/crio-<id>.scope, /kubepods/…/crio-<id>
//	podman      /machine.slice/libpod-<id>.scope      rootful, systemd manager (also in machine-libpod_pod_<pod>.slice)
//	            /user.slice/user-<uid>.slice/user@<uid>.service/user.slice/libpod-<id>.scope   rootless
//	            /libpod_parent/libpod-<id>            cgroupfs manager
//	            …/podman-<pid>.scope/<id>             older rootless podman
//
// Not containers: the runtimes' own daemons and shims
// (/system.slice/docker.service, /system.slice/containerd.service, where
// containerd-shim runs), podman's and CRI-O's conmon monitors
// (libpod-conmon-<id>.scope, crio-conmon-<id>.scope), user sessions and
// systemd services.
//
// Sub-cgroups below the container's own (…/libpod-<id>.scope/container,
// …/docker-<id>.scope/init.scope for systemd-in-container) belong to that
// container. When containers nest (docker-in-docker, kind), the outermost
// one is returned: it is the container this host's runtime knows, can name
// and can act on.
//
// The returned id is a substring of the input (no allocation).
func ParseCgroup(path string) (runtime, id string, ok bool) {
	for path != "" {
		line := path
		if i := strings.IndexByte(path, '\n'); i >= 0 {
			line, path = path[:i], path[i+1:]
		} else {
			path = ""
		}
		if runtime, id, ok = parseLine(line); ok {
			return runtime, id, true
		}
	}
	return "", "", false
}

// parseLine strips a /proc/<pid>/cgroup "hierarchy-ID:controllers:" prefix
// when present, then parses the path.
func parseLine(line string) (runtime, id string, ok bool) {
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", "", false
	}
	if line[0] != '/' {
		// "N:controllers:/path". The path itself may contain ':' (the
		// cri-containerd literal form), so split only the first two.
		i := strings.IndexByte(line, ':')
		if i <= 0 || !allDigits(line[:i]) {
			return "", "", false
		}
		rest := line[i+1:]
		j := strings.IndexByte(rest, ':')
		if j < 0 {
			return "", "", false
		}
		line = rest[j+1:]
	}
	return parsePath(line)
}

// parsePath walks the components from the root and returns the first one
// that names a container (outermost wins; see ParseCgroup).
func parsePath(p string) (runtime, id string, ok bool) {
	var prev, prev2 string // the two components above the current one
	kube := false          // under a kubelet hierarchy (kubepods, kubepods.slice, kubelet-kubepods.slice)
	for p != "" {
		var c string
		if i := strings.IndexByte(p, '/'); i >= 0 {
			c, p = p[:i], p[i+1:]
		} else {
			c, p = p, ""
		}
		if c == "" {
			continue
		}
		if runtime, id, ok = component(c, prev, prev2, kube); ok {
			return runtime, id, true
		}
		if strings.Contains(c, "kubepods") {
			kube = true
		}
		prev2, prev = prev, c
	}
	return "", "", false
}

// component decides whether one path component names a container, given
// the components above it.
func component(c, prev, prev2 string, kube bool) (runtime, id string, ok bool) {
	if isID(c) {
		return bareRuntime(prev, prev2, kube), c, true
	}
	// "<slice>:cri-containerd:<id>" is what a kubelet with the systemd
	// driver and a containerd with cgroupfs (or the reverse) produce: the
	// systemd-style cgroupsPath is used literally as a directory name.
	if i := strings.LastIndexByte(c, ':'); i >= 0 {
		tail := c[i+1:]
		head := c[:i]
		if isID(tail) {
			switch {
			case strings.HasSuffix(head, ":cri-containerd"):
				return Containerd, tail, true
			case strings.HasSuffix(head, ":crio"):
				return CRIO, tail, true
			case strings.HasSuffix(head, ":docker"):
				return Docker, tail, true
			}
		}
		return "", "", false
	}
	base, scope := strings.CutSuffix(c, ".scope")
	runtime, id, ok = unitPrefix(base)
	// Without ".scope" only the cgroupfs forms of CRI-O and podman exist;
	// "docker-<id>" as a plain directory is not a layout any runtime
	// writes.
	if !ok || !isID(id) || (!scope && runtime != CRIO && runtime != Podman) {
		return "", "", false
	}
	return runtime, id, true
}

// unitPrefix splits the prefix runtimes put before the id in the name of the
// unit (or directory) that holds a container's processes.
func unitPrefix(base string) (runtime, rest string, ok bool) {
	switch {
	case strings.HasPrefix(base, "docker-"): // dockerd systemd driver (also rootless, cri-dockerd)
		return Docker, base[len("docker-"):], true
	case strings.HasPrefix(base, "cri-containerd-"): // containerd CRI, SystemdCgroup = true
		return Containerd, base[len("cri-containerd-"):], true
	case strings.HasPrefix(base, "nerdctl-"): // nerdctl (containerd), systemd driver
		return Containerd, base[len("nerdctl-"):], true
	case strings.HasPrefix(base, "crio-"): // CRI-O; crio-conmon-<id> (its monitor) fails the id check
		return CRIO, base[len("crio-"):], true
	case strings.HasPrefix(base, "libpod-"): // podman; libpod-conmon-<id> (its monitor) fails the id check
		return Podman, base[len("libpod-"):], true
	}
	return "", "", false
}

// bareRuntime names the runtime of a container whose cgroup is just its id,
// from where that directory sits.
func bareRuntime(prev, prev2 string, kube bool) string {
	switch {
	case prev == "libpod_parent" || isPodmanPIDScope(prev):
		return Podman
	case prev == "docker" || prev2 == "ecs":
		return Docker
	case kube:
		// The kubelet's cgroupfs layout; since dockershim's removal
		// (Kubernetes 1.24) the runtime behind it is containerd, and
		// CRI-O would have written crio-<id>.
		return Containerd
	}
	// dockerd with --cgroup-parent puts "<id>" under any parent.
	return Docker
}

// isPodmanPIDScope matches "podman-<pid>.scope", the scope older rootless
// podman created per invocation, with the container's cgroup below it.
func isPodmanPIDScope(c string) bool {
	rest, ok := strings.CutPrefix(c, "podman-")
	if !ok {
		return false
	}
	rest, ok = strings.CutSuffix(rest, ".scope")
	return ok && allDigits(rest)
}

// isID reports whether s is a full runtime id: 64 lowercase hex digits.
func isID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
