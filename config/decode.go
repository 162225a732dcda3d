package config

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/xmpp-s2s/federation/internal/domain"
)

// decoder turns the generic tree go-toml decodes into an S2S, checking each
// value and positioning each error.
type decoder struct {
	file  string    // name for errors
	dir   string    // where a relative certfile lives
	pos   positions // where each document path is written
	whole bool      // the section is the s2s table of a whole configuration
}

// The keys each table may hold, sorted, as error messages list them.
var (
	sectionKeys = []string{"address", "certfile", "ciphers", "default_policy", "dns",
		"host_policy", "max_retry_delay", "max_stanza_size", "outgoing", "shared", "use_starttls"}
	outgoingKeys   = []string{"connection_timeout", "ip_versions", "port"}
	dnsKeys        = []string{"retries", "timeout"}
	hostPolicyKeys = []string{"host", "policy"}
	addressKeys    = []string{"host", "ip_address", "port"}
)

// The allowed values of the enumerated options, as error messages list them.
const (
	wantPolicy = `"allow" or "deny"`
	wantMode   = `"false", "optional", "required" or "required_trusted"`
)

func (d *decoder) section(c *S2S, t map[string]any) error {
	for _, k := range d.keys(sectionKey, t) {
		path := keyPath(sectionKey, k)
		v := t[k]
		var err error
		switch k {
		case "default_policy":
			c.DefaultPolicy, err = d.policy(path, v)
		case "host_policy":
			c.HostPolicy, err = d.hostPolicies(path, v)
		case "use_starttls":
			c.UseStartTLS, err = d.mode(path, v)
		case "certfile":
			c.CertFile, err = d.certFile(path, v)
		case "shared":
			c.Shared, err = d.shared(path, v)
		case "address":
			c.Address, err = d.addresses(path, v)
		case "ciphers":
			c.Ciphers, err = d.str(path, v, "an OpenSSL cipher string")
		case "max_retry_delay":
			c.MaxRetryDelay, err = d.duration(path, v, time.Second, "seconds")
		case "max_stanza_size":
			c.MaxStanzaSize, err = d.maxStanzaSize(path, v)
		case "outgoing":
			err = d.outgoing(path, v, &c.Outgoing)
		case "dns":
			err = d.dns(path, v, &c.DNS)
		default:
			err = d.unknown(path, sectionKeys)
		}
		if err != nil {
			return err
		}
	}
	// Whether the mode has its certificate is checked where the host's
	// own certificate is known too (S2S.CheckCertFile); keep where the mode
	// was written, so that the error points at what asks for one.
	if pos, ok := d.pos.ofValue(d.docPath(keyPath(sectionKey, "use_starttls"))); ok {
		c.modeAt = place{file: d.file, line: pos.Line, column: pos.Column}
	}
	return nil
}

