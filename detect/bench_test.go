package detect

import (
	"testing"

	"github.com/securechat/securechat/detect/corpus"
)

// BenchmarkScan100 scans a realistic corpus (5,000 generated Slack messages,
// 1% pastes of 2–30 KB, 3% secrets) with 100 realistic rules. One op is the
// whole corpus; msgs/s and MB/s are reported.
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
	b.SetBytes(size)
	b.ResetTimer()
	found := 0
	for b.Loop() {
		for _, m := range msgs {
			found += len(set.Scan(m.Text))
		}
	}
	b.ReportMetric(float64(len(msgs))*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if found == 0 {
		b.Fatal("no findings: the corpus or the rules are broken")
	}
}
