package saslext

import (
	"errors"
	"strconv"
	"testing"

	"mellium.im/sasl"
)

func TestMechanismClient(t *testing.T) {
	for i, authzid := range []string{"", "a.test"} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			var opts []sasl.Option
			if authzid != "" {
				opts = append(opts, sasl.Credentials(func() (_, _, id []byte) { return nil, nil, []byte(authzid) }))
			}
			c := sasl.NewClient(Mechanism, opts...)
			more, resp, err := c.Step(nil)
			if err != nil || more || string(resp) != authzid {
				t.Fatalf("Step = %v %q %v; want false %q nil", more, resp, err, authzid)
			}
			// The server's verdict ends the exchange; a challenge is a
			// protocol error.
			if _, _, err := c.Step([]byte("x")); !errors.Is(err, sasl.ErrTooManySteps) {
				t.Fatalf("second Step err = %v", err)
			}
		})
	}
}

func TestMechanismServer(t *testing.T) {
	// The permission function of a receiving server for a stream from
	// a.test whose certificate was verified: the authzid may be empty or
	// the stream's own domain.
	allow := func(n *sasl.Negotiator) bool {
		_, _, id := n.Credentials()
		return len(id) == 0 || string(id) == "a.test"
	}
	for i, tc := range []struct {
		perm    func(*sasl.Negotiator) bool
		resp    string
		wantErr error
	}{
		{perm: allow, resp: ""},
		{perm: allow, resp: "a.test"},
		{perm: allow, resp: "evil.test", wantErr: sasl.ErrAuthn},
		{perm: nil, resp: "", wantErr: sasl.ErrAuthn},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			s := sasl.NewServer(Mechanism, tc.perm)
			more, out, err := s.Step([]byte(tc.resp))
			if !errors.Is(err, tc.wantErr) || more || len(out) != 0 {
				t.Fatalf("Step = %v %q %v; want false \"\" %v", more, out, err, tc.wantErr)
			}
			if tc.wantErr != nil {
				return
			}
			s.Reset()
			if _, _, err := s.Step([]byte(tc.resp)); err != nil {
				t.Fatalf("Step after Reset: %v", err)
			}
			if _, _, err := s.Step(nil); !errors.Is(err, sasl.ErrTooManySteps) {
				t.Fatalf("extra Step err = %v", err)
			}
		})
	}
}
