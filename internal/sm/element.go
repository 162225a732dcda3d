package sm

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// NS is the namespace of XEP-0198 version 3, the only one spoken here.
// (Prosody also offers urn:xmpp:sm:2, whose counting starts earlier; we
// neither offer nor enable it.)
const NS = "urn:xmpp:sm:3"

// nsStanzas is where the conditions of <failed/> live (RFC 6120 §8.3.3).
const nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"

// Kind says which element an Element is.
type Kind uint8

// The elements of XEP-0198 that s2s uses. <resume/> and <resumed/> are
// parsed as errors: see the package doc for why there is no resumption.
const (
	KindEnable  Kind = iota + 1 // <enable/>: the initiating server asks for SM
	KindEnabled                 // <enabled/>: the receiving server agrees
	KindFailed                  // <failed/>: it does not, or an SM request failed
	KindRequest                 // <r/>: please acknowledge
	KindAnswer                  // <a h=''/>: the count of stanzas handled
)

// String returns the element's local name.
func (k Kind) String() string {
	switch k {
	case KindEnable:
		return "enable"
	case KindEnabled:
		return "enabled"
	case KindFailed:
		return "failed"
	case KindRequest:
		return "r"
	case KindAnswer:
		return "a"
	}
	return "unknown"
}

// Element is one XEP-0198 element. Which fields mean something depends on
// Kind.
type Element struct {
	Kind Kind
	// H is the handled count of <a/>, and of <failed/> when HasH.
	H    uint32
	HasH bool
	// Resume is the resume attribute of <enable/> and <enabled/>; ID,
	// Location and Max (0 when absent) those of <enabled/> (Max also of
	// <enable/>). We only ever write them false and empty.
	Resume   bool
	ID       string
	Location string
	Max      uint32
	// Condition is the local name of <failed/>'s stanza error condition
	// (unexpected-request, service-unavailable, …), "" when it has none.
	Condition string
}

// ErrMalformed is wrapped by every parse error: the element is not one that
// XEP-0198 defines, or its attributes are not what it allows.
var ErrMalformed = errors.New("sm: malformed stream management element")

// The elements that never vary, written as they are.
var (
	// Feature is the <sm/> stream feature an incoming stream offers.
	Feature = []byte("<sm xmlns='" + NS + "'/>")
	// Enable asks the receiving server for SM, without resumption.
	Enable = []byte("<enable xmlns='" + NS + "'/>")
	// Enabled grants SM without resumption.
	Enabled = []byte("<enabled xmlns='" + NS + "'/>")
	// Request is <r/>.
	Request = []byte("<r xmlns='" + NS + "'/>")
)

// AppendAnswer appends <a h='N'/> with h to dst. It allocates only when dst
// has no room: answers are on the path of every acknowledged batch.
func AppendAnswer(dst []byte, h uint32) []byte {
	dst = append(dst, "<a xmlns='"+NS+"' h='"...)
	dst = strconv.AppendUint(dst, uint64(h), 10)
	return append(dst, "'/>"...)
}

// AppendFailed appends <failed/> with a stanza error condition (its local
// name, such as "unexpected-request"; "" for none).
func AppendFailed(dst []byte, condition string) []byte {
	if condition == "" {
		return append(dst, "<failed xmlns='"+NS+"'/>"...)
	}
	dst = append(dst, "<failed xmlns='"+NS+"'><"...)
	dst = append(dst, condition...)
	return append(dst, " xmlns='"+nsStanzas+"'/></failed>"...)
}

// Append appends e in its XML form to dst, for any element Parse returns
// (and the tests' round trips). Strings are escaped.
func (e Element) Append(dst []byte) []byte {
	attr := func(name, v string) {
		dst = append(dst, ' ')
		dst = append(dst, name...)
		dst = append(dst, "='"...)
		var b strings.Builder
		xml.EscapeText(&b, []byte(v))
		dst = append(dst, strings.ReplaceAll(b.String(), "'", "&#39;")...)
		dst = append(dst, '\'')
	}
	u := func(name string, v uint32) { attr(name, strconv.FormatUint(uint64(v), 10)) }
	dst = append(dst, '<')
	dst = append(dst, e.Kind.String()...)
	dst = append(dst, " xmlns='"+NS+"'"...)
	switch e.Kind {
	case KindEnable, KindEnabled:
		if e.Kind == KindEnabled && e.ID != "" {
			attr("id", e.ID)
		}
		if e.Kind == KindEnabled && e.Location != "" {
			attr("location", e.Location)
		}
		if e.Max != 0 {
			u("max", e.Max)
		}
		if e.Resume {
			attr("resume", "true")
		}
	case KindAnswer:
		u("h", e.H)
	case KindFailed:
		if e.HasH {
			u("h", e.H)
		}
		if e.Condition != "" {
			dst = append(dst, "><"...)
			dst = append(dst, e.Condition...)
			dst = append(dst, " xmlns='"+nsStanzas+"'/></failed>"...)
			return dst
		}
	}
	return append(dst, "/>"...)
}

