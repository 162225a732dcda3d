package dialback

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"mellium.im/xmpp/stanza"
)

func TestOutboundRequestResolve(t *testing.T) {
	ks := Secret("s3cr3tf0rd14lb4ck")
	for i, tc := range []struct {
		answer   Result
		wantErr  error // nil: valid
		wantPair bool
	}{
		{Result{From: "montague.example", To: "capulet.example", Type: Valid}, nil, true},
		{Result{From: "Montague.Example", To: "capulet.example.", Type: Valid}, nil, true},
		{Result{From: "montague.example", To: "capulet.example", Type: Invalid}, ErrInvalid, true},
		{Result{From: "montague.example", To: "capulet.example", Type: Failed, Err: dbErr(stanza.ItemNotFound)},
			stanza.Error{Condition: stanza.ItemNotFound}, true},
		// Answers to nothing we asked: another pair, the reverse direction, a request.
		{Result{From: "other.example", To: "capulet.example", Type: Valid}, ErrUnsolicited, false},
		{Result{From: "capulet.example", To: "montague.example", Type: Valid}, ErrUnsolicited, false},
		{Result{From: "montague.example", To: "capulet.example", Key: "k"}, ErrUnsolicited, false},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			o := NewOutbound(ks, "D60000229F")
			req, err := o.Request("capulet.example", "montague.example")
			if err != nil {
				t.Fatal(err)
			}
			want := Result{From: "capulet.example", To: "montague.example",
				Key: "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3"}
			if req != want {
				t.Fatalf("Request = %#v, want %#v", req, want)
			}
			if _, err := o.Request("capulet.example", "montague.example"); !errors.Is(err, ErrPending) {
				t.Fatalf("second Request: %v, want ErrPending", err)
			}
			pair, err := o.Resolve(tc.answer)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Resolve = %v, want %v", err, tc.wantErr)
			}
			if tc.wantPair != (pair == Pair{"capulet.example", "montague.example"}) {
				t.Fatalf("Resolve pair = %#v", pair)
			}
			// An answer settles the request: the same answer again is unsolicited.
			if tc.wantPair {
				if _, err := o.Resolve(tc.answer); !errors.Is(err, ErrUnsolicited) {
					t.Fatalf("repeated answer: %v, want ErrUnsolicited", err)
				}
			}
		})
	}
}

func TestOutboundVerify(t *testing.T) {
	req := Verify{From: "capulet.example", To: "montague.example", ID: "417GAF25", Key: "k"}
	for i, tc := range []struct {
		answer  Verify
		want    Type
		wantErr error
	}{
		{Verify{From: "montague.example", To: "capulet.example", ID: "417GAF25", Type: Valid}, Valid, nil},
		{Verify{From: "MONTAGUE.example", To: "capulet.example", ID: "417GAF25", Type: Invalid}, Invalid, nil},
		{Verify{From: "montague.example", To: "capulet.example", ID: "417GAF25", Type: Failed, Err: dbErr(stanza.ItemNotFound)},
			Failed, stanza.Error{Condition: stanza.ItemNotFound}},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			o := NewOutbound(Secret("x"), "")
			sent := make(chan Verify, 1)
			type res struct {
				typ Type
				err error
			}
			done := make(chan res)
			go func() {
				typ, err := o.Verify(context.Background(), req, func(v Verify) error { sent <- v; return nil })
				done <- res{typ, err}
			}()
			if got := <-sent; got != req {
				t.Fatalf("sent %#v, want %#v", got, req)
			}
			// Answers that do not correlate (other id, other pair) are refused.
			for _, bad := range []Verify{
				{From: "montague.example", To: "capulet.example", ID: "other", Type: Valid},
				{From: "capulet.example", To: "montague.example", ID: "417GAF25", Type: Valid},
				{From: "montague.example", To: "capulet.example", ID: "417GAF25"},
			} {
				if err := o.Deliver(bad); !errors.Is(err, ErrUnsolicited) {
					t.Fatalf("Deliver(%#v) = %v, want ErrUnsolicited", bad, err)
				}
			}
			if err := o.Deliver(tc.answer); err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.typ != tc.want || tc.wantErr == nil && r.err != nil || tc.wantErr != nil && !errors.Is(r.err, tc.wantErr) {
				t.Fatalf("Verify = %q, %v; want %q, %v", r.typ, r.err, tc.want, tc.wantErr)
			}
			// A peer closing right after answering changes nothing.
			o.Close(nil)
		})
	}
}

func TestOutboundVerifyEnds(t *testing.T) {
	req := Verify{From: "capulet.example", To: "montague.example", ID: "i", Key: "k"}
	boom := errors.New("boom")
	t.Run("send", func(t *testing.T) {
		o := NewOutbound(Secret("x"), "")
		_, err := o.Verify(context.Background(), req, func(Verify) error { return boom })
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v", err)
		}
		if err := o.Deliver(Verify{From: "montague.example", To: "capulet.example", ID: "i", Type: Valid}); !errors.Is(err, ErrUnsolicited) {
			t.Fatalf("waiter not forgotten: %v", err)
		}
	})
	t.Run("context", func(t *testing.T) {
		o := NewOutbound(Secret("x"), "")
		ctx, cancel := context.WithCancel(context.Background())
		_, err := o.Verify(ctx, req, func(Verify) error { cancel(); return nil })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("close", func(t *testing.T) {
		o := NewOutbound(Secret("x"), "sid")
		if _, err := o.Request("capulet.example", "montague.example"); err != nil {
			t.Fatal(err)
		}
		_, err := o.Verify(context.Background(), req, func(Verify) error {
			pending := o.Close(boom)
			if len(pending) != 1 || pending[0] != (Pair{"capulet.example", "montague.example"}) {
				t.Errorf("Close returned %v", pending)
			}
			return nil
		})
		if !errors.Is(err, ErrClosed) || !errors.Is(err, boom) {
			t.Fatalf("err = %v, want ErrClosed and boom", err)
		}
		if _, err := o.Request("capulet.example", "other.example"); !errors.Is(err, ErrClosed) {
			t.Fatalf("Request after Close: %v", err)
		}
		if _, err := o.Verify(context.Background(), req, func(Verify) error { return nil }); !errors.Is(err, ErrClosed) {
			t.Fatalf("Verify after Close: %v", err)
		}
	})
}

// Two receiving-side verifications of the same key wait on one answer.
func TestOutboundVerifyShared(t *testing.T) {
	o := NewOutbound(Secret("x"), "")
	req := Verify{From: "capulet.example", To: "montague.example", ID: "i", Key: "k"}
	sent := make(chan struct{}, 2)
	results := make(chan Type, 2)
	for range 2 {
		go func() {
			typ, _ := o.Verify(context.Background(), req, func(Verify) error { sent <- struct{}{}; return nil })
			results <- typ
		}()
	}
	<-sent
	<-sent
	if err := o.Deliver(Verify{From: "montague.example", To: "capulet.example", ID: "i", Type: Valid}); err != nil {
		t.Fatal(err)
	}
	if a, b := <-results, <-results; a != Valid || b != Valid {
		t.Fatalf("results %q %q", a, b)
	}
}
