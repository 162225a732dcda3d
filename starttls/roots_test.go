package starttls

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xmpp-s2s/federation/internal/testcert"
)

// TestLoadRoots: a file of CA certificates becomes a pool that verifies
// what they issued; a file holding anything else (a key, a leaf, nothing,
// garbage) is an error that names the file and says what is wrong, never
// what a key block held.
func TestLoadRoots(t *testing.T) {
	ca, err := testcert.NewCA("roots test CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testcert.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf(testcert.Options{DNSNames: []string{"a.test"}})
	if err != nil {
		t.Fatal(err)
	}
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.TLS.Certificate[0]})
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for i, tc := range []struct {
		path string
		err  string // "" for success
	}{
		0: {path: write("ca.pem", ca.PEM())},
		1: {path: write("two.pem", append(append([]byte{}, other.PEM()...), ca.PEM()...))},
		2: {path: filepath.Join(dir, "missing.pem"), err: "no such file"},
		3: {path: write("empty.pem", nil), err: "empty.pem: starttls: unusable CA file: no PEM certificate in it"},
		4: {path: write("key.pem", append(append([]byte{}, ca.PEM()...), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("secret bytes")})...)),
			err: `key.pem: starttls: unusable CA file: PEM block 2 is a "PRIVATE KEY", want CERTIFICATE`},
		5: {path: write("leaf.pem", leafPEM), err: "leaf.pem: starttls: unusable CA file: certificate 1 (DNS:a.test) is not a CA certificate"},
		6: {path: write("bad.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})), err: "bad.pem: starttls: unusable CA file: certificate 1: x509:"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			pool, err := LoadRoots(tc.path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrRoots) {
					t.Fatalf("LoadRoots = %v, want an ErrRoots error containing %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("the error shows the key block: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Fatalf("a certificate of the CA does not verify: %v", err)
			}
		})
	}
}

// TestOpenSSLRecipe: the files the README's openssl commands make (kept in
// testdata/openssl) work as documented: the CA file loads with LoadRoots,
// the certfile (certificate, chain, key) with LoadCertFile, and the
// certificate verifies against the CA for both uses an s2s link makes of
// it, serving incoming streams and authenticating outgoing ones.
func TestOpenSSLRecipe(t *testing.T) {
	dir := filepath.Join("testdata", "openssl")
	roots, err := LoadRoots(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := LoadCertFile(filepath.Join(dir, "s2s.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := cf.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "example.org", Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("usage %v: %v", usage, err)
		}
	}
}
