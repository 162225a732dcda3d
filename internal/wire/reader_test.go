package wire

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"mellium.im/xmpp/stream"
)

const testHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='b.example' from='a.example' version='1.0'>`

// condOf returns the stream condition err carries, or "".
func condOf(err error) string {
	var se stream.Error
	if errors.As(err, &se) {
		return se.Err
	}
	return ""
}

func TestReadHeader(t *testing.T) {
	for i, tc := range []struct {
		in   string
		want Header
		cond string
	}{
		0: {in: testHeader, want: Header{To: "b.example", From: "a.example", Version: "1.0", Dialback: true}},
		1: {in: `<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:server' version='1.1' id='x&amp;y' xml:lang='en'>`,
			want: Header{ID: "x&y", Version: "1.1", Lang: "en"}},
		2: {in: "\n <stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='01.0'>",
			want: Header{Version: "01.0"}},
		3:  {in: `<stream:stream xmlns='jabber:server' xmlns:stream='urn:wrong' version='1.0'>`, cond: "invalid-namespace"},
		4:  {in: `<stream:strum xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`, cond: "invalid-namespace"},
		5:  {in: `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`, cond: "invalid-namespace"},
		6:  {in: `<stream:stream xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`, cond: "invalid-namespace"},
		7:  {in: `<stream xmlns='http://etherx.jabber.org/streams' version='1.0'>`, cond: "invalid-namespace"},
		8:  {in: `<stream:stream xmlns='jabber:server' version='1.0'>`, cond: "bad-namespace-prefix"},
		9:  {in: `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>`, cond: "unsupported-version"},
		10: {in: `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='2.0'>`, cond: "unsupported-version"},
		11: {in: `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1'>`, cond: "unsupported-version"},
		12: {in: `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='0.9'>`, cond: "unsupported-version"},
		13: {in: `<!DOCTYPE stream [<!ENTITY x 'y'>]>` + testHeader[21:], cond: "restricted-xml"},
		14: {in: `<!-- hi -->` + testHeader[21:], cond: "restricted-xml"},
		15: {in: `<?xml version='1.0'?><?pi x?>` + testHeader[21:], cond: "restricted-xml"},
		16: {in: ` <?xml version='1.0'?>` + testHeader[21:], cond: "restricted-xml"},
		17: {in: `<?xml version='1.0' encoding='ISO-8859-1'?>` + testHeader[21:], cond: "unsupported-encoding"},
		18: {in: `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='a' to='b'>`, cond: "not-well-formed"},
		19: {in: `hello`, cond: "not-well-formed"},
		20: {in: `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'/>`, cond: "bad-format"},
		21: {in: "<stream:stream xmlns='jabber:server' version='\xff'>", cond: "not-well-formed"},
		22: {in: `</stream:stream>`, cond: "not-well-formed"},
		23: {in: `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='` + strings.Repeat("a", 5000) + `' version='1.0'>`, cond: "policy-violation"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			r := NewReader(strings.NewReader(tc.in), Limits{MaxElementSize: 4096})
			h, err := r.ReadHeader()
			if tc.cond != "" {
				if got := condOf(err); got != tc.cond {
					t.Fatalf("got error %v (condition %q), want %q", err, got, tc.cond)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h != tc.want {
				t.Fatalf("got %+v, want %+v", h, tc.want)
			}
		})
	}
}

func TestReadHeaderTruncated(t *testing.T) {
	r := NewReader(strings.NewReader(testHeader[:60]), Limits{})
	if _, err := r.ReadHeader(); !errors.Is(err, ErrUnexpectedEOF) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want ErrUnexpectedEOF", err)
	}
	r = NewReader(strings.NewReader(""), Limits{})
	if _, err := r.ReadHeader(); !errors.Is(err, ErrUnexpectedEOF) {
		t.Fatalf("empty input: got %v, want ErrUnexpectedEOF", err)
	}
}

