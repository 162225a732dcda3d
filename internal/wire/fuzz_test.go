package wire

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"testing"

	"mellium.im/xmpp/stream"
)

// fuzzSeeds are stream bodies that reach the interesting paths.
var fuzzSeeds = []string{
	`<message from='a@a.example' to='b@b.example' type='chat' id='1'><body>hi</body></message>`,
	`<db:result from='a.example' to='b.example'>key</db:result></stream:stream>`,
	`<message><x xmlns='urn:x'><db:y db:z='1'/></x></message><presence/>`,
	`<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>`,
	`<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`,
	`<message><!-- x --></message>`,
	`<message>&amp;&#x41;<![CDATA[<]]></message>`,
	"  <a><b><c/></b></a>\n",
}

// FuzzReader feeds arbitrary bytes after a valid header. Whatever happens,
// no panic, every error is one of the documented kinds, and every Raw
// re-parses alone to the same name.
func FuzzReader(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := NewReader(io.MultiReader(bytes.NewReader([]byte(testHeader)), bytes.NewReader(body)),
			Limits{MaxElementSize: 4096, MaxDepth: 16})
		if _, err := r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		for {
			e, err := r.Next()
			if err != nil {
				var se stream.Error
				var pe *PeerError
				if err != io.EOF && !errors.Is(err, ErrUnexpectedEOF) && !errors.As(err, &se) && !errors.As(err, &pe) {
					t.Fatalf("undocumented error %v", err)
				}
				return
			}
			if int64(len(e.Raw)) > 4096+200 {
				t.Fatalf("Raw of %d bytes passed the limit", len(e.Raw))
			}
			reparse(t, e)
			if e.Name.Space == NSStream && e.Name.Local == "features" {
				if _, err := ParseFeatures(e); err != nil {
					t.Fatalf("features from Next did not parse: %v", err)
				}
			}
		}
	})
}

// FuzzParseStanza checks that anything accepted is a stanza in
// jabber:server that re-parses alone, and that the envelope matches.
func FuzzParseStanza(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`<iq xmlns='jabber:client' type='get' id='x'/>`))
	f.Add([]byte(`<message xmlns="jabber&#58;client"><body/></message>`))
	for _, s := range knownAttrSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := ParseStanza(raw)
		if err != nil {
			if !errors.Is(err, ErrBadStanza) {
				t.Fatalf("error %v does not wrap ErrBadStanza", err)
			}
			return
		}
		if e.Name.Space != NSServer {
			t.Fatalf("accepted namespace %q", e.Name.Space)
		}
		reparse(t, e)
		again, err := ParseStanza(e.Raw)
		if err != nil {
			t.Fatalf("Raw %q refused: %v", e.Raw, err)
		}
		if again.Name != e.Name || again.From != e.From || again.To != e.To || again.ID != e.ID || again.Type != e.Type {
			t.Fatalf("envelope changed: %+v then %+v", e, again)
		}
	})
}

func reparse(t *testing.T, e Element) {
	t.Helper()
	d := xml.NewTokenDecoder(e.TokenReader())
	tok, err := d.Token()
	if err != nil {
		t.Fatalf("Raw %q does not re-parse: %v", e.Raw, err)
	}
	if s, ok := tok.(xml.StartElement); !ok || s.Name != e.Name {
		t.Fatalf("Raw %q re-parses to %#v, want %v", e.Raw, tok, e.Name)
	}
	for {
		if _, err := d.Token(); err == io.EOF {
			return
		} else if err != nil {
			t.Fatalf("Raw %q does not re-parse: %v", e.Raw, err)
		}
	}
}

// FuzzFastParser holds the fast path to its contract: whatever it accepts,
// the encoding/xml path accepts with the same name, envelope and Raw.
func FuzzFastParser(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`<message id='a&amp;b'/>`))
	f.Add([]byte("<message>\xc3\xa9&#xE9;&#233;</message>"))
	f.Add([]byte(`<a xmlns:p='u'><p:b p:c='1' xml:lang='x'/></a>`))
	for _, s := range knownAttrSeeds {
		f.Add([]byte(s))
	}
	outer := map[string]string{"stream": NSStream, "db": NSDialback}
	f.Fuzz(func(t *testing.T, rec []byte) {
		var p fastParser
		p.outer = outer
		var e Element
		if !p.parse(rec, &e) {
			return
		}
		e.Raw = buildRaw(rec, p.nameEnd, p.inject, outer)
		want, _, err := parseComplete(rec, outer, 0, true)
		if err != nil {
			t.Fatalf("fast path accepted %q, encoding/xml refuses: %v", rec, err)
		}
		if e.Name != want.Name || e.From != want.From || e.To != want.To || e.ID != want.ID || e.Type != want.Type || string(e.Raw) != string(want.Raw) {
			t.Fatalf("%q:\nfast     %+v\nreference %+v", rec, e, want)
		}
	})
}

