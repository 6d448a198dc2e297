package bot_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/rs/zerolog"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/internal/fakeslack"
	"github.com/securechat/securechat/internal/syncbuf"
	"github.com/securechat/securechat/store"
)

const (
	maestro = `.*(5018|5020|5038|6304|6759|6761|6763)[0-9]{8,15}.*`
	card    = "6759649826438453"
)

// harness is one daemon against one fake Slack and one SQLite file.
type harness struct {
	t      *testing.T
	slack  *fakeslack.Server
	store  *store.Store
	dbPath string
	logs   *syncbuf.Buffer
	daemon *bot.Daemon
	cancel context.CancelFunc
	done   chan error
}

type setup struct {
	fake     fakeslack.Options
	opts     bot.Options
	patterns []string
	noStart  bool
}

func newHarness(t *testing.T, s setup) *harness {
	t.Helper()
	h := &harness{t: t, logs: &syncbuf.Buffer{}}
	if s.fake.PingInterval == 0 {
		s.fake.PingInterval = 200 * time.Millisecond
	}
	h.slack = fakeslack.New(s.fake)
	t.Cleanup(h.slack.Close)
	h.dbPath = filepath.Join(t.TempDir(), "securechat.db")
	st, err := store.Open(context.Background(), h.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	h.store = st
	t.Cleanup(func() { st.Close() })
	if s.patterns == nil {
		s.patterns = []string{maestro}
	}
	for _, p := range s.patterns {
		if _, err := st.AddRegex(context.Background(), p, "rule "+p[:min(len(p), 12)]); err != nil {
			t.Fatal(err)
		}
	}
	o := s.opts
	if o.AppToken == "" {
		o.AppToken = h.slack.AppToken()
	}
	if o.UserToken == "" {
		o.UserToken = h.slack.UserToken()
	}
	o.APIURL = h.slack.APIURL()
	if o.ReloadInterval == 0 {
		o.ReloadInterval = 100 * time.Millisecond
	}
	if o.RetryMax == 0 {
		o.RetryMax = 200 * time.Millisecond
	}
	if o.PingInterval == 0 {
		o.PingInterval = 3 * time.Second
	}
	log := zerolog.New(h.logs).Level(zerolog.TraceLevel)
	h.daemon = bot.New(st, log, o)
	if !s.noStart {
		h.start()
		h.wait("connected", func(st *fakeslack.State) bool { return st.Connections() >= 1 })
	}
	return h
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	done := make(chan error, 1)
	h.done = done
	d := h.daemon
	go func() { done <- d.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			h.t.Error("daemon did not stop")
		}
		if h.t.Failed() {
			h.t.Logf("daemon logs:\n%s", h.logs.String())
		}
	})
}

// stop cancels the daemon and returns Run's error.
func (h *harness) stop() error {
	h.t.Helper()
	h.cancel()
	select {
	case err := <-h.done:
		h.done <- err // for the cleanup
		return err
	case <-time.After(20 * time.Second):
		h.t.Fatal("daemon did not stop within 20s of cancellation")
		return nil
	}
}

func (h *harness) wait(what string, cond func(st *fakeslack.State) bool) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := h.slack.Wait(ctx, cond); err != nil {
		h.t.Fatalf("waiting for %s: %v\nlogs:\n%s", what, err, h.logs.String())
	}
}

func (h *harness) post(m fakeslack.Message) (ts, envelope string) {
	h.t.Helper()
	ts, env, err := h.slack.Post(m)
	if err != nil {
		h.t.Fatal(err)
	}
	return ts, env
}

func (h *harness) leaks(f store.LeakFilter) []store.Leak {
	h.t.Helper()
	ls, err := h.store.Leaks(context.Background(), f)
	if err != nil {
		h.t.Fatal(err)
	}
	return ls
}

func acked(envs ...string) func(st *fakeslack.State) bool {
	return func(st *fakeslack.State) bool {
		for _, e := range envs {
			if !st.Acked(e) {
				return false
			}
		}
		return true
	}
}

