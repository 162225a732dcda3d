package dialback

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// header opens a stream the way XEP-0220 §2.4.1 shows, binding the db prefix.
const header = `<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' ` +
	`xmlns:stream='http://etherx.jabber.org/streams' id='D60000229F' version='1.0'>`

// decodeFirst reads header+body with a namespace-aware decoder, as a stream
// owner would, and decodes the first element after the header.
func decodeFirst(t testing.TB, body string) (Element, *xml.Decoder, error) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(header + body))
	if _, err := d.Token(); err != nil {
		t.Fatalf("header: %v", err)
	}
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("no element in %q: %v", body, err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			el, err := Decode(d, start)
			return el, d, err
		}
	}
}

func encodeString(t testing.TB, m xmlstream.WriterTo) string {
	t.Helper()
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	if _, err := m.WriteXML(e); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func dbErr(c stanza.Condition) *stanza.Error { return newError(c) }

// roundTrips lists every element shape, including each XEP-0220 §2.5 error
// condition on both elements.
func roundTrips() []Element {
	els := []Element{
		Result{From: "capulet.example", To: "montague.example", Key: "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3"},
		Result{From: "montague.example", To: "capulet.example", Type: Valid},
		Result{From: "montague.example", To: "capulet.example", Type: Invalid},
		Verify{From: "capulet.example", To: "montague.example", ID: "417GAF25", Key: "225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d"},
		Verify{From: "montague.example", To: "capulet.example", ID: "417GAF25", Type: Valid},
		Verify{From: "montague.example", To: "capulet.example", ID: "417GAF25", Type: Invalid},
		Verify{From: "montague.example", To: "capulet.example", ID: "", Type: Valid},
		Result{From: "bücher.example", To: "x.example", Key: "k"},
	}
	for _, c := range []stanza.Condition{
		stanza.ItemNotFound, RemoteConnectionFailed, stanza.RemoteServerNotFound,
		stanza.RemoteServerTimeout, stanza.PolicyViolation, stanza.NotAuthorized,
		stanza.Forbidden, stanza.NotAcceptable, stanza.InternalServerError, stanza.UndefinedCondition,
	} {
		els = append(els,
			Result{From: "montague.example", To: "capulet.example", Type: Failed, Err: dbErr(c)},
			Verify{From: "montague.example", To: "capulet.example", ID: "417GAF25", Type: Failed, Err: dbErr(c)})
	}
	return els
}

func TestRoundTrip(t *testing.T) {
	var golden bytes.Buffer
	for i, el := range roundTrips() {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			wire := encodeString(t, el)
			golden.WriteString(wire + "\n")
			got, _, err := decodeFirst(t, wire)
			if err != nil {
				t.Fatalf("Decode(%s): %v", wire, err)
			}
			if !reflect.DeepEqual(got, el) {
				t.Fatalf("Decode(%s)\n got %#v\nwant %#v", wire, got, el)
			}
		})
	}
	path := filepath.Join("testdata", "elements.golden")
	if *update {
		if err := os.WriteFile(path, golden.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if golden.String() != string(want) {
		t.Fatalf("wire form changed; run go test -update and review\n got:\n%s\nwant:\n%s", golden.String(), want)
	}
}

func TestDecodeTolerant(t *testing.T) {
	for i, tc := range []struct {
		in   string
		want Element
	}{
		// The XEP's own layout, with indentation around the key.
		{"<db:result\n from='capulet.example'\n to='montague.example'>\n  abc\n</db:result>",
			Result{From: "capulet.example", To: "montague.example", Key: "abc"}},
		// Default-namespace form instead of a prefix.
		{"<result xmlns='jabber:server:dialback' from='a.example' to='b.example'>k</result>",
			Result{From: "a.example", To: "b.example", Key: "k"}},
		// An id on a result and unknown attributes and children are ignored.
		{"<db:result from='a.example' to='b.example' id='x' foo='bar'><x xmlns='urn:other'>t</x>k</db:result>",
			Result{From: "a.example", To: "b.example", Key: "k"}},
		// A verify without id, and with an empty one.
		{"<db:verify from='a.example' to='b.example'>k</db:verify>",
			Verify{From: "a.example", To: "b.example", Key: "k"}},
		{"<db:verify from='a.example' to='b.example' id=''>k</db:verify>",
			Verify{From: "a.example", To: "b.example", Key: "k"}},
		// An error without a known condition, and one without <error/> at all.
		{"<db:result from='a.example' to='b.example' type='error'><error type='cancel'><gone xmlns='urn:other'/></error></db:result>",
			Result{From: "a.example", To: "b.example", Type: Failed, Err: &stanza.Error{Type: stanza.Cancel, Condition: stanza.UndefinedCondition}}},
		{"<db:result from='a.example' to='b.example' type='error'/>",
			Result{From: "a.example", To: "b.example", Type: Failed, Err: dbErr(stanza.UndefinedCondition)}},
		// An <error/> explicitly in jabber:server, with text.
		{"<db:verify from='a.example' to='b.example' id='i' type='error'><error xmlns='jabber:server' type='wait'>" +
			"<remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>" +
			"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>slow</text></error></db:verify>",
			Verify{From: "a.example", To: "b.example", ID: "i", Type: Failed, Err: &stanza.Error{
				Type: stanza.Wait, Condition: stanza.RemoteServerTimeout, Text: map[string]string{"": "slow"}}}},
		// An <error/> child on a non-error answer is ignored.
		{"<db:result from='a.example' to='b.example' type='valid'><error><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>",
			Result{From: "a.example", To: "b.example", Type: Valid}},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, d, err := decodeFirst(t, tc.in+"<next/>")
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v\nwant %#v", got, tc.want)
			}
			// Decode stops right after the element's end.
			tok, err := d.Token()
			if start, ok := tok.(xml.StartElement); err != nil || !ok || start.Name.Local != "next" {
				t.Fatalf("next token = %#v, %v; want <next>", tok, err)
			}
		})
	}
}

