package starttls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// DefaultCiphers is the default value of the ciphers option.
const DefaultCiphers = "TLSv1.2:TLSv1.3"

// ErrCiphers is wrapped by every error of ParseCiphers.
var ErrCiphers = errors.New("starttls: invalid cipher string")

// Ciphers is what a cipher string asks of crypto/tls: a version range and
// the TLS 1.2 cipher suites. The zero value means TLS 1.2 and 1.3 with Go's
// default suites, the same as DefaultCiphers.
//
// Go chooses TLS 1.3 suites itself and does not let them be configured, so
// Suites only ever holds TLS 1.2 suites and a cipher string cannot name
// TLS_AES_128_GCM_SHA256 and its kin. Go also orders suites itself, so the
// order of a cipher string does not matter.
type Ciphers struct {
	// MinVersion and MaxVersion bound the TLS versions (tls.VersionTLS12 or
	// tls.VersionTLS13); zero means TLS 1.2 and TLS 1.3 respectively.
	MinVersion, MaxVersion uint16
	// Suites are the TLS 1.2 suites allowed, in Go's IDs; nil means Go's
	// defaults.
	Suites []uint16
}

// suiteNames maps OpenSSL's names to the TLS 1.2 suites crypto/tls counts as
// secure (tls.CipherSuites). Suites Go calls insecure are left out on
// purpose: naming one is an error rather than a silent weakening.
var suiteNames = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
}

// allSuites is every suite of suiteNames in a fixed order, the universe that
// aliases and exclusions work on.
var allSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
}

// aliases are OpenSSL's group names, as subsets of allSuites. A group Go has
// no suite of (RC4, 3DES, aNULL, …) is the empty set: excluding it is
// exactly honoured, since Go never offers such a suite; including it alone
// leaves nothing and is reported as an error.
var aliases = map[string][]uint16{}

func init() {
	has := func(parts ...string) []uint16 {
		var ids []uint16
		for _, id := range allSuites {
			name := openSSLName(id)
			if !slices.ContainsFunc(parts, func(p string) bool { return strings.Contains(name, p) }) {
				continue
			}
			ids = append(ids, id)
		}
		return ids
	}
	for _, a := range []string{"DEFAULT", "ALL", "HIGH", "ECDHE", "EECDH", "kECDHE", "kEECDH"} {
		aliases[a] = slices.Clone(allSuites)
	}
	// FIPS 140 approves AES with ECDHE, not ChaCha20.
	aliases["FIPS"] = has("AES")
	aliases["aRSA"] = has("-RSA-")
	aliases["aECDSA"] = has("-ECDSA-")
	aliases["ECDSA"] = has("-ECDSA-")
	aliases["AESGCM"] = has("GCM")
	aliases["AES"] = has("AES")
	aliases["AES128"] = has("AES128")
	aliases["AES256"] = has("AES256")
	aliases["CHACHA20"] = has("CHACHA20")
	// OpenSSL's SHA1/SHA group is the suites with SHA-1 MACs: the CBC ones
	// whose names end in "-SHA".
	for _, id := range allSuites {
		if strings.HasSuffix(openSSLName(id), "-SHA") {
			aliases["SHA1"] = append(aliases["SHA1"], id)
		}
	}
	aliases["SHA"] = slices.Clone(aliases["SHA1"])
	aliases["SHA256"] = has("SHA256")
	aliases["SHA384"] = has("SHA384")
	for _, none := range []string{
		"aNULL", "eNULL", "NULL", "COMPLEMENTOFDEFAULT", "EXPORT", "EXP", "LOW", "MEDIUM",
		"RC4", "MD5", "DES", "3DES", "IDEA", "SEED", "CAMELLIA", "ARIA",
		"PSK", "SRP", "DSS", "aDSS", "ADH", "AECDH", "kRSA", "RSA", "kDHE", "EDH", "DHE",
	} {
		aliases[none] = []uint16{}
	}
}

// openSSLName returns the OpenSSL name of one of allSuites.
func openSSLName(id uint16) string {
	for name, v := range suiteNames {
		if v == id {
			return name
		}
	}
	return tls.CipherSuiteName(id)
}

// tls13Names are TLS 1.3 suites in the IANA spelling OpenSSL uses for them.
var tls13Names = map[string]bool{
	"TLS_AES_128_GCM_SHA256":       true,
	"TLS_AES_256_GCM_SHA384":       true,
	"TLS_CHACHA20_POLY1305_SHA256": true,
	"TLS_AES_128_CCM_SHA256":       true,
	"TLS_AES_128_CCM_8_SHA256":     true,
}

