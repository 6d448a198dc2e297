package bot

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
		var m histMsg
		if json.Unmarshal(payload, &m) == nil {
			_ = tsAfter(m.TS, m.LatestReply)
			_ = timeOfTS(m.TS)
		}
	})
}
