package wire

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"mellium.im/xmpp/stream"
)

var update = flag.Bool("update", false, "rewrite the .golden files in testdata")

// TestGolden sends each testdata/*.xml over a loopback TCP connection and
// compares what the Reader makes of it with the .golden file beside it.
// Regenerate with: go test ./internal/wire -run TestGolden -update
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for i, file := range files {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			in, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got := readTranscript(t, in)
			golden := strings.TrimSuffix(file, ".xml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("%s: got\n%s\nwant\n%s", file, got, want)
			}
		})
	}
}

// readTranscript writes in from one end of a loopback connection and
// describes, one line per event, what a Reader at the other end returns.
func readTranscript(t *testing.T, in []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sent := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sent <- err
			return
		}
		_, err = c.Write(in)
		c.Close()
		sent <- err
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	var b strings.Builder
	r := NewReader(conn, Limits{MaxElementSize: 4096, MaxDepth: 16})
	h, err := r.ReadHeader()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "header %+v\n", h)
	for {
		e, err := r.Next()
		if err != nil {
			var se stream.Error
			switch {
			case err == io.EOF:
				b.WriteString("EOF\n")
			case errors.As(err, &se):
				fmt.Fprintf(&b, "stream error %s\n", se.Err)
			default:
				fmt.Fprintf(&b, "error %v\n", err)
			}
			break
		}
		fmt.Fprintf(&b, "{%s}%s from=%q to=%q id=%q type=%q\n  %s\n",
			e.Name.Space, e.Name.Local, e.From, e.To, e.ID, e.Type, e.Raw)
		if e.Name.Local == "features" {
			fs, err := ParseFeatures(e)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fs {
				fmt.Fprintf(&b, "  feature {%s}%s required=%v\n", f.Name.Space, f.Name.Local, f.Required)
			}
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	return b.String()
}
