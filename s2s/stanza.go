package s2s

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/internal/wire"
)

// Stanza is one XMPP stanza as it crosses the Manager's API: the exact bytes
// plus the envelope parsed from them once, so that neither side has to parse
// the stanza again to route it.
//
// Raw is a single self-contained element whose default namespace is
// jabber:server (it may have no xmlns attribute at all). A Stanza handed to
// the host's callbacks is owned by the host; the Manager never changes it.
type Stanza struct {
	Name string // "message", "presence" or "iq"
	From string // the from attribute, as written (see Config.Deliver)
	To   string // the to attribute, as written (see Config.Deliver)
	ID   string // the id attribute, as written
	Type string // the type attribute, as written ("" when absent)
	Raw  []byte

	// resent says the stanza was written on a stream that died before the
	// peer acknowledged it (XEP-0198) and went back to its link's queue:
	// it is not sent a third time (smout.go).
	resent bool
	// seq is the order Send accepted the stanza in (Manager.seq), so that
	// stanzas handed back from a dead stream shared by several pairs go
	// back into their link's queue in order (requeue.go).
	seq uint64
	// held is the unacknowledged count of the inView that wrote the
	// stanza on a stream shared by several links (smrev.go), nil
	// elsewhere.
	held *atomic.Int64
}

func stanzaOf(e *wire.Element) Stanza {
	return Stanza{Name: e.Name.Local, From: e.From, To: e.To, ID: e.ID, Type: e.Type, Raw: e.Raw}
}

// ParseStanza checks raw, one message, presence or iq element, and returns it
// with its envelope. A top-level xmlns='jabber:client' (a stanza that came from
// a client session) is rewritten to jabber:server; the bytes are otherwise
// kept as they are. Send calls it; a host that has the bytes anyway and wants
// to check them before queueing can call it too. Its errors wrap
// ErrNotStanza, and the stream error condition the bytes would earn on a
// stream (errors.As with a stream.Error), when there is one.
func ParseStanza(raw []byte) (Stanza, error) {
	var s Stanza
	err := parseStanza(raw, &s)
	return s, err
}

// parseStanza is ParseStanza into *s, for Send: a Stanza is sixteen words,
// and the Element it comes from thirteen, each copied out of every call on
// the way.
func parseStanza(raw []byte, s *Stanza) error {
	var e wire.Element
	if err := wire.ParseStanzaInto(raw, &e); err != nil {
		return notAStanza(err)
	}
	*s = stanzaOf(&e)
	return nil
}

// notAStanza is ParseStanza's error for wire's.
func notAStanza(err error) error {
	var se *wire.StanzaError
	if errors.As(err, &se) {
		return &notStanza{reason: se.Reason, err: se.Err}
	}
	return fmt.Errorf("%w: %w", ErrNotStanza, err)
}

// notStanza says why bytes are not a stanza under the s2s prefix alone:
// "s2s: not a stanza: more than one element".
type notStanza struct {
	reason string
	err    error
}

func (e *notStanza) Error() string   { return ErrNotStanza.Error() + ": " + e.reason }
func (e *notStanza) Unwrap() []error { return []error{ErrNotStanza, e.err} }

// withDomain returns the JID j with its domain replaced by d.
func withDomain(j, d string) string {
	var local, res string
	if i := strings.IndexByte(j, '/'); i >= 0 {
		j, res = j[:i], j[i:]
	}
	if i := strings.IndexByte(j, '@'); i >= 0 {
		local = j[:i+1]
	}
	return local + d + res
}

// domainsOf is a reader's domainpart of the stanzas' from and to, with
// the last of each remembered: the parser hands the same string again
// for a from or to that repeats the last element's, and a string compared
// with itself is equal at once, where domainpart scans it twice.
type domainsOf struct {
	from, fromDomain string
	to, toDomain     string
}

// of returns the domains of from and to.
func (d *domainsOf) of(from, to string) (string, string) {
	if from != d.from {
		d.from, d.fromDomain = from, domainpart(from)
	}
	if to != d.to {
		d.to, d.toDomain = to, domainpart(to)
	}
	return d.fromDomain, d.toDomain
}

// Domainpart returns the domain of a JID written as local@domain/resource,
// without checking it.
func domainpart(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		j = j[:i]
	}
	if i := strings.IndexByte(j, '@'); i >= 0 {
		j = j[i+1:]
	}
	return j
}

