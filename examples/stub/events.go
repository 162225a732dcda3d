package main

import (
	"encoding/json"
	"errors"
	"io"
	"sync"

	"github.com/xmpp-s2s/federation/s2s"
)

// event is one line of the stub's stdout. Fields that do not apply to an
// event are left out of its JSON.
type event struct {
	Event     string   `json:"event"`
	Addr      string   `json:"addr,omitempty"`
	Domains   []string `json:"domains,omitempty"`
	Direction string   `json:"direction,omitempty"`
	Local     string   `json:"local,omitempty"`
	Remote    string   `json:"remote,omitempty"`
	TLS       string   `json:"tls,omitempty"`
	Cipher    string   `json:"cipher,omitempty"`
	Auth      string   `json:"auth,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	From      string   `json:"from,omitempty"`
	To        string   `json:"to,omitempty"`
	ID        string   `json:"id,omitempty"`
	Condition string   `json:"condition,omitempty"`
	Text      string   `json:"text,omitempty"`
	Op        string   `json:"op,omitempty"`
	Error     string   `json:"error,omitempty"`
	XML       string   `json:"xml,omitempty"`
}

// Event names, as the package doc lists them.
const (
	evListening = "listening"
	evHTTP      = "http"
	evStanza    = "stanza"
	evBounce    = "bounce"
	evLinkUp    = "link-up"
	evLinkDown  = "link-down"
	evPeer      = "peer"
	evError     = "error"
)

// events writes events as JSON lines. The Manager calls it from many
// goroutines; a mutex keeps each line whole.
type events struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newEvents(w io.Writer) *events {
	enc := json.NewEncoder(w)
	// The xml fields are for people and test suites to read: keep < and >.
	enc.SetEscapeHTML(false)
	return &events{enc: enc}
}

// emit writes one event. A consumer that went away is not the stub's
// problem: the error is dropped, as the stub has nowhere else to report it.
func (e *events) emit(ev event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.enc.Encode(ev)
}

func (e *events) stanza(s s2s.Stanza) {
	e.emit(event{Event: evStanza, From: s.From, To: s.To, ID: s.ID, XML: string(s.Raw)})
}

func (e *events) bounce(b s2s.Bounce) {
	e.emit(event{Event: evBounce, From: b.Stanza.From, To: b.Stanza.To, ID: b.Stanza.ID,
		Condition: string(b.Condition), Text: b.Text, XML: string(b.Stanza.Raw)})
}

func (e *events) sendFailed(line []byte, err error) {
	e.emit(event{Event: evError, Op: "send", Error: err.Error(), XML: string(line)})
}

// observe reports the link events of a Manager. Stanzas and bounces are
// reported by the Deliver and Bounce callbacks instead, once each.
func (e *events) observe(ev s2s.Event) {
	l := ev.Link
	switch ev.Kind {
	case s2s.LinkUp:
		e.emit(event{Event: evLinkUp, Direction: l.Direction.String(), Local: l.Local, Remote: l.Remote,
			TLS: l.TLS(), Cipher: l.Cipher(), Auth: l.Auth.String()})
	case s2s.LinkDown:
		e.emit(event{Event: evLinkDown, Direction: l.Direction.String(), Local: l.Local, Remote: l.Remote,
			Reason: linkDownReason(ev)})
	case s2s.AuthFailed:
		e.emit(event{Event: evError, Op: "auth", Direction: l.Direction.String(), Local: l.Local, Remote: l.Remote, Error: errText(ev.Err)})
	case s2s.LinkFailed:
		e.emit(event{Event: evError, Op: "link", Direction: l.Direction.String(), Local: l.Local, Remote: l.Remote, Error: errText(ev.Err)})
	}
}

// linkDownReason is "closed" for a clean close (ours or the peer's), else
// the error's text.
func linkDownReason(ev s2s.Event) string {
	if ev.Err == nil || errors.Is(ev.Err, s2s.ErrPeerClosed) {
		return "closed"
	}
	return ev.Err.Error()
}

func errText(err error) string {
	if err == nil {
		return "unknown"
	}
	return err.Error()
}
