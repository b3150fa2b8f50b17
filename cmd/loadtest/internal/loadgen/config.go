// Package loadgen drives a load test against a server speaking Mastodon's
// streaming API: it opens receive-only SSE and WebSocket clients, publishes
// marked Mastodon statuses into Redis, and measures delivery latency, loss,
// duplicates, reordering, connect behaviour and the server's CPU and memory.
package loadgen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spillway/spillway/shared/benchdata/payload"
)

// Limits that keep a run bounded whatever the flags say.
const (
	MaxClients     = 100_000
	maxTokens      = 1_000_000
	maxTokenLine   = 64 << 10
	maxSourceIPs   = 250
	maxPayloadSize = 1 << 20
)

// Token is one access token and, for per-account streams, its account id.
type Token struct {
	Value     string
	AccountID string
}

// Config is a complete, validated description of a run.
type Config struct {
	// BaseURL is the server's http:// base URL; its host must be loopback.
	BaseURL *url.URL
	// Clients is the number of clients (fixed mode).
	Clients int
	// SSERatio is the fraction of clients (per stream) that use SSE.
	SSERatio float64
	// Streams is the weighted stream mix.
	Streams []Stream
	// WSSubscribe subscribes WebSockets by message instead of ?stream=.
	WSSubscribe bool
	// Tokens are assigned to clients round-robin; may be empty for servers
	// that allow anonymous streaming.
	Tokens []Token
	// ConnectRate is new connections per second.
	ConnectRate float64
	// SourceIPs are local addresses rotated over clients; empty = kernel's choice.
	SourceIPs []net.IP
	// ConnectTimeout bounds dial + handshake (+ ":)" for SSE).
	ConnectTimeout time.Duration
	// Rate is publish ticks per second; each tick publishes one event on every
	// target channel.
	Rate float64
	// PayloadSize is the approximate size of each published message.
	PayloadSize int
	// Authors, when non-empty, write the measured and warm-up statuses in
	// rotation (by sequence number), so servers apply per-author filters
	// (blocks, mutes, domain blocks). Probes keep the neutral default author.
	Authors []payload.Author
	// Warmup is published (and delivered) but not measured.
	Warmup time.Duration
	// Duration is the measured window per step.
	Duration time.Duration
	// MaxTicks, when positive, also ends a measured window after that many
	// ticks (deterministic tests).
	MaxTicks int
	// ProbeTimeout bounds the wait for every client to see a probe.
	ProbeTimeout time.Duration
	// ProbeInterval is the pause between probe rounds.
	ProbeInterval time.Duration
	// Drain is the longest wait for in-flight deliveries after a window.
	Drain time.Duration
	// ServerPID, when positive, is sampled for CPU and RSS.
	ServerPID int
	// Ramp, when non-nil, selects ramp mode.
	Ramp *Ramp
	// Instance, when non-nil, selects the instance scenario (Rate is then
	// events per second).
	Instance *Instance
	// Soak, when non-nil, adds churn and resource sampling to the window.
	Soak *Soak
	// Progress receives a status line every ProgressInterval; nil disables it.
	Progress         io.Writer
	ProgressInterval time.Duration
}

// Ramp describes ramp mode: steps of clients from Start to Max.
type Ramp struct {
	Start, Step, Max int
	// P99Bound is the largest acceptable p99 latency of a step.
	P99Bound time.Duration
}

