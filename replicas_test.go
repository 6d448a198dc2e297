package main

import (
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/securechat/securechat/internal/fakeslack"

	"github.com/securechat/securechat/internal/pgtest"
)

// TestReplicasOnPostgres runs three real daemons on one PostgreSQL
// database, two Socket Mode connections each, with the fake Slack spreading
// events over every connection and retrying the ones left unacknowledged,
// and chat.delete answering 429 or 500 one time in ten. Meanwhile daemons
// are SIGKILLed (and restarted) or SIGSTOPped past the leader lease (and
// continued) at random, and a rule is added with the CLI halfway.
// The daemons are named as on separate hosts: a dead leader's lease runs
// out before another takes it. At the
// end every leaking message is deleted by exactly one successful
// chat.delete, no clean message is touched, every envelope is
// acknowledged, every author is told (at most one duplicate per kill), the
// new rule was enforced for messages any replica took, and the leader
// lease moved to another replica when its holder was killed.
func TestReplicasOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("three daemons for half a minute: not in -short")
	}
	const (
		messages = 600
		replicas = 3
		faults   = 8
	)
	fake := fakeslack.New(fakeslack.Options{PingInterval: 500 * time.Millisecond, RedeliverAfter: 400 * time.Millisecond, ChaosDelete: 0.1})
	defer fake.Close()
	env := replicaEnv(t, fake)

	var f fleet
	var mu sync.Mutex // guards daemons
	daemons := make([]*proc, replicas)
	// Each daemon is named as on a host of its own (SECURECHAT_INSTANCE),
	// so that a killed leader's lease is taken over when it runs out, as
	// across machines, not at once as on one host.
	launches := 0
	launch := func(i int) {
		launches++
		p := f.start(t, append(env, fmt.Sprintf("SECURECHAT_INSTANCE=replica-%d-%d", i, launches)))
		mu.Lock()
		daemons[i] = p
		mu.Unlock()
	}
	allLogs := f.logs
	for i := range replicas {
		launch(i)
	}
	waitFor(t, fake, "every connection", func(s *fakeslack.State) bool { return s.Connections() == 2*replicas }, allLogs)

	// The leader lease moves when its holder is killed.
	leader := -1
	deadline := time.Now().Add(30 * time.Second)
	for leader < 0 && time.Now().Before(deadline) {
		mu.Lock()
		for i, p := range daemons {
			if strings.Contains(p.stderr.String(), "this daemon leads") {
				leader = i
			}
		}
		mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	if leader < 0 {
		t.Fatalf("no daemon leads\n%s", allLogs())
	}
	killed := time.Now()
	_ = daemons[leader].cmd.Process.Signal(syscall.SIGKILL)
	<-daemons[leader].done
	daemons[leader].done <- nil
	var takeover time.Duration
	for takeover == 0 && time.Since(killed) < 30*time.Second {
		for i, p := range daemons {
			if i != leader && strings.Count(p.stderr.String(), "this daemon leads") > 0 {
				takeover = time.Since(killed)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if takeover == 0 {
		t.Fatalf("no replica took the leader lease over after its holder was killed\n%s", allLogs())
	}
	launch(leader)

	// The faults: SIGKILL and restart, or SIGSTOP for longer than the
	// leader lease and SIGCONT, at random moments, to a random replica.
	rnd := rand.New(rand.NewPCG(3, 4))
	kills := 1
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		for f := range faults {
			time.Sleep(time.Duration(300+rnd.IntN(900)) * time.Millisecond)
			i := rnd.IntN(replicas)
			mu.Lock()
			p := daemons[i]
			mu.Unlock()
			if f%2 == 0 {
				_ = p.cmd.Process.Signal(syscall.SIGKILL)
				<-p.done
				p.done <- nil
				kills++
				launch(i)
				continue
			}
			_ = p.cmd.Process.Signal(syscall.SIGSTOP)
			time.Sleep(2500 * time.Millisecond)
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()

	send := func(f func() (string, string, error)) (string, string) {
		for {
			ts, env, err := f()
			if err == nil || !errors.Is(err, fakeslack.ErrNoConnection) {
				return ts, env
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var msgs []chaosMsg
	for i := range messages {
		if i == messages/2 {
			// A rule added halfway, by the CLI: every replica enforces it
			// within its reload interval (1 s); the messages it applies to
			// come after that.
			if out, code := runCLI(t, env, "regex", "add", `tok_[a-z]{12}`, "-d", "tokens"); code != 0 {
				t.Fatalf("regex add during the run: %s", out)
			}
			time.Sleep(2 * time.Second)
		}
		m := chaosMsg{channel: "C0GENERAL01", user: fmt.Sprintf("U%07d", i)}
		text := fmt.Sprintf("message %d, nothing to see", i)
		switch {
		case i%10 == 0:
			text, m.leaks = fmt.Sprintf("message %d: card 6759%012d", i, 100000000000+i), true
		case i%10 == 5 && i > messages/2:
			text, m.leaks = fmt.Sprintf("message %d: tok_%s", i, strings.Repeat(string(rune('a'+i%26)), 12)), true
		case i%10 == 5:
			text = fmt.Sprintf("message %d: tok_%s before the rule", i, strings.Repeat("q", 12))
		}
		m.ts, m.env = send(func() (string, string, error) {
			return fake.Post(fakeslack.Message{Channel: m.channel, User: m.user, Text: text})
		})
		msgs = append(msgs, m)
		time.Sleep(4 * time.Millisecond)
	}
	<-faultsDone

	// A deletion or notice claimed by a killed daemon waits out its claim
	// lease (40 s).
	awaitHandled(t, fake, msgs, 100*time.Second, allLogs)
	time.Sleep(time.Second) // a duplicate would be on its way by now
	fake.Snapshot(func(s *fakeslack.State) {
		deleted, dupNotices := checkExactlyOnce(t, s, msgs, kills)
		redelivered := 0
		for _, d := range s.Deliveries() {
			if d.Attempts > 1 {
				redelivered++
			}
		}
		t.Logf("%d replicas, %d messages, %d leaking deleted once each, %d chat.delete calls (429/500 included), %d connections opened, "+
			"%d kills and %d stops, %d envelopes redelivered, %d duplicate notices; leader takeover after SIGKILL: %v",
			replicas, len(msgs), deleted, len(s.Deletes()), s.TotalConnections(), kills, faults/2, redelivered, dupNotices, takeover.Round(time.Millisecond))
	})
}

// TestRollingRestart restarts three replicas on PostgreSQL one after the
// other, as a Deployment's rolling update does (the new one connected
// before the old one gets SIGTERM), while messages keep arriving. Nothing
// is lost and nothing deleted twice; the envelopes Slack's retries had to
// resend are counted and logged (a daemon that stops reading still has
// events on their way to its sockets).
func TestRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("three daemons restarted in turn: not in -short")
	}
	fake := fakeslack.New(fakeslack.Options{PingInterval: 500 * time.Millisecond, RedeliverAfter: 400 * time.Millisecond})
	defer fake.Close()
	env := replicaEnv(t, fake)
	var f fleet
	logs := f.logs
	launch := func() *proc { return f.start(t, env) }
	replicas := []*proc{launch(), launch(), launch()}
	waitFor(t, fake, "every connection", func(s *fakeslack.State) bool { return s.Connections() == 6 }, logs)

	stop := make(chan struct{})
	var msgs []chaosMsg
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			m := chaosMsg{channel: "C0GENERAL01", user: fmt.Sprintf("U%07d", i)}
			text := fmt.Sprintf("message %d", i)
			if i%7 == 0 {
				text, m.leaks = fmt.Sprintf("message %d: card 6759%012d", i, 100000000000+i), true
			}
			var err error
			for {
				if m.ts, m.env, err = fake.Post(fakeslack.Message{Channel: m.channel, User: m.user, Text: text}); !errors.Is(err, fakeslack.ErrNoConnection) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			msgs = append(msgs, m)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for i, old := range replicas {
		time.Sleep(time.Second)
		replicas[i] = launch()
		waitFor(t, fake, "the new replica's connections", func(s *fakeslack.State) bool { return s.Connections() == 8 }, logs)
		_ = old.cmd.Process.Signal(syscall.SIGTERM)
		if code := old.wait(t, 15*time.Second); code != 0 {
			t.Errorf("a replica stopped with %d", code)
		}
	}
	time.Sleep(time.Second)
	close(stop)
	<-streamDone
	waitFor(t, fake, "every leak deleted and every envelope acknowledged", func(s *fakeslack.State) bool {
		if s.Unacked() > 0 {
			return false
		}
		for _, m := range msgs {
			if m.leaks && s.SuccessfulDeletes(m.channel, m.ts) == 0 {
				return false
			}
		}
		return true
	}, logs)
	fake.Snapshot(func(s *fakeslack.State) {
		redelivered, leaks := 0, 0
		for _, d := range s.Deliveries() {
			if d.Attempts > 1 {
				redelivered++
			}
		}
		for _, m := range msgs {
			if m.leaks {
				leaks++
				if n := s.SuccessfulDeletes(m.channel, m.ts); n != 1 {
					t.Errorf("leak %s deleted %d times", m.ts, n)
				}
			} else if s.DeleteCalls(m.channel, m.ts) != 0 {
				t.Errorf("clean message %s sent to chat.delete", m.ts)
			}
		}
		t.Logf("rolling restart of 3 replicas: %d messages, %d leaks each deleted once, 0 lost, %d envelopes resent by Slack's retries", len(msgs), leaks, redelivered)
	})
}

// replicaEnv is the environment of daemons sharing a throwaway PostgreSQL
// database (skipped without one) through fake: two connections each, a
// 2 s leader lease, retries within 1 s, and the card rule stored.
func replicaEnv(t *testing.T, fake *fakeslack.Server) []string {
	t.Helper()
	url := pgtest.Database(t)
	cfg := filepath.Join(t.TempDir(), "securechat.toml")
	if err := os.WriteFile(cfg, []byte(`[daemon]
retry_max = "1s"
[socket]
connections = 2
stagger = "200ms"
leader_lease = "2s"
[notify]
author = "ephemeral"
[log]
format = "json"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"SECURECHAT_DB=" + url, "SECURECHAT_CONFIG=" + cfg, "SLACK_APP_TOKEN=" + fake.AppToken(),
		"SLACK_USER_TOKEN=" + fake.UserToken(), "SLACK_API_URL=" + fake.APIURL(), "SECURECHAT_BREAKER=off"}
	if out, code := runCLI(t, env, "regex", "add", `6759[0-9]{12}`, "-d", "cards"); code != 0 {
		t.Fatalf("regex add: %s", out)
	}
	return env
}

// TestPostgresConnectionsKilled: while messages arrive, every connection
// the daemons have to PostgreSQL is terminated by the server, again and
// again (a failover, a restart, a pooler dropping them). The daemons
// reconnect; an event that could not be recorded meanwhile is left
// unacknowledged and recorded from Slack's retry; every leak is deleted
// once and nothing clean is touched.
func TestPostgresConnectionsKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("two daemons for several seconds: not in -short")
	}
	fake := fakeslack.New(fakeslack.Options{PingInterval: 500 * time.Millisecond, RedeliverAfter: 400 * time.Millisecond})
	defer fake.Close()
	env := replicaEnv(t, fake)
	url := strings.TrimPrefix(env[0], "SECURECHAT_DB=")
	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var f fleet
	logs := f.logs
	for i := range 2 {
		f.start(t, append(env, fmt.Sprintf("SECURECHAT_INSTANCE=replica-%d", i)))
	}
	waitFor(t, fake, "every connection", func(s *fakeslack.State) bool { return s.Connections() == 4 }, logs)
	killed := 0
	var msgs []chaosMsg
	for i := range 400 {
		if i%50 == 25 {
			res, err := admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE datname = current_database() AND pid != pg_backend_pid()`)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := res.RowsAffected()
			killed += int(n)
		}
		m := chaosMsg{channel: "C0GENERAL01", user: fmt.Sprintf("U%07d", i)}
		text := fmt.Sprintf("message %d", i)
		if i%5 == 0 {
			text, m.leaks = fmt.Sprintf("message %d: card 6759%012d", i, 100000000000+i), true
		}
		if m.ts, m.env, err = fake.Post(fakeslack.Message{Channel: m.channel, User: m.user, Text: text}); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
		time.Sleep(5 * time.Millisecond)
	}
	awaitHandled(t, fake, msgs, 60*time.Second, logs)
	time.Sleep(time.Second)
	fake.Snapshot(func(s *fakeslack.State) {
		deleted, _ := checkExactlyOnce(t, s, msgs, 0)
		redelivered := 0
		for _, d := range s.Deliveries() {
			if d.Attempts > 1 {
				redelivered++
			}
		}
		t.Logf("%d PostgreSQL connections terminated in 8 rounds; %d messages, %d leaks deleted once each, %d envelopes resent by Slack's retries",
			killed, len(msgs), deleted, redelivered)
	})
}
