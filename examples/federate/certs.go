package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// pki is what writePKI leaves in its directory: the files an operator makes
// with openssl (README, "Trust for required_trusted"), here made in Go so
// that the demo needs nothing installed.
type pki struct {
	caFile    string    // the CA certificate: what -cafile and s2s.Config.RootCAs take
	certFiles [2]string // per server: its certificate, the CA's, then its key
}

// writePKI makes a throw-away CA and one certificate per server and writes
// them to dir as PEM files, in the layout the certfile option reads: the
// domain's certificate first, then its chain (here the CA itself; with
// intermediates, each of them, and the root may be left out), then the
// unencrypted private key.
//
// Each server's certificate names its domain and the domain's second one,
// more[i], as DNS names (RFC 6125 DNS-IDs): what lets another server
// authenticate both on one connection (XEP-0220 §4.4), and has both
// extended key usages a server-to-server certificate needs: TLS
// server authentication for the streams it accepts, and TLS client
// authentication for the streams it opens, where the peer checks it for
// SASL EXTERNAL (XEP-0178) and required_trusted.
func writePKI(dir string, domains, more [2]string) (pki, error) {
	var p pki
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return p, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "federate demo CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return p, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return p, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	p.caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(p.caFile, caPEM, 0o644); err != nil {
		return p, err
	}

	for i, d := range domains {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return p, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: d},
			DNSNames:     []string{d, more[i]},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return p, err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return p, err
		}
		var file []byte
		file = append(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
		file = append(file, caPEM...)
		file = append(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
		p.certFiles[i] = filepath.Join(dir, d+".pem")
		// The key is in this file: readable by its owner only.
		if err := os.WriteFile(p.certFiles[i], file, 0o600); err != nil {
			return p, err
		}
	}
	return p, nil
}

// serial returns a random 128-bit certificate serial number.
func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	return n
}
