package starttls

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// NS is the XML namespace of STARTTLS elements (RFC 6120 §5.4).
const NS = "urn:ietf:params:xml:ns:xmpp-tls"

// The STARTTLS elements, serialised, for writing straight to a stream whose
// default namespace is jabber:server.
const (
	// StartTLS is sent by the initiating server to begin TLS.
	StartTLS = `<starttls xmlns='` + NS + `'/>`
	// Proceed tells the initiating server to start the TLS handshake.
	Proceed = `<proceed xmlns='` + NS + `'/>`
	// Failure refuses STARTTLS; the receiving server then closes the stream
	// and the TCP connection (RFC 6120 §5.4.2.2).
	Failure = `<failure xmlns='` + NS + `'/>`
)

// The feature element as advertised in <stream:features>.
const (
	featureOptional = `<starttls xmlns='` + NS + `'/>`
	featureRequired = `<starttls xmlns='` + NS + `'><required/></starttls>`
)

// ErrFeature is wrapped by the errors of ParseFeature.
var ErrFeature = errors.New("starttls: malformed starttls feature")

// ParseFeature reads the rest of a <starttls/> stream feature whose start
// element has just been read from r, and reports whether it carries
// <required/>. It consumes r up to and including the feature's end element.
// Children other than <required/> are skipped, as RFC 6120 lets features
// grow.
func ParseFeature(r xml.TokenReader, start xml.StartElement) (required bool, err error) {
	if start.Name.Space != NS || start.Name.Local != "starttls" {
		return false, fmt.Errorf("%w: got <%s xmlns='%s'>", ErrFeature, start.Name.Local, start.Name.Space)
	}
	depth := 1
	for depth > 0 {
		tok, err := r.Token()
		if err == io.EOF && tok == nil {
			return false, fmt.Errorf("%w: %w", ErrFeature, io.ErrUnexpectedEOF)
		}
		if err != nil && err != io.EOF {
			return false, fmt.Errorf("%w: %w", ErrFeature, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			// Only a direct child counts; <required/> nested in some
			// extension element means something else, if anything.
			if depth == 2 && t.Name.Local == "required" && (t.Name.Space == NS || t.Name.Space == "") {
				required = true
			}
		case xml.EndElement:
			depth--
		}
	}
	return required, nil
}
