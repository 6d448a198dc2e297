package bot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/bot/interact"
	"github.com/securechat/securechat/internal/fakeslack"
	"github.com/securechat/securechat/internal/pgtest"
	"github.com/securechat/securechat/internal/syncbuf"
	"github.com/securechat/securechat/store"
)

const (
	botToken  = "xoxb-1000000000001-2000000000002-fakebottoken"
	alerts    = "C0ALERTS001"
	admin1    = "U0ADMIN0001"
	admin2    = "U0ADMIN0002"
	author    = "U0MEMBER001"
	bystander = "U0MEMBER002"
)

// interactiveHarness is a daemon with a bot user, an alert channel and two
// admins, whose member posted a card that was deleted.
func interactiveHarness(t *testing.T) (*harness, string) {
	t.Helper()
	h := newHarness(t, setup{fake: fakeslack.Options{BotToken: botToken},
		opts: bot.Options{AllowlistKey: []byte("allowlist-key"), Admins: []string{admin1, admin2},
			Notify: bot.Notify{Author: "ephemeral", BotToken: botToken, AlertChannel: alerts, NoisyReports: 1}}})
	ts, _ := h.post(fakeslack.Message{User: author, Text: "my card " + card})
	h.wait("the notice and the alert", func(st *fakeslack.State) bool {
		return findPost(st, "chat.postEphemeral", "") != nil && findPost(st, "chat.postMessage", alerts) != nil
	})
	return h, ts
}

func findPost(st *fakeslack.State, method, channel string) *fakeslack.PostCall {
	for _, p := range st.Posts() {
		if p.Method == method && (channel == "" || p.Channel == channel) {
			return &p
		}
	}
	return nil
}

// buttons returns the action_id → value of a message's buttons.
func buttons(t *testing.T, blocks string) map[string]string {
	t.Helper()
	if !json.Valid([]byte(blocks)) {
		t.Fatalf("blocks are not JSON: %q", blocks)
	}
	return interact.ButtonValues(blocks)
}

func (h *harness) click(c fakeslack.Click) (envelopeID, responseURL string) {
	h.t.Helper()
	id, url, err := h.slack.SendClick(c)
	if err != nil {
		h.t.Fatal(err)
	}
	return id, url
}

func responsesTo(st *fakeslack.State, url string) []fakeslack.ResponseCall {
	var out []fakeslack.ResponseCall
	for _, r := range st.Responses() {
		if strings.HasSuffix(url, r.URL) {
			out = append(out, r)
		}
	}
	return out
}

func (h *harness) responseTo(url string) map[string]any {
	h.t.Helper()
	var got map[string]any
	h.wait("an answer on "+url, func(st *fakeslack.State) bool {
		rs := responsesTo(st, url)
		if len(rs) > 0 {
			got = rs[0].Body
		}
		return got != nil
	})
	return got
}

