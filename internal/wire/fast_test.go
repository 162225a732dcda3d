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
