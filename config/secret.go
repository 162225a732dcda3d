package config

import (
	"fmt"
	"io"
	"log/slog"
)

// Secret is a string that does not print itself: the `shared` dialback
// secret. A host that logs its configuration (fmt's %v, %+v or %#v,
// log/slog, a JSON or TOML dump) gets a placeholder instead of the value,
// so the secret cannot leak through a log line by accident. Convert it to
// a string (string(s)) where the value itself is needed.
//
// config does not import dialback, whose Secret type behaves the same.
type Secret string

const redacted = "[REDACTED]"

// String returns a placeholder, never the secret.
func (Secret) String() string { return redacted }

// GoString returns a placeholder, never the secret, for %#v.
func (Secret) GoString() string { return redacted }

// Format writes a placeholder for every verb, so that %s, %q or %x cannot
// bypass String.
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue implements [slog.LogValuer] with a placeholder.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText returns a placeholder, so that JSON, TOML or XML dumps of a
// configuration do not contain the secret.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
