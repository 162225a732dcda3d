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
//
// A line is encoded into a buffer under the mutex and written by a
// goroutine of its own, which takes everything pending in one Write: a
// stanza used to cost a write(2) on the goroutine that delivered it, the
// stub's largest single cost when a suite pipelines pings. No line waits for
// a timer or for more lines: the writer starts on the first pending line,
// and lines that arrive while it writes go out in its next Write. Emitters
// block only while maxPending bytes wait for a consumer that stopped
// reading, as they blocked in write(2) before.
type events struct {
	w io.Writer

	mu      sync.Mutex
	ready   sync.Cond // the writer waits here for pending lines, or closing
	room    sync.Cond // emitters wait here while pending is full
	pending []byte    // encoded lines the writer has not taken yet
	enc     *json.Encoder
	closed  bool          // close was called
	stopped bool          // the writer has returned: emitters write themselves
	done    chan struct{} // closed when the writer has returned
}

// maxPending is how many bytes of lines may wait for the writer before
// emitters block.
const maxPending = 1 << 20

// pendingBuf is where the encoder appends: always the current pending
// buffer, which the writer swaps out.
type pendingBuf struct{ e *events }

func (p pendingBuf) Write(b []byte) (int, error) {
	p.e.pending = append(p.e.pending, b...)
	return len(b), nil
}

func newEvents(w io.Writer) *events {
	e := &events{w: w, done: make(chan struct{})}
	e.ready.L, e.room.L = &e.mu, &e.mu
	e.enc = json.NewEncoder(pendingBuf{e})
	// The xml fields are for people and test suites to read: keep < and >.
	e.enc.SetEscapeHTML(false)
	go e.write()
	return e
}

// write hands pending lines to w until close, then writes what is left and
// returns. A write error is dropped with its lines: a consumer that went
// away is not the stub's problem, and it has nowhere else to report it.
func (e *events) write() {
	defer close(e.done)
	var out []byte
	e.mu.Lock()
	for {
		for len(e.pending) == 0 && !e.closed {
			e.ready.Wait()
		}
		if len(e.pending) == 0 {
			e.stopped = true
			e.mu.Unlock()
			return
		}
		// Two buffers, swapped: emitters fill one while the other is
		// written.
		out, e.pending = e.pending, out[:0]
		e.room.Broadcast()
		e.mu.Unlock()
		_, _ = e.w.Write(out)
		e.mu.Lock()
	}
}

// close writes every line emitted so far and stops the writer; lines
// emitted later are written at once by their emitter. run calls it before
// it returns, so that nothing is lost when the process exits.
func (e *events) close() {
	e.mu.Lock()
	e.closed = true
	e.ready.Signal()
	e.mu.Unlock()
	<-e.done
}

// emit queues one event line.
func (e *events) emit(ev event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(e.pending) >= maxPending && !e.closed {
		e.room.Wait()
	}
	wasEmpty := len(e.pending) == 0
	_ = e.enc.Encode(ev)
	switch {
	case e.stopped:
		// A late event (a callback still running after run's end): the
		// mutex orders it after everything the writer wrote.
		_, _ = e.w.Write(e.pending)
		e.pending = e.pending[:0]
	case wasEmpty:
		e.ready.Signal()
	}
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
