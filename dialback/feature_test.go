package dialback

import (
	"encoding/xml"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestFeature(t *testing.T) {
	for i, tc := range []struct {
		f    Feature
		wire string
	}{
		{Feature{Errors: true}, `<dialback xmlns="urn:xmpp:features:dialback"><errors></errors></dialback>`},
		{Feature{}, `<dialback xmlns="urn:xmpp:features:dialback"></dialback>`},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			if got := encodeString(t, tc.f); got != tc.wire {
				t.Fatalf("wire = %s, want %s", got, tc.wire)
			}
			got, err := parseFeatureString(t, tc.wire)
			if err != nil || got != tc.f {
				t.Fatalf("ParseFeature = %+v, %v; want %+v", got, err, tc.f)
			}
		})
	}
}

func parseFeatureString(t testing.TB, s string) (Feature, error) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("no element in %q: %v", s, err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			return ParseFeature(d, start)
		}
	}
}

func TestParseFeature(t *testing.T) {
	for i, tc := range []struct {
		in   string
		want Feature
		err  bool
	}{
		{in: `<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>`, want: Feature{Errors: true}},
		{in: `<dialback xmlns='urn:xmpp:features:dialback'/>`, want: Feature{}},
		{in: `<dialback xmlns='urn:xmpp:features:dialback'><x><errors/></x></dialback>`, want: Feature{}},
		{in: `<dialback xmlns='urn:xmpp:features:dialback'><errors xmlns='urn:other'/></dialback>`, want: Feature{}},
		{in: `<dialback xmlns='urn:other'><errors/></dialback>`, err: true},
		{in: `<dialback xmlns='urn:xmpp:features:dialback'><errors/>`, err: true},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, err := parseFeatureString(t, tc.in)
			if tc.err {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("ParseFeature(%s) = %+v, %v; want ErrMalformed", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseFeature(%s) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func FuzzParseFeature(f *testing.F) {
	f.Add(`<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>`)
	f.Add(`<dialback xmlns='urn:xmpp:features:dialback'><a><b/></a></dialback>`)
	f.Fuzz(func(t *testing.T, s string) {
		d := xml.NewDecoder(strings.NewReader(s))
		tok, err := d.Token()
		start, ok := tok.(xml.StartElement)
		if err != nil || !ok {
			return
		}
		got, err := ParseFeature(d, start)
		if err != nil {
			return
		}
		again, err := parseFeatureString(t, encodeString(t, got))
		if err != nil || again != got {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", s, again, err, got)
		}
	})
}