func TestLeakIsDeletedOnceAndCleanMessageKept(t *testing.T) {
	h := newHarness(t, setup{})
	cleanTS, cleanEnv := h.post(fakeslack.Message{Text: "lunch at 12? <- no card here, 1234"})
	leakTS, leakEnv := h.post(fakeslack.Message{Text: "my card is " + card + " & exp 12/29", User: "U0ALICE"})

	h.wait("the leak deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", leakTS) == 1 })
	h.wait("both acked", acked(cleanEnv, leakEnv))
	h.slack.Snapshot(func(st *fakeslack.State) {
		if st.DeleteCalls("C0GENERAL01", cleanTS) != 0 || !st.Exists("C0GENERAL01", cleanTS) {
			t.Error("the clean message was deleted")
		}
	})
	ls := h.leaks(store.LeakFilter{})
	if len(ls) != 1 {
		t.Fatalf("got %d leaks, want 1: %+v", len(ls), ls)
	}
	l := ls[0]
	if l.Channel != "C0GENERAL01" || l.TS != leakTS || l.User != "U0ALICE" || l.Excerpt != "************8453" || l.RegexID != 1 {
		t.Errorf("leak = %+v", l)
	}
	h.wait("deletion recorded", func(*fakeslack.State) bool {
		return len(h.leaks(store.LeakFilter{Status: store.StatusDeleted})) == 1
	})
	if logs := h.logs.String(); strings.Contains(logs, card) || strings.Contains(logs, "lunch") {
		t.Errorf("logs contain message text or the secret:\n%s", logs)
	}
	if !strings.Contains(h.logs.String(), `"excerpt":"************8453"`) {
		t.Error("the leak was not logged with its masked excerpt")
	}
}

func TestEveryKindOfMessageIsScanned(t *testing.T) {
	h := newHarness(t, setup{})
	parent, _ := h.post(fakeslack.Message{Text: "thread parent"})
	cases := []fakeslack.Message{
		{Channel: "C0PRIVATE01", ChannelType: "group", Text: "private " + card},
		{Channel: "D0DIRECT001", ChannelType: "im", Text: "dm " + card},
		{Channel: "G0GROUPDM01", ChannelType: "mpim", Text: "group dm " + card},
		{ThreadTS: parent, Text: "reply " + card},
		{ThreadTS: parent, Subtype: "thread_broadcast", Text: "broadcast " + card},
		{Subtype: "me_message", Text: "/me pays with " + card},
		{Text: "<tel:" + card + "|" + card + ">", Raw: true},
		{Text: "see attachment", Attachments: []map[string]any{{"fallback": "card " + card, "text": "card " + card}}},
	}
	var tss []string
	for _, m := range cases {
		ts, _ := h.post(m)
		tss = append(tss, ts)
	}
	for i, m := range cases {
		ch := m.Channel
		if ch == "" {
			ch = "C0GENERAL01"
		}
		if m.ChannelType == "im" || m.ChannelType == "mpim" {
			// Slack does not let an admin delete another member's DM: it is
			// recorded, and chat.delete is never tried.
			h.wait("record of case "+m.Text, func(*fakeslack.State) bool { return len(h.leaks(store.LeakFilter{Channel: ch})) == 1 })
			if ls := h.leaks(store.LeakFilter{Channel: ch}); ls[0].Status != store.LeakUndeletable {
				t.Errorf("a DM leak's status is %q, want undeletable", ls[0].Status)
			}
			continue
		}
		h.wait("deletion of case "+m.Text, func(st *fakeslack.State) bool { return st.SuccessfulDeletes(ch, tss[i]) == 1 })
	}
	h.slack.Snapshot(func(st *fakeslack.State) {
		for _, ch := range []string{"D0DIRECT001", "G0GROUPDM01"} {
			for _, d := range st.Deletes() {
				if d.Channel == ch {
					t.Errorf("chat.delete was called on the direct message in %s", ch)
				}
			}
		}
	})
	// One secret in text, blocks and attachment is one leak per message.
	if n := len(h.leaks(store.LeakFilter{})); n != len(cases) {
		t.Errorf("got %d leaks for %d messages", n, len(cases))
	}
}

