package detect

import (
	"testing"
	"time"

	"github.com/securechat/securechat/internal/corpus"
)

// BenchmarkScan100 scans a realistic corpus (5,000 generated Slack messages
// per op, new ones every op, 1% pastes of 2–30 KB, 3% secrets) with 100
// realistic rules, normalising each message as the daemon does. msgs/s and
// MB/s are reported for
//
//   - naive: every rule's regexp on every message (the baseline);
//   - keywords: the gitleaks way (the peer): a rule runs when one of its
//     keywords occurs in the lowercased message (here its extracted
//     literals, found with the same Aho-Corasick automaton), and rules
//     without keywords run on every message;
//   - engine: the prefiltered Set (keywords plus the RE2 Set).
//
// Compare the two within one run (benchstat, or the ratio of msgs/s): the
// machines are noisy, the ratio is not.
func BenchmarkScan100(b *testing.B) {
	benchmarkScan(b, loadRules(b, "testdata/patterns100.txt"))
}

// BenchmarkScan1000 is BenchmarkScan100 with 900 generated variants added
// (corpus.GeneratedRules).
func BenchmarkScan1000(b *testing.B) {
	benchmarkScan(b, rules1000(b))
}

func rules1000(tb testing.TB) []Rule {
	rules := loadRules(tb, "testdata/patterns100.txt")
	for i, p := range corpus.GeneratedRules(900, 1) {
		rules = append(rules, Rule{ID: int64(101 + i), Pattern: p})
	}
	return rules
}

func benchmarkScan(b *testing.B, rules []Rule) {
	set, errs := Compile(rules)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	for _, bc := range []struct {
		name string
		scan func(string) []Match
	}{
		{"naive", set.scanAll},
		{"keywords", set.scanKeywords},
		{"engine", set.ScanNormalized},
	} {
		b.Run(bc.name, func(b *testing.B) {
			// Every op scans messages the engine has not seen: a lazy DFA
			// would flatter a corpus scanned twice.
			gen := corpus.New(corpus.Options{Seed: 42})
			found, n := 0, 0
			var size int64
			var scanned time.Duration
			for b.Loop() {
				b.StopTimer()
				msgs := gen.Messages(5000)
				for _, m := range msgs {
					size += int64(len(m.Text))
				}
				b.StartTimer()
				start := time.Now()
				for _, m := range msgs {
					found += len(bc.scan(Normalize(m.Text)))
				}
				scanned += time.Since(start)
				n += len(msgs)
			}
			b.ReportMetric(float64(n)/scanned.Seconds(), "msgs/s")
			b.ReportMetric(float64(size)/scanned.Seconds()/1e6, "MB/s")
			if found == 0 {
				b.Fatal("no findings: the corpus or the rules are broken")
			}
		})
	}
}

// BenchmarkCompile1000 measures a rebuild of the 1,000-rule set, what a hot
// reload costs (it must stay well under the 2 s reload promise).
func BenchmarkCompile1000(b *testing.B) {
	rules := rules1000(b)
	for b.Loop() {
		if _, errs := Compile(rules); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}
