package wire

import (
	"bytes"
	"encoding/xml"
	"io"

	"mellium.im/xmpp/stream"
)

// Element is one top-level element of a stream: a stanza, a dialback
// element, features, a STARTTLS or SASL element. Its fields are set once and
// never changed by this package; an Element may be shared between goroutines
// once returned.
type Element struct {
	// Name is the element's expanded name: the namespace, not the prefix.
	// An unprefixed element without its own xmlns is in NSServer.
	Name xml.Name

	// The envelope: the unprefixed attributes of the element, unescaped.
	// Empty when absent.
	From, To, ID, Type string

	// Raw is the element exactly as received, owned by the caller. It is
	// self-contained: it parses alone, with NSServer as the default
	// namespace in effect (the host should treat a Raw without xmlns as a
	// jabber:server element). The only bytes ever added are xmlns:prefix
	// declarations on the top-level tag, when the element used a prefix
	// that the peer declared on its stream header; nothing is re-encoded.
	Raw []byte
}

// TokenReader returns namespace-resolved tokens of e: its start element,
// its content and its end element, as xml.Decoder.Token gives them. It is
// meant for the elements that are read rarely (dialback, features, STARTTLS,
// SASL); stanzas on the hot path should be handed on as Raw.
func (e Element) TokenReader() xml.TokenReader {
	// A synthetic parent supplies the stream's default namespace, which Raw
	// relies on; every prefix Raw uses is declared inside it.
	var b bytes.Buffer
	b.Grow(len(e.Raw) + 40)
	b.WriteString("<s xmlns='" + NSServer + "'>")
	b.Write(e.Raw)
	b.WriteString("</s>")
	return &innerReader{d: xml.NewDecoder(&b)}
}

// innerReader drops the synthetic parent's start and end.
type innerReader struct {
	d     *xml.Decoder
	depth int
	done  bool
}

func (r *innerReader) Token() (xml.Token, error) {
	for {
		if r.done {
			return nil, io.EOF
		}
		tok, err := r.d.Token()
		if err != nil {
			return nil, err
		}
		switch tok.(type) {
		case xml.StartElement:
			r.depth++
			if r.depth == 1 {
				continue
			}
		case xml.EndElement:
			r.depth--
			if r.depth == 0 {
				r.done = true
				continue
			}
		}
		if r.depth == 0 {
			// Whitespace around Raw inside the synthetic parent.
			continue
		}
		return tok, nil
	}
}

// binding is a namespace prefix declared inside the element being parsed.
type binding struct {
	prefix, uri string
	depth       int
}

// elemParser checks and summarises one element read through dec. It keeps
// its slices between elements so the steady state does not allocate for
// them.
type elemParser struct {
	dec      *xml.Decoder
	outer    map[string]string // prefixes bound outside the element (header)
	maxDepth int

	stack  []xml.Name // open elements, prefix form, for end-tag matching
	scope  []binding  // declarations in force inside the element
	inject []string   // outer prefixes the element uses
}

// parse reads the rest of the element that start opened and returns it with
// Raw unset; inject lists the outer prefixes Raw must declare.
func (p *elemParser) parse(start xml.StartElement) (Element, error) {
	p.stack = p.stack[:0]
	p.scope = p.scope[:0]
	p.inject = p.inject[:0]

	var e Element
	defNS := NSServer
	if err := p.open(start, &e, &defNS); err != nil {
		return e, err
	}
	var err error
	if e.Name.Space, err = p.resolve(start.Name.Space, defNS); err != nil {
		return e, err
	}
	e.Name.Local = start.Name.Local
	if e.Name.Space == NSStream && e.Name.Local == "stream" {
		// Refused before reading on: it would never close.
		return e, streamErr(stream.BadFormat, "second stream header")
	}
	for {
		tok, err := p.dec.RawToken()
		if err != nil {
			return e, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if err := p.open(t, nil, nil); err != nil {
				return e, err
			}
			if t.Name.Space != "" {
				if _, err := p.resolve(t.Name.Space, ""); err != nil {
					return e, err
				}
			}
		case xml.EndElement:
			top := p.stack[len(p.stack)-1]
			if t.Name != top {
				return e, streamErr(stream.NotWellFormed, "end tag %s does not match %s", qname(t.Name), qname(top))
			}
			depth := len(p.stack)
			for len(p.scope) > 0 && p.scope[len(p.scope)-1].depth == depth {
				p.scope = p.scope[:len(p.scope)-1]
			}
			p.stack = p.stack[:depth-1]
			if depth == 1 {
				return e, nil
			}
		case xml.CharData:
		case xml.Comment:
			return e, streamErr(stream.RestrictedXML, "comment")
		case xml.ProcInst:
			return e, streamErr(stream.RestrictedXML, "processing instruction")
		case xml.Directive:
			return e, streamErr(stream.RestrictedXML, "DTD or entity declaration")
		}
	}
}

