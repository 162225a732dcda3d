package status_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/xmpp-s2s/federation/s2s"
	"github.com/xmpp-s2s/federation/s2s/status"
)

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPages reads the pages over HTTP: the link and the failure are in the
// index, the diagnosis form answers, metrics are beside the page.
func TestPages(t *testing.T) {
	f := newFixture(t)
	c := f.srv.Client()

	code, body := get(t, c, f.srv.URL+"/s2s/")
	for _, want := range []string{
		"<td>out</td><td>host.example</td><td>remote.example</td><td>TLS1.3</td>",
		"<td>dialback</td>",
		// The stub's stream is bidirectional: both directions of the
		// pair show on it, the same connection.
		"<td>in</td><td>host.example</td><td>remote.example</td>",
		"<td>link failed</td><td>out</td><td>host.example</td><td>down.example</td><td>TCP connect</td>",
		"<td>bounced</td>",
		`<form method="post" action="diagnose">`,
		`<option selected>host.example</option>`,
	} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("index (%d) lacks %q:\n%s", code, want, body)
		}
	}
	// Both rows name one connection, and the outgoing one says the peer
	// acknowledges what we write (the stub offers XEP-0198).
	rows := regexp.MustCompile(`<tr><td>(in|out)</td><td>host.example</td><td>remote.example</td>(?:<td>[^<]*</td>){4}<td class="num">(\d+)</td><td>(on|off)</td>`).FindAllStringSubmatch(body, -1)
	if len(rows) != 2 || rows[0][2] != rows[1][2] {
		t.Errorf("want both directions on one stream, got rows %q", rows)
	}
	for _, r := range rows {
		if r[1] == "out" && r[3] != "on" {
			t.Errorf("outgoing link: XEP-0198 %s, want on", r[3])
		}
	}
	if strings.Contains(body, "<script") {
		t.Error("the page has a script")
	}

	if code, body := get(t, c, f.srv.URL+"/s2s/metrics"); code != http.StatusOK || !strings.Contains(body, "the host's metrics handler") {
		t.Errorf("metrics: %d %q", code, body)
	}
	if code, _ := get(t, c, f.srv.URL+"/s2s/nothing"); code != http.StatusNotFound {
		t.Errorf("/s2s/nothing: %d", code)
	}

	resp, err := c.PostForm(f.srv.URL+"/s2s/diagnose", url.Values{"local": {"host.example"}, "remote": {"down.example"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"host.example cannot federate with down.example: TCP connect failed",
		"Nothing listens on",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("diagnosis lacks %q:\n%s", want, b)
		}
	}

	resp, err = c.PostForm(f.srv.URL+"/s2s/diagnose", url.Values{"local": {"host.example"}, "remote": {""}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "Give both the local and the remote domain.") {
		t.Errorf("empty remote: %d\n%s", resp.StatusCode, b)
	}

	// What peers send ends up in reasons: it is shown, never run.
	f.page.Observe(s2s.Event{Kind: s2s.AuthFailed, Link: s2s.LinkInfo{Direction: s2s.Incoming, Local: "host.example", Remote: "evil.example"},
		Err: errors.New(`<script>alert(1)</script>`)})
	if _, body := get(t, c, f.srv.URL+"/s2s/"); strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("a reason with markup is not escaped:\n%s", body)
	}

	fails := f.page.Failures()
	if len(fails) < 3 || fails[0].Kind != "authentication refused" || fails[len(fails)-1].Kind != "link failed" || fails[len(fails)-1].Step != s2s.StepConnect {
		t.Errorf("Failures() = %+v", fails)
	}
}

// TestResumedShown: a link whose stream resumed an earlier TLS session
// says so beside its TLS version; one with a full handshake shows the
// version alone.
func TestResumedShown(t *testing.T) {
	page := status.New(status.Options{})
	page.Attach(func() []s2s.LinkInfo {
		return []s2s.LinkInfo{
			{Direction: s2s.Outgoing, Local: "host.example", Remote: "full.example", TLSVersion: tls.VersionTLS13, Auth: s2s.AuthDialback},
			{Direction: s2s.Outgoing, Local: "host.example", Remote: "again.example", TLSVersion: tls.VersionTLS13, TLSResumed: true, Auth: s2s.AuthSASLExternal},
		}
	})
	rec := httptest.NewRecorder()
	page.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	body := rec.Body.String()
	for _, want := range []string{
		"<td>full.example</td><td>TLS1.3</td>",
		"<td>again.example</td><td>TLS1.3, resumed</td>",
	} {
		if rec.Code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("index (%d) lacks %q:\n%s", rec.Code, want, body)
		}
	}
}
