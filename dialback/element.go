package dialback

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"
)

// NS is the namespace of the <db:result> and <db:verify> elements.
const NS = "jabber:server:dialback"

// prefix is the namespace prefix every element we write carries. XEP-0220 §2
// requires a prefix, and some deployed servers accept only "db".
const prefix = "db"

// maxKey bounds the character data of an element: real keys are 64 hex
// digits (older generators used shorter ones), and a peer must not make us
// buffer an unbounded text node.
const maxKey = 1024

// Type is the value of the 'type' attribute of a dialback element.
type Type string

// The types a dialback element can have. The zero value is a request.
const (
	Request Type = ""        // a request: the element carries a key
	Valid   Type = "valid"   // the key was verified
	Invalid Type = "invalid" // the key was refused
	Failed  Type = "error"   // verification could not be done; Err says why
)

// Result is a <db:result> element. An initiating server sends one with a
// Key to ask for a domain pair; the receiving server answers with from and
// to swapped and a Type. The zero value is an empty request.
type Result struct {
	From, To string        // domains as written on the wire
	Type     Type          // Request (the zero value) or an answer
	Key      string        // the dialback key of a request
	Err      *stanza.Error // the condition when Type is Failed
}

// Verify is a <db:verify> element. A receiving server sends one with the
// Key and the stream ID it received the <db:result> on; the authoritative
// server answers with from and to swapped, the same ID and a Type.
// The zero value is an empty request.
type Verify struct {
	From, To string        // domains as written on the wire
	ID       string        // the id of the stream the key was presented on
	Type     Type          // Request (the zero value) or an answer
	Key      string        // the dialback key of a request
	Err      *stanza.Error // the condition when Type is Failed
}

// Element is a decoded dialback element: a [Result] or a [Verify]. Its
// methods encode it with the "db:" prefix.
type Element interface {
	// TokenReader returns the element's tokens (xmlstream.Marshaler).
	TokenReader() xml.TokenReader
	// WriteXML writes the element to w (xmlstream.WriterTo).
	WriteXML(w xmlstream.TokenWriter) (int, error)

	element()
}

func (Result) element() {}
func (Verify) element() {}

// TokenReader returns the tokens of the element.
func (r Result) TokenReader() xml.TokenReader {
	return encode("result", r.From, r.To, "", false, r.Type, r.Key, r.Err)
}

// WriteXML writes the element to w. It does not flush w.
func (r Result) WriteXML(w xmlstream.TokenWriter) (int, error) {
	return xmlstream.Copy(w, r.TokenReader())
}

// TokenReader returns the tokens of the element.
func (v Verify) TokenReader() xml.TokenReader {
	return encode("verify", v.From, v.To, v.ID, true, v.Type, v.Key, v.Err)
}

// WriteXML writes the element to w. It does not flush w.
func (v Verify) WriteXML(w xmlstream.TokenWriter) (int, error) {
	return xmlstream.Copy(w, v.TokenReader())
}

func encode(local, from, to, id string, withID bool, typ Type, key string, se *stanza.Error) xml.TokenReader {
	// The prefix goes into the local name so that encoding/xml writes it
	// verbatim and declares no namespace; the stream header binds it.
	start := xml.StartElement{Name: xml.Name{Local: prefix + ":" + local}}
	start.Attr = append(start.Attr,
		xml.Attr{Name: xml.Name{Local: "from"}, Value: from},
		xml.Attr{Name: xml.Name{Local: "to"}, Value: to})
	if withID {
		// 'id' is required on <db:verify> even when the stream id was empty.
		start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "id"}, Value: id})
	}
	if typ != Request {
		start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "type"}, Value: string(typ)})
	}
	var inner []xml.TokenReader
	if key != "" {
		inner = append(inner, xmlstream.Token(xml.CharData(key)))
	}
	if typ == Failed {
		if se == nil {
			se = newError(stanza.UndefinedCondition)
		}
		// stanza.Error writes an unqualified <error/>, which inherits the
		// stream's default namespace (jabber:server) as XEP-0220 §2.5 wants.
		inner = append(inner, se.TokenReader())
	}
	return xmlstream.Wrap(xmlstream.MultiReader(inner...), start)
}

