package dialback

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/xmpp-s2s/federation/internal/domain"
)

func TestKey(t *testing.T) {
	for i, tc := range []struct {
		secret, receiving, originating, id, want string
	}{
		// XEP-0185 §4.
		{"s3cr3tf0rd14lb4ck", "xmpp.example.com", "example.org", "D60000229F",
			"37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"},
		// XEP-0220 examples 1 and 5.
		{"s3cr3tf0rd14lb4ck", "montague.example", "capulet.example", "D60000229F",
			"b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3"},
		{"d14lb4ck43v3r", "capulet.example", "montague.example", "417GAF25",
			"225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			if got := Key(tc.secret, tc.receiving, tc.originating, tc.id); got != tc.want {
				t.Fatalf("Key = %s, want %s", got, tc.want)
			}
			got, err := Secret(tc.secret).Key(tc.receiving, tc.originating, tc.id)
			if err != nil || got != tc.want {
				t.Fatalf("Secret.Key = %s, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestSecretKeyNormalises(t *testing.T) {
	s := Secret("s3cr3tf0rd14lb4ck")
	want := Key(string(s), "xmpp.example.com", "xn--bcher-kva.example", "id")
	for i, in := range [][2]string{
		{"XMPP.Example.COM", "bücher.example"},
		{"xmpp.example.com.", "XN--BCHER-KVA.example"},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, err := s.Key(in[0], in[1], "id")
			if err != nil || got != want {
				t.Fatalf("Key(%q, %q) = %s, %v; want %s", in[0], in[1], got, err, want)
			}
		})
	}
	for i, in := range [][2]string{{"", "example.org"}, {"example.org", "1.2.3.4"}} {
		t.Run("bad"+strconv.Itoa(i), func(t *testing.T) {
			_, err := s.Key(in[0], in[1], "id")
			if !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("Key(%q, %q) error = %v, want domain.ErrInvalid", in[0], in[1], err)
			}
		})
	}
}

func TestSecretRedacted(t *testing.T) {
	const secret = "hunter2-very-secret"
	s := Secret(secret)
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "shared", s)
	js, err := json.Marshal(struct{ Shared Secret }{s})
	if err != nil {
		t.Fatal(err)
	}
	for i, out := range []string{
		fmt.Sprint(s), fmt.Sprintf("%s %v %+v %#v %q %x %X %d", s, s, s, s, s, s, s, s),
		fmt.Sprintf("%v", struct{ S Secret }{s}), fmt.Sprintf("%+v", &struct{ S Secret }{s}),
		s.String(), logged.String(), string(js),
		fmt.Errorf("wrapped: %v", s).Error(),
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			if strings.Contains(out, secret) || strings.Contains(out, fmt.Sprintf("%x", secret)) {
				t.Fatalf("secret leaked: %s", out)
			}
			if !strings.Contains(out, redacted) {
				t.Fatalf("no placeholder in %s", out)
			}
		})
	}
}

type failingKeys struct{ err error }

func (f failingKeys) Key(string, string, string) (string, error) { return "", f.err }

func TestCheck(t *testing.T) {
	ks := Secret("s3cr3tf0rd14lb4ck")
	good := Key("s3cr3tf0rd14lb4ck", "montague.example", "capulet.example", "D60000229F")
	boom := errors.New("boom")
	for i, tc := range []struct {
		ks                  KeySource
		key, recv, orig, id string
		want                bool
		err                 error
	}{
		{ks, good, "montague.example", "capulet.example", "D60000229F", true, nil},
		{ks, good, "Montague.Example", "capulet.example.", "D60000229F", true, nil},
		{ks, good[:63] + "0", "montague.example", "capulet.example", "D60000229F", false, nil},
		{ks, good[:10], "montague.example", "capulet.example", "D60000229F", false, nil},
		{ks, strings.ToUpper(good), "montague.example", "capulet.example", "D60000229F", false, nil},
		{ks, good, "montague.example", "capulet.example", "OTHER", false, nil},
		{ks, good, "capulet.example", "montague.example", "D60000229F", false, nil},
		{ks, "", "montague.example", "capulet.example", "D60000229F", false, nil},
		{Secret("other"), good, "montague.example", "capulet.example", "D60000229F", false, nil},
		{failingKeys{boom}, good, "montague.example", "capulet.example", "D60000229F", false, boom},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, err := Check(tc.ks, tc.key, tc.recv, tc.orig, tc.id)
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Fatalf("Check = %v, %v; want %v, %v", got, err, tc.want, tc.err)
			}
		})
	}
}
