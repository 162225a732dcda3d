package interop

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ProsodyConfig describes one Prosody instance.
type ProsodyConfig struct {
	// Domain is the VirtualHost Prosody serves.
	Domain string
	// TLS is "false" (mod_tls not loaded), "optional" or "required"
	// (s2s_require_encryption), matching our side's use_starttls.
	TLS string
	// SecureAuth sets s2s_secure_auth: peers must present a certificate
	// that chains to CAFile and names them.
	SecureAuth bool
	// CertPEM is the certificate chain and key for Domain, in one PEM; it
	// is needed unless TLS is "false".
	CertPEM []byte
	// CAPEM, if set, is the CA Prosody trusts for peers' certificates.
	CAPEM []byte
	// Routes tell Prosody where our domains listen for STARTTLS (the
	// _xmpp-server._tcp service).
	Routes []Route
	// DirectRoutes tell Prosody where our domains listen for direct TLS
	// (XEP-0368, the _xmpps-server._tcp service). A domain listed in only
	// one of Routes and DirectRoutes gets no target for the other service,
	// so Prosody cannot fall back to it.
	DirectRoutes []Route
	// DirectTLS opens a direct TLS port (s2s_direct_tls_ports) next to the
	// STARTTLS one; Prosody.DirectPort says where. It needs CertPEM.
	DirectTLS bool
	// SASLExternal loads mod_saslauth, which offers and uses SASL EXTERNAL
	// (XEP-0178) on s2s streams whose certificates Prosody trusts. Without
	// it Prosody authenticates s2s streams by dialback only.
	SASLExternal bool
	// Users, when set, opens a client (c2s) port with STARTTLS required
	// (Prosody.C2SPort, which needs CertPEM) and registers these accounts
	// on Domain, for real clients to log in with (see StartClient).
	Users []User
	// NoDialback leaves mod_dialback out (and disables it): Prosody then
	// neither offers nor uses Server Dialback, as a server set up for
	// certificates only is.
	NoDialback bool
	// Bidi loads mod_s2s_bidi (XEP-0288): Prosody offers bidirectional
	// streams to its peers and asks for them on the streams it opens.
	// Prosody 0.12 leaves it off unless configured.
	Bidi bool
	// MoreDomains are further VirtualHosts next to Domain, with the same
	// certificate (which should name them all), for tests of several
	// domain pairs on one stream.
	MoreDomains []string
	// StreamManagement loads mod_smacks (XEP-0198), which Prosody 0.12
	// ships: it offers SM on s2s streams once they are authenticated
	// (with dialback that is never, since the features came before; after
	// SASL EXTERNAL it is on the restarted stream) and enables it on its
	// outgoing streams when the peer offers it.
	StreamManagement bool
}

// User is an account on a peer's domain, for a client test.
type User struct {
	Name, Password string
}

// Prosody is a running Prosody. Stop it with the test's cleanup (Start
// registers that).
type Prosody struct {
	// Dir is the instance's directory: configuration, data, log.
	Dir string
	// Port is the s2s port on 127.0.0.1.
	Port int
	// DirectPort is the direct TLS s2s port on 127.0.0.1, or 0 when
	// ProsodyConfig.DirectTLS was false.
	DirectPort int
	// Domain is the served VirtualHost.
	Domain string
	// C2SPort is the client port on 127.0.0.1, or 0 when
	// ProsodyConfig.Users was empty.
	C2SPort int

	cfgPath string
	logPath string
	ctl     string
}

// interopModule replaces Prosody's SRV resolver for the domains listed in
// interop_routes (the xmpp-server service, STARTTLS) and
// interop_direct_routes (xmpps-server, direct TLS) with fixed addresses.
// Prosody 0.12 has no event before it resolves a peer, and mod_s2s looks
// service.new up on the shared module table at every connection, so
// replacing that function is the hook. A listed domain gets an empty answer
// for the service it has no route for, so that only the routes the test
// gave are tried.
const interopModule = `-- Written by the federation interop tests; loaded from their temp dir only.
local service = require "net.resolvers.service";
local basic = require "net.resolvers.basic";
local routes = module:get_option("interop_routes", {});
local direct_routes = module:get_option("interop_direct_routes", {});
local original = service.new;

local none = { next = function(_, cb) cb(nil); end };

service.new = function(hostname, service_name, proto, extra)
	if not routes[hostname] and not direct_routes[hostname] then
		return original(hostname, service_name, proto, extra);
	end
	local route;
	if service_name == "xmpp-server" then
		route = routes[hostname];
	elseif service_name == "xmpps-server" then
		route = direct_routes[hostname];
	end
	if not route then
		return none;
	end
	module:log("debug", "interop route for %s (%s): %s:%d", hostname, service_name, route[1], route[2]);
	return basic.new(route[1], route[2], proto, extra);
end

function module.unload()
	service.new = original;
end
`