// FuzzFastParserAfter is FuzzFastParser for an element parsed after
// another, twice, with the same parser, which compares the from and to it
// meets with the last ones it handed out (fastParser.last), and the start
// of the tag with the one the two began with (fastParser.tmpl): whatever
// the first element was, what it accepts of the second is what
// encoding/xml makes of it.
func FuzzFastParserAfter(f *testing.F) {
	f.Add([]byte(`<iq from='a.example' to='b.example' type='get' id='p1'/>`),
		[]byte(`<iq from='a.example' to='b.example' type='result' id='p2'/>`))
	f.Add([]byte(`<iq from="o'hara@a.example" to='b.example'/>`), []byte(`<iq from='o'hara@a.example' to='b.example'/>`))
	f.Add([]byte(`<iq from='abcdefgh.example'/>`), []byte(`<iq from='abcdefgh.example' from='x'/>`))
	f.Add([]byte(`<iq from='abcdefgh.example'/>`), []byte(`<iq from='abcdefgh.example.org'/>`))
	f.Add([]byte(`<iq from='abcdefgh.example'/>`), []byte(`<iq><x from='abcdefgh.example'/></iq>`))
	f.Add([]byte(`<iq from='abcdefgh.example' to='ijklmnop.example'/>`), []byte(`<iq to='abcdefgh.example' from='ijklmnop.example'/>`))
	f.Add([]byte(`<iq from='a&amp;bcdefgh.example'/>`), []byte(`<iq from='a&amp;bcdefgh.example'/>`))
	f.Add([]byte(`<iq from='a.example' to='b.example' type='get' id='1'/>`), []byte(`<iq from='a.example' to='b.example' type='get' type='get'/>`))
	f.Add([]byte(`<iq from='a.example' to='b.example' type='get' id='1'/>`), []byte(`<iq from='a.example' to='b.example' type='get' q:x='1'/>`))
	f.Add([]byte(`<iq from='a.example' to='b.example' type='get' id='1'/>`), []byte(`<iq from='a.example' to='b.example' type='get' xmlns='urn:x'/>`))
	f.Add([]byte(`<message xmlns='jabber:client' from='a@a.example/r' to='b@b.example'/>`), []byte(`<message xmlns='jabber:client' from='a@a.example/r' to='b@b.example' xmlns='x'/>`))
	outer := map[string]string{"stream": NSStream, "db": NSDialback}
	f.Fuzz(func(t *testing.T, first, rec []byte) {
		var p fastParser
		p.outer = outer
		var e Element
		p.parse(first, &e)
		p.parse(first, &e)
		if !p.parse(rec, &e) {
			return
		}
		e.Raw = buildRaw(rec, p.nameEnd, p.inject, outer)
		want, _, err := parseComplete(rec, outer, 0, true)
		if err != nil {
			t.Fatalf("fast path accepted %q after %q, encoding/xml refuses: %v", rec, first, err)
		}
		if e.Name != want.Name || e.From != want.From || e.To != want.To || e.ID != want.ID || e.Type != want.Type || string(e.Raw) != string(want.Raw) {
			t.Fatalf("%q after %q:\nfast     %+v\nreference %+v", rec, first, e, want)
		}
	})
}

// knownAttrSeeds reach the quick paths (the known names matched in one
// word, the end tag matched against the open name, the envelope's one
// string) and the general paths beside them.
var knownAttrSeeds = []string{
	`<iq from='a.example' to='b.example' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`,
	`<iq from = 'a.example' to= "b.example" type ='get' id="p1"/>`,
	`<iq from='a' from='b'/>`,
	`<iq to='a' type='x' to="b"/>`,
	`<iq from='a' from ='b'/>`,
	`<iq xmlns='jabber:server' xmlns='jabber:server'/>`,
	`<iq fromx='1' tox='2' ids='3' typed='4' xmlnsx='5'/>`,
	`<iq from:x='1' xmlns:from='u'/>`,
	`<iq id='a' from='b' x='` + "0123456789012345678901234567890123456789" + `' to='c'/>`,
	`<iq to='x'/>`, `<iq id='x'/>`, `<a><b></b ></a >`, `<a><b></bc></a>`, `<a:b xmlns:a='u'></a:b>`,
	`<message from='a&amp;b' to='c'><body/></message>`,
	"<message type='chat\n'></message>",
	// Values whose end, or a byte to look at, is in the second word.
	`<iq id='0123456789abcde' to='x'/>`, `<iq id='01234567&amp;9' to='x'/>`, `<iq id='01234567<9'/>`,
	"<iq id='01234567\x019'/>", "<iq id='01234567\xc3\xa9'/>", `<iq id="01234567'9" to='x'/>`,
	`<iq id='0123456789abcdefghij' to='x'/>`, `<iq id='0123456789abcdef' to='x'/>`,
}