// Limits on what a peer can make the parser hold.
const (
	maxAttr  = 1024 // an id or a location
	maxDepth = 8    // <failed/> holds a condition, which may hold nothing much
)

// Decode reads the rest of the element whose start has just been read from
// r, which must be in NS, and returns it. Unknown attributes and, in
// <failed/>, unknown children are ignored as XEP-0198's schema allows; a
// missing or malformed 'h' on <a/>, a 'h' or 'max' out of the uint32
// range, or an element XEP-0198 does not define (or that s2s does not use:
// <resume/>, <resumed/>) wraps ErrMalformed. r is consumed up to the
// element's end.
func Decode(r xml.TokenReader, start xml.StartElement) (Element, error) {
	var e Element
	if start.Name.Space != NS {
		return e, fmt.Errorf("%w: <%s xmlns='%s'>", ErrMalformed, clip(start.Name.Local), clip(start.Name.Space))
	}
	switch start.Name.Local {
	case "enable":
		e.Kind = KindEnable
	case "enabled":
		e.Kind = KindEnabled
	case "failed":
		e.Kind = KindFailed
	case "r":
		e.Kind = KindRequest
	case "a":
		e.Kind = KindAnswer
	default:
		return e, fmt.Errorf("%w: <%s/> is not used on s2s", ErrMalformed, clip(start.Name.Local))
	}
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue // xmlns declarations, foreign attributes
		}
		var err error
		switch a.Name.Local {
		case "h":
			if e.Kind == KindAnswer || e.Kind == KindFailed {
				e.H, err = parseUint32("h", a.Value)
				e.HasH = true
			}
		case "max":
			if e.Kind == KindEnable || e.Kind == KindEnabled {
				e.Max, err = parseUint32("max", a.Value)
			}
		case "resume":
			if e.Kind == KindEnable || e.Kind == KindEnabled {
				e.Resume, err = parseBool(a.Value)
			}
		case "id":
			if e.Kind == KindEnabled {
				e.ID, err = boundedAttr("id", a.Value)
			}
		case "location":
			if e.Kind == KindEnabled {
				e.Location, err = boundedAttr("location", a.Value)
			}
		}
		if err != nil {
			return Element{}, err
		}
	}
	if e.Kind == KindAnswer && !e.HasH {
		return Element{}, fmt.Errorf("%w: <a/> without 'h'", ErrMalformed)
	}
	if e.Kind != KindFailed {
		e.HasH = e.Kind == KindAnswer
	}
	// The content: <failed/> may name a condition; everything else is
	// skipped (XEP-0198 defines none, and a peer's extension is harmless).
	depth := 1
	for depth > 0 {
		tok, err := r.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Element{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > maxDepth {
				return Element{}, fmt.Errorf("%w: nested more than %d deep", ErrMalformed, maxDepth)
			}
			if depth == 2 && e.Kind == KindFailed && e.Condition == "" && t.Name.Space == nsStanzas {
				if _, err := boundedAttr("condition", t.Name.Local); err != nil {
					return Element{}, err
				}
				e.Condition = t.Name.Local
			}
		case xml.EndElement:
			depth--
		}
	}
	return e, nil
}

// Parse parses one complete element as the s2s stream reader hands it on
// (its Raw bytes; the default namespace outside it is jabber:server). The
// two elements that come with every acknowledged batch, <r/> and <a/>, in
// the plain form peers write them, are read without encoding/xml and
// without allocating; anything else goes through Decode, which decides.
func Parse(raw []byte) (Element, error) {
	if e, ok := parseFast(raw); ok {
		return e, nil
	}
	return parseSlow(raw)
}

