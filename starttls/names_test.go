package starttls

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/xmpp-s2s/federation/internal/domain"
	"github.com/xmpp-s2s/federation/internal/testcert"
)

func TestVerifyName(t *testing.T) {
	ca, err := testcert.NewCA("")
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		opts testcert.Options
		name string
		want error // nil: match
	}{
		{opts: testcert.Options{DNSNames: []string{"example.org"}}, name: "example.org"},
		{opts: testcert.Options{DNSNames: []string{"example.org"}}, name: "EXAMPLE.org."},
		{opts: testcert.Options{DNSNames: []string{"other.org", "example.org"}}, name: "example.org"},
		{opts: testcert.Options{DNSNames: []string{"example.org"}}, name: "sub.example.org", want: ErrNameMismatch},
		// Wildcards: the whole left-most label, exactly one label.
		{opts: testcert.Options{DNSNames: []string{"*.example.org"}}, name: "xmpp.example.org"},
		{opts: testcert.Options{DNSNames: []string{"*.example.org"}}, name: "example.org", want: ErrNameMismatch},
		{opts: testcert.Options{DNSNames: []string{"*.example.org"}}, name: "a.b.example.org", want: ErrNameMismatch},
		{opts: testcert.Options{DNSNames: []string{"x*.example.org"}}, name: "xmpp.example.org", want: ErrNameMismatch},
		{opts: testcert.Options{DNSNames: []string{"xmpp.*.org"}}, name: "xmpp.example.org", want: ErrNameMismatch},
		{opts: testcert.Options{DNSNames: []string{"*.org"}}, name: "example.org", want: ErrNameMismatch},
		{opts: testcert.Options{DNSNames: []string{"*"}}, name: "localhost", want: ErrNameMismatch},
		// IDN: compared as A-labels whichever form either side uses.
		{opts: testcert.Options{DNSNames: []string{"xn--bcher-kva.example"}}, name: "bücher.example"},
		{opts: testcert.Options{DNSNames: []string{"*.xn--bcher-kva.example"}}, name: "xmpp.Bücher.example"},
		{opts: testcert.Options{XmppAddrs: []string{"bücher.example"}}, name: "xn--bcher-kva.example"},
		{opts: testcert.Options{SRVNames: []string{"xn--bcher-kva.example"}}, name: "bücher.example"},
		// SRV-ID and XmppAddr never wildcard; XmppAddr must be a bare domain.
		{opts: testcert.Options{SRVNames: []string{"example.org"}}, name: "example.org"},
		{opts: testcert.Options{SRVNames: []string{"*.example.org"}}, name: "a.example.org", want: ErrNameMismatch},
		{opts: testcert.Options{XmppAddrs: []string{"*.example.org"}}, name: "a.example.org", want: ErrNameMismatch},
		{opts: testcert.Options{XmppAddrs: []string{"example.org/res"}}, name: "example.org", want: ErrNameMismatch},
		// CN only without SANs of the three kinds.
		{opts: testcert.Options{CommonName: "example.org"}, name: "example.org"},
		{opts: testcert.Options{CommonName: "*.example.org"}, name: "a.example.org", want: ErrNameMismatch},
		{opts: testcert.Options{CommonName: "example.org", SRVNames: []string{"other.org"}}, name: "example.org", want: ErrNameMismatch},
		{opts: testcert.Options{CommonName: "example.org", XmppAddrs: []string{"other.org"}}, name: "example.org", want: ErrNameMismatch},
		{opts: testcert.Options{}, name: "example.org", want: ErrNameMismatch},
		// The reference name itself must be a domain.
		{opts: testcert.Options{DNSNames: []string{"example.org"}}, name: "192.0.2.1", want: domain.ErrInvalid},
		{opts: testcert.Options{DNSNames: []string{"example.org"}}, name: "", want: domain.ErrInvalid},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			leaf, err := ca.Leaf(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			err = VerifyName(leaf.Cert, tc.name)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("VerifyName(%q) = %v, want %v", tc.name, err, tc.want)
			}
		})
	}
}

