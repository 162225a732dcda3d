package testcert

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"
)

// otherNames decodes the otherName SANs of cert as OID string -> values, so
// that the test checks the encoding against encoding/asn1's reading of it.
func otherNames(t *testing.T, cert *x509.Certificate) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		var names []asn1.RawValue
		if _, err := asn1.Unmarshal(ext.Value, &names); err != nil {
			t.Fatalf("SAN: %v", err)
		}
		for _, n := range names {
			if n.Class != asn1.ClassContextSpecific || n.Tag != tagOtherName {
				continue
			}
			var on otherName
			if _, err := asn1.UnmarshalWithParams(n.FullBytes, &on, "tag:0"); err != nil {
				t.Fatalf("otherName: %v", err)
			}
			var s string
			if _, err := asn1.Unmarshal(on.Value.Bytes, &s); err != nil {
				t.Fatalf("otherName value: %v", err)
			}
			got[on.TypeID.String()] = append(got[on.TypeID.String()], s)
		}
	}
	return got
}

func TestLeaf(t *testing.T) {
	ca, err := NewCA("")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		opts       Options
		selfSigned bool
		wantDNS    []string
		wantOther  map[string][]string
		verify     error // nil: chains to ca
	}{
		{opts: Options{DNSNames: []string{"a.example", "*.b.example"}}, wantDNS: []string{"a.example", "*.b.example"}},
		{opts: Options{SRVNames: []string{"a.example"}}, wantOther: map[string][]string{"1.3.6.1.5.5.7.8.7": {"_xmpp-server.a.example"}}},
		{opts: Options{XmppAddrs: []string{"bücher.example"}}, wantOther: map[string][]string{"1.3.6.1.5.5.7.8.5": {"bücher.example"}}},
		{
			opts:      Options{DNSNames: []string{"a.example"}, SRVNames: []string{"a.example"}, XmppAddrs: []string{"a.example"}},
			wantDNS:   []string{"a.example"},
			wantOther: map[string][]string{"1.3.6.1.5.5.7.8.7": {"_xmpp-server.a.example"}, "1.3.6.1.5.5.7.8.5": {"a.example"}},
		},
		{opts: Options{CommonName: "cn.example"}},
		{opts: Options{DNSNames: []string{"a.example"}, NotAfter: time.Now().Add(-time.Minute), NotBefore: time.Now().Add(-time.Hour)}, wantDNS: []string{"a.example"}, verify: x509.CertificateInvalidError{}},
		{opts: Options{DNSNames: []string{"a.example"}}, selfSigned: true, wantDNS: []string{"a.example"}, verify: x509.UnknownAuthorityError{}},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var leaf *Leaf
			if tc.selfSigned {
				leaf, err = SelfSigned(tc.opts)
			} else {
				leaf, err = ca.Leaf(tc.opts)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(leaf.Cert.DNSNames, tc.wantDNS) {
				t.Errorf("DNSNames = %q, want %q", leaf.Cert.DNSNames, tc.wantDNS)
			}
			if got := otherNames(t, leaf.Cert); len(got) != len(tc.wantOther) {
				t.Errorf("otherNames = %q, want %q", got, tc.wantOther)
			} else {
				for oid, want := range tc.wantOther {
					if !slices.Equal(got[oid], want) {
						t.Errorf("otherName %s = %q, want %q", oid, got[oid], want)
					}
				}
			}
			if leaf.Cert.Subject.CommonName != tc.opts.CommonName {
				t.Errorf("CN = %q, want %q", leaf.Cert.Subject.CommonName, tc.opts.CommonName)
			}

			// The PEM file must load as a key pair with the same chain.
			pair, err := tls.X509KeyPair(leaf.PEM, leaf.PEM)
			if err != nil {
				t.Fatalf("X509KeyPair(PEM): %v", err)
			}
			if len(pair.Certificate) != len(leaf.TLS.Certificate) {
				t.Fatalf("PEM chain has %d certificates, TLS has %d", len(pair.Certificate), len(leaf.TLS.Certificate))
			}
			wantLen := 2
			if tc.selfSigned {
				wantLen = 1
			}
			if len(pair.Certificate) != wantLen {
				t.Fatalf("chain length %d, want %d", len(pair.Certificate), wantLen)
			}

			_, err = leaf.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			switch want := tc.verify.(type) {
			case nil:
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				// A different CA must not accept it.
				if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: other.Pool()}); !errors.As(err, &x509.UnknownAuthorityError{}) {
					t.Fatalf("Verify with other CA: %v, want UnknownAuthorityError", err)
				}
			case x509.CertificateInvalidError:
				if !errors.As(err, &want) || want.Reason != x509.Expired {
					t.Fatalf("Verify: %v, want expired", err)
				}
			case x509.UnknownAuthorityError:
				if !errors.As(err, &want) {
					t.Fatalf("Verify: %v, want unknown authority", err)
				}
			}
		})
	}
}

func TestExtKeyUsage(t *testing.T) {
	ca, err := NewCA("")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf(Options{DNSNames: []string{"a.example"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(leaf.Cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Fatalf("ExtKeyUsage = %v", leaf.Cert.ExtKeyUsage)
	}
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Fatal("server-only certificate verified for client auth")
	}
}

func TestCAPEM(t *testing.T) {
	ca, err := NewCA("x")
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(ca.PEM()) {
		t.Fatal("CA PEM did not parse")
	}
	if !p.Equal(ca.Pool()) {
		t.Fatal("pool from PEM differs from Pool()")
	}
}
