package wire

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"sync/atomic"

	"mellium.im/xmpp/stream"
)

// Limits bound what one peer can make a Reader hold. The zero value sets no
// limits; the Manager should always set both (DefaultLimits is a start).
type Limits struct {
	// MaxElementSize is the largest top-level element, and the largest
	// stream header, in bytes as received. Over it, Next returns
	// policy-violation without reading the rest. 0: no limit.
	MaxElementSize int64

	// MaxDepth is how deeply elements may nest inside a top-level element,
	// the top-level element itself being depth 1. Over it, Next returns
	// policy-violation. 0: no limit (MaxElementSize still bounds it).
	MaxDepth int
}

// DefaultLimits are limits that no legitimate s2s traffic reaches: Prosody
// and ejabberd cap stanzas well below 1 MiB, and real payloads nest a
// handful of levels.
var DefaultLimits = Limits{MaxElementSize: 1 << 20, MaxDepth: 64}

// errBadEncoding is what our CharsetReader hook returns, so that an encoding
// declaration other than UTF-8 can be told from a syntax error.
var errBadEncoding = errors.New("wire: encoding other than UTF-8")

// Reader reads an incoming s2s stream: the header once, then top-level
// elements one by one. It buffers the connection itself (do not wrap the
// connection in a bufio.Reader); its buffer starts at 4 KiB and returns to
// that after a larger element. A Reader is not safe for concurrent use;
// one goroutine per stream owns it. Once ReadHeader or Next has failed
// (io.EOF included), every later call returns the same error; only
// ErrHeaderRead and ErrNoHeader, which report misuse, leave it usable.
//
// A stream restart (after STARTTLS, or SASL) needs a new Reader over the
// new connection layer; see Buffered. The zero Reader is not usable: use
// NewReader.
type Reader struct {
	src *source
	dec *xml.Decoder
	p   elemParser
	f   fastParser

	header      bool
	streamName  xml.Name // the header's tag, prefix form, to match the close
	streamQName string   // the same as written: "stream:stream"
	err         error

	// noInPlace turns off parsing elements where they lie in the buffer
	// (next): every element is framed first. Tests compare the two.
	noInPlace bool
}

// NewReader returns a Reader of r with the given limits.
func NewReader(r io.Reader, lim Limits) *Reader {
	src := newSource(r, lim.MaxElementSize)
	return newReader(src, lim.MaxDepth)
}

func newReader(src *source, maxDepth int) *Reader {
	r := &Reader{src: src, p: elemParser{maxDepth: maxDepth}}
	r.newDecoder()
	return r
}

// newDecoder gives the Reader a fresh xml.Decoder. encoding/xml keeps the
// buffer it collected the largest text or attribute value in for good, so a
// Reader replaces its decoder after a large element rather than let one
// big stanza pin its size on an idle link.
func (r *Reader) newDecoder() {
	dec := xml.NewDecoder(r.src)
	dec.CharsetReader = func(string, io.Reader) (io.Reader, error) { return nil, errBadEncoding }
	r.dec = dec
	r.p.dec = dec
}

// bigElement is the size of element after which Next replaces its decoder.
const bigElement = 16 << 10

// Buffered returns the number of bytes read from the connection that Next
// has not consumed. After a <proceed/>, anything buffered is plaintext that
// the peer sent before TLS: start TLS on the raw connection only when
// Buffered returns 0, and treat anything else as a downgrade attempt.
func (r *Reader) Buffered() int { return r.src.buffered() }

// Reads returns how many reads from the connection have returned bytes so
// far. Elements that came in one read arrived together: a caller that
// notes when the peer was last heard from needs to read the clock only
// when Reads has changed since it last did, not for every element.
// It is safe to call from any goroutine.
func (r *Reader) Reads() uint64 { return r.src.reads.Load() }

// OnInterrupt makes the Reader interruptible, so that a goroutine waiting
// in Await for a quiet peer can be asked to come out of it: another
// goroutine sets wake, then moves the connection's read deadline into the
// past. The read timeout that follows is then not an error: the Reader
// calls resume, which must clear wake and put the connection's own read
// deadline back (the interrupter and resume may order the two with a lock
// of theirs), and a goroutine waiting in Await returns true with nothing
// read, while one waiting for the rest of an element or for the header
// reads on. A timeout while wake is not set is the connection's, as ever. Several Readers of one connection (a stream and
// the one after its restart) may share wake, so that a request made
// during a restart is not lost. Call OnInterrupt before reading, on the
// reading goroutine; resume runs on it too.
//
// It exists so that a Manager can move a reader that has gone quiet to a
// fresh goroutine, whose stack is small again (see Await).
func (r *Reader) OnInterrupt(wake *atomic.Bool, resume func()) {
	r.src.wake, r.src.resume = wake, resume
}

