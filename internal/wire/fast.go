package wire

import (
	"bytes"
	"encoding/binary"
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
	attrs  []span          // the current tag's other attribute names, for repeats
	env    [envFields]span // the top element's from, to, id and type values
	// envLo and envHi bound the values in env that need a string (not
	// hits, not the type); envLen is their length.
	envLo, envHi, envLen int

	// last holds the from and to strings of an earlier element, and hits
	// has the bit of each of the two (1<<envFrom, 1<<envTo) that the
	// element being parsed repeats: its string is then last's, and no
	// byte of it is scanned or copied again. A stream's stanzas mostly
	// name the same two servers or users one after the other. The
	// strings are ones this parser handed out before (a Reader's, or a
	// pooled one's for ParseStanza), never bytes of a buffer it reads.
	last  [2]string
	lastQ [2]byte // the quote each of last was written in
	// lastW is the word of the record that each of last began, so that
	// a value that is not last's is told in one comparison, with the
	// word the value's scan reads anyway.
	lastW [2]uint64
	// hits also has 1<<envType when the type is typ, a constant the
	// template gave.
	hits uint8
	typ  string

	// tmpl is the start of the last stanzas' top-level tag, which the
	// next one is compared with before it is parsed (see record); nil
	// until there is one, so that a stream that carried a stanza or two
	// does not hold it.
	tmpl *template

	defNS span // the top-level tag's xmlns value, when it has one

	// nameEnd is the index just past the top-level tag's name (where
	// buildRaw declares outer prefixes); topPrefixed says it has a prefix.
	nameEnd     int
	topPrefixed bool
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

// parse sets *e to the element in rec, which must hold exactly one
// element. Raw is left unset; p.inject lists the outer prefixes to
// declare, after the name that ends at p.nameEnd. When !ok, *e is zero.
func (p *fastParser) parse(rec []byte, e *Element) (ok bool) {
	n, ok := p.parsePrefix(rec, e)
	if ok && n != len(rec) {
		*e, ok = Element{}, false
	}
	return ok
}

// parsePrefix is parse of the element that starts at rec[0] and may be
// followed by more bytes: n is its length. It is how Reader.next parses an
// element where it lies in the read buffer, without framing it first. The
// element is filled in through a pointer: an Element is thirteen words,
// and copying it out of each call on the way cost more than the checks of
// a small stanza's end tag.
func (p *fastParser) parsePrefix(rec []byte, e *Element) (n int, ok bool) {
	p.env = [envFields]span{}
	p.envLo, p.envHi, p.envLen = len(rec), 0, 0
	p.hits = 0
	*e = Element{}
	if n, ok = p.parseElement(rec, e); !ok {
		*e = Element{}
		return 0, false
	}
	p.setEnvelope(e, rec)
	if t := p.tmpl; (t == nil || t.b == "" || t.misses >= maxTemplateMisses) && p.hits&(1<<envFrom|1<<envTo) != 0 {
		p.record(rec, e)
	}
	return n, true
}

// setEnvelope gives e its envelope strings. A from or to that repeats the
// last one's bytes is the last one's string (p.last), and a type is one of
// the constants of knownType when it can be: what is left, usually the id
// alone, shares one allocation. The values usually stand together in the
// start tag, and that string is one copy of the bytes from the first to the
// last, the names and quotes between them included; when those are more
// than a few bytes (other attributes between), the values are copied on
// their own. Whoever keeps one of them (a domain taken from a dialback
// element's from, say) keeps all that share it, so they share only while
// that costs little: a peer must not pin a huge id by way of a from that a
// link holds for its lifetime.
func (p *fastParser) setEnvelope(e *Element, rec []byte) {
	env := &p.env
	hits := p.hits
	if hits&(1<<envFrom) != 0 {
		e.From = p.last[envFrom]
	}
	if hits&(1<<envTo) != 0 {
		e.To = p.last[envTo]
	}
	lo, hi, n := p.envLo, p.envHi, p.envLen
	if hits&(1<<envType) != 0 {
		e.Type = p.typ
	} else if t := env[envType]; t.end > t.start {
		// A constant, or a value like the others.
		if e.Type = knownType(t.of(rec)); e.Type != "" {
			hits |= 1 << envType
		} else {
			lo, hi = min(lo, t.start), max(hi, t.end)
			n += t.end - t.start
		}
	}
	if n == 0 {
		return
	}
	if id := env[envID]; hits&(1<<envFrom|1<<envTo|1<<envType) == 1<<envFrom|1<<envTo|1<<envType && n <= maxSharedEnvelope {
		// The usual stanza after a template: the id is all there
		// is to copy (an absent one made n 0).
		e.ID = string(id.of(rec))
		return
	}
	if hi-lo <= min(n+maxEnvelopeGaps, maxSharedEnvelope) {
		all := string(rec[lo:hi])
		// An absent value's span is empty, and its string too.
		sub := func(v span) string {
			if v.end > v.start {
				return all[v.start-lo : v.end-lo]
			}
			return ""
		}
		if hits&(1<<envFrom) == 0 {
			e.From = sub(env[envFrom])
		}
		if hits&(1<<envTo) == 0 {
			e.To = sub(env[envTo])
		}
		e.ID = sub(env[envID])
		if hits&(1<<envType) == 0 {
			e.Type = sub(env[envType])
		}
	} else {
		p.setApart(e, rec, n, hits)
	}
	// The new from and to are the ones to look for next, each with the
	// quote that closed it (it has none of those inside).
	if v := env[envFrom]; hits&(1<<envFrom) == 0 && v.end > v.start {
		p.remember(envFrom, e.From, rec, v)
	}
	if v := env[envTo]; hits&(1<<envTo) == 0 && v.end > v.start {
		p.remember(envTo, e.To, rec, v)
	}
}

// setApart is setEnvelope for values that are far apart in the tag: they
// share a string of their own bytes alone, or have one each when they are
// long.
func (p *fastParser) setApart(e *Element, rec []byte, n int, hits uint8) {
	env := &p.env
	dst := [envFields]*string{&e.From, &e.To, &e.ID, &e.Type}
	if n > maxSharedEnvelope {
		for f, v := range env {
			if hits&(1<<f) == 0 {
				*dst[f] = string(v.of(rec))
			}
		}
		return
	}
	var b strings.Builder
	b.Grow(n)
	for f, v := range env {
		if hits&(1<<f) == 0 {
			b.Write(v.of(rec))
		}
	}
	all := b.String()
	off := 0
	for f, v := range env {
		if l := v.end - v.start; hits&(1<<f) == 0 && l > 0 {
			*dst[f] = all[off : off+l]
			off += l
		}
	}
}

// remember makes s, the value of from or to (f) at v in rec, the one the
// next elements are compared with.
func (p *fastParser) remember(f int, s string, rec []byte, v span) {
	if len(s) > maxRemembered || v.start+8 > len(rec) {
		s = ""
	}
	p.last[f] = s
	// A template with this attribute holds its last value: it goes
	// with it.
	if t := p.tmpl; t != nil && t.flags&(1<<f) != 0 {
		t.b = ""
	}
	if s != "" {
		p.lastQ[f] = rec[v.end]
		p.lastW[f] = binary.LittleEndian.Uint64(rec[v.start : v.start+8])
	}
}

// maxRemembered is the longest from or to that a parser keeps for the
// next element (p.last): longer than any JID of the usual traffic, and
// short enough that a quiet stream holds little.
const maxRemembered = 128

// repeats reports whether the value of from or to (f) at rec[k], in the
// quote q, is p.last[f]; it sets p.env[f] when it is. The same bytes up to
// the quote are a plain value: last has no byte q inside when it was
// written in q too.
func (p *fastParser) repeats(rec []byte, k, f int, q byte) bool {
	l := p.last[f]
	x := k + len(l)
	if l == "" || x >= len(rec) || rec[x] != q || q != p.lastQ[f] || string(rec[k:x]) != l {
		return false
	}
	p.env[f] = span{k, x}
	return true
}

// knownType returns the values of type that stanzas and dialback elements
// carry as constants; "" for others.
func knownType(b []byte) string {
	switch string(b) {
	case "get":
		return "get"
	case "set":
		return "set"
	case "result":
		return "result"
	case "error":
		return "error"
	case "chat":
		return "chat"
	case "normal":
		return "normal"
	case "groupchat":
		return "groupchat"
	case "headline":
		return "headline"
	case "unavailable":
		return "unavailable"
	case "subscribe":
		return "subscribe"
	case "subscribed":
		return "subscribed"
	case "unsubscribe":
		return "unsubscribe"
	case "unsubscribed":
		return "unsubscribed"
	case "probe":
		return "probe"
	case "valid":
		return "valid"
	case "invalid":
		return "invalid"
	}
	return ""
}

// maxEnvelopeGaps is the most bytes between the envelope's values that its
// shared string may carry: the names, quotes and spaces of the four
// attributes (" to='", "' type='" and so on) with a little room.
const maxEnvelopeGaps = 32

// parseElement is parsePrefix without the envelope's strings. A prefix of
// an element is never ok: it ends at the top-level element's end.
func (p *fastParser) parseElement(rec []byte, e *Element) (n int, ok bool) {
	p.stack = p.stack[:0]
	p.scope = p.scope[:0]
	p.inject = p.inject[:0]
	i := 0
	for i < len(rec) {
		if rec[i] != '<' {
			if len(p.stack) == 0 {
				return 0, false
			}
			if i, ok = scanText(rec, i); !ok {
				return 0, false
			}
			continue
		}
		if i+1 >= len(rec) {
			return 0, false
		}
		switch rec[i+1] {
		case '/':
			if len(p.stack) == 0 {
				return 0, false
			}
			// The open name, already checked, then '>' (the usual
			// end tag) is what scanName would take for that name.
			open := p.stack[len(p.stack)-1].of(rec)
			j := i + 2 + len(open)
			if j >= len(rec) || rec[j] != '>' || string(rec[i+2:j]) != string(open) {
				k, _ := scanName(rec, i+2)
				if k < 0 || string(rec[i+2:k]) != string(open) {
					return 0, false
				}
				if j = skipSpace(rec, k); j >= len(rec) || rec[j] != '>' {
					return 0, false
				}
			}
			p.pop()
			i = j + 1
			if len(p.stack) == 0 {
				return i, true
			}
		case '!':
			const open = "<![CDATA["
			if len(p.stack) == 0 || !bytes.HasPrefix(rec[i:], []byte(open)) {
				return 0, false
			}
			k := bytes.Index(rec[i+len(open):], []byte("]]>"))
			if k < 0 || !validChars(rec[i+len(open):i+len(open)+k]) {
				return 0, false
			}
			i += len(open) + k + 3
		case '?':
			return 0, false
		default:
			var selfClose bool
			if p.maxDepth > 0 && len(p.stack) >= p.maxDepth {
				// Too deep: the framing path says so, with its error.
				return 0, false
			}
			if i, selfClose, ok = p.startTag(rec, i, e); !ok {
				return 0, false
			}
			if selfClose {
				p.pop()
				if len(p.stack) == 0 {
					return i, true
				}
			}
		}
	}
	return 0, false
}

// startTag scans the tag at rec[i] and pushes it. Each attribute is dealt
// with as it is scanned; only prefixed ones other than declarations wait
// for the end of the tag, when every declaration of the tag is in scope.
//
// Most attributes are a stanza's from, to, id and type and a child's
// xmlns, written name='value' after one space: attributes matches those
// eight bytes at a time and checks them for repeats with a bit each;
// anything else takes the general path, which gives the same result.
func (p *fastParser) startTag(rec []byte, i int, e *Element) (next int, selfClose, ok bool) {
	if t := p.tmpl; i == 0 && t != nil && t.b != "" {
		if len(rec) > len(t.b) && string(rec[:len(t.b)]) == t.b {
			return p.fromTemplate(rec, e)
		}
		t.misses++
	}
	nameAt := i + 1
	nameEnd, colon := scanName(rec, nameAt)
	if nameEnd < 0 {
		return 0, false, false
	}
	p.stack = append(p.stack, span{nameAt, nameEnd})
	isTop := len(p.stack) == 1
	next, flags, ok := p.attributes(rec, nameEnd, isTop, 0)
	if !ok {
		return 0, false, false
	}
	if flags&tagPrefixed != 0 && !p.prefixedAttrs(rec) {
		return 0, false, false
	}
	local := rec[nameAt:nameEnd]
	var prefix []byte
	if colon >= 0 {
		prefix, local = rec[nameAt:colon], rec[colon+1:nameEnd]
	}
	if isTop {
		p.nameEnd, p.topPrefixed = nameEnd, prefix != nil
		e.Name.Local = internLocal(local)
		switch {
		case prefix != nil:
			if e.Name.Space, ok = p.resolve(rec, prefix); !ok {
				return 0, false, false
			}
		case flags&(1<<attrXMLNS) != 0:
			e.Name.Space = internNS(p.defNS.of(rec))
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
	return next, flags&tagSelfClose != 0, true
}

// prefixedAttrs resolves the prefixes of the tag's attributes other than
// declarations, once all its declarations are in scope.
func (p *fastParser) prefixedAttrs(rec []byte) bool {
	for _, a := range p.attrs {
		an := a.of(rec)
		if c := bytes.IndexByte(an, ':'); c >= 0 && string(an[:c]) != "xmlns" {
			if _, ok := p.resolve(rec, an[:c]); !ok {
				return false
			}
		}
	}
	return true
}

// template is the start of a top-level tag that the last stanzas began
// with, up to the end of its first attributes: from, to, type and xmlns in
// any order, each after one space and written name='value', from and to
// the parser's last ones (p.last), type a constant. A stream's stanzas
// (pings, a conversation's messages) mostly begin the same, and bytes the
// same as the template's are a start the parser took before: its result
// (where the values are, the name, the flags) is the template's, and the
// parse goes on after it.
type template struct {
	b           string // the bytes, up to the last value's closing quote
	nameEnd     int
	name, space string          // constants: internLocal's, internNS's
	env         [envFields]span // from, to and type, when b has them
	defNS       span
	flags       uint8 // attributes' known-name bits for b
	typ         string
	// misses counts the top-level tags that did not begin with b since
	// it was made: after a few, the stanzas have changed, and the next
	// one that may give a template does.
	misses uint8
}

// maxTemplateMisses is how many tags in a row may begin otherwise than the
// template before the next one replaces it: a stream that carries two
// kinds of stanza in turn copies a template at most once in that many.
const maxTemplateMisses = 8

// fromTemplate is startTag for a top-level tag that begins with p.tmpl.
func (p *fastParser) fromTemplate(rec []byte, e *Element) (next int, selfClose, ok bool) {
	t := p.tmpl
	p.stack = append(p.stack, span{1, t.nameEnd})
	p.env, p.defNS = t.env, t.defNS
	p.hits = t.flags & (1<<envFrom | 1<<envTo | 1<<envType)
	p.typ = t.typ
	next, flags, ok := p.attributes(rec, len(t.b), true, t.flags)
	if !ok {
		return 0, false, false
	}
	if flags&tagPrefixed != 0 && !p.prefixedAttrs(rec) {
		return 0, false, false
	}
	p.nameEnd, p.topPrefixed = t.nameEnd, false
	e.Name.Local = t.name
	switch {
	case t.flags&(1<<attrXMLNS) != 0:
		e.Name.Space = t.space
	case flags&(1<<attrXMLNS) != 0:
		e.Name.Space = internNS(p.defNS.of(rec))
	default:
		e.Name.Space = NSServer
	}
	return next, flags&tagSelfClose != 0, true
}

// record makes the start of e's top-level tag, which was just parsed in
// full, the template, when it is a stanza's in a constant namespace and
// begins with from or to (the last ones: hits) and other attributes of the
// template's kind.
func (p *fastParser) record(rec []byte, e *Element) {
	if p.topPrefixed || !isStanzaLocal(e.Name.Local) || (e.Name.Space != NSServer && e.Name.Space != NSClient) {
		return
	}
	var t template
	j := p.nameEnd
attrs:
	for j+1 < len(rec) && rec[j] == ' ' {
		k := j + 1
		var f, n int
		switch {
		case bytes.HasPrefix(rec[k:], []byte("from=")):
			f, n = envFrom, 5
		case bytes.HasPrefix(rec[k:], []byte("to=")):
			f, n = envTo, 3
		case bytes.HasPrefix(rec[k:], []byte("type=")):
			f, n = envType, 5
		case bytes.HasPrefix(rec[k:], []byte("xmlns=")):
			f, n = attrXMLNS, 6
		default:
			f = -1
		}
		bit := uint8(1) << uint(f&7)
		if f < 0 || t.flags&bit != 0 || k+n >= len(rec) || (rec[k+n] != '\'' && rec[k+n] != '"') {
			break
		}
		// The value the parse found there, as the template gives it.
		var v span
		switch f {
		case envFrom, envTo:
			if p.hits&bit == 0 {
				break attrs
			}
			v = p.env[f]
		case envType:
			if t.typ = knownType(p.env[f].of(rec)); t.typ == "" {
				break attrs
			}
			v = p.env[f]
		case attrXMLNS:
			v = p.defNS
			t.defNS = v
		}
		if v.start != k+n+1 || v.end <= v.start || v.end >= len(rec) || rec[v.end] != rec[k+n] {
			break
		}
		if f != attrXMLNS {
			t.env[f] = v
		}
		t.flags |= bit
		j = v.end + 1
	}
	if t.flags&(1<<envFrom|1<<envTo) == 0 {
		return
	}
	t.b = string(rec[:j])
	t.nameEnd = p.nameEnd
	t.name, t.space = e.Name.Local, e.Name.Space
	if p.tmpl == nil {
		p.tmpl = new(template)
	}
	*p.tmpl = t
}

// isStanzaLocal reports whether n is the local name of a stanza, as
// internLocal returns it without allocating.
func isStanzaLocal(n string) bool { return n == "message" || n == "presence" || n == "iq" }

// Bits of attributes' flags besides the known names' (1<<envFrom to
// 1<<attrXMLNS): the tag closes itself, an attribute has a prefix that is
// not xmlns.
const (
	tagSelfClose = 1 << 6
	tagPrefixed  = 1 << 7
)

// attributes scans the attributes of the tag whose name ends at rec[j], up
// to the tag's end; next is the index after it. Apart from startTag, so
// that this loop keeps few values live: a Go call (skipPlain's) saves them
// all. flags has a bit for each known name met (a repeat is refused), and
// tagSelfClose and tagPrefixed. For the top-level tag it fills p.env and,
// with the xmlns bit, p.defNS.
func (p *fastParser) attributes(rec []byte, j int, isTop bool, flags uint8) (next int, _ uint8, ok bool) {
	p.attrs = p.attrs[:0]
	for {
		// One space before an attribute is the usual, and the loop of
		// skipSpace cost more than the rest of a short attribute.
		k := j
		if k < len(rec) && rec[k] == ' ' {
			k++
		}
		if k >= len(rec) {
			return 0, 0, false
		}
		c := rec[k]
		if spaceByte[c] {
			if k = skipSpace(rec, k); k >= len(rec) {
				return 0, 0, false
			}
			c = rec[k]
		}
		if c == '>' {
			return k + 1, flags, true
		}
		if c == '/' {
			if k+1 >= len(rec) || rec[k+1] != '>' {
				return 0, 0, false
			}
			return k + 2, flags | tagSelfClose, true
		}
		if k == j {
			// encoding/xml allows attributes without space between
			// them; the fast path does not need to.
			return 0, 0, false
		}
		f, q := -1, byte(0)
		if k+8 <= len(rec) {
			// rec[k:k+8], not rec[k:]: a word the compiler can see
			// is in bounds, with no check left in Uint64.
			w := binary.LittleEndian.Uint64(rec[k : k+8])
			n := 0
			switch {
			case w&m5 == attrFrom:
				f, n, q = envFrom, 6, byte(w>>40)
			case w&m3 == attrTo:
				f, n, q = envTo, 4, byte(w>>24)
			case w&m3 == attrID:
				f, n, q = envID, 4, byte(w>>24)
			case w&m5 == attrType:
				f, n, q = envType, 6, byte(w>>40)
			case w&m6 == attrXmlns:
				f, n, q = attrXMLNS, 7, byte(w>>48)
			}
			if q == '\'' || q == '"' {
				k += n
			} else {
				f = -1
			}
		}
		acolon := -1
		var an span
		if f < 0 {
			an.start = k
			if an.end, acolon = scanName(rec, k); an.end < 0 {
				return 0, 0, false
			}
			if acolon < 0 {
				f = knownName(an.of(rec))
			}
			k = skipSpace(rec, an.end)
			if k >= len(rec) || rec[k] != '=' {
				return 0, 0, false
			}
			k = skipSpace(rec, k+1)
			if k >= len(rec) || (rec[k] != '\'' && rec[k] != '"') {
				return 0, 0, false
			}
			q = rec[k]
			k++
		}
		// A plain value (the usual kind) is found and checked in one
		// pass; anything else is checked on its own.
		v := span{start: k}
		var end int
		if k+8 <= len(rec) {
			w := binary.LittleEndian.Uint64(rec[k : k+8])
			if uint(f) < uint(len(p.lastW)) && w == p.lastW[f] && isTop && p.repeats(rec, k, f, q) {
				// A from or to as the last one's: no byte of
				// it is scanned or copied again.
				bit := uint8(1) << uint(f)
				if flags&bit != 0 {
					return 0, 0, false
				}
				flags |= bit
				p.hits |= bit
				j = p.env[f].end + 1
				continue
			}
			if m := specialBytes(w, q); m != 0 {
				end = k + bits.TrailingZeros64(m)>>3
			} else if k+16 <= len(rec) {
				// Ids and namespaces are mostly 8 to 15
				// bytes: their end is in the second word,
				// without skipPlain's call.
				if m := specialBytes(binary.LittleEndian.Uint64(rec[k+8:k+16]), q); m != 0 {
					end = k + 8 + bits.TrailingZeros64(m)>>3
				} else {
					end = skipPlain(rec, k+16, q)
				}
			} else {
				end = skipPlain(rec, k+8, q)
			}
		} else {
			end = skipPlain(rec, k, q)
		}
		plain := end < len(rec) && rec[end] == q
		if !plain {
			n := bytes.IndexByte(rec[end:], q)
			if n < 0 {
				return 0, 0, false
			}
			end += n
			if plain, ok = scanAttrValue(rec[v.start:end]); !ok {
				return 0, 0, false
			}
		}
		v.end = end
		j = end + 1
		if f >= 0 {
			// A known name cannot equal any other attribute's.
			bit := uint8(1) << (uint(f) & 7)
			if flags&bit != 0 {
				return 0, 0, false
			}
			flags |= bit
			if !isTop {
				continue
			}
			if !plain {
				// References or line ends need encoding/xml's
				// unescaping rules to get the same string.
				return 0, 0, false
			}
			if f == attrXMLNS {
				p.defNS = v
			} else if f == envType {
				// setEnvelope bounds it only when it is not a
				// constant (knownType).
				p.env[f] = v
			} else if v.end > v.start {
				p.env[f] = v
				p.envLo, p.envHi = min(p.envLo, v.start), max(p.envHi, v.end)
				p.envLen += v.end - v.start
			}
			continue
		}
		name := an.of(rec)
		for _, b := range p.attrs {
			if b.end-b.start == len(name) && bytes.Equal(name, b.of(rec)) {
				return 0, 0, false
			}
		}
		p.attrs = append(p.attrs, an)
		if acolon >= 0 {
			if string(rec[an.start:acolon]) != "xmlns" {
				flags |= tagPrefixed
				continue
			}
			if v.end == v.start || string(rec[acolon+1:an.end]) == "xmlns" || !plain {
				return 0, 0, false
			}
			p.scope = append(p.scope, fastBinding{prefix: span{acolon + 1, an.end}, uri: v, depth: len(p.stack)})
		}
	}
}

// forget drops the from, to and template the parser compares the next
// stanzas with (last, tmpl): a quiet stream holds none of them.
func (p *fastParser) forget() {
	p.last = [2]string{}
	p.tmpl = nil
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
// "NCName:NCName". It returns the index just past the name, and the
// colon's index or -1; end is -1 if there is no such name there. Other
// names are legal XML but left to encoding/xml. The name must be followed
// by a byte that is neither a name byte nor non-ASCII.
func scanName(rec []byte, i int) (end, colon int) {
	colon = -1
	for {
		if i >= len(rec) || !nameStart[rec[i]] {
			return -1, -1
		}
		i++
		for i < len(rec) && nameByte[rec[i]] {
			i++
		}
		if i >= len(rec) {
			return -1, -1
		}
		if rec[i] != ':' || colon >= 0 {
			break
		}
		colon = i
		i++
	}
	if c := rec[i]; c == ':' || c >= utf8.RuneSelf {
		return -1, -1
	}
	return i, colon
}

// The names attributes knows, by their bit in its flags; the first four
// are also indices of fastParser.env.
const attrXMLNS = envFields

// The known names with their '=', as little-endian words, and the masks
// of their lengths.
const (
	m3, m5, m6 = 1<<24 - 1, 1<<40 - 1, 1<<48 - 1
	attrFrom   = 'f' | 'r'<<8 | 'o'<<16 | 'm'<<24 | '='<<32
	attrTo     = 't' | 'o'<<8 | '='<<16
	attrID     = 'i' | 'd'<<8 | '='<<16
	attrType   = 't' | 'y'<<8 | 'p'<<16 | 'e'<<24 | '='<<32
	attrXmlns  = 'x' | 'm'<<8 | 'l'<<16 | 'n'<<24 | 's'<<32 | '='<<40
)

// knownName is the index of a name that attributes scanned in full, or -1:
// the names the words above match, written otherwise ("from = 'a'").
func knownName(n []byte) int {
	switch string(n) {
	case "from":
		return envFrom
	case "to":
		return envTo
	case "id":
		return envID
	case "type":
		return envType
	case "xmlns":
		return attrXMLNS
	}
	return -1
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
		i = skipPlain(rec, i, '>')
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

// skipPlain returns the index of the first byte from rec[i] on that is
// '<', '&' or c, a control character or not ASCII; len(rec) if there is
// none. c must be ASCII (a quote, or '>'). Text and attribute values are
// most of an element, and nearly all of their bytes are plain: it looks at
// eight of them at a time.
func skipPlain(rec []byte, i int, c byte) int {
	// Sliding a slice rather than an index lets the compiler see that
	// each word is in bounds.
	for s := rec[i:]; len(s) >= 8; s, i = s[8:], i+8 {
		if m := specialBytes(binary.LittleEndian.Uint64(s), c); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(rec); i++ {
		if x := rec[i]; x < 0x20 || x >= utf8.RuneSelf || x == '<' || x == '&' || x == c {
			return i
		}
	}
	return i
}

// specialBytes flags, by the high bit of each byte, the bytes of x that
// skipPlain stops at. A byte equal to v is a zero byte of x^v, which the
// subtraction of 0x01 turns to 0xff; x^v has the high bit of x (v is
// ASCII), so the bytes of x from 0x80 up, flagged anyway, are the only
// others it can flag. A borrow only ever flags a byte above one that is
// truly special, so the lowest flagged byte is the first special byte.
func specialBytes(x uint64, c byte) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	ya, yb, yc := x^(lo*'<'), x^(lo*'&'), x^(lo*uint64(c))
	m := (ya - lo) | (yb - lo) | (yc - lo)
	m |= (x - lo*0x20) | x // below 0x20, or 0x80 and above
	return m & hi
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
