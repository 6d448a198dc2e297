package bot_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/detect"
	"github.com/securechat/securechat/internal/corpus"
	"github.com/securechat/securechat/internal/fakeslack"
	"github.com/securechat/securechat/store"
)

// BenchmarkDaemon drives the real daemon through the fake Slack with a
// realistic stream: 20,000 generated messages (3% with a planted secret, 1%
// pastes of 2–30 KB) against 100 realistic rules. One op is the whole
// stream. Reported:
//
//   - msgs/s: sustained throughput, the stream sent as fast as the socket
//     takes it, until every envelope is acknowledged;
//   - ack-p50-ms@Nk, ack-p99-ms@Nk: envelope sent → acknowledged, with
//     2 s of messages offered at a paced 1,000 and 5,000 msgs/s (Slack's
//     Events API delivers at most 30,000 events an hour per workspace, so
//     both are far above real traffic);
//   - delete-p50-ms@Nk, delete-p99-ms@Nk: envelope sent → chat.delete
//     received, at the same paced loads;
//   - peak-rss-MB: the process's peak resident memory (fake Slack and
//     corpus included).
//
// Every op checks that no envelope went unacknowledged, every message with a
// planted secret was deleted, and nothing was deleted twice.
func BenchmarkDaemon(b *testing.B) {
	n := 20_000
	if v, err := strconv.Atoi(os.Getenv("SECURECHAT_BENCH_MESSAGES")); err == nil && v > 0 {
		n = v
	}
	patterns := readPatterns(b, "../detect/testdata/patterns100.txt")
	gen := corpus.New(corpus.Options{Seed: 7, SecretShare: 0.03})
	for b.Loop() {
		r := runStream(b, patterns, gen.Messages(n), 0)
		b.ReportMetric(float64(n)/r.took.Seconds(), "msgs/s")
		for _, rate := range []int{1000, 5000} {
			p := runStream(b, patterns, gen.Messages(rate*2), rate)
			sfx := "@" + strconv.Itoa(rate/1000) + "k"
			b.ReportMetric(ms(percentile(p.ack, 50)), "ack-p50-ms"+sfx)
			b.ReportMetric(ms(percentile(p.ack, 99)), "ack-p99-ms"+sfx)
			b.ReportMetric(ms(percentile(p.del, 50)), "delete-p50-ms"+sfx)
			b.ReportMetric(ms(percentile(p.del, 99)), "delete-p99-ms"+sfx)
		}
	}
	b.ReportMetric(peakRSSMB(), "peak-rss-MB")
}

type streamResult struct {
	took     time.Duration
	ack, del []time.Duration
}

// runStream posts msgs (at rate per second, or as fast as possible when 0)
// to a fresh daemon and waits until everything is acknowledged and deleted.
func runStream(b *testing.B, patterns []string, msgs []corpus.Message, rate int) streamResult {
	return runStreamOn(b, streamSetup{connections: 1, replicas: 1}, patterns, msgs, rate)
}

// streamSetup is where a stream runs: each of replicas daemons (in this
// process, on one database) keeps connections Socket Mode connections;
// target is the database ("" for a new SQLite file).
type streamSetup struct {
	connections, replicas int
	target                string
}

