package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/s2s"
)

// writeConfig writes an [s2s] section sending domain to addr, with the
// plain stream (use_starttls = "false") so no certificate is needed.
func writeConfig(t *testing.T, domain, addr string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p := filepath.Join(t.TempDir(), "s2s.toml")
	toml := "[s2s]\nuse_starttls = \"false\"\naddress = [{host = \"" + domain + "\", ip_address = \"" + host + "\", port = " + port + "}]\n"
	if err := os.WriteFile(p, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExitCodes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()
	cfg := writeConfig(t, "down.example", refused)
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up, err := s2s.New(s2s.Config{S2S: config.Default(), IsLocal: func(d string) bool { return d == "up.example" },
		Deliver: func(s2s.Stanza) {}, Bounce: func(s2s.Bounce) {}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	go up.Serve(upLn)
	t.Cleanup(func() { up.Close() })
	upCfg := writeConfig(t, "up.example", upLn.Addr().String())
	for i, tc := range []struct {
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{[]string{"down.example"}, exitUsage, "", "usage: diagnose -from LOCAL"},
		{[]string{"-from", "a.example"}, exitUsage, "", "usage:"},
		{[]string{"-from", "a.example", "-nosuchflag", "x.example"}, exitUsage, "", "flag provided but not defined"},
		{[]string{"-from", "a.example", "-config", "/nonexistent.toml", "x.example"}, exitUsage, "", "/nonexistent.toml"},
		{[]string{"-from", "a..example", "-config", cfg, "down.example"}, exitUsage, "", "local domain"},
		{[]string{"-from", "a.example", "-config", cfg, "-timeout", "5s", "down.example"}, exitFailed,
			"FAIL  TCP connect", ""},
		{[]string{"-from", "a.example", "-config", upCfg, "-timeout", "5s", "up.example"}, exitOK,
			"a.example can federate with up.example", ""},
		{[]string{"-from", "a.example", "-config", cfg, "-json", "-timeout", "5s", "down.example"}, exitFailed,
			`"can_federate": false`, ""},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var stdout, stderr strings.Builder
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			code := run(ctx, tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.err) {
				t.Errorf("run(%q) = %d, want %d\nstdout:\n%s\nstderr:\n%s", tc.args, code, tc.code, stdout.String(), stderr.String())
			}
			if strings.Contains(strings.Join(tc.args, " "), "-json") {
				var v map[string]any
				if err := json.Unmarshal([]byte(stdout.String()), &v); err != nil {
					t.Errorf("not JSON: %v", err)
				}
			}
		})
	}
}
