package launch

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/mastodonenv"
	"github.com/spillway/spillway/shared/testenv"
)

// natsAnyRe finds the embedded server's URL whatever its scheme.
var natsAnyRe = regexp.MustCompile(`NATS listening for edges on ((?:nats|tls)://[0-9.:]+)`)

// forgedStatus is what an intruder would put on a user's home timeline.
const forgedStatus = `{"event":"update","payload":{"id":"666","language":"en","content":"forged","account":{"id":"109000000000000002","username":"bob","acct":"bob"},"mentions":[],"media_attachments":[]}}`

// securedSplit runs a broker with the given NATS settings and one edge with
// edgeEnv, with alice's user stream open on it; it returns the broker's
// NATS URL and alice's stream once her home key shows the edge subscribed.
func securedSplit(t *testing.T, rdb *redis.Client, ns string, brokerEnv, edgeEnv map[string]string) (string, *sseStream) {
	t.Helper()
	benv := baseEnv(t, ns)
	benv["STREAMING_NATS_LISTEN"] = "127.0.0.1:-1"
	for k, v := range brokerEnv {
		benv[k] = v
	}
	blog := command(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, benv)
	natsURL := blog.await(t, natsAnyRe)
	env := baseEnv(t, ns)
	env["STREAMING_NATS_URL"] = natsURL
	for k, v := range edgeEnv {
		env[k] = v
	}
	elog := command(t, Edge, []string{"edge", "-mastodon-root", t.TempDir()}, env)
	addr := elog.await(t, listeningRe)
	sse := openSSE(t, addr, "/api/v1/streaming/user", testenv.AliceReadToken)
	awaitKey(t, rdb, homeKey(ns))
	waitPatternSubscribed(t, rdb, ns)
	return natsURL, sse
}

// deliveredNext publishes a harmless event on alice's home timeline through
// Redis and checks it is the next thing her stream receives: anything
// injected before it would have arrived first.
func deliveredNext(t *testing.T, rdb *redis.Client, ns string, sse *sseStream) {
	t.Helper()
	if err := rdb.Publish(context.Background(), fmt.Sprintf("%s:timeline:%d", ns, testenv.Alice), `{"event":"delete","payload":"1"}`).Err(); err != nil {
		t.Fatal(err)
	}
	if got := sse.next(); got != "event: delete\ndata: 1\n" {
		t.Errorf("alice's stream got %q before the real event", got)
	}
}

// sharedCreds are the credentials broker and edge share in these tests.
var sharedCreds = map[string]string{"STREAMING_NATS_USER": "spillway", "STREAMING_NATS_PASSWORD": "correct horse battery"}

// A NATS client without credentials (or with wrong ones) can neither read
// a user's timeline nor inject a status into it.
func TestNATSRefusesClientsWithoutCredentials(t *testing.T) {
	rdb, ns := testenv.Redis(t)
	natsURL, sse := securedSplit(t, rdb, ns, sharedCreds, sharedCreds)
	home := channel.Subjects{}.Of(channel.Home(testenv.Alice))

	for _, tc := range []struct {
		name string
		opts []nats.Option
	}{
		{"no credentials", nil},
		{"wrong password", []nats.Option{nats.UserInfo("spillway", "wrong")}},
		{"token instead", []nats.Option{nats.Token("correct horse battery")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := nats.Connect(natsURL, append(tc.opts, nats.Timeout(5*time.Second))...)
			if err != nil {
				if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
					t.Errorf("refused, but not for authorization: %v", err)
				}
				return
			}
			defer nc.Close()
			t.Errorf("a client with %s connected to the broker's NATS", tc.name)
			// Show what it could do.
			spy, err := nc.SubscribeSync(">")
			if err == nil && nc.Flush() == nil {
				rdb.Publish(context.Background(), fmt.Sprintf("%s:timeline:%d", ns, testenv.Alice), `{"event":"notification","payload":{"id":"1"}}`)
				if m, err := spy.NextMsg(5 * time.Second); err == nil {
					t.Errorf("it read %s: %s", m.Subject, m.Data)
				}
			}
			nc.Publish(home, []byte(forgedStatus))
			nc.Flush()
			if got := sse.next(); strings.Contains(got, "forged") {
				t.Errorf("it injected into alice's stream: %q", got)
			}
		})
	}
	deliveredNext(t, rdb, ns, sse)
}

