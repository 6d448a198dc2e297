package bot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/internal/fakeslack"
	"github.com/securechat/securechat/store"
)

// webhookSink is a webhook receiver on 127.0.0.1 that records the events it
// accepts and answers with scripted statuses first.
type webhookSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	events []bot.WebhookEvent
	script []int
	calls  int
}

func newWebhookSink(t *testing.T, script ...int) *webhookSink {
	w := &webhookSink{script: script}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.calls++
		if len(w.script) > 0 {
			status := w.script[0]
			w.script = w.script[1:]
			rw.WriteHeader(status)
			return
		}
		var ev bot.WebhookEvent
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &ev) != nil {
			rw.WriteHeader(http.StatusBadRequest)
			return
		}
		w.events = append(w.events, ev)
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhookSink) got() ([]bot.WebhookEvent, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]bot.WebhookEvent(nil), w.events...), w.calls
}

func postsTo(st *fakeslack.State, method, channel string) []fakeslack.PostCall {
	var out []fakeslack.PostCall
	for _, p := range st.Posts() {
		if p.Method == method && (channel == "" || p.Channel == channel) {
			out = append(out, p)
		}
	}
	return out
}

func TestDeletionNotifiesAuthorAdminsAndWebhook(t *testing.T) {
	hook := newWebhookSink(t)
	h := newHarness(t, setup{opts: bot.Options{Notify: bot.Notify{Author: "ephemeral", AlertChannel: "C0ALERTS01",
		WebhookURL: hook.srv.URL, AuthorMessage: "Removed: {rule} `{excerpt}` in <#{channel}>, <@{user}>. Rotate it."}}})
	ts, _ := h.post(fakeslack.Message{Channel: "C0GENERAL01", User: "U0BOB", Text: "card " + card})
	h.wait("deleted, author told, alert posted", func(st *fakeslack.State) bool {
		return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 &&
			len(postsTo(st, "chat.postEphemeral", "C0GENERAL01")) == 1 && len(postsTo(st, "chat.postMessage", "C0ALERTS01")) == 1
	})
	h.slack.Snapshot(func(st *fakeslack.State) {
		eph := postsTo(st, "chat.postEphemeral", "C0GENERAL01")[0]
		if eph.User != "U0BOB" || eph.Text != "Removed: rule .*(5018|5020 `************8453` in <#C0GENERAL01>, <@U0BOB>. Rotate it." {
			t.Errorf("author notice = %+v", eph)
		}
		alert := postsTo(st, "chat.postMessage", "C0ALERTS01")[0]
		for _, want := range []string{"<#C0GENERAL01>", "<@U0BOB>", "regex 1", "************8453", "Action: delete; deleted"} {
			if !strings.Contains(alert.Text, want) {
				t.Errorf("alert %q lacks %q", alert.Text, want)
			}
		}
		for _, p := range st.Posts() {
			if strings.Contains(p.Text, card) {
				t.Errorf("a notification carries the secret: %+v", p)
			}
		}
	})
	h.wait("webhook", func(*fakeslack.State) bool { evs, _ := hook.got(); return len(evs) == 1 })
	evs, _ := hook.got()
	ev := evs[0]
	if ev.Event != "leak" || ev.Outcome != "deleted" || ev.Action != "delete" || ev.TS != ts || ev.User != "U0BOB" ||
		len(ev.Findings) != 1 || ev.Findings[0].Excerpt != "************8453" {
		t.Errorf("webhook event = %+v", ev)
	}
}

func TestMonitorRuleRecordsAndAlertsWithoutDeleting(t *testing.T) {
	hook := newWebhookSink(t)
	h := newHarness(t, setup{patterns: []string{}, opts: bot.Options{Notify: bot.Notify{Author: "ephemeral", AlertChannel: "C0ALERTS01", WebhookURL: hook.srv.URL}}})
	if _, err := h.store.AddRule(context.Background(), store.Regex{Pattern: maestro, Description: "Maestro", Enabled: true, Action: store.ActionMonitor}); err != nil {
		t.Fatal(err)
	}
	h.wait("rule loaded", func(*fakeslack.State) bool { return strings.Contains(h.logs.String(), `"rules":1`) })
	ts, env := h.post(fakeslack.Message{Text: "card " + card})
	h.wait("alert", func(st *fakeslack.State) bool {
		return st.Acked(env) && len(postsTo(st, "chat.postMessage", "C0ALERTS01")) == 1
	})
	h.wait("webhook", func(*fakeslack.State) bool { evs, _ := hook.got(); return len(evs) == 1 })
	evs, _ := hook.got()
	if evs[0].Outcome != "monitored" || evs[0].Action != "monitor" {
		t.Errorf("webhook = %+v", evs[0])
	}
	h.slack.Snapshot(func(st *fakeslack.State) {
		if st.DeleteCalls("C0GENERAL01", ts) != 0 {
			t.Error("a monitored leak was deleted")
		}
		if len(postsTo(st, "chat.postEphemeral", "")) != 0 {
			t.Error("the author of a monitored leak was told")
		}
		if a := postsTo(st, "chat.postMessage", "C0ALERTS01")[0]; !strings.Contains(a.Text, "Action: monitor; recorded (monitor: not deleted)") {
			t.Errorf("alert %q", a.Text)
		}
	})
	ls := h.leaks(store.LeakFilter{})
	if len(ls) != 1 || ls[0].Action != store.ActionMonitor || ls[0].Status != store.LeakMonitored {
		t.Errorf("leaks = %+v", ls)
	}
}

