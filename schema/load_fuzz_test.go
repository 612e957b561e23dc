package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"cuelang.org/go/cue/parser"
)

// The fuzzed repository has a fixed layout, one file per place picket
// reads: the fleet policy, one whitelist file and one host override.
const (
	fuzzPolicy    = "picket.cue"
	fuzzWhitelist = "whitelists/a.cue"
	fuzzHost      = "hosts/h1.cue"
	fuzzHostName  = "h1"
)

// maxFuzzConfig bounds an input: a real config repository is a few
// kilobytes, and CUE evaluation grows faster than linearly with nesting, so
// larger inputs only measure the evaluator, not picket.
const maxFuzzConfig = 16 << 10

// fuzzHang is how long one load may take before the input is reported as a
// hang. Loads take milliseconds; this is far above any honest slowness on
// a loaded machine.
const fuzzHang = 30 * time.Second

// firstCue returns the content of the first *.cue file in dir ("" when
// there is none).
func firstCue(dir string) string {
	names, _ := filepath.Glob(filepath.Join(dir, "*.cue"))
	slices.Sort(names)
	if len(names) == 0 {
		return ""
	}
	b, _ := os.ReadFile(names[0])
	return string(b)
}

func readOr(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// noHang runs f and fails the test if it does not return within fuzzHang:
// the fuzzer has no time limit of its own per input.
func noHang(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(fuzzHang):
		t.Fatalf("%s did not return within %v", what, fuzzHang)
	}
}

// checkIssues asserts the properties every rejection has: a
// *ValidationError whose issues are placed in a file that was given
// (never the embedded schema), with a line, a column and a message.
func checkIssues(t *testing.T, err error, files []string) *ValidationError {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("rejection is %T, not a *ValidationError: %v", err, err)
	}
	if len(ve.Issues) == 0 || err.Error() == "" {
		t.Fatalf("rejection without issues: %#v", ve)
	}
	for _, is := range ve.Issues {
		if is.Line < 1 || is.Column < 1 || is.Message == "" {
			t.Errorf("issue without position or message: %+v", is)
		}
		if !slices.Contains(files, is.File) {
			t.Errorf("issue placed in %q, not in one of the files %v: %v", is.File, files, is)
		}
	}
	return ve
}

// checkSyntax asserts that a file CUE cannot parse is named by an issue
// with its position.
func checkSyntax(t *testing.T, ve *ValidationError, name string, data []byte) {
	t.Helper()
	if _, err := parser.ParseFile(name, data, parser.ParseComments); err == nil {
		return
	}
	for _, is := range ve.Issues {
		if is.File == name && is.Line >= 1 && is.Column >= 1 {
			return
		}
	}
	t.Errorf("%s does not parse, but no issue names it: %v", name, ve)
}

// checkAccepted asserts what an accepted policy guarantees: the Go-side
// rules hold, and its JSON form (what status and the audit log show) reads
// back to the same policy.
func checkAccepted(t *testing.T, p *Policy) {
	t.Helper()
	if vs := policyRules(p); len(vs) > 0 {
		t.Fatalf("accepted policy breaks Go-side rules: %+v", vs)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("marshal accepted policy: %v", err)
	}
	var back Policy
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("unmarshal accepted policy: %v\n%s", err, b)
	}
	if !reflect.DeepEqual(&back, p) {
		t.Fatalf("JSON round trip changes the policy:\n%+v\n%+v", p, &back)
	}
}