// A peer that forgets to declare xmlns:db leaves the prefix unresolved;
// encoding/xml then reports it as the namespace.
func TestDecodeUndeclaredPrefix(t *testing.T) {
	d := xml.NewDecoder(strings.NewReader("<db:result from='a.example' to='b.example'>k</db:result>"))
	tok, err := d.Token()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(d, tok.(xml.StartElement))
	want := Result{From: "a.example", To: "b.example", Key: "k"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, %v", got, err)
	}
}

// The caller may pass only the element's inner tokens.
func TestDecodeInner(t *testing.T) {
	d := xml.NewDecoder(strings.NewReader(header + "<db:verify from='a.example' to='b.example' id='i'>k</db:verify>"))
	d.Token()
	tok, _ := d.Token()
	got, err := Decode(xmlstream.Inner(d), tok.(xml.StartElement))
	want := Verify{From: "a.example", To: "b.example", ID: "i", Key: "k"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, %v", got, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	for i, in := range []string{
		"<db:result to='b.example'>k</db:result>",
		"<db:result from='a.example'>k</db:result>",
		"<db:result from='' to='b.example'>k</db:result>",
		"<db:verify from='a.example' to='b.example' type='maybe'/>",
		"<db:other from='a.example' to='b.example'/>",
		"<result xmlns='jabber:server' from='a.example' to='b.example'/>",
		"<db:result from='a.example' to='b.example'>" + strings.Repeat("k", maxKey+1) + "</db:result>",
		"<db:result from='a.example' to='b.example' type='error'><error><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>",
		"<db:result from='a.example' to='b.example'>abc",
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			el, _, err := decodeFirst(t, in)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode(%s) = %#v, %v; want ErrMalformed", in, el, err)
			}
		})
	}
}

// Decode passes the reader's own failures through.
func TestDecodeReaderError(t *testing.T) {
	boom := errors.New("boom")
	start := xml.StartElement{Name: xml.Name{Space: NS, Local: "result"}, Attr: []xml.Attr{
		{Name: xml.Name{Local: "from"}, Value: "a.example"}, {Name: xml.Name{Local: "to"}, Value: "b.example"}}}
	r := xmlstream.ReaderFunc(func() (xml.Token, error) { return nil, boom })
	if _, err := Decode(r, start); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, el := range roundTrips() {
		f.Add(encodeString(f, el))
	}
	f.Add("<db:result from='a' to='b' type='error'><error><x/></error>k</db:result>")
	f.Add("<db:verify from='a' to='b'><a><b></b></a></db:verify>")
	f.Fuzz(func(t *testing.T, body string) {
		d := xml.NewDecoder(strings.NewReader(header + body))
		if _, err := d.Token(); err != nil {
			return
		}
		tok, err := d.Token()
		start, ok := tok.(xml.StartElement)
		if err != nil || !ok {
			return
		}
		el, err := Decode(d, start)
		if err != nil {
			return
		}
		// What decodes must encode, and decode again to the same value.
		wire := encodeString(t, el)
		again, _, err := decodeFirst(t, wire)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", wire, err)
		}
		if !reflect.DeepEqual(normalForm(again), normalForm(el)) {
			t.Fatalf("round trip of %q via %s\n got %#v\nwant %#v", body, wire, again, el)
		}
	})
}

// normalForm drops what encoding legitimately changes: surrounding space in
// keys (trimmed on decode) and an error child on a non-error answer.
func normalForm(el Element) Element {
	switch v := el.(type) {
	case Result:
		if v.Type != Failed {
			v.Err = nil
		}
		return v
	case Verify:
		if v.Type != Failed {
			v.Err = nil
		}
		return v
	}
	return el
}