func TestReadHeaderTwice(t *testing.T) {
	r := NewReader(strings.NewReader(testHeader), Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadHeader(); !errors.Is(err, ErrHeaderRead) {
		t.Fatalf("got %v, want ErrHeaderRead", err)
	}
	r = NewReader(strings.NewReader(testHeader), Limits{})
	if _, err := r.Next(); !errors.Is(err, ErrNoHeader) {
		t.Fatalf("got %v, want ErrNoHeader", err)
	}
}

type wantElem struct {
	name              xml.Name
	from, to, id, typ string
	raw               string
}

func TestNext(t *testing.T) {
	msg := `<message from='a@a.example' to='b@b.example' id='1' type='chat'><body>hi &amp; bye</body></message>`
	for i, tc := range []struct {
		in   string
		want []wantElem
		lim  Limits
		end  error  // error after the elements
		cond string // condition of that error, when a stream error
	}{
		0: {in: msg + `</stream:stream>`, end: io.EOF, want: []wantElem{
			{name: xml.Name{Space: NSServer, Local: "message"}, from: "a@a.example", to: "b@b.example", id: "1", typ: "chat", raw: msg}}},
		1: {in: " \n\t<presence/> <iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq>\n</stream:stream>", end: io.EOF, want: []wantElem{
			{name: xml.Name{Space: NSServer, Local: "presence"}, raw: `<presence/>`},
			{name: xml.Name{Space: NSServer, Local: "iq"}, id: "x", typ: "get", raw: `<iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq>`}}},
		2: {in: `<db:result from='a.example' to='b.example'>abc</db:result>`, end: ErrUnexpectedEOF, want: []wantElem{
			{name: xml.Name{Space: NSDialback, Local: "result"}, from: "a.example", to: "b.example",
				raw: `<db:result xmlns:db='jabber:server:dialback' from='a.example' to='b.example'>abc</db:result>`}}},
		3: {in: `<message><x xmlns='urn:x'><db:y/></x></message>`, end: ErrUnexpectedEOF, want: []wantElem{
			{name: xml.Name{Space: NSServer, Local: "message"}, raw: `<message xmlns:db='jabber:server:dialback'><x xmlns='urn:x'><db:y/></x></message>`}}},
		4: {in: `<message xmlns:db='urn:mine'><db:y/></message>`, end: ErrUnexpectedEOF, want: []wantElem{
			{name: xml.Name{Space: NSServer, Local: "message"}, raw: `<message xmlns:db='urn:mine'><db:y/></message>`}}},
		5: {in: `<message xml:lang='en'><body xml:lang='de'>x</body></message>`, end: ErrUnexpectedEOF, want: []wantElem{
			{name: xml.Name{Space: NSServer, Local: "message"}, raw: `<message xml:lang='en'><body xml:lang='de'>x</body></message>`}}},
		6: {in: `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`, end: ErrUnexpectedEOF, want: []wantElem{
			{name: xml.Name{Space: "urn:ietf:params:xml:ns:xmpp-tls", Local: "starttls"}, raw: `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`}}},
		7: {in: `<message><![CDATA[<x>]]></message>`, end: ErrUnexpectedEOF, want: []wantElem{
			{name: xml.Name{Space: NSServer, Local: "message"}, raw: `<message><![CDATA[<x>]]></message>`}}},

		8:  {in: `<message><body>hi</body>`, end: ErrUnexpectedEOF},
		9:  {in: `<message><body>hi</bo`, end: ErrUnexpectedEOF},
		10: {in: `<message><body>hi</message></body>`, cond: "not-well-formed"},
		11: {in: "<message><body>\xff</body></message>", cond: "not-well-formed"},
		12: {in: "<message><body>\x01</body></message>", cond: "not-well-formed"},
		13: {in: `<message><!-- c --></message>`, cond: "restricted-xml"},
		14: {in: `<message><?pi x?></message>`, cond: "restricted-xml"},
		15: {in: `<!DOCTYPE x>`, cond: "restricted-xml"},
		16: {in: `<!ENTITY x 'y'>`, cond: "restricted-xml"},
		17: {in: `<?xml version='1.0'?>`, cond: "restricted-xml"},
		18: {in: `<!-- c -->`, cond: "restricted-xml"},
		19: {in: `<message>&ent;</message>`, cond: "not-well-formed"},
		20: {in: `<message><foo:x/></message>`, cond: "bad-namespace-prefix"},
		21: {in: `<message a='1' a='2'/>`, cond: "not-well-formed"},
		22: {in: `<message>` + strings.Repeat("x", 400) + `</message>`, lim: Limits{MaxElementSize: 300}, cond: "policy-violation"},
		23: {in: strings.Repeat("<a>", 10), lim: Limits{MaxDepth: 5}, cond: "policy-violation"},
		24: {in: `<a><a><a></a></a></a>`, lim: Limits{MaxDepth: 3}, end: ErrUnexpectedEOF, want: []wantElem{
			{name: xml.Name{Space: NSServer, Local: "a"}, raw: `<a><a><a></a></a></a>`}}},
		25: {in: `<message>` + strings.Repeat("x", 281) + `</message>`, lim: Limits{MaxElementSize: 300}, end: ErrUnexpectedEOF, want: []wantElem{
			{name: xml.Name{Space: NSServer, Local: "message"}, raw: `<message>` + strings.Repeat("x", 281) + `</message>`}}},
		36: {in: `<message>` + strings.Repeat("x", 282) + `</message>`, lim: Limits{MaxElementSize: 300}, cond: "policy-violation"},
		37: {in: `<message>` + strings.Repeat("z", 20000) + `</message> <presence type='probe'/>`, end: ErrUnexpectedEOF, want: []wantElem{
			{name: xml.Name{Space: NSServer, Local: "message"}, raw: `<message>` + strings.Repeat("z", 20000) + `</message>`},
			{name: xml.Name{Space: NSServer, Local: "presence"}, typ: "probe", raw: `<presence type='probe'/>`}}},
		38: {in: `<message from='a&amp;b' to="c&#x40;d"/></stream:stream >`, end: io.EOF, want: []wantElem{
			{name: xml.Name{Space: NSServer, Local: "message"}, from: "a&b", to: "c@d", raw: `<message from='a&amp;b' to="c&#x40;d"/>`}}},
		39: {in: "<m\u00e9ssage xmlns='urn:\u00e9'><\u00fc/></m\u00e9ssage>", end: ErrUnexpectedEOF, want: []wantElem{
			{name: xml.Name{Space: "urn:\u00e9", Local: "m\u00e9ssage"}, raw: "<m\u00e9ssage xmlns='urn:\u00e9'><\u00fc/></m\u00e9ssage>"}}},
		40: {in: `<message b='1'c='2'/>`, end: ErrUnexpectedEOF, want: []wantElem{
			{name: xml.Name{Space: NSServer, Local: "message"}, raw: `<message b='1'c='2'/>`}}},
		41: {in: `</stream:features>`, cond: "not-well-formed"},
		42: {in: `<message><!-- c`, cond: "restricted-xml"},
		43: {in: `<message><![CDATA[x]]]></message>`, end: ErrUnexpectedEOF, want: []wantElem{
			{name: xml.Name{Space: NSServer, Local: "message"}, raw: `<message><![CDATA[x]]]></message>`}}},
		44: {in: `<message><![CDAT></message>`, cond: "not-well-formed"},
		45: {in: `<message to='<'/>`, cond: "not-well-formed"},
		46: {in: `<message><a></b></message>`, cond: "not-well-formed"},
		47: {in: `<message>]]></message>`, cond: "not-well-formed"},
		26: {in: `hello<message/>`, cond: "bad-format"},
		27: {in: `<![CDATA[x]]>`, cond: "bad-format"},
		28: {in: testHeader[21:], cond: "bad-format"},
		29: {in: `</stream>`, cond: "not-well-formed"},
		30: {in: `<message to='a<b'/>`, cond: "not-well-formed"},
		31: {in: strings.Repeat(" ", 100000) + `<presence/>`, lim: Limits{MaxElementSize: 300}, end: ErrUnexpectedEOF, want: []wantElem{
			{name: xml.Name{Space: NSServer, Local: "presence"}, raw: `<presence/>`}}},
		32: {in: `<message xmlns:p=''/>`, cond: "bad-namespace-prefix"},
		33: {in: `<message p:a='1'/>`, cond: "bad-namespace-prefix"},
		34: {in: `<message db:a='1'/>`, end: ErrUnexpectedEOF, want: []wantElem{
			{name: xml.Name{Space: NSServer, Local: "message"}, raw: `<message xmlns:db='jabber:server:dialback' db:a='1'/>`}}},
		35: {in: `<message>` + strings.Repeat("y", 10000) + `</message>`, end: ErrUnexpectedEOF, want: []wantElem{
			{name: xml.Name{Space: NSServer, Local: "message"}, raw: `<message>` + strings.Repeat("y", 10000) + `</message>`}}},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			// One byte per Read exercises every buffer refill.
			for _, one := range []bool{false, true} {
				var src io.Reader = strings.NewReader(testHeader + tc.in)
				if one {
					src = iotest.OneByteReader(src)
				}
				r := NewReader(src, tc.lim)
				if _, err := r.ReadHeader(); err != nil {
					t.Fatal(err)
				}
				for j, w := range tc.want {
					e, err := r.Next()
					if err != nil {
						t.Fatalf("element %d: %v", j, err)
					}
					got := wantElem{e.Name, e.From, e.To, e.ID, e.Type, string(e.Raw)}
					if got != w {
						t.Fatalf("element %d:\ngot  %+v\nwant %+v", j, got, w)
					}
					checkReparse(t, e)
				}
				_, err := r.Next()
				if tc.cond != "" {
					if got := condOf(err); got != tc.cond {
						t.Fatalf("got error %v (condition %q), want %q", err, got, tc.cond)
					}
				} else if !errors.Is(err, tc.end) || condOf(err) != "" {
					t.Fatalf("got error %v, want %v", err, tc.end)
				}
				if _, again := r.Next(); again != err {
					t.Fatalf("error not sticky: %v then %v", err, again)
				}
			}
		})
	}
}