func TestParseIdentities(t *testing.T) {
	ca, err := testcert.NewCA("")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf(testcert.Options{
		CommonName: "cn.example",
		DNSNames:   []string{"a.example", "*.b.example"},
		SRVNames:   []string{"c.example"},
		XmppAddrs:  []string{"d.example", "user@e.example"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := ParseIdentities(leaf.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids.DNSIDs, []string{"a.example", "*.b.example"}) ||
		!slices.Equal(ids.SRVIDs, []string{"c.example"}) ||
		!slices.Equal(ids.XmppAddrs, []string{"d.example", "user@e.example"}) ||
		ids.CN != "cn.example" {
		t.Fatalf("ParseIdentities = %+v", ids)
	}
	for i, tc := range []struct{ name, kind, value string }{
		{"a.example", "DNS-ID", "a.example"},
		{"x.b.example", "DNS-ID", "*.b.example"},
		{"c.example", "SRV-ID", "_xmpp-server.c.example"},
		{"d.example", "XmppAddr", "d.example"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			kind, value, ok := ids.Match(tc.name)
			if !ok || kind != tc.kind || value != tc.value {
				t.Fatalf("Match(%q) = %q, %q, %v", tc.name, kind, value, ok)
			}
		})
	}
}

// rawSAN wraps GeneralNames bytes in a certificate with that SAN extension
// value, without going through a signer.
func rawSAN(value []byte) *x509.Certificate {
	return &x509.Certificate{Extensions: []pkix.Extension{{Id: oidSAN, Value: value}}}
}

// otherNameDER builds one otherName GeneralName by hand.
func otherNameDER(t testing.TB, oid asn1.ObjectIdentifier, inner []byte) []byte {
	o, err := asn1.Marshal(oid)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: inner})
	if err != nil {
		t.Fatal(err)
	}
	gn, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(o, wrapped...)})
	if err != nil {
		t.Fatal(err)
	}
	return gn
}

func seqOf(t testing.TB, items ...[]byte) []byte {
	var b []byte
	for _, it := range items {
		b = append(b, it...)
	}
	out, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: b})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestParseIdentitiesMalformed feeds SAN encodings no CA should issue.
func TestParseIdentitiesMalformed(t *testing.T) {
	ia5 := func(s string) []byte { b, _ := asn1.MarshalWithParams(s, "ia5"); return b }
	utf8s := func(s string) []byte { b, _ := asn1.MarshalWithParams(s, "utf8"); return b }
	for i, tc := range []struct {
		der  []byte
		want error // nil: parses
		xmpp []string
	}{
		{der: []byte{0x30}, want: ErrBadSAN},
		{der: []byte{0x04, 0x00}, want: ErrBadSAN},
		{der: append(seqOf(t), 0x00), want: ErrBadSAN},
		{der: seqOf(t, otherNameDER(t, oidXmppAddr, ia5("a.example"))), want: ErrBadSAN},       // wrong string type
		{der: seqOf(t, otherNameDER(t, oidSRVName, utf8s("_xmpp-server.a"))), want: ErrBadSAN}, // wrong string type
		{der: seqOf(t, otherNameDER(t, oidXmppAddr, []byte{0x0c, 0x02, 0xff, 0xfe})), want: ErrBadSAN},
		{der: seqOf(t, otherNameDER(t, asn1.ObjectIdentifier{1, 2, 3}, ia5("anything")))},
		{der: seqOf(t, otherNameDER(t, oidSRVName, ia5("_xmpp-client.a.example")))},
		{der: seqOf(t, otherNameDER(t, oidXmppAddr, utf8s("a.example"))), xmpp: []string{"a.example"}},
		{der: seqOf(t, []byte{0x30, 0x00}), want: ErrBadSAN}, // universal class inside GeneralNames
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			ids, err := ParseIdentities(rawSAN(tc.der))
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("ParseIdentities = %+v, %v; want %v", ids, err, tc.want)
				}
				if err := VerifyName(rawSAN(tc.der), "a.example"); !errors.Is(err, tc.want) {
					t.Fatalf("VerifyName = %v; want %v", err, tc.want)
				}
				return
			}
			if err != nil || len(ids.DNSIDs)+len(ids.SRVIDs) != 0 || !slices.Equal(ids.XmppAddrs, tc.xmpp) {
				t.Fatalf("ParseIdentities = %+v, %v", ids, err)
			}
		})
	}
}

// FuzzParseIdentities feeds arbitrary subjectAltName values to the parser:
// no panic, errors wrap ErrBadSAN, and Match never panics on what parsed.
func FuzzParseIdentities(f *testing.F) {
	ca, err := testcert.NewCA("")
	if err != nil {
		f.Fatal(err)
	}
	leaf, err := ca.Leaf(testcert.Options{DNSNames: []string{"a.example"}, SRVNames: []string{"b.example"}, XmppAddrs: []string{"c.example"}})
	if err != nil {
		f.Fatal(err)
	}
	for _, ext := range leaf.Cert.Extensions {
		if ext.Id.Equal(oidSAN) {
			f.Add(ext.Value)
		}
	}
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		ids, err := ParseIdentities(rawSAN(der))
		if err != nil {
			if !errors.Is(err, ErrBadSAN) {
				t.Fatalf("error %v does not wrap ErrBadSAN", err)
			}
			return
		}
		ids.Match("a.example")
		_ = ids.String()
	})
}
