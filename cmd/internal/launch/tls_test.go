package launch

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/spillway/spillway/shared/mastodonenv"
	"github.com/spillway/spillway/shared/testenv"
)

// servedSerial is the serial number of the certificate a new TLS
// connection to addr is given.
func servedSerial(t *testing.T, addr string) *big.Int {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

// hangUp sends this process SIGHUP, as an admin's `kill -HUP` or systemd's
// reload does; the edge under test has registered for it.
func hangUp(t *testing.T) {
	t.Helper()
	p, err := os.FindProcess(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// SIGHUP reloads the certificate: streams open over HTTP/2 and WebSocket
// keep going, new connections get the new certificate, and a pair that
// does not load keeps the one in use. The health check speaks HTTPS to the
// edge.
func TestTLSReload(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGHUP on Windows")
	}
	rdb, ns := testenv.Redis(t)
	first, second := testenv.NewServerCert(t), testenv.NewServerCert(t)
	env := baseEnv(t, ns)
	env["STREAMING_TLS_CERT"], env["STREAMING_TLS_KEY"] = first.CertFile, first.KeyFile
	log := command(t, Edge, []string{"edge", "-all-in-one", "-mastodon-root", t.TempDir()}, env)
	addr := log.await(t, listeningRe)
	if got := servedSerial(t, addr); got.Cmp(first.Leaf.SerialNumber) != 0 {
		t.Fatalf("served certificate %v, want the first (%v)", got, first.Leaf.SerialNumber)
	}

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: first.Pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	req, _ := http.NewRequest("GET", "https://"+addr+"/api/v1/streaming/user", nil)
	req.Header.Set("Authorization", "Bearer "+testenv.AliceReadToken)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("%d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	sse := &sseStream{t: t, r: bufio.NewReader(resp.Body)}
	if l := sse.line(); l != ":)\n" {
		t.Fatalf("first line %q", l)
	}
	dialer := &websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: first.Pool}}
	ws, _, err := dialer.Dial("wss://"+addr+"/api/v1/streaming?stream=user", http.Header{"Sec-Websocket-Protocol": {testenv.AliceReadToken}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })

	install := func(certPEM, keyPEM []byte) {
		t.Helper()
		if err := os.WriteFile(first.CertFile, certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(first.KeyFile, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	install(second.CertPEM, second.KeyPEM)
	hangUp(t)
	log.await(t, regexp.MustCompile(`"msg":"(TLS certificate reloaded)"`))
	if got := servedSerial(t, addr); got.Cmp(second.Leaf.SerialNumber) != 0 {
		t.Fatalf("after the reload: served certificate %v, want the second (%v)", got, second.Leaf.SerialNumber)
	}
	// The new certificate verifies against its own CA.
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: second.Pool})
	if err != nil {
		t.Fatalf("the reloaded certificate does not verify: %v", err)
	}
	conn.Close()

	// The streams opened before the reload still deliver. The WebSocket
	// subscription is not acknowledged: publish until it sees an event.
	channel := fmt.Sprintf("%s:timeline:%d", ns, testenv.Alice)
	frames := make(chan string, 16)
	go func() {
		for {
			_, m, err := ws.ReadMessage()
			if err != nil {
				close(frames)
				return
			}
			frames <- string(m)
		}
	}()
	testenv.Eventually(t, 10*time.Second, func() error {
		if err := rdb.Publish(context.Background(), channel, `{"event":"delete","payload":"1"}`).Err(); err != nil {
			return err
		}
		select {
		case m := <-frames:
			if m != `{"stream":["user"],"event":"delete","payload":"1"}` {
				t.Fatalf("WebSocket frame %s", m)
			}
			return nil
		case <-time.After(300 * time.Millisecond):
			return fmt.Errorf("no WebSocket frame yet")
		}
	})
	if got := sse.next(); got != "event: delete\ndata: 1\n" {
		t.Fatalf("SSE over HTTP/2 got %q after the reload", got)
	}

	install([]byte("not a certificate"), second.KeyPEM)
	hangUp(t)
	log.await(t, regexp.MustCompile(`"level":"ERROR","msg":"(TLS certificate not reloaded; still serving the previous one)"`))
	if got := servedSerial(t, addr); got.Cmp(second.Leaf.SerialNumber) != 0 {
		t.Fatalf("after a failed reload: served certificate %v, want the second still (%v)", got, second.Leaf.SerialNumber)
	}

	var out strings.Builder
	hc := map[string]string{"PORT": port(t, addr), "STREAMING_TLS_CERT": first.CertFile, "STREAMING_TLS_KEY": first.KeyFile}
	if err := Edge(context.Background(), []string{"edge", "-healthcheck", "-mastodon-root", t.TempDir()}, mastodonenv.MapEnv(hc), &out, io.Discard); err != nil {
		t.Fatalf("healthcheck: %v", err)
	}
	if want := "OK (https://" + addr + healthPath + ")"; strings.TrimSpace(out.String()) != want {
		t.Fatalf("healthcheck printed %q, want %q", out.String(), want)
	}
}

// A reload that fails keeps the certificate in use, whatever is wrong with
// the files.
func TestCertificateReload(t *testing.T) {
	a, b := testenv.NewServerCert(t), testenv.NewServerCert(t)
	tests := []struct {
		name          string
		cert, key     []byte
		wantSerial    *big.Int
		wantLogLevel  string
		wantLogSubstr string
	}{
		{"new pair", b.CertPEM, b.KeyPEM, b.Leaf.SerialNumber, "INFO", "TLS certificate reloaded"},
		{"garbage", []byte("junk"), b.KeyPEM, a.Leaf.SerialNumber, "ERROR", "failed to find any PEM data"},
		{"key of another certificate", b.CertPEM, a.KeyPEM, a.Leaf.SerialNumber, "ERROR", "private key does not match public key"},
		{"empty certificate file", nil, b.KeyPEM, a.Leaf.SerialNumber, "ERROR", "STREAMING_TLS_CERT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile := dir+"/cert.pem", dir+"/key.pem"
			write := func(cert, key []byte) {
				if err := os.WriteFile(certFile, cert, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(keyFile, key, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			write(a.CertPEM, a.KeyPEM)
			var logs strings.Builder
			c, err := loadCertificate(certFile, keyFile, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			write(tc.cert, tc.key)
			c.reload()
			got, err := c.tlsConfig().GetCertificate(&tls.ClientHelloInfo{})
			if err != nil || got.Leaf.SerialNumber.Cmp(tc.wantSerial) != 0 {
				t.Fatalf("serving %v (%v), want %v", got.Leaf.SerialNumber, err, tc.wantSerial)
			}
			last := logs.String()[strings.LastIndex(strings.TrimSpace(logs.String()), "\n")+1:]
			if !strings.Contains(last, "level="+tc.wantLogLevel) || !strings.Contains(last, tc.wantLogSubstr) {
				t.Fatalf("logged %q, want a %s line with %q", last, tc.wantLogLevel, tc.wantLogSubstr)
			}
		})
	}
}

// Without TLS, SIGHUP has nothing to reload and does not stop the edge.
func TestHangUpWithoutTLS(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGHUP on Windows")
	}
	_, ns := testenv.Redis(t)
	log := command(t, Edge, []string{"edge", "-all-in-one", "-mastodon-root", t.TempDir()}, baseEnv(t, ns))
	addr := log.await(t, listeningRe)
	hangUp(t)
	log.await(t, regexp.MustCompile(`"msg":"(SIGHUP: nothing to reload)`))
	resp, err := http.Get("http://" + addr + healthPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("health %d after SIGHUP", resp.StatusCode)
	}
}