// TestAuthorReportsNotASecret: the notice's "Not a secret" opens a modal
// with bot token; its submission records one report per leak and person,
// updates the notice, and alerts the admins with the buttons; a second
// press (either button) records nothing more; someone else cannot report.
func TestAuthorReportsNotASecret(t *testing.T) {
	h, ts := interactiveHarness(t)
	var notice fakeslack.PostCall
	h.slack.Snapshot(func(st *fakeslack.State) { notice = *findPost(st, "chat.postEphemeral", "") })
	if notice.Token != botToken {
		t.Errorf("the notice was posted with %q, want the bot token", notice.Token)
	}
	bs := buttons(t, notice.Blocks)
	ref := bs[interact.ActionNotSecret]
	if ref != interact.MessageRef("C0GENERAL01", ts) || bs[interact.ActionRotated] != ref {
		t.Fatalf("notice buttons = %v", bs)
	}
	// Another member pressing it (Slack would not show them the ephemeral
	// notice, but a forged or shared payload must not count).
	env, url := h.click(fakeslack.Click{User: bystander, ActionID: interact.ActionNotSecret, Value: ref, Channel: "C0GENERAL01", Ephemeral: true})
	if r := h.responseTo(url); !strings.Contains(r["text"].(string), "Only the author") || r["response_type"] != "ephemeral" {
		t.Errorf("a bystander's report answered %v", r)
	}
	h.wait("ack", acked(env))
	// The author: a modal opens.
	env, url = h.click(fakeslack.Click{User: author, ActionID: interact.ActionNotSecret, Value: ref, Channel: "C0GENERAL01", Ephemeral: true})
	var modal fakeslack.ViewCall
	h.wait("the report modal", func(st *fakeslack.State) bool {
		for _, v := range st.Views() {
			if v.Method == "views.open" {
				modal = v
				return true
			}
		}
		return false
	})
	h.wait("ack", acked(env))
	var view struct {
		CallbackID      string `json:"callback_id"`
		PrivateMetadata string `json:"private_metadata"`
	}
	if err := json.Unmarshal([]byte(modal.View), &view); err != nil || view.CallbackID != interact.CallbackReport || modal.Token != botToken {
		t.Fatalf("modal = %+v (%v)", modal, err)
	}
	sub, err := h.slack.SendViewSubmission(author, view.CallbackID, view.PrivateMetadata,
		map[string]map[string]string{"reason": {"reason_input": "it is the docs' test card " + card}})
	if err != nil {
		t.Fatal(err)
	}
	r := h.responseTo(url)
	if r["replace_original"] != true || !strings.Contains(r["text"].(string), "not a secret") {
		t.Errorf("the notice was updated with %v", r)
	}
	h.wait("ack of the submission", acked(sub))
	h.wait("the report's alert", func(st *fakeslack.State) bool {
		for _, p := range st.Posts() {
			if p.Channel == alerts && strings.Contains(p.Text, "not a secret") && strings.Contains(p.Text, "docs' test card") {
				return buttons(t, p.Blocks)[interact.ActionKeep] != ""
			}
		}
		return false
	})
	h.wait("the noisy-rule flag (threshold 1)", func(st *fakeslack.State) bool {
		for _, p := range st.Posts() {
			if p.Channel == alerts && strings.Contains(p.Text, "looks noisy") && strings.Contains(p.Text, "/securechat pause 1") {
				return true
			}
		}
		return false
	})
	ls := h.leaks(store.LeakFilter{})
	if len(ls) != 1 || ls[0].Report != "not_secret open" || ls[0].Status != store.StatusDeleted {
		t.Fatalf("leak after the report = %+v; the report never restores or allows anything", ls)
	}
	// Pressed again: "I've rotated it" records nothing more.
	_, url = h.click(fakeslack.Click{User: author, ActionID: interact.ActionRotated, Value: ref, Channel: "C0GENERAL01", Ephemeral: true})
	if r := h.responseTo(url); !strings.Contains(r["text"].(string), "already") {
		t.Errorf("a second report answered %v", r)
	}
	// A secret pasted into the reason is masked before it is stored or
	// shown, as any leak's.
	if rs, _ := h.store.Reports(context.Background(), ls[0].ID); len(rs) != 1 || rs[0].Reason != "it is the docs' test card ************8453" {
		t.Errorf("reports = %+v; want one, with the reason masked", rs)
	}
	h.slack.Snapshot(func(st *fakeslack.State) {
		for _, p := range st.Posts() {
			if strings.Contains(p.Text, card) || strings.Contains(p.Blocks, card) {
				t.Errorf("the card reached Slack in full: %s", p.Text)
			}
		}
	})
	if av, _ := h.store.AllowedValues(context.Background()); len(av) != 0 {
		t.Errorf("a report allowlisted %v by itself", av)
	}
}

// alertClick presses a button of the first leak alert.
func (h *harness) alertClick(user, action string) (envelopeID, responseURL string) {
	h.t.Helper()
	var alert fakeslack.PostCall
	h.slack.Snapshot(func(st *fakeslack.State) { alert = *findPost(st, "chat.postMessage", alerts) })
	v := buttons(h.t, alert.Blocks)[action]
	if v == "" {
		h.t.Fatalf("the alert has no %s button: %s", action, alert.Blocks)
	}
	return h.click(fakeslack.Click{User: user, ActionID: action, Value: v, Channel: alerts, MessageTS: alert.TS, Message: &alert})
}

func updates(st *fakeslack.State) []fakeslack.PostCall {
	var out []fakeslack.PostCall
	for _, p := range st.Posts() {
		if p.Method == "chat.update" {
			out = append(out, p)
		}
	}
	return out
}

