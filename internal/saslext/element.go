package saslext

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// NS is the namespace of the SASL elements (RFC 6120 §6.4).
const NS = "urn:ietf:params:xml:ns:xmpp-sasl"

// Success is the receiving server's <success/>, serialised: EXTERNAL has no
// additional data to carry.
const Success = `<success xmlns='` + NS + `'/>`

// Abort is the <abort/> an initiating entity sends to give up an exchange.
const Abort = `<abort xmlns='` + NS + `'/>`

// Failure conditions of RFC 6120 §6.5 that s2s EXTERNAL uses.
const (
	Aborted          = "aborted"
	InvalidAuthzid   = "invalid-authzid"
	InvalidMechanism = "invalid-mechanism"
	MalformedRequest = "malformed-request"
	NotAuthorized    = "not-authorized"
)

// ErrMalformed is wrapped by every parse error: the element is not what RFC
// 6120 §6.4 allows. A receiving server answers it with a <failure/> holding
// MalformedRequest.
var ErrMalformed = errors.New("saslext: malformed SASL element")

// Limits of what a peer can make a parser hold. Mechanism names are at most
// 20 characters (RFC 4422 §3.1); an authzid is a domain (at most 1023 octets
// as a JID part), so its base64 fits well under maxData.
const (
	maxMechanisms = 32
	maxData       = 4096
	maxText       = 1024
)

// Feature returns the <mechanisms/> stream feature listing mechs. With no
// mechanisms it is the empty list that says SASL is not available, which a
// caller should rather not send at all.
func Feature(mechs ...string) []byte {
	var b bytes.Buffer
	b.WriteString(`<mechanisms xmlns='` + NS + `'>`)
	for _, m := range mechs {
		b.WriteString("<mechanism>")
		xml.EscapeText(&b, []byte(m))
		b.WriteString("</mechanism>")
	}
	b.WriteString("</mechanisms>")
	return b.Bytes()
}