// StartProsody writes a configuration for c under t.TempDir(), starts
// Prosody in the foreground as a child of the test, and waits until it
// listens. The test's cleanup stops it by PID and, when the test failed,
// prints its log.
func StartProsody(t testing.TB, c ProsodyConfig) *Prosody {
	t.Helper()
	bin := Binary(t, "prosody", "prosody")
	ctl := Binary(t, "prosodyctl", "prosody")
	dir := t.TempDir()
	p := &Prosody{
		Dir:     dir,
		Port:    FreePort(t),
		Domain:  c.Domain,
		cfgPath: filepath.Join(dir, "prosody.cfg.lua"),
		logPath: filepath.Join(dir, "prosody.log"),
		ctl:     ctl,
	}
	if c.DirectTLS {
		p.DirectPort = FreePort(t)
	}
	if len(c.Users) > 0 {
		p.C2SPort = FreePort(t)
	}
	cfg, err := p.write(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, u := range c.Users {
		// prosodyctl writes the account to the data directory; the
		// server reads it at login, so this may precede the start.
		cmd := exec.Command(ctl, "--config", p.cfgPath, "register", u.Name, c.Domain, u.Password)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("interop: prosodyctl register %s: %v\n%s", u.Name, err, out)
		}
	}

	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-F", "--config", p.cfgPath)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("interop: starting prosody: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(exited) }()
	t.Cleanup(func() {
		if err := stopPID(cmd.Process.Pid, 10*time.Second); err != nil {
			t.Error(err)
		}
		<-exited
		if t.Failed() {
			t.Logf("prosody %s log (%s):\n%s\n--- stdout/stderr:\n%s", c.Domain, p.logPath,
				logTail(p.logPath, logMax), logTail(filepath.Join(dir, "stdout.log"), logMax))
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), Startup)
	defer cancel()
	if err := waitListening(ctx, fmt.Sprintf("127.0.0.1:%d", p.Port), exited); err != nil {
		t.Fatalf("prosody: %v", err)
	}
	if p.DirectPort != 0 {
		if err := waitListening(ctx, fmt.Sprintf("127.0.0.1:%d", p.DirectPort), exited); err != nil {
			t.Fatalf("prosody direct TLS: %v", err)
		}
	}
	if p.C2SPort != 0 {
		if err := waitListening(ctx, fmt.Sprintf("127.0.0.1:%d", p.C2SPort), exited); err != nil {
			t.Fatalf("prosody c2s: %v", err)
		}
	}
	return p
}