// versions are the version tokens. TLS 1.0 and 1.1 are refused, not
// ignored: RFC 8996 forbids them and RFC 7590 asks for TLS 1.2 at least.
var versions = map[string]uint16{
	"TLSv1.2": tls.VersionTLS12,
	"TLSv1.3": tls.VersionTLS13,
}

var oldVersions = map[string]bool{"SSLv2": true, "SSLv3": true, "TLSv1": true, "TLSv1.0": true, "TLSv1.1": true}

// ParseCiphers reads an OpenSSL cipher string as the ciphers option gives it.
//
// Tokens are separated by ':', ',' or spaces. A token is a version
// ("TLSv1.2", "TLSv1.3"), an OpenSSL suite name ("ECDHE-RSA-AES128-GCM-SHA256"),
// or a group name ("HIGH", "AESGCM", "ECDHE", "aRSA", "!aNULL" …). Versions
// listed set the version range (none listed: both); suites and groups
// listed set the TLS 1.2 suites (none listed: Go's defaults). A token
// prefixed with '-' removes what it names from what came before; one
// prefixed with '!' removes it for good, so later tokens cannot add it back.
// A list whose first suite (or version) token is an exclusion starts from
// all suites (or both versions), so "!aNULL:!SHA1" and "!TLSv1.3" mean what
// they say. DEFAULT, ALL and HIGH are every suite crypto/tls deems secure.
//
// Anything Go cannot honour is an error that names the token: unknown names,
// suites Go considers insecure or does not implement, TLS 1.3 suite names
// (Go does not let them be chosen), TLS 1.0 and 1.1, OpenSSL's ordering
// operators ('+', "@STRENGTH", "@SECLEVEL"), and strings that leave no
// version or no suite to use.
func ParseCiphers(s string) (Ciphers, error) {
	tokens := strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ',' || r == ' ' || r == '\t' })
	if len(tokens) == 0 {
		return Ciphers{}, fmt.Errorf("%w: %q is empty", ErrCiphers, s)
	}
	var (
		vers      map[uint16]bool // nil until a version token is seen
		banVers   = map[uint16]bool{}
		suites    []uint16
		banSuites = map[uint16]bool{}
		named     bool // a suite or group token was listed
		positive  bool // a suite or group was listed without '!' or '-'
	)
	for _, tok := range tokens {
		op, name := byte(0), tok
		if tok[0] == '!' || tok[0] == '-' || tok[0] == '+' {
			op, name = tok[0], tok[1:]
		}
		switch {
		case op == '+' || strings.HasPrefix(name, "@"):
			return Ciphers{}, fmt.Errorf("%w: %q: Go orders cipher suites itself, ordering cannot be honoured", ErrCiphers, tok)
		case name == "":
			return Ciphers{}, fmt.Errorf("%w: %q names nothing", ErrCiphers, tok)
		case oldVersions[name]:
			if op != 0 {
				continue // excluding what is never enabled is honoured as is
			}
			return Ciphers{}, fmt.Errorf("%w: %q: TLS below 1.2 is not supported (RFC 8996)", ErrCiphers, tok)
		case tls13Names[name]:
			return Ciphers{}, fmt.Errorf("%w: %q: Go does not let TLS 1.3 cipher suites be chosen", ErrCiphers, tok)
		}
		if v, ok := versions[name]; ok {
			if vers == nil {
				// As with suites: a list that starts by excluding works
				// on the default, one that starts by including on nothing.
				vers = map[uint16]bool{}
				if op != 0 {
					vers[tls.VersionTLS12], vers[tls.VersionTLS13] = true, true
				}
			}
			switch op {
			case 0:
				if !banVers[v] {
					vers[v] = true
				}
			case '!':
				banVers[v] = true
				delete(vers, v)
			case '-':
				delete(vers, v)
			}
			continue
		}
		var ids []uint16
		if id, ok := suiteNames[name]; ok {
			ids = []uint16{id}
		} else if group, ok := aliases[name]; ok {
			ids = group
		} else {
			return Ciphers{}, fmt.Errorf("%w: %q: %s", ErrCiphers, tok, unknownReason(name))
		}
		switch op {
		case 0:
			named, positive = true, true
			if len(ids) == 0 {
				return Ciphers{}, fmt.Errorf("%w: %q: Go supports no cipher suite of this group", ErrCiphers, tok)
			}
			for _, id := range ids {
				if !banSuites[id] && !slices.Contains(suites, id) {
					suites = append(suites, id)
				}
			}
		case '!', '-':
			if !named {
				// An exclusion before any inclusion works on the default
				// list, as "!aNULL:!MD5" alone means "defaults minus those"
				// to OpenSSL.
				suites = slices.Clone(allSuites)
				named = true
			}
			for _, id := range ids {
				if op == '!' {
					banSuites[id] = true
				}
				suites = slices.DeleteFunc(suites, func(s uint16) bool { return s == id })
			}
		}
	}

	var c Ciphers
	if vers == nil {
		vers = map[uint16]bool{tls.VersionTLS12: true, tls.VersionTLS13: true}
	}
	switch {
	case vers[tls.VersionTLS12] && vers[tls.VersionTLS13]:
		c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS13
	case vers[tls.VersionTLS12]:
		c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	case vers[tls.VersionTLS13]:
		c.MinVersion, c.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
	default:
		return Ciphers{}, fmt.Errorf("%w: %q leaves no TLS version", ErrCiphers, s)
	}
	if named {
		if len(suites) == 0 && c.MinVersion == tls.VersionTLS12 {
			return Ciphers{}, fmt.Errorf("%w: %q leaves no TLS 1.2 cipher suite; use \"TLSv1.3\" alone for TLS 1.3 only", ErrCiphers, s)
		}
		if c.MinVersion == tls.VersionTLS12 {
			c.Suites = suites
		}
	}
	// Only TLS 1.3: listing suites would change nothing, which the user
	// should hear about rather than believe they took effect.
	if c.MinVersion == tls.VersionTLS13 && positive {
		return Ciphers{}, fmt.Errorf("%w: %q names TLS 1.2 cipher suites but allows only TLS 1.3, whose suites Go chooses itself", ErrCiphers, s)
	}
	return c, nil
}

