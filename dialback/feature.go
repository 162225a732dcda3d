package dialback

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"mellium.im/xmlstream"
)

// FeatureNS is the namespace of the dialback stream feature (XEP-0220 §2.4.2).
const FeatureNS = "urn:xmpp:features:dialback"

// Feature is the <dialback xmlns='urn:xmpp:features:dialback'/> stream
// feature. A receiving server lists it in <stream:features/>.
//
// Errors reports support for dialback errors (type='error' answers); a
// server that answers with them, as this package does, must set it. An
// initiating server should not multiplex target domains on a stream whose
// peer did not advertise it (XEP-0220 §2.6.2).
type Feature struct {
	Errors bool
}

// TokenReader returns the tokens of the feature element.
func (f Feature) TokenReader() xml.TokenReader {
	var inner xml.TokenReader
	if f.Errors {
		inner = xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "errors"}})
	}
	return xmlstream.Wrap(inner, xml.StartElement{Name: xml.Name{Space: FeatureNS, Local: "dialback"}})
}

// WriteXML writes the feature element to w. It does not flush w.
func (f Feature) WriteXML(w xmlstream.TokenWriter) (int, error) {
	return xmlstream.Copy(w, f.TokenReader())
}

// ParseFeature decodes the dialback feature whose start element the caller
// has already read from a <stream:features/> list, reading the rest of it
// from r (as [Decode] does). Unknown children are ignored.
// Errors wrap [ErrMalformed] or the reader's error.
func ParseFeature(r xml.TokenReader, start xml.StartElement) (Feature, error) {
	if start.Name.Space != FeatureNS || start.Name.Local != "dialback" {
		return Feature{}, fmt.Errorf("%w: not a dialback feature: {%s}%s", ErrMalformed, start.Name.Space, start.Name.Local)
	}
	var f Feature
	depth := 1
	for depth > 0 {
		tok, err := r.Token()
		switch tok := tok.(type) {
		case xml.StartElement:
			// <errors/> is unqualified in the feature's own namespace.
			if depth == 1 && tok.Name.Local == "errors" && (tok.Name.Space == FeatureNS || tok.Name.Space == "") {
				f.Errors = true
			}
			depth++
		case xml.EndElement:
			depth--
		}
		if err != nil && depth > 0 {
			if errors.Is(err, io.EOF) && depth == 1 {
				break
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Feature{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	}
	return f, nil
}
