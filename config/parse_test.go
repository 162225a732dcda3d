package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/xmpp-s2s/federation/internal/domain"
)

// TestParseErrors is the table of mistakes an operator can make and the exact
// message they read for each.
func TestParseErrors(t *testing.T) {
	for i, tc := range []struct {
		in   string
		err  string
		is   error
		line int
	}{
		// Syntax, positioned by go-toml.
		{in: "default_policy = \n", is: ErrSyntax,
			err: "s2s.toml:1:18: invalid TOML: unexpected character U+000A at start of value"},
		{in: "dns.retries = 1\ndns.retries = 2\n", is: ErrSyntax,
			err: "s2s.toml:2:1: dns.retries: invalid TOML: key retries is already defined"},
		{in: "s2s = 1\n", is: ErrType,
			err: "s2s.toml:1:7: s2s: want a table, got an integer"},

		// Unknown keys, at every level.
		{in: "use_startls = \"required\"\n", is: ErrUnknownKey,
			err: "s2s.toml:1:1: s2s.use_startls: unknown key (want one of: address, certfile, ciphers, default_policy, dns, host_policy, max_retry_delay, max_stanza_size, outgoing, shared, use_starttls)"},
		{in: "[general]\nhosts = [\"a.example\"]\n\n[s2s]\n  outgoing.prot = 5270\n", is: ErrUnknownKey,
			err: "s2s.toml:5:12: s2s.outgoing.prot: unknown key (want one of: connection_timeout, ip_versions, port)"},
		{in: "[s2s.dns]\ntimeout = 1\nattempts = 3\n", is: ErrUnknownKey,
			err: "s2s.toml:3:1: s2s.dns.attempts: unknown key (want one of: retries, timeout)"},
		{in: "host_policy = [{host = \"a.example\", policy = \"deny\", weight = 1}]\n", is: ErrUnknownKey,
			err: "s2s.toml:1:54: s2s.host_policy[0].weight: unknown key (want one of: host, policy)"},
		{in: "[[address]]\nhost = \"a.example\"\nip_address = \"192.0.2.1\"\nip = \"192.0.2.2\"\n", is: ErrUnknownKey,
			err: "s2s.toml:4:1: s2s.address[0].ip: unknown key (want one of: host, ip_address, port)"},

		// Policies.
		{in: "default_policy = \"block\"\n", is: ErrValue,
			err: `s2s.toml:1:18: s2s.default_policy: unknown policy "block" (want "allow" or "deny")`},
		{in: "default_policy = false\n", is: ErrType,
			err: `s2s.toml:1:18: s2s.default_policy: want a string: "allow" or "deny", got a boolean`},
		{in: "host_policy = [\n  {host = \"a.example\", policy = \"allow\"},\n  {host = \"b.example\", policy = \"Deny\"},\n]\n", is: ErrValue,
			err: `s2s.toml:3:33: s2s.host_policy[1].policy: unknown policy "Deny" (want "allow" or "deny")`},
		{in: "host_policy = [{host = \"a.example\"}]\n", is: ErrMissingKey,
			err: `s2s.toml:1:16: s2s.host_policy[0]: missing policy (want {host = "example.org", policy = "deny"})`},
		{in: "host_policy = [{policy = \"deny\"}]\n", is: ErrMissingKey,
			err: `s2s.toml:1:16: s2s.host_policy[0]: missing host (want {host = "example.org", policy = "deny"})`},
		{in: "host_policy = {host = \"a.example\", policy = \"deny\"}\n", is: ErrType,
			err: `s2s.toml:1:15: s2s.host_policy: want an array of tables like {host = "example.org", policy = "deny"}, got a table`},
		{in: "host_policy = [\"a.example\"]\n", is: ErrType,
			err: `s2s.toml:1:16: s2s.host_policy[0]: want a table, got a string`},

		// Modes.
		{in: "[general]\nhosts = [\"a.example\"]\n[s2s]\nuse_starttls = \"requird\"\n", is: ErrValue,
			err: `s2s.toml:4:16: s2s.use_starttls: unknown mode "requird" (want "false", "optional", "required" or "required_trusted")`},
		{in: "use_starttls = false\n", is: ErrType,
			err: `s2s.toml:1:16: s2s.use_starttls: want a string: "false", "optional", "required" or "required_trusted", got a boolean`},

		// Duplicate and invalid hosts, compared after normalisation.
		{in: "host_policy = [\n  {host = \"Bücher.Example.\", policy = \"allow\"},\n  {host = \"xn--bcher-kva.example\", policy = \"deny\"},\n]\n", is: ErrDuplicate,
			err: `s2s.toml:3:11: s2s.host_policy[1].host: duplicate host "xn--bcher-kva.example", already at s2s.host_policy[0].host (want each host once)`},
		{in: "[[s2s.host_policy]]\nhost = \"A.example\"\npolicy = \"deny\"\n[[s2s.host_policy]]\nhost = \"b.example\"\npolicy = \"deny\"\n[[s2s.host_policy]]\nhost = \"a.example.\"\npolicy = \"allow\"\n", is: ErrDuplicate,
			err: `s2s.toml:8:8: s2s.host_policy[2].host: duplicate host "a.example", already at s2s.host_policy[0].host (want each host once)`},
		{in: "address = [\n  {host = \"a.example\", ip_address = \"192.0.2.1\"},\n  {host = \"A.EXAMPLE\", ip_address = \"192.0.2.2\"},\n]\n", is: ErrDuplicate,
			err: `s2s.toml:3:11: s2s.address[1].host: duplicate host "a.example", already at s2s.address[0].host (want each host once)`},
		{in: "host_policy = [{host = \"exa mple.org\", policy = \"deny\"}]\n", is: domain.ErrInvalid,
			err: `s2s.toml:1:24: s2s.host_policy[0].host: invalid domain: "exa mple.org": idna: disallowed rune U+0020 (want a domain name such as "example.org")`},
		{in: "address = [{host = \"192.0.2.1\", ip_address = \"192.0.2.1\"}]\n", is: domain.ErrInvalid,
			err: `s2s.toml:1:20: s2s.address[0].host: invalid domain: "192.0.2.1" is an IP address, not a domain name (want a domain name such as "example.org")`},
		{in: "address = [{host = \"\", ip_address = \"192.0.2.1\"}]\n", is: ErrValue,
			err: `s2s.toml:1:20: s2s.address[0].host: invalid domain: "" is empty (want a domain name such as "example.org")`},

		// Addresses and ports.
		{in: "address = [{host = \"a.example\", ip_address = \"192.0.2\"}]\n", is: ErrValue,
			err: `s2s.toml:1:46: s2s.address[0].ip_address: "192.0.2" is not an IP address (want an IPv4 or IPv6 literal such as "192.0.2.1" or "2001:db8::1")`},
		{in: "address = [{host = \"a.example\", ip_address = \"a.example\"}]\n", is: ErrValue,
			err: `s2s.toml:1:46: s2s.address[0].ip_address: "a.example" is not an IP address (want an IPv4 or IPv6 literal such as "192.0.2.1" or "2001:db8::1")`},
		{in: "address = [{host = \"a.example\"}]\n", is: ErrMissingKey,
			err: `s2s.toml:1:12: s2s.address[0]: missing ip_address (want {host = "example.org", ip_address = "192.0.2.1", port = 5269})`},
		{in: "address = [{host = \"a.example\", ip_address = \"::1\", port = 0}]\n", is: ErrValue,
			err: `s2s.toml:1:60: s2s.address[0].port: port 0 out of range (want 1..65535)`},
		{in: "address = [{host = \"a.example\", ip_address = \"::1\", port = 65_536}]\n", is: ErrValue,
			err: `s2s.toml:1:60: s2s.address[0].port: port 65536 out of range (want 1..65535)`},
		{in: "address = [{host = \"a.example\", ip_address = \"::1\", port = \"5269\"}]\n", is: ErrType,
			err: `s2s.toml:1:60: s2s.address[0].port: want a port number, got a string`},
		{in: "outgoing.port = -1\n", is: ErrValue,
			err: `s2s.toml:1:17: s2s.outgoing.port: port -1 out of range (want 1..65535)`},
		{in: "[s2s.outgoing]\nport = 5269.0\n", is: ErrType,
			err: `s2s.toml:2:8: s2s.outgoing.port: want a port number, got a float`},

		// IP versions.
		{in: "outgoing.ip_versions = []\n", is: ErrValue,
			err: `s2s.toml:1:24: s2s.outgoing.ip_versions: empty (want an array of IP versions, 4 and 6, in order of preference)`},
		{in: "outgoing.ip_versions = [6, 5]\n", is: ErrValue,
			err: `s2s.toml:1:28: s2s.outgoing.ip_versions[1]: unknown IP version 5 (want 4 or 6)`},
		{in: "outgoing.ip_versions = [4, 6, 4]\n", is: ErrValue,
			err: `s2s.toml:1:31: s2s.outgoing.ip_versions[2]: IP version 4 repeated (want each of 4 and 6 at most once)`},
		{in: "outgoing.ip_versions = 4\n", is: ErrType,
			err: `s2s.toml:1:24: s2s.outgoing.ip_versions: want an array of IP versions, 4 and 6, in order of preference, got an integer`},
		{in: "outgoing.ip_versions = [\"ipv4\"]\n", is: ErrType,
			err: `s2s.toml:1:25: s2s.outgoing.ip_versions[0]: want 4 or 6, got a string`},

		// Durations and counts.
		{in: "max_retry_delay = 0\n", is: ErrValue,
			err: `s2s.toml:1:19: s2s.max_retry_delay: 0 is not positive (want seconds, at least 1)`},
		{in: "max_retry_delay = \"300\"\n", is: ErrType,
			err: `s2s.toml:1:19: s2s.max_retry_delay: want a positive number of seconds, got a string`},
		{in: "max_retry_delay = 9_223_372_037\n", is: ErrValue,
			err: `s2s.toml:1:19: s2s.max_retry_delay: 9223372037 is too large (want seconds, at most 9223372036)`},
		{in: "outgoing.connection_timeout = -5\n", is: ErrValue,
			err: `s2s.toml:1:31: s2s.outgoing.connection_timeout: -5 is not positive (want milliseconds, at least 1)`},
		{in: "outgoing.connection_timeout = \"forever\"\n", is: ErrValue,
			err: `s2s.toml:1:31: s2s.outgoing.connection_timeout: unknown value "forever" (want a positive number of milliseconds or "infinity")`},
		{in: "outgoing.connection_timeout = 1.5\n", is: ErrType,
			err: `s2s.toml:1:31: s2s.outgoing.connection_timeout: want a positive number of milliseconds or "infinity", got a float`},
		{in: "dns.timeout = 0\n", is: ErrValue,
			err: `s2s.toml:1:15: s2s.dns.timeout: 0 is not positive (want seconds, at least 1)`},
		{in: "[dns]\nretries = -2\n", is: ErrValue,
			err: `s2s.toml:2:11: s2s.dns.retries: -2 is not positive (want attempts, at least 1)`},
		{in: "dns = 10\n", is: ErrType,
			err: `s2s.toml:1:7: s2s.dns: want a table, got an integer`},
		{in: "outgoing = [1]\n", is: ErrType,
			err: `s2s.toml:1:12: s2s.outgoing: want a table, got an array`},

		// Secrets and strings.
		{in: "shared = \"\"\n", is: ErrValue,
			err: `s2s.toml:1:10: s2s.shared: empty (want a secret, or leave shared out for a random one)`},
		{in: "shared = 1234\n", is: ErrType,
			err: `s2s.toml:1:10: s2s.shared: want a string, got an integer`},
		{in: "ciphers = [\"TLSv1.2\"]\n", is: ErrType,
			err: `s2s.toml:1:11: s2s.ciphers: want an OpenSSL cipher string, got an array`},
		{in: "ciphers = 1979-05-27\n", is: ErrType,
			err: `s2s.toml:1:11: s2s.ciphers: want an OpenSSL cipher string, got a date or time`},

		// The certificate file, located next to the configuration.
		{in: "certfile = \"\"\n", is: ErrCertFile,
			err: `s2s.toml:1:12: s2s.certfile: empty (want a path to a PEM file with a certificate and its key)`},
		{in: "certfile = \"no-such.pem\"\n", is: fs.ErrNotExist,
			err: `s2s.toml:1:12: s2s.certfile: "no-such.pem": no such file`},
		{in: "certfile = \"testdata\"\n", is: ErrCertFile,
			err: `s2s.toml:1:12: s2s.certfile: "testdata": cannot read: not a regular file`},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			c, err := Parse("s2s.toml", []byte(tc.in))
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want error %s", tc.in, c, tc.err)
			}
			if err.Error() != tc.err {
				t.Fatalf("Parse(%q) error:\n got %s\nwant %s", tc.in, err, tc.err)
			}
			if !errors.Is(err, tc.is) {
				t.Fatalf("Parse(%q) error %v is not %v", tc.in, err, tc.is)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != "s2s.toml" || e.Line == 0 || e.Column == 0 {
				t.Fatalf("Parse(%q) error %#v: want an *Error with file, line and column", tc.in, err)
			}
		})
	}
}

