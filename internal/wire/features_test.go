package wire

import (
	"bytes"
	"encoding/xml"
	"strconv"
	"testing"
)

const nsTLS = "urn:ietf:params:xml:ns:xmpp-tls"

func TestFeaturesRoundTrip(t *testing.T) {
	type want struct {
		name     xml.Name
		required bool
		raw      string
	}
	for i, tc := range []struct {
		children []string
		want     []want
	}{
		0: {},
		1: {children: []string{`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>`, `<dialback xmlns='urn:xmpp:features:dialback'/>`},
			want: []want{
				{xml.Name{Space: nsTLS, Local: "starttls"}, true, `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>`},
				{xml.Name{Space: "urn:xmpp:features:dialback", Local: "dialback"}, false, `<dialback xmlns='urn:xmpp:features:dialback'/>`},
			}},
		2: {children: []string{`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`, `<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism><required xmlns='urn:other'/></mechanisms>`},
			want: []want{
				{xml.Name{Space: nsTLS, Local: "starttls"}, false, `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`},
				{xml.Name{Space: "urn:ietf:params:xml:ns:xmpp-sasl", Local: "mechanisms"}, false, `<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism><required xmlns='urn:other'/></mechanisms>`},
			}},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var b bytes.Buffer
			b.WriteString(testHeader)
			var ch [][]byte
			for _, c := range tc.children {
				ch = append(ch, []byte(c))
			}
			if err := WriteFeatures(&b, ch...); err != nil {
				t.Fatal(err)
			}
			r := NewReader(&b, DefaultLimits)
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			e, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			fs, err := ParseFeatures(e)
			if err != nil {
				t.Fatal(err)
			}
			if len(fs) != len(tc.want) {
				t.Fatalf("got %d features, want %d", len(fs), len(tc.want))
			}
			for j, f := range fs {
				if got := (want{f.Name, f.Required, string(f.Raw)}); got != tc.want[j] {
					t.Fatalf("feature %d:\ngot  %+v\nwant %+v", j, got, tc.want[j])
				}
			}
		})
	}
}

func TestParseFeaturesWrongElement(t *testing.T) {
	e, err := ParseStanza([]byte(`<message/>`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFeatures(e); condOf(err) != "bad-format" {
		t.Fatalf("got %v, want bad-format", err)
	}
}
