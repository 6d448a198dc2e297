package cli

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
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

// gitleaksSnapshot imports gitleaks' default config (v8.30.1) into a new
// database and loads the daemon's rule snapshot of it.
func gitleaksSnapshot(tb testing.TB) *ruleset.Snapshot {
	tb.Helper()
	ctx := context.Background()
	body, err := os.ReadFile("testdata/gitleaks-v8.30.1/gitleaks.toml")
	if err != nil {
		tb.Fatal(err)
	}
	items, notes, err := readGitleaks(body, "gitleaks.toml")
	if err != nil {
		tb.Fatal(err)
	}
	st, err := store.Open(ctx, tb.TempDir()+"/gitleaks.db")
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	if _, err := runImport(ctx, st, items, notes, io.Discard, false, "os:bench"); err != nil {
		tb.Fatal(err)
	}
	snap, err := ruleset.Load(ctx, st, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return snap
}

// gitleaksWorstCase is the costliest 40 KB message (Slack's limit) found
// against gitleaks' default rules: one line of generic-api-key matches
// (a keyword, an assignment, a high-entropy value), each of which has to be
// weighed against the rule's line-target allowlists, whose target is the
// whole 40 KB line; filler after each match (such as "import {a ", which
// starts the allowlist's import regex) makes each weighing costlier.
func gitleaksWorstCase(seed uint64, filler string) string {
	rnd := rand.New(rand.NewPCG(seed, 7))
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var sb strings.Builder
	for sb.Len() < 40_000 {
		sb.WriteString("token=")
		for range 20 {
			sb.WriteByte(alnum[rnd.IntN(len(alnum))])
		}
		sb.WriteByte(' ')
		if filler == "AKIA" { // a distinct AWS key id: a specific rule's finding beside each generic one
			sb.WriteString("AKIA")
			for range 16 {
				sb.WriteByte("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[rnd.IntN(32)])
			}
			sb.WriteByte(' ')
			continue
		}
		sb.WriteString(filler)
	}
	return sb.String()[:40_000]
}

// BenchmarkGitleaksWorstCase40KB scans, with gitleaks' default config
// imported, the worst 40 KB message found for it (gitleaksWorstCase), and
// in the same run an ordinary 40 KB paste (the corpus's chat lines run
// together), the baseline. Compare with Slack's 3 s ack deadline.
func BenchmarkGitleaksWorstCase40KB(b *testing.B) {
	snap := gitleaksSnapshot(b)
	gen := corpus.New(corpus.Options{Seed: 5})
	var paste strings.Builder
	for paste.Len() < 40_000 {
		for _, m := range gen.Messages(100) {
			paste.WriteString(m.Text)
			paste.WriteByte('\n')
		}
	}
	for _, bc := range []struct{ name, text string }{
		{"ordinary-paste", paste.String()[:40_000]},
		{"worst-case", gitleaksWorstCase(1, "")},
		{"worst-case-line-allowlist", gitleaksWorstCase(1, "import {a ")},
		{"worst-case-mixed", gitleaksWorstCase(1, "AKIA")},
	} {
		text := detect.Normalize(bc.text)
		b.Run(bc.name, func(b *testing.B) {
			findings := 0
			for b.Loop() {
				findings = len(snap.Decide(text, false).Findings)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/msg")
			b.ReportMetric(float64(findings), "findings")
		})
	}
}
