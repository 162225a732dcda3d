package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"math/bits"
	"strings"
	"unicode/utf8"
)

// fastParser checks a complete top-level element in one pass over its bytes
// and extracts what Element needs, without building tokens. It is the hot
// path of Reader.Next, several times faster than encoding/xml, and it is
// only ever allowed to be *stricter* than the encoding/xml path: whenever
// it meets something it does not fully handle (a non-ASCII name, a
// reference in an envelope attribute, any error), it reports !ok and the
// element goes through encoding/xml, which then decides, so errors and
// their conditions always come from one place. FuzzFastParser holds it to
// that: what it accepts, encoding/xml accepts with the same result.
type fastParser struct {
	outer    map[string]string
	maxDepth int // 0: no limit (the caller framed the element, or has none)

	// Positions in the element being parsed, not slices of it: the parser
	// lives on the heap, and storing an offset costs no write barrier,
	// which storing a pointer does while the collector marks.
	stack  []span // open elements' qualified names
	scope  []fastBinding
	inject []string
	attrs  []span          // the current tag's attribute names, for duplicates
	env    [envFields]span // the top element's from, to, id and type values
}

// span is rec[start:end] of the element being parsed.
type span struct{ start, end int }

func (s span) of(rec []byte) []byte { return rec[s.start:s.end] }

// maxSharedEnvelope is the most envelope bytes that share one string.
const maxSharedEnvelope = 512

// The envelope attributes, in the order of fastParser.env.
const (
	envFrom = iota
	envTo
	envID
	envType
	envFields
)

type fastBinding struct {
	prefix, uri span
	depth       int
}

// parse returns the element in rec, which must hold exactly one element.
// Raw is left unset; p.inject lists the outer prefixes to declare.
func (p *fastParser) parse(rec []byte) (e Element, top xml.Name, ok bool) {
	e, top, n, ok := p.parsePrefix(rec)
	if n != len(rec) {
		e, ok = Element{}, false
	}
	return e, top, ok
}

// parsePrefix is parse of the element that starts at rec[0] and may be
// followed by more bytes: n is its length. It is how Reader.next parses an
// element where it lies in the read buffer, without framing it first.
func (p *fastParser) parsePrefix(rec []byte) (e Element, top xml.Name, n int, ok bool) {
	p.env = [envFields]span{}
	e, top, n, ok = p.parseElement(rec)
	if ok {
		p.setEnvelope(&e, rec)
	}
	return e, top, n, ok
}

// setEnvelope gives e its envelope strings, sharing one allocation: a
// stanza carries up to four of them, and a string each was the largest
// share of the allocations on the stanza path. Whoever keeps one of them
// (a domain taken from a dialback element's from, say) keeps all four, so
// they share only while that costs little: a peer must not pin a huge id
// by way of a from that a link holds for its lifetime.
func (p *fastParser) setEnvelope(e *Element, rec []byte) {
	env := &p.env
	n := 0
	for _, v := range env {
		n += v.end - v.start
	}
	if n == 0 {
		return
	}
	dst := [envFields]*string{&e.From, &e.To, &e.ID, &e.Type}
	if n > maxSharedEnvelope {
		for i, v := range env {
			*dst[i] = string(v.of(rec))
		}
		return
	}
	var b strings.Builder
	b.Grow(n)
	for _, v := range env {
		b.Write(v.of(rec))
	}
	all := b.String()
	off := 0
	for i, v := range env {
		l := v.end - v.start
		*dst[i] = all[off : off+l]
		off += l
	}
}

// parseElement is parsePrefix without the envelope's strings. A prefix of
// an element is never ok: it ends at the top-level element's end.
func (p *fastParser) parseElement(rec []byte) (e Element, top xml.Name, n int, ok bool) {
	p.stack = p.stack[:0]
	p.scope = p.scope[:0]
	p.inject = p.inject[:0]
	i := 0
	for i < len(rec) {
		if rec[i] != '<' {
			if len(p.stack) == 0 {
				return e, top, 0, false
			}
			if i, ok = scanText(rec, i); !ok {
				return e, top, 0, false
			}
			continue
		}
		if i+1 >= len(rec) {
			return e, top, 0, false
		}
		switch rec[i+1] {
		case '/':
			name, _, j, ok := scanName(rec, i+2)
			if !ok || len(p.stack) == 0 || !bytes.Equal(name, p.stack[len(p.stack)-1].of(rec)) {
				return e, top, 0, false
			}
			j = skipSpace(rec, j)
			if j >= len(rec) || rec[j] != '>' {
				return e, top, 0, false
			}
			p.pop()
			i = j + 1
			if len(p.stack) == 0 {
				return e, top, i, true
			}
		case '!':
			const open = "<![CDATA["
			if len(p.stack) == 0 || !bytes.HasPrefix(rec[i:], []byte(open)) {
				return e, top, 0, false
			}
			k := bytes.Index(rec[i+len(open):], []byte("]]>"))
			if k < 0 || !validChars(rec[i+len(open):i+len(open)+k]) {
				return e, top, 0, false
			}
			i += len(open) + k + 3
		case '?':
			return e, top, 0, false
		default:
			var selfClose bool
			if p.maxDepth > 0 && len(p.stack) >= p.maxDepth {
				// Too deep: the framing path says so, with its error.
				return e, top, 0, false
			}
			if i, selfClose, ok = p.startTag(rec, i, &e, &top); !ok {
				return e, top, 0, false
			}
			if selfClose {
				p.pop()
				if len(p.stack) == 0 {
					return e, top, i, true
				}
			}
		}
	}
	return e, top, 0, false
}

