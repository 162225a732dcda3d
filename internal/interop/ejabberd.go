package interop

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// EjabberdConfig describes one ejabberd instance.
type EjabberdConfig struct {
	// Domain is the one host ejabberd serves.
	Domain string
	// TLS is s2s_use_starttls: "false", "optional" or "required".
	TLS string
	// CertPEM is the certificate chain and key for Domain in one PEM.
	// ejabberd reads certfiles even with TLS off, so it is always needed.
	CertPEM []byte
	// Routes tell ejabberd where our domains listen, as _xmpp-server._tcp
	// SRV records (STARTTLS).
	Routes []Route
	// DirectRoutes tell ejabberd where our domains listen for direct TLS,
	// as _xmpps-server._tcp SRV records (XEP-0368). ejabberd looks them up
	// only when s2s_use_starttls is not "false".
	DirectRoutes []Route
	// DirectTLS adds a second ejabberd_s2s_in listener with tls: true,
	// where TLS starts at once; Ejabberd.DirectPort says where.
	DirectTLS bool
	// Users, when set, adds a client (c2s) listener with STARTTLS
	// required (Ejabberd.C2SPort) and registers these accounts on Domain,
	// for real clients to log in with (see StartClient).
	Users []User
}

// Ejabberd is a running ejabberd. Stop it with the test's cleanup (Start
// registers that).
type Ejabberd struct {
	// Dir is the instance's directory: configuration, spool, logs.
	Dir string
	// Port is the s2s port on 127.0.0.1.
	Port int
	// DirectPort is the direct TLS s2s port on 127.0.0.1, or 0 when
	// EjabberdConfig.DirectTLS was false.
	DirectPort int
	// Domain is the served host.
	Domain string
	// C2SPort is the client port on 127.0.0.1, or 0 when
	// EjabberdConfig.Users was empty.
	C2SPort int

	ctl string
	env []string
}

