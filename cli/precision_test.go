package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/securechat/securechat/ruleset"
	"github.com/securechat/securechat/store"
)

// corpusLine is one message of testdata/gitleaks-v8.30.1/corpus.jsonl: a
// rule sample from gitleaks' generators embedded in a chat sentence, with
// what gitleaks v8.30.1 itself found in it (run one message per file). See
// that folder's README.md.
type corpusLine struct {
	Rule     string   `json:"rule"`     // the gitleaks rule the sample was written for
	Kind     string   `json:"kind"`     // tp or fp, for that rule
	Path     string   `json:"path"`     // the file path gitleaks' sample carries (path-conditioned rules)
	Clean    bool     `json:"clean"`    // an fp sample without a path that is no rule's tp
	Message  string   `json:"message"`  // the chat message
	Gitleaks []string `json:"gitleaks"` // rule ids gitleaks reported
}

func readCorpus(t testing.TB, path string) []corpusLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusLine
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l corpusLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s line %d: %v", path, len(out)+1, err)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// precision is what one tool did over the corpus.
type precision struct {
	tps, tpFound       int // true-positive samples (no path condition), and those flagged
	clean, cleanFlaged int // clean samples, and those flagged
	leaking, findings  int // messages with at least one finding, and their findings
}

func (p precision) perLine() float64 { return float64(p.findings) / float64(max(p.leaking, 1)) }

func (p *precision) add(l corpusLine, findings int) {
	if l.Kind == "tp" && l.Path == "" {
		p.tps++
		if findings > 0 {
			p.tpFound++
		}
	}
	if l.Clean {
		p.clean++
		if findings > 0 {
			p.cleanFlaged++
		}
	}
	if findings > 0 {
		p.leaking++
		p.findings += findings
	}
}

// TestGitleaksPrecision imports gitleaks' default config with `regex import`
// and runs the daemon's decision over gitleaks' own rule samples, next to
// gitleaks' results on the same messages: recall at least gitleaks', clean
// false positives at most gitleaks', and at most 1.05 findings per leaking
// message.
func TestGitleaksPrecision(t *testing.T) {
	const dir = "testdata/gitleaks-v8.30.1/"
	e := newEnv(t)
	r := e.run("", "regex", "import", dir+"gitleaks.toml")
	if !strings.Contains(r.stderr, "imported") {
		t.Fatalf("import: %+v", r)
	}
	ctx := context.Background()
	s, err := store.Open(ctx, e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	snap, err := ruleset.Load(ctx, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Skipped) > 0 {
		t.Fatalf("rules that did not compile: %v", snap.Skipped)
	}

	var ours, theirs precision
	var missed, flagged, dups []string
	for _, l := range readCorpus(t, dir+"corpus.jsonl") {
		fs := snap.Decide(l.Message, false).Findings
		ours.add(l, len(fs))
		theirs.add(l, len(l.Gitleaks))
		if l.Kind == "tp" && l.Path == "" && len(fs) == 0 && len(l.Gitleaks) > 0 {
			missed = append(missed, l.Rule+": "+l.Message)
		}
		if l.Clean && len(fs) > 0 {
			flagged = append(flagged, l.Rule+": "+l.Message)
		}
		if len(fs) > 1 && len(fs) > len(l.Gitleaks) {
			var ids []string
			for _, f := range fs {
				ids = append(ids, f.Rule)
			}
			dups = append(dups, strings.Join(slices.Compact(slices.Sorted(slices.Values(ids))), ",")+": "+l.Message)
		}
	}
	t.Logf("securechat: recall %d/%d, clean flagged %d/%d, %.3f findings per leaking message (%d/%d)",
		ours.tpFound, ours.tps, ours.cleanFlaged, ours.clean, ours.perLine(), ours.findings, ours.leaking)
	t.Logf("gitleaks:   recall %d/%d, clean flagged %d/%d, %.3f findings per leaking message (%d/%d)",
		theirs.tpFound, theirs.tps, theirs.cleanFlaged, theirs.clean, theirs.perLine(), theirs.findings, theirs.leaking)
	if ours.tps < 5000 || ours.clean < 300 {
		t.Fatalf("corpus too small: %d true positives, %d clean samples", ours.tps, ours.clean)
	}
	if ours.tpFound < theirs.tpFound {
		t.Errorf("recall %d < gitleaks' %d; missed (first 10): %q", ours.tpFound, theirs.tpFound, first(missed, 100))
	}
	if ours.cleanFlaged > theirs.cleanFlaged {
		t.Errorf("%d clean samples flagged > gitleaks' %d: %q", ours.cleanFlaged, theirs.cleanFlaged, first(flagged, 40))
	}
	if ours.perLine() > 1.05 {
		t.Errorf("%.3f findings per leaking message > 1.05; more than gitleaks (first 10): %q", ours.perLine(), first(dups, 10))
	}
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }
