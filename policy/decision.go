package policy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// ErrInvalidHost is wrapped by Decision.Err when a host name cannot be
// normalised, and by New and Replace for such a host in the rules.
var ErrInvalidHost = errors.New("policy: invalid host")

// Rule says which rule produced a Decision.
type Rule uint8

const (
	// DefaultRule: the host has no entry; the default action applied.
	DefaultRule Rule = iota
	// HostRule: the host's own entry applied.
	HostRule
	// InvalidHost: the name is not a valid domain; it is denied and
	// Decision.Err says why.
	InvalidHost
	// Failed: a Policy could not decide (a lookup failed); it is denied and
	// Decision.Err says why. Table never returns it; Policy implementations
	// that can fail do.
	Failed
)

// String returns the rule in words for logs: "default rule", "host rule",
// "invalid host" or "failed".
func (r Rule) String() string {
	switch r {
	case DefaultRule:
		return "default rule"
	case HostRule:
		return "host rule"
	case InvalidHost:
		return "invalid host"
	case Failed:
		return "failed"
	}
	return "Rule(" + strconv.Itoa(int(r)) + ")"
}

// Decision is the answer for one host. Its zero value denies.
type Decision struct {
	// Host is the normalised host the decision is about, or the name as
	// given when it could not be normalised.
	Host string
	// Action says whether links to and from Host may be used: Allow or
	// Deny (the zero value).
	Action Action
	// Rule is why.
	Rule Rule
	// Err explains an InvalidHost or Failed decision; nil otherwise.
	Err error
}

// Allowed reports whether the decision allows links with Host.
func (d Decision) Allowed() bool { return d.Action == Allow }

// String describes the decision for a log line, e.g.
// `deny "bad.example" (host rule)`.
func (d Decision) String() string {
	verdict := "deny"
	if d.Allowed() {
		verdict = "allow"
	}
	if d.Err != nil {
		return fmt.Sprintf("%s %q (%v: %v)", verdict, d.Host, d.Rule, d.Err)
	}
	return fmt.Sprintf("%s %q (%v)", verdict, d.Host, d.Rule)
}

// Policy decides whether a remote host may federate with us, for links in
// both directions. Implementations must be safe for concurrent use; the s2s
// Manager calls Decide for every new link and every domain pair a link
// authenticates, and again for live links when the rules change.
//
// The s2s Manager passes host normalised (lower-case A-labels, no trailing
// dot), so an implementation can compare it with ==; Table normalises again
// for callers that do not. Decide blocks no longer than ctx allows; a policy
// that cannot decide returns a denying Decision with Rule Failed and Err
// set, so that a broken lookup fails closed.
type Policy interface {
	Decide(ctx context.Context, host string) Decision
}

// Func adapts a function to the Policy interface.
type Func func(ctx context.Context, host string) Decision

// Decide returns f(ctx, host).
func (f Func) Decide(ctx context.Context, host string) Decision { return f(ctx, host) }
