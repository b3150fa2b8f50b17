// Package bus is the NATS plumbing shared by the broker and the edges: starting
// an embedded nats-server, connecting to it (in-process or over TCP) with
// Spillway's reconnect policy, and the interest messages edges send so that the
// broker keeps Mastodon's `subscribed:` keys alive.
//
// It owns no goroutines of its own beyond what nats-server and nats.go start;
// callers close what they open.
package bus

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerConfig configures an embedded nats-server.
type ServerConfig struct {
	// Listen is the host:port of the client listener. Empty means no TCP
	// listener at all: only in-process connections (all-in-one mode).
	// Port 0 or -1 picks a free port.
	Listen string
	// MaxPayload caps one NATS message in bytes. Zero means 8 MiB, enough
	// for any Mastodon status and far above Redis messages Rails produces.
	MaxPayload int32
	// Logger receives nats-server's log lines. Nil discards them.
	Logger *slog.Logger
}

// DefaultMaxPayload is the embedded server's message size limit when
// ServerConfig.MaxPayload is zero.
const DefaultMaxPayload = 8 << 20

// StartServer starts an embedded nats-server and waits until it accepts
// connections. The caller must call Shutdown (and WaitForShutdown).
func StartServer(cfg ServerConfig) (*server.Server, error) {
	opts := &server.Options{
		ServerName: "spillway",
		NoSigs:     true,
		MaxPayload: cfg.MaxPayload,
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = DefaultMaxPayload
	}
	// A slow edge must not be able to make the server buffer without bound;
	// the default pending limit (64 MiB) is kept, but stated explicitly.
	opts.MaxPending = 64 << 20
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, portStr, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("bus: listen address %q: %w", cfg.Listen, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil || port < -1 || port > 65535 {
			return nil, fmt.Errorf("bus: listen address %q: invalid port", cfg.Listen)
		}
		if port == 0 {
			// nats-server reads 0 as its default, 4222; everywhere else
			// in Go, port 0 asks for a free one.
			port = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, port
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("bus: new nats server: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	log := &serverLog{l: logger.With("component", "nats-server"), fatal: make(chan string, 1)}
	ns.SetLoggerV2(log, false, false, false)
	ns.Start()
	// nats-server reports a listener it cannot open (address in use, host
	// unknown, address not on this host) only through its logger; waiting
	// for readiness alone would hide the cause behind a timeout.
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case msg := <-log.fatal:
			ns.Shutdown()
			ns.WaitForShutdown()
			return nil, fmt.Errorf("bus: nats server: %s", msg)
		default:
		}
		if ns.ReadyForConnections(50 * time.Millisecond) {
			return ns, nil
		}
		if time.Now().After(deadline) {
			ns.Shutdown()
			ns.WaitForShutdown()
			return nil, fmt.Errorf("bus: nats server not ready after %v", readyTimeout)
		}
	}
}

// readyTimeout bounds how long StartServer waits for a server that reported
// no error to accept connections.
const readyTimeout = 10 * time.Second

// Connect opens a client connection. With ns non-nil the connection is
// in-process (no socket, url ignored); otherwise url is dialled over TCP.
// The connection retries forever: a NATS outage must not end an edge or the
// broker, which keep serving what they can and resume by themselves.
func Connect(ns *server.Server, url, name string, logger *slog.Logger) (*nats.Conn, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		// Events buffered during a reconnect would be stale by the time they
		// are flushed; Mastodon loses them too. Keep a small buffer only.
		nats.ReconnectBufSize(1 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			logger.Info("nats reconnected", "url", c.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			logger.Warn("nats async error", "subject", subject, "err", err)
		}),
	}
	if ns != nil {
		opts = append(opts, nats.InProcessServer(ns))
		url = ""
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("bus: connect %s: %w", name, err)
	}
	return nc, nil
}

// serverLog routes nats-server's printf-style logger into slog and keeps
// the first fatal message for StartServer.
type serverLog struct {
	l     *slog.Logger
	fatal chan string // capacity 1; later fatal messages are only logged
}

func (a *serverLog) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a *serverLog) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a *serverLog) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *serverLog) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *serverLog) Tracef(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }

func (a *serverLog) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	a.l.Error(msg)
	select {
	case a.fatal <- msg:
	default:
	}
}

// HeaderReceived is the NATS header in which the broker records when it
// received a message from Redis (Unix nanoseconds, decimal), so edges can
// measure publish→write latency when Rails sent no queued_at.
const HeaderReceived = "Spillway-Received"