// parseSlow is Parse through encoding/xml, the reference.
func parseSlow(raw []byte) (Element, error) {
	d := xml.NewDecoder(strings.NewReader("<s xmlns='jabber:server'>" + string(raw) + "</s>"))
	d.CharsetReader = func(string, io.Reader) (io.Reader, error) { return nil, errors.New("only UTF-8") }
	if _, err := d.Token(); err != nil {
		return Element{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return Element{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			e, err := Decode(d, t)
			if err != nil {
				return e, err
			}
			// Exactly one element, then only the synthetic parent's end.
			for {
				tok, err := d.Token()
				if err != nil {
					return Element{}, fmt.Errorf("%w: %w", ErrMalformed, err)
				}
				switch t := tok.(type) {
				case xml.EndElement:
					if _, err := d.Token(); err != io.EOF {
						return Element{}, fmt.Errorf("%w: trailing data", ErrMalformed)
					}
					return e, nil
				case xml.CharData:
					if strings.TrimLeft(string(t), " \t\r\n") != "" {
						return Element{}, fmt.Errorf("%w: text after the element", ErrMalformed)
					}
				default:
					return Element{}, fmt.Errorf("%w: more than one element", ErrMalformed)
				}
			}
		case xml.CharData:
			if strings.TrimLeft(string(t), " \t\r\n") != "" {
				return Element{}, fmt.Errorf("%w: text before the element", ErrMalformed)
			}
		default:
			return Element{}, fmt.Errorf("%w: not an element", ErrMalformed)
		}
	}
}

// parseFast reads <r xmlns='urn:xmpp:sm:3'/> and <a xmlns='urn:xmpp:sm:3'
// h='N'/> (attributes in any order, either quote, spaces between them)
// and nothing else: ok is false for any other form, which Decode then
// judges. It only accepts what Decode accepts, with the same result
// (FuzzParse checks it).
func parseFast(raw []byte) (e Element, ok bool) {
	if len(raw) < 4 || raw[0] != '<' || raw[len(raw)-2] != '/' || raw[len(raw)-1] != '>' {
		return e, false
	}
	switch raw[1] {
	case 'a':
		e.Kind = KindAnswer
	case 'r':
		e.Kind = KindRequest
	default:
		return e, false
	}
	i, end := 2, len(raw)-2
	sawNS := false
	for {
		j := i
		for j < end && isSpace(raw[j]) {
			j++
		}
		if j == end {
			break
		}
		if j == i {
			return e, false // a name longer than one letter, or no space before an attribute
		}
		i = j
		for j < end && (raw[j] >= 'a' && raw[j] <= 'z') {
			j++
		}
		name := raw[i:j]
		if j+1 >= end || raw[j] != '=' || (raw[j+1] != '\'' && raw[j+1] != '"') {
			return e, false
		}
		q := raw[j+1]
		k := j + 2
		for k < end && raw[k] != q {
			if c := raw[k]; c == '&' || c == '<' || c < 0x20 || c >= 0x80 {
				return e, false
			}
			k++
		}
		if k == end {
			return e, false
		}
		val := raw[j+2 : k]
		switch string(name) {
		case "xmlns":
			if sawNS || string(val) != NS {
				return e, false
			}
			sawNS = true
		case "h":
			if e.Kind != KindAnswer || e.HasH {
				return e, false
			}
			h, ok := digitsUint32(val)
			if !ok {
				return e, false
			}
			e.H, e.HasH = h, true
		default:
			return e, false
		}
		i = k + 1
	}
	if !sawNS || (e.Kind == KindAnswer && !e.HasH) {
		return Element{}, false
	}
	return e, true
}

// digitsUint32 reads 1 to 10 decimal digits within the uint32 range.
func digitsUint32(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<32-1 {
		return 0, false
	}
	return uint32(n), true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// parseUint32 reads a counter: decimal digits, within 0..2^32-1 (XEP-0198
// §4: h wraps to 0 after 2^32-1, so a larger value is never valid).
func parseUint32(name, v string) (uint32, error) {
	if v == "" || len(v) > 10 {
		return 0, fmt.Errorf("%w: '%s' is %q, not a count", ErrMalformed, name, clip(v))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, fmt.Errorf("%w: '%s' is %q, not a count", ErrMalformed, name, clip(v))
		}
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: '%s' is %q, over 2^32-1", ErrMalformed, name, clip(v))
	}
	return uint32(n), nil
}

// parseBool reads an xs:boolean.
func parseBool(v string) (bool, error) {
	switch v {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("%w: 'resume' is %q, not a boolean", ErrMalformed, clip(v))
}

func boundedAttr(name, v string) (string, error) {
	if len(v) > maxAttr {
		return "", fmt.Errorf("%w: '%s' longer than %d bytes", ErrMalformed, name, maxAttr)
	}
	return v, nil
}

// clip shortens a peer's string for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return strings.ToValidUTF8(s[:64], "") + "…"
	}
	return s
}

func appendUint(dst []byte, v uint32) []byte { return strconv.AppendUint(dst, uint64(v), 10) }