func TestIgnoredAndMalformedEventsAreAckedAndHarmless(t *testing.T) {
	h := newHarness(t, setup{})
	var envs []string
	send := func(ev map[string]any) {
		env, err := h.slack.SendEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
	}
	_, env := h.post(fakeslack.Message{Subtype: "bot_message", BotID: "B0BOT", Text: "bot says " + card})
	envs = append(envs, env)
	_, env = h.post(fakeslack.Message{Subtype: "channel_join", Text: "<@U0NEW> has joined the channel " + card, Raw: true})
	envs = append(envs, env)
	send(map[string]any{"type": "message", "subtype": "message_deleted", "hidden": true, "channel": "C0GENERAL01",
		"ts": "1764061200.000001", "deleted_ts": "1764061100.000001", "previous_message": map[string]any{"text": card}})
	send(map[string]any{"type": "reaction_added", "user": "U1", "reaction": "thumbsup", "item": map[string]any{"type": "message", "channel": "C1", "ts": "1.1"}})
	send(map[string]any{"type": "message", "channel": "C0GENERAL01", "text": card}) // no ts
	send(map[string]any{"type": "message", "subtype": "message_changed", "channel": "C0GENERAL01", "ts": "1.2"})
	// Frames slack-go cannot parse: an unknown envelope type, a payload of the wrong shape.
	raw := []string{
		`{"envelope_id":"bad-1","type":"mystery_type","payload":{}}`,
		`{"envelope_id":"bad-2","type":"events_api","payload":{"type":"event_callback","event":"not an object"}}`,
		`{"envelope_id":"bad-3","type":"events_api","payload":{"type":"event_callback","event":{"type":"message","channel":"C0GENERAL01","ts":"1.3","text":"x","blocks":[{"type":"no_such_block_type"}]}}}`,
		`this is not json at all`,
	}
	for _, f := range raw {
		if err := h.slack.SendRaw(f); err != nil {
			t.Fatal(err)
		}
	}
	envs = append(envs, "bad-1", "bad-2", "bad-3")
	h.wait("every envelope acked", acked(envs...))

	// Still working afterwards.
	ts, _ := h.post(fakeslack.Message{Text: "now a real one " + card})
	h.wait("deletion", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	h.slack.Snapshot(func(st *fakeslack.State) {
		if n := len(st.Deletes()); n != 1 {
			t.Errorf("got %d chat.delete calls, want 1 (only the real leak)", n)
		}
	})
}

func TestBotMessagesScannedWhenConfigured(t *testing.T) {
	h := newHarness(t, setup{opts: bot.Options{ScanBots: true}})
	ts, _ := h.post(fakeslack.Message{Subtype: "bot_message", BotID: "B0BOT", Text: "bot says " + card})
	h.wait("bot message deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
}

func TestBlockOnlyLeakWithUnknownBlockIsStillScanned(t *testing.T) {
	h := newHarness(t, setup{})
	frame := `{"envelope_id":"blk-1","type":"events_api","accepts_response_payload":false,"retry_attempt":0,"retry_reason":"",` +
		`"payload":{"type":"event_callback","event_id":"Ev1","event":{"type":"message","channel":"C0GENERAL01","channel_type":"channel",` +
		`"user":"U1","ts":"1764061300.000001","text":"","blocks":[{"type":"future_block","elements":[{"type":"text","text":"card ` + card + `"}]}]}}}`
	if err := h.slack.SendRaw(frame); err != nil {
		t.Fatal(err)
	}
	h.wait("acked", acked("blk-1"))
	if ls := h.leaks(store.LeakFilter{}); len(ls) != 1 || ls[0].TS != "1764061300.000001" {
		t.Errorf("leaks = %+v, want the block's card", ls)
	}
}

func TestRedeliveryYieldsOneLeakAndOneDelete(t *testing.T) {
	h := newHarness(t, setup{})
	ts, env := h.post(fakeslack.Message{Text: "card " + card})
	// Redeliver at once (likely in flight on another worker) and later.
	if err := h.slack.Redeliver(env); err != nil {
		t.Fatal(err)
	}
	h.wait("deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	for range 2 {
		if err := h.slack.Redeliver(env); err != nil {
			t.Fatal(err)
		}
	}
	h.wait("all four deliveries acked", func(st *fakeslack.State) bool {
		d, _ := st.Delivery(env)
		return d.Acks >= 4
	})
	h.wait("deletion recorded", func(*fakeslack.State) bool {
		return len(h.leaks(store.LeakFilter{Status: store.StatusDeleted})) == 1
	})
	h.slack.Snapshot(func(st *fakeslack.State) {
		if n := st.DeleteCalls("C0GENERAL01", ts); n != 1 {
			t.Errorf("chat.delete called %d times, want 1", n)
		}
	})
	if n := len(h.leaks(store.LeakFilter{})); n != 1 {
		t.Errorf("got %d leak records, want 1", n)
	}
	if !strings.Contains(h.logs.String(), "already recorded (seen before)") {
		t.Error("redelivery not logged as such")
	}
}

// TestAckedEnvelopeIsNotRedelivered runs the fake with Slack's redelivery
// of unacknowledged envelopes on: the daemon acknowledges in time, so the
// envelope is sent once. (TestLockedDatabaseLosesNothing covers an envelope
// left unacknowledged on purpose.)
func TestAckedEnvelopeIsNotRedelivered(t *testing.T) {
	h := newHarness(t, setup{fake: fakeslack.Options{RedeliverAfter: 300 * time.Millisecond}})
	ts, env := h.post(fakeslack.Message{Text: "card " + card})
	h.wait("acked", acked(env))
	h.wait("deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	h.slack.Snapshot(func(st *fakeslack.State) {
		if d, _ := st.Delivery(env); d.Attempts != 1 {
			t.Errorf("an acked envelope was redelivered %d times", d.Attempts-1)
		}
	})
}

func TestEditThatLeaksIsDeleted(t *testing.T) {
	h := newHarness(t, setup{})
	ts, env := h.post(fakeslack.Message{Text: "my card is coming"})
	h.wait("acked", acked(env))
	editEnv, err := h.slack.Edit("C0GENERAL01", ts, "my card is "+card)
	if err != nil {
		t.Fatal(err)
	}
	h.wait("edited message deleted by its original ts", func(st *fakeslack.State) bool {
		return st.SuccessfulDeletes("C0GENERAL01", ts) == 1
	})
	h.wait("edit acked", acked(editEnv))
	if ls := h.leaks(store.LeakFilter{}); len(ls) != 1 || ls[0].TS != ts {
		t.Errorf("leaks = %+v, want one with the original ts %s", ls, ts)
	}
}

func TestHotReload(t *testing.T) {
	h := newHarness(t, setup{})
	const key = "AKIAIOSFODNN7EXAMPL2"
	ts1, env1 := h.post(fakeslack.Message{Text: "key " + key})
	h.wait("acked", acked(env1))
	if _, err := h.store.AddRegex(context.Background(), `AKIA[A-Z2-7]{16}`, "AWS key"); err != nil {
		t.Fatal(err)
	}
	// A broken pattern slipped in behind the CLI's back must not stop the reload.
	if _, err := h.store.AddRegex(context.Background(), `broken(`, "broken"); err != nil {
		t.Fatal(err)
	}
	h.wait("reload logged", func(*fakeslack.State) bool { return strings.Contains(h.logs.String(), `"rules":2,"skipped":1`) })
	ts2, _ := h.post(fakeslack.Message{Text: "key " + key})
	h.wait("new rule applied", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts2) == 1 })
	h.slack.Snapshot(func(st *fakeslack.State) {
		if st.DeleteCalls("C0GENERAL01", ts1) != 0 {
			t.Error("the message posted before the rule existed was deleted")
		}
	})
	// Removing the rule stops it.
	if _, err := h.store.DeleteRegex(context.Background(), 2, "test"); err != nil {
		t.Fatal(err)
	}
	h.wait("reload after rm", func(*fakeslack.State) bool { return strings.Contains(h.logs.String(), `"rules":1,"skipped":1`) })
	ts3, env3 := h.post(fakeslack.Message{Text: "key " + key})
	h.wait("acked", acked(env3))
	h.slack.Snapshot(func(st *fakeslack.State) {
		if st.DeleteCalls("C0GENERAL01", ts3) != 0 {
			t.Error("a removed rule still deleted a message")
		}
	})
	if !strings.Contains(h.logs.String(), "skipping a regex that does not compile") {
		t.Error("the broken regex was not reported")
	}
}

