// Package fakeslack is a Slack stand-in on 127.0.0.1 for tests and the demo:
// the Web API methods securechat calls (auth.test, apps.connections.open,
// chat.delete, chat.postMessage, chat.postEphemeral, conversations.open) and the
// Socket Mode WebSocket (hello, events_api envelopes, pings, disconnect,
// abrupt drops, redelivery of unacknowledged envelopes).
//
// Payloads follow Slack's documented wire format (docs.slack.dev: the
// Socket Mode protocol, the message event and its subtypes, chat.delete) as
// slack-go v0.35 parses it. The server records what it was sent (acks,
// deletes, posts) and can be scripted to fail (429 with Retry-After, 500,
// Slack error codes).
package fakeslack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Defaults used when Options leave a field empty.
const (
	DefaultAppToken  = "xapp-1-A0FAKEAPP01-1000000000001-0123456789abcdef0123456789abcdef"
	DefaultUserToken = "xoxp-1000000000001-1000000000002-1000000000003-0123456789abcdef0123456789abcdef"
	DefaultScopes    = "chat:write,channels:history,groups:history,im:history,mpim:history,im:write,channels:read,groups:read,im:read,mpim:read,users:read"
	TeamID           = "T0FAKETEAM"
	AppID            = "A0FAKEAPP01"
	AdminUserID      = "U0ADMIN0001"
)

// Options configure a Server.
type Options struct {
	AppToken  string // accepted by apps.connections.open
	UserToken string // accepted by auth.test and chat.*
	Scopes    string // x-oauth-scopes of auth.test
	// BotToken, when set, is accepted for chat.postMessage and
	// chat.postEphemeral (auth.test answers it as a bot).
	BotToken string
	// PingInterval is how often WebSocket pings are sent (Slack: every few
	// seconds). 0 means 2s; negative means never.
	PingInterval time.Duration
	// RedeliverAfter, when positive, resends an envelope that was not
	// acknowledged within that time, with retry_attempt+1 and retry_reason
	// "timeout", up to 3 times, to any open connection, as Slack does.
	RedeliverAfter time.Duration
	// EchoDeletes makes a successful chat.delete send the message_deleted
	// event Slack sends to subscribers (default true via New).
	EchoDeletes *bool
	// EchoPosts makes chat.postMessage send the message event a subscriber
	// gets for the new message, as Slack does when the token's user (or bot)
	// posts where the app listens.
	EchoPosts bool
	// ChaosDelete, between 0 and 1, is the share of chat.delete calls that
	// answer 429 (Retry-After: 1) or HTTP 500 instead, at random (seeded, for
	// chaos tests); the message is left as it is.
	ChaosDelete float64
	// ForgetAcked drops the body of an acknowledged envelope and the text of
	// its message (the message can still be deleted), so that a soak of a
	// million messages does not hold them all.
	ForgetAcked bool
	// DeleteLimit, when positive, limits chat.delete to that many calls a
	// DeleteWindow (default a minute), as Slack's tiers do (Tier 3: about 50
	// a minute): a call over the limit answers 429 with a Retry-After, in
	// whole seconds, to the end of the window.
	DeleteLimit  int
	DeleteWindow time.Duration
	// LiveClock gives messages the ts of the moment they are posted (one
	// microsecond after the last at least), as Slack does; without it they
	// start at 2026-11-25 09:00 UTC and each is one microsecond later.
	// Catch-up tests need it: the daemon measures its windows with the clock.
	LiveClock bool
	// HistoryPage caps the messages per page of conversations.history and
	// conversations.replies, whatever limit is asked [1000]: 15 is Slack's
	// Tier 1 page for apps outside its Marketplace.
	HistoryPage int
	// MethodLimit, when positive, limits each of users.conversations,
	// conversations.history, conversations.replies, conversations.info and
	// users.info to that many calls a MethodWindow (default a minute): a call
	// over it answers 429 with a Retry-After to the end of the window.
	MethodLimit  int
	MethodWindow time.Duration
}

// Response is a scripted answer to a Web API call.
type Response struct {
	Status     int    // HTTP status; 0 means 200
	RetryAfter string // Retry-After header, with Status 429
	Error      string // Slack error code for an {"ok":false} answer
	Delay      time.Duration
}

// DeleteCall is one chat.delete request.
type DeleteCall struct {
	Channel, TS string
	At          time.Time
	Status      int    // HTTP status answered
	Error       string // Slack error answered, "" on success
}

// OK reports whether the call deleted the message.
func (d DeleteCall) OK() bool { return d.Status == http.StatusOK && d.Error == "" }

