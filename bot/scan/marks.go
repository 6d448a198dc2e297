package scan

import (
	"maps"
	"sync"

	"github.com/securechat/securechat/bot/history"
)

// Marks holds, per conversation, the newest message ts handled this run
// (live or caught up), for the catch-up's watermarks. It holds one entry a
// conversation.
type Marks struct {
	mu      sync.Mutex
	newest  map[string]string
	changed map[string]bool
	unclean bool // an event was left unacknowledged: the watermarks are not exact
	// holds counts the catch-up windows not yet stored: while one is
	// pending, nothing is saved (neither watermarks nor the connection
	// time), so that live events cannot move the bounds the next start
	// would read from past messages of the outage nobody has read yet.
	holds int
	// saving is held across a save, so that a hold waits for a save in
	// flight.
	saving sync.Mutex
}

// Hold stops the saving of progress until release: a catch-up window is
// about to be stored.
func (m *Marks) Hold() {
	m.saving.Lock()
	m.mu.Lock()
	m.holds++
	m.mu.Unlock()
	m.saving.Unlock()
}

// Release ends a hold: the window is stored.
func (m *Marks) Release() {
	m.mu.Lock()
	m.holds = max(m.holds-1, 0)
	m.mu.Unlock()
}

func (m *Marks) Held() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.holds > 0
}

func NewMarks(stored map[string]string) *Marks {
	if stored == nil {
		stored = map[string]string{}
	}
	return &Marks{newest: stored, changed: map[string]bool{}}
}

// Handled notes a message Handled (scanned, skipped or recorded).
func (m *Marks) Handled(channel, ts string) {
	if channel == "" || ts == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if history.TSAfter(ts, m.newest[channel]) {
		m.newest[channel] = ts
		m.changed[channel] = true
	}
}

// Lost notes an event left unacknowledged.
func (m *Marks) Lost() {
	m.mu.Lock()
	m.unclean = true
	m.mu.Unlock()
}

// Snapshot copies the watermarks. The catch-up reads from a copy taken
// when the connection came back, before any live event moved them: a live
// message handled during the catch-up must not hide the older ones posted
// while the daemon was away.
func (m *Marks) Snapshot() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.newest)
}

// Take returns the watermarks changed since the last Take.
func (m *Marks) Take() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]string, len(m.changed))
	for ch := range m.changed {
		out[ch] = m.newest[ch]
	}
	clear(m.changed)
	return out
}

// Moved reports whether a watermark changed since the last take.
func (m *Marks) Moved() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.changed) > 0
}

// GiveBack marks watermarks as changed again after a failed save.
func (m *Marks) GiveBack(ms map[string]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for ch := range ms {
		m.changed[ch] = true
	}
}

func (m *Marks) IsClean() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.unclean
}

// Saving is held across a save of the marks, so that a Hold waits for a
// save in flight; it returns the unlock.
func (m *Marks) Saving() (unlock func()) {
	m.saving.Lock()
	return m.saving.Unlock
}
