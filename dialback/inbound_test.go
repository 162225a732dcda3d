package dialback

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"mellium.im/xmpp/stanza"
)

func local(domains ...string) func(string) bool {
	return func(d string) bool {
		for _, l := range domains {
			if d == l {
				return true
			}
		}
		return false
	}
}

func TestInboundHandle(t *testing.T) {
	boom := errors.New("connection refused")
	answer := func(typ Type, err error) Authority {
		return AuthorityFunc(func(context.Context, Verify) (Type, error) { return typ, err })
	}
	req := Result{From: "capulet.example", To: "montague.example", Key: "k"}
	for i, tc := range []struct {
		in       Inbound
		req      Result
		already  bool // the stream carries another authenticated pair
		wantType Type
		cond     stanza.Condition
		wantErr  error
	}{
		{in: Inbound{Authority: answer(Valid, nil)}, req: req, wantType: Valid},
		{in: Inbound{Authority: answer(Invalid, nil)}, req: req, wantType: Invalid, wantErr: ErrInvalid},
		{in: Inbound{Authority: answer(Invalid, nil)}, req: req, already: true, wantType: Failed, cond: stanza.Forbidden, wantErr: ErrInvalid},
		{in: Inbound{Authority: answer(Failed, fmt.Errorf("x: %w", *dbErr(stanza.ItemNotFound)))}, req: req, wantType: Failed, cond: stanza.RemoteServerNotFound},
		{in: Inbound{Authority: answer("", boom)}, req: req, wantType: Failed, cond: RemoteConnectionFailed, wantErr: boom},
		{in: Inbound{Authority: answer("", fmt.Errorf("dns: %w", *dbErr(stanza.RemoteServerNotFound)))}, req: req, wantType: Failed, cond: stanza.RemoteServerNotFound},
		{in: Inbound{Authority: answer("", fmt.Errorf("x: %w", ErrClosed))}, req: req, wantType: Failed, cond: stanza.RemoteServerTimeout, wantErr: ErrClosed},
		{in: Inbound{Authority: answer("bogus", nil)}, req: req, wantType: Failed, cond: stanza.RemoteServerNotFound},
		{in: Inbound{IsLocal: local("montague.example")}, req: req, wantType: Failed, cond: RemoteConnectionFailed},
		// Unknown 'to', or none configured: no verification at all.
		{in: Inbound{Authority: answer(Valid, nil)}, req: Result{From: "capulet.example", To: "elsewhere.example", Key: "k"}, wantType: Failed, cond: stanza.ItemNotFound},
		{in: Inbound{IsLocal: func(string) bool { return false }, Authority: answer(Valid, nil)}, req: req, wantType: Failed, cond: stanza.ItemNotFound},
		{in: Inbound{Authority: answer(Valid, nil)}, req: Result{From: "capulet.example", To: "1.2.3.4", Key: "k"}, wantType: Failed, cond: stanza.ItemNotFound},
		{in: Inbound{Authority: answer(Valid, nil)}, req: Result{From: "bad domain", To: "montague.example", Key: "k"}, wantType: Failed, cond: stanza.NotAcceptable},
		// Denied 'from', with the default condition and with the caller's.
		{in: Inbound{Allow: func(string) error { return boom }, Authority: answer(Valid, nil)}, req: req, wantType: Failed, cond: stanza.PolicyViolation, wantErr: boom},
		{in: Inbound{Allow: func(string) error { return *dbErr(stanza.NotAuthorized) }, Authority: answer(Valid, nil)}, req: req, wantType: Failed, cond: stanza.NotAuthorized},
		// Answers arriving on an incoming stream are not ours to act on.
		{in: Inbound{Authority: answer(Valid, nil)}, req: Result{From: "capulet.example", To: "montague.example", Type: Valid}, wantErr: ErrUnsolicited},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			if tc.in.IsLocal == nil && tc.in.Authority != nil {
				tc.in.IsLocal = local("montague.example")
			}
			var pairs Pairs
			if tc.already {
				pairs.Add("other.example", "montague.example")
			}
			before := pairs.Len()
			ans, err := tc.in.Handle(context.Background(), "417GAF25", &pairs, tc.req)
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) || tc.wantErr == nil && tc.wantType == Valid && err != nil {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantType != Valid && err == nil {
				t.Fatal("no error for a refused pair")
			}
			if errors.Is(tc.wantErr, ErrUnsolicited) {
				if ans != (Result{}) {
					t.Fatalf("answer to unsolicited element: %#v", ans)
				}
				return
			}
			if ans.Type != tc.wantType || ans.From != tc.req.To || ans.To != tc.req.From || ans.Key != "" {
				t.Fatalf("answer = %#v, want type %q with from/to swapped", ans, tc.wantType)
			}
			if tc.cond != "" {
				if ans.Err == nil || ans.Err.Condition != tc.cond {
					t.Fatalf("answer error = %#v, want %s", ans.Err, tc.cond)
				}
				if !errors.Is(err, stanza.Error{Condition: tc.cond}) {
					t.Fatalf("err = %v does not carry %s", err, tc.cond)
				}
			}
			wantLen := before
			if tc.wantType == Valid {
				wantLen++
			}
			if pairs.Len() != wantLen || pairs.Has("capulet.example", "montague.example") != (tc.wantType == Valid) {
				t.Fatalf("pairs after Handle: len %d, has %v", pairs.Len(), pairs.Has("capulet.example", "montague.example"))
			}
		})
	}
}