func TestDeletionRetries(t *testing.T) {
	tests := []struct {
		name       string
		script     []fakeslack.Response
		wantStatus string
		wantCalls  int
		wantErr    string
		minGap     time.Duration // between the first and the last call
	}{
		{"429 honours Retry-After", []fakeslack.Response{{Status: http.StatusTooManyRequests, RetryAfter: "1"}}, store.StatusDeleted, 2, "", time.Second},
		{"500 then success", []fakeslack.Response{{Status: 500}, {Status: 503}}, store.StatusDeleted, 3, "", 0},
		{"transient Slack error", []fakeslack.Response{{Error: "internal_error"}}, store.StatusDeleted, 2, "", 0},
		{"cant_delete_message is final", []fakeslack.Response{{Error: "cant_delete_message"}}, store.StatusFailed, 1, "cant_delete_message", 0},
		{"channel_not_found is final", []fakeslack.Response{{Error: "channel_not_found"}}, store.StatusFailed, 1, "channel_not_found", 0},
		{"compliance exports", []fakeslack.Response{{Error: "compliance_exports_prevent_deletion"}}, store.StatusFailed, 1, "compliance_exports_prevent_deletion", 0},
		{"500 then already gone counts as deleted", []fakeslack.Response{{Status: 500}, {Error: "message_not_found"}}, store.StatusDeleted, 2, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, setup{})
			h.slack.Script("chat.delete", tt.script...)
			ts, _ := h.post(fakeslack.Message{Text: "card " + card})
			h.wait("status "+tt.wantStatus, func(*fakeslack.State) bool {
				return len(h.leaks(store.LeakFilter{Status: tt.wantStatus})) == 1
			})
			var calls []fakeslack.DeleteCall
			h.slack.Snapshot(func(st *fakeslack.State) { calls = st.Deletes() })
			if len(calls) != tt.wantCalls {
				t.Errorf("got %d chat.delete calls, want %d: %+v", len(calls), tt.wantCalls, calls)
			}
			for _, c := range calls {
				if c.TS != ts {
					t.Errorf("deleted ts %s, want %s", c.TS, ts)
				}
			}
			if gap := calls[len(calls)-1].At.Sub(calls[0].At); gap < tt.minGap {
				t.Errorf("retried after %v, want at least %v", gap, tt.minGap)
			}
			l := h.leaks(store.LeakFilter{})[0]
			if l.LastError != tt.wantErr && tt.wantStatus == store.StatusFailed {
				t.Errorf("last_error = %q, want %q", l.LastError, tt.wantErr)
			}
		})
	}
}

