package wire

import (
	"bytes"
	"encoding/xml"
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
	outer map[string]string

	stack  [][]byte // open elements' qualified names
	scope  []fastBinding
	inject []string
	attrs  []fastAttr
}

type fastBinding struct {
	prefix, uri []byte
	depth       int
}

type fastAttr struct {
	name, value []byte
	plain       bool // no reference and no control character
}

// parse returns the element in rec, which must hold exactly one element.
// Raw is left unset; p.inject lists the outer prefixes to declare.
func (p *fastParser) parse(rec []byte) (e Element, top xml.Name, ok bool) {
	p.stack = p.stack[:0]
	p.scope = p.scope[:0]
	p.inject = p.inject[:0]
	i := 0
	for i < len(rec) {
		if rec[i] != '<' {
			if len(p.stack) == 0 {
				return e, top, false
			}
			if i, ok = scanText(rec, i); !ok {
				return e, top, false
			}
			continue
		}
		if i+1 >= len(rec) {
			return e, top, false
		}
		switch rec[i+1] {
		case '/':
			name, j, ok := scanName(rec, i+2)
			if !ok || len(p.stack) == 0 || !bytes.Equal(name, p.stack[len(p.stack)-1]) {
				return e, top, false
			}
			j = skipSpace(rec, j)
			if j >= len(rec) || rec[j] != '>' {
				return e, top, false
			}
			p.pop()
			i = j + 1
			if len(p.stack) == 0 {
				return e, top, i == len(rec)
			}
		case '!':
			const open = "<![CDATA["
			if len(p.stack) == 0 || !bytes.HasPrefix(rec[i:], []byte(open)) {
				return e, top, false
			}
			k := bytes.Index(rec[i+len(open):], []byte("]]>"))
			if k < 0 || !validChars(rec[i+len(open):i+len(open)+k]) {
				return e, top, false
			}
			i += len(open) + k + 3
		case '?':
			return e, top, false
		default:
			var selfClose bool
			if i, selfClose, ok = p.startTag(rec, i, &e, &top); !ok {
				return e, top, false
			}
			if selfClose {
				p.pop()
				if len(p.stack) == 0 {
					return e, top, i == len(rec)
				}
			}
		}
	}
	return e, top, false
}

// startTag scans the tag at rec[i] and pushes it.
func (p *fastParser) startTag(rec []byte, i int, e *Element, top *xml.Name) (next int, selfClose, ok bool) {
	name, j, ok := scanName(rec, i+1)
	if !ok {
		return 0, false, false
	}
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
		var a fastAttr
		if a.name, k, ok = scanName(rec, k); !ok {
			return 0, false, false
		}
		k = skipSpace(rec, k)
		if k >= len(rec) || rec[k] != '=' {
			return 0, false, false
		}
		k = skipSpace(rec, k+1)
		if k >= len(rec) || (rec[k] != '\'' && rec[k] != '"') {
			return 0, false, false
		}
		end := bytes.IndexByte(rec[k+1:], rec[k])
		if end < 0 {
			return 0, false, false
		}
		a.value = rec[k+1 : k+1+end]
		if a.plain, ok = scanAttrValue(a.value); !ok {
			return 0, false, false
		}
		for _, b := range p.attrs {
			if bytes.Equal(a.name, b.name) {
				return 0, false, false
			}
		}
		p.attrs = append(p.attrs, a)
		j = k + 2 + end
	}

	p.stack = append(p.stack, name)
	depth := len(p.stack)
	isTop := depth == 1
	var defNS []byte
	hasDefNS := false
	for _, a := range p.attrs {
		prefix, local := splitName(a.name)
		switch {
		case string(prefix) == "xmlns":
			if len(a.value) == 0 || string(local) == "xmlns" || !a.plain {
				return 0, false, false
			}
			p.scope = append(p.scope, fastBinding{prefix: local, uri: a.value, depth: depth})
		case prefix == nil && isTop:
			if string(local) == "xmlns" {
				defNS, hasDefNS = a.value, true
			}
			var dst *string
			switch string(local) {
			case "from":
				dst = &e.From
			case "to":
				dst = &e.To
			case "id":
				dst = &e.ID
			case "type":
				dst = &e.Type
			default:
				if string(local) != "xmlns" {
					continue
				}
			}
			if !a.plain {
				// References or line ends need encoding/xml's
				// unescaping rules to get the same string.
				return 0, false, false
			}
			if dst != nil {
				*dst = string(a.value)
			}
		}
	}
	for _, a := range p.attrs {
		if prefix, _ := splitName(a.name); prefix != nil && string(prefix) != "xmlns" {
			if _, ok := p.resolve(prefix); !ok {
				return 0, false, false
			}
		}
	}
	prefix, local := splitName(name)
	if isTop {
		top.Local = internLocal(local)
		e.Name.Local = top.Local
		switch {
		case prefix != nil:
			top.Space = string(prefix)
			if e.Name.Space, ok = p.resolve(prefix); !ok {
				return 0, false, false
			}
		case hasDefNS:
			e.Name.Space = string(defNS)
		default:
			e.Name.Space = NSServer
		}
		if e.Name.Space == NSStream && e.Name.Local == "stream" {
			return 0, false, false
		}
	} else if prefix != nil {
		if _, ok := p.resolve(prefix); !ok {
			return 0, false, false
		}
	}
	return j, selfClose, true
}