// open pushes a start tag: depth limit, duplicate attributes, namespace
// declarations and attribute prefixes. For the top-level tag (e non-nil) it
// also fills the envelope and the element's default namespace.
func (p *elemParser) open(t xml.StartElement, e *Element, defNS *string) error {
	if p.maxDepth > 0 && len(p.stack) >= p.maxDepth {
		return streamErr(stream.PolicyViolation, "element nested deeper than %d", p.maxDepth)
	}
	p.stack = append(p.stack, t.Name)
	depth := len(p.stack)
	for i, a := range t.Attr {
		for _, b := range t.Attr[:i] {
			if a.Name == b.Name {
				return streamErr(stream.NotWellFormed, "attribute %s repeated", qname(a.Name))
			}
		}
		switch {
		case a.Name.Space == "xmlns":
			if a.Value == "" || a.Name.Local == "xmlns" {
				return streamErr(stream.BadNamespacePrefix, "invalid declaration of prefix %q", a.Name.Local)
			}
			p.scope = append(p.scope, binding{prefix: a.Name.Local, uri: a.Value, depth: depth})
		case a.Name.Space == "":
			if e == nil {
				continue
			}
			switch a.Name.Local {
			case "xmlns":
				*defNS = a.Value
			case "from":
				e.From = a.Value
			case "to":
				e.To = a.Value
			case "id":
				e.ID = a.Value
			case "type":
				e.Type = a.Value
			}
		default:
			// Resolved after all declarations of this tag are in scope.
		}
	}
	for _, a := range t.Attr {
		if a.Name.Space != "" && a.Name.Space != "xmlns" {
			if _, err := p.resolve(a.Name.Space, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// resolve maps a prefix to its namespace: declarations inside the element
// first, then the predefined xml prefix, then the header's, which are
// recorded for injection.
func (p *elemParser) resolve(prefix, defNS string) (string, error) {
	if prefix == "" {
		return defNS, nil
	}
	for i := len(p.scope) - 1; i >= 0; i-- {
		if p.scope[i].prefix == prefix {
			return p.scope[i].uri, nil
		}
	}
	if prefix == "xml" {
		return nsXML, nil
	}
	if uri, ok := p.outer[prefix]; ok {
		for _, q := range p.inject {
			if q == prefix {
				return uri, nil
			}
		}
		p.inject = append(p.inject, prefix)
		return uri, nil
	}
	return "", streamErr(stream.BadNamespacePrefix, "prefix %q is not declared", prefix)
}

// buildRaw copies rec into a new slice owned by the caller, adding
// declarations of the outer prefixes in inject after the top-level tag's
// name, which ends at rec[at].
func buildRaw(rec []byte, at int, inject []string, outer map[string]string) []byte {
	if len(inject) == 0 {
		// Not bytes.Clone: its append asks growslice for a size
		// class, which make and copy, recognised together, skip.
		out := make([]byte, len(rec))
		copy(out, rec)
		return out
	}
	n := len(rec)
	for _, q := range inject {
		n += len(q) + len(outer[q]) + 32
	}
	out := make([]byte, 0, n)
	out = append(out, rec[:at]...)
	for _, q := range inject {
		out = append(out, " xmlns:"...)
		out = append(out, q...)
		out = append(out, "='"...)
		out = appendEscaped(out, outer[q])
		out = append(out, '\'')
	}
	return append(out, rec[at:]...)
}

// nameEnd is the index just past the name of a start tag at rec[0] whose
// name, in prefix form, is n.
func nameEnd(n xml.Name) int {
	at := 1 + len(n.Local)
	if n.Space != "" {
		at += len(n.Space) + 1
	}
	return at
}

func qname(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}