// PostCall is one chat.postMessage / chat.postEphemeral / conversations.open.
type PostCall struct {
	Method  string
	Channel string
	User    string
	Text    string
	Token   string
	At      time.Time
	// TS is the posted message's ts (chat.postMessage), or the updated
	// one's (chat.update).
	TS string
	// Blocks is the Block Kit JSON sent with the message, "" for none.
	Blocks string
}

// Delivery is an envelope the server sent and what became of it.
type Delivery struct {
	EnvelopeID string
	Channel    string
	TS         string // the message's ts
	SentAt     time.Time
	AckedAt    time.Time // zero until acknowledged
	Acks       int       // acks received for it (all attempts)
	// AckPayload is the payload of the first ack that carried one (a
	// slash command's answer, a view_submission's response_action).
	AckPayload json.RawMessage
	Attempts   int // 1 + redeliveries
	body       map[string]any
}

type message struct {
	channel, channelType, user, text string
	deleted                          bool
	ts, threadTS, subtype, botID     string
	editedTS                         string
	files                            []map[string]any
	attachments                      []map[string]any
}

// Server is a running fake Slack.
type Server struct {
	opts    Options
	httpSrv *httptest.Server

	mu          sync.Mutex
	changed     chan struct{} // closed and replaced on every recorded change
	conns       []*conn
	next        int // round-robin index
	seq         int64
	messages    map[string]*message // channel/ts
	deliveries  map[string]*Delivery
	order       []string // envelope ids in send order
	deletes     []DeleteCall
	deletedOK   map[string]int // channel/ts → successful chat.delete calls
	unacked     int
	posts       []PostCall
	script      map[string][]Response // method → queued responses
	opens       int
	connections int
	closed      bool

	history history // the conversations, users and history methods (history.go)

	interactive interactive // views and response_url calls (interactive.go)

	rnd      *rand.Rand // ChaosDelete's dice, under mu
	window   time.Time  // DeleteLimit: when the current window started, under mu
	inWindow int        // DeleteLimit: calls allowed in it

	wg   sync.WaitGroup
	stop chan struct{}
}

// New starts a fake Slack on 127.0.0.1 on a free port.
func New(o Options) *Server {
	if o.AppToken == "" {
		o.AppToken = DefaultAppToken
	}
	if o.UserToken == "" {
		o.UserToken = DefaultUserToken
	}
	if o.Scopes == "" {
		o.Scopes = DefaultScopes
	}
	if o.PingInterval == 0 {
		o.PingInterval = 2 * time.Second
	}
	if o.EchoDeletes == nil {
		t := true
		o.EchoDeletes = &t
	}
	start := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	if o.LiveClock {
		start = time.Now()
	}
	s := &Server{
		opts:       o,
		changed:    make(chan struct{}),
		messages:   map[string]*message{},
		deliveries: map[string]*Delivery{},
		deletedOK:  map[string]int{},
		script:     map[string][]Response{},
		seq:        start.UnixMicro(),
		stop:       make(chan struct{}),
		rnd:        rand.New(rand.NewPCG(7, 11)),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/auth.test", s.authTest)
	mux.HandleFunc("/api/apps.connections.open", s.connectionsOpen)
	mux.HandleFunc("/api/chat.delete", s.chatDelete)
	mux.HandleFunc("/api/chat.postMessage", s.chatPost("chat.postMessage"))
	mux.HandleFunc("/api/chat.postEphemeral", s.chatPost("chat.postEphemeral"))
	mux.HandleFunc("/api/conversations.open", s.conversationsOpen)
	mux.HandleFunc("/api/chat.update", s.chatUpdate)
	mux.HandleFunc("/api/views.open", s.views("views.open"))
	mux.HandleFunc("/api/views.publish", s.views("views.publish"))
	mux.HandleFunc("/respond/", s.respond)
	s.history.init()
	mux.HandleFunc("/api/users.conversations", s.usersConversations)
	mux.HandleFunc("/api/conversations.history", s.conversationsHistory)
	mux.HandleFunc("/api/conversations.replies", s.conversationsReplies)
	mux.HandleFunc("/api/conversations.info", s.conversationsInfo)
	mux.HandleFunc("/api/users.info", s.usersInfo)
	mux.HandleFunc("/link/", s.websocket)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "unknown_method"})
	})
	s.httpSrv = httptest.NewServer(mux)
	if o.RedeliverAfter > 0 {
		s.wg.Go(s.redeliverLoop)
	}
	return s
}