// checkReparse asserts that Raw parses alone to the same element.
func checkReparse(t *testing.T, e Element) {
	t.Helper()
	d := xml.NewTokenDecoder(e.TokenReader())
	tok, err := d.Token()
	if err != nil {
		t.Fatalf("Raw does not re-parse: %v", err)
	}
	if start, ok := tok.(xml.StartElement); !ok || start.Name != e.Name {
		t.Fatalf("Raw re-parses to %#v, want start of %v", tok, e.Name)
	}
	for {
		if _, err := d.Token(); err == io.EOF {
			return
		} else if err != nil {
			t.Fatalf("Raw does not re-parse: %v", err)
		}
	}
}

func TestNextPeerError(t *testing.T) {
	for i, tc := range []struct {
		in, cond, text string
	}{
		0: {in: `<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`, cond: "host-unknown"},
		1: {in: `<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>too big</text></stream:error>`, cond: "policy-violation", text: "too big"},
		2: {in: `<error xmlns='http://etherx.jabber.org/streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>`, cond: "conflict"},
		3: {in: `<stream:error/>`, cond: "undefined-condition"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			r := NewReader(strings.NewReader(testHeader+tc.in), Limits{})
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			_, err := r.Next()
			var pe *PeerError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want *PeerError", err)
			}
			if pe.Err.Err != tc.cond {
				t.Fatalf("condition %q, want %q", pe.Err.Err, tc.cond)
			}
			if condOf(err) != "" {
				t.Fatal("PeerError must not unwrap to a stream.Error")
			}
			if tc.text != "" && (len(pe.Err.Text) != 1 || pe.Err.Text[0].Value != tc.text) {
				t.Fatalf("text %+v, want %q", pe.Err.Text, tc.text)
			}
		})
	}
}

