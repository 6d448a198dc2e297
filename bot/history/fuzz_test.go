package history

import (
	"encoding/json"
	"testing"
)

// FuzzHistoryMessage: a message as conversations.history returns it never
// panics the ts helpers the reader pages with.
func FuzzHistoryMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"message","user":"U1","text":"hi","ts":"1764061200.000100","latest_reply":"1764061300.000200"}`,
		`{"ts":"17640612","latest_reply":"x"}`,
		`{"ts":"-1.5"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var m Message
		if json.Unmarshal(payload, &m) == nil {
			_ = TSAfter(m.TS, m.LatestReply)
			_ = TimeOfTS(m.TS)
		}
	})
}
