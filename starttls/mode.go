package starttls

import (
	"errors"
	"fmt"
)

// Mode is the use_starttls policy. Its zero value is False, which is also the
// option's default. Its text form is the option's value, so a Mode can be a
// field of a struct decoded from TOML or JSON.
type Mode int

// The four values of use_starttls.
const (
	// False neither offers nor starts STARTTLS.
	False Mode = iota
	// Optional offers STARTTLS on incoming streams and starts it on outgoing
	// streams whose peer offers it; plain streams are allowed.
	Optional
	// Required offers STARTTLS as required on incoming streams, refuses
	// anything else before TLS, and refuses outgoing streams to peers that do
	// not offer it. Certificates are not checked: dialback authenticates.
	Required
	// RequiredTrusted is Required and, in both directions, the peer's
	// certificate must chain to a trusted root and name the peer's domain.
	RequiredTrusted
)

// ErrMode is wrapped by the errors of ParseMode and UnmarshalText.
var ErrMode = errors.New("starttls: invalid use_starttls value")

var modeNames = [...]string{
	False:           "false",
	Optional:        "optional",
	Required:        "required",
	RequiredTrusted: "required_trusted",
}

// String returns the option value that selects m, or "Mode(n)" for a value
// outside the four.
func (m Mode) String() string {
	if m >= 0 && int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode returns the Mode that the option value s selects. Values are
// matched exactly, as MongooseIM does: "false", "optional", "required",
// "required_trusted".
func ParseMode(s string) (Mode, error) {
	for m, name := range modeNames {
		if s == name {
			return Mode(m), nil
		}
	}
	return False, fmt.Errorf(`%w %q: want "false", "optional", "required" or "required_trusted"`, ErrMode, s)
}

// MarshalText implements encoding.TextMarshaler. It fails for a value
// outside the four modes, so that such a value is never written out.
func (m Mode) MarshalText() ([]byte, error) {
	if m < 0 || int(m) >= len(modeNames) {
		return nil, fmt.Errorf("%w: %d", ErrMode, int(m))
	}
	return []byte(modeNames[m]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseMode.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// tls reports whether the mode ever uses TLS.
func (m Mode) usesTLS() bool { return m != False }

// required reports whether plain streams are refused.
func (m Mode) required() bool { return m == Required || m == RequiredTrusted }
