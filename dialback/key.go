package dialback

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"

	"github.com/xmpp-s2s/federation/internal/domain"
)

// Key returns the dialback key of XEP-0185 §3 for a stream: the lower-case
// hex HMAC-SHA256, keyed with the hex SHA-256 of secret, of receiving,
// originating and streamID joined by single spaces.
//
// The inputs are used exactly as given; [Secret] normalises the domains
// first. Key is safe for concurrent use.
func Key(secret, receiving, originating, streamID string) string {
	// XEP-0185 hashes the secret first so that the HMAC key has a fixed size
	// whatever the operator configured; the hex form is what everyone uses.
	sum := sha256.Sum256([]byte(secret))
	mac := hmac.New(sha256.New, []byte(hex.EncodeToString(sum[:])))
	for _, s := range [...]string{receiving, " ", originating, " ", streamID} {
		io.WriteString(mac, s)
	}
	return hex.EncodeToString(mac.Sum(nil))
}

// KeySource generates dialback keys. An authoritative server verifies a key
// by asking its KeySource for the key of the same inputs, so every node of a
// cluster that answers <db:verify> for the others must share one.
//
// receiving is the domain the key is presented to, originating the domain it
// authenticates, streamID the id the receiving server gave the stream.
// Implementations must be safe for concurrent use and must not put secret
// material in their errors.
type KeySource interface {
	Key(receiving, originating, streamID string) (string, error)
}

// Secret is a [KeySource] built from a shared secret, such as the `shared`
// option. It normalises both domains before computing [Key], so that a peer
// writing "Example.ORG" and one writing "example.org" get the same key.
//
// Every way of formatting a Secret (fmt verbs, log/slog, text marshalling)
// prints a fixed placeholder, so it cannot leak through a log line or an
// error message by accident. The empty Secret is a valid but weak secret.
type Secret string

const redacted = "[REDACTED]"

// Key implements [KeySource]. It fails only when a domain is not a valid
// domain name; the error wraps domain.ErrInvalid.
func (s Secret) Key(receiving, originating, streamID string) (string, error) {
	r, err := domain.Normalize(receiving)
	if err != nil {
		return "", fmt.Errorf("dialback: receiving domain: %w", err)
	}
	o, err := domain.Normalize(originating)
	if err != nil {
		return "", fmt.Errorf("dialback: originating domain: %w", err)
	}
	return Key(string(s), r, o, streamID), nil
}

// String returns a placeholder, never the secret.
func (Secret) String() string { return redacted }

// GoString returns a placeholder, never the secret, for %#v.
func (Secret) GoString() string { return redacted }

// Format writes a placeholder for every verb, so that %x or %q cannot
// bypass String.
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue implements [slog.LogValuer] with a placeholder.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText returns a placeholder, so JSON, TOML or XML dumps of a
// configuration do not contain the secret.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Check reports whether key is the key ks generates for the given inputs.
// The comparison takes the same time wherever the keys differ, so a peer
// cannot learn a valid key byte by byte. An empty key is never valid.
// When ks is a [KeyChecker] (a [Keyring] during a rotation), Check asks it.
func Check(ks KeySource, key, receiving, originating, streamID string) (bool, error) {
	if kc, ok := ks.(KeyChecker); ok {
		return kc.CheckKey(key, receiving, originating, streamID)
	}
	want, err := ks.Key(receiving, originating, streamID)
	if err != nil {
		return false, err
	}
	if key == "" {
		return false, nil
	}
	return subtle.ConstantTimeCompare([]byte(key), []byte(want)) == 1, nil
}
