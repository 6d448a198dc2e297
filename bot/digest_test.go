package bot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/securechat/securechat/bot"
	"github.com/securechat/securechat/internal/fakeslack"
	"github.com/securechat/securechat/store"
)

// TestAlertDigests: a burst of leaks with an alert channel and a webhook
// is merged into digests instead of one post each; every alert and event is
// accounted for (sent, in a digest or alone) and nothing is lost. A notice
// that is not a leak's (the breaker's, say), in the middle of the burst, is
// never merged.
func TestAlertDigests(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (seconds of real waiting): not in -short")
	}
	var mu sync.Mutex
	var hooks []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		hooks = append(hooks, body)
		mu.Unlock()
	}))
	defer hook.Close()
	h := newHarness(t, setup{opts: bot.Options{Notify: bot.Notify{AlertChannel: "C0ALERTS001", WebhookURL: hook.URL, DigestAbove: 3}}})
	const n = 500
	for i := range n {
		h.post(fakeslack.Message{Text: fmt.Sprintf("card 6759%012d", 100000000000+i)})
		if i == n/2 { // a notice that is not a leak's (as the breaker's): never merged
			if err := h.store.Enqueue(context.Background(), store.OutboxItem{Kind: store.KindAlert,
				Payload: `{"channel":"C0ALERTS001","text":"runaway-rule breaker: regex 9 switched to monitor"}`}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var oc map[string]map[string]int
	h.wait("every alert sent, the other notice among them", func(st *fakeslack.State) bool {
		var err error
		oc, err = h.store.OutboxCounts(context.Background())
		tripped := false
		for _, p := range st.Posts() {
			tripped = tripped || strings.Contains(p.Text, "runaway-rule breaker")
		}
		return err == nil && tripped && oc[store.KindAlert][store.OutboxSent] == n+1 && oc[store.KindWebhook][store.OutboxSent] == n
	})
	h.slack.Snapshot(func(st *fakeslack.State) {
		posts, digests, breaker := 0, 0, 0
		for _, p := range st.Posts() {
			if p.Channel != "C0ALERTS001" {
				continue
			}
			posts++
			if strings.Contains(p.Text, "runaway-rule breaker") {
				breaker++
			}
			if strings.Contains(p.Text, "securechat digest") {
				digests++
				if !strings.Contains(p.Text, "×") || !strings.Contains(p.Text, "*") {
					t.Errorf("a digest without counts or excerpts: %s", p.Text)
				}
				if strings.Contains(p.Text, "6759100000000") {
					t.Errorf("a digest shows a card in full: %s", p.Text)
				}
			}
		}
		t.Logf("%d alerts went out as %d posts to the alert channel, %d of them digests", oc[store.KindAlert][store.OutboxSent], posts, digests)
		if sent := oc[store.KindAlert][store.OutboxSent]; digests == 0 || posts > sent/10 {
			t.Errorf("%d posts to the alert channel (%d digests) for %d alerts", posts, digests, sent)
		}
		if breaker != 1 {
			t.Errorf("the breaker's alert was posted %d times on its own, want 1", breaker)
		}
	})
	mu.Lock()
	defer mu.Unlock()
	events := 0
	for _, b := range hooks {
		switch b["event"] {
		case "digest":
			events += len(b["events"].([]any))
		default:
			events++
		}
	}
	t.Logf("%d webhook events went out in %d POSTs", events, len(hooks))
	if sent := oc[store.KindWebhook][store.OutboxSent]; events != sent || len(hooks) > sent/10 {
		t.Errorf("webhook: %d POSTs carrying %d events, want fewer POSTs carrying the %d sent", len(hooks), events, sent)
	}
}

// TestWebhookDigestRefusedIsSplit: a receiver that refuses digests of more
// than 20 events (HTTP 413) and any body holding one bad event (HTTP 400)
// gets every other event, in smaller digests; only the bad event fails.
// No body passes the digest bound.
func TestWebhookDigestRefusedIsSplit(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (seconds of real waiting): not in -short")
	}
	var mu sync.Mutex
	var delivered, biggest int
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Event  string            `json:"event"`
			Events []json.RawMessage `json:"events"`
		}
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &body)
		mu.Lock()
		defer mu.Unlock()
		biggest = max(biggest, len(raw))
		switch {
		case body.Event == "digest" && len(body.Events) > 20:
			w.WriteHeader(http.StatusRequestEntityTooLarge)
		case strings.Contains(string(raw), "*9999\""): // the bad event's excerpt
			w.WriteHeader(http.StatusBadRequest)
		case body.Event == "digest":
			delivered += len(body.Events)
		default:
			delivered++
		}
	}))
	defer hook.Close()
	h := newHarness(t, setup{opts: bot.Options{Notify: bot.Notify{WebhookURL: hook.URL, DigestAbove: 3}}})
	const n = 200
	for i := range n {
		text := fmt.Sprintf("card 6759%012d", 100000000000+i)
		if i == n/2 {
			text = "card 6759649826439999" // the event the receiver refuses
		}
		h.post(fakeslack.Message{Text: text})
	}
	var oc map[string]map[string]int
	h.wait("every event sent or failed", func(*fakeslack.State) bool {
		var err error
		oc, err = h.store.OutboxCounts(context.Background())
		return err == nil && oc[store.KindWebhook][store.OutboxSent]+oc[store.KindWebhook][store.OutboxFailed] == n
	})
	mu.Lock()
	defer mu.Unlock()
	if oc[store.KindWebhook][store.OutboxFailed] != 1 || delivered != n-1 {
		t.Errorf("webhook: %d sent, %d failed, %d delivered; want %d, 1, %d", oc[store.KindWebhook][store.OutboxSent],
			oc[store.KindWebhook][store.OutboxFailed], delivered, n-1, n-1)
	}
	if biggest > 300<<10 {
		t.Errorf("a %d-byte webhook body; digests are bounded", biggest)
	}
}
