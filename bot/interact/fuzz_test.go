package interact

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/securechat/securechat/service"
	"github.com/securechat/securechat/store"
)

// nowhere refuses every request: a fuzzed response_url must never leave
// the machine.
type nowhere struct{}

func (nowhere) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network in fuzzing")
}

func fuzzHandler(f *testing.F) *Handler {
	st, err := store.Open(context.Background(), filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	ctx := context.Background()
	r, err := st.AddRegex(ctx, "tok_[a-z]{8}", "tokens")
	if err != nil {
		f.Fatal(err)
	}
	if _, err := st.RecordLeak(ctx, store.Message{Channel: "C1", User: "U1", TS: "1.1"},
		[]store.Finding{{RegexID: r.ID, Rule: "tokens", Excerpt: "tok_****", Start: 0, End: 12, MAC: "m"}}, true); err != nil {
		f.Fatal(err)
	}
	return New(Options{Service: service.New(st, []string{"U0ADMIN"}, nil), HTTP: &http.Client{Transport: nowhere{}},
		Log: zerolog.Nop(), Budget: time.Second})
}

// FuzzInteractive: whatever payload an "interactive" envelope carries, the
// handler acknowledges it exactly once and does not panic.
func FuzzInteractive(f *testing.F) {
	for _, s := range []string{
		`{"type":"block_actions","user":{"id":"U1"},"actions":[{"action_id":"securechat_rotated","value":"C1 1.1"}],"response_url":"http://127.0.0.1:1/r"}`,
		`{"type":"block_actions","user":{"id":"U0ADMIN"},"actions":[{"action_id":"securechat_allow","value":"C1 1.1 1"}],"container":{"channel_id":"C9","message_ts":"2.2"}}`,
		`{"type":"block_actions","user":{"id":"U0ADMIN"},"actions":[{"action_id":"securechat_pause","value":"99999999999999999999"}]}`,
		`{"type":"block_actions","user":{"id":"U0ADMIN"},"actions":[{"action_id":"securechat_keep","value":"C1"}]}`,
		`{"type":"view_submission","user":{"id":"U1"},"view":{"callback_id":"securechat_report","private_metadata":"{\"ref\":\"C1 1.1\"}","state":{"values":{"reason":{"reason_input":{"value":"x"}}}}}}`,
		`{"type":"view_submission","view":{"callback_id":"securechat_report","private_metadata":"{"}}`,
		`{"type":"block_actions","actions":[]}`, `[]`, `null`, `{`,
	} {
		f.Add([]byte(s))
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		acks := 0
		h.Interactive(context.Background(), payload, func(any) { acks++ })
		if acks != 1 {
			t.Fatalf("acknowledged %d times, want once", acks)
		}
	})
}

// FuzzSlash: whatever a member types after /securechat, the answer comes
// in the one ack, and nothing panics.
func FuzzSlash(f *testing.F) {
	for _, s := range []string{"", "help", "status", "rules", "pause 1", "resume 1", "allow 1", "pause -1", "allow 99999999999999999999999",
		"PAUSE #1", "pause 1 2", "\x00", "résumé 1"} {
		f.Add("U0ADMIN", s)
		f.Add("U1", s)
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, user, text string) {
		acks := 0
		var answer any
		payload := []byte(`{"user_id":` + quote(user) + `,"command":"/securechat","text":` + quote(text) + `}`)
		h.Slash(context.Background(), payload, func(p any) { acks++; answer = p })
		if acks != 1 {
			t.Fatalf("acknowledged %d times, want once", acks)
		}
		if m, ok := answer.(map[string]any); !ok || m["text"] == "" {
			t.Fatalf("/securechat %q answered %v", text, answer)
		}
	})
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