func (d *decoder) outgoing(path string, v any, o *Outgoing) error {
	t, err := d.table(path, v, "a table")
	if err != nil {
		return err
	}
	for _, k := range d.keys(path, t) {
		p := keyPath(path, k)
		v := t[k]
		switch k {
		case "port":
			o.Port, err = d.port(p, v)
		case "ip_versions":
			o.IPVersions, err = d.ipVersions(p, v)
		case "connection_timeout":
			o.ConnectionTimeout, err = d.connectionTimeout(p, v)
		default:
			err = d.unknown(p, outgoingKeys)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) dns(path string, v any, o *DNS) error {
	t, err := d.table(path, v, "a table")
	if err != nil {
		return err
	}
	for _, k := range d.keys(path, t) {
		p := keyPath(path, k)
		v := t[k]
		switch k {
		case "timeout":
			o.Timeout, err = d.duration(p, v, time.Second, "seconds")
		case "retries":
			var n int64
			n, err = d.positive(p, v, "attempts", math.MaxInt32)
			o.Retries = int(n)
		default:
			err = d.unknown(p, dnsKeys)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) policy(path string, v any) (string, error) {
	s, err := d.str(path, v, wantPolicy)
	if err != nil {
		return "", err
	}
	if s != "allow" && s != "deny" {
		return "", d.valueErr(path, ErrValue, "unknown policy %q (want %s)", s, wantPolicy)
	}
	return s, nil
}

func (d *decoder) mode(path string, v any) (string, error) {
	s, err := d.str(path, v, wantMode)
	if err != nil {
		return "", err
	}
	switch s {
	case "false", "optional", "required", "required_trusted":
		return s, nil
	}
	return "", d.valueErr(path, ErrValue, "unknown mode %q (want %s)", s, wantMode)
}

// shared never puts the value in a message: it is a secret.
func (d *decoder) shared(path string, v any) (Secret, error) {
	s, err := d.str(path, v, "a string")
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", d.valueErr(path, ErrValue, "empty (want a secret, or leave shared out for a random one)")
	}
	return Secret(s), nil
}

func (d *decoder) certFile(path string, v any) (string, error) {
	s, err := d.str(path, v, "a path to a PEM file")
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", d.valueErr(path, ErrCertFile, "empty (want a path to a PEM file with a certificate and its key)")
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(d.dir, s)
	}
	if err := checkCertFile(s); err != nil {
		return "", d.valueErr(path, fmt.Errorf("%w: %w", ErrCertFile, err), "%v", err)
	}
	return s, nil
}

// hostPolicies decodes host_policy; each host may appear once.
func (d *decoder) hostPolicies(path string, v any) ([]HostPolicy, error) {
	const form = `{host = "example.org", policy = "deny"}`
	const want = "an array of tables like " + form
	var out []HostPolicy
	hosts := make(map[string]string)
	err := d.entries(path, v, want, func(p string, t map[string]any) error {
		var h HostPolicy
		for _, k := range d.keys(p, t) {
			var err error
			switch k {
			case "host":
				h.Host, err = d.host(keyPath(p, k), t[k], hosts)
			case "policy":
				h.Policy, err = d.policy(keyPath(p, k), t[k])
			default:
				err = d.unknown(keyPath(p, k), hostPolicyKeys)
			}
			if err != nil {
				return err
			}
		}
		if err := d.require(p, t, form, hostPolicyKeys...); err != nil {
			return err
		}
		out = append(out, h)
		return nil
	})
	return out, err
}

// addresses decodes address; each host may appear once.
func (d *decoder) addresses(path string, v any) ([]Address, error) {
	const form = `{host = "example.org", ip_address = "192.0.2.1", port = 5269}`
	const want = "an array of tables like " + form
	var out []Address
	hosts := make(map[string]string)
	err := d.entries(path, v, want, func(p string, t map[string]any) error {
		var a Address
		for _, k := range d.keys(p, t) {
			var err error
			switch k {
			case "host":
				a.Host, err = d.host(keyPath(p, k), t[k], hosts)
			case "ip_address":
				a.IP, err = d.ip(keyPath(p, k), t[k])
			case "port":
				a.Port, err = d.port(keyPath(p, k), t[k])
			default:
				err = d.unknown(keyPath(p, k), addressKeys)
			}
			if err != nil {
				return err
			}
		}
		if err := d.require(p, t, form, "host", "ip_address"); err != nil {
			return err
		}
		out = append(out, a)
		return nil
	})
	return out, err
}

// entries calls f for every table of an array of tables.
func (d *decoder) entries(path string, v any, want string, f func(path string, t map[string]any) error) error {
	arr, ok := v.([]any)
	if !ok {
		return d.typeErr(path, v, want)
	}
	for i, e := range arr {
		p := indexPath(path, i)
		t, err := d.table(p, e, "a table")
		if err != nil {
			return err
		}
		if err := f(p, t); err != nil {
			return err
		}
	}
	return nil
}

// require reports the first of keys that t lacks.
func (d *decoder) require(path string, t map[string]any, form string, keys ...string) error {
	for _, k := range keys {
		if _, ok := t[k]; !ok {
			return d.keyErr(path, ErrMissingKey, "missing %s (want %s)", k, form)
		}
	}
	return nil
}

// host normalises a domain and rejects one already in seen, which maps each
// host to the path where it was first given.
func (d *decoder) host(path string, v any, seen map[string]string) (string, error) {
	s, err := d.str(path, v, "a domain name")
	if err != nil {
		return "", err
	}
	h, err := domain.Normalize(s)
	if err != nil {
		return "", d.valueErr(path, fmt.Errorf("%w: %w", ErrValue, err),
			`%v (want a domain name such as "example.org")`, err)
	}
	if first, ok := seen[h]; ok {
		return "", d.valueErr(path, ErrDuplicate, "duplicate host %q, already at %s (want each host once)", h, first)
	}
	seen[h] = path
	return h, nil
}

func (d *decoder) ip(path string, v any) (netip.Addr, error) {
	s, err := d.str(path, v, "an IPv4 or IPv6 address")
	if err != nil {
		return netip.Addr{}, err
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, d.valueErr(path, fmt.Errorf("%w: %w", ErrValue, err),
			`%q is not an IP address (want an IPv4 or IPv6 literal such as "192.0.2.1" or "2001:db8::1")`, s)
	}
	return ip, nil
}

func (d *decoder) port(path string, v any) (int, error) {
	n, err := d.integer(path, v, "a port number")
	if err != nil {
		return 0, err
	}
	if n < 1 || n > 65535 {
		return 0, d.valueErr(path, ErrValue, "port %d out of range (want 1..65535)", n)
	}
	return int(n), nil
}

func (d *decoder) ipVersions(path string, v any) ([]int, error) {
	const want = "an array of IP versions, 4 and 6, in order of preference"
	arr, ok := v.([]any)
	if !ok {
		return nil, d.typeErr(path, v, want)
	}
	if len(arr) == 0 {
		return nil, d.valueErr(path, ErrValue, "empty (want %s)", want)
	}
	out := make([]int, 0, len(arr))
	for i, e := range arr {
		p := indexPath(path, i)
		n, err := d.integer(p, e, "4 or 6")
		if err != nil {
			return nil, err
		}
		if n != 4 && n != 6 {
			return nil, d.valueErr(p, ErrValue, "unknown IP version %d (want 4 or 6)", n)
		}
		if slices.Contains(out, int(n)) {
			return nil, d.valueErr(p, ErrValue, "IP version %d repeated (want each of 4 and 6 at most once)", n)
		}
		out = append(out, int(n))
	}
	return out, nil
}

// connectionTimeout is a number of milliseconds or "infinity" (zero).
func (d *decoder) connectionTimeout(path string, v any) (time.Duration, error) {
	const want = `a positive number of milliseconds or "infinity"`
	if s, ok := v.(string); ok {
		if s != "infinity" {
			return 0, d.valueErr(path, ErrValue, "unknown value %q (want %s)", s, want)
		}
		return 0, nil
	}
	if _, ok := v.(int64); !ok {
		return 0, d.typeErr(path, v, want)
	}
	return d.duration(path, v, time.Millisecond, "milliseconds")
}

// maxStanzaSize is a number of bytes or "infinity" (zero), as MongooseIM's
// listener option of that name.
func (d *decoder) maxStanzaSize(path string, v any) (int64, error) {
	const want = `a positive number of bytes or "infinity"`
	if s, ok := v.(string); ok {
		if s != "infinity" {
			return 0, d.valueErr(path, ErrValue, "unknown value %q (want %s)", s, want)
		}
		return 0, nil
	}
	if _, ok := v.(int64); !ok {
		return 0, d.typeErr(path, v, want)
	}
	return d.positive(path, v, "bytes", math.MaxInt64)
}

// duration reads a positive integer count of unit.
func (d *decoder) duration(path string, v any, unit time.Duration, units string) (time.Duration, error) {
	n, err := d.positive(path, v, units, int64(math.MaxInt64/unit))
	return time.Duration(n) * unit, err
}

// positive reads an integer in 1..max; units names what it counts.
func (d *decoder) positive(path string, v any, units string, max int64) (int64, error) {
	n, err := d.integer(path, v, "a positive number of "+units)
	if err != nil {
		return 0, err
	}
	if n < 1 {
		return 0, d.valueErr(path, ErrValue, "%d is not positive (want %s, at least 1)", n, units)
	}
	if n > max {
		return 0, d.valueErr(path, ErrValue, "%d is too large (want %s, at most %d)", n, units, max)
	}
	return n, nil
}

func (d *decoder) integer(path string, v any, want string) (int64, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, d.typeErr(path, v, want)
	}
	return n, nil
}

func (d *decoder) str(path string, v any, want string) (string, error) {
	s, ok := v.(string)
	if !ok {
		if want[0] == '"' {
			want = "a string: " + want
		}
		return "", d.typeErr(path, v, want)
	}
	return s, nil
}

func (d *decoder) table(path string, v any, want string) (map[string]any, error) {
	t, ok := v.(map[string]any)
	if !ok {
		return nil, d.typeErr(path, v, want)
	}
	return t, nil
}

// keys returns the keys of t in the order they are written, so that the
// first problem reported is the first one in the file.
func (d *decoder) keys(path string, t map[string]any) []string {
	type keyAt struct {
		k   string
		off int
	}
	ks := make([]keyAt, 0, len(t))
	for k := range t {
		off := math.MaxInt
		if pos, ok := d.pos.ofKey(d.docPath(keyPath(path, k))); ok {
			off = pos.Offset
		}
		ks = append(ks, keyAt{k, off})
	}
	slices.SortFunc(ks, func(a, b keyAt) int {
		return cmp.Or(cmp.Compare(a.off, b.off), strings.Compare(a.k, b.k))
	})
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.k
	}
	return out
}

