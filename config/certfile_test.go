package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// pemPair makes a self-signed certificate and its key, PEM-encoded.
func pemPair(t *testing.T) (cert, key []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "a.example"},
		DNSNames:     []string{"a.example"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestCertFile checks each reason a certfile is refused at load time, and
// that a good one, relative to the configuration file, is accepted and
// stored resolved.
func TestCertFile(t *testing.T) {
	cert, key := pemPair(t)
	_, otherKey := pemPair(t)
	encPKCS8 := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0x00}})
	encLegacy := pem.EncodeToMemory(&pem.Block{
		Type:    "EC PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00000000000000000000000000000000"},
		Bytes:   []byte{0x01, 0x02},
	})
	badCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})

	for i, tc := range []struct {
		pem  []byte
		err  string // after `s2s.toml:1:12: s2s.certfile: "<dir>/s2s.pem": `
		good bool
	}{
		{pem: cat(cert, key), good: true},
		{pem: cat(key, cert), good: true},
		{pem: cat([]byte("# comment\n"), cert, cert, key), good: true},
		{pem: key, err: "no certificate (want a PEM CERTIFICATE block)"},
		{pem: []byte("hello\n"), err: "no certificate (want a PEM CERTIFICATE block)"},
		{pem: cert, err: "no private key (want an unencrypted PEM private key block)"},
		{pem: cat(cert, encPKCS8), err: "the private key is encrypted (want an unencrypted private key)"},
		{pem: cat(cert, encLegacy), err: "the private key is encrypted (want an unencrypted private key)"},
		{pem: cat(cert, otherKey), err: "the private key does not match the certificate"},
		{pem: cat(badCert, key), err: "unusable certificate or key: x509: malformed certificate"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "s2s.pem"), tc.pem, 0o600); err != nil {
				t.Fatal(err)
			}
			name := filepath.Join(dir, "s2s.toml")
			c, err := Parse(name, []byte("certfile = \"s2s.pem\"\nuse_starttls = \"required\"\n"))
			if tc.good {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if want := filepath.Join(dir, "s2s.pem"); c.CertFile != want {
					t.Fatalf("CertFile = %q, want %q", c.CertFile, want)
				}
				return
			}
			want := name + `:1:12: s2s.certfile: "` + filepath.Join(dir, "s2s.pem") + `": ` + tc.err
			if err == nil || err.Error() != want {
				t.Fatalf("Parse error:\n got %v\nwant %s", err, want)
			}
			if !errors.Is(err, ErrCertFile) {
				t.Fatalf("error %v is not ErrCertFile", err)
			}
		})
	}
}

func TestCertFileTooLarge(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(path, make([]byte, maxCertFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Parse("s2s.toml", []byte(`certfile = "`+path+`"`))
	want := `s2s.toml:1:12: s2s.certfile: "` + path + `": larger than 1048576 bytes, not a PEM certificate and key`
	if err == nil || err.Error() != want || !errors.Is(err, ErrCertFile) {
		t.Fatalf("Parse error = %v, want %s", err, want)
	}
}