// startTag scans the tag at rec[i] and pushes it. Each attribute is dealt
// with as it is scanned; only prefixed ones other than declarations wait
// for the end of the tag, when every declaration of the tag is in scope.
func (p *fastParser) startTag(rec []byte, i int, e *Element, top *xml.Name) (next int, selfClose, ok bool) {
	name, colon, j, ok := scanName(rec, i+1)
	if !ok {
		return 0, false, false
	}
	depth := len(p.stack) + 1
	isTop := depth == 1
	var defNS span
	hasDefNS, prefixed := false, false
	p.attrs = p.attrs[:0]
	for {
		k := skipSpace(rec, j)
		if k >= len(rec) {
			return 0, false, false
		}
		if rec[k] == '>' {
			j = k + 1
			break
		}
		if rec[k] == '/' {
			if k+1 >= len(rec) || rec[k+1] != '>' {
				return 0, false, false
			}
			j, selfClose = k+2, true
			break
		}
		if k == j {
			// encoding/xml allows attributes without space between
			// them; the fast path does not need to.
			return 0, false, false
		}
		an, acolon, k, ok := scanName(rec, k)
		if !ok {
			return 0, false, false
		}
		nameAt := k - len(an)
		k = skipSpace(rec, k)
		if k >= len(rec) || rec[k] != '=' {
			return 0, false, false
		}
		k = skipSpace(rec, k+1)
		if k >= len(rec) || (rec[k] != '\'' && rec[k] != '"') {
			return 0, false, false
		}
		// A plain value (the usual kind) is found and checked in one
		// pass; anything else is checked on its own.
		q := rec[k]
		v := span{start: k + 1}
		end := skipPlain(rec, k+1, '<', '&', q)
		plain := end < len(rec) && rec[end] == q
		if !plain {
			n := bytes.IndexByte(rec[end:], q)
			if n < 0 {
				return 0, false, false
			}
			end += n
			if plain, ok = scanAttrValue(rec[v.start:end]); !ok {
				return 0, false, false
			}
		}
		v.end = end
		j = end + 1
		for _, b := range p.attrs {
			if b.end-b.start == len(an) && bytes.Equal(an, b.of(rec)) {
				return 0, false, false
			}
		}
		p.attrs = append(p.attrs, span{nameAt, nameAt + len(an)})
		if acolon >= 0 {
			if string(an[:acolon]) != "xmlns" {
				prefixed = true
				continue
			}
			if v.end == v.start || string(an[acolon+1:]) == "xmlns" || !plain {
				return 0, false, false
			}
			p.scope = append(p.scope, fastBinding{prefix: span{nameAt + acolon + 1, nameAt + len(an)}, uri: v, depth: depth})
			continue
		}
		if !isTop {
			continue
		}
		f := -1
		switch string(an) {
		case "from":
			f = envFrom
		case "to":
			f = envTo
		case "id":
			f = envID
		case "type":
			f = envType
		case "xmlns":
			defNS, hasDefNS = v, true
		default:
			continue
		}
		if !plain {
			// References or line ends need encoding/xml's
			// unescaping rules to get the same string.
			return 0, false, false
		}
		if f >= 0 {
			p.env[f] = v
		}
	}
	if prefixed {
		for _, a := range p.attrs {
			an := a.of(rec)
			if c := bytes.IndexByte(an, ':'); c >= 0 && string(an[:c]) != "xmlns" {
				if _, ok := p.resolve(rec, an[:c]); !ok {
					return 0, false, false
				}
			}
		}
	}
	nameAt := i + 1
	p.stack = append(p.stack, span{nameAt, nameAt + len(name)})
	prefix, local := splitName(name, colon)
	if isTop {
		top.Local = internLocal(local)
		e.Name.Local = top.Local
		switch {
		case prefix != nil:
			top.Space = internPrefix(prefix)
			if e.Name.Space, ok = p.resolve(rec, prefix); !ok {
				return 0, false, false
			}
		case hasDefNS:
			e.Name.Space = internNS(defNS.of(rec))
		default:
			e.Name.Space = NSServer
		}
		if e.Name.Space == NSStream && e.Name.Local == "stream" {
			return 0, false, false
		}
	} else if prefix != nil {
		if _, ok := p.resolve(rec, prefix); !ok {
			return 0, false, false
		}
	}
	return j, selfClose, true
}