// TestAdminButtons: a non-admin's click changes nothing and is refused
// ephemerally; two admins pressing "Allow this value" at once allow it
// once, audited, and the alert is updated once; the loser is told who did
// it; "Pause rule" on a rule removed since changes nothing.
func TestAdminButtons(t *testing.T) {
	h, _ := interactiveHarness(t)
	ctx := context.Background()
	_, url := h.alertClick(bystander, interact.ActionAllow)
	if r := h.responseTo(url); !strings.Contains(r["text"].(string), "Only securechat's admins") || r["response_type"] != "ephemeral" {
		t.Errorf("a non-admin's click answered %v", r)
	}
	if av, _ := h.store.AllowedValues(ctx); len(av) != 0 {
		t.Fatalf("a non-admin allowed %v", av)
	}
	// Two admins at once.
	var wg sync.WaitGroup
	urls := make([]string, 2)
	for i, who := range []string{admin1, admin2} {
		wg.Go(func() { _, urls[i] = h.alertClick(who, interact.ActionAllow) })
	}
	wg.Wait()
	h.wait("the alert updated", func(st *fakeslack.State) bool { return len(updates(st)) == 1 })
	h.wait("the other admin told", func(st *fakeslack.State) bool {
		return len(responsesTo(st, urls[0]))+len(responsesTo(st, urls[1])) == 1
	})
	var up fakeslack.PostCall
	var loser []fakeslack.ResponseCall
	h.slack.Snapshot(func(st *fakeslack.State) {
		up = updates(st)[0]
		loser = append(responsesTo(st, urls[0]), responsesTo(st, urls[1])...)
	})
	if !strings.Contains(up.Text, "allowed by <@U0ADMIN000") || up.Token != botToken || up.Channel != alerts {
		t.Errorf("alert update = %+v", up)
	}
	if txt := loser[0].Body["text"].(string); !strings.Contains(txt, "already, by <@U0ADMIN000") {
		t.Errorf("the second admin was told %q", txt)
	}
	if av, _ := h.store.AllowedValues(ctx); len(av) != 1 {
		t.Errorf("allowlist = %+v; want one entry", av)
	}
	log, _ := h.store.AuditLog(ctx, "", 10)
	if len(log) != 1 || log[0].Action != "value.allow" || !strings.HasPrefix(log[0].Actor, "slack:U0ADMIN000") {
		t.Errorf("audit = %+v; want one allow by an admin", log)
	}
	// The same click again: nothing more.
	_, url = h.alertClick(admin1, interact.ActionAllow)
	if r := h.responseTo(url); !strings.Contains(r["text"].(string), "already") {
		t.Errorf("a double click answered %v", r)
	}
	// The rule is removed since the alert: pausing it changes nothing.
	if _, err := h.store.DeleteRegex(ctx, 1, "os:test"); err != nil {
		t.Fatal(err)
	}
	_, url = h.alertClick(admin1, interact.ActionPause)
	if r := h.responseTo(url); !strings.Contains(r["text"].(string), "does not exist") {
		t.Errorf("pause of a removed rule answered %v", r)
	}
	// The allow and the removal; the refused clicks recorded nothing.
	if log, _ := h.store.AuditLog(ctx, "", 10); len(log) != 2 || log[0].Action != "rule.remove" {
		t.Errorf("audit after refused clicks = %+v", log)
	}
}

// TestClickAfterRestart: the buttons of an alert posted by a daemon that
// has stopped since work on the next one (everything is in the database).
func TestClickAfterRestart(t *testing.T) {
	h, _ := interactiveHarness(t)
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	h.daemon = bot.New(h.store, h.daemon.Logger(), h.daemon.Options())
	h.start()
	h.wait("reconnected", func(st *fakeslack.State) bool { return st.Connections() >= 1 })
	env, _ := h.alertClick(admin2, interact.ActionPause)
	h.wait("ack", acked(env))
	h.wait("the alert updated", func(st *fakeslack.State) bool { return len(updates(st)) == 1 })
	if r, _ := h.store.Regex(context.Background(), 1); r.Action != store.ActionMonitor {
		t.Errorf("rule after Pause = %s", r.Action)
	}
}

