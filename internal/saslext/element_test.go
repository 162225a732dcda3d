package saslext

import (
	"bytes"
	"encoding/xml"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// decoder returns a reader positioned after the start element of s.
func decoder(t testing.TB, s string) (xml.TokenReader, xml.StartElement) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("no start element in %q: %v", s, err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			return d, start
		}
	}
}

func TestParseMechanisms(t *testing.T) {
	for i, tc := range []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: string(Feature(Name)), want: []string{"EXTERNAL"}},
		{in: string(Feature("EXTERNAL", "SCRAM-SHA-1")), want: []string{"EXTERNAL", "SCRAM-SHA-1"}},
		// ejabberd's empty list: no SASL, not an error.
		{in: `<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`, want: nil},
		{in: `<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>
			<mechanism> EXTERNAL </mechanism>
			<hostname xmlns='urn:xmpp:domain-based-name:1'>x</hostname>
		</mechanisms>`, want: []string{"EXTERNAL"}},
		{in: `<mechanisms xmlns='urn:other'/>`, wantErr: true},
		{in: `<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism><b/></mechanism></mechanisms>`, wantErr: true},
		{in: `<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>` + strings.Repeat("A", 21) + `</mechanism></mechanisms>`, wantErr: true},
		{in: `<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL`, wantErr: true},
		{in: string(Feature(slices.Repeat([]string{"X"}, maxMechanisms+1)...)), wantErr: true},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			r, start := decoder(t, tc.in)
			got, err := ParseMechanisms(r, start)
			if tc.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	for i, tc := range []struct {
		in          string
		mech        string
		resp        []byte
		initial     bool
		wantErr     bool
		wantEncoded string // when the input is built by Auth
	}{
		{in: string(Auth(Name, nil, true)), mech: "EXTERNAL", resp: []byte{}, initial: true, wantEncoded: "=</auth>"},
		{in: string(Auth(Name, []byte("a.test"), true)), mech: "EXTERNAL", resp: []byte("a.test"), initial: true, wantEncoded: "YS50ZXN0</auth>"},
		{in: string(Auth(Name, nil, false)), mech: "EXTERNAL", wantEncoded: "'></auth>"},
		{in: `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'/>`, mech: "EXTERNAL"},
		{in: `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'> YS50ZXN0 </auth>`, mech: "EXTERNAL", resp: []byte("a.test"), initial: true},
		{in: `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>=</auth>`, wantErr: true},
		{in: `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>not base64!</auth>`, wantErr: true},
		{in: `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>YS50ZXN0=</auth>`, wantErr: true},
		{in: `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'><x/></auth>`, wantErr: true},
		{in: `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>` + strings.Repeat("A", maxData+4) + `</auth>`, wantErr: true},
		{in: `<auth mechanism='EXTERNAL'>=</auth>`, wantErr: true},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			if tc.wantEncoded != "" && !strings.HasSuffix(tc.in, tc.wantEncoded) {
				t.Fatalf("encoded %q, want suffix %q", tc.in, tc.wantEncoded)
			}
			r, start := decoder(t, tc.in)
			mech, resp, initial, err := ParseAuth(r, start)
			if tc.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || mech != tc.mech || initial != tc.initial || !bytes.Equal(resp, tc.resp) || (resp == nil) != (tc.resp == nil) {
				t.Fatalf("got %q %q %v %v; want %q %q %v", mech, resp, initial, err, tc.mech, tc.resp, tc.initial)
			}
		})
	}
}

func TestData(t *testing.T) {
	for i, tc := range []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: string(Challenge(nil)), want: ""},
		{in: string(Challenge([]byte("x"))), want: "x"},
		{in: string(Response(nil)), want: ""},
		{in: string(Response([]byte("b.test"))), want: "b.test"},
		{in: Success, want: ""},
		{in: `<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>=</success>`, want: ""},
		{in: Abort, wantErr: true},
		{in: `<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>@@</response>`, wantErr: true},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			r, start := decoder(t, tc.in)
			got, err := ParseData(r, start)
			if tc.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestFailure(t *testing.T) {
	for i, tc := range []struct {
		in      string
		cond    string
		text    string
		wantErr bool
	}{
		{in: string(Failure(NotAuthorized, "")), cond: NotAuthorized},
		{in: string(Failure(InvalidAuthzid, "a <b> & c")), cond: InvalidAuthzid, text: "a <b> & c"},
		{in: `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`},
		{in: `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><text>why</text><aborted/><not-authorized/></failure>`, cond: Aborted, text: "why"},
		{in: `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><x xmlns='urn:other'><y/></x><aborted/></failure>`, cond: Aborted},
		{in: `<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`, wantErr: true},
		{in: `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><text>` + strings.Repeat("x", maxText+1) + `</text></failure>`, wantErr: true},
		{in: `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><aborted>`, wantErr: true},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			r, start := decoder(t, tc.in)
			cond, text, err := ParseFailure(r, start)
			if tc.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || cond != tc.cond || text != tc.text {
				t.Fatalf("got %q %q %v; want %q %q", cond, text, err, tc.cond, tc.text)
			}
		})
	}
}