// release drops what the parser keeps of the last input; with positions
// instead of slices that is only the outer declarations, which belong to
// the caller.
func (p *fastParser) release() {
	p.outer = nil
}

func (p *fastParser) pop() {
	depth := len(p.stack)
	for len(p.scope) > 0 && p.scope[len(p.scope)-1].depth == depth {
		p.scope = p.scope[:len(p.scope)-1]
	}
	p.stack = p.stack[:depth-1]
}

// resolve is elemParser.resolve over bytes.
func (p *fastParser) resolve(rec, prefix []byte) (string, bool) {
	for i := len(p.scope) - 1; i >= 0; i-- {
		if bytes.Equal(p.scope[i].prefix.of(rec), prefix) {
			return internNS(p.scope[i].uri.of(rec)), true
		}
	}
	if string(prefix) == "xml" {
		return nsXML, true
	}
	uri, ok := p.outer[string(prefix)]
	if !ok {
		return "", false
	}
	for _, q := range p.inject {
		if q == string(prefix) {
			return uri, true
		}
	}
	p.inject = append(p.inject, string(prefix))
	return uri, true
}

// internNS returns the namespaces of the top-level elements that make up
// nearly all traffic without allocating.
func internNS(b []byte) string {
	switch string(b) {
	case NSServer:
		return NSServer
	case NSClient:
		return NSClient
	case NSStream:
		return NSStream
	case NSDialback:
		return NSDialback
	case nsSM:
		return nsSM
	}
	return string(b)
}

// nsSM is XEP-0198's namespace (sm.NS), that of the <a/> and <r/> a busy
// stream carries with every batch.
const nsSM = "urn:xmpp:sm:3"

// internPrefix does the same for the prefixes of top-level elements.
func internPrefix(b []byte) string {
	switch string(b) {
	case "db":
		return "db"
	case "stream":
		return "stream"
	}
	return string(b)
}

// splitName splits a qualified name at its colon, at index colon (-1:
// none, and prefix is nil), as scanName found it.
func splitName(n []byte, colon int) (prefix, local []byte) {
	if colon >= 0 {
		return n[:colon], n[colon+1:]
	}
	return nil, n
}

// nameStart and nameByte are the ASCII bytes that may start and continue
// an NCName.
var nameStart, nameByte = func() (start, more [256]bool) {
	for c := 0; c < 256; c++ {
		start[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		more[c] = start[c] || c >= '0' && c <= '9' || c == '.' || c == '-'
	}
	return start, more
}()

// scanName scans an ASCII qualified name at rec[i]: NCName, optionally
// "NCName:NCName"; colon is the colon's index in name, or -1. Other names
// are legal XML but left to encoding/xml. The name must be followed by a
// byte that is neither a name byte nor non-ASCII.
func scanName(rec []byte, i int) (name []byte, colon, next int, ok bool) {
	start := i
	colon = -1
	for {
		if i >= len(rec) || !nameStart[rec[i]] {
			return nil, 0, 0, false
		}
		i++
		for i < len(rec) && nameByte[rec[i]] {
			i++
		}
		if i >= len(rec) {
			return nil, 0, 0, false
		}
		if rec[i] != ':' || colon >= 0 {
			break
		}
		colon = i - start
		i++
	}
	if c := rec[i]; c == ':' || c >= utf8.RuneSelf {
		return nil, 0, 0, false
	}
	return rec[start:i], colon, i, true
}

func skipSpace(rec []byte, i int) int {
	for i < len(rec) && spaceByte[rec[i]] {
		i++
	}
	return i
}

// spaceByte is isSpaceByte as a table, for skipSpace: it runs before and
// after every attribute.
var spaceByte = [256]bool{' ': true, '\t': true, '\r': true, '\n': true}

// plainByte marks the bytes that text and attribute values may hold
// without a closer look: printable ASCII other than '<', '&' and '>'.
// Scanning runs of them is most of the fast parser's work.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '<' && c != '&' && c != '>'
	}
	return t
}()