func TestRevokedTokenStopsDaemonAndKeepsDeletionPending(t *testing.T) {
	h := newHarness(t, setup{})
	h.slack.Script("chat.delete", fakeslack.Response{Error: "token_revoked"})
	h.post(fakeslack.Message{Text: "card " + card})
	select {
	case err := <-h.done:
		h.done <- err
		var te *bot.TokenError
		if !errors.As(err, &te) || te.Env != "SLACK_USER_TOKEN" || te.Code != "token_revoked" {
			t.Fatalf("Run = %v, want a slackapi.TokenError for SLACK_USER_TOKEN", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("daemon kept running with a revoked token")
	}
	if n := len(h.leaks(store.LeakFilter{Status: store.StatusPending})); n != 1 {
		t.Errorf("pending deletions = %d, want the 1 kept for the next start", n)
	}
}

func TestReconnects(t *testing.T) {
	h := newHarness(t, setup{})
	h.slack.Disconnect("refresh_requested")
	// Exactly one open: the old connection is gone, not merely the new one up.
	h.wait("reconnected after disconnect", func(st *fakeslack.State) bool { return st.TotalConnections() >= 2 && st.Connections() == 1 })
	ts, _ := h.post(fakeslack.Message{Text: "card " + card})
	h.wait("works after disconnect", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })

	h.slack.Drop()
	h.wait("reconnected after drop", func(st *fakeslack.State) bool { return st.TotalConnections() >= 3 && st.Connections() == 1 })
	ts, _ = h.post(fakeslack.Message{Text: "card " + card})
	h.wait("works after drop", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
}

func TestPingTimeoutReconnects(t *testing.T) {
	// A server that stops pinging looks dead: the client must reconnect.
	h := newHarness(t, setup{fake: fakeslack.Options{PingInterval: -1}, opts: bot.Options{PingInterval: 300 * time.Millisecond}})
	h.wait("reconnected after ping timeout", func(st *fakeslack.State) bool { return st.TotalConnections() >= 2 })
}

// TestFullQueueLeavesEventsForRedelivery: while the database is locked the
// one worker is stuck recording and the queue fills; the reader keeps
// reading (the socket stays alive) and leaves what it cannot queue
// unacknowledged, counted. Slack's redelivery brings everything back once
// the lock goes, and nothing is lost.
func TestFullQueueLeavesEventsForRedelivery(t *testing.T) {
	m := bot.NewMetrics()
	h := newHarness(t, setup{fake: fakeslack.Options{RedeliverAfter: 700 * time.Millisecond}, noStart: true})
	short, err := store.Open(context.Background(), h.dbPath, store.WithBusyTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	h.daemon = bot.New(short, zerolog.New(h.logs).Level(zerolog.TraceLevel), bot.Options{AppToken: h.slack.AppToken(),
		UserToken: h.slack.UserToken(), APIURL: h.slack.APIURL(), ReloadInterval: time.Hour, RetryMax: 200 * time.Millisecond,
		Workers: 1, QueueSize: 1, RecordTimeout: 300 * time.Millisecond, Metrics: m})
	h.start()
	h.wait("connected", func(st *fakeslack.State) bool { return st.Connections() == 1 })
	tx := lockDB(t, h.dbPath)
	var leakTS, envs []string
	for range 12 {
		ts, env := h.post(fakeslack.Message{Text: "card " + card})
		leakTS, envs = append(leakTS, ts), append(envs, env)
	}
	h.wait("an event left unqueued", func(*fakeslack.State) bool { return counter(t, m, "securechat_events_unqueued_total") > 0 })
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	h.wait("all acked", acked(envs...))
	for _, ts := range leakTS {
		h.wait("deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	}
	if n := len(h.leaks(store.LeakFilter{})); n != len(leakTS) {
		t.Errorf("%d leaks for %d messages", n, len(leakTS))
	}
}

// lockFreeDB opens the database as another process (sqlite3 by hand) would.
func lockFreeDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// lockDB takes the database's write lock and keeps it, as another process
// would, until the returned transaction ends (Rollback).
func lockDB(t *testing.T, path string) *sql.Tx {
	t.Helper()
	locker, err := sql.Open("sqlite3", "file:"+path+"?_txlock=exclusive")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { locker.Close() })
	tx, err := locker.Begin()
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

// counter reads a counter from the daemon's metrics.
func counter(t *testing.T, m *bot.Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			total := 0.0
			for _, c := range mf.GetMetric() {
				total += c.GetCounter().GetValue()
			}
			return total
		}
	}
	return 0
}

func TestShutdownIsCleanAndKeepsPendingDeletions(t *testing.T) {
	h := newHarness(t, setup{})
	// Slack keeps failing: the deletion stays pending.
	h.slack.Script("chat.delete", fakeslack.Response{Status: 500}, fakeslack.Response{Status: 500}, fakeslack.Response{Status: 500},
		fakeslack.Response{Status: 500}, fakeslack.Response{Status: 500}, fakeslack.Response{Status: 500})
	_, env := h.post(fakeslack.Message{Text: "card " + card})
	h.wait("acked", acked(env))
	start := time.Now()
	if err := h.stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("shutdown took %v", took)
	}
	if n := len(h.leaks(store.LeakFilter{Status: store.StatusPending})); n != 1 {
		t.Errorf("pending = %d after shutdown, want 1", n)
	}
	h.wait("connection closed", func(st *fakeslack.State) bool { return st.Connections() == 0 })
}

func TestSecretNeverReachesDisk(t *testing.T) {
	h := newHarness(t, setup{})
	secrets := []string{card, "676100041090"}
	for _, s := range secrets {
		ts, _ := h.post(fakeslack.Message{Text: "pay with " + s + " please"})
		h.wait("deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	}
	h.wait("recorded", func(*fakeslack.State) bool { return len(h.leaks(store.LeakFilter{Status: store.StatusDeleted})) == 2 })
	files, _ := filepath.Glob(h.dbPath + "*")
	if len(files) < 2 {
		t.Fatalf("want the database and its WAL, found %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s contains the secret %s", filepath.Base(f), s)
			}
		}
		if bytes.Contains(b, []byte("pay with")) {
			t.Errorf("%s contains message text", filepath.Base(f))
		}
	}
	for _, s := range secrets {
		if strings.Contains(h.logs.String(), s) {
			t.Errorf("logs contain the secret %s", s)
		}
	}
}

func TestBadTokensFailFast(t *testing.T) {
	tests := []struct {
		name    string
		fake    fakeslack.Options
		opts    bot.Options
		env     string
		code    string
		hintHas string
	}{
		{"unknown user token", fakeslack.Options{}, bot.Options{UserToken: "xoxp-1-2-3-wrong"}, "SLACK_USER_TOKEN", "invalid_auth", "User OAuth Token"},
		{"bot token as user token", fakeslack.Options{BotToken: "xoxb-1-2-bot"}, bot.Options{UserToken: "xoxb-1-2-bot"}, "SLACK_USER_TOKEN", "bot token", "only its own"},
		{"missing scopes", fakeslack.Options{Scopes: "chat:write,channels:history"}, bot.Options{}, "SLACK_USER_TOKEN", "missing scopes groups:history, im:history, mpim:history", "User Token Scopes"},
		{"unknown app token", fakeslack.Options{}, bot.Options{AppToken: "xapp-1-A-1-wrong"}, "SLACK_APP_TOKEN", "invalid_auth", "connections:write"},
		{"user token as app token", fakeslack.Options{}, bot.Options{AppToken: fakeslack.DefaultUserToken}, "SLACK_APP_TOKEN", "not_allowed_token_type", "app-level token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, setup{fake: tt.fake, opts: tt.opts, noStart: true})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			err := h.daemon.Run(ctx)
			var te *bot.TokenError
			if !errors.As(err, &te) {
				t.Fatalf("Run = %v, want a *slackapi.TokenError", err)
			}
			if te.Env != tt.env || te.Code != tt.code || !strings.Contains(te.Error(), tt.hintHas) {
				t.Errorf("got %q, want env %s, code %q, hint with %q", te, tt.env, tt.code, tt.hintHas)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("took %v to give up", took)
			}
		})
	}
}

func TestSlackUnreachableAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (seconds of real waiting): not in -short")
	}
	h := newHarness(t, setup{noStart: true})
	for range 3 {
		h.slack.Script("auth.test", fakeslack.Response{Status: 503})
	}
	h.start()
	h.wait("connected after auth.test recovered", func(st *fakeslack.State) bool { return st.Connections() >= 1 })
	if !strings.Contains(h.logs.String(), "auth.test failed; retrying") {
		t.Error("retries of auth.test not logged")
	}
}

