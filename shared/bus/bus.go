// Package bus is the NATS plumbing shared by the broker and the edges: starting
// an embedded nats-server that lets edges in with least privilege, connecting
// to it (in-process or over TCP, with credentials and TLS) with Spillway's
// reconnect policy, and the interest messages edges send so that the broker
// keeps Mastodon's `subscribed:` keys alive.
//
// It owns no goroutines of its own beyond what nats-server and nats.go start;
// callers close what they open.
package bus

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/rawio"
)

// ServerConfig configures an embedded nats-server.
type ServerConfig struct {
	// Listen is the host:port of the client listener. Empty means no TCP
	// listener at all: only in-process connections (all-in-one mode).
	// Port 0 or -1 picks a free port.
	Listen string
	// Subjects are the subjects the instance uses; edges may subscribe to
	// its event and resync subjects and publish on its interest subject,
	// nothing else.
	Subjects channel.Subjects
	// Edges is what a client must present to be let in as an edge: a
	// Token, or a User and Password (CredsFile and NKeySeedFile are for
	// clients only). Zero lets any client in as an edge.
	Edges Credentials
	// TLS, with CertFile and KeyFile set, makes the listener speak TLS
	// only; VerifyClients then also requires a client certificate signed
	// by CAFile. Zero means plain text.
	TLS TLSFiles
	// Cluster, with Listen set, joins this server to the embedded servers
	// of other brokers in one NATS cluster.
	Cluster ClusterConfig
	// MaxPayload caps one NATS message in bytes. Zero means 8 MiB, enough
	// for any Mastodon status and far above Redis messages Rails produces.
	MaxPayload int32
	// Logger receives nats-server's log lines. Nil discards them.
	Logger *slog.Logger
}

// ClusterConfig joins the embedded servers of several brokers in one NATS
// cluster, so that an edge connected to any of them receives what the
// leading broker publishes and its interest reaches every broker. With
// ServerConfig.TLS's certificate and key set, routes speak TLS too, with
// the same certificate (which must then be valid for client and server
// authentication), and both ends verify each other with its CAFile.
type ClusterConfig struct {
	// Listen is the host:port routes from the other servers connect to;
	// port 0 or -1 picks a free one. Empty means no cluster.
	Listen string
	// Routes are the other servers' route URLs (nats://host:port). A route
	// to this server itself is ignored, so every server may be given the
	// same list.
	Routes []string
	// User and Password are required of every route to this server and
	// presented on the routes it opens (unless a route URL carries its
	// own). Both empty admit any route: only for a closed network.
	User, Password string
}

// DefaultMaxPayload is the embedded server's message size limit when
// ServerConfig.MaxPayload is zero.
const DefaultMaxPayload = 8 << 20

// Server is a running embedded nats-server.
type Server struct {
	ns *server.Server
	// secret is the password of the internal user, which only this
	// process's own connections know.
	secret string
}

// StartServer starts an embedded nats-server and waits until it accepts
// connections. The caller must call Shutdown.
func StartServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.Edges.validate(true); err != nil {
		return nil, fmt.Errorf("bus: edge credentials: %w", err)
	}
	srv := &Server{secret: rand.Text()}
	opts := &server.Options{
		ServerName: "spillway",
		NoSigs:     true,
		MaxPayload: cfg.MaxPayload,
		CustomClientAuthentication: &authenticator{
			secret: srv.secret,
			edges:  cfg.Edges,
			perms:  edgePermissions(cfg.Subjects),
		},
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
		host, port, err := listenAddress(cfg.Listen)
		if err != nil {
			return nil, err
		}
		opts.Host, opts.Port = host, port
	}
	if err := cfg.TLS.server(opts); err != nil {
		return nil, err
	}
	if cfg.Cluster.Listen != "" {
		if err := cfg.Cluster.apply(opts, cfg.TLS); err != nil {
			return nil, err
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("bus: new nats server: %w", err)
	}
	srv.ns = ns
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
			srv.Shutdown()
			return nil, fmt.Errorf("bus: nats server: %s", msg)
		default:
		}
		if ns.ReadyForConnections(50 * time.Millisecond) {
			return srv, nil
		}
		if time.Now().After(deadline) {
			srv.Shutdown()
			return nil, fmt.Errorf("bus: nats server not ready after %v", readyTimeout)
		}
	}
}

// readyTimeout bounds how long StartServer waits for a server that reported
// no error to accept connections.
const readyTimeout = 10 * time.Second