// FuzzLoadRepo loads a config repository made of a fuzzed picket.cue,
// whitelist file and host override (an empty input leaves the file out),
// for the host, for the fleet, and through validate.
func FuzzLoadRepo(f *testing.F) {
	var dirs []string
	for _, g := range []string{"testdata/good/*", "testdata/bad/*"} {
		d, _ := filepath.Glob(g)
		dirs = append(dirs, d...)
	}
	dirs = append(dirs, "testdata/merge", filepath.Join("..", "examples", "config-repo"))
	for _, d := range dirs {
		f.Add([]byte(readOr(filepath.Join(d, "picket.cue"))), []byte(firstCue(filepath.Join(d, "whitelists"))),
			[]byte(firstCue(filepath.Join(d, "hosts"))))
	}
	f.Add([]byte("mode: \"observe\"\n"), []byte("whitelist: ips: x: {cidr: \"198.51.100.0/24\"}\n"), []byte("mode: \"enforce\"\n"))
	f.Add([]byte("a: b\nb: a\n"), []byte("[1, 2]"), []byte("levels: contain: 10"))
	f.Add([]byte("package picket\nmode: \"observe\" & \"enforce\""), []byte("\x00"), []byte("x: {"))

	for _, c := range computations() {
		f.Add([]byte(c.src), []byte(nil), []byte(c.src))
	}

	f.Fuzz(func(t *testing.T, policy, whitelist, host []byte) {
		if len(policy)+len(whitelist)+len(host) > maxFuzzConfig {
			t.Skip("larger than any config repository")
		}
		fsys := fstest.MapFS{}
		var present []string
		for _, file := range []struct {
			name string
			data []byte
		}{{fuzzPolicy, policy}, {fuzzWhitelist, whitelist}, {fuzzHost, host}} {
			if len(file.data) > 0 {
				fsys[file.name] = &fstest.MapFile{Data: file.data, Mode: 0o644}
				present = append(present, file.name)
			}
		}

		var forHost, again, fleet *Policy
		var errHost, errAgain, errFleet, errValidate error
		noHang(t, "loading the repository", func() {
			forHost, errHost = LoadFS(fsys, fuzzHostName)
			again, errAgain = LoadFS(fsys, fuzzHostName)
			fleet, errFleet = LoadFS(fsys, "")
			errValidate = validateFS(fsys, "")
		})

		// Deterministic: the same bytes load to the same policy or the
		// same issues.
		switch {
		case (errHost == nil) != (errAgain == nil):
			t.Fatalf("second load disagrees: %v / %v", errHost, errAgain)
		case errHost != nil && errHost.Error() != errAgain.Error():
			t.Fatalf("second load reports other issues:\n%v\n--\n%v", errHost, errAgain)
		case errHost == nil && !reflect.DeepEqual(forHost, again):
			t.Fatalf("second load gives another policy:\n%+v\n%+v", forHost, again)
		}

		for _, err := range []error{errHost, errFleet, errValidate} {
			if err == nil {
				continue
			}
			ve := checkIssues(t, err, present)
			checkSyntax(t, ve, fuzzPolicy, policy)
			checkSyntax(t, ve, fuzzWhitelist, whitelist)
		}
		if errHost != nil && len(host) > 0 {
			checkSyntax(t, checkIssues(t, errHost, present), fuzzHost, host)
		}
		if errHost == nil {
			checkAccepted(t, forHost)
		}
		if errFleet == nil {
			checkAccepted(t, fleet)
		}
		// validate without a host checks the fleet and every host
		// override: it accepts exactly when both loads do.
		if (errValidate == nil) != (errHost == nil && errFleet == nil) {
			t.Fatalf("validate says %v, but the host load says %v and the fleet load %v", errValidate, errHost, errFleet)
		}
		if len(host) == 0 && errHost == nil && !reflect.DeepEqual(forHost, fleet) {
			t.Fatal("without an override the host's policy differs from the fleet's")
		}
	})
}