// What the authority is asked: the domains as written, the stream's id.
func TestInboundHandleAsks(t *testing.T) {
	var got Verify
	in := Inbound{
		IsLocal: local("montague.example"),
		Allow: func(remote string) error {
			if remote != "capulet.example" {
				return fmt.Errorf("Allow got %q, want the normal form", remote)
			}
			return nil
		},
		Authority: AuthorityFunc(func(ctx context.Context, v Verify) (Type, error) {
			if _, ok := ctx.Deadline(); !ok {
				return "", errors.New("no deadline")
			}
			got = v
			return Valid, nil
		}),
	}
	var pairs Pairs
	ans, err := in.Handle(context.Background(), "", &pairs, Result{From: "Capulet.Example", To: "MONTAGUE.example", Key: "k"})
	if err != nil || ans.Type != Valid {
		t.Fatalf("Handle = %#v, %v", ans, err)
	}
	if want := (Verify{From: "MONTAGUE.example", To: "Capulet.Example", ID: "", Key: "k"}); got != want {
		t.Fatalf("authority asked %#v, want %#v", got, want)
	}
	// Asked again for the same pair, Handle answers without asking.
	in.Authority = nil
	if ans, err := in.Handle(context.Background(), "", &pairs, Result{From: "capulet.example", To: "montague.example", Key: "k"}); err != nil || ans.Type != Valid {
		t.Fatalf("repeat = %#v, %v", ans, err)
	}
}

// The authoritative server never answers: the timeout gives
// remote-server-timeout. No assertion is made on how long it took.
func TestInboundHandleTimeout(t *testing.T) {
	in := Inbound{
		IsLocal: local("montague.example"),
		Timeout: 1, // the smallest positive duration
		Authority: AuthorityFunc(func(ctx context.Context, v Verify) (Type, error) {
			<-ctx.Done()
			return "", ctx.Err()
		}),
	}
	ans, err := in.Handle(context.Background(), "s", new(Pairs), Result{From: "capulet.example", To: "montague.example", Key: "k"})
	if !errors.Is(err, context.DeadlineExceeded) || ans.Err == nil || ans.Err.Condition != stanza.RemoteServerTimeout {
		t.Fatalf("Handle = %#v, %v", ans, err)
	}
}

func TestInboundAnswer(t *testing.T) {
	ks := Secret("d14lb4ck43v3r")
	in := Inbound{Keys: ks, IsLocal: local("montague.example")}
	good := "225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d"
	for i, tc := range []struct {
		in       Inbound
		req      Verify
		wantType Type
		cond     stanza.Condition
		wantErr  error
	}{
		{in, Verify{From: "capulet.example", To: "montague.example", ID: "417GAF25", Key: good}, Valid, "", nil},
		{in, Verify{From: "Capulet.Example", To: "montague.example.", ID: "417GAF25", Key: good}, Valid, "", nil},
		{in, Verify{From: "capulet.example", To: "montague.example", ID: "417GAF25", Key: "0" + good[1:]}, Invalid, "", ErrInvalid},
		{in, Verify{From: "capulet.example", To: "montague.example", ID: "OTHER", Key: good}, Invalid, "", ErrInvalid},
		{in, Verify{From: "capulet.example", To: "montague.example", ID: "", Key: good}, Invalid, "", ErrInvalid},
		{in, Verify{From: "other.example", To: "montague.example", ID: "417GAF25", Key: good}, Invalid, "", ErrInvalid},
		{in, Verify{From: "not a domain", To: "montague.example", ID: "417GAF25", Key: good}, Invalid, "", ErrInvalid},
		{in, Verify{From: "capulet.example", To: "montague.example", ID: "417GAF25"}, Invalid, "", ErrInvalid},
		{in, Verify{From: "capulet.example", To: "elsewhere.example", ID: "417GAF25", Key: good}, Failed, stanza.ItemNotFound, nil},
		{Inbound{IsLocal: in.IsLocal}, Verify{From: "capulet.example", To: "montague.example", ID: "417GAF25", Key: good}, Failed, stanza.InternalServerError, nil},
		{in, Verify{From: "capulet.example", To: "montague.example", ID: "417GAF25", Type: Valid}, "", "", ErrUnsolicited},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			ans, err := tc.in.Answer(tc.req)
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) || tc.wantType == Valid && err != nil {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantType == "" {
				if ans != (Verify{}) {
					t.Fatalf("answer = %#v, want none", ans)
				}
				return
			}
			if ans.Type != tc.wantType || ans.From != tc.req.To || ans.To != tc.req.From || ans.ID != tc.req.ID || ans.Key != "" {
				t.Fatalf("answer = %#v", ans)
			}
			if tc.cond != "" && (ans.Err == nil || ans.Err.Condition != tc.cond || !errors.Is(err, stanza.Error{Condition: tc.cond})) {
				t.Fatalf("answer error = %#v, %v; want %s", ans.Err, err, tc.cond)
			}
		})
	}
}
