package socket

import (
	"testing"

	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
)

func TestRouteOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   socketmode.Event
		want int
	}{
		{"a button", socketmode.Event{Type: socketmode.EventTypeInteractive}, RoutePeople},
		{"/securechat", socketmode.Event{Type: socketmode.EventTypeSlashCommand}, RoutePeople},
		{"the Home tab", socketmode.Event{Type: socketmode.EventTypeEventsAPI,
			Data: slackevents.EventsAPIEvent{InnerEvent: slackevents.EventsAPIInnerEvent{Type: "app_home_opened"}}}, RoutePeople},
		{"a message", socketmode.Event{Type: socketmode.EventTypeEventsAPI,
			Data: slackevents.EventsAPIEvent{InnerEvent: slackevents.EventsAPIInnerEvent{Type: "message"}}}, RouteScan},
		{"an interaction slack-go could not read", socketmode.Event{Type: socketmode.EventTypeErrorBadMessage,
			Data: &socketmode.ErrorBadMessage{Message: []byte(`{"envelope_id":"e","type":"interactive","payload":{"user":7}}`)}}, RoutePeople},
		{"a command slack-go could not read", socketmode.Event{Type: socketmode.EventTypeErrorBadMessage,
			Data: &socketmode.ErrorBadMessage{Message: []byte(`{"envelope_id":"e","type":"slash_commands","payload":[]}`)}}, RoutePeople},
		{"an event slack-go could not read", socketmode.Event{Type: socketmode.EventTypeErrorBadMessage,
			Data: &socketmode.ErrorBadMessage{Message: []byte(`{"envelope_id":"e","type":"events_api","payload":{}}`)}}, RouteScan},
		{"a frame that is not JSON", socketmode.Event{Type: socketmode.EventTypeErrorBadMessage,
			Data: &socketmode.ErrorBadMessage{Message: []byte(`not json`)}}, RouteScan},
	} {
		if got := RouteOf(tc.ev); got != tc.want {
			t.Errorf("%s: route %d, want %d", tc.name, got, tc.want)
		}
	}
}