// TestSlashCommands: answers come in the ack, ephemeral; changes are for
// admins only.
func TestSlashCommands(t *testing.T) {
	h, _ := interactiveHarness(t)
	ask := func(user, text string) string {
		t.Helper()
		env, _, err := h.slack.SendSlashCommand(user, "C0GENERAL01", text)
		if err != nil {
			t.Fatal(err)
		}
		h.wait("ack of /securechat "+text, acked(env))
		var d fakeslack.Delivery
		h.slack.Snapshot(func(st *fakeslack.State) { d, _ = st.Delivery(env) })
		var p struct {
			ResponseType string `json:"response_type"`
			Text         string `json:"text"`
		}
		if err := json.Unmarshal(d.AckPayload, &p); err != nil || p.ResponseType != "ephemeral" {
			t.Fatalf("/securechat %s acked with %s (%v)", text, d.AckPayload, err)
		}
		return p.Text
	}
	for _, tc := range []struct{ user, text, want string }{
		{bystander, "help", "/securechat pause ID"},
		{bystander, "", "Not a secret"},
		{bystander, "status", "1 enabled, 1 deleting"},
		{bystander, "rules", "1 hits"},
		{bystander, "pause 1", "Only securechat's admins"},
		{admin1, "pause x", "is not an id"},
		{admin1, "pause 1", "Regex 1 (rule .*(5018|5020) paused"},
		{admin2, "pause 1", "already, by <@U0ADMIN0001>"},
		{admin1, "pause 99", "Regex 99 does not exist"},
		{admin1, "resume 1", "deletes matching messages again"},
		{admin1, "pause 1", "paused (records and alerts"},
		{admin1, "allow 1", "allowed by <@U0ADMIN0001>"},
		{admin1, "allow 99", "There is no leak 99"},
		{admin1, "frobnicate", "Unknown command"},
	} {
		if got := ask(tc.user, tc.text); !strings.Contains(got, tc.want) {
			t.Errorf("/securechat %s by %s = %q, want it to say %q", tc.text, tc.user, got, tc.want)
		}
	}
	log, _ := h.store.AuditLog(context.Background(), "", 10)
	if len(log) != 4 {
		t.Errorf("audit = %+v; want pause, resume, pause, allow", log)
	}
	// Resuming a disabled rule says it finds nothing until enabled.
	if _, err := h.store.SetRegexEnabled(context.Background(), 1, false, ""); err != nil {
		t.Fatal(err)
	}
	if got := ask(admin1, "resume 1"); !strings.Contains(got, "disabled") || !strings.Contains(got, "securechat regex enable 1") {
		t.Errorf("/securechat resume of a disabled rule = %q", got)
	}
}

// TestAppHome publishes the admins' dashboard to admins and the short page
// to everyone else.
func TestAppHome(t *testing.T) {
	h, _ := interactiveHarness(t)
	for _, u := range []string{admin1, bystander} {
		if _, err := h.slack.SendAppHomeOpened(u); err != nil {
			t.Fatal(err)
		}
	}
	views := map[string]string{}
	h.wait("two Home tabs", func(st *fakeslack.State) bool {
		for _, v := range st.Views() {
			if v.Method == "views.publish" {
				views[v.UserID] = v.View
			}
		}
		return len(views) == 2
	})
	if v := views[admin1]; !strings.Contains(v, "Last leaks") || !strings.Contains(v, "************8453") || strings.Contains(v, card) {
		t.Errorf("admin's Home = %s", v)
	}
	if v := views[bystander]; !strings.Contains(v, "Not a secret") || strings.Contains(v, "Last leaks") {
		t.Errorf("member's Home = %s", v)
	}
}

// TestUnreadableInteractionsAreAcked: an interactive envelope whose payload
// is not valid JSON, and a frame that is not JSON at all, change nothing,
// are acknowledged when they have an envelope id, and the daemon goes on.
func TestUnreadableInteractionsAreAcked(t *testing.T) {
	h, _ := interactiveHarness(t)
	bad := `{"envelope_id":"bad-interactive-1","type":"interactive","accepts_response_payload":false,"payload":{"type":"block_actions","user":"not an object","actions":7}}`
	if err := h.slack.SendRaw(bad); err != nil {
		t.Fatal(err)
	}
	if err := h.slack.SendRaw(`{"envelope_id":"bad-slash-1","type":"slash_commands","payload":"%%%`); err != nil {
		t.Fatal(err)
	}
	h.wait("ack of the unreadable interaction", acked("bad-interactive-1"))
	_, env := h.post(fakeslack.Message{User: author, Text: "again " + card[:4] + "649826438453"})
	h.wait("the next message handled", acked(env))
	if log, _ := h.store.AuditLog(context.Background(), "", 10); len(log) != 0 {
		t.Errorf("unreadable interactions changed %+v", log)
	}
}

