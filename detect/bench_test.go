package detect

import (
	"testing"

	"github.com/securechat/securechat/detect/corpus"
)

// BenchmarkScan100 scans a realistic corpus (5,000 generated Slack messages,
// 1% pastes of 2–30 KB, 3% secrets) with 100 realistic rules, normalising
// each message as the daemon does. One op is the whole corpus; msgs/s and
// MB/s are reported for
//
//   - naive: every rule's regexp on every message (the baseline);
//   - engine: the prefiltered Set.
//
// Compare the two within one run (benchstat, or the ratio of msgs/s): the
// machines are noisy, the ratio is not.
func BenchmarkScan100(b *testing.B) {
	set, errs := Compile(loadRules(b, "testdata/patterns100.txt"))
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	msgs := corpus.New(corpus.Options{Seed: 42}).Messages(5000)
	var size int64
	for _, m := range msgs {
		size += int64(len(m.Text))
	}
	for _, bc := range []struct {
		name string
		scan func(string) []Match
	}{
		{"naive", set.scanAll},
		{"engine", set.ScanNormalized},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(size)
			found := 0
			for b.Loop() {
				for _, m := range msgs {
					found += len(bc.scan(Normalize(m.Text)))
				}
			}
			b.ReportMetric(float64(len(msgs))*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			if found == 0 {
				b.Fatal("no findings: the corpus or the rules are broken")
			}
		})
	}
}
