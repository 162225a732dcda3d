package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestStubHTTP: -http serves the status page and the metrics of the stub's
// Manager; a link from the host shows on both.
func TestStubHTTP(t *testing.T) {
	w := newWorld(t)
	p := startStub(t, "-config", w.stubConfig("false"), "-cafile", filepath.Join(w.dir, "ca.pem"),
		"-domain", "stub.test", "-listen", "127.0.0.1:0", "-http", "127.0.0.1:0")
	web := p.next("http event", isEvent(evHTTP))
	l := p.next("listening event", isEvent(evListening))
	base := "http://" + web.Addr

	if body := httpGet(t, base+"/"); !strings.Contains(body, "<h1>s2s status</h1>") || !strings.Contains(body, "No authenticated links.") {
		t.Errorf("page before any link:\n%s", body)
	}
	h := w.startHost("false", l.Addr)
	h.send(`<iq from='host.test' to='stub.test' id='ping1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if got := h.next(); got.ID != "ping1" {
		t.Fatalf("ping answered with %s", got.Raw)
	}
	p.next("link-up event", isEvent(evLinkUp))
	if body := httpGet(t, base+"/"); !strings.Contains(body, "<td>in</td><td>stub.test</td><td>host.test</td><td>none</td>") {
		t.Errorf("page lacks the incoming link:\n%s", body)
	}
	if body := httpGet(t, base+"/metrics"); !strings.Contains(body, `xmpp_s2s_links_opened_total{auth="dialback",direction="in"} 1`) {
		t.Errorf("metrics lack the opened link:\n%s", body)
	}
	if body := httpGet(t, base+"/diagnose"); !strings.Contains(body, `<option selected>stub.test</option>`) {
		t.Errorf("diagnosis form:\n%s", body)
	}
}

func httpGet(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
	}
	return string(b)
}
