package starttls

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// CertSource supplies the certificate we present, as TLS server on incoming
// streams and as TLS client on outgoing ones. It is asked once per
// handshake, so a source may change its answer at any time; it must be safe
// for concurrent use.
type CertSource interface {
	Certificate() (*tls.Certificate, error)
}

// CertFunc adapts a function to CertSource.
type CertFunc func() (*tls.Certificate, error)

// Certificate calls f.
func (f CertFunc) Certificate() (*tls.Certificate, error) { return f() }

// StaticCert is a CertSource that always returns the same certificate.
func StaticCert(c tls.Certificate) CertSource {
	return CertFunc(func() (*tls.Certificate, error) { return &c, nil })
}

// ErrCertFile is wrapped by the errors of loading a certfile.
var ErrCertFile = errors.New("starttls: certfile")

// CertFile is a CertSource backed by the certfile option: one PEM file with
// the certificate chain (leaf first) and an unencrypted private key.
//
// It reloads the file when its size or modification time changes, checked
// at most once per second on the handshake path, so a renewed certificate
// takes effect for new streams without a restart; streams already up keep
// theirs. If the changed file does not load (a renewal half written, say),
// the previous certificate stays in use and the load is tried again on the
// next check; Reload reports such errors. A CertFile is safe for
// concurrent use; use LoadCertFile to make one.
type CertFile struct {
	path string
	now  func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	size    int64
	mtime   time.Time
	checked time.Time
	lastErr error
}

// LoadCertFile loads the certfile at path. The error wraps ErrCertFile and
// names the path, never the key material.
func LoadCertFile(path string) (*CertFile, error) {
	f := &CertFile{path: path, now: time.Now}
	if err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Path returns the file's path.
func (f *CertFile) Path() string { return f.path }

// Reload reads the file now. On error the certificate in use does not
// change.
func (f *CertFile) Reload() error {
	fi, err := os.Stat(f.path)
	if err != nil {
		return f.fail(fmt.Errorf("%w: %w", ErrCertFile, err))
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return f.fail(fmt.Errorf("%w: %w", ErrCertFile, err))
	}
	cert, err := parseCertFile(data)
	if err != nil {
		return f.fail(fmt.Errorf("%w %s: %w", ErrCertFile, f.path, err))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cert, f.size, f.mtime, f.lastErr = cert, fi.Size(), fi.ModTime(), nil
	f.checked = f.now()
	return nil
}

func (f *CertFile) fail(err error) error {
	f.mu.Lock()
	f.lastErr = err
	f.checked = f.now()
	f.mu.Unlock()
	return err
}

// Err returns the error of the most recent failed load since the last
// successful one, or nil. It lets a host notice a broken renewal that the
// handshake path kept quiet about.
func (f *CertFile) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}

// Certificate returns the current certificate, reloading the file first if
// it changed. It implements CertSource.
func (f *CertFile) Certificate() (*tls.Certificate, error) {
	f.mu.Lock()
	due := f.now().Sub(f.checked) >= time.Second
	if due {
		f.checked = f.now()
	}
	cert, size, mtime := f.cert, f.size, f.mtime
	f.mu.Unlock()
	if due {
		// A stat per second at most: cheap, and no watcher goroutine to stop.
		if fi, err := os.Stat(f.path); err == nil && (fi.Size() != size || !fi.ModTime().Equal(mtime)) {
			if f.Reload() == nil {
				f.mu.Lock()
				cert = f.cert
				f.mu.Unlock()
			}
		}
	}
	if cert == nil {
		return nil, ErrNoCertificate
	}
	return cert, nil
}

// parseCertFile reads the chain and key from one PEM file. Unlike
// tls.X509KeyPair it says which part is missing, and it refuses encrypted
// keys with a clear message since certfile holds no passphrase.
func parseCertFile(data []byte) (*tls.Certificate, error) {
	if bytes.Contains(data, []byte("ENCRYPTED PRIVATE KEY")) || bytes.Contains(data, []byte("Proc-Type: 4,ENCRYPTED")) {
		return nil, errors.New("the private key is encrypted; certfile needs it unencrypted")
	}
	var certs, keys int
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE":
			certs++
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			keys++
		}
	}
	switch {
	case certs == 0:
		return nil, errors.New("no CERTIFICATE block")
	case keys == 0:
		return nil, errors.New("no PRIVATE KEY block")
	case keys > 1:
		return nil, fmt.Errorf("%d private keys; certfile holds exactly one", keys)
	}
	cert, err := tls.X509KeyPair(data, data)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, err
	}
	cert.Leaf = leaf
	return &cert, nil
}