// TestNoBotTokenNoButtons: without a bot token the notice has no buttons,
// the daemon says so once, and a /securechat is told why.
func TestNoBotTokenNoButtons(t *testing.T) {
	h := newHarness(t, setup{opts: bot.Options{Notify: bot.Notify{Author: "ephemeral", AlertChannel: alerts}}})
	h.post(fakeslack.Message{User: author, Text: "my card " + card})
	h.wait("the notice", func(st *fakeslack.State) bool { return findPost(st, "chat.postEphemeral", "") != nil })
	h.slack.Snapshot(func(st *fakeslack.State) {
		if p := findPost(st, "chat.postEphemeral", ""); p.Blocks != "" {
			t.Errorf("a notice without a bot user has blocks %s", p.Blocks)
		}
	})
	if n := strings.Count(h.logs.String(), "no bot token"); n != 1 {
		t.Errorf("the daemon said 'no bot token' %d times, want once", n)
	}
	env, _, err := h.slack.SendSlashCommand(author, "C0GENERAL01", "status")
	if err != nil {
		t.Fatal(err)
	}
	h.wait("ack", acked(env))
	h.slack.Snapshot(func(st *fakeslack.State) {
		d, _ := st.Delivery(env)
		if !strings.Contains(string(d.AckPayload), "without its bot user") {
			t.Errorf("/securechat without a bot user acked with %s", d.AckPayload)
		}
	})
}

// TestInteractionsAreNotBehindScanning: while every scanning worker is stuck
// (the database is locked by another process) and messages queue up, a
// /securechat command is still answered: the router gives people their own
// pool. The messages are handled once the lock goes.
func TestInteractionsAreNotBehindScanning(t *testing.T) {
	h := newHarness(t, setup{fake: fakeslack.Options{BotToken: botToken}, noStart: true})
	h.daemon = bot.New(h.store, h.daemon.Logger(), bot.Options{AppToken: h.slack.AppToken(), UserToken: h.slack.UserToken(),
		APIURL: h.slack.APIURL(), ReloadInterval: time.Hour, RetryMax: 200 * time.Millisecond, Workers: 1, QueueSize: 64,
		RecordTimeout: 20 * time.Second, Notify: bot.Notify{BotToken: botToken}})
	h.start()
	h.wait("connected", func(st *fakeslack.State) bool { return st.Connections() == 1 })
	tx := lockDB(t, h.dbPath)
	var envs []string
	for range 10 {
		_, env := h.post(fakeslack.Message{Text: "card " + card})
		envs = append(envs, env)
	}
	cmd, _, err := h.slack.SendSlashCommand(bystander, "C0GENERAL01", "help")
	if err != nil {
		t.Fatal(err)
	}
	h.wait("the command answered", acked(cmd))
	h.slack.Snapshot(func(st *fakeslack.State) {
		for _, e := range envs {
			if st.Acked(e) {
				t.Errorf("message %s was handled while the database was locked: the test did not hold the scanning up", e)
			}
		}
		if d, _ := st.Delivery(cmd); !strings.Contains(string(d.AckPayload), "/securechat pause ID") {
			t.Errorf("/securechat help answered %s", d.AckPayload)
		}
	})
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	h.wait("every message handled once the lock went", acked(envs...))
}