// Validate checks the configuration for consistency and bounds.
func (c *Config) Validate() error {
	if c.BaseURL == nil || c.BaseURL.Scheme != "http" || c.BaseURL.Host == "" {
		return errors.New("-url must be an http:// URL with a host")
	}
	if ip := net.ParseIP(c.BaseURL.Hostname()); ip != nil && !ip.IsLoopback() {
		return fmt.Errorf("refusing non-loopback target %s", ip)
	}
	if c.Instance != nil && len(c.Tokens) == 0 {
		return errors.New("an instance run needs -tokens with account ids")
	}
	if c.Ramp == nil && (c.Clients < 1 || c.Clients > MaxClients) {
		return fmt.Errorf("-clients must be 1..%d", MaxClients)
	}
	if r := c.Ramp; r != nil {
		if r.Start < 1 || r.Step < 1 || r.Max < r.Start || r.Max > MaxClients {
			return fmt.Errorf("ramp needs 1 <= -ramp-start <= -ramp-max <= %d and -ramp-step >= 1", MaxClients)
		}
		if r.P99Bound <= 0 {
			return errors.New("-p99-bound must be positive")
		}
	}
	if c.SSERatio < 0 || c.SSERatio > 1 {
		return errors.New("-sse-ratio must be in 0..1")
	}
	if len(c.Streams) == 0 {
		return errors.New("no streams")
	}
	for _, s := range c.Streams {
		if !s.NeedsAccount() {
			continue
		}
		if len(c.Tokens) == 0 {
			return fmt.Errorf("stream %s needs -tokens with account ids", s.Label())
		}
		for i, t := range c.Tokens {
			if t.AccountID == "" {
				return fmt.Errorf("stream %s needs an account id for token %d (token<TAB>account_id or -accounts)", s.Label(), i+1)
			}
		}
	}
	if c.ConnectRate <= 0 {
		return errors.New("-connect-rate must be positive")
	}
	if c.Instance != nil {
		if c.Ramp != nil || c.Soak != nil {
			return errors.New("an instance run is neither a ramp nor a soak")
		}
		if !(c.Rate > 0 && c.Rate <= 1_000_000) {
			return errors.New("-rate must be in (0, 1000000] events/s")
		}
		if err := c.Instance.validate(c); err != nil {
			return err
		}
	} else if !(c.Rate > 0 && c.Rate <= 10_000) {
		return errors.New("-rate must be in (0, 10000]")
	}
	if c.Soak != nil {
		if c.Ramp != nil {
			return errors.New("a soak is not a ramp")
		}
		if err := c.Soak.validate(c); err != nil {
			return err
		}
	}
	if c.PayloadSize < 0 || c.PayloadSize > maxPayloadSize {
		return fmt.Errorf("-payload-size must be 0..%d", maxPayloadSize)
	}
	if len(c.Authors) > payload.MaxAuthors {
		return fmt.Errorf("at most %d authors", payload.MaxAuthors)
	}
	if c.Duration <= 0 || c.Warmup < 0 || c.ConnectTimeout <= 0 || c.ProbeTimeout <= 0 ||
		c.ProbeInterval <= 0 || c.Drain < 0 {
		return errors.New("durations must be positive (-warmup and -drain may be 0)")
	}
	if len(c.SourceIPs) > maxSourceIPs {
		return fmt.Errorf("at most %d source IPs", maxSourceIPs)
	}
	for _, ip := range c.SourceIPs {
		if !ip.IsLoopback() {
			return fmt.Errorf("source IP %s is not a loopback address", ip)
		}
	}
	return nil
}

// ParseTokens reads a token file: one token per line, optionally followed by
// a tab (or spaces) and the token's account id. Blank lines and lines
// starting with '#' are skipped.
func ParseTokens(r io.Reader) ([]Token, error) {
	var out []Token
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxTokenLine)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) > 2 {
			// Never echo the line: it holds a token.
			return nil, fmt.Errorf("tokens line %d: want token[<TAB>account_id]", line)
		}
		t := Token{Value: f[0]}
		if len(f) == 2 {
			t.AccountID = f[1]
		}
		if len(out) == maxTokens {
			return nil, fmt.Errorf("more than %d tokens", maxTokens)
		}
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	return out, nil
}

// ParseAccounts reads one account id per line (blank and '#' lines skipped)
// and assigns them to tokens by position.
func ParseAccounts(r io.Reader, tokens []Token) error {
	sc := bufio.NewScanner(r)
	i := 0
	for sc.Scan() {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if i >= len(tokens) {
			return fmt.Errorf("accounts file has more ids than there are tokens (%d)", len(tokens))
		}
		tokens[i].AccountID = s
		i++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read accounts: %w", err)
	}
	if i != len(tokens) {
		return fmt.Errorf("accounts file has %d ids for %d tokens", i, len(tokens))
	}
	return nil
}

// ParseSourceIPs parses -source-ips: "" or "0" for none, a count N for
// 127.0.0.2..127.0.0.(N+1), or a comma-separated list of loopback IPs.
func ParseSourceIPs(s string) ([]net.IP, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return nil, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > maxSourceIPs {
			return nil, fmt.Errorf("-source-ips count must be 0..%d", maxSourceIPs)
		}
		out := make([]net.IP, n)
		for i := range n {
			out[i] = net.IPv4(127, 0, 0, byte(i+2))
		}
		return out, nil
	}
	var out []net.IP
	for part := range strings.SplitSeq(s, ",") {
		ip := net.ParseIP(strings.TrimSpace(part))
		if ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("-source-ips: %q is not a loopback IP", part)
		}
		out = append(out, ip)
	}
	return out, nil
}
