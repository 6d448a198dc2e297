package cli

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/internal/corpus"
	"github.com/securechat/securechat/ruleset"
	"github.com/securechat/securechat/store"
)

// BenchmarkCheckStdin runs 'securechat check' end to end (open the database,
// compile the 100 benchmark rules, read 5,000 lines of stdin, print the hits)
// and, in the same run, the engine alone on the same lines. msgs/s of both
// are reported; their ratio is the cost of everything around the engine.
func BenchmarkCheckStdin(b *testing.B) {
	db := b.TempDir() + "/bench.db"
	st, err := store.Open(context.Background(), db)
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Open("../detect/testdata/patterns100.txt")
	if err != nil {
		b.Fatal(err)
	}
	patterns, err := detect.ReadPatterns(f)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range patterns {
		if _, err := st.AddRegex(context.Background(), p.Pattern, p.Description); err != nil {
			b.Fatal(err)
		}
	}
	rs, _ := st.Regexes(context.Background())
	st.Close()
	gen := corpus.New(corpus.Options{Seed: 11})
	next := func() string {
		var sb strings.Builder
		for _, m := range gen.Messages(5000) {
			sb.WriteString(strings.ReplaceAll(detect.Normalize(m.Text), "\n", " "))
			sb.WriteByte('\n')
		}
		return sb.String()
	}
	b.Run("check", func(b *testing.B) {
		var took time.Duration
		n := 0
		for b.Loop() {
			b.StopTimer()
			input := next()
			b.StartTimer()
			var out, errb bytes.Buffer
			start := time.Now()
			code := Run(context.Background(), []string{"--db", db, "check"}, Deps{Stdin: strings.NewReader(input), Stdout: &out, Stderr: &errb,
				Getenv: func(string) string { return "" }, Now: time.Now})
			took += time.Since(start)
			n += 5000
			if code != ExitLeak {
				b.Fatalf("check exit %d: %s", code, errb.String())
			}
		}
		b.ReportMetric(float64(n)/took.Seconds(), "msgs/s")
	})
	b.Run("engine", func(b *testing.B) {
		set, _ := ruleset.Compile(rs)
		var took time.Duration
		n := 0
		for b.Loop() {
			b.StopTimer()
			lines := strings.Split(next(), "\n")
			b.StartTimer()
			start := time.Now()
			for _, l := range lines[:5000] {
				set.ScanNormalized(l)
			}
			took += time.Since(start)
			n += 5000
		}
		b.ReportMetric(float64(n)/took.Seconds(), "msgs/s")
	})
}