// BeforeRead sets f to be called on the reading goroutine before each read
// from the underlying reader, nil for none. It is the moment to move a read
// deadline that measures the peer's silence: once per read rather than per
// element, and after whatever the caller did with the elements before it,
// however long that took.
func (r *Reader) BeforeRead(f func()) { r.src.beforeRead = f }

// ReadHeader reads the optional XML declaration and the <stream:stream>
// opening tag, and checks them syntactically. The errors it returns that
// wrap a stream.Error (errors.As) can be sent to the peer as they are:
// invalid-namespace for a wrong stream element, stream namespace or default
// namespace; bad-namespace-prefix for an undeclared stream prefix;
// unsupported-version for a missing or non-1.x version; restricted-xml for a
// DOCTYPE, comment, entity declaration or processing instruction;
// unsupported-encoding for an encoding other than UTF-8; not-well-formed for
// broken XML; policy-violation for a header over MaxElementSize. Whether the
// `to` domain is served here is the caller's decision.
func (r *Reader) ReadHeader() (Header, error) {
	if r.err != nil {
		return Header{}, r.err
	}
	if r.header {
		return Header{}, ErrHeaderRead
	}
	r.src.setMark()
	h, err := r.readHeader()
	r.src.clearMark()
	r.src.settle()
	if err != nil {
		r.err = err
		return Header{}, err
	}
	r.header = true
	// Next frames and parses on its own, and its rare encoding/xml path
	// uses pooled decoders; holding this one would cost every idle link.
	r.dec, r.p.dec = nil, nil
	return h, nil
}

func (r *Reader) readHeader() (Header, error) {
	for first := true; ; first = false {
		// encoding/xml returns text only once it sees the '<' after it,
		// and a peer that sent "hello\n" may send nothing more: look at
		// the bytes ourselves, so that text fails as soon as it arrives.
		skipped, err := r.skipSpace()
		if err != nil {
			return Header{}, r.classify(err)
		}
		if skipped {
			first = false // the declaration may only come first
		}
		if c, err := r.src.peek(); err != nil {
			return Header{}, r.classify(err)
		} else if c != '<' {
			return Header{}, streamErr(stream.NotWellFormed, "text before the stream header")
		}
		tok, err := r.dec.RawToken()
		if err != nil {
			return Header{}, r.classify(err)
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			// The XML declaration is a processing instruction to
			// encoding/xml; it is allowed only as the very first bytes.
			if t.Target != "xml" || !first {
				return Header{}, streamErr(stream.RestrictedXML, "processing instruction")
			}
		case xml.Comment:
			return Header{}, streamErr(stream.RestrictedXML, "comment")
		case xml.Directive:
			return Header{}, streamErr(stream.RestrictedXML, "DTD or entity declaration")
		case xml.CharData:
			if !isSpace(t) {
				return Header{}, streamErr(stream.NotWellFormed, "text before the stream header")
			}
		case xml.EndElement:
			return Header{}, streamErr(stream.NotWellFormed, "end tag before the stream header")
		case xml.StartElement:
			return r.header1(t)
		}
	}
}

// skipSpace consumes whitespace before a token of the prologue. The
// decoder then starts each token at a '<' it has not read ahead of.
func (r *Reader) skipSpace() (skipped bool, err error) {
	for {
		c, err := r.src.peek()
		if err != nil || !isSpaceByte(c) {
			return skipped, err
		}
		r.src.ReadByte()
		skipped = true
	}
}

// header1 checks the stream tag and extracts the header.
func (r *Reader) header1(t xml.StartElement) (Header, error) {
	rec := r.src.recorded()
	if len(rec) >= 2 && rec[len(rec)-2] == '/' {
		return Header{}, streamErr(stream.BadFormat, "empty stream element")
	}
	var h Header
	var defNS string
	var version bool
	bind := make(map[string]string, 4)
	for i, a := range t.Attr {
		for _, b := range t.Attr[:i] {
			if a.Name == b.Name {
				return Header{}, streamErr(stream.NotWellFormed, "attribute %s repeated", qname(a.Name))
			}
		}
		switch a.Name.Space {
		case "xmlns":
			if a.Value == "" || a.Name.Local == "xmlns" {
				return Header{}, streamErr(stream.BadNamespacePrefix, "invalid declaration of prefix %q", a.Name.Local)
			}
			bind[a.Name.Local] = a.Value
			if a.Value == NSDialback {
				h.Dialback = true
			}
		case "xml":
			if a.Name.Local == "lang" {
				h.Lang = a.Value
			}
		case "":
			switch a.Name.Local {
			case "xmlns":
				defNS = a.Value
			case "to":
				h.To = a.Value
			case "from":
				h.From = a.Value
			case "id":
				h.ID = a.Value
			case "version":
				h.Version, version = a.Value, true
			}
		}
	}
	if t.Name.Space == "" {
		return Header{}, streamErr(stream.InvalidNamespace, "stream element %q is not in the stream namespace", t.Name.Local)
	}
	ns, ok := bind[t.Name.Space]
	if !ok && t.Name.Space != "xml" {
		return Header{}, streamErr(stream.BadNamespacePrefix, "stream prefix %q is not declared", t.Name.Space)
	}
	if ns != NSStream || t.Name.Local != "stream" {
		return Header{}, streamErr(stream.InvalidNamespace, "root element is {%s}%s", ns, t.Name.Local)
	}
	if defNS != NSServer {
		return Header{}, streamErr(stream.InvalidNamespace, "default namespace %q is not %s", defNS, NSServer)
	}
	if !version {
		return Header{}, streamErr(stream.UnsupportedVersion, "no version attribute")
	}
	if !isVersion1(h.Version) {
		return Header{}, streamErr(stream.UnsupportedVersion, "version %q is not 1.x", h.Version)
	}
	r.streamName = t.Name
	r.streamQName = qname(t.Name)
	r.p.outer = sharedBindings(bind)
	return h, nil
}

