package wire

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"mellium.im/xmpp/stream"
)

// ParseStanza checks a stanza that the host hands over for sending and
// extracts its envelope. raw must be exactly one well-formed element named
// message, presence or iq, optionally surrounded by whitespace, under the
// same restrictions as received XML (RFC 6120 §11). Its default namespace
// may be absent (jabber:server is then implied), jabber:server, or
// jabber:client: a stanza from a c2s session. jabber:client is rewritten to
// jabber:server in place of the attribute's value, so that every element of
// the stanza that inherited it moves with it (RFC 6120 §4.8.3); any other
// default namespace is refused. Prefixes must be declared inside raw.
//
// Raw in the result is raw itself, trimmed of surrounding whitespace and not
// copied, unless the namespace was rewritten (then it is a new slice).
// Errors wrap ErrBadStanza, and the condition the bytes would have earned
// on a stream (errors.As with stream.Error), for logging.
func ParseStanza(raw []byte) (Element, error) {
	var e Element
	err := ParseStanzaInto(raw, &e)
	return e, err
}

// ParseStanzaInto is ParseStanza into *e, which it sets whole (zero on
// error), for a caller that keeps the envelope in a struct of its own: an
// Element is thirteen words, copied out of each call on the way.
func ParseStanzaInto(raw []byte, e *Element) error {
	for len(raw) > 0 && isSpaceByte(raw[0]) {
		raw = raw[1:]
	}
	for len(raw) > 0 && isSpaceByte(raw[len(raw)-1]) {
		raw = raw[:len(raw)-1]
	}
	f := fastParsers.Get().(*fastParser)
	ok := f.parse(raw, e)
	at, prefixed := f.nameEnd, f.topPrefixed
	f.release()
	fastParsers.Put(f)
	if !ok {
		var start xml.Name
		var err error
		if *e, start, err = parseComplete(raw, nil, 0, false); err != nil {
			*e = Element{}
			return badStanza(err)
		}
		at, prefixed = nameEnd(start), start.Space != ""
	}
	var err error
	switch e.Name.Local {
	case "message", "presence", "iq":
		switch e.Name.Space {
		case NSServer:
			e.Raw = raw
		case NSClient:
			if prefixed {
				// A prefixed stanza in jabber:client; the prefix's
				// declaration would need rewriting instead. No
				// server sends this.
				err = errors.New("prefixed jabber:client stanza")
				break
			}
			e.Raw, err = rewriteDefaultNS(raw, at)
			e.Name.Space = NSServer
		default:
			err = fmt.Errorf("stanza namespace %q", e.Name.Space)
		}
	default:
		err = fmt.Errorf("<%s/> is not message, presence or iq", e.Name.Local)
	}
	if err != nil {
		*e = Element{}
		return badStanza(err)
	}
	return nil
}

// fastParsers keeps ParseStanza's parsers, for their slices.
var fastParsers = sync.Pool{New: func() any { return new(fastParser) }}

// oracles keeps Readers for parseComplete, whose xml.Decoder is the
// costly part to allocate. A Reader is reused over new bytes by pointing
// its source at them; its decoder holds no state between elements once an
// element ended without error.
var oracles = sync.Pool{New: func() any {
	return newReader(newBytesSource(nil), 0)
}}

// parseComplete parses raw, which must be exactly one element, with
// encoding/xml: the reference the fast path is held to, and the source of
// every error. outer holds the prefixes declared outside raw. With copyRaw,
// the result's Raw is a self-contained copy; otherwise it is unset.
func parseComplete(raw []byte, outer map[string]string, maxDepth int, copyRaw bool) (Element, xml.Name, error) {
	r := oracles.Get().(*Reader)
	r.p.outer, r.p.maxDepth = outer, maxDepth
	e, start, err := r.parseOne(raw)
	if err == nil && copyRaw {
		e.Raw = buildRaw(raw, nameEnd(start.Name), r.p.inject, outer)
	}
	if err != nil || len(raw) > bigElement {
		// The decoder's error is sticky, and its buffers keep the size
		// of the largest input: start afresh next time.
		r.newDecoder()
	}
	// Do not keep the caller's bytes alive from the pool.
	r.src.buf = nil
	r.p.outer = nil
	oracles.Put(r)
	return e, start.Name, err
}

// parseOne parses raw as one element with r, which is pointed at it.
func (r *Reader) parseOne(raw []byte) (Element, xml.StartElement, error) {
	src := r.src
	*src = source{buf: raw, end: len(raw), stop: len(raw), mark: -1, err: io.EOF, eof: true}
	tok, err := r.dec.RawToken()
	if err != nil {
		return Element{}, xml.StartElement{}, r.classify(err)
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return Element{}, start, errors.New("wire: does not start with an element")
	}
	e, err := r.p.parse(start)
	if err != nil {
		return Element{}, start, r.classify(err)
	}
	if src.pos != len(raw) {
		return Element{}, start, errors.New("wire: more than one element")
	}
	return e, start, nil
}

func badStanza(err error) error {
	if errors.Is(err, ErrUnexpectedEOF) {
		err = streamErr(stream.NotWellFormed, "unclosed element")
	}
	return &StanzaError{Reason: strings.TrimPrefix(err.Error(), "wire: "), Err: err}
}

// StanzaError is what ParseStanza returns: why the bytes are not a stanza,
// with the cause (often a stream.Error) for errors.As. A layer above that
// says "not a stanza" in its own words uses Reason alone, so that the text
// does not repeat "not a stanza" and "wire:" at every layer.
type StanzaError struct {
	Reason string // the problem, without a package prefix
	Err    error  // the cause
}

// Error returns "wire: not a stanza: " and the reason.
func (e *StanzaError) Error() string { return ErrBadStanza.Error() + ": " + e.Reason }

// Unwrap returns ErrBadStanza and the cause.
func (e *StanzaError) Unwrap() []error { return []error{ErrBadStanza, e.Err} }

// rewriteDefaultNS returns a copy of raw whose top-level xmlns value is
// jabber:server. It walks the attributes of the first tag, which the decoder
// has already found well formed, to find the value's exact bytes (it may be
// written with character references, so its length is not known in advance).
// The tag's name ends at raw[i].
func rewriteDefaultNS(raw []byte, i int) ([]byte, error) {
	for i < len(raw) {
		for i < len(raw) && isSpaceByte(raw[i]) {
			i++
		}
		if i >= len(raw) || raw[i] == '>' || raw[i] == '/' {
			break
		}
		ns := i
		for i < len(raw) && raw[i] != '=' && !isSpaceByte(raw[i]) {
			i++
		}
		attr := raw[ns:i]
		for i < len(raw) && raw[i] != '\'' && raw[i] != '"' {
			i++
		}
		if i >= len(raw) {
			break
		}
		q := raw[i]
		vs := i + 1
		ve := bytes.IndexByte(raw[vs:], q)
		if ve < 0 {
			break
		}
		ve += vs
		if string(attr) == "xmlns" {
			out := make([]byte, 0, len(raw)-(ve-vs)+len(NSServer))
			out = append(out, raw[:vs]...)
			out = append(out, NSServer...)
			return append(out, raw[ve:]...), nil
		}
		i = ve + 1
	}
	// Unreachable for input the decoder accepted.
	return nil, io.ErrUnexpectedEOF
}
