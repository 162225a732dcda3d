package config

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// S2S is the [s2s] section: typed, validated and with every absent option set
// to its default. Hosts are normalised with the module's one domain
// normalisation (lower-case A-labels, no trailing dot), so they can be
// compared with ==.
//
// The zero value is not a usable configuration (an empty policy, mode and
// secret); start from [Default], [Parse] or [Load]. An S2S holds slices: use
// [S2S.Clone] before handing a copy to code that may modify it. Reading an S2S
// from several goroutines is safe; modifying it while others read is not.
type S2S struct {
	// DefaultPolicy is "allow" or "deny": what applies to a remote host that
	// has no entry in HostPolicy. Default "allow".
	DefaultPolicy string

	// HostPolicy holds per-host entries in file order. Hosts are unique.
	// Default none.
	HostPolicy []HostPolicy

	// UseStartTLS is "false", "optional", "required" or "required_trusted".
	// Default "false".
	UseStartTLS string

	// CertFile is the PEM file holding the certificate chain and its
	// unencrypted private key. A relative path in a file is resolved against
	// the directory of that file, and stored resolved, so that the file that
	// was checked is the file that gets loaded. It was checked when it was
	// parsed: it exists, it is readable and its key matches its certificate.
	// Default "" (not set). A UseStartTLS other than "false" needs a
	// certificate: this one, or one the host gives in code
	// (s2s.Config.Certificate); see [S2S.CheckCertFile].
	CertFile string

	// Shared is the Server Dialback secret. Default: 10 bytes from
	// crypto/rand, hex-encoded, new on every call of Default, Parse and Load
	// (SharedGenerated tells such a value from one that was set).
	// It prints as a placeholder (Secret), so that logging the
	// configuration does not log it.
	Shared Secret

	// Address overrides DNS for the listed remote hosts, in file order.
	// Hosts are unique. Default none.
	Address []Address

	// Ciphers is an OpenSSL cipher string, kept as written; the starttls
	// package interprets it. Default "TLSv1.2:TLSv1.3".
	Ciphers string

	// MaxRetryDelay caps the doubling delay between connection attempts.
	// Always positive. Default 300 s.
	MaxRetryDelay time.Duration

	// Outgoing holds the options for links we open.
	Outgoing Outgoing

	// DNS holds the options for the lookups made before opening a link.
	DNS DNS

	// MaxStanzaSize is max_stanza_size: the largest element, in bytes as
	// received, that a peer may send on an incoming stream (the stream
	// header included); a larger one ends the stream with policy-violation.
	// Zero means "infinity" (no limit). Default 1 MiB: MongooseIM's
	// default is "infinity", but an unbounded element lets any peer that
	// can open a TCP connection make us buffer without end.
	MaxStanzaSize int64

	// generated is the secret Default drew, so that SharedGenerated can
	// tell it from a Shared that a document or a caller set since.
	generated string

	// modeAt is where use_starttls was written, for CheckCertFile's error;
	// zero when the value did not come from a document.
	modeAt place
}

// place is a position in a configuration file.
type place struct {
	file         string
	line, column int
}

// SharedGenerated reports whether Shared is the random secret that Default,
// Parse or Load drew because no shared option was given, and nobody set
// Shared since. A consumer that lives across loads (an s2s Manager) keeps
// its first random secret instead of each load's new one, so that reloading
// a file without shared does not change the secret.
func (c S2S) SharedGenerated() bool {
	return c.generated != "" && string(c.Shared) == c.generated
}

// CheckCertFile returns an *Error wrapping ErrCertFile when UseStartTLS is
// not "false" and CertFile is empty, positioned at use_starttls when c came
// from Parse or Load; otherwise nil.
//
// Parse and Load do not make this check, because a host may give the
// certificate in code instead (s2s.Config.Certificate): s2s.New and Reload
// make it when no certificate is given. A program whose certificate can only
// come from the file calls it right after Load, to report the problem with
// the file's other errors.
func (c S2S) CheckCertFile() error {
	if c.UseStartTLS == defaultUseStartTLS || c.UseStartTLS == "" || c.CertFile != "" {
		return nil
	}
	return &Error{
		File: c.modeAt.file, Line: c.modeAt.line, Column: c.modeAt.column,
		Key: keyPath(sectionKey, "use_starttls"),
		Msg: fmt.Sprintf(`mode %q needs a certificate (set s2s.certfile, give one in code with s2s.Config.Certificate, or use "false")`, c.UseStartTLS),
		Err: ErrCertFile,
	}
}

// HostPolicy is one entry of host_policy.
type HostPolicy struct {
	Host   string // normalised domain
	Policy string // "allow" or "deny"
}

// Address is one entry of address: where to connect for Host instead of
// asking DNS.
type Address struct {
	Host string     // normalised domain
	IP   netip.Addr // the literal given as ip_address
	Port int        // 1..65535, or 0 when not given: use Outgoing.Port
}

// Outgoing is the outgoing table of the section.
type Outgoing struct {
	// Port is the port used when DNS SRV gives none. Default 5269.
	Port int
	// IPVersions is the order of address families to try: a non-empty list
	// of 4 and 6, each at most once. Default [4, 6].
	IPVersions []int
	// ConnectionTimeout bounds one TCP connection attempt of an outgoing
	// link (DNS and stream negotiation have bounds of their own). Zero
	// means "infinity" (no bound). Default 10 s.
	ConnectionTimeout time.Duration
}

// DNS is the dns table of the section.
type DNS struct {
	// Timeout bounds one lookup attempt. Always positive. Default 10 s.
	Timeout time.Duration
	// Retries is the number of lookup attempts. Always positive. Default 2.
	Retries int
}

// The defaults of the options, as MongooseIM documents them.
const (
	defaultPolicy            = "allow"
	defaultUseStartTLS       = "false"
	defaultCiphers           = "TLSv1.2:TLSv1.3"
	defaultMaxRetryDelay     = 300 * time.Second
	defaultPort              = 5269
	defaultConnectionTimeout = 10 * time.Second
	defaultDNSTimeout        = 10 * time.Second
	defaultDNSRetries        = 2
	defaultMaxStanzaSize     = 1 << 20
)

// sharedBytes is how much randomness a generated dialback secret carries.
const sharedBytes = 10

// Default returns the configuration of an empty [s2s] section: every option at
// its default, with a freshly generated Shared secret.
func Default() S2S {
	shared := newShared()
	return S2S{
		generated:     string(shared),
		DefaultPolicy: defaultPolicy,
		UseStartTLS:   defaultUseStartTLS,
		Shared:        shared,
		Ciphers:       defaultCiphers,
		MaxRetryDelay: defaultMaxRetryDelay,
		Outgoing: Outgoing{
			Port:              defaultPort,
			IPVersions:        []int{4, 6},
			ConnectionTimeout: defaultConnectionTimeout,
		},
		DNS: DNS{
			Timeout: defaultDNSTimeout,
			Retries: defaultDNSRetries,
		},
		MaxStanzaSize: defaultMaxStanzaSize,
	}
}

// newShared draws a dialback secret. crypto/rand.Read never fails (it aborts
// the program instead), so there is no error to return.
func newShared() Secret {
	b := make([]byte, sharedBytes)
	_, _ = rand.Read(b)
	return Secret(hex.EncodeToString(b))
}

// Clone returns a deep copy of c: its slices are not shared with c.
func (c S2S) Clone() S2S {
	c.HostPolicy = slices.Clone(c.HostPolicy)
	c.Address = slices.Clone(c.Address)
	c.Outgoing.IPVersions = slices.Clone(c.Outgoing.IPVersions)
	return c
}