// commonBindings are the prefix declarations of almost every s2s stream
// header, as maps the parsers only read. A Reader keeps its header's
// bindings for the stream's life; one of these in place of its own map
// saves a few hundred bytes per stream.
var commonBindings = []map[string]string{
	{"stream": NSStream},
	{"stream": NSStream, "db": NSDialback},
}

// sharedBindings returns the common map equal to bind, or bind.
func sharedBindings(bind map[string]string) map[string]string {
	for _, c := range commonBindings {
		if maps.Equal(c, bind) {
			return c
		}
	}
	return bind
}

// isVersion1 reports whether v is "major.minor" with major 1; RFC 6120
// §4.7.5 says leading zeros are ignored and minor versions are compatible.
func isVersion1(v string) bool {
	major, minor, ok := strings.Cut(v, ".")
	if !ok || !digits(major) || !digits(minor) {
		return false
	}
	return strings.TrimLeft(major, "0") == "1"
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isSpace(b []byte) bool {
	for _, c := range b {
		if !isSpaceByte(c) {
			return false
		}
	}
	return true
}

func isSpaceByte(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// Next returns the next top-level element of the stream. Whitespace between
// elements (keepalives) is skipped without being buffered.
//
// Errors:
//   - io.EOF: the peer closed the stream with </stream:stream>;
//   - *PeerError: the peer sent <stream:error>;
//   - ErrUnexpectedEOF: the connection ended without </stream:stream>;
//   - a wrapped stream.Error to send to the peer: policy-violation for an
//     element over MaxElementSize or nested over MaxDepth, restricted-xml,
//     not-well-formed (including invalid UTF-8), bad-namespace-prefix for
//     an undeclared prefix, bad-format for text or a second stream header
//     between elements;
//   - any other error is the connection's, wrapped (a read deadline, a
//     reset).
func (r *Reader) Next() (Element, error) {
	var e Element
	err := r.NextInto(&e)
	return e, err
}

// NextInto is Next into *e, which it sets whole (zero on error): an
// Element is thirteen words, and a reading loop that keeps its own
// Element copies none of them.
func (r *Reader) NextInto(e *Element) error {
	s := r.src
	if r.err == nil && r.header && s.pos < s.end && s.buf[s.pos] == '<' && !r.noInPlace {
		// The usual case, as a reading loop that called Await comes
		// back: an element starts at hand, and it is most likely
		// whole in the buffer.
		s.setMark()
		ok := r.inPlace(e)
		if ok && e.Name.Space != NSStream {
			e.Raw = buildRaw(s.recorded(), r.f.nameEnd, r.f.inject, r.f.outer)
			s.clearMark()
			s.settle()
			return nil
		}
		return r.ended(r.after(e, ok, s.stop-s.mark))
	}
	r.Await()
	if r.err != nil {
		*e = Element{}
		return r.err
	}
	if !r.header {
		*e = Element{}
		return ErrNoHeader
	}
	return r.ended(r.next(e))
}

// Await waits until the stream has more than whitespace to read, or reading
// failed (Next then returns the error). It is Next's wait for the peer on
// its own: a goroutine that reads an idle stream spends its life blocked
// there, and the runtime halves a goroutine's stack only while less than a
// quarter of it is in use, so a reading loop that calls Await before Next
// keeps Next's frames, and those of its own callees, off that stack.
//
// It returns true when an Interrupt ended the wait: nothing was read, the
// connection's own read deadline is back (OnInterrupt), and the Reader may
// be read on, from this goroutine or another.
func (r *Reader) Await() (interrupted bool) {
	if r.err == nil && r.header && r.src.await() {
		// The stream went quiet: what the parser keeps of its last
		// stanzas to compare the next ones with is let go.
		r.f.forget()
		return true
	}
	return false
}

// ended is the end of reading an element: the mark goes, the buffer goes
// back when everything was read, and an error is kept for every later
// call.
func (r *Reader) ended(err error) error {
	r.src.clearMark()
	r.src.settle()
	if err != nil {
		r.err = err
	}
	return err
}

// next reads the next element into *e, which is left zero on error.
func (r *Reader) next(e *Element) error {
	*e = Element{}
	for {
		c, err := r.src.peek()
		if err != nil {
			return r.classify(err)
		}
		if c == '<' {
			break
		}
		if !isSpaceByte(c) {
			return streamErr(stream.BadFormat, "text between elements")
		}
		r.src.pos++
	}
	s := r.src
	s.setMark()
	ok := !r.noInPlace && r.inPlace(e)
	return r.after(e, ok, s.stop-s.mark)
}

// inPlace parses the element at the mark where it lies in the buffer,
// scanning its bytes once, and moves past it when the fast parser takes
// it. Usually the whole element is in the buffer already (a stanza comes
// in one read). The fast parser stops at the element's end and refuses
// what it does not fully handle, a partial element included, and the
// bytes up to stop are within the size limit; framing then takes over,
// from the start of the element, and decides as it always did (after). A
// start tag with the stream's qualified name is framing's to refuse (a
// second header), whatever namespace its prefix has inside the element.
func (r *Reader) inPlace(e *Element) bool {
	s := r.src
	r.f.outer, r.f.maxDepth = r.p.outer, r.p.maxDepth
	n, ok := r.f.parsePrefix(s.buf[s.pos:s.stop], e)
	// Only a name with the local part "stream" can be the stream's
	// (header1 requires a prefix).
	if ok && e.Name.Local == "stream" && r.isStreamTag(s.buf[s.pos:s.pos+n]) {
		*e, ok = Element{}, false
	}
	if ok {
		s.pos += n
	}
	return ok
}

// after finishes the element at the mark once inPlace has had its try:
// ok, or refused after seeing tried bytes (0 when it had none). It frames
// what inPlace refused, parses it again if there is more of it now, or
// with encoding/xml, and turns a <stream:error> into the peer's error.
func (r *Reader) after(e *Element, ok bool, tried int) error {
	s := r.src
	if !ok {
		closing, err := r.frame()
		if err != nil {
			return err
		}
		rec := s.recorded()
		if closing {
			if j, _ := scanName(rec, 2); j < 0 || string(rec[2:j]) != r.streamQName || skipSpace(rec, j) != len(rec)-1 {
				return streamErr(stream.NotWellFormed, "end tag %q does not close the stream", rec)
			}
			return io.EOF
		}
		if r.noInPlace || len(rec) > tried {
			// The fast parser has not seen all of it yet.
			ok = r.f.parse(rec, e)
		}
	}
	rec := s.recorded()
	if ok {
		e.Raw = buildRaw(rec, r.f.nameEnd, r.f.inject, r.f.outer)
	} else {
		// Not for the fast path: encoding/xml decides.
		var err error
		*e, _, err = parseComplete(rec, r.p.outer, r.p.maxDepth, true)
		if errors.Is(err, ErrUnexpectedEOF) {
			err = streamErr(stream.NotWellFormed, "element ended early")
		}
		if err != nil {
			*e = Element{}
			return err
		}
	}
	if e.Name.Space == NSStream && e.Name.Local == "error" {
		err := peerError(*e)
		*e = Element{}
		return err
	}
	return nil
}

// peerError decodes a received <stream:error>.
func peerError(e Element) error {
	var se stream.Error
	d := xml.NewTokenDecoder(e.TokenReader())
	if err := d.Decode(&se); err != nil || se.Err == "" {
		// The peer is closing anyway; keep what it meant.
		se = stream.UndefinedCondition
	}
	return &PeerError{Err: se}
}

// classify turns a decoder error into the package's error for it. Errors
// already carrying a stream condition pass through.
func (r *Reader) classify(err error) error {
	var se stream.Error
	switch {
	case errors.As(err, &se):
		return err
	case errors.Is(err, errTooLarge):
		return streamErr(stream.PolicyViolation, "element larger than %d bytes", r.src.limit)
	case errors.Is(err, errBadEncoding):
		return streamErr(stream.UnsupportedEncoding, "encoding other than UTF-8 declared")
	case r.src.err != nil && !r.src.eof:
		return fmt.Errorf("wire: read: %w", r.src.err)
	case r.src.eof && r.src.buffered() == 0:
		return ErrUnexpectedEOF
	}
	var syn *xml.SyntaxError
	if errors.As(err, &syn) {
		return streamErr(stream.NotWellFormed, "%s", syn.Msg)
	}
	return streamErr(stream.NotWellFormed, "%v", err)
}
