// Package readiness tracks the services a Spillway process depends on
// (NATS, Postgres, the Redis subscription) from the outcomes the process
// observes anyway. Each change of state is logged once, at warn when a
// dependency is lost or unreachable and at info when it is back, with the
// dependency's address (never a secret); the whole set is reported as JSON
// for readiness probes, each dependency with its state and since when.
//
// One record feeds both, so the log lines and the probe cannot disagree.
package readiness

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// State is what is known of a dependency.
type State string

const (
	// Unknown means no outcome has been observed yet.
	Unknown State = "unknown"
	// Up means the dependency answered last time.
	Up State = "up"
	// Down means it could not be reached last time.
	Down State = "down"
)

// Set is the dependencies of one process. It is safe for concurrent use.
type Set struct {
	logger *slog.Logger
	mu     sync.Mutex
	deps   []*Dependency // in the order added; guarded by mu
}

// NewSet returns an empty set whose dependencies log to logger (nil
// discards).
func NewSet(logger *slog.Logger) *Set {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Set{logger: logger}
}

// Add returns the dependency called name, adding it, in state Unknown since
// now, when the set has none of that name yet; an existing one keeps its
// address. address appears in reports and log lines, so it must hold no
// secret: pass URLs through RedactURL.
func (s *Set) Add(name, address string) *Dependency {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.deps {
		if d.name == name {
			return d
		}
	}
	d := &Dependency{
		name:    name,
		address: address,
		logger:  s.logger.With("dependency", name, "address", address),
		state:   Unknown,
		since:   time.Now(),
	}
	s.deps = append(s.deps, d)
	return d
}

// Report is the readiness of a set: ready when every dependency is up.
type Report struct {
	Ready        bool              `json:"ready"`
	Dependencies map[string]Status `json:"dependencies"`
}

// Status is one dependency's entry in a Report.
type Status struct {
	State State `json:"state"`
	// Since is when the dependency entered State (RFC 3339 in JSON, UTC,
	// to the millisecond); for Unknown, when tracking began.
	Since   time.Time `json:"since"`
	Address string    `json:"address,omitempty"`
	// Error is the latest error while Down.
	Error string `json:"error,omitempty"`
}

// Report snapshots every dependency. It runs no query: states come from
// outcomes already observed.
func (s *Set) Report() Report {
	s.mu.Lock()
	deps := append([]*Dependency(nil), s.deps...)
	s.mu.Unlock()
	r := Report{Ready: true, Dependencies: make(map[string]Status, len(deps))}
	for _, d := range deps {
		st := d.Status()
		r.Dependencies[d.name] = st
		r.Ready = r.Ready && st.State == Up
	}
	return r
}

// ServeHTTP answers a readiness probe with the set's Report as JSON: 200
// when ready, 503 when not.
func (s *Set) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	r := s.Report()
	WriteJSON(w, r.Ready, r)
}

// WriteJSON writes v as a readiness answer: JSON, never cached, 200 when
// ready and 503 when not.
func WriteJSON(w http.ResponseWriter, ready bool, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Cache-Control"] = []string{"private, no-store"}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// Dependency is the tracked state of one dependency. It is safe for
// concurrent use; observing the state it is already in costs two atomic
// operations, so it may sit on a query path.
type Dependency struct {
	name, address string
	logger        *slog.Logger

	up       atomic.Bool
	observed atomic.Int64 // Unix nanoseconds of the latest outcome, 0 before any

	mu    sync.Mutex
	state State     // guarded by mu
	since time.Time // guarded by mu
	err   string    // guarded by mu
}

// Name returns the dependency's name.
func (d *Dependency) Name() string { return d.name }

// Observe records an outcome: nil when the dependency answered, otherwise
// the error that shows it could not be reached. The first outcome and every
// change of state are logged: "<name> connected" or "<name> unreachable"
// first, then "<name> lost" (warn) and "<name> back" (info, with how long
// it was down).
func (d *Dependency) Observe(err error) {
	now := time.Now()
	d.observed.Store(now.UnixNano())
	if err == nil && d.up.Load() {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		if d.state == Up {
			return
		}
		if d.state == Unknown {
			d.logger.Info(d.name + " connected")
		} else {
			d.logger.Info(d.name+" back", "down_for", now.Sub(d.since).Round(time.Millisecond).String())
		}
		d.state, d.since, d.err = Up, now, ""
		d.up.Store(true)
		return
	}
	d.err = err.Error()
	switch d.state {
	case Down:
		return
	case Unknown:
		d.logger.Warn(d.name+" unreachable", "error", d.err)
	case Up:
		d.logger.Warn(d.name+" lost", "error", d.err)
	}
	d.state, d.since = Down, now
	d.up.Store(false)
}

// Up reports whether the latest outcome was an answer.
func (d *Dependency) Up() bool { return d.up.Load() }

// Observed returns when the latest outcome was recorded (zero before any),
// so a prober can skip its probe while real traffic tells enough.
func (d *Dependency) Observed() time.Time {
	n := d.observed.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Status returns the dependency's current entry.
func (d *Dependency) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Status{State: d.state, Since: d.since.UTC().Truncate(time.Millisecond), Address: d.address, Error: d.err}
}

// RedactURL returns a service URL fit for logs and reports: a password in
// the user part becomes "xxxxx", a user part without a password (a token,
// for NATS) becomes "xxxxx" entirely, and any query or fragment, which
// may carry options with secrets, is dropped. A comma-separated list (NATS
// servers) is redacted entry by entry.
func RedactURL(raw string) string {
	if strings.Contains(raw, ",") {
		parts := strings.Split(raw, ",")
		for i, p := range parts {
			parts[i] = RedactURL(strings.TrimSpace(p))
		}
		return strings.Join(parts, ",")
	}
	scheme, rest := "", raw
	if i := strings.Index(raw, "://"); i >= 0 {
		scheme, rest = raw[:i+3], raw[i+3:]
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		user, _, hasPassword := strings.Cut(authority[:at], ":")
		if !hasPassword || user == "" {
			user = "xxxxx"
		} else {
			user += ":xxxxx"
		}
		authority = user + authority[at:]
	}
	return scheme + authority + path
}
