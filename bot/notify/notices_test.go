package notify

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/securechat/securechat/store"
)

func TestNoticeTexts(t *testing.T) {
	msg := store.Message{Channel: "C1", User: "U1", TS: "1.2"}
	fs := []store.Finding{
		{RegexID: 3, Rule: "cards <visa>", Excerpt: "4111********1111"},
		{RegexID: 3, Rule: "cards <visa>", Excerpt: "4111********1111"},
		{RegexID: 4, Rule: "", Excerpt: "AK**…**XY"},
	}
	alert := alertText(msg, fs, store.ActionDelete, "could not be deleted", "cant_delete_message")
	for _, want := range []string{"<#C1>", "<@U1>", "regex 3 (cards &lt;visa&gt;) `4111********1111`", "regex 4", "Reason: cant_delete_message."} {
		if !strings.Contains(alert, want) {
			t.Errorf("alert %q lacks %q", alert, want)
		}
	}
	if strings.Count(alert, "regex 3") != 1 {
		t.Errorf("alert repeats a finding: %q", alert)
	}
	if got := authorText("{rule} in {channel} for {user}: {excerpt}", msg, fs[2:]); got != "regex 4 in C1 for U1: AK**…**XY" {
		t.Errorf("author text = %q", got)
	}
	for _, tt := range []struct{ action, outcome, reason, want string }{
		{store.ActionMonitor, "recorded", "", "monitored"},
		{store.ActionDelete, "deleted", "", "deleted"},
		{store.ActionDelete, "could not be deleted", "cant_delete_message", "delete_failed"},
	} {
		ev := webhookEvent(msg, fs, tt.action, tt.outcome, tt.reason, time.Unix(10, 0))
		if ev.Outcome != tt.want || len(ev.Findings) != 3 || !ev.Time.Equal(time.Unix(10, 0)) {
			t.Errorf("webhook event for %s/%s = %+v, want outcome %s", tt.action, tt.outcome, ev, tt.want)
		}
	}
	n := Notices{Cfg: Config{Author: "dm", AuthorMessage: "{rule}", AlertChannel: "CA", WebhookURL: "https://hook"}, Now: func() time.Time { return time.Unix(0, 0) }}
	items := append(n.Author(msg, fs), n.Outcome(msg, fs, store.ActionDelete, "deleted", "")...)
	kinds := []string{}
	for _, it := range items {
		var p Notice
		if err := json.Unmarshal([]byte(it.Payload), &p); err != nil {
			t.Fatalf("payload %q: %v", it.Payload, err)
		}
		kinds = append(kinds, it.Kind)
	}
	if strings.Join(kinds, ",") != store.KindAuthor+","+store.KindAlert+","+store.KindWebhook {
		t.Errorf("kinds = %v", kinds)
	}
	if (Notices{}).Any() || len((Notices{}).Author(msg, fs)) != 0 || len((Notices{}).Outcome(msg, fs, "delete", "deleted", "")) != 0 {
		t.Error("notices with nothing configured built something")
	}
}

func TestAlertOfHundredsOfFindingsIsCapped(t *testing.T) {
	var fs []store.Finding
	for i := range 300 {
		fs = append(fs, store.Finding{RegexID: int64(i), Rule: strings.Repeat("r", 200), Excerpt: "AK****************L2"})
	}
	text := alertText(store.Message{Channel: "C1", User: "U1", TS: "1.2"}, fs, store.ActionDelete, "deleted", "")
	if len(text) > 4000 || !strings.Contains(text, "and 295 more (300 findings in all") {
		t.Errorf("alert of 300 findings is %d bytes: %.300s…", len(text), text)
	}
	if strings.Count(text, "regex ") != 5 {
		t.Errorf("alert lists %d findings, want the first 5", strings.Count(text, "regex "))
	}
	ev := webhookEvent(store.Message{Channel: "C1", TS: "1.2"}, fs[:1], store.ActionDelete, "deleted", "", time.Unix(5, 0))
	if ev.ID == "" || ev.ID != webhookEvent(store.Message{Channel: "C1", TS: "1.2"}, fs[:1], store.ActionDelete, "deleted", "", time.Unix(5, 0)).ID {
		t.Errorf("webhook id %q is not stable", ev.ID)
	}
}
