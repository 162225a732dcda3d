package starttls

import (
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

// firstStart returns a decoder positioned after the first start element of
// s, and that element.
func firstStart(s string) (*xml.Decoder, xml.StartElement, bool) {
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, xml.StartElement{}, false
		}
		if st, ok := tok.(xml.StartElement); ok {
			return d, st, true
		}
	}
}

func TestParseFeature(t *testing.T) {
	for i, tc := range []struct {
		in       string
		required bool
		err      bool
		rest     string // the next token's local name after the feature, if any
	}{
		{in: featureOptional},
		{in: featureRequired, required: true},
		{in: `<starttls xmlns='` + NS + `'><required/></starttls><next/>`, required: true, rest: "next"},
		{in: `<starttls xmlns='` + NS + `'></starttls><next/>`, rest: "next"},
		{in: `<starttls xmlns='` + NS + `'><ext xmlns='urn:x'><required/></ext></starttls>`},
		{in: `<starttls xmlns='` + NS + `'><ext xmlns='urn:x'/><required/></starttls>`, required: true},
		{in: `<starttls xmlns='` + NS + `'><required xmlns='urn:other'/></starttls>`},
		{in: `<starttls xmlns='urn:other'/>`, err: true},
		{in: `<tls xmlns='` + NS + `'/>`, err: true},
		{in: `<starttls xmlns='` + NS + `'><required/>`, err: true},
		{in: `<starttls xmlns='` + NS + `'><required></starttls>`, err: true},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			d, st, ok := firstStart(tc.in)
			if !ok {
				t.Fatalf("no start element in %q", tc.in)
			}
			required, err := ParseFeature(d, st)
			if tc.err {
				if !errors.Is(err, ErrFeature) {
					t.Fatalf("ParseFeature(%q) = %v, %v; want ErrFeature", tc.in, required, err)
				}
				return
			}
			if err != nil || required != tc.required {
				t.Fatalf("ParseFeature(%q) = %v, %v; want %v", tc.in, required, err, tc.required)
			}
			if tc.rest != "" {
				tok, err := d.Token()
				if st, ok := tok.(xml.StartElement); err != nil || !ok || st.Name.Local != tc.rest {
					t.Fatalf("next token %v, %v; want <%s>", tok, err, tc.rest)
				}
			}
		})
	}
}

// TestElements checks that the serialised elements are what a namespace
// aware reader takes them for.
func TestElements(t *testing.T) {
	for i, tc := range []struct{ in, local string }{
		{StartTLS, "starttls"}, {Proceed, "proceed"}, {Failure, "failure"},
		{featureOptional, "starttls"}, {featureRequired, "starttls"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var v struct{ XMLName xml.Name }
			if err := xml.Unmarshal([]byte(tc.in), &v); err != nil {
				t.Fatal(err)
			}
			if v.XMLName != (xml.Name{Space: NS, Local: tc.local}) {
				t.Fatalf("%s reads as %v", tc.in, v.XMLName)
			}
		})
	}
}

// FuzzParseFeature: any input after a <starttls> start element either parses
// or fails with ErrFeature; never a panic or a hang.
func FuzzParseFeature(f *testing.F) {
	for _, s := range []string{"<required/></starttls>", "</starttls>", "<a><b/></a></starttls>", "<required>", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		d, st, ok := firstStart(`<starttls xmlns='` + NS + `'>` + body)
		if !ok {
			return
		}
		_, err := ParseFeature(d, st)
		if err != nil && !errors.Is(err, ErrFeature) {
			t.Fatalf("error %v does not wrap ErrFeature", err)
		}
		if err != nil && errors.Is(err, io.EOF) {
			t.Fatalf("bare io.EOF leaked: %v", err)
		}
	})
}
