package policy

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrAction is wrapped by the error ParseAction returns, and by New and
// Replace for an action that is neither Allow nor Deny.
var ErrAction = errors.New("policy: unknown action")

// Action is what a rule says about a host. The zero value is Deny, so that a
// rule nobody set fails closed.
type Action uint8

// The two actions of MongooseIM's default_policy and host_policy.
const (
	Deny Action = iota
	Allow
)

// String returns "allow" or "deny", the spelling of the configuration file.
func (a Action) String() string {
	switch a {
	case Deny:
		return "deny"
	case Allow:
		return "allow"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// ParseAction reads the configuration spelling of an action, "allow" or
// "deny"; anything else is an error wrapping ErrAction.
func ParseAction(s string) (Action, error) {
	switch s {
	case "allow":
		return Allow, nil
	case "deny":
		return Deny, nil
	}
	return Deny, fmt.Errorf(`%w %q (want "allow" or "deny")`, ErrAction, s)
}

func (a Action) valid() bool { return a == Allow || a == Deny }