// An edge's credentials let it subscribe to events and announce interest,
// nothing else: a status published with them never reaches a client.
func TestNATSEdgeCredentialsCannotPublishEvents(t *testing.T) {
	rdb, ns := testenv.Redis(t)
	natsURL, sse := securedSplit(t, rdb, ns, sharedCreds, sharedCreds)
	subj := channel.Subjects{}

	denied := make(chan error, 8)
	nc, err := nats.Connect(natsURL, nats.UserInfo(sharedCreds["STREAMING_NATS_USER"], sharedCreds["STREAMING_NATS_PASSWORD"]),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { denied <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, subject := range []string{subj.Of(channel.Home(testenv.Alice)), subj.Resync()} {
		if err := nc.Publish(subject, []byte(forgedStatus)); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-denied:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("publish on %s: %v", subject, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("publish on %s was allowed", subject)
		}
	}
	if _, err := nc.Subscribe(">", func(*nats.Msg) {}); err == nil {
		nc.Flush()
		select {
		case err := <-denied:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("subscribe >: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("subscribe > was allowed")
		}
	}
	deliveredNext(t, rdb, ns, sse)
}

// Broker and edge speak TLS with a private CA, the broker requiring a
// verified client certificate; clients that do not trust the CA, or that
// present no certificate, are refused.
func TestNATSTLS(t *testing.T) {
	pki := newTestPKI(t)
	rdb, ns := testenv.Redis(t)
	natsURL, sse := securedSplit(t, rdb, ns, map[string]string{
		"STREAMING_NATS_TLS_CERT":           pki.serverCert,
		"STREAMING_NATS_TLS_KEY":            pki.serverKey,
		"STREAMING_NATS_TLS_CA":             pki.ca,
		"STREAMING_NATS_TLS_VERIFY_CLIENTS": "true",
	}, map[string]string{
		"STREAMING_NATS_TLS_CA":   pki.ca,
		"STREAMING_NATS_TLS_CERT": pki.clientCert,
		"STREAMING_NATS_TLS_KEY":  pki.clientKey,
	})
	if !strings.HasPrefix(natsURL, "tls://") {
		t.Fatalf("broker announces %s", natsURL)
	}
	deliveredNext(t, rdb, ns, sse)

	unknownCA := []string{"certificate signed by unknown authority"}
	// With TLS 1.3 the client may hear the server's alert, or only that
	// the server closed the connection.
	noCert := []string{"certificate required", "closed by remote", "broken pipe", "connection reset"}
	for _, tc := range []struct {
		name string
		opts []nats.Option
		want []string // any of
	}{
		{"CA not trusted", []nats.Option{nats.ClientCert(pki.clientCert, pki.clientKey)}, unknownCA},
		{"another CA trusted", []nats.Option{nats.RootCAs(pki.otherCA), nats.ClientCert(pki.clientCert, pki.clientKey)}, unknownCA},
		{"no client certificate", []nats.Option{nats.RootCAs(pki.ca)}, noCert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := nats.Connect(natsURL, append(tc.opts, nats.Timeout(5*time.Second))...)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			t.Logf("refused: %v", err)
			if !slices.ContainsFunc(tc.want, func(w string) bool { return strings.Contains(err.Error(), w) }) {
				t.Errorf("refused with %v, want one of %q", err, tc.want)
			}
		})
	}
}

// TestNATSTLSRefusesPlainText speaks NATS without TLS to a server that requires it and
// checks that the server never answers.
func TestNATSTLSRefusesPlainText(t *testing.T) {
	pki := newTestPKI(t)
	_, ns := testenv.Redis(t)
	env := baseEnv(t, ns)
	env["STREAMING_NATS_LISTEN"] = "127.0.0.1:-1"
	env["STREAMING_NATS_TLS_CERT"], env["STREAMING_NATS_TLS_KEY"] = pki.serverCert, pki.serverKey
	blog := command(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, env)
	natsURL := blog.await(t, natsAnyRe)
	c, err := net.Dial("tcp", strings.TrimPrefix(natsURL, "tls://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	info, err := r.ReadString('\n')
	if err != nil || !strings.Contains(info, `"tls_required":true`) {
		t.Fatalf("INFO %q, %v", info, err)
	}
	if _, err := io.WriteString(c, "CONNECT {\"verbose\":false}\r\nSUB > 1\r\nPING\r\n"); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	if strings.Contains(string(rest), "PONG") {
		t.Fatalf("plain-text client served: %q", rest)
	}
	t.Logf("plain-text client: %q, %v", rest, err)
}

// A broker whose embedded server would accept anyone beyond loopback does
// not start unless told that this is wanted.
func TestBrokerRefusesAnonymousNATSBeyondLoopback(t *testing.T) {
	_, ns := testenv.Redis(t)
	env := baseEnv(t, ns)
	env["STREAMING_NATS_LISTEN"] = "0.0.0.0:-1"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := Broker(ctx, []string{"broker", "-mastodon-root", t.TempDir()}, mastodonenv.MapEnv(env), io.Discard, io.Discard)
	if err == nil {
		t.Fatal("broker ran")
	}
	for _, want := range []string{"STREAMING_NATS_LISTEN", "STREAMING_NATS_USER", "STREAMING_NATS_PASSWORD", "STREAMING_NATS_TOKEN", "STREAMING_NATS_TLS_VERIFY_CLIENTS", "STREAMING_NATS_ALLOW_ANONYMOUS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}

	env["STREAMING_NATS_ALLOW_ANONYMOUS"] = "true"
	blog := command(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, env)
	blog.await(t, natsAnyRe)
	if !strings.Contains(blog.String(), "without credentials") {
		t.Errorf("no warning in the log:\n%s", blog)
	}
}

// testPKI is a throwaway CA with a server certificate for 127.0.0.1, a
// client certificate and a broker certificate valid for both (as routes
// between brokers need), plus an unrelated CA, as PEM files.
type testPKI struct {
	ca, otherCA           string
	serverCert, serverKey string
	clientCert, clientKey string
	brokerCert, brokerKey string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(0)
	template := func(cn string) *x509.Certificate {
		serial++
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
		}
	}
	newCA := func(cn string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		key := newKey()
		tpl := template(cn)
		tpl.IsCA, tpl.BasicConstraintsValid = true, true
		tpl.KeyUsage = x509.KeyUsageCertSign
		der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return cert, key, der
	}
	leaf := func(name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage ...x509.ExtKeyUsage) (string, string) {
		key := newKey()
		tpl := template(name)
		tpl.KeyUsage = x509.KeyUsageDigitalSignature
		tpl.ExtKeyUsage = usage
		tpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "PRIVATE KEY", keyDER)
	}
	ca, caKey, caDER := newCA("spillway test CA")
	_, _, otherDER := newCA("someone else's CA")
	var p testPKI
	p.ca = write("ca.pem", "CERTIFICATE", caDER)
	p.otherCA = write("other-ca.pem", "CERTIFICATE", otherDER)
	p.serverCert, p.serverKey = leaf("server", ca, caKey, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", ca, caKey, x509.ExtKeyUsageClientAuth)
	p.brokerCert, p.brokerKey = leaf("broker", ca, caKey, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	// The files must make a usable pair.
	if _, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey); err != nil {
		t.Fatal(err)
	}
	return p
}

// The external-cluster example in deploy/nats grants the broker and the
// edges exactly what they need: events flow, interest becomes keys, a
// restarted broker's resync request is answered, and the edge user cannot
// publish events.
func TestDeployNATSConfig(t *testing.T) {
	t.Setenv("SPILLWAY_BROKER_PASSWORD", "broker-secret")
	t.Setenv("SPILLWAY_EDGE_PASSWORD", "edge-secret")
	opts, err := server.ProcessConfigFile(filepath.Join("..", "..", "..", "deploy", "nats", "nats-server.conf"))
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port, opts.NoSigs, opts.NoLog = "127.0.0.1", server.RANDOM_PORT, true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	natsURL := ns.ClientURL()

	rdb, redisNS := testenv.Redis(t)
	benv := baseEnv(t, redisNS)
	benv["STREAMING_NATS_URL"] = natsURL
	benv["STREAMING_NATS_USER"], benv["STREAMING_NATS_PASSWORD"] = "spillway-broker", "broker-secret"
	_, stopBroker := stoppable(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, benv)
	env := baseEnv(t, redisNS)
	env["STREAMING_NATS_URL"] = natsURL
	env["STREAMING_NATS_USER"], env["STREAMING_NATS_PASSWORD"] = "spillway-edge", "edge-secret"
	elog := command(t, Edge, []string{"edge", "-mastodon-root", t.TempDir()}, env)
	sse := openSSE(t, elog.await(t, listeningRe), "/api/v1/streaming/user", testenv.AliceReadToken)
	awaitKey(t, rdb, homeKey(redisNS))
	waitPatternSubscribed(t, rdb, redisNS)
	deliveredNext(t, rdb, redisNS, sse)

	denied := make(chan error, 1)
	intruder, err := nats.Connect(natsURL, nats.UserInfo("spillway-edge", "edge-secret"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { denied <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Close()
	if err := intruder.Publish(channel.Subjects{}.Of(channel.Home(testenv.Alice)), []byte(forgedStatus)); err != nil {
		t.Fatal(err)
	}
	intruder.Flush()
	select {
	case err := <-denied:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("forged publish: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the edge user published an event")
	}

	stopBroker()
	if err := rdb.Del(context.Background(), homeKey(redisNS)).Err(); err != nil {
		t.Fatal(err)
	}
	command(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, benv)
	awaitKey(t, rdb, homeKey(redisNS))
	waitPatternSubscribed(t, rdb, redisNS)
	deliveredNext(t, rdb, redisNS, sse)
}

// Wrong NATS security settings stop the process at start, naming the
// variables at fault.
func TestNATSSettingsErrors(t *testing.T) {
	pki := newTestPKI(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		name   string
		broker bool // else an edge
		env    map[string]string
		want   []string
	}{
		{"user without password", false, map[string]string{"STREAMING_NATS_USER": "u"}, []string{"STREAMING_NATS_USER", "STREAMING_NATS_PASSWORD"}},
		{"password without user", true, map[string]string{"STREAMING_NATS_PASSWORD": "p"}, []string{"STREAMING_NATS_USER", "STREAMING_NATS_PASSWORD"}},
		{"token and user", false, map[string]string{"STREAMING_NATS_TOKEN": "t", "STREAMING_NATS_USER": "u", "STREAMING_NATS_PASSWORD": "p"}, []string{"STREAMING_NATS_TOKEN", "only one"}},
		{"cert without key", false, map[string]string{"STREAMING_NATS_TLS_CERT": pki.clientCert}, []string{"STREAMING_NATS_TLS_CERT", "STREAMING_NATS_TLS_KEY"}},
		{"bad boolean", true, map[string]string{"STREAMING_NATS_TLS_VERIFY_CLIENTS": "yes please"}, []string{"STREAMING_NATS_TLS_VERIFY_CLIENTS"}},
		{"bad allow anonymous", true, map[string]string{"STREAMING_NATS_ALLOW_ANONYMOUS": "maybe"}, []string{"STREAMING_NATS_ALLOW_ANONYMOUS"}},
		{"creds on the embedded server", true, map[string]string{"STREAMING_NATS_CREDS": missing}, []string{"STREAMING_NATS_CREDS", "STREAMING_NATS_USER"}},
		{"nkey on the embedded server", true, map[string]string{"STREAMING_NATS_NKEY_SEED_FILE": missing}, []string{"STREAMING_NATS_NKEY_SEED_FILE"}},
		{"verify without certificate", true, map[string]string{"STREAMING_NATS_TLS_VERIFY_CLIENTS": "true", "STREAMING_NATS_TLS_CA": pki.ca}, []string{"STREAMING_NATS_TLS_VERIFY_CLIENTS", "STREAMING_NATS_TLS_CERT"}},
		{"verify without CA", true, map[string]string{"STREAMING_NATS_TLS_VERIFY_CLIENTS": "true", "STREAMING_NATS_TLS_CERT": pki.serverCert, "STREAMING_NATS_TLS_KEY": pki.serverKey}, []string{"STREAMING_NATS_TLS_VERIFY_CLIENTS", "STREAMING_NATS_TLS_CA"}},
		{"CA alone on the embedded server", true, map[string]string{"STREAMING_NATS_TLS_CA": pki.ca}, []string{"STREAMING_NATS_TLS_CA"}},
		{"server certificate file missing", true, map[string]string{"STREAMING_NATS_TLS_CERT": missing, "STREAMING_NATS_TLS_KEY": pki.serverKey}, []string{"STREAMING_NATS_LISTEN", "missing.pem"}},
		{"client CA file missing", false, map[string]string{"STREAMING_NATS_TLS_CA": missing}, []string{"STREAMING_NATS", "missing.pem"}},
		{"client CA file not PEM", false, map[string]string{"STREAMING_NATS_TLS_CA": pki.serverKey}, []string{"STREAMING_NATS", "no PEM certificate"}},
		{"creds file missing", false, map[string]string{"STREAMING_NATS_CREDS": missing}, []string{"STREAMING_NATS", "missing.pem"}},
		{"nkey seed file missing", false, map[string]string{"STREAMING_NATS_NKEY_SEED_FILE": missing}, []string{"STREAMING_NATS", "missing.pem"}},
		{"client key not matching", false, map[string]string{"STREAMING_NATS_TLS_CERT": pki.clientCert, "STREAMING_NATS_TLS_KEY": pki.serverKey}, []string{"client certificate"}},
	}
	_, ns := testenv.Redis(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := baseEnv(t, ns)
			env["STREAMING_NATS_LISTEN"] = "127.0.0.1:-1"
			env["STREAMING_NATS_URL"] = "nats://user:hunter2@127.0.0.1:1"
			for k, v := range tc.env {
				env[k] = v
			}
			main, name := Edge, "edge"
			if tc.broker {
				main, name = Broker, "broker"
				delete(env, "STREAMING_NATS_URL")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := main(ctx, []string{name, "-mastodon-root", t.TempDir()}, mastodonenv.MapEnv(env), io.Discard, io.Discard)
			if err == nil {
				t.Fatal("started")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the URL's password", err)
			}
		})
	}
}

// A broker that cannot listen says why, at once.
func TestBrokerNATSListenErrorNamesCause(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, ns := testenv.Redis(t)
	for _, tc := range []struct{ listen, want string }{
		{busy.Addr().String(), "address already in use"},
		{"no-such-host.invalid:4222", "no such host"},
		{"192.0.2.1:4222", "cannot assign requested address"},
		{"127.0.0.1", "missing port"},
	} {
		env := baseEnv(t, ns)
		env["STREAMING_NATS_LISTEN"] = tc.listen
		env["STREAMING_NATS_TOKEN"] = "t" // beyond loopback needs credentials
		start := time.Now()
		err := Broker(context.Background(), []string{"broker", "-mastodon-root", t.TempDir()}, mastodonenv.MapEnv(env), io.Discard, io.Discard)
		t.Logf("%s: after %v: %v", tc.listen, time.Since(start).Round(time.Millisecond), err)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "STREAMING_NATS_LISTEN") {
			t.Errorf("%s: %v, want an error naming STREAMING_NATS_LISTEN and %q", tc.listen, err, tc.want)
		}
	}
}

// Both commands' -help lists every NATS security variable.
func TestHelpListsNATSVariables(t *testing.T) {
	for _, main := range []func(context.Context, []string, mastodonenv.Env, io.Writer, io.Writer) error{Edge, Broker} {
		var out strings.Builder
		_ = main(context.Background(), []string{"x", "-help"}, mastodonenv.MapEnv(nil), &out, &out)
		for _, v := range natsVariables {
			if !strings.Contains(out.String(), v.Name) {
				t.Errorf("help lacks %s", v.Name)
			}
		}
	}
}
