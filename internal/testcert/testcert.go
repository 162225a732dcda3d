package testcert

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// CA is an in-memory certificate authority. Its methods are safe for
// concurrent use; a CA is immutable once made.
type CA struct {
	// Cert is the CA's self-signed certificate.
	Cert *x509.Certificate
	key  crypto.Signer
}

// NewCA returns a fresh CA whose certificate is valid from an hour ago for
// ten years, with name as its subject common name ("federation test CA" when
// empty).
func NewCA(name string) (*CA, error) {
	if name == "" {
		name = "federation test CA"
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testcert: CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("testcert: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("testcert: CA certificate: %w", err)
	}
	return &CA{Cert: cert, key: key}, nil
}

// Pool returns a new pool holding only the CA's certificate, for use as the
// trusted roots of whoever should accept this CA's leaves.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// PEM returns the CA certificate PEM-encoded.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Options describe a leaf certificate. The zero value makes a certificate
// with no names at all, valid now, usable for both TLS server and client
// authentication.
type Options struct {
	// DNSNames are written as dNSName SANs (DNS-IDs); "*.example.org" is a
	// wildcard DNS-ID.
	DNSNames []string
	// SRVNames are domains written as SRVName otherName SANs (RFC 4985) for
	// the _xmpp-server service: "example.org" becomes
	// "_xmpp-server.example.org".
	SRVNames []string
	// XmppAddrs are written as id-on-xmppAddr otherName SANs
	// (OID 1.3.6.1.5.5.7.8.5), UTF-8 as RFC 6120 §13.7.1.4 says.
	XmppAddrs []string
	// CommonName is the subject CN. A certificate with a CN and no SANs is
	// the legacy "CN only" form.
	CommonName string
	// NotBefore and NotAfter bound validity. Zero values mean an hour ago
	// and a day from now; set NotAfter in the past for an expired
	// certificate.
	NotBefore, NotAfter time.Time
	// ExtKeyUsage lists the extended key usages; nil means both server and
	// client authentication, as s2s certificates serve both roles.
	ExtKeyUsage []x509.ExtKeyUsage
}

// Leaf is a generated certificate with its key in the forms callers need.
type Leaf struct {
	// Cert is the parsed leaf certificate.
	Cert *x509.Certificate
	// TLS holds the chain (leaf, then the issuing CA unless self-signed) and
	// the private key, ready for tls.Config.Certificates.
	TLS tls.Certificate
	// PEM is the chain followed by the PKCS #8 private key, unencrypted, in
	// one file: the layout the s2s certfile option expects.
	PEM []byte
}

// Leaf issues a certificate signed by ca.
func (ca *CA) Leaf(opts Options) (*Leaf, error) {
	return issue(opts, ca)
}

// SelfSigned makes a certificate that signs itself and chains to nothing.
func SelfSigned(opts Options) (*Leaf, error) {
	return issue(opts, nil)
}

func issue(opts Options, ca *CA) (*Leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testcert: leaf key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: opts.CommonName},
		NotBefore:    opts.NotBefore,
		NotAfter:     opts.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  opts.ExtKeyUsage,
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = now.Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = now.Add(24 * time.Hour)
	}
	if tmpl.ExtKeyUsage == nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	if len(opts.DNSNames)+len(opts.SRVNames)+len(opts.XmppAddrs) > 0 {
		ext, err := sanExtension(opts.DNSNames, opts.SRVNames, opts.XmppAddrs)
		if err != nil {
			return nil, fmt.Errorf("testcert: subjectAltName: %w", err)
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, ext)
	}
	parent, signer := tmpl, crypto.Signer(key)
	if ca != nil {
		parent, signer = ca.Cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("testcert: leaf certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("testcert: leaf certificate: %w", err)
	}
	chain := [][]byte{der}
	if ca != nil {
		chain = append(chain, ca.Cert.Raw)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("testcert: leaf key: %w", err)
	}
	var buf bytes.Buffer
	for _, c := range chain {
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c}); err != nil {
			return nil, err
		}
	}
	if err := pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}); err != nil {
		return nil, err
	}
	return &Leaf{
		Cert: cert,
		TLS:  tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: cert},
		PEM:  buf.Bytes(),
	}, nil
}

// serial returns a random 128-bit serial number, so that certificates made
// in one run never collide.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		// crypto/rand does not fail on supported platforms (Go 1.24+ crashes
		// the program instead), so this is unreachable in practice.
		panic(errors.Join(errors.New("testcert: serial"), err))
	}
	return n
}