// FuzzLoadBootstrap loads a fuzzed bootstrap file.
func FuzzLoadBootstrap(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/bootstrap/*.cue")
	for _, s := range seeds {
		f.Add([]byte(readOr(s)))
	}
	f.Add([]byte(""))
	f.Add([]byte("repository: interval: \"-1m\"\n"))
	f.Add([]byte("repository: batch_size: 0\n"))
	f.Add([]byte("hostname: \"-x\"\n"))
	f.Add([]byte("repository: verify: \"none\"\nstate_dir: \"/x\" & \"/y\"\n"))
	dir := f.TempDir()
	path := filepath.Join(dir, "picket.cue")

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzConfig {
			t.Skip("larger than any bootstrap file")
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var b, again *Bootstrap
		var err, errAgain error
		noHang(t, "loading the bootstrap", func() {
			b, err = LoadBootstrap(path)
			again, errAgain = LoadBootstrap(path)
		})
		switch {
		case (err == nil) != (errAgain == nil):
			t.Fatalf("second load disagrees: %v / %v", err, errAgain)
		case err != nil && err.Error() != errAgain.Error():
			t.Fatalf("second load reports other issues:\n%v\n--\n%v", err, errAgain)
		case err == nil && *b != *again:
			t.Fatalf("second load gives another bootstrap:\n%+v\n%+v", b, again)
		}
		if err != nil {
			ve := checkIssues(t, err, []string{path})
			checkSyntax(t, ve, path, data)
			return
		}
		checkBootstrap(t, b)
	})
}

// checkBootstrap asserts what the schema promises of an accepted
// bootstrap, which the agent relies on without checking again.
func checkBootstrap(t *testing.T, b *Bootstrap) {
	t.Helper()
	if b.Hostname != "" && !hostName.MatchString(b.Hostname) {
		t.Errorf("hostname %q accepted", b.Hostname)
	}
	r := b.Repository
	if r.Branch == "" {
		t.Error("empty branch accepted")
	}
	if !slices.Contains([]string{"first-parent", "head", "all"}, r.Verify) {
		t.Errorf("verify %q accepted", r.Verify)
	}
	if r.Interval <= 0 {
		t.Errorf("sync interval %v accepted", r.Interval)
	}
	if r.BatchSize < 1 || r.BatchSize > 100000 {
		t.Errorf("batch size %d accepted", r.BatchSize)
	}
	for _, p := range []string{r.KnownHosts, r.HostKey, b.TrustDir, b.StateDir, b.Credentials} {
		if !strings.HasPrefix(p, "/") {
			t.Errorf("relative path %q accepted", p)
		}
	}
}

// The fuzzer's first finding: CUE's #Duration admits a sync interval of
// "0s" or "-1m", which the syncer silently replaced with a minute.
func TestBootstrapIntervalPositive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "picket.cue")
	if err := os.WriteFile(path, []byte("repository: {\n\turl: \"/srv/config\"\n\tinterval: \"-1m\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadBootstrap(path)
	want := path + ":3:12: repository.interval: -1m must be positive"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

// computations are small files whose evaluation took unbounded time or
// memory before configuration files were restricted to data, with the
// position of the first construct refused.
func computations() []struct{ name, src, at string } {
	double := func(f string) string {
		s := "_x0: \"ab\"\n"
		for i := 1; i < 32; i++ {
			s += fmt.Sprintf("_x%d: "+f+"\n", i, i-1, i-1)
		}
		return s
	}
	disj := "_d: ({a0: 1} | {a0: 2})"
	for i := 1; i < 30; i++ {
		disj += fmt.Sprintf(" & ({a%d: 1} | {a%d: 2})", i, i)
	}
	return []struct{ name, src, at string }{
		{"comprehension", "_x: [for a in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] for b in [0, 1] {a+b}]\n", ":1:6: a comprehension"},
		{"let", "let l = [0, 1]\n", ":1:1: let"},
		{"interpolation", double(`"\(_x%d)\(_x%d)"`), ":2:6: string interpolation"},
		{"concatenation", double("_x%d + _x%d"), ":2:6: the operator +"},
		{"disjunctions", disj + "\n", ":1:6: the operator |"},
		{"import", "import \"list\"\n_l: list.Range(0, 1000000000, 1)\n", ":1:1: import"},
		{"multiplication", "_x: \"a\" * 1000000\n", ":1:5: the operator *"},
	}
}

// TestComputationRefused: each computation is refused at once, in the
// fleet policy, a host override and the bootstrap file alike.
func TestComputationRefused(t *testing.T) {
	for _, c := range computations() {
		t.Run(c.name, func(t *testing.T) {
			var errRepo, errHost, errBoot error
			path := filepath.Join(t.TempDir(), "picket.cue")
			if err := os.WriteFile(path, []byte(c.src), 0o600); err != nil {
				t.Fatal(err)
			}
			noHang(t, c.name, func() {
				_, errRepo = LoadFS(fstest.MapFS{fuzzPolicy: {Data: []byte(c.src)}}, "")
				_, errHost = LoadFS(fstest.MapFS{fuzzHost: {Data: []byte(c.src)}}, fuzzHostName)
				_, errBoot = LoadBootstrap(path)
			})
			for _, tc := range []struct {
				err  error
				file string
			}{{errRepo, fuzzPolicy}, {errHost, fuzzHost}, {errBoot, path}} {
				checkIssues(t, tc.err, []string{tc.file})
				if !strings.Contains(tc.err.Error(), tc.file+c.at) {
					t.Errorf("%s: want %s%s, got\n%v", tc.file, tc.file, c.at, tc.err)
				}
			}
		})
	}
}
