package testcert

import (
	"crypto/x509/pkix"
	"encoding/asn1"
)

// OIDs of the otherName forms XMPP uses. They are repeated here rather than
// imported from the starttls package so that tests of that package's parser
// are checked against an independent encoder.
var (
	oidSAN      = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidXmppAddr = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5} // RFC 6120 §13.7.1.4
	oidSRVName  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7} // RFC 4985
)

// GeneralName tags (RFC 5280 §4.2.1.6), all context-specific.
const (
	tagOtherName = 0
	tagDNSName   = 2
)

// otherName is the inner SEQUENCE of an otherName GeneralName; Value is the
// [0] EXPLICIT wrapper around the typed string.
type otherName struct {
	TypeID asn1.ObjectIdentifier
	Value  asn1.RawValue
}

// sanExtension encodes a subjectAltName extension holding the given names.
// crypto/x509 can only write dNSName and a few other simple forms, and
// writing our own extension replaces its SAN entirely, so DNS names are
// written here too.
func sanExtension(dns, srv, xmppAddr []string) (pkix.Extension, error) {
	var names []asn1.RawValue
	for _, d := range dns {
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tagDNSName, Bytes: []byte(d)})
	}
	add := func(oid asn1.ObjectIdentifier, value string, stringTag string) error {
		inner, err := asn1.MarshalWithParams(value, stringTag)
		if err != nil {
			return err
		}
		seq, err := asn1.Marshal(otherName{
			TypeID: oid,
			Value:  asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: inner},
		})
		if err != nil {
			return err
		}
		// The GeneralName is [0] IMPLICIT: keep the SEQUENCE's content, swap
		// its tag. asn1.Unmarshal into a RawValue gives us that content.
		var raw asn1.RawValue
		if _, err := asn1.Unmarshal(seq, &raw); err != nil {
			return err
		}
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tagOtherName, IsCompound: true, Bytes: raw.Bytes})
		return nil
	}
	for _, s := range srv {
		if err := add(oidSRVName, "_xmpp-server."+s, "ia5"); err != nil {
			return pkix.Extension{}, err
		}
	}
	for _, x := range xmppAddr {
		if err := add(oidXmppAddr, x, "utf8"); err != nil {
			return pkix.Extension{}, err
		}
	}
	value, err := asn1.Marshal(names)
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: oidSAN, Value: value}, nil
}