func runStreamOn(b *testing.B, su streamSetup, patterns []string, msgs []corpus.Message, rate int) streamResult {
	b.Helper()
	ctx := context.Background()
	fake := fakeslack.New(fakeslack.Options{PingInterval: time.Second, EchoDeletes: new(bool)})
	defer fake.Close()
	target := su.target
	if target == "" {
		target = filepath.Join(b.TempDir(), "bench.db")
	}
	st, err := store.Open(ctx, target)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	for _, p := range patterns {
		if _, err := st.AddRegex(ctx, p, ""); err != nil {
			b.Fatal(err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, su.replicas)
	for i := range su.replicas {
		rs := st
		if i > 0 {
			if rs, err = store.Open(ctx, target, store.WithInstance("bench-"+strconv.Itoa(i))); err != nil {
				b.Fatal(err)
			}
			defer rs.Close()
		}
		d := bot.New(rs, zerolog.Nop(), bot.Options{AppToken: fake.AppToken(), UserToken: fake.UserToken(), APIURL: fake.APIURL(),
			Workers: runtime.GOMAXPROCS(0) * 2, Connections: su.connections, StaggerConnections: 100 * time.Millisecond,
			Instance: "bench-" + strconv.Itoa(i)})
		go func() { done <- d.Run(runCtx) }()
	}
	defer func() {
		stop()
		for range su.replicas {
			if err := <-done; err != nil {
				b.Error(err)
			}
		}
	}()
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := fake.Wait(waitCtx, func(s *fakeslack.State) bool { return s.Connections() == su.connections*su.replicas }); err != nil {
		b.Fatal(err)
	}

	// Which messages must be deleted: those the rules match (planted secrets
	// and chance matches alike), decided with the detector itself.
	rules := make([]detect.Rule, len(patterns))
	for i, p := range patterns {
		rules[i] = detect.Rule{ID: int64(i + 1), Pattern: p}
	}
	set, _ := detect.Compile(rules)

	// Build every envelope, and decide which messages must be deleted
	// (those the rules match: planted secrets and chance matches alike),
	// before the clock starts.
	wantDeleted := map[string]bool{}
	prepared := make([]*fakeslack.Prepared, len(msgs))
	for i, m := range msgs {
		p, err := fake.Prepare(fakeslack.Message{Text: m.Text, Raw: true})
		if err != nil {
			b.Fatal(err)
		}
		prepared[i] = p
		if m.Secret != "" || len(set.Scan(m.Text)) > 0 {
			wantDeleted[p.TS] = true
		}
	}
	start := time.Now()
	var interval time.Duration
	if rate > 0 {
		interval = time.Second / time.Duration(rate)
	}
	for i, p := range prepared {
		if interval > 0 {
			if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
				time.Sleep(wait)
			}
		}
		if err := fake.Send(p); err != nil {
			b.Fatal(err)
		}
	}
	// Poll rather than Wait: a condition evaluated on every ack would
	// compete with the daemon for the CPU.
	complete := func() (ok bool) {
		fake.Snapshot(func(s *fakeslack.State) {
			if s.Unacked() > 0 {
				return
			}
			for ts := range wantDeleted {
				if s.SuccessfulDeletes("C0GENERAL01", ts) == 0 {
					return
				}
			}
			ok = true
		})
		return ok
	}
	for !complete() {
		if waitCtx.Err() != nil {
			missing := 0
			fake.Snapshot(func(s *fakeslack.State) {
				for ts := range wantDeleted {
					if s.SuccessfulDeletes("C0GENERAL01", ts) == 0 {
						missing++
					}
				}
				b.Fatalf("stream did not complete: %d unacked, %d of %d leaks not deleted, %d delete calls",
					s.Unacked(), missing, len(wantDeleted), len(s.Deletes()))
			})
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(start)
	var res streamResult
	res.took = took
	fake.Snapshot(func(s *fakeslack.State) {
		sent := map[string]time.Time{}
		for _, dv := range s.Deliveries() {
			res.ack = append(res.ack, dv.AckedAt.Sub(dv.SentAt))
			sent[dv.TS] = dv.SentAt
		}
		seen := map[string]bool{}
		for _, dc := range s.Deletes() {
			if seen[dc.TS] {
				b.Fatalf("message %s deleted twice", dc.TS)
			}
			seen[dc.TS] = true
			if !wantDeleted[dc.TS] {
				b.Fatalf("message %s deleted without a match", dc.TS)
			}
			res.del = append(res.del, dc.At.Sub(sent[dc.TS]))
		}
	})
	return res
}

func readPatterns(tb testing.TB, path string) []string {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	ps, err := detect.ReadPatterns(f)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Pattern
	}
	return out
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p/100))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// peakRSSMB reads the process's peak resident set size (VmHWM).
func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// BenchmarkLeakFlood offers 4,000 messages at a paced 2,000 msgs/s, 30% of
// them leaking (600 leaks a second, far above any real workspace; the
// breaker is off, as it would stop such a flood), to the daemon with 100
// rules: every leak is one durable write before its ack. Reported: ack
// p50/p90/p99 and send-to-delete p99.
func BenchmarkLeakFlood(b *testing.B) {
	patterns := readPatterns(b, "../detect/testdata/patterns100.txt")
	gen := corpus.New(corpus.Options{Seed: 5, SecretShare: 0.3})
	for b.Loop() {
		p := runStream(b, patterns, gen.Messages(4000), 2000)
		b.ReportMetric(ms(percentile(p.ack, 50)), "ack-p50-ms")
		b.ReportMetric(ms(percentile(p.ack, 90)), "ack-p90-ms")
		b.ReportMetric(ms(percentile(p.ack, 99)), "ack-p99-ms")
		b.ReportMetric(ms(percentile(p.del, 99)), "delete-p99-ms")
	}
}