// scanText checks character data from rec[i] to the next '<'.
func scanText(rec []byte, i int) (next int, ok bool) {
	for i < len(rec) {
		i = skipPlain(rec, i, '<', '&', '>')
		if i >= len(rec) {
			break
		}
		c := rec[i]
		switch {
		case c == '<':
			return i, true
		case c == '&':
			if i, ok = scanRef(rec, i); !ok {
				return 0, false
			}
			continue
		case c == '>':
			// "]]>" may not appear in text.
			if i >= 2 && rec[i-1] == ']' && rec[i-2] == ']' {
				return 0, false
			}
		case c < 0x20:
			if c != '\t' && c != '\n' && c != '\r' {
				return 0, false
			}
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(rec[i:])
			if (r == utf8.RuneError && n == 1) || !isXMLChar(r) {
				return 0, false
			}
			i += n
			continue
		}
		i++
	}
	return i, true
}

// skipPlain returns the index of the first byte from rec[i] on that is a,
// b or c, a control character or not ASCII; len(rec) if there is none.
// Text and attribute values are most of an element, and nearly all of
// their bytes are plain: it looks at eight of them at a time.
func skipPlain(rec []byte, i int, a, b, c byte) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	ma, mb, mc := lo*uint64(a), lo*uint64(b), lo*uint64(c)
	for ; i+8 <= len(rec); i += 8 {
		x := binary.LittleEndian.Uint64(rec[i:])
		// The high bit of each byte of m says whether it is special.
		// Each term is exact for its lowest flagged byte (a borrow
		// only ever flags a byte above a true one), so the lowest
		// flagged byte of m is the first special byte.
		ya, yb, yc := x^ma, x^mb, x^mc
		m := (x - lo*0x20) | x // below 0x20, or 0x80 and above
		m |= (ya - lo) &^ ya
		m |= (yb - lo) &^ yb
		m |= (yc - lo) &^ yc
		if m &= hi; m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(rec); i++ {
		if x := rec[i]; x < 0x20 || x >= utf8.RuneSelf || x == a || x == b || x == c {
			return i
		}
	}
	return i
}

// scanAttrValue checks an attribute value; plain reports that it has no
// reference and no control character, so its bytes are its value.
func scanAttrValue(v []byte) (plain, ok bool) {
	plain = true
	for i := 0; i < len(v); {
		if plainByte[v[i]] || v[i] == '>' {
			i++
			continue
		}
		c := v[i]
		switch {
		case c == '<':
			return false, false
		case c == '&':
			plain = false
			if i, ok = scanRef(v, i); !ok {
				return false, false
			}
			continue
		case c < 0x20:
			if c != '\t' && c != '\n' && c != '\r' {
				return false, false
			}
			plain = false
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(v[i:])
			if (r == utf8.RuneError && n == 1) || !isXMLChar(r) {
				return false, false
			}
			i += n
			continue
		}
		i++
	}
	return plain, true
}

// validChars checks CDATA content.
func validChars(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if (r == utf8.RuneError && n == 1) || !isXMLChar(r) {
			return false
		}
		i += n
	}
	return true
}

// scanRef checks the reference at rec[i] == '&': one of the five
// predefined entities or a character reference to a legal character.
func scanRef(rec []byte, i int) (next int, ok bool) {
	end := bytes.IndexByte(rec[i:min(len(rec), i+12)], ';')
	if end < 2 {
		return 0, false
	}
	body := rec[i+1 : i+end]
	next = i + end + 1
	switch string(body) {
	case "amp", "lt", "gt", "apos", "quot":
		return next, true
	}
	if body[0] != '#' || len(body) < 2 {
		return 0, false
	}
	var v rune
	if body[1] == 'x' {
		if len(body) < 3 || len(body) > 8 {
			return 0, false
		}
		for _, c := range body[2:] {
			switch {
			case c >= '0' && c <= '9':
				v = v*16 + rune(c-'0')
			case c >= 'a' && c <= 'f':
				v = v*16 + rune(c-'a'+10)
			case c >= 'A' && c <= 'F':
				v = v*16 + rune(c-'A'+10)
			default:
				return 0, false
			}
		}
	} else {
		if len(body) > 8 {
			return 0, false
		}
		for _, c := range body[1:] {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + rune(c-'0')
		}
	}
	return next, isXMLChar(v)
}

// isXMLChar is the Char production of XML 1.0.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// internLocal returns the names of the elements that make up nearly all
// traffic without allocating.
func internLocal(b []byte) string {
	switch string(b) {
	case "message":
		return "message"
	case "presence":
		return "presence"
	case "iq":
		return "iq"
	case "result":
		return "result"
	case "verify":
		return "verify"
	}
	return string(b)
}
