package fakeslack

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// history is the fake's side of the conversations the token's user is in,
// the names of users, and the history methods; its fields are under
// Server.mu.
type history struct {
	convs  map[string]*Conversation
	users  map[string]string // id → name
	calls  map[string]int    // method → calls answered (429s included)
	served int               // messages returned by conversations.history and .replies
	window map[string]time.Time
	inWin  map[string]int
}

// Conversation is a conversation the token's user is a member of.
type Conversation struct {
	ID, Name string
	Type     string // channel, group, im, mpim
	User     string // the other member of an im
	Archived bool
}

func (h *history) init() {
	h.convs = map[string]*Conversation{}
	h.users = map[string]string{}
	h.calls = map[string]int{}
	h.window = map[string]time.Time{}
	h.inWin = map[string]int{}
}

// posted registers the conversation of a new message, named after its id
// unless SetConversation named it.
func (h *history) posted(channel, typ string) {
	if h.convs[channel] == nil {
		name := strings.ToLower(channel)
		if channel == "C0GENERAL01" {
			name = "general"
		}
		h.convs[channel] = &Conversation{ID: channel, Name: name, Type: typ}
	}
}

// SetConversation adds or changes a conversation the token's user is in.
func (s *Server) SetConversation(c Conversation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.Type == "" {
		c.Type = "channel"
	}
	s.history.convs[c.ID] = &c
}

// SetUser names a user for users.info.
func (s *Server) SetUser(id, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.history.users[id] = name
}

// Calls counts the calls of a Web API method answered so far (history
// methods only).
func (st *State) Calls(method string) int { return st.s.history.calls[method] }

// HistoryServed counts the messages conversations.history and
// conversations.replies returned.
func (st *State) HistoryServed() int { return st.s.history.served }

// PostQuiet posts a message without sending its event: what members post
// while no daemon is connected. It returns the message's ts.
func (s *Server) PostQuiet(m Message) (string, error) {
	p, err := s.Prepare(m)
	if err != nil {
		return "", err
	}
	return p.TS, nil
}

// historyCall counts a call, answers a scripted or rate-limited one, checks
// the token, and reports whether the handler should go on.
func (s *Server) historyCall(w http.ResponseWriter, r *http.Request, method string) bool {
	s.mu.Lock()
	s.history.calls[method]++
	wait := time.Duration(0)
	if s.opts.MethodLimit > 0 {
		win := s.opts.MethodWindow
		if win <= 0 {
			win = time.Minute
		}
		now := time.Now()
		if now.Sub(s.history.window[method]) >= win {
			s.history.window[method], s.history.inWin[method] = now, 0
		}
		if s.history.inWin[method] >= s.opts.MethodLimit {
			wait = s.history.window[method].Add(win).Sub(now)
		} else {
			s.history.inWin[method]++
		}
	}
	s.notify()
	s.mu.Unlock()
	if _, done := s.answerScripted(w, method); done {
		return false
	}
	if wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"ok": false, "error": "ratelimited"})
		return false
	}
	switch tok := token(r); {
	case tok == "":
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "not_authed"})
		return false
	case tok != s.opts.UserToken:
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_auth"})
		return false
	}
	return true
}

// param reads a form or query parameter (slack-go sends forms; curl users
// send queries).
func param(r *http.Request, k string) string {
	_ = r.ParseForm()
	return r.FormValue(k)
}

func limitParam(r *http.Request, def, max int) int {
	n, err := strconv.Atoi(param(r, "limit"))
	if err != nil || n <= 0 {
		n = def
	}
	return min(n, max)
}

func cursorOf(i int) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "next:%d", i))
}

func fromCursor(c string) int {
	b, err := base64.StdEncoding.DecodeString(c)
	if err != nil {
		return -1
	}
	var i int
	if _, err := fmt.Sscanf(string(b), "next:%d", &i); err != nil {
		return -1
	}
	return i
}

func (c *Conversation) json() map[string]any {
	out := map[string]any{
		"id": c.ID, "name": c.Name, "created": 1700000000, "is_archived": c.Archived, "is_member": true,
		"is_channel": c.Type == "channel", "is_group": c.Type == "group", "is_im": c.Type == "im", "is_mpim": c.Type == "mpim",
		"is_private": c.Type != "channel", "context_team_id": TeamID,
	}
	if c.Type == "im" {
		delete(out, "name")
		out["user"] = c.User
	}
	return out
}