func (d *decoder) unknown(path string, allowed []string) error {
	return d.keyErr(path, ErrUnknownKey, "unknown key (want one of: %s)", strings.Join(allowed, ", "))
}

func (d *decoder) typeErr(path string, v any, want string) error {
	return d.valueErr(path, ErrType, "want %s, got %s", want, typeName(v))
}

// valueErr makes an Error positioned at the value of path.
func (d *decoder) valueErr(path string, err error, format string, args ...any) error {
	return d.errAt(path, d.pos.ofValue, err, format, args...)
}

// keyErr makes an Error positioned at the key of path.
func (d *decoder) keyErr(path string, err error, format string, args ...any) error {
	return d.errAt(path, d.pos.ofKey, err, format, args...)
}

func (d *decoder) errAt(path string, at func(string) (unstable.Position, bool), err error, format string, args ...any) error {
	e := &Error{File: d.file, Key: path, Msg: fmt.Sprintf(format, args...), Err: err}
	if pos, ok := at(d.docPath(path)); ok {
		e.Line, e.Column = pos.Line, pos.Column
	}
	return e
}

// docPath turns a path rooted at "s2s" into the document's own path: the
// same when the section is a table of a whole configuration, without the
// root when the document is just the section.
func (d *decoder) docPath(path string) string {
	if d.whole {
		return path
	}
	return strings.TrimPrefix(strings.TrimPrefix(path, sectionKey), ".")
}

// typeName names the TOML type of a value decoded by go-toml.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case toml.LocalDate, toml.LocalTime, toml.LocalDateTime, time.Time:
		return "a date or time"
	}
	return fmt.Sprintf("%T", v)
}