func TestGlobalMonitorModeNeverDeletes(t *testing.T) {
	h := newHarness(t, setup{opts: bot.Options{Mode: bot.ModeMonitor}})
	ts, env := h.post(fakeslack.Message{Text: "card " + card})
	h.wait("acked", acked(env))
	h.wait("recorded", func(*fakeslack.State) bool { return len(h.leaks(store.LeakFilter{Action: store.ActionMonitor})) == 1 })
	h.slack.Snapshot(func(st *fakeslack.State) {
		if st.DeleteCalls("C0GENERAL01", ts) != 0 {
			t.Error("monitor mode deleted a message")
		}
	})
}

func TestNotificationFailuresAreRetriedAndNeverBlockDeletion(t *testing.T) {
	hook := newWebhookSink(t, http.StatusInternalServerError, http.StatusServiceUnavailable)
	h := newHarness(t, setup{opts: bot.Options{Notify: bot.Notify{Author: "ephemeral", WebhookURL: hook.srv.URL}}})
	// The ephemeral cannot be posted: the notice falls back to a DM.
	h.slack.Script("chat.postEphemeral", fakeslack.Response{Error: "channel_not_found"})
	ts, _ := h.post(fakeslack.Message{User: "U0CAROL", Text: "card " + card})
	h.wait("deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	h.wait("DM fallback", func(st *fakeslack.State) bool {
		return len(postsTo(st, "conversations.open", "")) == 1 && len(postsTo(st, "chat.postMessage", "D0CAROL")) == 1
	})
	h.wait("webhook delivered on the third try", func(*fakeslack.State) bool { evs, calls := hook.got(); return len(evs) == 1 && calls == 3 })
}

func TestScope(t *testing.T) {
	h := newHarness(t, setup{opts: bot.Options{Scope: bot.Scope{
		ExcludeChannels: []string{"C0RANDOM001"}, Types: []string{"channel", "group"}, ExemptUsers: []string{"U0SECTEAM"}}}})
	var envs []string
	var skipped []string
	for _, m := range []fakeslack.Message{
		{Channel: "C0RANDOM001", Text: "card " + card},
		{Channel: "D0DIRECT001", ChannelType: "im", Text: "card " + card},
		{User: "U0SECTEAM", Text: "test card " + card},
	} {
		ts, env := h.post(m)
		envs, skipped = append(envs, env), append(skipped, ts)
	}
	inTS, _ := h.post(fakeslack.Message{Channel: "C0PRIVATE01", ChannelType: "group", Text: "card " + card})
	h.wait("in-scope message deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0PRIVATE01", inTS) == 1 })
	h.wait("out-of-scope acked", acked(envs...))
	if n := len(h.leaks(store.LeakFilter{})); n != 1 {
		t.Errorf("%d leaks recorded, want only the in-scope one", n)
	}
}

func TestAllowlistedValueNeverFiresAgain(t *testing.T) {
	h := newHarness(t, setup{opts: bot.Options{AllowlistKey: []byte("test-allowlist-key-0123456789")}})
	const testCard, otherCard = "6759649826438453", "6761000410900000"
	ts1, _ := h.post(fakeslack.Message{Text: "docs test card " + testCard})
	h.wait("first deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts1) == 1 })
	ls := h.leaks(store.LeakFilter{})
	if len(ls) != 1 || !ls[0].Allowable {
		t.Fatalf("leaks = %+v, want one with a fingerprint", ls)
	}
	if _, err := h.store.AllowValue(context.Background(), ls[0].ID, "docs test card"); err != nil {
		t.Fatal(err)
	}
	h.wait("allowlist reloaded", func(*fakeslack.State) bool { return strings.Contains(h.logs.String(), `"allowlisted_values":1`) })
	ts2, env2 := h.post(fakeslack.Message{Text: "again " + testCard[:8] + "-" + testCard[8:]})
	ts3, _ := h.post(fakeslack.Message{Text: "real one " + otherCard})
	h.wait("other value deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts3) == 1 })
	h.wait("allowed value acked", acked(env2))
	h.slack.Snapshot(func(st *fakeslack.State) {
		if st.DeleteCalls("C0GENERAL01", ts2) != 0 {
			t.Error("the allowlisted value was deleted again")
		}
	})
	if n := len(h.leaks(store.LeakFilter{})); n != 2 {
		t.Errorf("%d leaks, want 2 (the allowlisted value not recorded again)", n)
	}
	files, _ := filepath.Glob(h.dbPath + "*")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, secret := range []string{testCard, otherCard} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds %s in plain text", filepath.Base(f), secret)
			}
		}
	}
}