// ParseMechanisms reads the rest of a <mechanisms/> feature whose start
// element has just been read from r and returns the mechanism names, in
// order and as written (SASL names are upper case; compare exactly). An empty
// list is not an error: ejabberd sends <mechanisms/> when it has nothing to
// offer on s2s, which means no SASL. Unknown children are skipped, as RFC 6120
// lets features grow. r is consumed up to and including the end element.
func ParseMechanisms(r xml.TokenReader, start xml.StartElement) ([]string, error) {
	if err := expect(start, "mechanisms"); err != nil {
		return nil, err
	}
	var mechs []string
	for {
		tok, err := r.Token()
		if err != nil {
			return nil, malformed("mechanisms", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name != (xml.Name{Space: NS, Local: "mechanism"}) {
				if err := skip(r); err != nil {
					return nil, malformed("mechanisms", err)
				}
				continue
			}
			name, err := text(r, 20)
			if err != nil {
				return nil, malformed("mechanism", err)
			}
			if len(mechs) == maxMechanisms {
				return nil, fmt.Errorf("%w: more than %d mechanisms", ErrMalformed, maxMechanisms)
			}
			mechs = append(mechs, strings.TrimSpace(name))
		case xml.EndElement:
			return mechs, nil
		}
	}
}

// Auth returns an <auth/> element selecting mech. When initial is set it
// carries resp as the initial response, base64-encoded, with the single '='
// that RFC 6120 §6.4.2 prescribes for an empty one; otherwise it has no
// content and the server will send a challenge.
func Auth(mech string, resp []byte, initial bool) []byte {
	var b bytes.Buffer
	b.WriteString(`<auth xmlns='` + NS + `' mechanism='`)
	xml.EscapeText(&b, []byte(mech))
	b.WriteString(`'>`)
	if initial {
		b.WriteString(encodeData(resp))
	}
	b.WriteString(`</auth>`)
	return b.Bytes()
}

// ParseAuth reads the rest of an <auth/> element whose start element has
// just been read from r: the mechanism, and the initial response when there
// is one (initial reports whether the element had content; "=" is an
// initial response of zero length).
func ParseAuth(r xml.TokenReader, start xml.StartElement) (mech string, resp []byte, initial bool, err error) {
	if err := expect(start, "auth"); err != nil {
		return "", nil, false, err
	}
	for _, a := range start.Attr {
		if a.Name == (xml.Name{Local: "mechanism"}) {
			mech = a.Value
		}
	}
	if mech == "" {
		return "", nil, false, fmt.Errorf("%w: <auth/> without a mechanism", ErrMalformed)
	}
	resp, initial, err = data(r)
	if err != nil {
		return "", nil, false, malformed("auth", err)
	}
	return mech, resp, initial, nil
}

// Challenge returns a <challenge/> carrying data; an empty one has no
// content, which is how a server asks an EXTERNAL client that sent no
// initial response for its authzid.
func Challenge(data []byte) []byte {
	if len(data) == 0 {
		return []byte(`<challenge xmlns='` + NS + `'/>`)
	}
	return []byte(`<challenge xmlns='` + NS + `'>` + encodeData(data) + `</challenge>`)
}

// Response returns a <response/> carrying data ('=' when empty).
func Response(data []byte) []byte {
	return []byte(`<response xmlns='` + NS + `'>` + encodeData(data) + `</response>`)
}

// ParseData reads the rest of a <challenge/>, <response/> or <success/>
// whose start element has just been read from r, and returns its decoded
// content; no content and '=' both give an empty result.
func ParseData(r xml.TokenReader, start xml.StartElement) ([]byte, error) {
	switch start.Name {
	case xml.Name{Space: NS, Local: "challenge"}, xml.Name{Space: NS, Local: "response"}, xml.Name{Space: NS, Local: "success"}:
	default:
		return nil, fmt.Errorf("%w: <%s xmlns='%s'> is not challenge, response or success", ErrMalformed, start.Name.Local, start.Name.Space)
	}
	d, _, err := data(r)
	if err != nil {
		return nil, malformed(start.Name.Local, err)
	}
	return d, nil
}

// Failure returns a <failure/> with the condition and, when text is not
// empty, an explanation. The text goes to the peer: it must hold no secret.
func Failure(condition, text string) []byte {
	var b bytes.Buffer
	b.WriteString(`<failure xmlns='` + NS + `'><`)
	b.WriteString(condition)
	b.WriteString(`/>`)
	if text != "" {
		b.WriteString(`<text xml:lang='en'>`)
		xml.EscapeText(&b, []byte(text))
		b.WriteString(`</text>`)
	}
	b.WriteString(`</failure>`)
	return b.Bytes()
}

// ParseFailure reads the rest of a <failure/> whose start element has just
// been read from r and returns its condition ("" when it has none, which RFC
// 6120 forbids but which is no reason to fail harder) and text.
func ParseFailure(r xml.TokenReader, start xml.StartElement) (condition, txt string, err error) {
	if err := expect(start, "failure"); err != nil {
		return "", "", err
	}
	for {
		tok, err := r.Token()
		if err != nil {
			return "", "", malformed("failure", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			switch {
			case tok.Name == xml.Name{Space: NS, Local: "text"}:
				if txt, err = text(r, maxText); err != nil {
					return "", "", malformed("failure", err)
				}
			case tok.Name.Space == NS && condition == "":
				condition = tok.Name.Local
				fallthrough
			default:
				if err := skip(r); err != nil {
					return "", "", malformed("failure", err)
				}
			}
		case xml.EndElement:
			return condition, txt, nil
		}
	}
}

func expect(start xml.StartElement, local string) error {
	if start.Name != (xml.Name{Space: NS, Local: local}) {
		return fmt.Errorf("%w: want <%s xmlns='%s'>, got <%s xmlns='%s'>", ErrMalformed, local, NS, start.Name.Local, start.Name.Space)
	}
	return nil
}

func malformed(what string, err error) error {
	if errors.Is(err, ErrMalformed) {
		return err
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: <%s/>: %w", ErrMalformed, what, err)
}

func encodeData(d []byte) string {
	if len(d) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(d)
}

// data reads base64 character data up to the end element. present reports
// whether there was any content at all.
func data(r xml.TokenReader) (d []byte, present bool, err error) {
	s, err := text(r, maxData)
	if err != nil {
		return nil, false, err
	}
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return nil, false, nil
	case "=":
		return []byte{}, true, nil
	}
	d, err = base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, false, fmt.Errorf("%w: bad base64: %w", ErrMalformed, err)
	}
	return d, true, nil
}

// text reads character data up to the end of the current element; child
// elements are refused and more than limit bytes are an error.
func text(r xml.TokenReader, limit int) (string, error) {
	var b strings.Builder
	for {
		tok, err := r.Token()
		if err != nil {
			return "", err
		}
		switch tok := tok.(type) {
		case xml.CharData:
			if b.Len()+len(tok) > limit {
				return "", fmt.Errorf("%w: more than %d bytes of text", ErrMalformed, limit)
			}
			b.Write(tok)
		case xml.StartElement:
			return "", fmt.Errorf("%w: unexpected <%s/> in text", ErrMalformed, tok.Name.Local)
		case xml.EndElement:
			return b.String(), nil
		}
	}
}

// skip consumes the rest of an element whose start was just read.
func skip(r xml.TokenReader) error {
	for depth := 1; depth > 0; {
		tok, err := r.Token()
		if err != nil {
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return nil
}
