package s2s

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"mellium.im/xmpp/stanza"
)

// A host's client sessions (mellium's xmpp.Session, or any stream built on
// encoding/xml) speak in xml.Tokens, while the Manager moves stanzas as bytes.
// TokenReader and ReadStanza convert between the two, so that a host can put a
// delivered stanza on a client stream and hand a client's stanza to Send
// without writing its own serializer.
//
// The one subtle part is the stanza namespace: jabber:server on s2s streams,
// jabber:client on client streams (RFC 6120 §4.8.3). Both directions leave it
// implicit: elements in it come out with an empty Name.Space, so that they
// take the default namespace of whichever stream they are written to.

// ErrStanzaTooLarge is wrapped (with ErrNotStanza) by ReadStanza when the
// element is larger than the bound it was given.
var ErrStanzaTooLarge = errors.New("s2s: stanza too large")

// TokenReader returns the stanza as XML tokens, for writing to a stream with
// mellium's Session.Send or xmlstream.Copy. Elements in the stanza namespace
// (jabber:server, or no namespace at all) are given an empty Name.Space, so
// that written to a client stream they are in jabber:client and written to a
// server stream in jabber:server; elements of other namespaces keep theirs.
// Namespace declarations are not repeated as attributes: an encoding/xml
// Encoder (which mellium uses) declares each element's Name.Space itself.
//
// The reader parses Raw as it is read and returns the parser's error, if
// any, once the tokens before it are consumed; Raw that ParseStanza
// accepted always parses.
func (s Stanza) TokenReader() xml.TokenReader {
	return &stanzaTokens{d: xml.NewDecoder(bytes.NewReader(s.Raw))}
}

// stanzaTokens rewrites the stanza namespace of the tokens of one element.
type stanzaTokens struct {
	d *xml.Decoder
	// implicit records, per open element, whether it was written with an
	// empty Name.Space; a child in the stanza namespace may only be written
	// that way when its parent was, or it would inherit a foreign one.
	implicit []bool
	done     bool
}

func (t *stanzaTokens) Token() (xml.Token, error) {
	if t.done {
		return nil, io.EOF
	}
	tok, err := t.d.Token()
	if err != nil {
		return nil, err
	}
	switch el := tok.(type) {
	case xml.StartElement:
		parentImplicit := len(t.implicit) == 0 || t.implicit[len(t.implicit)-1]
		implicit := parentImplicit && (el.Name.Space == "" || el.Name.Space == stanza.NSServer)
		if implicit {
			el.Name.Space = ""
		}
		el.Attr = withoutNSDecls(el.Attr)
		t.implicit = append(t.implicit, implicit)
		return el, nil
	case xml.EndElement:
		if len(t.implicit) > 0 {
			if t.implicit[len(t.implicit)-1] {
				el.Name.Space = ""
			}
			t.implicit = t.implicit[:len(t.implicit)-1]
		}
		// Raw is one element: its end is the end of the tokens, whatever
		// whitespace follows.
		t.done = len(t.implicit) == 0
		return el, nil
	case xml.ProcInst, xml.Directive, xml.Comment:
		// Not part of a stanza (RFC 6120 §11.1); ParseStanza refuses them.
		return t.Token()
	}
	if len(t.implicit) == 0 {
		// Whitespace around the element.
		return t.Token()
	}
	return xml.CopyToken(tok), nil
}

// withoutNSDecls returns attrs without xmlns and xmlns:prefix declarations.
// It copies: the decoder's slice is not ours to change.
func withoutNSDecls(attrs []xml.Attr) []xml.Attr {
	out := make([]xml.Attr, 0, len(attrs))
	for _, a := range attrs {
		if (a.Name.Space == "" && a.Name.Local == "xmlns") || a.Name.Space == "xmlns" {
			continue
		}
		out = append(out, a)
	}
	return out
}

// ReadStanza reads one stanza from a token stream, as a client session hands
// it over, into a Stanza ready for SendStanza or for a local recipient's
// stream. start is the stanza's start element, already read from r (as
// mellium's Handler receives it; the host may have changed its attributes,
// for example to stamp 'from'); r yields the rest of the element up to and
// including its end element, and may go on beyond it (ReadStanza stops
// there).
//
// Elements in jabber:client, jabber:server or no namespace that are not
// inside an element of another namespace are written without a namespace,
// under a top-level xmlns='jabber:server', as Stanza.Raw expects. When the
// encoded stanza would exceed max bytes (max <= 0: no bound), ReadStanza
// stops and returns an error wrapping ErrStanzaTooLarge; a host reading from
// a client should bound it, typically with the max_stanza_size it gives its
// Manager. Errors wrap ErrNotStanza, and r's own error when it failed.
func ReadStanza(r xml.TokenReader, start *xml.StartElement, max int) (Stanza, error) {
	switch start.Name.Local {
	case "message", "presence", "iq":
	default:
		return Stanza{}, fmt.Errorf("%w: <%s/> is not message, presence or iq", ErrNotStanza, start.Name.Local)
	}
	switch start.Name.Space {
	case "", stanza.NSClient, stanza.NSServer:
	default:
		return Stanza{}, fmt.Errorf("%w: stanza namespace %q", ErrNotStanza, start.Name.Space)
	}
	var buf bytes.Buffer
	w := &boundedWriter{w: &buf, max: max}
	enc := xml.NewEncoder(w)
	top := *start
	top.Name.Space = ""
	top.Attr = append([]xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: stanza.NSServer}}, withoutNSDecls(start.Attr)...)
	if err := enc.EncodeToken(top); err != nil {
		return Stanza{}, readErr(err)
	}
	implicit := []bool{true}
	for len(implicit) > 0 {
		tok, err := r.Token()
		if err == io.EOF {
			return Stanza{}, fmt.Errorf("%w: the stream ended inside <%s/>", ErrNotStanza, start.Name.Local)
		}
		if err != nil {
			return Stanza{}, fmt.Errorf("%w: %w", ErrNotStanza, err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			ns := el.Name.Space
			imp := implicit[len(implicit)-1] && (ns == "" || ns == stanza.NSClient || ns == stanza.NSServer)
			if imp {
				el.Name.Space = ""
			}
			el.Attr = withoutNSDecls(el.Attr)
			implicit = append(implicit, imp)
			tok = el
		case xml.EndElement:
			if implicit[len(implicit)-1] {
				el.Name.Space = ""
			}
			implicit = implicit[:len(implicit)-1]
			tok = el
		case xml.ProcInst, xml.Directive, xml.Comment:
			return Stanza{}, fmt.Errorf("%w: %T inside a stanza", ErrNotStanza, tok)
		}
		if err := enc.EncodeToken(tok); err != nil {
			return Stanza{}, readErr(err)
		}
	}
	if err := enc.Flush(); err != nil {
		return Stanza{}, readErr(err)
	}
	st, err := ParseStanza(buf.Bytes())
	if err != nil {
		return Stanza{}, fmt.Errorf("%w: %w", ErrNotStanza, err)
	}
	return st, nil
}

func readErr(err error) error {
	return fmt.Errorf("%w: %w", ErrNotStanza, err)
}

// boundedWriter fails once more than max bytes were written to it.
type boundedWriter struct {
	w   io.Writer
	n   int
	max int
}

func (b *boundedWriter) Write(p []byte) (int, error) {
	if b.max > 0 && b.n+len(p) > b.max {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrStanzaTooLarge, b.max)
	}
	b.n += len(p)
	return b.w.Write(p)
}