// TestRedeliveryToAnotherDaemon runs two daemons (two Socket Mode
// connections) on one database: an envelope redelivered to the other
// connection still yields one leak record and one chat.delete.
func TestRedeliveryToAnotherDaemon(t *testing.T) {
	h := newHarness(t, setup{})
	st2, err := store.Open(context.Background(), h.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	second := bot.New(st2, zerolog.New(h.logs), bot.Options{AppToken: h.slack.AppToken(), UserToken: h.slack.UserToken(),
		APIURL: h.slack.APIURL(), ReloadInterval: 100 * time.Millisecond, PingInterval: 3 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- second.Run(ctx) }()
	defer func() { cancel(); <-done }()
	h.wait("two connections", func(st *fakeslack.State) bool { return st.Connections() == 2 })

	var tss []string
	for i := range 10 {
		ts, env := h.post(fakeslack.Message{Text: "card " + card + " #" + strconv.Itoa(i)})
		if err := h.slack.Redeliver(env); err != nil { // round robin: the other connection
			t.Fatal(err)
		}
		tss = append(tss, ts)
	}
	for _, ts := range tss {
		h.wait("deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	}
	h.wait("all acked twice", func(st *fakeslack.State) bool {
		for _, d := range st.Deliveries() {
			if d.Acks < d.Attempts {
				return false
			}
		}
		return true
	})
	h.wait("deletions recorded", func(*fakeslack.State) bool {
		return len(h.leaks(store.LeakFilter{Status: store.StatusDeleted})) == len(tss)
	})
	h.slack.Snapshot(func(st *fakeslack.State) {
		for _, ts := range tss {
			if n := st.DeleteCalls("C0GENERAL01", ts); n != 1 {
				t.Errorf("%s: %d chat.delete calls, want 1", ts, n)
			}
		}
	})
	if n := len(h.leaks(store.LeakFilter{})); n != len(tss) {
		t.Errorf("%d leak records for %d messages", n, len(tss))
	}
}

// TestLockedDatabaseLosesNothing holds the database locked while a leak
// arrives: the daemon cannot record it, so it must not acknowledge it;
// Slack's redelivery, once the lock is gone, records and deletes it.
func TestLockedDatabaseLosesNothing(t *testing.T) {
	h := newHarness(t, setup{fake: fakeslack.Options{RedeliverAfter: 1500 * time.Millisecond}, noStart: true})
	// The daemon gets a short busy timeout so the test does not wait 3 × 10 s.
	short, err := store.Open(context.Background(), h.dbPath, store.WithBusyTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	h.daemon = bot.New(short, zerolog.New(h.logs).Level(zerolog.TraceLevel), bot.Options{AppToken: h.slack.AppToken(),
		UserToken: h.slack.UserToken(), APIURL: h.slack.APIURL(), ReloadInterval: time.Hour, RetryMax: 200 * time.Millisecond})
	h.start()
	h.wait("connected", func(st *fakeslack.State) bool { return st.Connections() == 1 })

	// Another process takes the write lock and keeps it.
	tx := lockDB(t, h.dbPath)
	ts, env := h.post(fakeslack.Message{Text: "card " + card})
	h.wait("the failure logged", func(*fakeslack.State) bool {
		return strings.Contains(h.logs.String(), "could not record a leak; it is tried again")
	})
	h.slack.Snapshot(func(st *fakeslack.State) {
		if st.Acked(env) {
			t.Error("an envelope whose leak was not recorded was acknowledged")
		}
	})
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	h.wait("redelivered, recorded and deleted", func(st *fakeslack.State) bool {
		d, _ := st.Delivery(env)
		return d.Attempts > 1 && st.Acked(env) && st.SuccessfulDeletes("C0GENERAL01", ts) == 1
	})
	if n := len(h.leaks(store.LeakFilter{})); n != 1 {
		t.Errorf("%d leaks recorded, want 1", n)
	}
}