// APIURL is the Web API base URL to give slack-go (ends in "/").
func (s *Server) APIURL() string { return s.httpSrv.URL + "/api/" }

// AppToken and UserToken return the tokens the server accepts.
func (s *Server) AppToken() string  { return s.opts.AppToken }
func (s *Server) UserToken() string { return s.opts.UserToken }

// Close drops every connection and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.stop)
	conns := append([]*conn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		c.ws.Close()
	}
	s.httpSrv.CloseClientConnections()
	s.httpSrv.Close()
	s.wg.Wait()
}

// notify wakes Wait callers; s.mu must be held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Wait blocks until cond returns true, or ctx ends. cond is called with the
// server's state locked, whenever it changes and at least every 20ms (so it
// may also look at things outside the server, such as a database).
func (s *Server) Wait(ctx context.Context, cond func(st *State) bool) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		ok := cond(&State{s: s})
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("fakeslack: condition not met: %w", ctx.Err())
		}
	}
}

// State is a view of the server's records, valid inside a Wait condition or
// from Snapshot.
type State struct{ s *Server }

// Connections returns the number of open Socket Mode connections.
func (st *State) Connections() int { return len(st.s.conns) }

// TotalConnections counts every connection ever made (reconnects included).
func (st *State) TotalConnections() int { return st.s.connections }

// Opens counts apps.connections.open calls.
func (st *State) Opens() int { return st.s.opens }

// Deletes returns the chat.delete calls so far.
func (st *State) Deletes() []DeleteCall { return append([]DeleteCall(nil), st.s.deletes...) }

// Posts returns the chat.postMessage, chat.postEphemeral and
// conversations.open calls so far.
func (st *State) Posts() []PostCall { return append([]PostCall(nil), st.s.posts...) }

// SuccessfulDeletes counts chat.delete calls that deleted channel/ts.
func (st *State) SuccessfulDeletes(channel, ts string) int {
	return st.s.deletedOK[channel+"/"+ts]
}

// DeleteCalls counts chat.delete calls for channel/ts, whatever the answer.
func (st *State) DeleteCalls(channel, ts string) int {
	n := 0
	for _, d := range st.s.deletes {
		if d.Channel == channel && d.TS == ts {
			n++
		}
	}
	return n
}

// Acked reports whether the envelope was acknowledged.
func (st *State) Acked(envelopeID string) bool {
	d := st.s.deliveries[envelopeID]
	return d != nil && !d.AckedAt.IsZero()
}

// Delivery returns a copy of the record of one envelope.
func (st *State) Delivery(envelopeID string) (Delivery, bool) {
	d := st.s.deliveries[envelopeID]
	if d == nil {
		return Delivery{}, false
	}
	return *d, true
}

// Deliveries returns every envelope sent, in send order.
func (st *State) Deliveries() []Delivery {
	out := make([]Delivery, 0, len(st.s.order))
	for _, id := range st.s.order {
		out = append(out, *st.s.deliveries[id])
	}
	return out
}

// Unacked counts envelopes not acknowledged yet.
func (st *State) Unacked() int { return st.s.unacked }

// Exists reports whether a message is still in the channel.
func (st *State) Exists(channel, ts string) bool {
	m := st.s.messages[channel+"/"+ts]
	return m != nil && !m.deleted
}

// Snapshot runs f on the current state.
func (s *Server) Snapshot(f func(st *State)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&State{s: s})
}

// Script queues answers for the next calls of a Web API method (e.g.
// "chat.delete"); once they are used up, calls are answered normally.
func (s *Server) Script(method string, rs ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script[method] = append(s.script[method], rs...)
}

// ClearScript drops the answers still queued for a method.
func (s *Server) ClearScript(method string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.script, method)
}

func (s *Server) scripted(method string) (Response, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.script[method]
	if len(q) == 0 {
		return Response{}, false
	}
	s.script[method] = q[1:]
	return q[0], true
}

// answerScripted writes a scripted answer and reports whether it did.
func (s *Server) answerScripted(w http.ResponseWriter, method string) (Response, bool) {
	r, ok := s.scripted(method)
	if !ok {
		return r, false
	}
	if r.Delay > 0 {
		time.Sleep(r.Delay)
	}
	switch {
	case r.Status == http.StatusTooManyRequests:
		if r.RetryAfter != "" {
			w.Header().Set("Retry-After", r.RetryAfter)
		}
		writeJSON(w, r.Status, map[string]any{"ok": false, "error": "ratelimited"})
	case r.Status >= 500:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(r.Status)
		fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>", r.Status, http.StatusText(r.Status))
	case r.Error != "":
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": r.Error})
	default:
		return r, false // a pure delay: answer normally
	}
	return r, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// token returns the request's token: the form field slack-go sends, or a
// Bearer header.
func token(r *http.Request) string {
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		return strings.TrimPrefix(h, "Bearer ")
	}
	_ = r.ParseForm()
	return r.PostFormValue("token")
}