// StartEjabberd writes a configuration for c under t.TempDir(), starts
// ejabberd with ejabberdctl, and waits until it has started and listens.
// The test's cleanup stops it, ends its Erlang VM and the epmd it started
// by PID, and prints its log when the test failed.
//
// ejabberdctl switches to the ejabberd user, so the test must run as root
// and the instance's directory is handed to that user.
func StartEjabberd(t testing.TB, c EjabberdConfig) *Ejabberd {
	t.Helper()
	ctl := Binary(t, "ejabberdctl", "ejabberd")
	RequireRoot(t, "ejabberdctl runs ejabberd as the ejabberd user")
	u, err := user.Lookup("ejabberd")
	if err != nil {
		missing(t, fmt.Sprintf("no ejabberd user (%v); install the Debian package \"ejabberd\"", err))
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)

	dir := t.TempDir()
	// t.TempDir's parent is private to root; the ejabberd user must be able
	// to walk into the instance directory.
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	e := &Ejabberd{Dir: dir, Port: FreePort(t), Domain: c.Domain, ctl: ctl}
	if c.DirectTLS {
		e.DirectPort = FreePort(t)
	}
	if len(c.Users) > 0 {
		e.C2SPort = FreePort(t)
	}
	epmdPort := FreePort(t)
	// A private epmd port keeps this Erlang node apart from any other on
	// the machine (a system ejabberd, a parallel test) and lets cleanup
	// find exactly the epmd this instance started.
	e.env = append(os.Environ(), "ERL_EPMD_PORT="+strconv.Itoa(epmdPort))
	if err := e.write(c, epmdPort); err != nil {
		t.Fatal(err)
	}
	if err := chownTree(dir, uid, gid); err != nil {
		t.Fatal(err)
	}

	logPath := filepath.Join(dir, "log", "ejabberd.log")
	t.Cleanup(func() {
		e.stop(t, epmdPort)
		if t.Failed() {
			t.Logf("ejabberd %s log (%s):\n%s\n--- error.log:\n%s", c.Domain, logPath,
				logTail(logPath, logMax), logTail(filepath.Join(dir, "log", "error.log"), logMax))
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), Startup)
	defer cancel()
	if out, err := e.Ctl(ctx, "start"); err != nil {
		t.Fatalf("ejabberdctl start: %v\n%s", err, out)
	}
	if out, err := e.Ctl(ctx, "started"); err != nil {
		t.Fatalf("ejabberdctl started: %v\n%s", err, out)
	}
	if err := waitListening(ctx, fmt.Sprintf("127.0.0.1:%d", e.Port), nil); err != nil {
		t.Fatalf("ejabberd: %v", err)
	}
	if e.DirectPort != 0 {
		if err := waitListening(ctx, fmt.Sprintf("127.0.0.1:%d", e.DirectPort), nil); err != nil {
			t.Fatalf("ejabberd direct TLS: %v", err)
		}
	}
	if e.C2SPort != 0 {
		if err := waitListening(ctx, fmt.Sprintf("127.0.0.1:%d", e.C2SPort), nil); err != nil {
			t.Fatalf("ejabberd c2s: %v", err)
		}
	}
	for _, u := range c.Users {
		if out, err := e.Ctl(ctx, "register", u.Name, c.Domain, u.Password); err != nil {
			t.Fatalf("ejabberdctl register %s: %v\n%s", u.Name, err, out)
		}
	}
	return e
}

func chownTree(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

func (e *Ejabberd) write(c EjabberdConfig, epmdPort int) error {
	dir := e.Dir
	for _, sub := range []string{"log", "spool"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	pem := filepath.Join(dir, c.Domain+".pem")
	if err := os.WriteFile(pem, c.CertPEM, 0o600); err != nil {
		return err
	}
	// Without resolv_conf "" Erlang re-reads /etc/resolv.conf after a few
	// seconds and drops the records added below.
	inetrc := "{lookup, [file, native]}.\n{resolv_conf, \"\"}.\n{hosts_file, \"\"}.\n"
	if err := os.WriteFile(filepath.Join(dir, "inetrc"), []byte(inetrc), 0o644); err != nil {
		return err
	}

	// ejabberdctl splits ERL_OPTIONS on spaces and applies no quoting, so
	// each -eval is one word, and the value is single-quoted for the shell
	// that sources the file.
	opts := []string{"-setcookie", "interop" + strconv.Itoa(epmdPort)}
	for _, set := range []struct {
		service string
		routes  []Route
	}{{"_xmpp-server", c.Routes}, {"_xmpps-server", c.DirectRoutes}} {
		for _, r := range set.routes {
			quoted(r.Domain)
			quoted(r.Host)
			opts = append(opts, fmt.Sprintf(`-eval inet_db:add_rr("%s._tcp.%s",in,srv,31536000,{0,0,%d,"%s"})`,
				set.service, r.Domain, r.Port, r.Host))
		}
	}
	var b bytes.Buffer
	f := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	f("# Written by the federation interop tests.")
	f("ERLANG_NODE=interop%d@localhost", epmdPort)
	f("INET_DIST_INTERFACE=127.0.0.1")
	f("ERL_EPMD_ADDRESS=127.0.0.1")
	f("EJABBERD_PID_PATH=%s", filepath.Join(dir, "ejabberd.pid"))
	f("ERL_OPTIONS='%s'", strings.Join(opts, " "))
	if err := os.WriteFile(filepath.Join(dir, "ejabberdctl.cfg"), b.Bytes(), 0o644); err != nil {
		return err
	}

	b.Reset()
	f("# Written by the federation interop tests.")
	f("hosts: [%s]", quoted(c.Domain))
	f("loglevel: debug")
	f("certfiles: [%s]", quoted(pem))
	f("listen:")
	f("  - port: %d", e.Port)
	f("    ip: \"127.0.0.1\"")
	f("    module: ejabberd_s2s_in")
	if e.C2SPort != 0 {
		f("  - port: %d", e.C2SPort)
		f("    ip: \"127.0.0.1\"")
		f("    module: ejabberd_c2s")
		f("    starttls_required: true")
	}
	if e.DirectPort != 0 {
		f("  - port: %d", e.DirectPort)
		f("    ip: \"127.0.0.1\"")
		f("    module: ejabberd_s2s_in")
		f("    tls: true")
	}
	f("s2s_use_starttls: %s", c.TLS)
	f("s2s_access: s2s")
	f("access_rules:")
	f("  s2s:")
	f("    allow: all")
	f("api_permissions:")
	f("  \"console commands\":")
	f("    from: [ejabberd_ctl]")
	f("    who: all")
	f("    what: \"*\"")
	f("outgoing_s2s_families: [ipv4]")
	f("s2s_dns_timeout: 2")
	f("s2s_dns_retries: 1")
	f("modules:")
	f("  mod_s2s_dialback: {}")
	f("  mod_ping: {}")
	f("  mod_admin_extra: {}")
	if len(c.Users) > 0 {
		// Subscriptions need the roster; clients ask for disco#info.
		f("  mod_roster: {}")
		f("  mod_disco: {}")
	}
	return os.WriteFile(filepath.Join(dir, "ejabberd.yml"), b.Bytes(), 0o644)
}

// Ctl runs one ejabberdctl command against the instance.
func (e *Ejabberd) Ctl(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"--config-dir", e.Dir, "--logs", filepath.Join(e.Dir, "log"),
		"--spool", filepath.Join(e.Dir, "spool")}, args...)
	cmd := exec.CommandContext(ctx, e.ctl, full...)
	cmd.Dir = e.Dir
	cmd.Env = e.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("interop: ejabberdctl %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// SendStanza makes ejabberd route raw from one of its domains
// (ejabberdctl send_stanza, from mod_admin_extra).
func (e *Ejabberd) SendStanza(ctx context.Context, from, to, raw string) error {
	out, err := e.Ctl(ctx, "send_stanza", from, to, raw)
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(out))
	}
	return nil
}

// Log returns ejabberd's log so far.
func (e *Ejabberd) Log() string {
	b, _ := os.ReadFile(filepath.Join(e.Dir, "log", "ejabberd.log"))
	return string(b)
}

// stop ends the instance: a clean ejabberdctl stop, then the VM and the
// epmd it started, by PID, whatever state they are in.
func (e *Ejabberd) stop(t testing.TB, epmdPort int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pid, perr := readPID(filepath.Join(e.Dir, "ejabberd.pid"))
	if out, err := e.Ctl(ctx, "stop"); err != nil && perr == nil && alive(pid) {
		t.Logf("ejabberdctl stop: %v\n%s", err, out)
	}
	if perr == nil {
		if err := stopPID(pid, 20*time.Second); err != nil {
			t.Error(err)
		}
	}
	for _, p := range epmdPIDs(epmdPort) {
		if err := stopPID(p, 5*time.Second); err != nil {
			t.Error(err)
		}
	}
}

// epmdPIDs finds the epmd processes started with our private port in their
// environment: Erlang starts epmd as a daemon and records its PID nowhere.
func epmdPIDs(port int) []int {
	want := []byte("ERL_EPMD_PORT=" + strconv.Itoa(port) + "\x00")
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "epmd" {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "environ"))
		if err != nil || !bytes.Contains(append(env, 0), want) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}
