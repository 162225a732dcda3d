package starttls

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/xmpp-s2s/federation/internal/domain"
)

var (
	oidSAN      = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidXmppAddr = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5} // RFC 6120 §13.7.1.4
	oidSRVName  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7} // RFC 4985
)

// srvPrefix is the service label of an s2s SRV-ID (XEP-0178 §3).
const srvPrefix = "_xmpp-server."

// Identities are the names a certificate presents for XMPP server
// authentication, as RFC 6125 and XEP-0178 read them.
type Identities struct {
	// DNSIDs are the dNSName SANs, as written.
	DNSIDs []string
	// SRVIDs are the domains of SRVName SANs for the _xmpp-server service
	// (the service label removed); SRV-IDs of other services are left out.
	SRVIDs []string
	// XmppAddrs are the id-on-xmppAddr SANs, as written.
	XmppAddrs []string
	// CN is the subject common name. It counts only when the certificate
	// has none of the other three.
	CN string
}

// ErrBadSAN is wrapped by the errors of ParseIdentities when the
// subjectAltName extension cannot be decoded.
var ErrBadSAN = errors.New("starttls: malformed subjectAltName")

// ParseIdentities extracts the identities of cert. crypto/x509 parses
// dNSName but not otherName SANs, so the extension is decoded here from its
// raw bytes.
func ParseIdentities(cert *x509.Certificate) (Identities, error) {
	ids := Identities{CN: cert.Subject.CommonName}
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		if err := parseSAN(ext.Value, &ids); err != nil {
			return Identities{}, err
		}
	}
	return ids, nil
}

// parseSAN decodes a GeneralNames SEQUENCE (RFC 5280 §4.2.1.6) into ids.
func parseSAN(der []byte, ids *Identities) error {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(der, &seq)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSAN, err)
	}
	if len(rest) > 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return fmt.Errorf("%w: not a SEQUENCE", ErrBadSAN)
	}
	for b := seq.Bytes; len(b) > 0; {
		var gn asn1.RawValue
		b, err = asn1.Unmarshal(b, &gn)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadSAN, err)
		}
		if gn.Class != asn1.ClassContextSpecific {
			return fmt.Errorf("%w: GeneralName with class %d", ErrBadSAN, gn.Class)
		}
		switch gn.Tag {
		case 2: // dNSName [2] IMPLICIT IA5String
			ids.DNSIDs = append(ids.DNSIDs, string(gn.Bytes))
		case 0: // otherName [0] IMPLICIT SEQUENCE { type-id, [0] EXPLICIT value }
			if err := parseOtherName(gn.Bytes, ids); err != nil {
				return err
			}
		}
	}
	return nil
}

func parseOtherName(b []byte, ids *Identities) error {
	var oid asn1.ObjectIdentifier
	rest, err := asn1.Unmarshal(b, &oid)
	if err != nil {
		return fmt.Errorf("%w: otherName type: %w", ErrBadSAN, err)
	}
	var wrapped asn1.RawValue
	if rest, err = asn1.Unmarshal(rest, &wrapped); err != nil {
		return fmt.Errorf("%w: otherName value: %w", ErrBadSAN, err)
	}
	if len(rest) > 0 || wrapped.Class != asn1.ClassContextSpecific || wrapped.Tag != 0 || !wrapped.IsCompound {
		return fmt.Errorf("%w: otherName value is not [0] EXPLICIT", ErrBadSAN)
	}
	var want int
	switch {
	case oid.Equal(oidXmppAddr):
		want = asn1.TagUTF8String
	case oid.Equal(oidSRVName):
		want = asn1.TagIA5String
	default:
		return nil // some other otherName; not ours to judge
	}
	var v asn1.RawValue
	if rest, err = asn1.Unmarshal(wrapped.Bytes, &v); err != nil {
		return fmt.Errorf("%w: otherName string: %w", ErrBadSAN, err)
	}
	if len(rest) > 0 || v.Class != asn1.ClassUniversal || v.Tag != want || v.IsCompound {
		return fmt.Errorf("%w: otherName %v has the wrong string type", ErrBadSAN, oid)
	}
	s := string(v.Bytes)
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: otherName %v is not valid UTF-8", ErrBadSAN, oid)
	}
	if want == asn1.TagUTF8String {
		ids.XmppAddrs = append(ids.XmppAddrs, s)
		return nil
	}
	// Service labels compare case-insensitively, like all DNS labels.
	if len(s) > len(srvPrefix) && strings.EqualFold(s[:len(srvPrefix)], srvPrefix) {
		ids.SRVIDs = append(ids.SRVIDs, s[len(srvPrefix):])
	}
	return nil
}

