package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/s2s"
)

// nsPing is the namespace of XEP-0199 pings.
const nsPing = "urn:xmpp:ping"

// errNoElement: the bytes end before the element that was looked for.
var errNoElement = errors.New("stub: no element")

// answer returns what the stub sends back for a stanza it received, or nil
// for nothing: a result for a ping, service-unavailable for any other iq
// get or set (every iq request needs an answer), and the message itself
// with from and to swapped when echo is on. Errors are never answered, so
// that two stubs cannot loop.
func answer(s s2s.Stanza, echo bool) ([]byte, error) {
	switch s.Name {
	case "iq":
		if s.Type != "get" && s.Type != "set" {
			return nil, nil
		}
		space, local, err := firstChild(s.Raw)
		if err != nil && !errors.Is(err, errNoElement) {
			return nil, err
		}
		if s.Type == "get" && space == nsPing && local == "ping" {
			return pingResult(s), nil
		}
		return s2s.Bounce{Stanza: s, Condition: stanza.ServiceUnavailable,
			Text: "the federation stub answers XEP-0199 pings only"}.Reply(), nil
	case "message":
		if !echo || s.Type == "error" {
			return nil, nil
		}
		return swapAddresses(s.Raw)
	}
	return nil, nil
}

// pingResult is the empty result that answers a ping (XEP-0199 §4.2).
func pingResult(s s2s.Stanza) []byte {
	var b bytes.Buffer
	b.WriteString("<iq xmlns='jabber:server'")
	writeAttr(&b, "from", s.To)
	writeAttr(&b, "to", s.From)
	if s.ID != "" {
		writeAttr(&b, "id", s.ID)
	}
	b.WriteString(" type='result'/>")
	return b.Bytes()
}

func writeAttr(b *bytes.Buffer, name, value string) {
	b.WriteString(" ")
	b.WriteString(name)
	b.WriteString("='")
	xml.EscapeText(b, []byte(value))
	b.WriteString("'")
}

// firstChild returns the namespace and local name of the first child element
// of the element in raw, resolving prefixes as XML namespaces define them.
func firstChild(raw []byte) (space, local string, err error) {
	if space, local, ok := firstChildFast(raw); ok {
		return space, local, nil
	}
	return firstChildXML(raw)
}

// firstChildFast reads the first child of the shape nearly every request
// has, <ping xmlns='urn:xmpp:ping'/>: whitespace at most after the start
// tag, then an unprefixed ASCII name declaring its own namespace in a value
// without references. For anything else it reports !ok and firstChildXML
// decides. It relies on raw being well formed, as a delivered stanza is
// (the Manager checked it): it finds the child, it does not check it. A
// new xml.Decoder per stanza was the largest cost of answering a ping.
func firstChildFast(raw []byte) (space, local string, ok bool) {
	i, ok := skipTag(raw, 0)
	if !ok || raw[i-2] == '/' {
		return "", "", false
	}
	for i < len(raw) && isSpace(raw[i]) {
		i++
	}
	if i >= len(raw) || raw[i] != '<' {
		return "", "", false
	}
	start := i + 1
	j := start
	for j < len(raw) && isNameByte(raw[j]) {
		j++
	}
	if j == start || j >= len(raw) || (raw[j] != '/' && raw[j] != '>' && !isSpace(raw[j])) {
		return "", "", false
	}
	name := raw[start:j]
	for {
		for j < len(raw) && isSpace(raw[j]) {
			j++
		}
		if j >= len(raw) || raw[j] == '/' || raw[j] == '>' {
			// No xmlns of its own: the namespace is inherited.
			return "", "", false
		}
		k := j
		for k < len(raw) && raw[k] != '=' && !isSpace(raw[k]) {
			k++
		}
		attr := raw[j:k]
		for k < len(raw) && raw[k] != '\'' && raw[k] != '"' {
			k++
		}
		if k >= len(raw) {
			return "", "", false
		}
		end := bytes.IndexByte(raw[k+1:], raw[k])
		if end < 0 {
			return "", "", false
		}
		value := raw[k+1 : k+1+end]
		if string(attr) == "xmlns" {
			for _, c := range value {
				if c == '&' || c < 0x20 {
					// References and line ends need the decoder's
					// rules to give the same string.
					return "", "", false
				}
			}
			if string(value) == nsPing {
				space = nsPing
			} else {
				space = string(value)
			}
			if string(name) == "ping" {
				return space, "ping", true
			}
			return space, string(name), true
		}
		j = k + 2 + end
	}
}

// skipTag returns the index just after the tag that starts at raw[i].
func skipTag(raw []byte, i int) (int, bool) {
	if i >= len(raw) || raw[i] != '<' {
		return 0, false
	}
	var quote byte
	for i++; i < len(raw); i++ {
		switch c := raw[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '>':
			return i + 1, true
		}
	}
	return 0, false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// isNameByte accepts the ASCII bytes of an unprefixed XML name; a colon
// (a prefix) or any other byte ends it.
func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c == '.'
}

// firstChildXML is firstChild with encoding/xml, for every shape.
func firstChildXML(raw []byte) (space, local string, err error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return "", "", errNoElement
		}
		if err != nil {
			return "", "", fmt.Errorf("stub: stanza: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 1 {
				return t.Name.Space, t.Name.Local, nil
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				return "", "", errNoElement
			}
		}
	}
}

// swapAddresses returns the element in raw with the values of its from and
// to attributes exchanged. Only the start tag is rewritten; the rest of the
// bytes, payload and namespace declarations included, is kept as it is, so
// that what the peer sent is what it gets back.
func swapAddresses(raw []byte) ([]byte, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	var start xml.StartElement
	for {
		// RawToken keeps prefixes as written, which is what a rewritten
		// start tag must repeat.
		tok, err := d.RawToken()
		if err == io.EOF {
			return nil, errNoElement
		}
		if err != nil {
			return nil, fmt.Errorf("stub: stanza: %w", err)
		}
		if t, ok := tok.(xml.StartElement); ok {
			start = t
			break
		}
	}
	end := int(d.InputOffset())
	var b bytes.Buffer
	b.Grow(len(raw) + 8)
	b.WriteString("<")
	b.WriteString(qname(start.Name))
	for _, a := range start.Attr {
		name, value := qname(a.Name), a.Value
		switch name {
		case "from":
			name = "to"
		case "to":
			name = "from"
		}
		writeAttr(&b, name, value)
	}
	if bytes.HasSuffix(raw[:end], []byte("/>")) {
		b.WriteString("/>")
	} else {
		b.WriteString(">")
	}
	b.Write(raw[end:])
	return b.Bytes(), nil
}

func qname(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}