// TestNoticeFallsBackToADMWithButtons: where the bot is not a member of the
// conversation, Slack refuses its ephemeral notice (not_in_channel); the
// author gets the same notice, buttons included, as a direct message.
func TestNoticeFallsBackToADMWithButtons(t *testing.T) {
	h := newHarness(t, setup{fake: fakeslack.Options{BotToken: botToken},
		opts: bot.Options{Admins: []string{admin1}, Notify: bot.Notify{Author: "ephemeral", BotToken: botToken}}})
	h.slack.Script("chat.postEphemeral", fakeslack.Response{Error: "not_in_channel"})
	ts, _ := h.post(fakeslack.Message{User: author, Text: "my card " + card})
	h.wait("the notice as a DM", func(st *fakeslack.State) bool {
		for _, p := range st.Posts() {
			if p.Method == "chat.postMessage" && strings.HasPrefix(p.Channel, "D") && p.Token == botToken {
				return buttons(t, p.Blocks)[interact.ActionNotSecret] == interact.MessageRef("C0GENERAL01", ts)
			}
		}
		return false
	})
}

// TestTwoAdminsOnTwoReplicas: two daemons share one PostgreSQL database
// and the app's connections; two admins press "Allow this value" and
// "Pause rule" on the same alert at once, each click reaching another
// replica (the fake Slack hands envelopes to the connections in turn). One value is allowed and one rule paused, each audited once,
// and whoever came second is told who came first.
func TestTwoAdminsOnTwoReplicas(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	fake := fakeslack.New(fakeslack.Options{BotToken: botToken, PingInterval: 200 * time.Millisecond})
	t.Cleanup(fake.Close)
	logs := &syncbuf.Buffer{}
	var stores []*store.Store
	for i := range 2 {
		st, err := store.Open(ctx, url, store.WithInstance(fmt.Sprintf("replica-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		stores = append(stores, st)
	}
	if _, err := stores[0].AddRegex(ctx, maestro, "cards"); err != nil {
		t.Fatal(err)
	}
	for i, st := range stores {
		d := bot.New(st, zerolog.New(logs).With().Int("replica", i).Logger(), bot.Options{AppToken: fake.AppToken(), UserToken: fake.UserToken(),
			APIURL: fake.APIURL(), ReloadInterval: 100 * time.Millisecond, RetryMax: 200 * time.Millisecond, Connections: 1,
			Instance: fmt.Sprintf("replica-%d", i), AllowlistKey: []byte("allowlist-key"), Admins: []string{admin1, admin2},
			Notify: bot.Notify{Author: "ephemeral", BotToken: botToken, AlertChannel: alerts}})
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- d.Run(runCtx) }()
		t.Cleanup(func() {
			cancel()
			<-done
			if t.Failed() {
				t.Logf("logs:\n%s", logs.String())
			}
		})
	}
	h := &harness{t: t, slack: fake, store: stores[0], logs: logs}
	h.wait("both replicas connected", func(st *fakeslack.State) bool { return st.Connections() == 2 })
	h.post(fakeslack.Message{User: author, Text: "my card " + card})
	h.wait("the alert", func(st *fakeslack.State) bool { return findPost(st, "chat.postMessage", alerts) != nil })
	for _, action := range []string{interact.ActionAllow, interact.ActionPause} {
		var envs, urls [2]string
		var wg sync.WaitGroup
		for i, who := range []string{admin1, admin2} {
			wg.Go(func() { envs[i], urls[i] = h.alertClick(who, action) })
		}
		wg.Wait()
		h.wait("both clicks acknowledged", acked(envs[0], envs[1]))
		h.wait("the other admin told", func(st *fakeslack.State) bool {
			return len(responsesTo(st, urls[0]))+len(responsesTo(st, urls[1])) >= 1
		})
	}
	h.wait("the alert updated twice", func(st *fakeslack.State) bool { return len(updates(st)) == 2 })
	if av, _ := stores[1].AllowedValues(ctx); len(av) != 1 {
		t.Errorf("allowlist = %+v; want one entry", av)
	}
	if r, _ := stores[1].Regex(ctx, 1); r.Action != store.ActionMonitor {
		t.Errorf("rule = %s; want paused", r.Action)
	}
	log, _ := stores[1].AuditLog(ctx, "", 10)
	if len(log) != 2 {
		t.Errorf("audit = %+v; want one allow and one pause", log)
	}
	// Both replicas answered clicks: the test is about replicas racing.
	for _, r := range []string{`"replica":0`, `"replica":1`} {
		answered := false
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, r) && strings.Contains(line, "an alert button changed") {
				answered = true
			}
		}
		if !answered {
			t.Errorf("replica %s answered no click; the clicks did not reach both replicas", r)
		}
	}
}
