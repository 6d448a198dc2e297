package fakeslack

// Interactivity over Socket Mode, as docs.slack.dev describes it: the
// "interactive" envelope (block_actions, view_submission), the
// "slash_commands" envelope (the command's form fields as a JSON object,
// accepts_response_payload true), the app_home_opened event, and the Web
// API methods an app answers with: chat.update, views.open, views.publish,
// and the message's response_url.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// ViewCall is one views.open or views.publish request.
type ViewCall struct {
	Method    string
	TriggerID string // views.open
	UserID    string // views.publish
	View      string // the view's JSON
	Token     string
}

// Response is one POST to a response_url.
type ResponseCall struct {
	URL  string
	Body map[string]any
	At   time.Time
}

type interactive struct {
	views     []ViewCall
	responses []ResponseCall
	triggers  map[string]time.Time // trigger id → when it was given
	seq       int
}

// Views returns the views.open and views.publish calls so far.
func (st *State) Views() []ViewCall { return append([]ViewCall(nil), st.s.interactive.views...) }

// Responses returns the response_url calls so far.
func (st *State) Responses() []ResponseCall {
	return append([]ResponseCall(nil), st.s.interactive.responses...)
}

func (s *Server) botToken(r *http.Request) (string, bool) {
	tok := token(r)
	return tok, s.opts.BotToken != "" && tok == s.opts.BotToken
}

func (s *Server) chatUpdate(w http.ResponseWriter, r *http.Request) {
	if _, done := s.answerScripted(w, "chat.update"); done {
		return
	}
	tok := token(r)
	if !s.known(tok) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	call := PostCall{Method: "chat.update", Channel: r.PostFormValue("channel"), TS: r.PostFormValue("ts"),
		Text: r.PostFormValue("text"), Blocks: r.PostFormValue("blocks"), Token: tok, At: time.Now()}
	s.mu.Lock()
	found := false
	for _, p := range s.posts {
		if p.Method == "chat.postMessage" && p.Channel == call.Channel && p.TS == call.TS {
			found = true
		}
	}
	if !found {
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "message_not_found"})
		return
	}
	s.posts = append(s.posts, call)
	s.notify()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "channel": call.Channel, "ts": call.TS, "text": call.Text})
}

func (s *Server) views(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, done := s.answerScripted(w, method); done {
			return
		}
		tok, ok := s.botToken(r)
		if !ok {
			// views.* need the bot user's token.
			writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "not_allowed_token_type"})
			return
		}
		call := ViewCall{Method: method, TriggerID: r.PostFormValue("trigger_id"), UserID: r.PostFormValue("user_id"), Token: tok}
		if ct := r.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
			var body struct {
				TriggerID string          `json:"trigger_id"`
				UserID    string          `json:"user_id"`
				View      json.RawMessage `json:"view"`
			}
			b, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(b, &body); err != nil {
				writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_json"})
				return
			}
			call.TriggerID, call.UserID, call.View = body.TriggerID, body.UserID, string(body.View)
		} else {
			call.View = r.PostFormValue("view")
		}
		var view map[string]any
		if json.Unmarshal([]byte(call.View), &view) != nil {
			writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_arguments"})
			return
		}
		s.mu.Lock()
		if method == "views.open" {
			at, known := s.interactive.triggers[call.TriggerID]
			if !known || time.Since(at) > 3*time.Second {
				s.mu.Unlock()
				writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "expired_trigger_id"})
				return
			}
			delete(s.interactive.triggers, call.TriggerID) // once
		} else if call.UserID == "" {
			s.mu.Unlock()
			writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_arguments"})
			return
		}
		s.interactive.views = append(s.interactive.views, call)
		s.interactive.seq++
		id := fmt.Sprintf("V%09d", s.interactive.seq)
		s.notify()
		s.mu.Unlock()
		view["id"] = id
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "view": view})
	}
}

func (s *Server) respond(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.interactive.responses = append(s.interactive.responses, ResponseCall{URL: r.URL.Path, Body: body, At: time.Now()})
	s.notify()
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "ok")
}

// ResponseURL is the response_url the server gives an interaction.
func (s *Server) ResponseURL(id string) string { return s.httpSrv.URL + "/respond/" + id }

func (s *Server) trigger() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.interactive.triggers == nil {
		s.interactive.triggers = map[string]time.Time{}
	}
	s.interactive.seq++
	id := fmt.Sprintf("%d.%d.fake%08x", time.Now().Unix(), s.interactive.seq, s.interactive.seq)
	s.interactive.triggers[id] = time.Now()
	return id
}

// Click is a member pressing a button.
type Click struct {
	User     string // who clicked
	ActionID string
	Value    string
	// Channel and MessageTS are the message the button is on; Ephemeral
	// says it was an ephemeral message (Slack sends no message then).
	Channel   string
	MessageTS string
	Ephemeral bool
	// Message is the message's text and blocks (a PostCall), for
	// non-ephemeral messages.
	Message *PostCall
	// ResponseID names the response_url ("" picks one).
	ResponseID string
}

func userObj(id string) map[string]any {
	return map[string]any{"id": id, "username": strings.ToLower(id), "name": strings.ToLower(id), "team_id": TeamID}
}