// Bounce is a stanza that the Manager could not send, handed back to the host
// with the reason. Every stanza given to Send ends either written to an
// authenticated stream or in exactly one Bounce.
type Bounce struct {
	// Stanza is the stanza as the host gave it to Send.
	Stanza Stanza
	// Condition is the XMPP stanza error condition (RFC 6120 §8.3.3):
	// remote-server-not-found, remote-server-timeout, policy-violation,
	// resource-constraint or service-unavailable.
	Condition stanza.Condition
	// Text says why, for a person: which domain, what failed.
	Text string
	// Err is the underlying cause, for errors.Is/As; it may be nil.
	Err error
}

// errorType is the RFC 6120 §8.3.2 error type that goes with a condition:
// wait for the transient ones, cancel for the rest.
func errorType(c stanza.Condition) stanza.ErrorType {
	switch c {
	case stanza.RemoteServerTimeout, stanza.ResourceConstraint:
		return stanza.Wait
	}
	return stanza.Cancel
}

// Reply returns the error stanza to give back to the original sender: the
// same kind of stanza, from and to swapped, the same id, type='error' and an
// <error/> with the condition and text (RFC 6120 §8.3). The original payload
// is not included. Reply returns nil for a stanza of type error, which must
// never be answered with another error.
func (b Bounce) Reply() []byte {
	s := b.Stanza
	if s.Type == "error" {
		return nil
	}
	se := stanza.Error{Type: errorType(b.Condition), Condition: b.Condition}
	if b.Text != "" {
		se.Text = map[string]string{"": b.Text}
	}
	start := xml.StartElement{Name: xml.Name{Space: stanza.NSServer, Local: s.Name}}
	for _, a := range [...]struct{ name, value string }{{"from", s.To}, {"to", s.From}, {"id", s.ID}, {"type", "error"}} {
		if a.value != "" {
			start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: a.name}, Value: a.value})
		}
	}
	var buf bytes.Buffer
	if err := writeTokens(&buf, xmlstream.Wrap(se.TokenReader(), start)); err != nil {
		// mellium's error element is built from our own values: a
		// failure here is a bug, not bad input.
		panic(err)
	}
	return buf.Bytes()
}

// writeTokens writes an element in the form every stanza the Manager makes
// has: single-quoted attributes, a namespace declared where it changes,
// empty elements closed in their start tag. encoding/xml's Encoder would
// declare namespaces with double quotes on every element.
func writeTokens(buf *bytes.Buffer, tr xml.TokenReader) error {
	type open struct {
		name  xml.Name
		ns    string // the default namespace in scope inside
		empty bool   // nothing written inside yet: may self-close
	}
	var stack []open
	closeStart := func() {
		if n := len(stack); n > 0 && stack[n-1].empty {
			buf.WriteByte('>')
			stack[n-1].empty = false
		}
	}
	for {
		tok, err := tr.Token()
		if err != nil && err != io.EOF {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			closeStart()
			scope := ""
			if n := len(stack); n > 0 {
				scope = stack[n-1].ns
			}
			// No namespace means the one in scope, as mellium's
			// elements (<error/>) are written.
			ns := t.Name.Space
			if ns == "" {
				ns = scope
			}
			buf.WriteByte('<')
			buf.WriteString(t.Name.Local)
			if ns != scope {
				buf.WriteString(" xmlns='")
				xml.EscapeText(buf, []byte(ns))
				buf.WriteByte('\'')
			}
			for _, a := range t.Attr {
				buf.WriteByte(' ')
				if a.Name.Space == "http://www.w3.org/XML/1998/namespace" {
					buf.WriteString("xml:")
				}
				buf.WriteString(a.Name.Local)
				buf.WriteString("='")
				xml.EscapeText(buf, []byte(a.Value))
				buf.WriteByte('\'')
			}
			stack = append(stack, open{name: t.Name, ns: ns, empty: true})
		case xml.EndElement:
			n := len(stack)
			if n == 0 {
				return fmt.Errorf("s2s: </%s> without a start", t.Name.Local)
			}
			if stack[n-1].empty {
				buf.WriteString("/>")
			} else {
				buf.WriteString("</")
				buf.WriteString(stack[n-1].name.Local)
				buf.WriteByte('>')
			}
			stack = stack[:n-1]
		case xml.CharData:
			closeStart()
			xml.EscapeText(buf, t)
		}
		if err == io.EOF {
			if len(stack) > 0 {
				return fmt.Errorf("s2s: <%s> not closed", stack[len(stack)-1].name.Local)
			}
			return nil
		}
	}
}