func (s *Server) authTest(w http.ResponseWriter, r *http.Request) {
	if _, done := s.answerScripted(w, "auth.test"); done {
		return
	}
	tok := token(r)
	switch {
	case tok == "":
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "not_authed"})
	case tok == s.opts.UserToken:
		w.Header().Set("X-OAuth-Scopes", s.opts.Scopes)
		writeJSON(w, http.StatusOK, map[string]any{
			"ok": true, "url": "https://fake-workspace.slack.com/", "team": "Fake Workspace",
			"user": "admin", "team_id": TeamID, "user_id": AdminUserID, "is_enterprise_install": false,
		})
	case s.opts.BotToken != "" && tok == s.opts.BotToken:
		w.Header().Set("X-OAuth-Scopes", "chat:write,im:write")
		writeJSON(w, http.StatusOK, map[string]any{
			"ok": true, "url": "https://fake-workspace.slack.com/", "team": "Fake Workspace",
			"user": "securechat", "team_id": TeamID, "user_id": "U0BOT000001", "bot_id": "B0BOT000001",
		})
	case tok == s.opts.AppToken:
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "not_allowed_token_type"})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_auth"})
	}
}

func (s *Server) connectionsOpen(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.opens++
	s.notify()
	s.mu.Unlock()
	if _, done := s.answerScripted(w, "apps.connections.open"); done {
		return
	}
	tok := token(r)
	switch {
	case tok == "":
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "not_authed"})
	case tok == s.opts.AppToken:
		ticket := fmt.Sprintf("%016x", time.Now().UnixNano())
		url := "ws://" + r.Host + "/link/?ticket=" + ticket + "&app_id=" + AppID
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "url": url})
	case strings.HasPrefix(tok, "xox"):
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "not_allowed_token_type"})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_auth"})
	}
}

func (s *Server) chatDelete(w http.ResponseWriter, r *http.Request) {
	tok := token(r)
	ch, ts := r.PostFormValue("channel"), r.PostFormValue("ts")
	call := DeleteCall{Channel: ch, TS: ts, At: time.Now(), Status: http.StatusOK}
	record := func() {
		s.mu.Lock()
		s.deletes = append(s.deletes, call)
		if call.OK() {
			s.deletedOK[ch+"/"+ts]++
		}
		s.notify()
		s.mu.Unlock()
	}
	rateLimited := func(secs int) {
		call.Status, call.Error = http.StatusTooManyRequests, "ratelimited"
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"ok": false, "error": "ratelimited"})
		record()
	}
	if s.opts.DeleteLimit > 0 {
		win := s.opts.DeleteWindow
		if win <= 0 {
			win = time.Minute
		}
		s.mu.Lock()
		now := time.Now()
		if now.Sub(s.window) >= win {
			s.window, s.inWindow = now, 0
		}
		var wait time.Duration
		if s.inWindow >= s.opts.DeleteLimit {
			wait = s.window.Add(win).Sub(now)
		} else {
			s.inWindow++
		}
		s.mu.Unlock()
		if wait > 0 {
			rateLimited(int((wait + time.Second - 1) / time.Second))
			return
		}
	}
	if s.opts.ChaosDelete > 0 {
		s.mu.Lock()
		roll, kind := s.rnd.Float64(), s.rnd.IntN(2)
		s.mu.Unlock()
		switch {
		case roll >= s.opts.ChaosDelete:
		case kind == 0:
			rateLimited(1)
			return
		default:
			call.Status = http.StatusInternalServerError
			w.WriteHeader(http.StatusInternalServerError)
			record()
			return
		}
	}
	if resp, done := s.answerScripted(w, "chat.delete"); done {
		call.Status = max(resp.Status, http.StatusOK)
		call.Error = resp.Error
		if resp.Status == http.StatusTooManyRequests {
			call.Error = "ratelimited"
		}
		record()
		return
	}
	fail := func(code string) {
		call.Error = code
		record()
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": code})
	}
	switch {
	case tok == "":
		fail("not_authed")
		return
	case !s.known(tok):
		fail("invalid_auth")
		return
	case ch == "":
		fail("channel_not_found")
		return
	}
	s.mu.Lock()
	m := s.messages[ch+"/"+ts]
	if m == nil || m.deleted {
		s.mu.Unlock()
		fail("message_not_found")
		return
	}
	if (m.channelType == "im" || m.channelType == "mpim") && m.user != AdminUserID {
		// As Slack answers a workspace admin's user token for another
		// member's direct message: only Enterprise Grid's discovery APIs
		// can remove those.
		s.mu.Unlock()
		fail("cant_delete_message")
		return
	}
	m.deleted = true
	s.mu.Unlock()
	record()
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "channel": ch, "ts": ts})
	if *s.opts.EchoDeletes {
		s.sendDeleted(ch, ts, m)
	}
}

