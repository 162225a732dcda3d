package interop

import (
	"errors"
	"os"
	"reflect"
	"strconv"
	"testing"

	"github.com/xmpp-s2s/federation/s2s"
)

func TestParseS2SShow(t *testing.T) {
	recorded, err := os.ReadFile("testdata/s2s-show.txt")
	if err != nil {
		t.Fatal(err)
	}
	const title = "Host | Dir | Remote | Security | SASL | Dialback | SNI | ALPN\n"
	for i, c := range []struct {
		in   string
		want []ProsodySession
		err  error
	}{
		0: {in: string(recorded), want: []ProsodySession{
			{Local: "prosody.test", Dir: "-->", Remote: "go.test", Security: "TLSv1.3", SASL: "Succeeded", Dialback: "Not used", SNI: "go.test", ALPN: "xmpp-server"},
			{Local: "prosody.test", Dir: "<--", Remote: "go.test", Security: "TLSv1.3", Dialback: "Completed", SNI: "prosody.test"},
			{Local: "prosody.test", Dir: "<--", Remote: "other.test", Security: "insecure", Dialback: "Initiated"},
		}},
		// No sessions: the title row and the summary only.
		1: {in: title + "OK: 0 s2s connections shown\n"},
		// Output of another command (or an error) has no title row.
		2: {in: "Error: no such command\n", err: ErrShowFormat},
		3: {in: "", err: ErrShowFormat},
		// Columns in another order than asked for.
		4: {in: "Dir | Host | Remote | Security | SASL | Dialback | SNI | ALPN\n", err: ErrShowFormat},
		// A row cut short.
		5: {in: title + "prosody.test | --> | go.test\n", err: ErrShowFormat},
		// An unknown direction.
		6: {in: title + "prosody.test | ?? | go.test | TLSv1.3 | | Completed | | \n", err: ErrShowFormat},
		// A bidirectional session (XEP-0288) and CRLF line ends.
		7: {in: title[:len(title)-1] + "\r\nprosody.test | <-> | go.test | TLSv1.2 | | Completed | | \r\n",
			want: []ProsodySession{{Local: "prosody.test", Dir: "<->", Remote: "go.test", Security: "TLSv1.2", Dialback: "Completed"}}},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			got, err := ParseS2SShow(c.in)
			if !errors.Is(err, c.err) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestProsodySessionAuth(t *testing.T) {
	for i, c := range []struct {
		s    ProsodySession
		want s2s.Auth
	}{
		0: {ProsodySession{SASL: "Succeeded", Dialback: "Not used"}, s2s.AuthSASLExternal},
		1: {ProsodySession{SASL: "", Dialback: "Completed"}, s2s.AuthDialback},
		// EXTERNAL refused, then dialback: the RECIPES' self-signed case.
		2: {ProsodySession{SASL: "Failed", Dialback: "Completed"}, s2s.AuthDialback},
		3: {ProsodySession{SASL: "Attempting", Dialback: "Not initiated"}, 0},
		4: {ProsodySession{SASL: "Offered", Dialback: "Initiated"}, 0},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			if got := c.s.Auth(); got != c.want {
				t.Errorf("Auth() = %q, want %q", got, c.want)
			}
		})
	}
}

func FuzzParseS2SShow(f *testing.F) {
	if b, err := os.ReadFile("testdata/s2s-show.txt"); err == nil {
		f.Add(string(b))
	}
	f.Add("Host | Dir | Remote | Security | SASL | Dialback | SNI | ALPN\na | --> | b | x | | Completed | | \n")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		ss, err := ParseS2SShow(in)
		if err != nil {
			if !errors.Is(err, ErrShowFormat) {
				t.Fatalf("error %v does not wrap ErrShowFormat", err)
			}
			if ss != nil {
				t.Fatalf("sessions %+v with error %v", ss, err)
			}
			return
		}
		for _, s := range ss {
			if s.Dir != "-->" && s.Dir != "<--" && s.Dir != "<->" {
				t.Fatalf("direction %q accepted", s.Dir)
			}
		}
	})
}
