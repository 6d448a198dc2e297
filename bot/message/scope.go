package message

import "strings"

// Scope says which messages are scanned. Empty lists mean no restriction.
type Scope struct {
	Channels        []string // only these channel ids
	ExcludeChannels []string // never these
	Types           []string // channel_type values: channel, group, im, mpim
	ExemptUsers     []string // never messages by these user ids
}

// Filter is a Scope ready to apply, with what tells securechat's own posts
// apart.
type Filter struct {
	channels, exclude, types, exempt map[string]bool
	Self                             string                          // the user token's user id
	isOwn                            func(channel, text string) bool // the notifier's own posts
}

func NewFilter(s Scope, self string, isOwn func(channel, text string) bool) Filter {
	return Filter{channels: ToSet(s.Channels), exclude: ToSet(s.ExcludeChannels), types: ToSet(s.Types),
		exempt: ToSet(s.ExemptUsers), Self: self, isOwn: isOwn}
}

func ToSet(ss []string) map[string]bool {
	if len(ss) == 0 {
		return nil
	}
	m := make(map[string]bool, len(ss))
	for _, s := range ss {
		m[strings.TrimSpace(s)] = true
	}
	return m
}

// Skip says why a message is not scanned, or "" when it is.
func (sc Filter) Skip(c Content) string {
	switch {
	case sc.channels != nil && !sc.channels[c.Channel]:
		return "channel not in scope.channels"
	case sc.exclude[c.Channel]:
		return "channel in scope.exclude_channels"
	case sc.types != nil && c.ChannelType != "" && !sc.types[c.ChannelType]:
		return "conversation type " + c.ChannelType + " not in scope.types"
	case sc.exempt[c.User]:
		return "author in scope.exempt_users"
	case c.User == sc.Self && sc.isOwn != nil && sc.isOwn(c.Channel, c.RawText):
		return "securechat's own notice"
	}
	return ""
}

// Conversation reports whether a whole Conversation is in scope (its id and
// type; authors are decided per message). The history readers use it to
// choose what to read.
func (sc Filter) Conversation(id, typ string) bool {
	return (sc.channels == nil || sc.channels[id]) && !sc.exclude[id] && (sc.types == nil || sc.types[typ])
}
