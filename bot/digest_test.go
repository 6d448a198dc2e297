package bot_test

import (
	"context"
	"encoding/json"
	"fmt"
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
// accounted for (sent, in a digest or alone) and nothing is lost.
func TestAlertDigests(t *testing.T) {
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
	const n = 30
	for i := range n {
		h.post(fakeslack.Message{Text: fmt.Sprintf("card 6759%012d", 100000000000+i)})
	}
	h.wait("every alert sent", func(*fakeslack.State) bool {
		oc, err := h.store.OutboxCounts(context.Background())
		return err == nil && oc[store.KindAlert][store.OutboxSent] == n && oc[store.KindWebhook][store.OutboxSent] == n
	})
	h.slack.Snapshot(func(st *fakeslack.State) {
		posts, digests := 0, 0
		for _, p := range st.Posts() {
			if p.Channel != "C0ALERTS001" {
				continue
			}
			posts++
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
		if digests == 0 || posts >= n {
			t.Errorf("%d posts to the alert channel (%d digests) for %d alerts", posts, digests, n)
		}
	})
	mu.Lock()
	defer mu.Unlock()
	events := 0
	for _, b := range hooks {
		if b["event"] == "digest" {
			events += len(b["events"].([]any))
			continue
		}
		events++
	}
	if events != n || len(hooks) >= n {
		t.Errorf("webhook: %d POSTs carrying %d events, want fewer POSTs carrying %d", len(hooks), events, n)
	}
}
