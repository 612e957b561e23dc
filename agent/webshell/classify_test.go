package webshell

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCorpusPrecisionRecall scores every file of testdata/shell (web shell
// patterns written for this test) and testdata/benign (application code in
// the style of WordPress plugins, Laravel controllers, a template engine,
// admin tools, Django/Flask, Perl CGI, JSP and ASP.NET pages). No benign
// file may be flagged; recall must be at least 0.9.
func TestCorpusPrecisionRecall(t *testing.T) {
	var tp, fn, fp, tn int
	for _, set := range []struct {
		dir   string
		shell bool
	}{{"testdata/shell", true}, {"testdata/benign", false}} {
		files, err := filepath.Glob(filepath.Join(set.dir, "*"))
		if err != nil || len(files) < 20 {
			t.Fatalf("%s: %d files (%v), want at least 20", set.dir, len(files), err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !IsScript(f) {
				t.Errorf("%s: not a script extension", f)
			}
			score, traits := Classify(f, b)
			flagged := score >= Threshold
			switch {
			case set.shell && flagged:
				tp++
			case set.shell:
				fn++
				t.Logf("MISSED %s: %.3f %s", f, score, strings.Join(traits, ","))
			case flagged:
				fp++
				t.Errorf("benign file flagged: %s: %.3f %s", f, score, strings.Join(traits, ","))
			default:
				tn++
			}
			if testing.Verbose() {
				t.Logf("%-40s %.3f %s", f, score, strings.Join(traits, ","))
			}
		}
	}
	precision := float64(tp) / float64(max(tp+fp, 1))
	recall := float64(tp) / float64(max(tp+fn, 1))
	t.Logf("webshell corpus: %d shells, %d benign; TP %d FN %d FP %d TN %d; precision %.3f recall %.3f",
		tp+fn, fp+tn, tp, fn, fp, tn, precision, recall)
	if fp != 0 {
		t.Errorf("precision %.3f: %d benign files flagged", precision, fp)
	}
	if recall < 0.9 {
		t.Errorf("recall %.3f below 0.9", recall)
	}
}

func TestClassifyTraits(t *testing.T) {
	for _, c := range []struct {
		path, src string
		want      string // a trait that must be present ("" = none at all)
	}{
		{"a.php", `<?php eval($_POST['x']);`, TraitExecRequest},
		{"a.php", `<?php $x=$_GET['a']; $y = "ls ".$x; system($y);`, TraitExecRequest},
		{"a.php", `<?php $pdo->exec($_POST['sql']);`, ""},
		{"a.php", `<?php curl_exec($_GET['u']);`, ""},
		{"a.php", `<?php echo preg_replace('/a/e', $_GET['b'], 'a');`, TraitPregE},
		{"a.php", `<?php echo preg_replace('/a/i', 'b', 'a');`, ""},
		{"a.txt", `<?php eval($_POST['x']);`, ""},
		{"a.PHP", `<?php eval(gzinflate(base64_decode('AAAA')));`, TraitDecodeEval},
	} {
		score, traits := Classify(c.path, []byte(c.src))
		got := strings.Join(traits, ",")
		if c.want == "" {
			if len(traits) != 0 || score != 0 {
				t.Errorf("%s %q: %v %s, want nothing", c.path, c.src, score, got)
			}
			continue
		}
		if !strings.Contains(got, c.want) {
			t.Errorf("%s %q: %s, want %s", c.path, c.src, got, c.want)
		}
	}
}

func TestClassifyDeterministic(t *testing.T) {
	b, err := os.ReadFile("testdata/shell/c99_like.php")
	if err != nil {
		t.Fatal(err)
	}
	s1, t1 := Classify("x.php", b)
	for range 20 {
		s2, t2 := Classify("x.php", b)
		if s1 != s2 || strings.Join(t1, ",") != strings.Join(t2, ",") {
			t.Fatal("not deterministic")
		}
	}
}
