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
		// Values that end in their second word, or go on past it.
		13: `<iq id='0123456789abcde' to='x'/>`,
		14: `<iq id='0123456789abcdef' to='x'/>`,
		15: `<iq to='x'><x id='01234567&amp;9'/></iq>`,
		16: `<iq id="01234567'9" to='x'/>`,
		17: "<iq id='01234567\xc3\xa9' to='x'/>",
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
			againstReference(t, &p, tc.rec, tc.refused, false)
		})
	}
}

// againstReference parses rec with p, which has parsed the elements before
// it, and with encoding/xml under p's outer prefixes: both refuse it
// (refused), the fast parser alone does (slow), or both take it alike,
// envelope and Raw.
func againstReference(t *testing.T, p *fastParser, rec string, refused, slow bool) {
	t.Helper()
	var e Element
	took := p.parse([]byte(rec), &e)
	want, _, err := parseComplete([]byte(rec), p.outer, 0, true)
	if refused || slow {
		if took || (err == nil) != slow {
			t.Fatalf("%s taken: fast %v, encoding/xml %v", rec, took, err == nil)
		}
		return
	}
	if !took {
		t.Fatalf("fast parser refused %s", rec)
	}
	if err != nil {
		t.Fatal(err)
	}
	e.Raw = buildRaw([]byte(rec), p.nameEnd, p.inject, p.outer)
	if e.Name != want.Name || e.From != want.From || e.To != want.To || e.ID != want.ID || e.Type != want.Type || string(e.Raw) != string(want.Raw) {
		t.Fatalf("fast      %+v\nreference %+v", e, want)
	}
}

// TestFastParserTemplate: once two stanzas began alike, the next that
// begins with the same bytes is parsed from after them (fastParser.tmpl);
// what follows is checked as ever, and a start that differs in any byte,
// or stops short, is parsed in full. Each case parses first twice, then
// rec, and compares rec's result with encoding/xml's.
func TestFastParserTemplate(t *testing.T) {
	outer := map[string]string{"stream": NSStream, "db": NSDialback}
	const ping = `<iq from='a.example' to='b.example' type='get' id='1'/>`
	for i, tc := range []struct {
		first, rec string
		refused    bool // by both parsers
		slow       bool // refused by the fast parser alone
		template   bool // rec is parsed from the template
	}{
		0: {first: ping, rec: `<iq from='a.example' to='b.example' type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq>`, template: true},
		// Repeats after the template's attributes.
		1: {first: ping, rec: `<iq from='a.example' to='b.example' type='get' from='c'/>`, refused: true, template: true},
		2: {first: ping, rec: `<iq from='a.example' to='b.example' type='get' type='get'/>`, refused: true, template: true},
		3: {first: ping, rec: `<iq from='a.example' to='b.example' type='get' xmlns='jabber:client' id='2'/>`, template: true},
		4: {first: ping, rec: `<iq from='a.example' to='b.example' type='get' xmlns='urn:x' id='2'/>`, template: true},
		5: {first: ping, rec: `<iq from='a.example' to='b.example' type='get' db:x='1' id='2'/>`, template: true},
		6: {first: ping, rec: `<iq from='a.example' to='b.example' type='get' q:x='1' id='2'/>`, refused: true, template: true},
		// Stops short, or goes on otherwise.
		7:  {first: ping, rec: `<iq from='a.example' to='b.example' type='get'`, refused: true},
		8:  {first: ping, rec: `<iq from='a.example' to='b.example' type='get'>`, refused: true, template: true},
		9:  {first: ping, rec: `<iq from='a.example' to='b.example' type='getx'/>`},
		10: {first: ping, rec: `<iq from='a.example' to='b.example.org' type='get'/>`},
		11: {first: ping, rec: `<iqx from='a.example' to='b.example' type='get'/>`},
		// encoding/xml takes it, the fast parser leaves it to it.
		12: {first: ping, rec: `<iq from='a.example' to='b.example' type='get'id='2'/>`, slow: true, template: true},
		// A template with xmlns, and one that stops at the first
		// attribute that is not of its kind.
		13: {first: `<message xmlns='jabber:client' from='a@a.example/r' to='b@b.example'><body>x</body></message>`,
			rec: `<message xmlns='jabber:client' from='a@a.example/r' to='b@b.example' type='chat'/>`, template: true},
		14: {first: `<iq from='a.example' id='1' to='b.example'/>`, rec: `<iq from='a.example' id='2' to='b.example'/>`, template: true},
		15: {first: `<iq from='a.example' x='1' to='b.example'/>`, rec: `<iq from='a.example' x='1' x='2'/>`, refused: true, template: true},
		// No template: not a stanza, a prefixed name, a type that is
		// not a constant (the template ends before it), no from or to.
		16: {first: `<db:result from='a.example' to='b.example'/>`, rec: `<db:result from='a.example' to='b.example'>k</db:result>`},
		17: {first: `<r from='a.example'/>`, rec: `<r from='a.example' from='b'/>`, refused: true},
		18: {first: `<iq from='a.example' type='x-1'/>`, rec: `<iq from='a.example' type='x-1'/>`, template: true},
		19: {first: `<iq type='get' id='1'/>`, rec: `<iq type='get' id='2'/>`},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var p fastParser
			p.outer = outer
			var e Element
			for range 2 {
				if !p.parse([]byte(tc.first), &e) {
					t.Fatalf("fast parser refused %s", tc.first)
				}
			}
			var b string
			if p.tmpl != nil {
				b = p.tmpl.b
			}
			had := b != "" && len(tc.rec) > len(b) && tc.rec[:len(b)] == b
			if had != tc.template {
				t.Errorf("template %q used: %v, want %v", b, had, tc.template)
			}
			againstReference(t, &p, tc.rec, tc.refused, tc.slow)
		})
	}
}