// listenAddress splits a host:port for nats-server's options.
func listenAddress(listen string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("bus: listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("bus: listen address %q: invalid port", listen)
	}
	if port == 0 {
		// nats-server reads 0 as its default (4222, 6222); everywhere
		// else in Go, port 0 asks for a free one.
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// apply sets up routes on a server's options; tlsFiles are the client
// listener's, whose certificate the routes use too.
func (c ClusterConfig) apply(opts *server.Options, tlsFiles TLSFiles) error {
	host, port, err := listenAddress(c.Listen)
	if err != nil {
		return fmt.Errorf("bus: cluster: %w", err)
	}
	if (c.User == "") != (c.Password == "") {
		return errors.New("bus: cluster: a route user needs a password, and a password a user")
	}
	// Route peers must have distinct names; the host name helps reading
	// the servers' logs, the suffix tells two on one host apart.
	hostname, _ := os.Hostname()
	opts.ServerName = "spillway-" + strings.ReplaceAll(hostname, " ", "_") + "-" + rand.Text()[:6]
	opts.Cluster.Name = "spillway"
	opts.Cluster.Host, opts.Cluster.Port = host, port
	opts.Cluster.Username, opts.Cluster.Password = c.User, c.Password
	for _, raw := range c.Routes {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || u.Scheme != "nats" {
			return fmt.Errorf("bus: cluster route %q: not a nats://host:port URL", redactedURL(raw))
		}
		if u.User == nil && c.User != "" {
			u.User = url.UserPassword(c.User, c.Password)
		}
		opts.Routes = append(opts.Routes, u)
	}
	if tlsFiles.CertFile == "" {
		return nil
	}
	if tlsFiles.CAFile == "" {
		return errors.New("bus: cluster: routes with TLS need the CA that signs the brokers' certificates")
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: tlsFiles.CertFile,
		KeyFile:  tlsFiles.KeyFile,
		CaFile:   tlsFiles.CAFile,
		Verify:   true,
	})
	if err != nil {
		return fmt.Errorf("bus: cluster TLS: %w", err)
	}
	// Each end of a route is both client and server: the CA verifies
	// either way.
	tc.RootCAs = tc.ClientCAs
	opts.Cluster.TLSConfig = tc
	opts.Cluster.TLSTimeout = tlsTimeout.Seconds()
	return nil
}

// redactedURL hides the credentials of a URL for an error message.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// ClusterAddr is the route listener's address; nil without a cluster.
func (s *Server) ClusterAddr() net.Addr {
	if a := s.ns.ClusterAddr(); a != nil {
		return a
	}
	return nil
}

// ClientURL is the URL edges connect to (tls:// when the listener speaks
// TLS).
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// HasSubscribers reports whether any client subscribes to subject.
func (s *Server) HasSubscribers(subject string) bool {
	return s.ns.GlobalAccount().SubscriptionInterest(subject)
}

// Addr is the client listener's address; nil without a listener.
func (s *Server) Addr() net.Addr { return s.ns.Addr() }

// Shutdown stops the server and waits until it has.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// Connect opens an in-process connection (no socket) as the internal user,
// who may publish and subscribe to anything: the broker and, in all-in-one
// mode, the edge.
func (s *Server) Connect(name string, logger *slog.Logger) (*nats.Conn, error) {
	return connect("", name, logger, nats.InProcessServer(s.ns), nats.UserInfo(internalUser, s.secret))
}

// ClientConfig configures a connection to a NATS server or cluster over
// the network.
type ClientConfig struct {
	// URL is one or more comma-separated server URLs.
	URL string
	// Name is the connection name the server shows.
	Name string
	// Credentials are presented to the server; zero presents none.
	Credentials Credentials
	// TLS: CAFile verifies the server (else the system's roots, when the
	// server speaks TLS); CertFile and KeyFile are a client certificate.
	// VerifyClients is a server setting and ignored here.
	TLS TLSFiles
	// Logger receives connection state changes. Nil discards them.
	Logger *slog.Logger
}

// Connect opens a client connection over TCP. The connection retries
// forever, also after authorization errors (credentials may be changing on
// the server): a NATS outage must not end an edge or the broker, which keep
// serving what they can and resume by themselves.
func Connect(cfg ClientConfig) (*nats.Conn, error) {
	opts, err := cfg.options()
	if err != nil {
		return nil, fmt.Errorf("bus: connect %s: %w", cfg.Name, err)
	}
	// Every event crosses this connection: raw syscalls spare the
	// runtime's monitor thread a wake-up per read and write (shared/rawio).
	opts = append(opts, nats.SetCustomDialer(rawio.Dialer{Timeout: 2 * time.Second}))
	return connect(cfg.URL, cfg.Name, cfg.Logger, opts...)
}

func connect(url, name string, logger *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var lastErr connErr
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.IgnoreAuthErrorAbort(),
		// Events buffered during a reconnect would be stale by the time they
		// are flushed; Mastodon loses them too. Keep a small buffer only.
		nats.ReconnectBufSize(1 << 20),
		// Connection state changes are logged once, with the address, by
		// the components (shared/readiness); here only at debug, except
		// the cause of a failing (re)connect, once per distinct cause.
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Debug("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if lastErr.changed(err) {
				logger.Warn("nats connection failed; retrying", "err", err)
			}
		}),
		nats.ConnectHandler(func(c *nats.Conn) {
			// Only a connection that failed first is news.
			if lastErr.changed(nil) {
				logger.Debug("nats connected", "url", c.ConnectedUrlRedacted())
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			lastErr.changed(nil)
			logger.Debug("nats reconnected", "url", c.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			logger.Warn("nats async error", "subject", subject, "err", err)
		}),
	}
	nc, err := nats.Connect(url, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("bus: connect %s: %w", name, err)
	}
	return nc, nil
}

// connErr remembers the last connection error, so that one failing the
// same way every 250 ms is logged once, not four times a second.
type connErr struct {
	mu   sync.Mutex
	last string
}

// changed records err (nil: connected) and reports whether it differs from
// the previous one.
func (c *connErr) changed(err error) bool {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if msg == c.last {
		return false
	}
	c.last = msg
	return true
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
