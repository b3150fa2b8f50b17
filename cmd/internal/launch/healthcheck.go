package launch

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spillway/spillway/shared/mastodonenv"
)

// probeTimeout bounds one probe of a local server: a health check, or
// check-config's look at who holds a listen address.
const probeTimeout = 5 * time.Second

// greetingTimeout bounds the wait for a NATS server's greeting, which it
// sends as soon as it accepts a connection.
const greetingTimeout = 2 * time.Second

// healthPath is the edge's health endpoint, as Mastodon serves it.
const healthPath = "/api/v1/streaming/health"

// healthcheck probes the server that runs with t's configuration, on this
// host: the edge's health endpoint (200 OK only while it can deliver), or
// the broker's embedded NATS listener (or, when it publishes to an external
// NATS, its -metrics-listen endpoint). It is what a container HEALTHCHECK
// runs, since the image has no HTTP client; it reads the configuration the
// way the server does, so it needs no arguments of its own.
func healthcheck(ctx context.Context, t toolTarget, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	s, err := Load(t.env, t.root, t.name == "edge")
	if err != nil {
		return err
	}
	var status string
	if t.name == "edge" {
		status, err = probeEdge(ctx, s.Listen, s.Env)
	} else {
		status, err = probeBroker(ctx, s, t.metricsListen)
	}
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	_, err = fmt.Fprintln(stdout, status)
	return err
}

// probeBroker checks that the broker's embedded NATS server accepts
// clients, or that its metrics endpoint answers when it embeds none.
func probeBroker(ctx context.Context, s Settings, metricsListen string) (string, error) {
	if s.NATSSet {
		if metricsListen == "" {
			return "", errors.New("the broker publishes to an external NATS (STREAMING_NATS_URL) and has no listener of its own to probe: give -metrics-listen to both the broker and the health check")
		}
		addr, err := localAddress(metricsListen)
		if err != nil {
			return "", fmt.Errorf("-metrics-listen %s: %w", metricsListen, err)
		}
		u := "http://" + addr + "/metrics"
		if _, err := httpGet(ctx, http.DefaultTransport, u, false); err != nil {
			return "", err
		}
		return "OK (" + u + ")", nil
	}
	listen := s.NATSListen
	if listen == "" {
		listen = defaultNATSListen
	}
	addr, err := localAddress(listen)
	if err != nil {
		return "", fmt.Errorf("STREAMING_NATS_LISTEN %s: %w", listen, err)
	}
	if err := probeNATS(ctx, addr); err != nil {
		return "", err
	}
	return "OK (NATS on " + addr + ")", nil
}

// probeEdge GETs the health endpoint of the edge listening on l.
func probeEdge(ctx context.Context, l mastodonenv.Listen, env mastodonenv.Env) (string, error) {
	tr := &http.Transport{DisableKeepAlives: true}
	host := ""
	if l.Network == "unix" {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", l.Address)
		}
		host = "localhost"
	} else {
		addr, err := localAddress(l.Address)
		if err != nil {
			return "", fmt.Errorf("PORT/BIND %s: %w", l.Address, err)
		}
		host = addr
	}
	scheme := "http"
	if env.Get("STREAMING_TLS_CERT") != "" {
		// The certificate names the public host, not the loopback address
		// probed here; what is checked is that this server answers.
		scheme = "https"
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	u := scheme + "://" + host + healthPath
	body, err := httpGet(ctx, tr, u, true)
	if err != nil {
		if l.Network == "unix" {
			return "", fmt.Errorf("SOCKET %s: %w", l.Address, err)
		}
		return "", err
	}
	return body + " (" + u + ")", nil
}

// httpGet fetches u and fails unless the answer is 200; it returns the
// first line of the body when wantBody is set.
func httpGet(ctx context.Context, rt http.RoundTripper, u string, wantBody bool) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	line := ""
	if wantBody || resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		line, _, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s %s", u, resp.Status, line)
	}
	return line, nil
}

// probeNATS checks that a NATS server answers on addr: a NATS server greets
// every client with an INFO line before any authentication, so this works
// whatever credentials the server demands, and costs the server nothing
// beyond one accepted connection.
func probeNATS(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(greetingTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = c.SetDeadline(deadline)
	greeting, err := bufio.NewReaderSize(c, 16).Peek(5)
	if err != nil {
		return fmt.Errorf("NATS on %s: no greeting (not a NATS server?): %w", addr, err)
	}
	if string(greeting) != "INFO " {
		return fmt.Errorf("NATS on %s: not a NATS server (it said %q)", addr, greeting)
	}
	return nil
}

// localAddress turns a listen address into one to connect to on this host:
// an empty or unspecified host (all interfaces) becomes loopback. A port of
// 0 or -1 (chosen at random when listening) cannot be probed.
func localAddress(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	if port == "0" || port == "-1" {
		return "", errors.New("the port is chosen at random when listening, so there is nothing fixed to probe")
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}
