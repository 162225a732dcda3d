// Package domain normalises XMPP domain names the one way every package of the
// module compares them: lower-case A-labels (IDNA 2008 / UTS #46 lookup
// mapping), no trailing dot.
//
// Policy entries, address overrides, DNS queries and certificate checks all
// key on the same string, so a host written as "Bücher.Example." in a config
// file and "xn--bcher-kva.example" on the wire are one host everywhere.
package domain

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// ErrInvalid is wrapped by every error Normalize returns.
var ErrInvalid = errors.New("invalid domain")

// MaxInput is the longest name Normalize looks at, in bytes. A normalised
// domain has at most 253 bytes; its Unicode spelling can be a few times
// longer, never this long. Anything longer is refused before IDNA spends
// time on it: names come from peers, who may send megabytes.
const MaxInput = 1024

// profile is UTS #46 lookup processing plus the DNS length limits and the
// LDH rule, so that what we accept is also what DNS and TLS accept.
var profile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.VerifyDNSLength(true),
	idna.StrictDomainName(true),
	idna.Transitional(false),
)

// Normalize returns the canonical form of a domain name: lower-case A-labels
// without a trailing dot. It rejects the empty name, IP literals (an s2s peer
// is addressed by name), and anything IDNA or the DNS length rules refuse.
//
// A name already in canonical ASCII form is returned as it is, without
// allocating: every stanza's domains pass through here on the hot path.
func Normalize(name string) (string, error) {
	if isCanonicalASCII(name) {
		return name, nil
	}
	if len(name) > MaxInput {
		return "", fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalid, Clip(name), MaxInput)
	}
	orig := Clip(name)
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return "", fmt.Errorf("%w: %s is empty", ErrInvalid, orig)
	}
	if strings.HasSuffix(name, ".") {
		return "", fmt.Errorf("%w: %s has an empty label", ErrInvalid, orig)
	}
	if !utf8.ValidString(name) {
		// idna passes some invalid bytes through Punycode (U+FFFD), which
		// would make an A-label that is not a fixed point.
		return "", fmt.Errorf("%w: %s is not UTF-8", ErrInvalid, orig)
	}
	if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
		return "", fmt.Errorf("%w: %s is an IP address, not a domain name", ErrInvalid, orig)
	}
	a, err := profile.ToASCII(name)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %s", ErrInvalid, orig, ClipText(err.Error()))
	}
	return strings.ToLower(a), nil
}

// isCanonicalASCII reports whether name is certainly its own normal form:
// lower-case LDH labels of 1 to 63 bytes, no hyphen at either end of a label,
// none with hyphens in its third and fourth places (which covers A-labels,
// "xn--", whose Punycode only the full path checks), a top label that is not
// all digits (so no IP address), 253 bytes at most. Anything else takes the
// full IDNA path, which agrees on every name this accepts (FuzzCanonical).
func isCanonicalASCII(name string) bool {
	if len(name) == 0 || len(name) > 253 {
		return false
	}
	// One compare per lower-case letter (most of a name), the label's own
	// checks only at its end: this runs about ten times per stanza routed.
	start := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c-'a' < 26 || c-'0' < 10 || c == '-' {
			continue
		}
		if c != '.' || !ldhLabel(name[start:i]) {
			return false
		}
		start = i + 1
	}
	top := name[start:]
	if !ldhLabel(top) {
		return false
	}
	for i := 0; i < len(top); i++ {
		if top[i]-'0' >= 10 {
			return true
		}
	}
	return false // all digits
}

// ldhLabel reports whether l, made of lower-case letters, digits and
// hyphens, is a label isCanonicalASCII accepts: 1 to 63 bytes, no hyphen
// at either end, none in both its third and fourth places.
func ldhLabel(l string) bool {
	n := len(l)
	return n > 0 && n <= 63 && l[0] != '-' && l[n-1] != '-' && (n < 4 || l[2] != '-' || l[3] != '-')
}

// Unicode returns the U-label form of a normalised domain, for display.
// It returns name unchanged when it cannot be converted.
func Unicode(name string) string {
	u, err := idna.Display.ToUnicode(name)
	if err != nil {
		return name
	}
	return u
}
