package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkStubPings measures the stub as a test suite meets it: a process
// whose stdout is read line by line, answering pipelined XEP-0199 pings from
// a host Manager over one link each way. Every ping is one "stanza" event
// line. The figure to read is pings/s, before and after a change, in the
// same run of the machine.
func BenchmarkStubPings(b *testing.B) {
	for _, mode := range []string{"required_trusted", "false"} {
		b.Run("starttls="+mode, func(b *testing.B) { benchStubPings(b, mode) })
	}
}

// benchWindow is how many pings are in flight at once: the host's
// delivery channel holds as many, so its Deliver never blocks.
const benchWindow = 100

func benchStubPings(b *testing.B, mode string) {
	w := newWorld(b)
	cmd := exec.Command(os.Args[0], "-config", w.stubConfig(mode), "-cafile", filepath.Join(w.dir, "ca.pem"),
		"-domain", "stub.test", "-listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), beStub+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if b.Failed() {
			b.Logf("stub stderr:\n%s", stderr)
		}
	})
	// The suite's side of stdout: lines are read as they come (a reader
	// that stopped would hold the stub up); only the first is decoded.
	listening := make(chan event, 1)
	go func() {
		br := bufio.NewReaderSize(stdout, 64<<10)
		first := true
		for {
			line, err := br.ReadSlice('\n')
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				return
			}
			if first {
				first = false
				var e event
				json.NewDecoder(bytes.NewReader(line)).Decode(&e)
				listening <- e
			}
		}
	}()
	var l event
	select {
	case l = <-listening:
	case <-time.After(wait):
		b.Fatal("no listening event")
	}
	if l.Event != evListening {
		b.Fatalf("first event %+v", l)
	}
	h := w.startHost(mode, l.Addr)
	ping := []byte(`<iq from='host.test' to='stub.test' id='p' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`)
	h.send(string(ping)) // brings both links up
	h.next()
	// wait bounds the time without an answer, not the whole run.
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	take := func() {
		timeout.Reset(wait)
		select {
		case s := <-h.delivered:
			if s.Type != "result" {
				b.Fatalf("host received %s", s.Raw)
			}
		case bo := <-h.bounced:
			b.Fatalf("host bounced %s: %s: %s", bo.Stanza.Raw, bo.Condition, bo.Text)
		case <-timeout.C:
			b.Fatal("pings not answered")
		}
	}
	b.ResetTimer()
	out := 0
	for i := 0; i < b.N; i++ {
		for out >= benchWindow {
			take()
			out--
		}
		if err := h.m.Send(b.Context(), ping); err != nil {
			b.Fatal(err)
		}
		out++
	}
	for ; out > 0; out-- {
		take()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pings/s")
}