// pieceReader returns at most n bytes per Read: how a peer's bytes may
// arrive, an element split anywhere.
type pieceReader struct {
	r io.Reader
	n int
}

func (c pieceReader) Read(p []byte) (int, error) {
	return c.r.Read(p[:min(len(p), c.n)])
}

// FuzzInPlace holds Next's in-place parse (an element parsed where it lies
// in the buffer, unframed) to the framing path it skips: the same body,
// arriving in the same pieces, gives the same elements and the same error
// either way.
func FuzzInPlace(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), uint16(0))
		f.Add([]byte(s), uint16(7))
	}
	f.Add([]byte(`<a xmlns:stream='urn:x'><stream:stream/></a><stream:stream xmlns:stream='urn:y'></stream:stream>`), uint16(0))
	f.Add([]byte(`<a><b><c><d><e/></d></c></b></a><a><b><c><d><e><f/></e></d></c></b></a>`), uint16(0))
	f.Add([]byte(`<a><![CDATA[x]]></a><b><![CDATA[</b>]]></b>`), uint16(3))
	f.Add([]byte(`<iq from='abcdefgh.example' to='b' type='get'/><iq from='abcdefgh.example' to='b' type='get'/><iq from='abcdefgh.example' from='c'/>`), uint16(0))
	f.Add([]byte(`<iq from="o'hara@a.example"/><iq from='o'hara@a.example'/>`), uint16(9))
	f.Add([]byte(`<iq from='a.example' to='b' type='get' id='1'/><iq from='a.example' to='b' type='get' id='2'/><iq from='a.example' to='b' type='get' id='3'/><iq from='a.example' to='b' type='get' from='c'/>`), uint16(0))
	f.Add([]byte(`<iq from='a.example' to='b' type='get' id='1'/><iq from='a.example' to='b' type='get' id='2'/><iq from='a.example' to='b' type='get' id='3'/><iq from='a.example' to='b' type='get'`), uint16(13))
	for _, s := range knownAttrSeeds {
		f.Add([]byte(s), uint16(0))
		f.Add([]byte(s), uint16(5))
	}
	f.Fuzz(func(t *testing.T, body []byte, chunk uint16) {
		read := func(inPlace bool) (out []Element, last error) {
			var src io.Reader = bytes.NewReader(body)
			if chunk > 0 {
				src = pieceReader{src, int(chunk)}
			}
			r := NewReader(io.MultiReader(bytes.NewReader([]byte(testHeader)), src),
				Limits{MaxElementSize: 600, MaxDepth: 5})
			r.noInPlace = !inPlace
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			for {
				e, err := r.Next()
				if err != nil {
					return out, err
				}
				out = append(out, e)
			}
		}
		got, gotErr := read(true)
		want, wantErr := read(false)
		if gotErr.Error() != wantErr.Error() {
			t.Fatalf("in place: %v; framed: %v", gotErr, wantErr)
		}
		if len(got) != len(want) {
			t.Fatalf("in place: %d elements; framed: %d", len(got), len(want))
		}
		for i, e := range got {
			w := want[i]
			if e.Name != w.Name || e.From != w.From || e.To != w.To || e.ID != w.ID || e.Type != w.Type || string(e.Raw) != string(w.Raw) {
				t.Fatalf("element %d:\nin place %+v\nframed   %+v", i, e, w)
			}
		}
	})
}

// FuzzSkipPlain holds skipPlain's eight-at-a-time scan to the byte loop it
// replaces, at every offset.
func FuzzSkipPlain(f *testing.F) {
	f.Add([]byte("juliet@capulet.example/balcony'"), byte('\''))
	f.Add([]byte("a\x1fb\x80c<d&e>f\"g"), byte('"'))
	f.Add([]byte("        \t\n\r\x00 ]]>"), byte('>'))
	// Bytes one above a special one, after it: where a borrow could flag
	// a plain byte.
	f.Add([]byte("1234<=&'\x00\x01\x1f\x20\x7f\x80;=(#"), byte('\''))
	f.Fuzz(func(t *testing.T, b []byte, c byte) {
		c &= 0x7f // what skipPlain takes: its callers' are quotes and '>'
		for i := 0; i <= len(b); i++ {
			want := i
			for want < len(b) && b[want] >= 0x20 && b[want] < 0x80 && b[want] != '<' && b[want] != '&' && b[want] != c {
				want++
			}
			if got := skipPlain(b, i, c); got != want {
				t.Fatalf("skipPlain(%q, %d, %q) = %d, want %d", b, i, c, got, want)
			}
		}
	})
}