// sendDeleted sends the message_deleted event Slack sends after a deletion.
func (s *Server) sendDeleted(ch, ts string, m *message) {
	evTS := s.nextTS()
	ev := map[string]any{
		"type": "message", "subtype": "message_deleted", "hidden": true, "channel": ch,
		"channel_type": "channel", "ts": evTS, "event_ts": evTS, "deleted_ts": ts,
		"previous_message": map[string]any{"type": "message", "user": m.user, "text": m.text, "ts": ts},
	}
	_, _ = s.sendEvent(ev, ch, ts)
}

func (s *Server) chatPost(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, done := s.answerScripted(w, method); done {
			return
		}
		tok := token(r)
		if !s.known(tok) {
			writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_auth"})
			return
		}
		call := PostCall{Method: method, Channel: r.PostFormValue("channel"), User: r.PostFormValue("user"),
			Text: r.PostFormValue("text"), Token: tok, At: time.Now(), Blocks: r.PostFormValue("blocks")}
		if call.Channel == "" {
			writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "channel_not_found"})
			return
		}
		ts := s.nextTS()
		call.TS = ts
		s.mu.Lock()
		s.posts = append(s.posts, call)
		s.notify()
		s.mu.Unlock()
		if method == "chat.postEphemeral" {
			writeJSON(w, http.StatusOK, map[string]any{"ok": true, "message_ts": ts})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "channel": call.Channel, "ts": ts,
			"message": map[string]any{"type": "message", "text": call.Text, "ts": ts}})
		if s.opts.EchoPosts {
			s.echoPost(call, ts)
		}
	}
}

// echoPost registers a posted message and sends its message event, after
// the API answer, as Slack does.
func (s *Server) echoPost(call PostCall, ts string) {
	text := call.Text // API text is mrkdwn, escaped by the poster
	ev := map[string]any{"type": "message", "channel": call.Channel, "text": text, "ts": ts, "event_ts": ts, "team": TeamID,
		"channel_type": map[bool]string{true: "im", false: "channel"}[strings.HasPrefix(call.Channel, "D")]}
	user := AdminUserID
	if call.Token == s.opts.BotToken && s.opts.BotToken != "" {
		user = "U0BOT000001"
		ev["bot_id"] = "B0BOT000001"
		ev["subtype"] = "bot_message"
	}
	ev["user"] = user
	s.mu.Lock()
	s.messages[call.Channel+"/"+ts] = &message{channel: call.Channel, user: user, text: text}
	s.mu.Unlock()
	_, _ = s.sendEvent(ev, call.Channel, ts)
}

func (s *Server) conversationsOpen(w http.ResponseWriter, r *http.Request) {
	if _, done := s.answerScripted(w, "conversations.open"); done {
		return
	}
	tok := token(r)
	if !s.known(tok) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	users := r.PostFormValue("users")
	s.mu.Lock()
	s.posts = append(s.posts, PostCall{Method: "conversations.open", User: users, Token: tok, At: time.Now()})
	s.notify()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "channel": map[string]any{"id": "D" + strings.TrimPrefix(users, "U")}})
}

// nextTS returns a new, strictly increasing message ts ("1764061200.000001").
func (s *Server) nextTS() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextTSLocked()
}

// nextTSLocked is nextTS with s.mu held.
func (s *Server) nextTSLocked() string {
	s.seq++
	if now := time.Now().UnixMicro(); s.opts.LiveClock && now > s.seq {
		s.seq = now
	}
	return fmt.Sprintf("%d.%06d", s.seq/1_000_000, s.seq%1_000_000)
}

// ErrNoConnection is returned when an event is sent with no Socket Mode
// connection open.
var ErrNoConnection = errors.New("fakeslack: no socket mode connection open")

