package wire

import (
	"strconv"
	"testing"
)

// TestFastParserTakes: the shapes of element that busy streams carry are
// the fast parser's to take, by its quick paths (the envelope's names
// matched eight bytes at a time, the end tag matched against the open
// name) and by the general paths beside them (spaces around '=', other
// quotes, unknown names, an attribute too near the end for a word), and
// each comes out as encoding/xml reads it. FuzzFastParser holds it to
// encoding/xml for whatever it accepts; this holds it to accepting these.
func TestFastParserTakes(t *testing.T) {
	outer := map[string]string{"stream": NSStream, "db": NSDialback}
	for i, rec := range []string{
		0:  `<iq from='a.example' to='b.example' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`,
		1:  `<iq from='b.example' to='a.example' type='result' id='p1'/>`,
		2:  benchStanza,
		3:  `<iq from = 'a.example' to= "b.example" type ='get'  id="p1"/>`,
		4:  `<iq fromx='1' tox='2' ids='3' typed='4' xmlnsx='5' from='a'/>`,
		5:  `<iq xmlns:from='u' from:x='1' to='b'/>`,
		6:  `<message to='b'><body>hi</body ></message >`,
		7:  `<db:result from='a.example' to='b.example'>key</db:result>`,
		8:  `<presence xmlns='jabber:server' from='a@a.example/r'/>`,
		9:  `<iq id='a' x='` + "0123456789012345678901234567890123456789" + `' to='c'/>`,
		10: `<a xmlns='urn:xmpp:sm:3' h='41'/>`,
		11: `<iq to='x'/>`,
		12: `<iq id="x"/>`,
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var p fastParser
			p.outer = outer
			var e Element
			if !p.parse([]byte(rec), &e) {
				t.Fatalf("fast parser refused %s", rec)
			}
			e.Raw = buildRaw([]byte(rec), p.nameEnd, p.inject, outer)
			want, _, err := parseComplete([]byte(rec), outer, 0, true)
			if err != nil {
				t.Fatal(err)
			}
			if e.Name != want.Name || e.From != want.From || e.To != want.To || e.ID != want.ID || e.Type != want.Type || string(e.Raw) != string(want.Raw) {
				t.Fatalf("fast      %+v\nreference %+v", e, want)
			}
		})
	}
}

// TestFastParserRefuses: repeated attributes, whichever path scanned each
// of the two, are left to encoding/xml, which refuses them.
func TestFastParserRefuses(t *testing.T) {
	for i, rec := range []string{
		0: `<iq from='a' from='b'/>`,
		1: `<iq to='a' type='x' to="b"/>`,
		2: `<iq from='a' from ='b'/>`,
		3: `<iq from ='a' from='b'/>`,
		4: `<iq xmlns='jabber:server' xmlns='jabber:server'/>`,
		5: `<iq><x xmlns='u' xmlns='u'/></iq>`,
		6: `<iq><x id='1' id='1'/></iq>`,
		7: `<iq x='1' x='2'/>`,
		8: `<a><b></bc></a>`,
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var p fastParser
			var e Element
			if p.parse([]byte(rec), &e) {
				t.Fatalf("fast parser took %s", rec)
			}
			if _, _, err := parseComplete([]byte(rec), nil, 0, true); err == nil {
				t.Fatalf("encoding/xml took %s", rec)
			}
		})
	}
}

// TestFastParserRepeats: a from or to with the bytes of the last element's
// is taken as the last one's string only when it is that value, closed by
// the same quote, in a tag that is well formed; anything else is parsed as
// it would be on its own.
func TestFastParserRepeats(t *testing.T) {
	outer := map[string]string{"stream": NSStream, "db": NSDialback}
	for i, tc := range []struct {
		first, rec string
		refused    bool // by both parsers
	}{
		0: {first: `<iq from='a.example' to='b.example'/>`, rec: `<iq from='a.example' to='b.example' id='x'/>`},
		// The last from has the other quote inside.
		1: {first: `<iq from="o'hara@a.example" to='b.example'/>`, rec: `<iq from='o'hara@a.example' to='b.example'/>`, refused: true},
		2: {first: `<iq from="o'hara@a.example" to='b.example'/>`, rec: `<iq from="o'hara@a.example" to="b.example"/>`},
		3: {first: `<iq from='abcdefgh.example'/>`, rec: `<iq from='abcdefgh.example' from='x'/>`, refused: true},
		4: {first: `<iq from='abcdefgh.example'/>`, rec: `<iq from='x' from='abcdefgh.example'/>`, refused: true},
		// Longer, shorter, or not closed where the last one was.
		5: {first: `<iq from='abcdefgh.example'/>`, rec: `<iq from='abcdefgh.example.org'/>`},
		6: {first: `<iq from='abcdefgh.example.org'/>`, rec: `<iq from='abcdefgh.example'/>`},
		7: {first: `<iq from='abcdefgh.example'/>`, rec: `<iq from='abcdefgh.example`, refused: true},
		8: {first: `<iq from='abcdefgh.example'/>`, rec: `<iq from='abcdefgh.example'`, refused: true},
		// Not the top-level tag's: no envelope.
		9: {first: `<iq from='abcdefgh.example'/>`, rec: `<iq><x from='abcdefgh.example'/></iq>`},
		// The last to, as a from, and the other way round.
		10: {first: `<iq from='abcdefgh.example' to='ijklmnop.example'/>`, rec: `<iq from='ijklmnop.example' to='abcdefgh.example'/>`},
		11: {first: `<iq to='abcdefgh.example' from='ijklmnop.example'/>`, rec: `<iq to='abcdefgh.example' from='ijklmnop.example'/>`},
		// Spaces around '=': the general path, then the same value.
		12: {first: `<iq from='abcdefgh.example'/>`, rec: `<iq from = 'abcdefgh.example' to='b'/>`},
		13: {first: `<iq from = "abcdefgh.example"/>`, rec: `<iq from="abcdefgh.example"/>`},
		// A known type, and another.
		14: {first: `<iq from='abcdefgh.example' type='get'/>`, rec: `<iq from='abcdefgh.example' type='gets'/>`},
		15: {first: `<iq from='abcdefgh.example' type='x' id='y'/>`, rec: `<iq type='result' from='abcdefgh.example' id='y'/>`},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var p fastParser
			p.outer = outer
			var e Element
			if !p.parse([]byte(tc.first), &e) {
				t.Fatalf("fast parser refused %s", tc.first)
			}
			took := p.parse([]byte(tc.rec), &e)
			want, _, err := parseComplete([]byte(tc.rec), outer, 0, true)
			if tc.refused {
				if took || err == nil {
					t.Fatalf("%s taken: fast %v, encoding/xml %v", tc.rec, took, err == nil)
				}
				return
			}
			if !took {
				t.Fatalf("fast parser refused %s", tc.rec)
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.Name != want.Name || e.From != want.From || e.To != want.To || e.ID != want.ID || e.Type != want.Type {
				t.Fatalf("fast      %+v\nreference %+v", e, want)
			}
		})
	}
}