// Match reports which identity names the domain, which must already be
// normalised (domain.Normalize): the kind ("DNS-ID", "SRV-ID", "XmppAddr",
// "CN") and the presented value, or ok false if none does.
//
// The rules are RFC 6125 §6 as XEP-0178 applies them: names compare as
// lower-case A-labels; a DNS-ID may be a wildcard only as its whole
// left-most label, which then matches exactly one label and never a public
// suffix of one label ("*.org"); SRV-IDs and XmppAddrs never contain
// wildcards; an XmppAddr must be a bare domain (no localpart or resource);
// the CN is consulted only when the certificate presents no DNS-ID, SRV-ID
// or XmppAddr, and compares exactly.
func (ids Identities) Match(name string) (kind, value string, ok bool) {
	for _, d := range ids.DNSIDs {
		if matchDNS(d, name) {
			return "DNS-ID", d, true
		}
	}
	for _, s := range ids.SRVIDs {
		if same(s, name) {
			return "SRV-ID", srvPrefix + s, true
		}
	}
	for _, x := range ids.XmppAddrs {
		if strings.ContainsAny(x, "@/") {
			continue
		}
		if same(x, name) {
			return "XmppAddr", x, true
		}
	}
	if len(ids.DNSIDs)+len(ids.SRVIDs)+len(ids.XmppAddrs) == 0 && ids.CN != "" && same(ids.CN, name) {
		return "CN", ids.CN, true
	}
	return "", "", false
}

// same compares a presented name with a normalised reference name.
func same(presented, ref string) bool {
	n, err := domain.Normalize(presented)
	return err == nil && n == ref
}

func matchDNS(presented, ref string) bool {
	rest, wild := strings.CutPrefix(presented, "*.")
	if !wild {
		return same(presented, ref)
	}
	// A wildcard of a single-label parent would cover a whole TLD.
	if !strings.Contains(rest, ".") {
		return false
	}
	_, refParent, ok := strings.Cut(ref, ".")
	return ok && same(rest, refParent)
}

// String lists the identities for error messages.
func (ids Identities) String() string {
	var parts []string
	for _, d := range ids.DNSIDs {
		parts = append(parts, "DNS-ID "+d)
	}
	for _, s := range ids.SRVIDs {
		parts = append(parts, "SRV-ID "+srvPrefix+s)
	}
	for _, x := range ids.XmppAddrs {
		parts = append(parts, "XmppAddr "+x)
	}
	if len(parts) == 0 {
		if ids.CN == "" {
			return "no names"
		}
		return "CN " + ids.CN
	}
	if ids.CN != "" {
		parts = append(parts, "CN "+ids.CN+" (ignored: SANs present)")
	}
	return strings.Join(parts, ", ")
}

// VerifyName checks that cert names domain, per RFC 6125 and XEP-0178 (see
// Identities.Match). It checks the name only, not the chain or validity.
// The error wraps ErrNameMismatch, ErrBadSAN, or domain.ErrInvalid for a
// domain that is not a valid name.
func VerifyName(cert *x509.Certificate, name string) error {
	ref, err := domain.Normalize(name)
	if err != nil {
		return fmt.Errorf("starttls: reference name: %w", err)
	}
	ids, err := ParseIdentities(cert)
	if err != nil {
		return err
	}
	if _, _, ok := ids.Match(ref); !ok {
		return fmt.Errorf("%w: %s is not among its names (%s)", ErrNameMismatch, ref, ids)
	}
	return nil
}