// conn is one Socket Mode WebSocket.
type conn struct {
	ws *websocket.Conn
	wm sync.Mutex // gorilla allows one writer at a time
}

func (c *conn) writeJSON(v any) error {
	c.wm.Lock()
	defer c.wm.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteJSON(v)
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (s *Server) websocket(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &conn{ws: ws}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ws.Close()
		return
	}
	s.conns = append(s.conns, c)
	s.connections++
	n := len(s.conns)
	s.mu.Unlock()

	hello := map[string]any{
		"type": "hello", "num_connections": n,
		"debug_info":      map[string]any{"host": "applink-fake-1", "build_number": 1, "approximate_connection_time": 18060},
		"connection_info": map[string]any{"app_id": AppID},
	}
	if err := c.writeJSON(hello); err != nil {
		s.drop(c)
		return
	}
	s.mu.Lock()
	s.notify()
	s.mu.Unlock()
	done := make(chan struct{})
	if s.opts.PingInterval > 0 {
		s.wg.Go(func() { s.pingLoop(c, done) })
	}
	s.readLoop(c)
	close(done)
	s.drop(c)
}

func (s *Server) pingLoop(c *conn, done chan struct{}) {
	t := time.NewTicker(s.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-s.stop:
			return
		case <-t.C:
			if err := c.ws.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second)); err != nil {
				return
			}
		}
	}
}

// readLoop records the acknowledgements a client sends.
func (s *Server) readLoop(c *conn) {
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var ack struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(data, &ack) != nil || ack.EnvelopeID == "" {
			continue
		}
		now := time.Now()
		s.mu.Lock()
		if d := s.deliveries[ack.EnvelopeID]; d != nil {
			d.Acks++
			if d.AckPayload == nil && len(ack.Payload) > 0 && string(ack.Payload) != "null" {
				d.AckPayload = append(json.RawMessage(nil), ack.Payload...)
			}
			if d.AckedAt.IsZero() {
				d.AckedAt = now
				s.unacked--
				if s.opts.ForgetAcked {
					d.body = nil
					if m := s.messages[d.Channel+"/"+d.TS]; m != nil {
						m.text = ""
					}
				}
			}
		}
		s.notify()
		s.mu.Unlock()
	}
}

func (s *Server) drop(c *conn) {
	c.ws.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.conns {
		if x == c {
			s.conns = append(s.conns[:i], s.conns[i+1:]...)
			break
		}
	}
	s.notify()
}

// pick returns the next connection, round robin: Slack may send any payload
// to any of an app's connections.
func (s *Server) pick() *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) == 0 {
		return nil
	}
	c := s.conns[s.next%len(s.conns)]
	s.next++
	return c
}

// Prepared is an envelope built and encoded ahead of sending, so that a
// load test can measure the daemon rather than the fake's JSON encoding.
type Prepared struct {
	EnvelopeID string
	Channel    string
	TS         string // the message's ts
	body       map[string]any
	frame      []byte
}

// sendEvent wraps an event in the Events API callback and a Socket Mode
// envelope and sends it.
func (s *Server) sendEvent(event map[string]any, channel, ts string) (string, error) {
	p, err := s.envelope(event, channel, ts)
	if err != nil {
		return "", err
	}
	return p.EnvelopeID, s.Send(p)
}

func (s *Server) envelope(event map[string]any, channel, ts string) (*Prepared, error) {
	s.mu.Lock()
	s.seq++
	n := s.seq
	s.mu.Unlock()
	envelopeID := fmt.Sprintf("%08x-fake-4e5f-%04x-%012x", n&0xffffffff, n&0xffff, n)
	body := map[string]any{
		"envelope_id":              envelopeID,
		"type":                     "events_api",
		"accepts_response_payload": false,
		"retry_attempt":            0,
		"retry_reason":             "",
		"payload": map[string]any{
			"token":      "fakeVerificationToken",
			"team_id":    TeamID,
			"api_app_id": AppID,
			"event":      event,
			"type":       "event_callback",
			"event_id":   fmt.Sprintf("Ev%010X", n%0xffffffffff),
			"event_time": time.Now().Unix(),
			"authorizations": []any{map[string]any{
				"enterprise_id": nil, "team_id": TeamID, "user_id": AdminUserID, "is_bot": false, "is_enterprise_install": false,
			}},
			"is_ext_shared_channel": false,
			"event_context":         "4-fake-" + envelopeID,
		},
	}
	frame, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("fakeslack: encode envelope: %w", err)
	}
	return &Prepared{EnvelopeID: envelopeID, Channel: channel, TS: ts, body: body, frame: frame}, nil
}

