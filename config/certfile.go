package config

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// maxCertFile bounds what checkCertFile reads. A PEM chain with its key is a
// few kilobytes; the bound keeps a mistyped path (a log file, a device) from
// being read whole.
const maxCertFile = 1 << 20

// checkCertFile checks at load time what the TLS code will need at run time:
// the file exists and is readable, holds a certificate and an unencrypted
// private key, and the key belongs to the (first, leaf) certificate.
// tls.X509KeyPair is the final judge; the PEM scan before it exists to say
// precisely what is wrong. Messages name the file but never key material.
func checkCertFile(path string) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &certError{fmt.Sprintf("%q: no such file", path), err}
	case err != nil:
		return fmt.Errorf("%q: cannot read: %w", path, unwrapPath(err))
	case !st.Mode().IsRegular():
		return fmt.Errorf("%q: cannot read: not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%q: cannot read: %w", path, unwrapPath(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCertFile+1))
	if err != nil {
		return fmt.Errorf("%q: cannot read: %w", path, unwrapPath(err))
	}
	if len(data) > maxCertFile {
		return fmt.Errorf("%q: larger than %d bytes, not a PEM certificate and key", path, maxCertFile)
	}

	var haveCert, haveKey bool
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE":
			haveCert = true
		case strings.HasSuffix(b.Type, "PRIVATE KEY") && !haveKey:
			// The first key block is the one tls.X509KeyPair takes.
			haveKey = true
			if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
				return fmt.Errorf("%q: the private key is encrypted (want an unencrypted private key)", path)
			}
		}
	}
	if !haveCert {
		return fmt.Errorf("%q: no certificate (want a PEM CERTIFICATE block)", path)
	}
	if !haveKey {
		return fmt.Errorf("%q: no private key (want an unencrypted PEM private key block)", path)
	}
	if _, err := tls.X509KeyPair(data, data); err != nil {
		// crypto/tls has no sentinel for a mismatch, only this text.
		if strings.Contains(err.Error(), "does not match") {
			return fmt.Errorf("%q: the private key does not match the certificate", path)
		}
		return fmt.Errorf("%q: unusable certificate or key: %w", path, err)
	}
	return nil
}

// unwrapPath drops the *fs.PathError around an error: the path is already
// in the message.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// certError is a message for the operator that still unwraps to its cause
// (fs.ErrNotExist, …) without repeating the cause's text.
type certError struct {
	msg   string
	cause error
}

func (e *certError) Error() string { return e.msg }
func (e *certError) Unwrap() error { return e.cause }
