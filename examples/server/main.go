package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // a listener failed
	exitUsage = 2 // bad flags, configuration or accounts: nothing was started
)

// shutdownGrace bounds the drain of the s2s queues at exit.
const shutdownGrace = 10 * time.Second

// users collects -user flags.
type users []string

func (u *users) String() string     { return strings.Join(*u, ",") }
func (u *users) Set(v string) error { *u = append(*u, v); return nil }

// run is the program: it returns the exit code. It prints where it listens
// on stdout, one line per listener, and logs to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "TOML `file` with a [server] table and an [s2s] section (required)")
	var us users
	fs.Var(&us, "user", "an account as `user@domain:password` (repeatable; adds to server.accounts)")
	verbose := fs.Bool("v", false, "log every routing decision, not only connections and bounces")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: server -config file [-user user@domain:password]... [-v]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *configPath == "" || fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	c, err := loadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	acc, err := loadAccounts(c, us)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	srv, err := newServer(c, acc, log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	c2s, err := net.Listen("tcp", c.C2SListen)
	if err != nil {
		fmt.Fprintln(stderr, err)
		srv.m.Close()
		return exitError
	}
	s2sLn, err := net.Listen("tcp", c.S2SListen)
	if err != nil {
		fmt.Fprintln(stderr, err)
		c2s.Close()
		srv.m.Close()
		return exitError
	}
	fmt.Fprintf(stdout, "c2s listening on %s\n", c2s.Addr())
	fmt.Fprintf(stdout, "s2s listening on %s\n", s2sLn.Addr())
	fmt.Fprintf(stdout, "serving %s with %d accounts\n", strings.Join(c.Domains, ", "), len(acc))

	errc := make(chan error, 1)
	go func() { errc <- srv.serve(c2s, s2sLn) }()
	code := exitOK
	select {
	case <-ctx.Done():
	case err := <-errc:
		fmt.Fprintln(stderr, err)
		code = exitError
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintln(stderr, "shutdown:", err)
	}
	fmt.Fprintln(stdout, "stopped")
	return code
}

// loadAccounts reads server.accounts and the -user flags.
func loadAccounts(c serverConfig, flags []string) (accounts, error) {
	domains := make(map[string]bool)
	for _, d := range c.Domains {
		domains[d] = true
	}
	acc := make(accounts)
	if c.Accounts != "" {
		if err := acc.load(c.Accounts, domains); err != nil {
			return nil, err
		}
	}
	for _, u := range flags {
		at := strings.IndexByte(u, '@')
		colon := strings.IndexByte(u[at+1:], ':')
		if at < 0 || colon < 0 {
			return nil, fmt.Errorf("-user %q: want user@domain:password", u)
		}
		colon += at + 1
		if err := acc.add("-user", u[:colon], u[colon+1:], domains); err != nil {
			return nil, err
		}
	}
	if len(acc) == 0 {
		return nil, errors.New("no accounts: give server.accounts in the configuration file or -user user@domain:password")
	}
	return acc, nil
}
