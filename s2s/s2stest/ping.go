package s2stest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"

	"github.com/xmpp-s2s/federation/s2s"
)

// nsPing is the namespace of XEP-0199 pings.
const nsPing = "urn:xmpp:ping"

// isPing reports whether raw, an iq element, carries a XEP-0199 ping as its
// payload: <iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>. The iq's own
// namespace is not checked, since the Manager hands over only stanzas it read
// in jabber:server; a payload that is not well-formed is no ping.
func isPing(raw []byte) bool {
	d := xml.NewDecoder(bytes.NewReader(raw))
	depth := 0
	found := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return found && depth == 0
		}
		if err != nil {
			return false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch depth {
			case 1:
				if t.Name.Local != "iq" {
					return false
				}
			case 2:
				// RFC 6120 §8.2.3: an iq get has exactly one payload
				// element.
				if found || t.Name.Space != nsPing || t.Name.Local != "ping" {
					return false
				}
				found = true
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				// Anything after the iq's end would not be one stanza.
				if _, err := d.Token(); !errors.Is(err, io.EOF) {
					return false
				}
				return found
			}
		}
	}
}

// pingReply returns the answer to st when it is a ping (XEP-0199 §4.2): an
// empty result from the pinged address to the pinger, with the ping's id.
func pingReply(st s2s.Stanza) ([]byte, bool) {
	if st.Name != "iq" || st.Type != "get" || st.From == "" || st.To == "" || !isPing(st.Raw) {
		return nil, false
	}
	var b bytes.Buffer
	b.WriteString("<iq xmlns='jabber:server' type='result'")
	attr(&b, "from", st.To)
	attr(&b, "to", st.From)
	attr(&b, "id", st.ID)
	b.WriteString("/>")
	return b.Bytes(), true
}

func attr(b *bytes.Buffer, name, value string) {
	b.WriteString(" " + name + "='")
	xml.EscapeText(b, []byte(value))
	b.WriteString("'")
}
