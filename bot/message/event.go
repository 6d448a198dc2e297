// Package message reads a Slack message event (live, or from history) into
// what securechat scans: the text of the message, its attachments, blocks and
// files, and where it lives; and it applies the scope (channels, types,
// exempt users, securechat's own posts).
package message

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/securechat/securechat/detect"
)

// Content is what the daemon scans of one message event, and where the
// message lives.
type Content struct {
	Channel     string
	ChannelType string
	User        string
	TS          string // the ts to delete: message.ts for an edit
	Subtype     string
	Text        string // normalised text of text, attachments and blocks
	RawText     string // the text field as delivered
}

// Why an event is not scanned.
const (
	SkipNotMessage = "not a message event"
	SkipSubtype    = "non-content subtype"
	SkipBot        = "bot message"
	SkipEmpty      = "no text"
)

// ErrMalformed marks an event that cannot be understood.
var ErrMalformed = errors.New("malformed event")

// Callback is decoded in one pass (messages can be 40 KB; every pass
// counts): the parts of attachments, blocks and files are kept as generic
// values, whatever their shape.
type Callback struct {
	Type    string `json:"type"`
	EventID string `json:"event_id"`
	Event   *Event `json:"event"`
}

type Event struct {
	Type        string `json:"type"`
	Subtype     string `json:"subtype"`
	Channel     string `json:"channel"`
	ChannelType string `json:"channel_type"`
	User        string `json:"user"`
	BotID       string `json:"bot_id"`
	Text        string `json:"text"`
	TS          string `json:"ts"`
	Attachments any    `json:"attachments"`
	Blocks      any    `json:"blocks"`
	Files       any    `json:"files"`
	Message     *Event `json:"message"`
}

// scannedSubtypes carry text a member wrote (bot_message is decided
// separately). Everything else (joins, topics, message_deleted, the
// message_replied bookkeeping…) is skipped.
var scannedSubtypes = map[string]bool{
	"":                 true,
	"thread_broadcast": true,
	"me_message":       true,
	"file_share":       true,
	"bot_message":      true,
	"message_changed":  true,
}

// Parse reads the Events API callback of an events_api envelope. It
// decodes only what it needs, leniently, so that a block or attachment shape
// slack-go does not know cannot hide a message from the scan. It returns
// a content to scan with an empty reason, or a reason for an event
// to acknowledge and skip, or an error wrapping errMalformed. The second
// result is the callback's event_id, for logs.
func Parse(payload []byte, scanBots bool) (Content, string, string, error) {
	var cb Callback
	if err := json.Unmarshal(payload, &cb); err != nil {
		var id struct {
			EventID string `json:"event_id"`
		}
		_ = json.Unmarshal(payload, &id)
		return Content{}, id.EventID, "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if cb.Type != "event_callback" || cb.Event == nil {
		return Content{}, cb.EventID, SkipNotMessage, nil
	}
	c, skip, err := FromEvent(cb.Event, scanBots)
	return c, cb.EventID, skip, err
}

// FromEvent reads one message event (or, from the history methods, one
// message with Channel and ChannelType filled in): the content to scan with
// an empty reason, or a reason to skip it, or an error wrapping
// errMalformed. A skipped message still carries its channel and ts when it
// has them, for the catch-up's watermarks.
func FromEvent(ev *Event, scanBots bool) (Content, string, error) {
	if ev.Type != "message" {
		return Content{}, SkipNotMessage, nil
	}
	where := Content{Channel: ev.Channel, ChannelType: ev.ChannelType, TS: ev.TS}
	if !scannedSubtypes[ev.Subtype] {
		return where, SkipSubtype, nil
	}
	msg := ev
	if ev.Subtype == "message_changed" {
		if ev.Message == nil {
			return Content{}, "", fmt.Errorf("%w: message_changed without message", ErrMalformed)
		}
		msg = ev.Message
		where.TS = msg.TS
		if !scannedSubtypes[msg.Subtype] {
			return where, SkipSubtype, nil
		}
	}
	if (msg.Subtype == "bot_message" || msg.BotID != "") && !scanBots {
		return where, SkipBot, nil
	}
	if ev.Channel == "" || msg.TS == "" {
		return Content{}, "", fmt.Errorf("%w: message without channel or ts", ErrMalformed)
	}
	c := Content{
		Channel:     ev.Channel,
		ChannelType: ev.ChannelType,
		User:        msg.User,
		TS:          msg.TS,
		Subtype:     ev.Subtype,
		Text:        messageText(msg),
		RawText:     msg.Text,
	}
	if c.User == "" {
		c.User = msg.BotID
	}
	if strings.TrimSpace(c.Text) == "" {
		return where, SkipEmpty, nil
	}
	return c, "", nil
}

// textKeys are the fields of attachments, blocks and files whose string
// values people can read.
var textKeys = map[string]bool{
	"text": true, "fallback": true, "pretext": true, "title": true, "value": true,
	"footer": true, "author_name": true, "url": true, "title_link": true, "alt_text": true,
	"name": true, "preview": true, "initial_comment": true,
}

// messageText joins the normalised message text with the readable text of
// its attachments, blocks and files. A part already contained in what came
// before (rich_text blocks repeat the message text) is left out, so one
// secret is not reported twice. Only Slack markup is normalised: the text
// field, attachments and mrkdwn text objects are escaped mrkdwn, while
// rich_text elements and file fields carry the text as typed (a literal <
// or & there is not markup).
func messageText(m *Event) string {
	var b strings.Builder
	b.WriteString(detect.Normalize(m.Text))
	emit := func(s string, markup bool) {
		if markup {
			s = detect.Normalize(s)
		}
		s = strings.TrimSpace(s)
		if s == "" || strings.Contains(b.String(), s) {
			return
		}
		b.WriteByte('\n')
		b.WriteString(s)
	}
	collect(m.Attachments, "", true, emit)
	collect(m.Blocks, "", false, emit)
	collect(m.Files, "", false, emit)
	return b.String()
}

// collect emits the readable strings of v; markup says whether they are
// Slack mrkdwn (escaped) rather than plain text.
func collect(v any, key string, markup bool, emit func(string, bool)) {
	switch x := v.(type) {
	case string:
		if textKeys[key] {
			emit(x, markup)
		}
	case []any:
		for _, e := range x {
			collect(e, key, markup, emit)
		}
	case map[string]any:
		if t, _ := x["type"].(string); t == "mrkdwn" {
			markup = true // a text object of a section, context or header block
		}
		// Sorted, so that the same event always yields the same text and
		// the same offsets (redeliveries must deduplicate).
		for _, k := range slices.Sorted(maps.Keys(x)) {
			collect(x[k], k, markup, emit)
		}
	}
}