// Send sends a prepared envelope on the next connection.
func (s *Server) Send(p *Prepared) error {
	c := s.pick()
	if c == nil {
		return ErrNoConnection
	}
	d := &Delivery{EnvelopeID: p.EnvelopeID, Channel: p.Channel, TS: p.TS, Attempts: 1, body: p.body}
	s.mu.Lock()
	d.SentAt = time.Now()
	s.deliveries[p.EnvelopeID] = d
	s.order = append(s.order, p.EnvelopeID)
	s.unacked++
	s.notify()
	s.mu.Unlock()
	c.wm.Lock()
	defer c.wm.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.ws.WriteMessage(websocket.TextMessage, p.frame); err != nil {
		return fmt.Errorf("fakeslack: send envelope: %w", err)
	}
	return nil
}

// Message is a message a workspace member posts.
type Message struct {
	Channel     string // default C0GENERAL01
	ChannelType string // channel (default), group, im, mpim
	User        string // default U0MEMBER001
	// Text is what the user typed; it is escaped (& < >) as Slack does and
	// mirrored in a rich_text block. Set Raw to send Text unchanged.
	Text     string
	Raw      bool
	ThreadTS string // a reply in this thread
	Subtype  string // e.g. thread_broadcast, bot_message, channel_join
	BotID    string
	// Attachments are sent as given (legacy attachments).
	Attachments []map[string]any
	// Files are sent as given (with Subtype file_share).
	Files []map[string]any
}

// Escape escapes text the way Slack delivers what a user typed.
func Escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Post posts a message and sends its message event. It returns the new
// message's ts and the envelope id.
func (s *Server) Post(m Message) (ts, envelopeID string, err error) {
	p, err := s.Prepare(m)
	if err != nil {
		return "", "", err
	}
	return p.TS, p.EnvelopeID, s.Send(p)
}

// Prepare posts a message (chat.delete will find it) and builds its event
// envelope, to be sent later with Send.
func (s *Server) Prepare(m Message) (*Prepared, error) {
	if m.Channel == "" {
		m.Channel = "C0GENERAL01"
	}
	if m.ChannelType == "" {
		m.ChannelType = "channel"
	}
	if m.User == "" && m.Subtype != "bot_message" {
		m.User = "U0MEMBER001"
	}
	ts := s.nextTS()
	text := m.Text
	if !m.Raw {
		text = Escape(m.Text)
	}
	s.mu.Lock()
	s.messages[m.Channel+"/"+ts] = &message{channel: m.Channel, channelType: m.ChannelType, user: m.User, text: text,
		ts: ts, threadTS: m.ThreadTS, subtype: m.Subtype, botID: m.BotID, files: m.Files, attachments: m.Attachments}
	s.history.posted(m.Channel, m.ChannelType)
	s.mu.Unlock()
	ev := map[string]any{
		"type": "message", "channel": m.Channel, "channel_type": m.ChannelType, "text": text,
		"ts": ts, "event_ts": ts, "team": TeamID,
	}
	if m.User != "" {
		ev["user"] = m.User
	}
	if m.Subtype == "" || m.Subtype == "thread_broadcast" {
		ev["client_msg_id"] = fmt.Sprintf("%08x-0000-4000-8000-%012x", len(ts), s.seqNow())
		ev["blocks"] = richText(m.Text)
	}
	if m.Subtype != "" {
		ev["subtype"] = m.Subtype
	}
	if m.BotID != "" {
		ev["bot_id"] = m.BotID
	}
	if m.ThreadTS != "" {
		ev["thread_ts"] = m.ThreadTS
		ev["parent_user_id"] = "U0MEMBER001"
	}
	if len(m.Attachments) > 0 {
		ev["attachments"] = m.Attachments
	}
	if len(m.Files) > 0 {
		ev["files"] = m.Files
	}
	return s.envelope(ev, m.Channel, ts)
}

func (s *Server) seqNow() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// richText is the block Slack's clients attach to a typed message: the raw
// text, not escaped.
func richText(text string) []any {
	return []any{map[string]any{
		"type": "rich_text", "block_id": "bF4k3",
		"elements": []any{map[string]any{
			"type":     "rich_text_section",
			"elements": []any{map[string]any{"type": "text", "text": text}},
		}},
	}}
}

