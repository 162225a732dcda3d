package resolver

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// The sentinel errors below are wrapped by what Resolve and Dial return; test
// for them with errors.Is. The comment of each says which stanza error
// condition (RFC 6120 §8.3.3) a server should bounce stanzas with.
var (
	// ErrNotFound means the remote domain does not exist (NXDOMAIN) or is
	// not a valid domain name: remote-server-not-found.
	ErrNotFound = errors.New("resolver: no such domain")
	// ErrNoService means the domain exists but offers nothing to connect
	// to: its SRV target is "." or no address was found for it or for its
	// SRV targets: remote-server-not-found.
	ErrNoService = errors.New("resolver: no XMPP service")
	// ErrTimeout means every attempt of a DNS query went unanswered within
	// dns.timeout: remote-server-timeout.
	ErrTimeout = errors.New("resolver: DNS timed out")
	// ErrServerFailure means the nameservers answered SERVFAIL or REFUSED
	// on every attempt, so the answer is unknown: remote-server-timeout.
	ErrServerFailure = errors.New("resolver: DNS server failure")
	// ErrUnreachable means a connection was tried to every target and each
	// failed: remote-server-timeout when DialError.Timeout reports true,
	// remote-server-not-found otherwise (refused connections).
	ErrUnreachable = errors.New("resolver: all targets failed")
)

// DNSError describes a DNS query that did not give an answer to use.
// It unwraps to Err, which is ErrNotFound, ErrTimeout, ErrServerFailure, a
// context error, or another cause such as a malformed answer.
type DNSError struct {
	Name     string // the name queried, without the trailing dot
	Type     string // the record type queried: "SRV", "A", "AAAA"
	Server   string // the nameserver of the last attempt, "ip:port"
	Attempts int    // the number of attempts made
	Err      error
}

func (e *DNSError) Error() string {
	what := strings.TrimPrefix(e.Err.Error(), "resolver: ")
	plural := "s"
	if e.Attempts == 1 {
		plural = ""
	}
	return fmt.Sprintf("resolver: lookup %s %s: %s after %d attempt%s (last server %s)",
		e.Type, e.Name, what, e.Attempts, plural, e.Server)
}

func (e *DNSError) Unwrap() error { return e.Err }

// Timeout reports whether the query failed because it timed out.
func (e *DNSError) Timeout() bool { return errors.Is(e.Err, ErrTimeout) }

// AttemptError is the failure of one connection attempt.
type AttemptError struct {
	Target Target
	Err    error
}

func (e *AttemptError) Error() string { return e.Target.String() + ": " + e.Err.Error() }

func (e *AttemptError) Unwrap() error { return e.Err }

// DialError is returned by Dialer.Dial when no connection could be made.
// It unwraps to ErrUnreachable, to every attempt's error and, when the
// context ended the dial, to the context's error.
type DialError struct {
	// Attempts lists every connection attempt made, in the order they
	// were started.
	Attempts []AttemptError
	// Cause is the context's error when the context ended the dial before
	// every target was tried; nil otherwise.
	Cause error
}

func (e *DialError) Error() string {
	var b strings.Builder
	b.WriteString(ErrUnreachable.Error())
	if e.Cause != nil {
		b.WriteString(" (" + e.Cause.Error() + ")")
	}
	for i, a := range e.Attempts {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(a.Error())
	}
	return b.String()
}

func (e *DialError) Unwrap() []error {
	errs := []error{ErrUnreachable}
	for i := range e.Attempts {
		errs = append(errs, &e.Attempts[i])
	}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

// Timeout reports whether every attempt timed out (connection_timeout or
// the context's deadline) rather than being refused or unreachable; the
// remote server was then found but did not answer in time.
func (e *DialError) Timeout() bool {
	if len(e.Attempts) == 0 {
		return false
	}
	for _, a := range e.Attempts {
		var ne net.Error
		if !(errors.As(a.Err, &ne) && ne.Timeout()) {
			return false
		}
	}
	return true
}
