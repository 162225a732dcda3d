package wire

import (
	"encoding/xml"
	"io"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stream"
)

// Header is the opening <stream:stream> tag of an s2s stream. The zero value
// is a header with no attributes set; WriteHeader still writes the
// namespaces and version 1.0.
type Header struct {
	To      string // the receiving domain; "" omits the attribute
	From    string // the sending domain; "" omits the attribute
	ID      string // stream ID, set by the receiving entity's reply
	Version string // "1.0" when written with ""; as received when read
	Lang    string // xml:lang; "" omits the attribute

	// Dialback reports whether a received header declared the dialback
	// namespace (xmlns:db='jabber:server:dialback'), which XEP-0220 servers
	// use to signal dialback support. WriteHeader ignores it and always
	// declares the namespace.
	Dialback bool
}

// WriteHeader writes the XML declaration and the opening stream tag for h in
// one Write. Attribute values are escaped; empty ones are omitted.
func WriteHeader(w io.Writer, h Header) error {
	b := make([]byte, 0, 256)
	b = append(b, "<?xml version='1.0'?><stream:stream xmlns='"+NSServer+
		"' xmlns:stream='"+NSStream+"' xmlns:db='"+NSDialback+"'"...)
	b = appendAttr(b, "to", h.To)
	b = appendAttr(b, "from", h.From)
	b = appendAttr(b, "id", h.ID)
	b = appendAttr(b, "xml:lang", h.Lang)
	v := h.Version
	if v == "" {
		v = "1.0"
	}
	b = appendAttr(b, "version", v)
	b = append(b, '>')
	_, err := w.Write(b)
	return err
}

// WriteClose writes the closing </stream:stream> tag.
func WriteClose(w io.Writer) error {
	_, err := io.WriteString(w, "</stream:stream>")
	return err
}

// WriteError writes e as a <stream:error> followed by </stream:stream>, in
// one Write. Whatever e carries (text, see-other-host content, an
// application condition) is encoded.
func WriteError(w io.Writer, e stream.Error) error {
	b, err := AppendError(nil, e)
	if err != nil {
		return err
	}
	b = append(b, "</stream:stream>"...)
	_, err = w.Write(b)
	return err
}

// AppendError appends the encoding of e, a <stream:error> element in the
// stream namespace, to dst. It does not close the stream.
func AppendError(dst []byte, e stream.Error) ([]byte, error) {
	// The encoding goes through encoding/xml because stream.Error hides an
	// application payload that only its TokenReader exposes. The result uses
	// xmlns declarations rather than the stream: prefix, which is the same
	// element to any namespace-aware peer.
	buf := appendBuffer{b: dst}
	enc := xml.NewEncoder(&buf)
	if _, err := xmlstream.Copy(enc, e.TokenReader()); err != nil {
		return dst, err
	}
	if err := enc.Flush(); err != nil {
		return dst, err
	}
	return buf.b, nil
}

type appendBuffer struct{ b []byte }

func (a *appendBuffer) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// appendAttr appends " name='value'" with value escaped, or nothing when
// value is empty.
func appendAttr(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, "='"...)
	b = appendEscaped(b, value)
	return append(b, '\'')
}

// appendEscaped escapes s for an attribute value in either quote style.
// Tabs and line ends become character references because a parser would
// otherwise normalise them to spaces.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b = append(b, "&amp;"...)
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '\'':
			b = append(b, "&apos;"...)
		case '"':
			b = append(b, "&quot;"...)
		case '\t':
			b = append(b, "&#x9;"...)
		case '\n':
			b = append(b, "&#xA;"...)
		case '\r':
			b = append(b, "&#xD;"...)
		default:
			b = append(b, c)
		}
	}
	return b
}