// Decode decodes the dialback element whose start element the caller has
// already read. r yields the rest of the element: the stream's own token
// reader positioned after start, or a reader of just the element's inner
// tokens; Decode reads up to and including the matching end element and no
// further.
//
// start must be in the [NS] namespace as resolved by the caller's decoder; an
// unresolved "db" prefix (a peer that forgot to declare it) is accepted too.
// Domains and ids are returned as written. Unknown attributes and children
// are ignored; an error answer without a known condition gets
// undefined-condition. Errors wrap [ErrMalformed], or the reader's error.
func Decode(r xml.TokenReader, start xml.StartElement) (Element, error) {
	if start.Name.Space != NS && start.Name.Space != prefix {
		return nil, fmt.Errorf("%w: namespace %q", ErrMalformed, start.Name.Space)
	}
	isVerify := false
	switch start.Name.Local {
	case "result":
	case "verify":
		isVerify = true
	default:
		return nil, fmt.Errorf("%w: unknown element <%s>", ErrMalformed, start.Name.Local)
	}

	var from, to, id, typ string
	var haveFrom, haveTo bool
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "from":
			from, haveFrom = a.Value, true
		case "to":
			to, haveTo = a.Value, true
		case "id":
			id = a.Value
		case "type":
			typ = a.Value
		}
	}
	if !haveFrom || from == "" || !haveTo || to == "" {
		return nil, fmt.Errorf("%w: <%s> needs 'from' and 'to'", ErrMalformed, start.Name.Local)
	}
	t := Type(typ)
	switch t {
	case Request, Valid, Invalid, Failed:
	default:
		return nil, fmt.Errorf("%w: type %q", ErrMalformed, typ)
	}

	key, se, err := decodeContent(r, t == Failed)
	if err != nil {
		return nil, err
	}
	if t == Failed && se == nil {
		se = newError(stanza.UndefinedCondition)
	}
	if isVerify {
		return Verify{From: from, To: to, ID: id, Type: t, Key: key, Err: se}, nil
	}
	return Result{From: from, To: to, Type: t, Key: key, Err: se}, nil
}

// decodeContent reads the element's children up to its end: the key text
// and, when wantErr is set, the first <error/> child.
func decodeContent(r xml.TokenReader, wantErr bool) (string, *stanza.Error, error) {
	var key strings.Builder
	var se *stanza.Error
	depth := 1
	for depth > 0 {
		tok, err := r.Token()
		if tok == nil && err != nil {
			if errors.Is(err, io.EOF) && depth == 1 {
				// A reader of only the inner tokens ends here.
				break
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth == 1 && tok.Name.Local == "error" && wantErr && se == nil {
				e, derr := decodeError(tok, r)
				if derr != nil {
					return "", nil, derr
				}
				se = e
				break
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 1 {
				if key.Len()+len(tok) > maxKey {
					return "", nil, fmt.Errorf("%w: key longer than %d bytes", ErrMalformed, maxKey)
				}
				key.Write(tok)
			}
		}
		if err != nil && depth > 0 {
			if errors.Is(err, io.EOF) && depth == 1 {
				break
			}
			return "", nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	}
	return strings.TrimSpace(key.String()), se, nil
}

// decodeError decodes an <error/> child with mellium's decoder, reading up
// to and including its end element.
func decodeError(start xml.StartElement, r xml.TokenReader) (*stanza.Error, error) {
	var se stanza.Error
	d := xml.NewTokenDecoder(xmlstream.Wrap(xmlstream.Inner(r), start))
	if err := d.Decode(&se); err != nil {
		return nil, fmt.Errorf("%w: <error/>: %w", ErrMalformed, err)
	}
	if se.Condition == "" {
		se.Condition = stanza.UndefinedCondition
	}
	se.XMLName = xml.Name{}
	return &se, nil
}