// users.conversations: the token's user's conversations of the types asked
// (public_channel by default), with cursors.
func (s *Server) usersConversations(w http.ResponseWriter, r *http.Request) {
	if !s.historyCall(w, r, "users.conversations") {
		return
	}
	types := map[string]string{"public_channel": "channel", "private_channel": "group", "im": "im", "mpim": "mpim"}
	want := map[string]bool{}
	for _, t := range strings.Split(param(r, "types"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			if types[t] == "" {
				writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_types"})
				return
			}
			want[types[t]] = true
		}
	}
	if len(want) == 0 {
		want["channel"] = true
	}
	limit := limitParam(r, 100, 1000)
	start := 0
	if c := param(r, "cursor"); c != "" {
		if start = fromCursor(c); start < 0 {
			writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_cursor"})
			return
		}
	}
	s.mu.Lock()
	var all []*Conversation
	for _, c := range s.history.convs {
		if want[c.Type] && !(c.Archived && param(r, "exclude_archived") == "true") {
			all = append(all, c)
		}
	}
	slices.SortFunc(all, func(a, b *Conversation) int { return strings.Compare(a.ID, b.ID) })
	var page []any
	for i := start; i < len(all) && len(page) < limit; i++ {
		page = append(page, all[i].json())
	}
	s.mu.Unlock()
	next := ""
	if start+len(page) < len(all) {
		next = cursorOf(start + len(page))
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "channels": page, "response_metadata": map[string]any{"next_cursor": next}})
}

// tsLess compares Slack timestamps.
func tsLess(a, b string) bool {
	x, _ := strconv.ParseFloat(a, 64)
	y, _ := strconv.ParseFloat(b, 64)
	if x != y {
		return x < y
	}
	return a < b
}

// inRange applies oldest/latest (exclusive unless inclusive).
func inRange(ts, oldest, latest string, inclusive bool) bool {
	if oldest != "" && (tsLess(ts, oldest) || (!inclusive && ts == oldest)) {
		return false
	}
	if latest != "" && (tsLess(latest, ts) || (!inclusive && ts == latest)) {
		return false
	}
	return true
}

// messageJSON is a message as conversations.history returns it; s.mu is
// held.
func (s *Server) messageJSON(m *message) map[string]any {
	out := map[string]any{"type": "message", "text": m.text, "ts": m.ts, "team": TeamID}
	if m.user != "" {
		out["user"] = m.user
	}
	if m.subtype != "" {
		out["subtype"] = m.subtype
	}
	if m.botID != "" {
		out["bot_id"] = m.botID
	}
	if m.subtype == "" || m.subtype == "thread_broadcast" {
		out["blocks"] = richText(strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">").Replace(m.text))
	}
	if m.editedTS != "" {
		out["edited"] = map[string]any{"user": m.user, "ts": m.editedTS}
	}
	if len(m.files) > 0 {
		out["files"] = m.files
	}
	if len(m.attachments) > 0 {
		out["attachments"] = m.attachments
	}
	if m.threadTS != "" {
		out["thread_ts"] = m.threadTS
		out["parent_user_id"] = "U0MEMBER001"
	}
	// A parent carries its thread's summary.
	var replies []string
	for _, r := range s.messages {
		if r.channel == m.channel && r.threadTS == m.ts && r.ts != m.ts && !r.deleted {
			replies = append(replies, r.ts)
		}
	}
	if len(replies) > 0 {
		slices.SortFunc(replies, func(a, b string) int {
			if tsLess(a, b) {
				return -1
			}
			return 1
		})
		out["thread_ts"] = m.ts
		out["reply_count"] = len(replies)
		out["reply_users_count"] = 1
		out["latest_reply"] = replies[len(replies)-1]
		out["reply_users"] = []string{"U0MEMBER001"}
		out["is_locked"] = false
		out["subscribed"] = false
	}
	return out
}