// release drops the parser's references into the last input, so a pooled
// parser does not keep the caller's bytes alive.
func (p *fastParser) release() {
	clear(p.stack[:cap(p.stack)])
	clear(p.scope[:cap(p.scope)])
	clear(p.attrs[:cap(p.attrs)])
}

func (p *fastParser) pop() {
	depth := len(p.stack)
	for len(p.scope) > 0 && p.scope[len(p.scope)-1].depth == depth {
		p.scope = p.scope[:len(p.scope)-1]
	}
	p.stack = p.stack[:depth-1]
}

// resolve is elemParser.resolve over bytes.
func (p *fastParser) resolve(prefix []byte) (string, bool) {
	for i := len(p.scope) - 1; i >= 0; i-- {
		if bytes.Equal(p.scope[i].prefix, prefix) {
			return string(p.scope[i].uri), true
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

// splitName splits a qualified name at its colon; prefix is nil when there
// is none (scanName guarantees at most one colon, not at either end).
func splitName(n []byte) (prefix, local []byte) {
	if i := bytes.IndexByte(n, ':'); i >= 0 {
		return n[:i], n[i+1:]
	}
	return nil, n
}

// scanName scans an ASCII qualified name at rec[i]: NCName, optionally
// "NCName:NCName". Other names are legal XML but left to encoding/xml.
func scanName(rec []byte, i int) (name []byte, next int, ok bool) {
	start := i
	colon := -1
	for i < len(rec) {
		c := rec[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case c >= '0' && c <= '9', c == '.', c == '-':
			if i == start || i == colon+1 {
				return nil, 0, false
			}
		case c == ':':
			if colon >= 0 || i == start {
				return nil, 0, false
			}
			colon = i
		default:
			if i == start || i == colon+1 {
				return nil, 0, false
			}
			if c >= utf8.RuneSelf {
				return nil, 0, false
			}
			return rec[start:i], i, true
		}
		i++
	}
	return nil, 0, false
}

func skipSpace(rec []byte, i int) int {
	for i < len(rec) && isSpaceByte(rec[i]) {
		i++
	}
	return i
}

// scanText checks character data from rec[i] to the next '<'.
func scanText(rec []byte, i int) (next int, ok bool) {
	for i < len(rec) {
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

// scanAttrValue checks an attribute value; plain reports that it has no
// reference and no control character, so its bytes are its value.
func scanAttrValue(v []byte) (plain, ok bool) {
	plain = true
	for i := 0; i < len(v); {
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
