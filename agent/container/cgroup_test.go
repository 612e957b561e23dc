package container

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

type cgroupCase struct {
	where        string
	runtime, id  string
	input        string
	wantNoResult bool // the input is no container
}

// loadPaths reads testdata/cgroup/paths.txt.
func loadPaths(t testing.TB) []cgroupCase {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "cgroup", "paths.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []cgroupCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// "<runtime> <id> <input>": the input is everything after the
		// second space, possibly empty.
		rt, rest, ok1 := strings.Cut(line, " ")
		id, input, ok2 := strings.Cut(rest, " ")
		if !ok1 {
			t.Fatalf("paths.txt:%d: malformed %q", n, line)
		}
		if !ok2 {
			id, input = rest, ""
		}
		c := cgroupCase{where: "paths.txt:" + strconv.Itoa(n), input: input}
		if rt == "-" {
			c.wantNoResult = true
		} else {
			c.runtime, c.id = rt, id
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases
}

// loadProcFiles reads testdata/cgroup/proc/*.cgroup, whole /proc/<pid>/cgroup
// files, each with a .want holding "<runtime> <id>" or "none".
func loadProcFiles(t testing.TB) []cgroupCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "cgroup", "proc", "*.cgroup"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no proc cgroup files: %v", err)
	}
	var cases []cgroupCase
	for _, fn := range files {
		in, err := os.ReadFile(fn)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(strings.TrimSuffix(fn, ".cgroup") + ".want")
		if err != nil {
			t.Fatal(err)
		}
		c := cgroupCase{where: filepath.Base(fn), input: string(in)}
		w := strings.Fields(string(want))
		switch {
		case len(w) == 1 && w[0] == "none":
			c.wantNoResult = true
		case len(w) == 2:
			c.runtime, c.id = w[0], w[1]
		default:
			t.Fatalf("%s: bad .want %q", fn, want)
		}
		cases = append(cases, c)
	}
	return cases
}

func TestParseCgroup(t *testing.T) {
	cases := append(loadPaths(t), loadProcFiles(t)...)
	seen := map[string]bool{}
	for _, c := range cases {
		rt, id, ok := ParseCgroup(c.input)
		if c.wantNoResult {
			if ok {
				t.Errorf("%s: ParseCgroup(%q) = %s %s, want no container", c.where, c.input, rt, id)
			}
			continue
		}
		seen[c.runtime] = true
		if !ok || rt != c.runtime || id != c.id {
			t.Errorf("%s: ParseCgroup(%q) = %q %q %v, want %s %s", c.where, c.input, rt, id, ok, c.runtime, c.id)
		}
	}
	for _, rt := range []string{Docker, Containerd, Podman, CRIO} {
		if !seen[rt] {
			t.Errorf("testdata has no %s case", rt)
		}
	}
}

// ParseCgroup runs on every exec: it must not allocate.
func TestParseCgroupAllocs(t *testing.T) {
	in := "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod5e4c3a2b_1a2b_4c3d_9e8f_0123456789ab.slice/cri-containerd-a481d4eb6c381d78e9d95090f5c28e253a70fabf132b4e5aebf0c07a91ba2af3.scope"
	if n := testing.AllocsPerRun(100, func() { ParseCgroup(in) }); n != 0 {
		t.Errorf("ParseCgroup allocates %v times per call", n)
	}
}

func FuzzParseCgroup(f *testing.F) {
	for _, c := range append(loadPaths(f), loadProcFiles(f)...) {
		f.Add(c.input)
	}
	f.Fuzz(func(t *testing.T, in string) {
		rt, id, ok := ParseCgroup(in)
		if !ok {
			if rt != "" || id != "" {
				t.Fatalf("not ok but returned %q %q", rt, id)
			}
			return
		}
		switch rt {
		case Docker, Containerd, Podman, CRIO:
		default:
			t.Fatalf("unknown runtime %q for %q", rt, in)
		}
		if !isID(id) {
			t.Fatalf("id %q is not 64 lowercase hex (input %q)", id, in)
		}
		if !strings.Contains(in, id) {
			t.Fatalf("id %q not in input %q", id, in)
		}
		// The id and runtime depend only on the line that matched: the
		// same answer comes back for that line alone, and for the input
		// with more lines after it.
		if rt2, id2, ok2 := ParseCgroup(in + "\n0::/"); !ok2 || rt2 != rt || id2 != id {
			t.Fatalf("appending a host line changed the answer: %q %q %v", rt2, id2, ok2)
		}
	})
}
