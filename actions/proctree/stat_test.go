package proctree

import (
	"fmt"
	"testing"
)

func TestParseStat(t *testing.T) {
	const tail = " 0 0 0 -1 %d 0 0 0 0 0 0 0 0 20 0 1 0 %d 0 0"
	tests := []struct {
		name string
		line string
		want stat
		err  bool
	}{
		{"plain", "42 (sleep) S 7" + fmt.Sprintf(tail, 4194304, 12345), stat{pid: 42, comm: "sleep", state: 'S', ppid: 7, flags: 4194304, start: 12345}, false},
		{"comm with parens and spaces", "9 (a) b (c) ) T 1" + fmt.Sprintf(tail, 0, 7), stat{pid: 9, comm: "a) b (c) ", state: 'T', ppid: 1, start: 7}, false},
		{"kernel thread", "2 (kthreadd) S 0" + fmt.Sprintf(tail, pfKthread, 0), stat{pid: 2, comm: "kthreadd", state: 'S', flags: pfKthread}, false},
		{"zombie", "77 (x) Z 1" + fmt.Sprintf(tail, 0, 1), stat{pid: 77, comm: "x", state: 'Z', ppid: 1, start: 1}, false},
		{"truncated", "42 (sleep) S 7 0 0", stat{}, true},
		{"no parens", "42 sleep S 7" + fmt.Sprintf(tail, 0, 1), stat{}, true},
		{"bad pid", "x (sleep) S 7" + fmt.Sprintf(tail, 0, 1), stat{}, true},
		{"negative ppid", "4 (s) S -7" + fmt.Sprintf(tail, 0, 1), stat{}, true},
		{"bad start", "4 (s) S 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 x", stat{}, true},
		{"empty", "", stat{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.line))
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("parseStat(%q) = %+v, %v; want %+v, err %v", tc.line, got, err, tc.want, tc.err)
			}
		})
	}
	if !(stat{pid: 2}).kernelThread() || !(stat{pid: 50, ppid: 2}).kernelThread() || !(stat{pid: 50, flags: pfKthread}).kernelThread() || (stat{pid: 50, ppid: 1}).kernelThread() {
		t.Error("kernelThread misclassifies")
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("42 (sleep) S 7 0 0 0 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0"))
	f.Add([]byte("1 ((() R 0 0 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseStat(b)
		if err == nil && (s.pid <= 0 || s.ppid < 0) {
			t.Fatalf("accepted %q as %+v", b, s)
		}
	})
}

func TestParseUIDs(t *testing.T) {
	tests := []struct {
		in   string
		want [4]int
		err  bool
	}{
		{"Name:\tsh\nUid:\t1000\t1001\t1002\t1003\nGid:\t0\t0\t0\t0\n", [4]int{1000, 1001, 1002, 1003}, false},
		{"Name:\tsh\n", [4]int{}, true},
		{"Uid:\t1 2 3\n", [4]int{}, true},
		{"Uid:\t1 2 x 4\n", [4]int{1, 2}, true},
	}
	for _, tc := range tests {
		got, err := parseUIDs([]byte(tc.in))
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("parseUIDs(%q) = %v, %v", tc.in, got, err)
		}
	}
}