func TestMetricsAndHealth(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, setup{opts: bot.Options{MetricsListener: ln}})
	base := "http://" + ln.Addr().String()
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	ts, _ := h.post(fakeslack.Message{Text: "card " + card})
	h.post(fakeslack.Message{Text: "clean"})
	h.wait("deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	h.wait("metrics", func(*fakeslack.State) bool {
		_, body := get("/metrics")
		return strings.Contains(body, `securechat_deletions_total{result="deleted"} 1`) &&
			strings.Contains(body, `securechat_events_total{outcome="clean"} 1`)
	})
	_, body := get("/metrics")
	for _, want := range []string{
		`securechat_leaks_total{action="delete",regex_id="1"} 1`,
		`securechat_events_total{outcome="leak"} 1`,
		`securechat_events_total{outcome="clean"} 1`,
		`securechat_events_acked_total `,
		`securechat_scan_duration_seconds_count 2`,
		`securechat_rules 1`,
		`securechat_connected 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d while connected", code)
	}
	// Slack goes away: not ready, still healthy.
	h.slack.Script("apps.connections.open", repeatResp(fakeslack.Response{Status: 500}, 50)...)
	h.slack.Drop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := get("/readyz")
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d after the connection dropped", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d while only Slack is down", code)
	}
	h.slack.ClearScript("apps.connections.open")
	// The database goes away: not healthy.
	h.store.Close()
	if code, body := get("/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "database") {
		t.Errorf("/healthz = %d %q without a database", code, body)
	}
}

func repeatResp(r fakeslack.Response, n int) []fakeslack.Response {
	out := make([]fakeslack.Response, n)
	for i := range out {
		out[i] = r
	}
	return out
}

func TestWebhookErrorsDoNotRevealItsURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/hooks/SECRETPATHTOKEN"
	ln.Close() // nothing listens: every POST fails
	h := newHarness(t, setup{opts: bot.Options{Notify: bot.Notify{WebhookURL: dead}}})
	ts, _ := h.post(fakeslack.Message{Text: "card " + card})
	h.wait("deleted", func(st *fakeslack.State) bool { return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 })
	h.wait("a failed webhook attempt", func(*fakeslack.State) bool { return strings.Contains(h.logs.String(), `"kind":"webhook"`) })
	if strings.Contains(h.logs.String(), "SECRETPATHTOKEN") {
		t.Error("the logs reveal the webhook URL")
	}
	b, _ := os.ReadFile(h.dbPath + "-wal")
	if bytes.Contains(b, []byte("SECRETPATHTOKEN")) {
		t.Error("the database records the webhook URL")
	}
}

// TestOwnAlertsAreNotScanned posts alerts with the user token into a channel
// the daemon listens to, with a rule that matches the masked excerpt in the
// alert itself: the alert must not be scanned, or every alert would cause
// another.
func TestOwnAlertsAreNotScanned(t *testing.T) {
	h := newHarness(t, setup{
		patterns: []string{maestro, `[*]{8}[0-9]{4}`},
		fake:     fakeslack.Options{EchoPosts: true},
		opts:     bot.Options{Notify: bot.Notify{AlertChannel: "C0ALERTS01"}},
	})
	ts, _ := h.post(fakeslack.Message{Text: "card " + card})
	h.wait("deleted and alerted", func(st *fakeslack.State) bool {
		return st.SuccessfulDeletes("C0GENERAL01", ts) == 1 && len(postsTo(st, "chat.postMessage", "C0ALERTS01")) == 1
	})
	h.wait("the alert's own event acked", func(st *fakeslack.State) bool { return st.Unacked() == 0 })
	time.Sleep(300 * time.Millisecond) // room for a loop to show
	h.slack.Snapshot(func(st *fakeslack.State) {
		if n := len(postsTo(st, "chat.postMessage", "C0ALERTS01")); n != 1 {
			t.Errorf("%d alerts: securechat scanned its own alert", n)
		}
		if n := len(st.Deletes()); n != 1 {
			t.Errorf("%d chat.delete calls, want only the leak's", n)
		}
	})
	if !strings.Contains(h.logs.String(), "securechat's own notice") {
		t.Error("the alert's event was not recognised as our own")
	}
}