func (p *Prosody) write(c ProsodyConfig) ([]byte, error) {
	dir := p.Dir
	for _, sub := range []string{"data", "plugins", "certs"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "plugins", "mod_interop_routes.lua"), []byte(interopModule), 0o644); err != nil {
		return nil, err
	}
	// An empty hosts file keeps libunbound from reading /etc/hosts; with
	// resolvconf off, nothing is asked of any DNS server.
	if err := os.WriteFile(filepath.Join(dir, "hosts"), nil, 0o644); err != nil {
		return nil, err
	}
	modules := []string{"ping", "admin_shell", "admin_socket", "interop_routes"}
	if !c.NoDialback {
		modules = append(modules, "dialback")
	}
	if c.TLS != "false" {
		modules = append(modules, "tls")
	}
	if c.SASLExternal || len(c.Users) > 0 {
		modules = append(modules, "saslauth")
	}
	if c.StreamManagement {
		modules = append(modules, "smacks")
	}
	if len(c.Users) > 0 {
		// Subscriptions need the roster; clients ask for disco#info.
		modules = append(modules, "roster", "disco")
	}
	if c.Bidi {
		modules = append(modules, "s2s_bidi")
	}
	var b bytes.Buffer
	f := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	f("-- Written by the federation interop tests.")
	f("pidfile = %s", quoted(filepath.Join(dir, "prosody.pid")))
	f("data_path = %s", quoted(filepath.Join(dir, "data")))
	f("admin_socket = %s", quoted(filepath.Join(dir, "data", "prosody.sock")))
	f("plugin_paths = { %s }", quoted(filepath.Join(dir, "plugins")))
	f("certificates = %s", quoted(filepath.Join(dir, "certs")))
	f("run_as_root = true")
	f("log = { { levels = { min = \"debug\" }, to = \"file\", filename = %s } }", quoted(p.logPath))
	f("unbound = { resolvconf = false; hoststxt = %s }", quoted(filepath.Join(dir, "hosts")))
	f("interfaces = { \"127.0.0.1\" }")
	if p.C2SPort != 0 {
		f("c2s_ports = { %d }", p.C2SPort)
		f("c2s_interfaces = { \"127.0.0.1\" }")
		f("c2s_require_encryption = true")
	} else {
		f("c2s_ports = {}")
	}
	f("c2s_direct_tls_ports = {}")
	f("s2s_ports = { %d }", p.Port)
	f("s2s_interfaces = { \"127.0.0.1\" }")
	if p.DirectPort != 0 {
		f("s2s_direct_tls_ports = { %d }", p.DirectPort)
		f("s2s_direct_tls_interfaces = { \"127.0.0.1\" }")
	} else {
		f("s2s_direct_tls_ports = {}")
	}
	f("http_ports = {}")
	f("https_ports = {}")
	f("s2s_require_encryption = %t", c.TLS == "required")
	f("s2s_secure_auth = %t", c.SecureAuth)
	f("s2s_timeout = 30")
	var mods []string
	for _, m := range modules {
		mods = append(mods, quoted(m))
	}
	f("modules_enabled = { %s }", strings.Join(mods, ", "))
	if c.NoDialback {
		f("modules_disabled = { \"dialback\" }")
	}
	f("interop_routes = {")
	for _, r := range c.Routes {
		f("\t[%s] = { %s, %d };", quoted(r.Domain), quoted(r.Host), r.Port)
	}
	f("}")
	f("interop_direct_routes = {")
	for _, r := range c.DirectRoutes {
		f("\t[%s] = { %s, %d };", quoted(r.Domain), quoted(r.Host), r.Port)
	}
	f("}")
	var ssl []string
	if len(c.CertPEM) > 0 {
		path := filepath.Join(dir, c.Domain+".pem")
		if err := os.WriteFile(path, c.CertPEM, 0o600); err != nil {
			return nil, err
		}
		ssl = append(ssl, "certificate = "+quoted(path), "key = "+quoted(path))
	}
	if len(c.CAPEM) > 0 {
		path := filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(path, c.CAPEM, 0o644); err != nil {
			return nil, err
		}
		ssl = append(ssl, "cafile = "+quoted(path))
	}
	if len(ssl) > 0 {
		f("ssl = { %s }", strings.Join(ssl, "; "))
	}
	for _, d := range append([]string{c.Domain}, c.MoreDomains...) {
		f("VirtualHost %s", quoted(d))
		if len(ssl) > 0 {
			f("\tssl = { %s }", strings.Join(ssl, "; "))
		}
	}
	return b.Bytes(), nil
}

// Ping runs `prosodyctl shell xmpp ping from to` against the instance: a
// XEP-0199 ping from one of Prosody's domains to a remote one. It returns
// the shell's output and an error when the ping failed (the shell's exit
// status counts the errors).
func (p *Prosody) Ping(ctx context.Context, from, to string) (string, error) {
	return p.Shell(ctx, "xmpp", "ping", from, to)
}

// Shell runs one prosodyctl shell command against the instance.
func (p *Prosody) Shell(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, p.ctl, append([]string{"--config", p.cfgPath, "shell"}, args...)...)
	cmd.Dir = p.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("interop: prosodyctl shell %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// Log returns Prosody's debug log so far.
func (p *Prosody) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}