// Edit changes a message's text and sends the message_changed event. It
// returns the envelope id.
func (s *Server) Edit(channel, ts, newText string) (string, error) {
	s.mu.Lock()
	m := s.messages[channel+"/"+ts]
	if m == nil {
		s.mu.Unlock()
		return "", fmt.Errorf("fakeslack: no message %s/%s to edit", channel, ts)
	}
	prev := m.text
	m.text = Escape(newText)
	evTS := s.nextTSLocked()
	m.editedTS = evTS
	user := m.user
	s.mu.Unlock()
	ev := map[string]any{
		"type": "message", "subtype": "message_changed", "hidden": true, "channel": channel,
		"channel_type": "channel", "ts": evTS, "event_ts": evTS,
		"message": map[string]any{
			"type": "message", "user": user, "text": Escape(newText), "ts": ts, "team": TeamID,
			"blocks": richText(newText), "edited": map[string]any{"user": user, "ts": evTS},
			"client_msg_id": "0e9b6a3c-0000-4000-8000-000000000001",
		},
		"previous_message": map[string]any{"type": "message", "user": user, "text": prev, "ts": ts, "team": TeamID},
	}
	return s.sendEvent(ev, channel, ts)
}

// SendEvent sends an arbitrary inner event (the "event" object of the
// callback) in an envelope and returns the envelope id.
func (s *Server) SendEvent(event map[string]any) (string, error) {
	ch, _ := event["channel"].(string)
	ts, _ := event["ts"].(string)
	return s.sendEvent(event, ch, ts)
}

// SendRaw sends a raw frame on one connection. An envelope_id found in it is
// tracked like any other delivery.
func (s *Server) SendRaw(frame string) error {
	var probe struct {
		EnvelopeID string `json:"envelope_id"`
	}
	_ = json.Unmarshal([]byte(frame), &probe)
	c := s.pick()
	if c == nil {
		return ErrNoConnection
	}
	if probe.EnvelopeID != "" {
		s.mu.Lock()
		s.deliveries[probe.EnvelopeID] = &Delivery{EnvelopeID: probe.EnvelopeID, SentAt: time.Now(), Attempts: 1}
		s.order = append(s.order, probe.EnvelopeID)
		s.unacked++
		s.mu.Unlock()
	}
	c.wm.Lock()
	defer c.wm.Unlock()
	return c.ws.WriteMessage(websocket.TextMessage, []byte(frame))
}

// Redeliver sends an envelope again, as Slack does when it was not
// acknowledged in time: same envelope id and payload, retry_attempt+1,
// retry_reason "timeout", on any connection.
func (s *Server) Redeliver(envelopeID string) error {
	s.mu.Lock()
	d := s.deliveries[envelopeID]
	if d == nil || d.body == nil {
		s.mu.Unlock()
		return fmt.Errorf("fakeslack: unknown envelope %s", envelopeID)
	}
	body := make(map[string]any, len(d.body))
	for k, v := range d.body {
		body[k] = v
	}
	body["retry_attempt"] = d.Attempts
	body["retry_reason"] = "timeout"
	d.Attempts++
	d.SentAt = time.Now()
	s.mu.Unlock()
	c := s.pick()
	if c == nil {
		return ErrNoConnection
	}
	return c.writeJSON(body)
}

func (s *Server) redeliverLoop() {
	t := time.NewTicker(s.opts.RedeliverAfter / 4)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		var due []string
		s.mu.Lock()
		for id, d := range s.deliveries {
			if d.AckedAt.IsZero() && d.body != nil && d.Attempts <= 3 && time.Since(d.SentAt) > s.opts.RedeliverAfter {
				due = append(due, id)
			}
		}
		s.mu.Unlock()
		for _, id := range due {
			_ = s.Redeliver(id)
		}
	}
}

// Disconnect sends a disconnect request (reason "refresh_requested",
// "warning", "link_disabled"…) on every connection.
func (s *Server) Disconnect(reason string) {
	s.mu.Lock()
	conns := append([]*conn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.writeJSON(map[string]any{"type": "disconnect", "reason": reason,
			"debug_info": map[string]any{"host": "applink-fake-1"}})
	}
}

// Drop closes every Socket Mode connection abruptly, without a close frame.
func (s *Server) Drop() {
	s.mu.Lock()
	conns := append([]*conn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		if tc, ok := c.ws.NetConn().(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.ws.NetConn().Close()
	}
}

// known reports whether tok is the user token or, when there is one, the
// bot token: what the chat.* methods accept.
func (s *Server) known(tok string) bool {
	return tok == s.opts.UserToken || s.opts.BotToken != "" && tok == s.opts.BotToken
}
