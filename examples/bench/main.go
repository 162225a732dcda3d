package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/xmpp-s2s/federation/internal/bench"
)

func main() {
	// The two-process experiments start this executable again as the
	// receiving side; in that child, this serves and exits.
	bench.ServePeerIfChild()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command without its process: flags in, table out, exit code
// back.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "a few hundred stanzas per experiment: checks the harness, measures nothing")
	runs := fs.Int("runs", 0, "runs per measurement (median reported); 0 keeps the preset")
	messages := fs.Int("messages", 0, "messages per throughput run; 0 keeps the preset")
	pings := fs.Int("pings", 0, "round trips per ping run; 0 keeps the preset")
	newLinks := fs.Int("newlinks", 0, "new links timed per run (first stanza, each against a raw connection); 0 keeps the preset")
	links := fs.String("links", "", "comma-separated idle link counts, e.g. 1000,10000; empty keeps the preset")
	tlsModes := fs.String("tls", "on,off", "modes to run: on, off or both")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	memprofile := fs.String("memprofile", "", "write an allocation profile of the run to this file")
	idleprofile := fs.String("idleprofile", "", "write a heap profile, taken while the idle links are up, to this file (the last idle experiment's)")
	peers := fs.Bool("peers", false, "also run the message and ping experiments against Prosody and ejabberd (installed; ejabberd needs root)")
	twoProc := fs.Bool("two-process", true, "also run the message and ping experiments with the receiving Manager in a child process")
	verbose := fs.Bool("v", false, "print each measurement as it finishes, on stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c := bench.Default()
	if *quick {
		c = bench.Quick()
	}
	if *runs > 0 {
		c.Runs = *runs
	}
	if *messages > 0 {
		c.Messages = *messages
	}
	if *pings > 0 {
		c.Pings = *pings
	}
	if *newLinks > 0 {
		c.FirstStanza = *newLinks
	}
	if *links != "" {
		c.IdleLinks = nil
		for _, f := range strings.Split(*links, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				fmt.Fprintf(stderr, "bench: -links: %q is not a positive count\n", f)
				return 2
			}
			c.IdleLinks = append(c.IdleLinks, n)
		}
	}
	c.TLS = nil
	for _, f := range strings.Split(*tlsModes, ",") {
		switch strings.TrimSpace(f) {
		case "on":
			c.TLS = append(c.TLS, true)
		case "off":
			c.TLS = append(c.TLS, false)
		default:
			fmt.Fprintf(stderr, "bench: -tls: %q is neither on nor off\n", f)
			return 2
		}
	}
	c.Peers = *peers
	c.TwoProcess = *twoProc
	if *verbose {
		c.Progress = stderr
		c.PeerLog = stderr
	}

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if *memprofile != "" {
		runtime.MemProfileRate = 64 << 10
	}
	if *idleprofile != "" {
		c.WhileIdle = func(int, bool) {
			runtime.GC()
			if err := writeProfile("heap", *idleprofile); err != nil {
				fmt.Fprintln(stderr, "bench:", err)
			}
		}
	}
	rep, err := bench.Run(ctx, c)
	if *memprofile != "" {
		if perr := writeProfile("allocs", *memprofile); perr != nil {
			fmt.Fprintln(stderr, "bench:", perr)
		}
	}
	if perr := rep.Print(stdout); perr != nil {
		fmt.Fprintln(stderr, "bench:", perr)
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	fmt.Fprintf(stdout, "\n%s, %d CPUs, %s\n", runtime.Version(), runtime.NumCPU(), describe(c))
	return 0
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup(name).WriteTo(f, 0)
}

// describe says what load the table came from.
func describe(c bench.Config) string {
	s := fmt.Sprintf("median of %d runs; %d messages (window %d), %d pings per run, windows %v; %d new links timed (with TLS, as many first contacts and repeated links each); idle links %v",
		c.Runs, c.Messages, c.MessageWindow, c.Pings, c.Windows, c.FirstStanza, c.IdleLinks)
	if c.TwoProcess {
		s += "; two processes: same load, receiver in a child process"
	}
	if c.Peers {
		s += fmt.Sprintf("; peers: %d messages, %d pings per run", c.PeerMessages, c.PeerPings)
	}
	return s
}
