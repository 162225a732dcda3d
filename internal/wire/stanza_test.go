package wire

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
)

func TestParseStanza(t *testing.T) {
	for i, tc := range []struct {
		in   string
		want wantElem
		same bool   // Raw aliases the input
		cond string // stream condition wrapped with ErrBadStanza; "-" for none
	}{
		0: {in: `<message to='b@b.example' from='a@a.example' type='chat' id='m1'><body>x</body></message>`, same: true,
			want: wantElem{xml.Name{Space: NSServer, Local: "message"}, "a@a.example", "b@b.example", "m1", "chat",
				`<message to='b@b.example' from='a@a.example' type='chat' id='m1'><body>x</body></message>`}},
		1: {in: "\n <presence xmlns='jabber:server'/>\n", same: true,
			want: wantElem{name: xml.Name{Space: NSServer, Local: "presence"}, raw: `<presence xmlns='jabber:server'/>`}},
		2: {in: `<iq xmlns="jabber:client" type='get'><query xmlns='jabber:iq:version'/></iq>`,
			want: wantElem{name: xml.Name{Space: NSServer, Local: "iq"}, typ: "get",
				raw: `<iq xmlns="jabber:server" type='get'><query xmlns='jabber:iq:version'/></iq>`}},
		3: {in: `<message id='a' xmlns='jabber&#x3a;client'/>`,
			want: wantElem{name: xml.Name{Space: NSServer, Local: "message"}, id: "a", raw: `<message id='a' xmlns='jabber:server'/>`}},
		4: {in: `<s:message xmlns:s='jabber:server'/>`, same: true,
			want: wantElem{name: xml.Name{Space: NSServer, Local: "message"}, raw: `<s:message xmlns:s='jabber:server'/>`}},
		5:  {in: `<message xmlns='urn:other'/>`, cond: "-"},
		6:  {in: `<db:result xmlns:db='jabber:server:dialback'/>`, cond: "-"},
		7:  {in: `<body/>`, cond: "-"},
		8:  {in: `<message/><message/>`, cond: "-"},
		9:  {in: `<message>`, cond: "not-well-formed"},
		10: {in: ``, cond: "not-well-formed"},
		11: {in: `hi`, cond: "-"},
		12: {in: `<message><db:x/></message>`, cond: "bad-namespace-prefix"},
		13: {in: `<message><!--x--></message>`, cond: "restricted-xml"},
		14: {in: `<c:message xmlns:c='jabber:client'/>`, cond: "-"},
		15: {in: "<message>\xc3</message>", cond: "not-well-formed"},
		16: {in: `<message/><!--x-->`, cond: "-"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			in := []byte(tc.in)
			e, err := ParseStanza(in)
			if tc.cond != "" {
				if !errors.Is(err, ErrBadStanza) {
					t.Fatalf("got %v, want ErrBadStanza", err)
				}
				if tc.cond != "-" && condOf(err) != tc.cond {
					t.Fatalf("got %v, want condition %q", err, tc.cond)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := wantElem{e.Name, e.From, e.To, e.ID, e.Type, string(e.Raw)}
			if got != tc.want {
				t.Fatalf("\ngot  %+v\nwant %+v", got, tc.want)
			}
			if aliased := len(e.Raw) > 0 && &e.Raw[0] == &in[indexOf(in, e.Raw)]; aliased != tc.same {
				t.Fatalf("Raw aliases input: %v, want %v", aliased, tc.same)
			}
			checkReparse(t, e)
		})
	}
}

// indexOf finds sub's offset inside in by content, to compare addresses.
func indexOf(in, sub []byte) int {
	for i := 0; i+len(sub) <= len(in); i++ {
		if string(in[i:i+len(sub)]) == string(sub) {
			return i
		}
	}
	return 0
}

// TestParseStanzaConcurrent runs ParseStanza from several goroutines, good
// and bad input interleaved, since its parsers are pooled.
func TestParseStanzaConcurrent(t *testing.T) {
	inputs := []string{`<message to='a@b'/>`, `<message>`, `<iq xmlns='jabber:client' id='q'/>`, `<x/>`}
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func() {
			for i := 0; i < 200; i++ {
				in := inputs[(g+i)%len(inputs)]
				_, err := ParseStanza([]byte(in))
				if (err == nil) != (in == inputs[0] || in == inputs[2]) {
					done <- fmt.Errorf("%s: %v", in, err)
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestEnvelopeStrings: the fast parser's envelope strings share one
// allocation up to maxSharedEnvelope bytes and are separate above it; either
// way each field is its own value, absent and empty ones included, through
// ParseStanza and through Reader.Next.
func TestEnvelopeStrings(t *testing.T) {
	long := strings.Repeat("x", maxSharedEnvelope)
	for i, tc := range []struct {
		attrs             string
		from, to, id, typ string
	}{
		0: {attrs: ``},
		1: {attrs: ` to='b@b.example'`, to: "b@b.example"},
		2: {attrs: ` type='get' from='a.example' id='' to='b.example'`, from: "a.example", to: "b.example", typ: "get"},
		3: {attrs: ` id='` + long + `' from='a.example'`, from: "a.example", id: long},
		4: {attrs: ` from='a' to='b' id='c' type='d'`, from: "a", to: "b", id: "c", typ: "d"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			raw := `<iq` + tc.attrs + `/>`
			want := [4]string{tc.from, tc.to, tc.id, tc.typ}
			e, err := ParseStanza([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			if got := [4]string{e.From, e.To, e.ID, e.Type}; got != want {
				t.Errorf("ParseStanza: %q, want %q", got, want)
			}
			r := NewReader(strings.NewReader(testHeader+raw), DefaultLimits)
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			if e, err = r.Next(); err != nil {
				t.Fatal(err)
			}
			if got := [4]string{e.From, e.To, e.ID, e.Type}; got != want {
				t.Errorf("Next: %q, want %q", got, want)
			}
		})
	}
}

// TestNextAllocs pins what Next allocates for the elements a busy stream
// carries: Raw's copy, and one string for what the envelope has that the
// last element's had not (from and to) or that is not a known type; the
// names and namespaces of these elements cost nothing. elem is read over
// and over: with two elements, each follows the other, and want is for
// the two.
func TestNextAllocs(t *testing.T) {
	const long = 64
	for i, tc := range []struct {
		elem string
		n    int // elements in elem, when more than one
		want float64
	}{
		// From, to and type as the last ping's: the id alone.
		0: {elem: `<iq from='a.example' to='b.example' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`, want: 2},
		1: {elem: `<message xmlns='jabber:server' from='a@a.example/r' to='b@b.example' type='chat'><body>hi</body></message>`, want: 1},
		2: {elem: `<a xmlns='urn:xmpp:sm:3' h='41'/>`, want: 1},
		3: {elem: `<r xmlns='urn:xmpp:sm:3'/>`, want: 1},
		4: {elem: `<presence/>`, want: 1},
		// An envelope over maxSharedEnvelope: a string per value, so
		// that keeping the from does not keep the id.
		5: {elem: `<iq from='a.example' id='` + strings.Repeat("x", maxSharedEnvelope) + `'/>`, want: 2},
		6: {elem: `<iq from='a.example' id='` + strings.Repeat("x", maxSharedEnvelope) + `'/><iq from='c.example' id='y'/>`, n: 2, want: 3 + 2},
		// Values far apart: one string of the values alone.
		7: {elem: `<iq from='a.example' x='` + strings.Repeat("x", long) + `' to='b.example'/><iq from='c.example' x='` + strings.Repeat("x", long) + `' to='d.example'/>`, n: 2, want: 2 * 2},
		// From and to other than the last element's: they share the
		// id's string.
		8: {elem: `<iq from='a.example' to='b.example' type='get' id='p1'/><iq from='b.example' to='a.example' type='result' id='p1'/>`, n: 2, want: 2 * 2},
		9: {elem: `<iq from='a.example' to='b.example' id='p1'/><iq from='a.example' to='c.example' id='p2'/>`, n: 2, want: 2 * 2},
		// A type of no stanza's: a string as before.
		10: {elem: `<iq from='a.example' type='x-other'/>`, want: 2},
		// A value with a quote inside is remembered with the quote it
		// was written in; in the other quote, it is another value.
		11: {elem: `<iq from="o'hara@a.example" to='b.example'/>`, want: 1},
		12: {elem: `<iq from="o'hara@a.example" to='b.example'/><iq from='o2' to='b.example'/>`, n: 2, want: 2 * 2},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			r := NewReader(io.MultiReader(strings.NewReader(testHeader), &loopReader{data: []byte(tc.elem)}), DefaultLimits)
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			got := testing.AllocsPerRun(200, func() {
				for range max(tc.n, 1) {
					if _, err := r.Next(); err != nil {
						t.Fatal(err)
					}
				}
			})
			if got != tc.want {
				t.Errorf("%v allocations, want %v", got, tc.want)
			}
		})
	}
}
