package interact

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/securechat/securechat/detect"
	"github.com/slack-go/slack"
)

// Action ids of securechat's buttons, and the callback id of its modal.
const (
	ActionNotSecret = "securechat_not_secret" // author notice: value = message ref
	ActionRotated   = "securechat_rotated"    // author notice: value = message ref
	ActionAllow     = "securechat_allow"      // admin alert: value = leak ref
	ActionPause     = "securechat_pause"      // admin alert: value = regex id
	ActionKeep      = "securechat_keep"       // admin alert: value = leak ref
	CallbackReport  = "securechat_report"     // the "Not a secret" modal
	reasonBlock     = "reason"
	reasonInput     = "reason_input"
	outcomeBlock    = "securechat_outcome"
)

// MessageRef names a message: "CHANNEL TS".
func MessageRef(channel, ts string) string { return channel + " " + ts }

// LeakRef names the leaks of one rule in one message: "CHANNEL TS REGEX".
func LeakRef(channel, ts string, regexID int64) string {
	return channel + " " + ts + " " + strconv.FormatInt(regexID, 10)
}

// parseRef reads a MessageRef or a LeakRef (regexID 0 for the former).
func parseRef(v string) (channel, ts string, regexID int64, err error) {
	f := strings.Fields(v)
	if len(f) < 2 || len(f) > 3 {
		return "", "", 0, fmt.Errorf("reference %q is not CHANNEL TS [REGEX]", v)
	}
	if len(f) == 3 {
		if regexID, err = strconv.ParseInt(f[2], 10, 64); err != nil || regexID <= 0 {
			return "", "", 0, fmt.Errorf("reference %q: bad regex id", v)
		}
	}
	return f[0], f[1], regexID, nil
}

func text(t string) map[string]any { return map[string]any{"type": "mrkdwn", "text": t} }

func plain(t string) map[string]any {
	return map[string]any{"type": "plain_text", "text": t, "emoji": true}
}

func section(t string) map[string]any { return map[string]any{"type": "section", "text": text(t)} }

func contextBlock(id, t string) map[string]any {
	b := map[string]any{"type": "context", "elements": []any{text(t)}}
	if id != "" {
		b["block_id"] = id
	}
	return b
}

func button(label, actionID, value, style string) map[string]any {
	b := map[string]any{"type": "button", "text": plain(label), "action_id": actionID, "value": value}
	if style != "" {
		b["style"] = style
	}
	return b
}

func actions(id string, buttons ...any) map[string]any {
	return map[string]any{"type": "actions", "block_id": id, "elements": buttons}
}

func raw(blocks ...any) json.RawMessage {
	b, _ := json.Marshal(blocks)
	return b
}

// AuthorBlocks are the author notice with its two buttons.
func AuthorBlocks(notice, channel, ts string) json.RawMessage {
	ref := MessageRef(channel, ts)
	return raw(section(notice),
		actions("securechat_author",
			button("Not a secret", ActionNotSecret, ref, ""),
			button("I've rotated it", ActionRotated, ref, "primary")))
}

// Finding is one finding an alert offers buttons for.
type Finding struct {
	RegexID int64
	Excerpt string // masked
}

// maxAlertButtons bounds the buttons of one alert (Slack allows 25 per
// actions block).
const maxAlertButtons = 10

// AlertBlocks are an admin alert with its buttons: "Allow this value" per
// distinct rule's finding (the first of each), "Pause rule" per rule, and
// "Keep deleted" when a member reported it (withKeep).
func AlertBlocks(alert, channel, ts string, fs []Finding, withKeep bool) json.RawMessage {
	var bs []any
	seen := map[int64]bool{}
	for _, f := range fs {
		if seen[f.RegexID] || len(bs)+2 > maxAlertButtons {
			continue
		}
		seen[f.RegexID] = true
		label := "Allow this value"
		if len(fs) > 1 {
			label = "Allow " + detect.Shorten(f.Excerpt, 30)
		}
		bs = append(bs, button(label, ActionAllow, LeakRef(channel, ts, f.RegexID), ""),
			button(fmt.Sprintf("Pause rule %d", f.RegexID), ActionPause, strconv.FormatInt(f.RegexID, 10), "danger"))
	}
	if withKeep && len(fs) > 0 {
		bs = append(bs, button("Keep deleted", ActionKeep, LeakRef(channel, ts, fs[0].RegexID), "primary"))
	}
	if len(bs) == 0 {
		return raw(section(alert))
	}
	return raw(section(alert), actions("securechat_alert", bs...))
}

// ButtonValues returns the action id → value of the buttons in Block Kit
// JSON (a message's blocks as posted).
func ButtonValues(blocks string) map[string]string {
	var bs []struct {
		Elements []struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
		} `json:"elements"`
	}
	out := map[string]string{}
	if json.Unmarshal([]byte(blocks), &bs) != nil {
		return out
	}
	for _, b := range bs {
		for _, e := range b.Elements {
			if e.ActionID != "" {
				out[e.ActionID] = e.Value
			}
		}
	}
	return out
}

// SlackBlocks turns Block Kit JSON into slack-go's blocks (empty when the
// JSON is not blocks).
func SlackBlocks(js json.RawMessage) *slack.Blocks {
	var bs slack.Blocks
	_ = json.Unmarshal(js, &bs)
	return &bs
}
