package s2s

import "github.com/xmpp-s2s/federation/internal/domain"

// NormalizeDomain returns a domain name in the form the Manager uses for
// every domain it hands to the host (IsLocal, LinkInfo, events): lower-case
// A-labels without a trailing dot, so "Bücher.Example." becomes
// "xn--bcher-kva.example". A host normalises its own list of local domains
// with it, so that IsLocal can compare with ==. An IP address, an empty
// label or a name that IDNA refuses is an error.
func NormalizeDomain(name string) (string, error) { return domain.Normalize(name) }
