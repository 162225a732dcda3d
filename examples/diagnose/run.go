package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/xmpp-s2s/federation/config"
	"github.com/xmpp-s2s/federation/diagnose"
)

// Exit codes.
const (
	exitOK     = 0 // the domain can federate
	exitFailed = 1 // it cannot: the report says why
	exitUsage  = 2 // bad flags, arguments or configuration
)

// run is the command without the process around it, for tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("diagnose", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "our `domain` (required)")
	cfgFile := fs.String("config", "", "the [s2s] configuration `file` of the local server")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	cafile := fs.String("cafile", "", "PEM `file` of roots to trust instead of the system's")
	auth := fs.Bool("auth", false, "attempt authentication; the local domain's running server must share -config's secret")
	listen := fs.String("listen", "", "serve the local domain's s2s port on `addr` during the diagnosis (implies -auth)")
	timeout := fs.Duration("timeout", 0, "bound of each step's network work (0: outgoing.connection_timeout)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: diagnose -from LOCAL [-config FILE] [-json] [-cafile FILE] [-auth] [-listen ADDR] [-timeout D] DOMAIN")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *from == "" || fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	cfg := diagnose.Config{Authenticate: *auth || *listen != "", Timeout: *timeout}
	var err error
	if *cfgFile != "" {
		cfg.S2S, err = config.Load(*cfgFile)
	} else {
		cfg.S2S = config.Default()
	}
	if err != nil {
		fmt.Fprintln(stderr, "diagnose:", err)
		return exitUsage
	}
	if *cafile != "" {
		pem, err := os.ReadFile(*cafile)
		if err != nil {
			fmt.Fprintln(stderr, "diagnose:", err)
			return exitUsage
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			fmt.Fprintf(stderr, "diagnose: -cafile %s: no PEM certificate in it\n", *cafile)
			return exitUsage
		}
	}
	if *listen != "" {
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			fmt.Fprintln(stderr, "diagnose:", err)
			return exitUsage
		}
		cfg.Listener = ln
	}
	rep, err := diagnose.Run(ctx, cfg, *from, fs.Arg(0))
	if errors.Is(err, diagnose.ErrUsage) {
		fmt.Fprintln(stderr, "diagnose:", err)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintln(stderr, "diagnose:", err)
		return exitFailed
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "diagnose:", err)
		return exitFailed
	}
	if !rep.CanFederate() {
		return exitFailed
	}
	return exitOK
}