// SendClick sends a block_actions interactive envelope and returns its
// envelope id and the response_url it carries.
func (s *Server) SendClick(c Click) (envelopeID, responseURL string, err error) {
	if c.ResponseID == "" {
		s.mu.Lock()
		s.interactive.seq++
		c.ResponseID = fmt.Sprintf("T0FAKETEAM/%d/r%06d", time.Now().Unix(), s.interactive.seq)
		s.mu.Unlock()
	}
	responseURL = s.ResponseURL(c.ResponseID)
	payload := map[string]any{
		"type":       "block_actions",
		"user":       userObj(c.User),
		"api_app_id": AppID,
		"token":      "fakeVerificationToken",
		"container": map[string]any{"type": "message", "message_ts": c.MessageTS, "channel_id": c.Channel,
			"is_ephemeral": c.Ephemeral},
		"trigger_id":            s.trigger(),
		"team":                  map[string]any{"id": TeamID, "domain": "fake"},
		"enterprise":            nil,
		"is_enterprise_install": false,
		"channel":               map[string]any{"id": c.Channel, "name": "channel"},
		"response_url":          responseURL,
		"state":                 map[string]any{"values": map[string]any{}},
		"actions": []any{map[string]any{
			"action_id": c.ActionID, "block_id": "securechat_actions", "type": "button", "value": c.Value,
			"text": map[string]any{"type": "plain_text", "text": c.ActionID, "emoji": true}, "action_ts": fmt.Sprintf("%d.000100", time.Now().Unix()),
		}},
	}
	if c.Message != nil && !c.Ephemeral {
		msg := map[string]any{"type": "message", "ts": c.Message.TS, "text": c.Message.Text, "user": "U0BOT000001", "bot_id": "B0BOT000001"}
		var blocks any
		if json.Unmarshal([]byte(c.Message.Blocks), &blocks) == nil {
			msg["blocks"] = blocks
		}
		payload["message"] = msg
	}
	id, err := s.sendInteraction("interactive", payload, false)
	return id, responseURL, err
}

// SendViewSubmission sends a view_submission for a modal the app opened:
// values maps block_id → action_id → the input's value.
func (s *Server) SendViewSubmission(user, callbackID, privateMetadata string, values map[string]map[string]string) (string, error) {
	state := map[string]any{}
	for block, actions := range values {
		m := map[string]any{}
		for action, v := range actions {
			m[action] = map[string]any{"type": "plain_text_input", "value": v}
		}
		state[block] = m
	}
	payload := map[string]any{
		"type":       "view_submission",
		"team":       map[string]any{"id": TeamID, "domain": "fake"},
		"user":       userObj(user),
		"api_app_id": AppID,
		"token":      "fakeVerificationToken",
		"trigger_id": s.trigger(),
		"view": map[string]any{
			"id": "V0MODAL001", "team_id": TeamID, "type": "modal", "callback_id": callbackID,
			"private_metadata": privateMetadata, "state": map[string]any{"values": state}, "hash": "1.fake",
			"title": map[string]any{"type": "plain_text", "text": "securechat"}, "blocks": []any{},
		},
		"response_urls": []any{},
	}
	return s.sendInteraction("interactive", payload, true)
}

// SendSlashCommand sends a /securechat command as Socket Mode does: the
// command's form fields as a JSON object. It returns the envelope id and
// the response_url.
func (s *Server) SendSlashCommand(user, channel, text string) (envelopeID, responseURL string, err error) {
	s.mu.Lock()
	s.interactive.seq++
	n := s.interactive.seq
	s.mu.Unlock()
	responseURL = s.ResponseURL(fmt.Sprintf("commands/%s/%d", TeamID, n))
	payload := map[string]any{
		"token": "fakeVerificationToken", "team_id": TeamID, "team_domain": "fake", "channel_id": channel, "channel_name": "channel",
		"user_id": user, "user_name": strings.ToLower(user), "command": "/securechat", "text": text, "api_app_id": AppID,
		"is_enterprise_install": "false", "response_url": responseURL, "trigger_id": s.trigger(),
	}
	id, err := s.sendInteraction("slash_commands", payload, true)
	return id, responseURL, err
}

// SendAppHomeOpened sends the app_home_opened event of a member opening the
// app's Home tab.
func (s *Server) SendAppHomeOpened(user string) (string, error) {
	return s.SendEvent(map[string]any{"type": "app_home_opened", "user": user, "channel": "D" + strings.TrimPrefix(user, "U"),
		"tab": "home", "event_ts": fmt.Sprintf("%d.000200", time.Now().Unix())})
}

func (s *Server) sendInteraction(typ string, payload map[string]any, acceptsResponse bool) (string, error) {
	s.mu.Lock()
	s.seq++
	n := s.seq
	s.mu.Unlock()
	envelopeID := fmt.Sprintf("%08x-fake-int-%04x-%012x", n&0xffffffff, n&0xffff, n)
	body := map[string]any{"envelope_id": envelopeID, "type": typ, "payload": payload, "accepts_response_payload": acceptsResponse}
	frame, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	return envelopeID, s.Send(&Prepared{EnvelopeID: envelopeID, body: body, frame: frame})
}