// TestParseForms checks the TOML spellings that must mean the same thing:
// dotted keys, sub-tables, arrays of tables, underscores in integers, a whole
// file or just the section.
func TestParseForms(t *testing.T) {
	want := Default()
	want.DefaultPolicy = "deny"
	want.HostPolicy = []HostPolicy{{"xn--bcher-kva.example", "allow"}, {"b.example", "deny"}}
	want.Outgoing = Outgoing{Port: 5270, IPVersions: []int{6, 4}}
	want.DNS = DNS{Timeout: 30 * time.Second, Retries: 3}
	want.MaxRetryDelay = 10_000 * time.Second
	want.Address = []Address{{Host: "b.example", IP: netip.MustParseAddr("2001:db8::1"), Port: 5299}}
	want.Shared = "s3cret"

	for i, in := range []string{
		// Just the section, dotted keys.
		`default_policy = "deny"
host_policy = [{host = "Bücher.Example.", policy = "allow"}, {host = "B.example", policy = "deny"}]
address = [{host = "b.example", ip_address = "2001:db8::1", port = 5299}]
shared = "s3cret"
max_retry_delay = 10_000
outgoing.port = 5270
outgoing.ip_versions = [6, 4]
outgoing.connection_timeout = "infinity"
dns.timeout = 30
dns.retries = 3
`,
		// A whole configuration, sub-tables and arrays of tables.
		`[general]
  hosts = ["localhost"]
  default_policy = "allow" # not ours: ignored

[s2s]
  default_policy = "deny"
  shared = "s3cret"
  max_retry_delay = 10000

[[s2s.host_policy]]
  host = "xn--bcher-kva.example"
  policy = "allow"

[[s2s.host_policy]]
  host = "b.example"
  policy = "deny"

[[s2s.address]]
  host = "b.example."
  ip_address = "2001:db8::1"
  port = 5299

[s2s.outgoing]
  port = 5_270
  ip_versions = [6, 4]
  connection_timeout = "infinity"

[s2s.dns]
  timeout = 30
  retries = 3

[modules.mod_ping]
`,
		// A whole configuration with dotted s2s keys at the top.
		`s2s.default_policy = "deny"
s2s.host_policy = [{host = "xn--BCHER-kva.example", policy = "allow"}, {host = "b.example", policy = "deny"}]
s2s.address = [{host = "b.example", ip_address = "2001:db8::1", port = 5299}]
s2s.shared = "s3cret"
s2s.max_retry_delay = 10_000
s2s.outgoing = {port = 5270, ip_versions = [6, 4], connection_timeout = "infinity"}
s2s.dns = {timeout = 30, retries = 3}
general.hosts = ["localhost"]
`,
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, err := Parse("s2s.toml", []byte(in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want.generated = got.generated
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Parse =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestConnectionTimeoutMilliseconds(t *testing.T) {
	c, err := Parse("s2s.toml", []byte("outgoing.connection_timeout = 10_001\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Outgoing.ConnectionTimeout != 10001*time.Millisecond {
		t.Fatalf("ConnectionTimeout = %v, want 10.001s", c.Outgoing.ConnectionTimeout)
	}
}

// TestErrorsNeverShowSecret makes sure no message quotes the dialback secret,
// whatever is wrong next to it.
func TestErrorsNeverShowSecret(t *testing.T) {
	const secret = "top-secret-value"
	for i, in := range []string{
		"shared = \"" + secret + "\"\nshared = \"" + secret + "\"\n",
		"shared = \"" + secret + "\"\nuse_starttls = \"yes\"\n",
		"shared = [\"" + secret + "\"]\n",
		"shared = {v = \"" + secret + "\"}\n",
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			_, err := Parse("s2s.toml", []byte(in))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error %q shows the secret", err)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	for i, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "a.toml", Line: 4, Column: 15, Key: "s2s.x", Msg: "m"}, "a.toml:4:15: s2s.x: m"},
		{Error{File: "a.toml", Key: "s2s.x", Msg: "m"}, "a.toml: s2s.x: m"},
		{Error{Line: 1, Column: 2, Key: "s2s.x", Msg: "m"}, "1:2: s2s.x: m"},
		{Error{Key: "s2s.x", Msg: "m"}, "s2s.x: m"},
		{Error{File: "a.toml", Msg: "m"}, "a.toml: m"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			if got := tc.e.Error(); got != tc.want {
				t.Fatalf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSyntaxErrorUnwrapsDecodeError(t *testing.T) {
	_, err := Parse("s2s.toml", []byte("a = [\n"))
	var de *toml.DecodeError
	if !errors.Is(err, ErrSyntax) || !errors.As(err, &de) {
		t.Fatalf("error %v: want ErrSyntax wrapping a *toml.DecodeError", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "missing.toml"))
	want := filepath.Join(dir, "missing.toml") + ": cannot read: no such file or directory"
	if err == nil || err.Error() != want || !errors.Is(err, ErrRead) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) error = %v, want %s wrapping ErrRead and fs.ErrNotExist", err, want)
	}

	path := filepath.Join(dir, "s2s.toml")
	if err := os.WriteFile(path, []byte("[s2s]\nuse_starttls = \"sometimes\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	want = path + `:2:16: s2s.use_starttls: unknown mode "sometimes" (want "false", "optional", "required" or "required_trusted")`
	if err == nil || err.Error() != want {
		t.Fatalf("Load error = %v, want %s", err, want)
	}
}

func TestClone(t *testing.T) {
	c := Default()
	c.HostPolicy = []HostPolicy{{"a.example", "deny"}}
	c.Address = []Address{{Host: "a.example", IP: netip.MustParseAddr("192.0.2.1")}}
	d := c.Clone()
	d.HostPolicy[0].Policy = "allow"
	d.Address[0].Port = 1
	d.Outgoing.IPVersions[0] = 6
	if c.HostPolicy[0].Policy != "deny" || c.Address[0].Port != 0 || c.Outgoing.IPVersions[0] != 4 {
		t.Fatalf("Clone shares slices with the original: %+v", c)
	}
}
