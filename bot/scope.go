package bot

import "strings"

// Scope says which messages are scanned. Empty lists mean no restriction.
type Scope struct {
	Channels        []string // only these channel ids
	ExcludeChannels []string // never these
	Types           []string // channel_type values: channel, group, im, mpim
	ExemptUsers     []string // never messages by these user ids
}

// scope is a Scope ready to apply, with what tells securechat's own posts
// apart.
type scope struct {
	channels, exclude, types, exempt map[string]bool
	self                             string                          // the user token's user id
	isOwn                            func(channel, text string) bool // the notifier's own posts
}

func newScope(s Scope, self string, isOwn func(channel, text string) bool) scope {
	return scope{channels: toSet(s.Channels), exclude: toSet(s.ExcludeChannels), types: toSet(s.Types),
		exempt: toSet(s.ExemptUsers), self: self, isOwn: isOwn}
}

func toSet(ss []string) map[string]bool {
	if len(ss) == 0 {
		return nil
	}
	m := make(map[string]bool, len(ss))
	for _, s := range ss {
		m[strings.TrimSpace(s)] = true
	}
	return m
}

// skip says why a message is not scanned, or "" when it is.
func (sc scope) skip(c content) string {
	switch {
	case sc.channels != nil && !sc.channels[c.Channel]:
		return "channel not in scope.channels"
	case sc.exclude[c.Channel]:
		return "channel in scope.exclude_channels"
	case sc.types != nil && c.ChannelType != "" && !sc.types[c.ChannelType]:
		return "conversation type " + c.ChannelType + " not in scope.types"
	case sc.exempt[c.User]:
		return "author in scope.exempt_users"
	case c.User == sc.self && sc.isOwn != nil && sc.isOwn(c.Channel, c.RawText):
		return "securechat's own notice"
	}
	return ""
}

// conversation reports whether a whole conversation is in scope (its id and
// type; authors are decided per message). The history readers use it to
// choose what to read.
func (sc scope) conversation(id, typ string) bool {
	return (sc.channels == nil || sc.channels[id]) && !sc.exclude[id] && (sc.types == nil || sc.types[typ])
}
