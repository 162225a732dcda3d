package s2s

import (
	"encoding/xml"
	"fmt"
)

// Readdress returns a copy of s with its 'from' and 'to' attributes set to
// from and to; an empty value leaves the attribute out. The payload is kept.
// A host needs it to fan a stanza out (a user's presence to each of its
// subscribers) and to stamp a client's address on what the client sent
// (RFC 6120 §8.1.2.1). Errors wrap ErrNotStanza; Raw that ParseStanza
// accepted gives none unless its element names are not namespace-well-formed
// (see ReadStanza).
func (s Stanza) Readdress(from, to string) (Stanza, error) {
	r := s.TokenReader()
	tok, err := r.Token()
	if err != nil {
		return Stanza{}, fmt.Errorf("%w: %w", ErrNotStanza, err)
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return Stanza{}, fmt.Errorf("%w: no element", ErrNotStanza)
	}
	attrs := make([]xml.Attr, 0, len(start.Attr)+2)
	for _, a := range start.Attr {
		if a.Name.Space == "" && (a.Name.Local == "from" || a.Name.Local == "to") {
			continue
		}
		attrs = append(attrs, a)
	}
	if from != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "from"}, Value: from})
	}
	if to != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "to"}, Value: to})
	}
	start.Attr = attrs
	return ReadStanza(r, &start, 0)
}
