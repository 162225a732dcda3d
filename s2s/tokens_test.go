package s2s_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"mellium.im/xmpp/stanza"

	"github.com/xmpp-s2s/federation/s2s"
)

// encode writes tokens with encoding/xml, as mellium's Session does.
func encode(t testing.TB, r xml.TokenReader) string {
	t.Helper()
	var b strings.Builder
	enc := xml.NewEncoder(&b)
	for {
		tok, err := r.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := enc.EncodeToken(tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestStanzaTokenReader(t *testing.T) {
	for i, tc := range []struct{ raw, want string }{
		0: {
			`<message xmlns='jabber:server' from='a@x.example' to='b@y.example' type='chat' id='1'><body>hi &amp; &lt;bye&gt;</body></message>`,
			`<message from="a@x.example" to="b@y.example" type="chat" id="1"><body>hi &amp; &lt;bye&gt;</body></message>`,
		},
		// No xmlns at all: jabber:server is implied.
		1: {
			`<iq from='x.example' to='y.example' id='p' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`,
			`<iq from="x.example" to="y.example" id="p" type="get"><ping xmlns="urn:xmpp:ping"></ping></iq>`,
		},
		// xml:lang keeps its prefix; other declarations are dropped, the
		// element's own namespace declares itself, and encoding/xml names
		// the prefix of a namespaced attribute itself.
		2: {
			`<message xmlns='jabber:server' xmlns:e='urn:example' xml:lang='en' to='b@y.example'><e:x e:a='1'><e:y/></e:x></message>`,
			`<message xml:lang="en" to="b@y.example"><x xmlns="urn:example" xmlns:_="urn:example" _:a="1"><y xmlns="urn:example"></y></x></message>`,
		},
		// A jabber:server element inside a foreign one keeps its namespace:
		// written without one, it would inherit the foreign namespace.
		3: {
			`<message xmlns='jabber:server' to='b@y.example'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:server' from='c@z.example'><body>x</body></message></forwarded></message>`,
			`<message to="b@y.example"><forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:server" from="c@z.example"><body xmlns="jabber:server">x</body></message></forwarded></message>`,
		},
		// Whitespace around the element is not part of it.
		4: {
			"\n <presence xmlns='jabber:server' from='a@x.example' to='b@y.example'/>\n",
			`<presence from="a@x.example" to="b@y.example"></presence>`,
		},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			st, err := s2s.ParseStanza([]byte(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			if got := encode(t, st.TokenReader()); got != tc.want {
				t.Fatalf("tokens encode as\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// Written inside a client stream, a stanza's elements take jabber:client:
// a decoder reading the stream back sees them there.
func TestStanzaTokenReaderClientStream(t *testing.T) {
	st, err := s2s.ParseStanza([]byte(`<message xmlns='jabber:server' from='a@x.example' to='b@y.example'><body>hi</body><thread>t1</thread></message>`))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)
	enc := xml.NewEncoder(&b)
	r := st.TokenReader()
	for {
		tok, err := r.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := enc.EncodeToken(tok); err != nil {
			t.Fatal(err)
		}
	}
	enc.Flush()
	b.WriteString(`</stream:stream>`)

	d := xml.NewDecoder(&b)
	var names []xml.Name
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := tok.(xml.StartElement); ok {
			names = append(names, s.Name)
		}
	}
	want := []xml.Name{
		{Space: "http://etherx.jabber.org/streams", Local: "stream"},
		{Space: stanza.NSClient, Local: "message"},
		{Space: stanza.NSClient, Local: "body"},
		{Space: stanza.NSClient, Local: "thread"},
	}
	if len(names) != len(want) {
		t.Fatalf("elements %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("element %d is %v, want %v", i, names[i], want[i])
		}
	}
}

// clientStream returns a decoder positioned just after the start element
// of the first stanza of a client stream holding body, and that element.
func clientStream(t *testing.T, body string) (*xml.Decoder, xml.StartElement) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='x.example'>` + body))
	for i := 0; i < 2; i++ {
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := tok.(xml.StartElement); ok && i == 1 {
			return d, s
		}
	}
	t.Fatal("no stanza in " + body)
	return nil, xml.StartElement{}
}

func TestReadStanza(t *testing.T) {
	for i, tc := range []struct {
		in, want string
		from     string // stamped on the start element first, if set
	}{
		0: {
			in:   `<message to='b@y.example' type='chat' id='m1' xml:lang='en'><body>hi &amp; bye</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
			want: `<message xmlns="jabber:server" to="b@y.example" type="chat" id="m1" xml:lang="en"><body>hi &amp; bye</body><active xmlns="http://jabber.org/protocol/chatstates"></active></message>`,
		},
		1: {
			in:   `<iq type='get' id='q1' to='y.example'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
			from: "a@x.example/res",
			want: `<iq xmlns="jabber:server" type="get" id="q1" to="y.example" from="a@x.example/res"><query xmlns="http://jabber.org/protocol/disco#info"></query></iq>`,
		},
		2: {
			in:   `<presence to='b@y.example' type='subscribe'/>`,
			want: `<presence xmlns="jabber:server" to="b@y.example" type="subscribe"></presence>`,
		},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			d, start := clientStream(t, tc.in+`<presence/>`)
			if tc.from != "" {
				start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "from"}, Value: tc.from})
			}
			st, err := s2s.ReadStanza(d, &start, 0)
			if err != nil {
				t.Fatal(err)
			}
			if string(st.Raw) != tc.want {
				t.Fatalf("Raw\n%s\nwant\n%s", st.Raw, tc.want)
			}
			want, err := s2s.ParseStanza([]byte(tc.want))
			if err != nil {
				t.Fatal(err)
			}
			if st.Name != want.Name || st.From != want.From || st.To != want.To || st.ID != want.ID || st.Type != want.Type {
				t.Fatalf("envelope %+v, want %+v", st, want)
			}
			// ReadStanza stopped at the end of the stanza: the next token
			// is the next element.
			tok, err := d.Token()
			if err != nil {
				t.Fatal(err)
			}
			if s, ok := tok.(xml.StartElement); !ok || s.Name.Local != "presence" {
				t.Fatalf("next token %#v, want the next stanza", tok)
			}
		})
	}
}

func TestReadStanzaErrors(t *testing.T) {
	for i, tc := range []struct {
		in     string
		max    int
		extra  error // wrapped besides ErrNotStanza
		syntax bool  // r's *xml.SyntaxError is wrapped
	}{
		0: {in: `<message to='b@y.example'><body>` + strings.Repeat("x", 500) + `</body></message>`, max: 200, extra: s2s.ErrStanzaTooLarge},
		1: {in: `<foo xmlns='jabber:client'/>`},
		2: {in: `<message xmlns='urn:other'/>`},
		3: {in: `<message to='b@y.example'><body>cut off`, syntax: true},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			d, start := clientStream(t, tc.in)
			_, err := s2s.ReadStanza(d, &start, tc.max)
			if !errors.Is(err, s2s.ErrNotStanza) {
				t.Fatalf("err = %v, want ErrNotStanza", err)
			}
			if tc.extra != nil && !errors.Is(err, tc.extra) {
				t.Fatalf("err = %v, want it to wrap %v", err, tc.extra)
			}
			var se *xml.SyntaxError
			if tc.syntax && !errors.As(err, &se) {
				t.Fatalf("err = %v, want it to wrap the decoder's *xml.SyntaxError", err)
			}
		})
	}
}

// A stanza survives the trip from bytes to tokens and back.
func TestStanzaTokensRoundTrip(t *testing.T) {
	for i, raw := range []string{
		`<message xmlns='jabber:server' from='a@x.example/r' to='b@y.example' id='1' type='chat'><body>hi</body><x xmlns='jabber:x:oob'><url>https://example.org/?a=1&amp;b=2</url></x></message>`,
		`<iq from='x.example' to='y.example' id='p' type='result'/>`,
		`<presence xmlns='jabber:client' from='a@x.example/r' to='b@y.example'><show>away</show><status xml:lang='de'>weg</status></presence>`,
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			st, err := s2s.ParseStanza([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			back := roundTrip(t, st)
			if back.Name != st.Name || back.From != st.From || back.To != st.To || back.ID != st.ID || back.Type != st.Type {
				t.Fatalf("envelope %+v, want %+v", back, st)
			}
			if a, b := encode(t, st.TokenReader()), encode(t, back.TokenReader()); a != b {
				t.Fatalf("content changed:\n%s\n%s", a, b)
			}
		})
	}
}

func roundTrip(t testing.TB, st s2s.Stanza) s2s.Stanza {
	t.Helper()
	r := st.TokenReader()
	tok, err := r.Token()
	if err != nil {
		t.Fatal(err)
	}
	start := tok.(xml.StartElement)
	back, err := s2s.ReadStanza(r, &start, 0)
	if err != nil {
		t.Fatalf("ReadStanza of %s: %v", st.Raw, err)
	}
	return back
}

func FuzzStanzaTokens(f *testing.F) {
	f.Add([]byte(`<message xmlns='jabber:server' from='a@x.example' to='b@y.example'><body>hi</body></message>`))
	f.Add([]byte(`<iq type='get' id='1'><query xmlns='jabber:iq:roster'><item jid='c@z.example'/></query></iq>`))
	f.Add([]byte(`<presence xmlns='jabber:client' xml:lang='en'><x xmlns:p='urn:p'><p:y p:z='1'/></x></presence>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		st, err := s2s.ParseStanza(raw)
		if err != nil {
			return
		}
		r := st.TokenReader()
		tok, err := r.Token()
		if err != nil {
			t.Fatal(err)
		}
		start := tok.(xml.StartElement)
		back, err := s2s.ReadStanza(r, &start, 0)
		if err != nil {
			// ParseStanza checks XML 1.0 names, not the stricter names of
			// Namespaces in XML ("p:0" is one and not the other): such a
			// stanza may be refused here, as long as it is refused cleanly.
			if !errors.Is(err, s2s.ErrNotStanza) {
				t.Fatalf("ReadStanza of %s: %v, want ErrNotStanza", raw, err)
			}
			return
		}
		if back.Name != st.Name || back.From != st.From || back.To != st.To || back.ID != st.ID || back.Type != st.Type {
			t.Fatalf("envelope %+v, want %+v", back, st)
		}
		// A second trip changes nothing more.
		if again := roundTrip(t, back); !bytes.Equal(again.Raw, back.Raw) {
			t.Fatalf("not stable:\n%s\n%s", back.Raw, again.Raw)
		}
	})
}

func TestErrorReply(t *testing.T) {
	st, err := s2s.ParseStanza([]byte(`<message xmlns='jabber:server' from='a@x.example/r' to='nobody@y.example' id='m1' type='chat'><body>hi</body></message>`))
	if err != nil {
		t.Fatal(err)
	}
	reply, ok := st.ErrorReply(stanza.ServiceUnavailable, "no such user")
	if !ok {
		t.Fatal("no reply")
	}
	parsed, err := s2s.ParseStanza(reply.Raw)
	if err != nil {
		t.Fatal(err)
	}
	want := s2s.Stanza{Name: "message", From: "nobody@y.example", To: "a@x.example/r", ID: "m1", Type: "error"}
	for _, got := range []s2s.Stanza{reply, parsed} {
		if got.Name != want.Name || got.From != want.From || got.To != want.To || got.ID != want.ID || got.Type != want.Type {
			t.Fatalf("envelope %+v, want %+v", got, want)
		}
	}
	var e struct {
		Error stanza.Error `xml:"error"`
	}
	if err := xml.Unmarshal(reply.Raw, &e); err != nil {
		t.Fatal(err)
	}
	if e.Error.Condition != stanza.ServiceUnavailable || e.Error.Type != stanza.Cancel || e.Error.Text[""] != "no such user" {
		t.Fatalf("error %+v", e.Error)
	}
	if _, ok := reply.ErrorReply(stanza.ServiceUnavailable, ""); ok {
		t.Fatal("an error stanza was answered with another error")
	}
}

func TestReaddress(t *testing.T) {
	st, err := s2s.ParseStanza([]byte(`<presence xmlns='jabber:server' from='a@x.example/r' to='b@y.example' id='p1'><show>away</show></presence>`))
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct{ from, to, want string }{
		0: {"a@x.example", "c@z.example", `<presence xmlns="jabber:server" id="p1" from="a@x.example" to="c@z.example"><show>away</show></presence>`},
		1: {"a@x.example/r", "", `<presence xmlns="jabber:server" id="p1" from="a@x.example/r"><show>away</show></presence>`},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, err := st.Readdress(tc.from, tc.to)
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Raw) != tc.want || got.From != tc.from || got.To != tc.to || got.ID != "p1" || got.Name != "presence" {
				t.Fatalf("got %+v (%s), want %s", got, got.Raw, tc.want)
			}
		})
	}
	if string(st.Raw) != `<presence xmlns='jabber:server' from='a@x.example/r' to='b@y.example' id='p1'><show>away</show></presence>` {
		t.Fatalf("the original changed: %s", st.Raw)
	}
}
