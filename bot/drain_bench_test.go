package bot_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/internal/corpus"
	"github.com/securechat/securechat/internal/fakeslack"
	"github.com/securechat/securechat/internal/pgtest"
	"github.com/securechat/securechat/store"
)

// BenchmarkDrain queues N deletions (a burst of leaks) with the fake Slack
// enforcing a rate limit on chat.delete the way Slack's tiers do (a number
// of calls a window, then 429 with Retry-After to the window's end), and
// measures how long they take to drain against the theoretical N/limit,
// while live messages keep arriving at 50 a second. Reported:
//
//   - drain-s and ideal-s: the drain, and (N - limit) windows, since the
//     first window's calls go at once;
//   - live-ack-p99-ms: ack latency of the live messages during the drain,
//     and idle-ack-p99-ms the same with nothing to drain, in the same run.
//
// Scaled for a benchmark: 10 calls a 1 s window (Slack's Tier 3 is about 50
// a minute; the README scales the figures).
func BenchmarkDrain(b *testing.B) {
	const n, limit = 80, 10
	window := time.Second
	for b.Loop() {
		idle := drainRun(b, 0, limit, window)
		r := drainRun(b, n, limit, window)
		ideal := time.Duration(n-limit) * window / limit
		b.ReportMetric(r.took.Seconds(), "drain-s")
		b.ReportMetric(ideal.Seconds(), "ideal-s")
		b.ReportMetric(r.took.Seconds()/ideal.Seconds(), "drain/ideal")
		b.ReportMetric(ms(percentile(r.ack, 99)), "live-ack-p99-ms")
		b.ReportMetric(ms(percentile(idle.ack, 99)), "idle-ack-p99-ms")
	}
}

func drainRun(b *testing.B, n, limit int, window time.Duration) streamResult {
	b.Helper()
	ctx := context.Background()
	fake := fakeslack.New(fakeslack.Options{PingInterval: time.Second, EchoDeletes: new(bool), DeleteLimit: limit, DeleteWindow: window})
	defer fake.Close()
	st, err := store.Open(ctx, filepath.Join(b.TempDir(), "drain.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.AddRegex(ctx, maestro, "cards"); err != nil {
		b.Fatal(err)
	}
	var queued []string
	for i := range n {
		p, err := fake.Prepare(fakeslack.Message{Text: fmt.Sprintf("card %s (%d)", card, i)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.RecordLeak(ctx, store.Message{Channel: "C0GENERAL01", User: "U1", TS: p.TS},
			[]store.Finding{{RegexID: 1, Excerpt: "************8453", Start: 5, End: 21, Action: store.ActionDelete}}, true); err != nil {
			b.Fatal(err)
		}
		queued = append(queued, p.TS)
	}
	d := bot.New(st, zerolog.Nop(), bot.Options{AppToken: fake.AppToken(), UserToken: fake.UserToken(), APIURL: fake.APIURL()})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- d.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	drained := func() (ok bool) {
		fake.Snapshot(func(s *fakeslack.State) {
			for _, ts := range queued {
				if s.SuccessfulDeletes("C0GENERAL01", ts) != 1 {
					return
				}
			}
			ok = true
		})
		return ok
	}
	var res streamResult
	deadline := time.Now().Add(2 * time.Minute)
	var envs []string
	for live := 0; ; live++ {
		if _, env, err := fake.Post(fakeslack.Message{Text: "lunch?"}); err == nil {
			envs = append(envs, env)
		}
		time.Sleep(20 * time.Millisecond)
		if (n == 0 && live >= 150) || (n > 0 && drained()) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the queue did not drain within 2 minutes")
		}
	}
	res.took = time.Since(start)
	time.Sleep(100 * time.Millisecond)
	fake.Snapshot(func(s *fakeslack.State) {
		for _, e := range envs {
			if dv, ok := s.Delivery(e); ok && !dv.AckedAt.IsZero() {
				res.ack = append(res.ack, dv.AckedAt.Sub(dv.SentAt))
			}
		}
		for _, ts := range queued {
			if s.SuccessfulDeletes("C0GENERAL01", ts) != 1 {
				b.Fatalf("message %s deleted %d times", ts, s.SuccessfulDeletes("C0GENERAL01", ts))
			}
		}
	})
	return res
}

// BenchmarkBurst3000 sends a burst of 3,000 realistic messages (3% with a
// secret, 1% long pastes) as fast as the socket takes them to the daemon
// with 1,000 rules, the fake answering at once, and reports ack and
// send-to-delete latency.
func BenchmarkBurst3000(b *testing.B) {
	patterns := append(readPatterns(b, "../detect/testdata/patterns100.txt"), corpus.GeneratedRules(900, 1)...)
	gen := corpus.New(corpus.Options{Seed: 11, SecretShare: 0.03})
	for b.Loop() {
		r := runStream(b, patterns, gen.Messages(3000), 0)
		b.ReportMetric(3000/r.took.Seconds(), "msgs/s")
		b.ReportMetric(ms(percentile(r.ack, 50)), "ack-p50-ms")
		b.ReportMetric(ms(percentile(r.ack, 99)), "ack-p99-ms")
		b.ReportMetric(ms(percentile(r.del, 50)), "delete-p50-ms")
		b.ReportMetric(ms(percentile(r.del, 99)), "delete-p99-ms")
	}
}

// BenchmarkReplicas is BenchmarkBurst3000 (3,000 messages at once, 1,000
// rules) on one SQLite daemon, one PostgreSQL daemon and three PostgreSQL
// daemons (replicas in this process, sharing the database; the fake Slack
// spreads the events over every connection), each with 1 and with 2 Socket
// Mode connections per daemon, in one run. PostgreSQL is the one pgtest
// finds (skipped without one). Compare the variants' ratios, not the
// absolute figures: the fake Slack and the daemons share the 2 cores.
func BenchmarkReplicas(b *testing.B) {
	patterns := append(readPatterns(b, "../detect/testdata/patterns100.txt"), corpus.GeneratedRules(900, 1)...)
	gen := corpus.New(corpus.Options{Seed: 11, SecretShare: 0.03})
	for _, v := range []struct {
		name     string
		pg       bool
		replicas int
	}{{"sqlite-1", false, 1}, {"postgres-1", true, 1}, {"postgres-3", true, 3}} {
		for _, conns := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/conns=%d", v.name, conns), func(b *testing.B) {
				for b.Loop() {
					su := streamSetup{connections: conns, replicas: v.replicas}
					if v.pg {
						su.target = pgtest.Database(b)
					}
					r := runStreamOn(b, su, patterns, gen.Messages(3000), 0)
					b.ReportMetric(3000/r.took.Seconds(), "msgs/s")
					b.ReportMetric(ms(percentile(r.ack, 99)), "ack-p99-ms")
					b.ReportMetric(ms(percentile(r.del, 99)), "delete-p99-ms")
				}
			})
		}
	}
}

// BenchmarkDeleteBacklog queues 1,000 deletions (a backlog left by an
// outage, or a sweep's --enforce) and lets the daemon drain them through
// the fake answering at once with no rate limit: the local cost of a
// deletion (claim, call, outcome and their commits), while live messages
// keep arriving at 50 a second. Reported: deletions/s, and the live
// messages' ack p99 during the drain.
func BenchmarkDeleteBacklog(b *testing.B) {
	const n = 1000
	for b.Loop() {
		r := drainRun(b, n, 0, time.Second)
		b.ReportMetric(n/r.took.Seconds(), "deletions/s")
		b.ReportMetric(ms(percentile(r.ack, 99)), "live-ack-p99-ms")
	}
}
