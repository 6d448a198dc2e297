package main

import (
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

	"github.com/securechat/securechat/internal/fakeslack"
)

// TestChaos streams messages (clean, leaking, and clean ones edited to leak)
// through the fake Slack to the real binary while it is SIGKILLed and
// restarted at random moments and chat.delete answers 429 or 500 one time
// in ten. At the end every leaking message is deleted exactly once, no
// clean message is touched, every envelope is acknowledged, and no author
// is told twice beyond one duplicate per kill (a notice in flight).
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (seconds of real waiting): not in -short")
	}
	t.Run("one daemon", func(t *testing.T) { chaos(t, false) })
	t.Run("two daemons, one killed", func(t *testing.T) { chaos(t, true) })
}

type chaosMsg struct {
	channel, ts, env, user string
	leaks                  bool
}

func chaos(t *testing.T, twoDaemons bool) {
	const (
		messages = 800
		kills    = 10
	)
	fake := fakeslack.New(fakeslack.Options{PingInterval: 500 * time.Millisecond, RedeliverAfter: 400 * time.Millisecond, ChaosDelete: 0.1})
	defer fake.Close()
	dir := t.TempDir()
	db := filepath.Join(dir, "securechat.db")
	cfg := filepath.Join(dir, "securechat.toml")
	if err := os.WriteFile(cfg, []byte("[daemon]\nretry_max = \"1s\"\n[notify]\nauthor = \"ephemeral\"\n[log]\nformat = \"json\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"SECURECHAT_DB=" + db, "SECURECHAT_CONFIG=" + cfg, "SLACK_APP_TOKEN=" + fake.AppToken(),
		"SLACK_USER_TOKEN=" + fake.UserToken(), "SLACK_API_URL=" + fake.APIURL(), "SECURECHAT_BREAKER=off"}
	if out, code := runCLI(t, env, "regex", "add", `6759[0-9]{12}`, "-d", "cards"); code != 0 {
		t.Fatalf("regex add: %s", out)
	}
	var f fleet
	launch := func() *proc { return f.start(t, env) }
	allLogs := f.logs
	if twoDaemons {
		launch() // the one that stays up
	}
	victim := launch()
	waitFor(t, fake, "connection", func(s *fakeslack.State) bool { return s.Connections() >= 1 }, allLogs)

	// The killer: SIGKILL at random moments, restart at once.
	rnd := rand.New(rand.NewPCG(1, 2))
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		for range kills {
			time.Sleep(time.Duration(150+rnd.IntN(600)) * time.Millisecond)
			_ = victim.cmd.Process.Signal(syscall.SIGKILL)
			<-victim.done
			victim.done <- nil
			victim = launch()
		}
	}()

	// The stream, at a few hundred messages a second; a send that finds no
	// connection is retried, as Slack retries delivery.
	send := func(f func() (string, string, error)) (string, string) {
		for {
			ts, env, err := f()
			if err == nil {
				return ts, env
			}
			if !errors.Is(err, fakeslack.ErrNoConnection) {
				// Written to a socket the kill just closed: the delivery is
				// recorded, and redelivered like one that went unacknowledged.
				return ts, env
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var msgs []chaosMsg
	for i := range messages {
		m := chaosMsg{channel: "C0GENERAL01", user: fmt.Sprintf("U%07d", i)}
		card := fmt.Sprintf("6759%012d", 100000000000+i)
		text := fmt.Sprintf("message %d, nothing to see", i)
		kind := i % 10
		switch kind {
		case 0, 1:
			text, m.leaks = fmt.Sprintf("message %d: card %s", i, card), true
		}
		m.ts, m.env = send(func() (string, string, error) {
			return fake.Post(fakeslack.Message{Channel: m.channel, User: m.user, Text: text})
		})
		if kind == 2 { // posted clean, edited to leak
			m.leaks = true
			send(func() (string, string, error) {
				env, err := fake.Edit(m.channel, m.ts, fmt.Sprintf("message %d, edited: card %s", i, card))
				return m.ts, env, err
			})
		}
		msgs = append(msgs, m)
		time.Sleep(2 * time.Millisecond)
	}
	<-killerDone

	// A deletion or notice claimed by a daemon that was killed waits out its
	// 40 s lease.
	awaitHandled(t, fake, msgs, 100*time.Second, allLogs)
	time.Sleep(time.Second) // a duplicate would be on its way by now
	fake.Snapshot(func(s *fakeslack.State) {
		deleted, dupNotices := checkExactlyOnce(t, s, msgs, kills)
		t.Logf("%d messages, %d leaking deleted once each, %d chat.delete calls (429/500 included), %d connections, %d duplicate notices",
			len(msgs), deleted, len(s.Deletes()), s.TotalConnections(), dupNotices)
	})
}

// awaitHandled waits until every leaking message of msgs is deleted, its
// author told, and every envelope acknowledged.
func awaitHandled(t *testing.T, fake *fakeslack.Server, msgs []chaosMsg, within time.Duration, logs func() string) {
	t.Helper()
	var missing string
	deadline := time.Now().Add(within)
	for {
		fake.Snapshot(func(s *fakeslack.State) {
			told := map[string]bool{}
			for _, p := range s.Posts() {
				if p.Method == "chat.postEphemeral" {
					told[p.User] = true
				}
			}
			notDeleted, notTold := 0, 0
			var gone []string
			for _, m := range msgs {
				if m.leaks && s.SuccessfulDeletes(m.channel, m.ts) == 0 {
					notDeleted++
					d, _ := s.Delivery(m.env)
					gone = append(gone, fmt.Sprintf("%s (%d deliveries, acked %v)", m.ts, d.Attempts, !d.AckedAt.IsZero()))
				}
				if m.leaks && !told[m.user] {
					notTold++
				}
			}
			missing = ""
			if notDeleted+notTold+s.Unacked() > 0 {
				missing = fmt.Sprintf("%d leaks not deleted %v, %d authors not told, %d envelopes unacked", notDeleted, gone, notTold, s.Unacked())
			}
		})
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the faults: %s\n%s", missing, logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkExactlyOnce checks, a second after awaitHandled (a duplicate would
// be on its way by then), that every leaking message was deleted by one
// successful chat.delete, no clean one reached chat.delete, and duplicate
// author notices stay within one per kill. It returns the leaks deleted and
// the duplicate notices.
func checkExactlyOnce(t *testing.T, s *fakeslack.State, msgs []chaosMsg, kills int) (deleted, dupNotices int) {
	t.Helper()
	told := map[string]int{}
	for _, p := range s.Posts() {
		if p.Method == "chat.postEphemeral" {
			told[p.User]++
		}
	}
	for _, m := range msgs {
		switch n := s.SuccessfulDeletes(m.channel, m.ts); {
		case m.leaks && n != 1:
			t.Errorf("leaking message %s deleted %d times", m.ts, n)
		case !m.leaks && s.DeleteCalls(m.channel, m.ts) != 0:
			t.Errorf("clean message %s was sent to chat.delete", m.ts)
		case m.leaks:
			deleted++
			if told[m.user] == 0 {
				t.Errorf("the author of %s was not told", m.ts)
			}
			dupNotices += max(told[m.user]-1, 0)
		}
	}
	if dupNotices > kills {
		t.Errorf("%d duplicate author notices for %d kills", dupNotices, kills)
	}
	return deleted, dupNotices
}

// fleet is the daemons a test started (and restarted), for their logs.
type fleet struct {
	mu    sync.Mutex
	procs []*proc
}

// start runs 'securechat run' with env.
func (f *fleet) start(t *testing.T, env []string) *proc {
	t.Helper()
	p := start(t, env, "run")
	f.mu.Lock()
	f.procs = append(f.procs, p)
	f.mu.Unlock()
	return p
}

// logs is the end of every daemon's log, for a failure's message.
func (f *fleet) logs() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for i, p := range f.procs {
		fmt.Fprintf(&b, "--- daemon %d\n%s", i, tail(p.stderr.String(), 2500))
	}
	return b.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
