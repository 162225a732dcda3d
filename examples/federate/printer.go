package main

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/xmpp-s2s/federation/s2s"
)

// printer writes the demo's log, one line per step. Observers of both
// Managers call it from their link goroutines, so it serialises lines.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// arrow draws a link from our side: -> for the links we opened, <- for the
// ones the other domain opened to us.
func arrow(l s2s.LinkInfo) string {
	if l.Direction == s2s.Incoming {
		return l.Local + " <- " + l.Remote
	}
	return l.Local + " -> " + l.Remote
}

// observe turns a Manager's events into log lines. Stanza events are left
// out: the demo prints each message where it checks it.
func (p *printer) observe(e s2s.Event) {
	switch e.Kind {
	case s2s.LinkUp:
		p.printf("link up    %s  %-3s  %s %s %s", arrow(e.Link), e.Link.Direction, e.Link.TLS(), e.Link.Cipher(), e.Link.Auth)
	case s2s.LinkDown:
		why := "closed"
		switch {
		case errors.Is(e.Err, s2s.ErrPeerClosed):
			why = "closed by the peer"
		case e.Err != nil:
			why = e.Err.Error()
		}
		p.printf("link down  %s  %-3s  %s", arrow(e.Link), e.Link.Direction, why)
	case s2s.AuthFailed:
		p.printf("refused    %s  %-3s  %v", arrow(e.Link), e.Link.Direction, e.Err)
	case s2s.LinkFailed:
		p.printf("failed     %s  %-3s  %v", arrow(e.Link), e.Link.Direction, e.Err)
	case s2s.Bounced:
		p.printf("bounced    %s -> %s  %s: %s", e.Bounce.Stanza.From, e.Bounce.Stanza.To, e.Bounce.Condition, e.Bounce.Text)
	}
}

// body returns the text of a message's <body/>, or "" when it has none or
// is not well-formed.
func body(raw []byte) string {
	var m struct {
		Body string `xml:"body"`
	}
	if xml.Unmarshal(raw, &m) != nil {
		return ""
	}
	return m.Body
}

// xmlEscape writes s as XML character data.
func xmlEscape(w io.Writer, s string) {
	xml.EscapeText(w, []byte(s))
}