// insecureNames are the OpenSSL names of the suites crypto/tls implements
// but lists in tls.InsecureCipherSuites, so that naming one gets that
// reason rather than "unknown".
var insecureNames = map[string]uint16{
	"RC4-SHA":                   tls.TLS_RSA_WITH_RC4_128_SHA,
	"DES-CBC3-SHA":              tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
	"AES128-SHA":                tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	"AES128-SHA256":             tls.TLS_RSA_WITH_AES_128_CBC_SHA256,
	"AES128-GCM-SHA256":         tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":         tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-RC4-SHA":       tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA,
	"ECDHE-RSA-RC4-SHA":         tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA,
	"ECDHE-RSA-DES-CBC3-SHA":    tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA,
	"ECDHE-ECDSA-AES128-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	"ECDHE-RSA-AES128-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
}

// unknownReason says why a name is not accepted, telling Go's insecure and
// unimplemented suites apart from names that mean nothing.
func unknownReason(name string) string {
	switch {
	case insecureNames[name] != 0:
		return "Go considers this cipher suite insecure"
	case strings.HasPrefix(name, "TLS_"):
		return "use the OpenSSL spelling of TLS 1.2 suites, e.g. ECDHE-RSA-AES128-GCM-SHA256"
	case strings.Contains(name, "-"):
		return "not a cipher suite Go implements"
	}
	return "unknown cipher string token"
}

// String returns a cipher string that ParseCiphers reads back as c.
func (c Ciphers) String() string {
	var parts []string
	lo, hi := c.MinVersion, c.MaxVersion
	if lo == 0 {
		lo = tls.VersionTLS12
	}
	if hi == 0 {
		hi = tls.VersionTLS13
	}
	if lo <= tls.VersionTLS12 && hi >= tls.VersionTLS12 {
		parts = append(parts, "TLSv1.2")
	}
	if lo <= tls.VersionTLS13 && hi >= tls.VersionTLS13 {
		parts = append(parts, "TLSv1.3")
	}
	for _, id := range c.Suites {
		parts = append(parts, openSSLName(id))
	}
	return strings.Join(parts, ":")
}

// apply writes c into cfg.
func (c Ciphers) apply(cfg *tls.Config) {
	cfg.MinVersion, cfg.MaxVersion = c.MinVersion, c.MaxVersion
	if cfg.MinVersion == 0 {
		// Set explicitly rather than relying on Go's current default, which
		// a GODEBUG setting can lower.
		cfg.MinVersion = tls.VersionTLS12
	}
	if c.Suites != nil {
		cfg.CipherSuites = slices.Clone(c.Suites)
	}
}

// equal reports whether c and o allow the same versions and suites.
func (c Ciphers) equal(o Ciphers) bool {
	return c.MinVersion == o.MinVersion && c.MaxVersion == o.MaxVersion && slices.Equal(c.Suites, o.Suites)
}