// errConn fails with a chosen error after its data.
type errConn struct {
	data []byte
	err  error
}

func (c *errConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, c.err
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	return n, nil
}

func TestNextConnError(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(&errConn{data: []byte(testHeader + `<message>`), err: boom}, Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	_, err := r.Next()
	if !errors.Is(err, boom) || condOf(err) != "" || errors.Is(err, ErrUnexpectedEOF) {
		t.Fatalf("got %v, want the connection's error", err)
	}
}

func TestBuffered(t *testing.T) {
	in := testHeader + `<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`
	for i, tc := range []struct {
		extra string
		want  int
	}{
		0: {"", 0},
		1: {"<message/>", 10},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			r := NewReader(bytes.NewReader([]byte(in+tc.extra)), Limits{})
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
			if got := r.Buffered(); got != tc.want {
				t.Fatalf("Buffered() = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestBufferShrinks checks that a large element does not leave its buffer
// on the link once it has been consumed.
func TestBufferShrinks(t *testing.T) {
	big := `<message>` + strings.Repeat("x", 100_000) + `</message>`
	// A small element after the big one keeps the buffer in use (bytes
	// are still buffered) until it is read.
	r := NewReader(strings.NewReader(testHeader+big+`<message/>`), Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	e, err := r.Next()
	if err != nil || len(e.Raw) != len(big) {
		t.Fatalf("got %d bytes, %v", len(e.Raw), err)
	}
	if len(r.src.buf) < len(big) {
		t.Fatalf("buffer of %d bytes cannot have held the element", len(r.src.buf))
	}
	if e, err = r.Next(); err != nil || string(e.Raw) != `<message/>` {
		t.Fatalf("got %q, %v", e.Raw, err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	if len(r.src.buf) > initialBufSize {
		t.Fatalf("buffer stayed at %d bytes", len(r.src.buf))
	}
}

// TestReadHeaderTextAtOnce: text where the stream header should be is
// not-well-formed as soon as it arrives, not when a '<' or the end of the
// connection finally comes (the peer may send neither).
func TestReadHeaderTextAtOnce(t *testing.T) {
	for i, in := range []string{
		"hello\n",
		"  \r\n hello",
		"<?xml version='1.0'?>hello",
		"<?xml version='1.0'?>\n x",
		"\n<?xml version='1.0'?>", // a declaration that is not first
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			pr, pw := io.Pipe()
			defer pw.Close()
			go pw.Write([]byte(in)) // and nothing more: the connection stays open
			done := make(chan error, 1)
			go func() {
				_, err := NewReader(pr, DefaultLimits).ReadHeader()
				done <- err
			}()
			select {
			case err := <-done:
				if c := condOf(err); c != "not-well-formed" && c != "restricted-xml" {
					t.Fatalf("ReadHeader(%q) = %v, want not-well-formed", in, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("ReadHeader(%q) still waiting for more bytes", in)
			}
		})
	}
}

// chunkReader returns one chunk per Read, then io.EOF.
type chunkReader []string

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(*c) == 0 {
		return 0, io.EOF
	}
	n := copy(p, (*c)[0])
	if n == len((*c)[0]) {
		*c = (*c)[1:]
	} else {
		(*c)[0] = (*c)[0][n:]
	}
	return n, nil
}

// TestReads: Reads counts the reads that returned bytes, so that elements
// that came in one read see the same count and an element spread over
// several reads sees them all; the small idle buffer's reads (fillIdle)
// count as the working buffer's do.
func TestReads(t *testing.T) {
	big := `<message>` + strings.Repeat("x", 2*idleReadSize) + `</message>`
	in := chunkReader{testHeader, `<a/><b/>`, `<c`, `/>`, ` `, `<d/>`, big}
	want := []struct {
		name  string
		reads uint64
	}{
		{"a", 2}, {"b", 2}, {"c", 4}, {"d", 6},
		// big arrives in one chunk, read as the small buffer's 512 bytes
		// and then the rest.
		{"message", 8},
	}
	r := NewReader(&in, Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if got := r.Reads(); got != 1 {
		t.Fatalf("Reads() = %d after the header, want 1", got)
	}
	for _, w := range want {
		e, err := r.Next()
		if err != nil || e.Name.Local != w.name {
			t.Fatalf("got <%s/>, %v; want <%s/>", e.Name.Local, err, w.name)
		}
		if got := r.Reads(); got != w.reads {
			t.Fatalf("Reads() = %d after <%s/>, want %d", got, w.name, w.reads)
		}
	}
}

// beforeReads is a chunkReader that notes whether BeforeRead's hook ran
// before each of its reads.
type beforeReads struct {
	chunkReader
	hooked, reads, unhooked int
}

func (b *beforeReads) Read(p []byte) (int, error) {
	b.reads++
	if b.hooked != b.reads {
		b.unhooked++
	}
	return b.chunkReader.Read(p)
}

// TestBeforeRead: the hook runs once before each read from the underlying
// reader, the working buffer's and the small idle buffer's alike, and not
// for elements taken from what one read brought.
func TestBeforeRead(t *testing.T) {
	big := `<message>` + strings.Repeat("x", 2*idleReadSize) + `</message>`
	in := &beforeReads{chunkReader: chunkReader{testHeader, `<a/><b/>`, `<c`, `/>`, ` `, `<d/>`, big}}
	r := NewReader(in, Limits{})
	r.BeforeRead(func() { in.hooked++ })
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c", "d", "message"} {
		e, err := r.Next()
		if err != nil || e.Name.Local != name {
			t.Fatalf("got <%s/>, %v; want <%s/>", e.Name.Local, err, name)
		}
	}
	if in.unhooked != 0 || in.hooked != in.reads || in.reads != 8 {
		t.Fatalf("%d reads, %d hooks, %d reads without one before them; want 8, 8, 0", in.reads, in.hooked, in.unhooked)
	}
	r.BeforeRead(nil)
	if _, err := r.Next(); err == nil {
		t.Fatal("no error at the end of the input")
	}
	if in.hooked != 8 {
		t.Fatalf("%d hooks after BeforeRead(nil), want 8", in.hooked)
	}
}

// TestHeaderBindingsShared: a header that declares only the usual prefixes
// leaves the Reader with the shared map of them, not a map of its own; any
// other declaration keeps its own, and both resolve prefixes alike.
func TestHeaderBindingsShared(t *testing.T) {
	for i, tc := range []struct {
		header string
		shared bool
	}{
		{testHeader, true},
		{`<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0'>`, true},
		{`<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:x='urn:x' version='1.0'>`, false},
		{`<s:stream xmlns='jabber:server' xmlns:s='http://etherx.jabber.org/streams' version='1.0'>`, false},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			r := NewReader(strings.NewReader(tc.header+`<db:result from='a.example' to='b.example'/>`), Limits{})
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			shared := false
			for _, c := range commonBindings {
				if reflect.ValueOf(c).UnsafePointer() == reflect.ValueOf(r.p.outer).UnsafePointer() {
					shared = true
				}
			}
			if shared != tc.shared {
				t.Fatalf("shared map %v, want %v", shared, tc.shared)
			}
			e, err := r.Next()
			if _, ok := r.p.outer["db"]; !ok {
				// db is not declared: the element's prefix is unbound.
				if err == nil {
					t.Fatalf("unbound prefix accepted: %+v", e.Name)
				}
				return
			}
			if err != nil || e.Name.Space != NSDialback {
				t.Fatalf("Next: %+v, %v", e.Name, err)
			}
		})
	}
}
