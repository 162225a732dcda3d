package interop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
)

// ErrStandalone is wrapped by the error of a Standalone.Do whose function
// failed or skipped, the way a test would have.
var ErrStandalone = errors.New("interop: peer start-up failed")

// Standalone lets a program that is not a test, such as the benchmark
// harness (examples/bench), start peers with StartProsody and
// StartEjabberd: it is a testing.TB whose Fatal and Skip end the function
// given to Do, whose TempDir lives under one directory of its own, and whose
// cleanups run on Close. Logs go to the writer given to NewStandalone.
//
// The point is that the peers are started by exactly the code the interop
// tests prove, not by a second copy of it.
//
// The zero value is not usable; call NewStandalone. Its methods may be
// called from several goroutines, as a test's may.
type Standalone struct {
	// testing.TB is embedded, and nil, only because the interface has an
	// unexported method: every method of TB is defined below, so the nil
	// value is never called.
	testing.TB

	name   string
	log    io.Writer
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	base     string // parent of every TempDir, made on first use
	dirs     int
	cleanups []func()
	failed   bool
	skipped  bool
	why      []string
}

// NewStandalone returns a Standalone named name (its Name) that writes
// Log and Error lines to log (io.Discard if nil).
func NewStandalone(name string, log io.Writer) *Standalone {
	if log == nil {
		log = io.Discard
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Standalone{name: name, log: log, ctx: ctx, cancel: cancel}
}

// Do runs f on a goroutine of its own, where FailNow, Fatal and Skip end
// it early as they end a test, and returns an error wrapping ErrStandalone
// when f failed or skipped, with the messages that said why. What f
// registered with Cleanup stays until Close, so peers it started keep
// running.
func (s *Standalone) Do(f func(t testing.TB)) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(s)
	}()
	<-done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed || s.skipped {
		return fmt.Errorf("%w: %s: %v", ErrStandalone, s.name, s.why)
	}
	return nil
}

// Close runs the registered cleanups, last first, as a test's end does,
// and then removes the temporary directories. It returns an error wrapping
// ErrStandalone when a cleanup reported one.
func (s *Standalone) Close() error {
	s.cancel()
	for {
		s.mu.Lock()
		n := len(s.cleanups)
		if n == 0 {
			failed, why := s.failed, s.why
			s.mu.Unlock()
			if failed {
				return fmt.Errorf("%w: %s: %v", ErrStandalone, s.name, why)
			}
			return nil
		}
		f := s.cleanups[n-1]
		s.cleanups = s.cleanups[:n-1]
		s.mu.Unlock()
		// A cleanup may call FailNow; it ends only that cleanup.
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		<-done
	}
}

func (s *Standalone) fail(skip bool, msg string) {
	s.mu.Lock()
	if skip {
		s.skipped = true
	} else {
		s.failed = true
	}
	if msg != "" {
		s.why = append(s.why, msg)
	}
	s.mu.Unlock()
	if msg != "" {
		fmt.Fprintf(s.log, "%s: %s\n", s.name, msg)
	}
}

// Cleanup registers f to run at Close.
func (s *Standalone) Cleanup(f func()) {
	s.mu.Lock()
	s.cleanups = append(s.cleanups, f)
	s.mu.Unlock()
}

// Error logs and marks the Standalone failed.
func (s *Standalone) Error(args ...any) { s.fail(false, fmt.Sprintln(args...)) }

// Errorf logs and marks the Standalone failed.
func (s *Standalone) Errorf(format string, args ...any) { s.fail(false, fmt.Sprintf(format, args...)) }

// Fail marks the Standalone failed.
func (s *Standalone) Fail() { s.fail(false, "") }

// FailNow marks the Standalone failed and ends the calling goroutine,
// which must be the one Do (or Close, for a cleanup) started.
func (s *Standalone) FailNow() { s.fail(false, ""); runtime.Goexit() }

// Failed reports whether anything failed.
func (s *Standalone) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// Fatal is Error followed by FailNow.
func (s *Standalone) Fatal(args ...any) { s.Error(args...); runtime.Goexit() }

// Fatalf is Errorf followed by FailNow.
func (s *Standalone) Fatalf(format string, args ...any) {
	s.Errorf(format, args...)
	runtime.Goexit()
}

// Helper does nothing: there are no test line numbers to adjust.
func (s *Standalone) Helper() {}

// Log writes a line to the log.
func (s *Standalone) Log(args ...any) { fmt.Fprintf(s.log, "%s: %s", s.name, fmt.Sprintln(args...)) }

// Logf writes a formatted line to the log.
func (s *Standalone) Logf(format string, args ...any) {
	fmt.Fprintf(s.log, "%s: %s\n", s.name, fmt.Sprintf(format, args...))
}

// Name returns the name given to NewStandalone.
func (s *Standalone) Name() string { return s.name }

// Setenv sets an environment variable for the rest of the process and
// restores it at Close.
func (s *Standalone) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	if err := os.Setenv(key, value); err != nil {
		s.Fatal(err)
	}
	s.Cleanup(func() {
		if had {
			os.Setenv(key, old)
		} else {
			os.Unsetenv(key)
		}
	})
}

// Chdir changes the working directory and restores it at Close.
func (s *Standalone) Chdir(dir string) {
	old, err := os.Getwd()
	if err != nil {
		s.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		s.Fatal(err)
	}
	s.Cleanup(func() { os.Chdir(old) })
}

// Skip logs, marks the Standalone skipped and ends the calling goroutine.
// Outside a test a skipped peer is an error of Do.
func (s *Standalone) Skip(args ...any) { s.fail(true, fmt.Sprintln(args...)); runtime.Goexit() }

// SkipNow marks the Standalone skipped and ends the calling goroutine.
func (s *Standalone) SkipNow() { s.fail(true, ""); runtime.Goexit() }

// Skipf is Skip with a format.
func (s *Standalone) Skipf(format string, args ...any) {
	s.fail(true, fmt.Sprintf(format, args...))
	runtime.Goexit()
}

// Skipped reports whether anything skipped.
func (s *Standalone) Skipped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skipped
}

// TempDir returns a new directory, removed at Close after the cleanups
// registered later have run. All of them live in one private parent, so
// that StartEjabberd, which opens its directory's parent to the ejabberd
// user, never touches the system's temporary directory itself.
func (s *Standalone) TempDir() string {
	s.mu.Lock()
	if s.base == "" {
		base, err := os.MkdirTemp("", "interop-standalone-")
		if err != nil {
			s.mu.Unlock()
			s.Fatal(err)
		}
		s.base = base
		s.cleanups = append(s.cleanups, func() { os.RemoveAll(base) })
	}
	s.dirs++
	dir := filepath.Join(s.base, strconv.Itoa(s.dirs))
	s.mu.Unlock()
	if err := os.Mkdir(dir, 0o700); err != nil {
		s.Fatal(err)
	}
	return dir
}

// ArtifactDir returns a new temporary directory, as TempDir.
func (s *Standalone) ArtifactDir() string { return s.TempDir() }

// Attr logs a key and value.
func (s *Standalone) Attr(key, value string) { s.Logf("attr %s=%s", key, value) }

// Context is cancelled when Close begins.
func (s *Standalone) Context() context.Context { return s.ctx }

// Output returns the log writer.
func (s *Standalone) Output() io.Writer { return s.log }
