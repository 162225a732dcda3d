package status

import (
	"context"
	"html/template"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/xmpp-s2s/federation/diagnose"
	"github.com/xmpp-s2s/federation/s2s"
)

// DefaultFailures is how many failures the page keeps when
// Options.Failures is 0.
const DefaultFailures = 50

// Options configure a Handler; the zero value is usable.
type Options struct {
	// Diagnose runs the diagnosis of the form for a (local, remote) pair;
	// nil leaves the form out. Most hosts call diagnose.Run with the
	// configuration their Manager uses.
	Diagnose func(ctx context.Context, local, remote string) (*diagnose.Report, error)
	// Locals are the local domains offered in the form; with none, the
	// form asks for the local domain as text.
	Locals []string
	// Metrics, if set, is served at "metrics" beside the page, such as
	// promhttp.Handler() with the s2s/metrics Collector registered.
	Metrics http.Handler
	// Failures bounds the failures kept; 0 means DefaultFailures.
	Failures int
	// DiagnoseTimeout bounds one diagnosis from the form; 0 means 2 minutes.
	DiagnoseTimeout time.Duration
	// Now is the page's clock; nil means time.Now.
	Now func() time.Time
}

// Handler serves the status page. Create it with New; feed it events with
// Observe and give it the Manager's Links with Attach. It is safe for
// concurrent use.
type Handler struct {
	opts  Options
	links atomic.Pointer[func() []s2s.LinkInfo]
	fails failures
	mux   *http.ServeMux
}

// New returns a Handler for opts.
func New(opts Options) *Handler {
	if opts.Failures <= 0 {
		opts.Failures = DefaultFailures
	}
	if opts.DiagnoseTimeout <= 0 {
		opts.DiagnoseTimeout = 2 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{opts: opts, fails: failures{max: opts.Failures}}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /{$}", h.index)
	h.mux.HandleFunc("GET /diagnose", h.diagnoseForm)
	h.mux.HandleFunc("POST /diagnose", h.diagnose)
	if opts.Metrics != nil {
		h.mux.Handle("GET /metrics", opts.Metrics)
	}
	return h
}

// Attach gives the Handler the source of its link table, normally a
// Manager's Links method.
func (h *Handler) Attach(links func() []s2s.LinkInfo) { h.links.Store(&links) }

// Observe records failures from the Manager's events. It is an
// s2s.Observer.
func (h *Handler) Observe(e s2s.Event) {
	if f, ok := failureOf(e, h.opts.Now()); ok {
		h.fails.add(f)
	}
}

// Failures returns the failures kept, newest first.
func (h *Handler) Failures() []Failure { return h.fails.newest() }

// ServeHTTP serves the page, the diagnosis form and the metrics.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	h.mux.ServeHTTP(w, r)
}

type indexData struct {
	Now      time.Time
	Attached bool
	Links    []s2s.LinkInfo
	Failures []Failure
	Form     *formData
	Metrics  bool
}

type formData struct {
	Locals []string
	Local  string
	Remote string
}

func (h *Handler) form(local, remote string) *formData {
	if h.opts.Diagnose == nil {
		return nil
	}
	if local == "" && len(h.opts.Locals) > 0 {
		local = h.opts.Locals[0]
	}
	return &formData{Locals: h.opts.Locals, Local: local, Remote: remote}
}

func (h *Handler) index(w http.ResponseWriter, r *http.Request) {
	d := indexData{Now: h.opts.Now(), Failures: h.fails.newest(), Form: h.form("", ""), Metrics: h.opts.Metrics != nil}
	if src := h.links.Load(); src != nil {
		d.Attached = true
		d.Links = (*src)()
	}
	render(w, http.StatusOK, "index", d)
}

type reportData struct {
	Form   *formData
	Report *diagnose.Report
	Error  string
}

func (h *Handler) diagnoseForm(w http.ResponseWriter, r *http.Request) {
	if h.opts.Diagnose == nil {
		http.NotFound(w, r)
		return
	}
	render(w, http.StatusOK, "diagnose", reportData{Form: h.form("", "")})
}

func (h *Handler) diagnose(w http.ResponseWriter, r *http.Request) {
	if h.opts.Diagnose == nil {
		http.NotFound(w, r)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		render(w, http.StatusBadRequest, "diagnose", reportData{Form: h.form("", ""), Error: "The form could not be read: " + err.Error()})
		return
	}
	local, remote := r.PostForm.Get("local"), r.PostForm.Get("remote")
	d := reportData{Form: h.form(local, remote)}
	if local == "" || remote == "" {
		d.Error = "Give both the local and the remote domain."
		render(w, http.StatusBadRequest, "diagnose", d)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.DiagnoseTimeout)
	defer cancel()
	rep, err := h.opts.Diagnose(ctx, local, remote)
	if err != nil {
		d.Error = err.Error()
		render(w, http.StatusBadRequest, "diagnose", d)
		return
	}
	d.Report = rep
	render(w, http.StatusOK, "diagnose", d)
}

func render(w http.ResponseWriter, code int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	// A failed write means the client went away; nothing is left to tell it.
	_ = pages.ExecuteTemplate(w, name, data)
}

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"ago": func(now, t time.Time) string {
		d := now.Sub(t)
		switch {
		case d < time.Second:
			return "just now"
		case d < time.Hour:
			return d.Round(time.Second).String() + " ago"
		}
		return d.Round(time.Minute).String() + " ago"
	},
	"utc":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"status": func(s diagnose.Status) string { return s.String() },
}).Parse(templates))