// page answers one page of msgs (already filtered and ordered, newest first
// when desc) from the request's cursor. A cursor names the ts the next page
// starts at, as Slack's do, so that messages deleted between two pages do
// not shift it.
func (s *Server) page(w http.ResponseWriter, r *http.Request, msgs []*message, def int, desc bool) {
	maxPage := s.opts.HistoryPage
	if maxPage <= 0 {
		maxPage = 1000
	}
	limit := limitParam(r, def, maxPage)
	start := 0
	if c := param(r, "cursor"); c != "" {
		b, err := base64.StdEncoding.DecodeString(c)
		at, ok := strings.CutPrefix(string(b), "ts:")
		if err != nil || !ok {
			writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_cursor"})
			return
		}
		start = len(msgs)
		for i, m := range msgs {
			if m.ts == at || (desc && tsLess(m.ts, at)) || (!desc && tsLess(at, m.ts)) {
				start = i
				break
			}
		}
	}
	var out []any
	for i := start; i < len(msgs) && len(out) < limit; i++ {
		out = append(out, s.messageJSON(msgs[i]))
	}
	s.history.served += len(out)
	more := start+len(out) < len(msgs)
	next := ""
	if more {
		next = base64.StdEncoding.EncodeToString([]byte("ts:" + msgs[start+len(out)].ts))
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "messages": out, "has_more": more, "pin_count": 0,
		"response_metadata": map[string]any{"next_cursor": next}})
}

// conversations.history: top-level messages (and thread broadcasts) newest
// first.
func (s *Server) conversationsHistory(w http.ResponseWriter, r *http.Request) {
	if !s.historyCall(w, r, "conversations.history") {
		return
	}
	ch := param(r, "channel")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.history.convs[ch] == nil {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "channel_not_found"})
		return
	}
	oldest, latest, incl := param(r, "oldest"), param(r, "latest"), param(r, "inclusive") == "true" || param(r, "inclusive") == "1"
	var msgs []*message
	for _, m := range s.messages {
		if m.channel != ch || m.deleted || !inRange(m.ts, oldest, latest, incl) {
			continue
		}
		if m.threadTS != "" && m.threadTS != m.ts && m.subtype != "thread_broadcast" {
			continue // a reply: only conversations.replies has it
		}
		msgs = append(msgs, m)
	}
	slices.SortFunc(msgs, func(a, b *message) int {
		if tsLess(b.ts, a.ts) {
			return -1
		}
		return 1
	})
	s.page(w, r, msgs, 100, true)
}

// conversations.replies: a thread's parent, then its replies oldest first.
func (s *Server) conversationsReplies(w http.ResponseWriter, r *http.Request) {
	if !s.historyCall(w, r, "conversations.replies") {
		return
	}
	ch, ts := param(r, "channel"), param(r, "ts")
	s.mu.Lock()
	defer s.mu.Unlock()
	parent := s.messages[ch+"/"+ts]
	if s.history.convs[ch] == nil {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "channel_not_found"})
		return
	}
	if parent == nil || parent.deleted {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "thread_not_found"})
		return
	}
	oldest, latest, incl := param(r, "oldest"), param(r, "latest"), param(r, "inclusive") == "true" || param(r, "inclusive") == "1"
	msgs := []*message{parent}
	var replies []*message
	for _, m := range s.messages {
		if m.channel == ch && m.threadTS == ts && m.ts != ts && !m.deleted && inRange(m.ts, oldest, latest, incl) {
			replies = append(replies, m)
		}
	}
	slices.SortFunc(replies, func(a, b *message) int {
		if tsLess(a.ts, b.ts) {
			return -1
		}
		return 1
	})
	s.page(w, r, append(msgs, replies...), 1000, false)
}

func (s *Server) conversationsInfo(w http.ResponseWriter, r *http.Request) {
	if !s.historyCall(w, r, "conversations.info") {
		return
	}
	s.mu.Lock()
	c := s.history.convs[param(r, "channel")]
	s.mu.Unlock()
	if c == nil {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "channel_not_found"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "channel": c.json()})
}

func (s *Server) usersInfo(w http.ResponseWriter, r *http.Request) {
	if !s.historyCall(w, r, "users.info") {
		return
	}
	id := param(r, "user")
	s.mu.Lock()
	name := s.history.users[id]
	s.mu.Unlock()
	if name == "" {
		if !strings.HasPrefix(id, "U") && !strings.HasPrefix(id, "W") {
			writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "user_not_found"})
			return
		}
		name = "member-" + strings.ToLower(id)
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "user": map[string]any{
		"id": id, "team_id": TeamID, "name": name, "real_name": name, "deleted": false, "is_bot": false,
		"profile": map[string]any{"display_name": name, "real_name": name},
	}})
}
