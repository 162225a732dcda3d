package starttls

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ErrRoots is wrapped by the errors of LoadRoots and ParseRoots.
var ErrRoots = errors.New("starttls: unusable CA file")

// maxRoots bounds what LoadRoots reads: a bundle of every public root is
// about 250 KiB.
const maxRoots = 4 << 20

// LoadRoots reads a PEM file of CA certificates, the roots that
// use_starttls = "required_trusted" and SASL EXTERNAL check peer certificates
// against (s2s.Config.RootCAs). Only the CAs in the file are trusted, not the
// system's; to trust both, add the file's certificates to
// x509.SystemCertPool() with ParseRoots. The error wraps ErrRoots and names
// the file.
func LoadRoots(path string) (*x509.CertPool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRoots, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRoots+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRoots, path, err)
	}
	if len(data) > maxRoots {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrRoots, path, maxRoots)
	}
	pool := x509.NewCertPool()
	if err := ParseRoots(pool, data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pool, nil
}

// ParseRoots adds the CA certificates of PEM data to pool. Every PEM block
// must be a CERTIFICATE that parses and is a CA (basic constraints with
// cA true, as openssl's v3_ca extensions make it), and there must be at
// least one: a file that holds a private key or a leaf by mistake is an
// error, not a pool that trusts nothing. The error wraps ErrRoots.
func ParseRoots(pool *x509.CertPool, data []byte) error {
	n := 0
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		n++
		if block.Type != "CERTIFICATE" {
			// Never echo the block: it may be a private key.
			return fmt.Errorf("%w: PEM block %d is a %q, want CERTIFICATE", ErrRoots, n, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fmt.Errorf("%w: certificate %d: %w", ErrRoots, n, err)
		}
		if !c.IsCA {
			name := c.Subject.String()
			if len(c.DNSNames) > 0 {
				name = "DNS:" + strings.Join(c.DNSNames, ",")
			}
			return fmt.Errorf("%w: certificate %d (%s) is not a CA certificate: a server's own certificate goes in certfile", ErrRoots, n, name)
		}
		pool.AddCert(c)
	}
	if n == 0 {
		return fmt.Errorf("%w: no PEM certificate in it", ErrRoots)
	}
	return nil
}
