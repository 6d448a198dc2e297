package message

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseEvent feeds arbitrary Events API payloads, and history messages,
// to the decoder: it must never panic, and what it returns to scan has a
// channel, a ts and text.
func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{
		`{"type":"event_callback","event_id":"Ev1","event":{"type":"message","channel":"C1","user":"U1","text":"card 6759649826438453","ts":"1.2"}}`,
		`{"type":"event_callback","event":{"type":"message","subtype":"message_changed","channel":"C1","message":{"type":"message","user":"U1","text":"x","ts":"1.2","blocks":[{"type":"rich_text","elements":[{"type":"text","text":"y"}]}]}}}`,
		`{"type":"event_callback","event":{"type":"message","subtype":"file_share","channel":"C1","ts":"1.3","files":[{"name":"k.txt","preview":"AKIA..."}],"attachments":[{"fallback":"f","fields":[{"value":"v"}]}]}}`,
		`{"type":"event_callback","event":{"type":"message","subtype":"message_changed","channel":"C1"}}`,
		`{"type":"event_callback","event":null}`,
		`[]`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, _, skip, err := Parse(payload, false)
		if err == nil && skip == "" {
			if c.Channel == "" || c.TS == "" || strings.TrimSpace(c.Text) == "" {
				t.Fatalf("content without channel, ts or text: %+v", c)
			}
		}
		var m Event
		if json.Unmarshal(payload, &m) == nil {
			m.Channel, m.ChannelType = "C1", "channel"
			if c, skip, err := FromEvent(&m, true); err == nil && skip == "" && (c.TS == "" || strings.TrimSpace(c.Text) == "") {
				t.Fatalf("history content without ts or text: %+v", c)
			}
		}
	})
}
