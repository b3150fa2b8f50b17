package launch

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/spillway/spillway/shared/mastodonenv"
	"github.com/spillway/spillway/shared/testenv"
)

type mainFunc = func(context.Context, []string, mastodonenv.Env, io.Writer, io.Writer) error

// closedAddr returns a 127.0.0.1 address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// heldAddr returns the address of a TCP listener that accepts connections
// and says nothing, held until the test ends.
func heldAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() { // ends when the listener is closed
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return ln.Addr().String()
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// withPassword puts user:password into a URL.
func withPassword(t *testing.T, raw, user, password string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

func TestFormatVersion(t *testing.T) {
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"none", nil, "spillway-edge (no build information)"},
		{"go install", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"},
			Settings: []debug.BuildSetting{{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "amd64"}}},
			"spillway-edge v1.2.0 (go1.26.8 linux/amd64)"},
		{"go build in a clone", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20251202151200-53e5b9f7d34c+dirty"},
			Settings: []debug.BuildSetting{{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"},
				{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "53e5b9f7d34c5a63e1fc13bd625dde32fbab706a"},
				{Key: "vcs.time", Value: "2025-12-02T15:12:00Z"}, {Key: "vcs.modified", Value: "true"}}},
			"spillway-edge v0.0.0-20251202151200-53e5b9f7d34c+dirty (revision 53e5b9f7d34c5a63e1fc13bd625dde32fbab706a, committed 2025-12-02T15:12:00Z, modified; go1.26.8 linux/arm64)"},
		{"clean tree", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}}},
			"spillway-edge (devel) (revision abc; go1.26.8)"},
		{"no VCS", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			"spillway-edge (devel) (no VCS information: build from a git clone with -buildvcs=true; go1.26.8)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := formatVersion("edge", tc.bi); got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestVersionFlag(t *testing.T) {
	for name, main := range map[string]mainFunc{"edge": Edge, "broker": Broker} {
		t.Run(name, func(t *testing.T) {
			var out strings.Builder
			err := main(context.Background(), []string{name, "-version"}, mastodonenv.MapEnv(nil), &out, io.Discard)
			if err != nil || !strings.HasPrefix(out.String(), "spillway-"+name+" ") || !strings.HasSuffix(out.String(), ")\n") {
				t.Fatalf("%v %q", err, out.String())
			}
		})
	}
}

// A binary built from a clone reports the revision it was built from.
func TestVersionOfBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git clone: %v", err)
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err != nil || !fi.IsDir() {
		t.Skip("in a git worktree, where the go command records no VCS information")
	}
	bin := filepath.Join(t.TempDir(), "spillway-broker")
	// -buildvcs=true: the default (auto) may be switched off by GOFLAGS.
	build := exec.Command(goTool, "build", "-buildvcs=true", "-o", bin, "../../broker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-version").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "revision " + strings.TrimSpace(string(rev))
	if !strings.HasPrefix(string(out), "spillway-broker v") || !strings.Contains(string(out), want) {
		t.Fatalf("-version printed %q, want a module version and %q", out, want)
	}
}

func TestToolFlagsExcludeEachOther(t *testing.T) {
	err := Edge(context.Background(), []string{"edge", "-version", "-check-config"}, mastodonenv.MapEnv(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "exclude") {
		t.Fatalf("got %v", err)
	}
}

func TestMaskValue(t *testing.T) {
	tests := []struct {
		name, value, want string
		secrets           []string
	}{
		{"DB_PASS", "hunter2", "*****", []string{"hunter2"}},
		{"REDIS_PASSWORD", "p", "*****", []string{"p"}},
		{"STREAMING_NATS_TOKEN", "t0k", "*****", []string{"t0k"}},
		{"STREAMING_NATS_CREDS", "/etc/spillway/edge.creds", "*****", nil},
		{"STREAMING_TLS_KEY", "/etc/ssl/key.pem", "*****", nil},
		{"DB_HOST", "db.internal", "db.internal", nil},
		{"DATABASE_URL", "postgres://mastodon:s%40cret@db:5432/mastodon_production?sslmode=require",
			"postgres://mastodon:*****@db:5432/mastodon_production?sslmode=require", []string{"s@cret", "s%40cret"}},
		{"DATABASE_URL", "postgresql:///mastodon?host=/run/postgresql&password=qp1",
			"postgresql:///mastodon?host=%2Frun%2Fpostgresql&password=*****", []string{"qp1"}},
		{"DATABASE_URL", "host=db user=mastodon password='a b' dbname=x", "host=db user=mastodon password=***** dbname=x", []string{"a b"}},
		{"DATABASE_URL", "host=db password=plain sslpassword=k2", "host=db password=***** sslpassword=*****", []string{"plain", "k2"}},
		{"REDIS_URL", "redis://:rpw@redis:6379/1", "redis://:*****@redis:6379/1", []string{"rpw"}},
		{"REDIS_URL", "rediss://default:rpw@redis:6380", "rediss://default:*****@redis:6380", []string{"rpw"}},
		{"REDIS_URL", "redis://redis:6379", "redis://redis:6379", nil},
		{"STREAMING_NATS_URL", "nats://a:pw1@n1:4222, nats://tok@n2:4222", "nats://a:*****@n1:4222,nats://*****@n2:4222", []string{"pw1", "tok"}},
		{"STREAMING_NATS_URL", "nats://n1:4222", "nats://n1:4222", nil},
		{"REDIS_URL", "redis://:bad pass%zz@redis", "redis://*****@redis", []string{":bad pass%zz"}},
	}
	for _, tc := range tests {
		t.Run(tc.name+" "+tc.value, func(t *testing.T) {
			var s secrets
			if got := maskValue(tc.name, tc.value, &s); got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
			for _, sec := range tc.secrets {
				if out := s.scrub("x " + sec + " y"); out != "x ***** y" {
					t.Errorf("secret %q not recorded: %q", sec, out)
				}
			}
		})
	}
}

// checkCase is one run of -check-config.
type checkCase struct {
	name    string
	main    mainFunc
	args    []string
	env     func(t *testing.T) map[string]string
	dotenv  string   // contents of <root>/.env
	wantErr bool     // exit status non-zero
	want    []string // regexps the output must match
	secrets []string // must not appear anywhere in the output
}

func TestCheckConfig(t *testing.T) {
	pgURL := func(t *testing.T) string {
		return withPassword(t, testenv.PostgresURL(t), "postgres", "pg-secret-1")
	}
	tests := []checkCase{
		{
			name: "edge healthy",
			main: Edge,
			env: func(t *testing.T) map[string]string {
				return map[string]string{
					"DATABASE_URL":       pgURL(t),
					"PORT":               "0",
					"STREAMING_NATS_URL": withPassword(t, testenv.NATSServer(t), "spill", "nats-secret-3"),
				}
			},
			dotenv: "DB_PASS=file-secret-2\nLOG_LEVEL=warn\n",
			want: []string{
				`(?m)^  DB_PASS +\*\*\*\*\* +\S+/\.env$`,
				`(?m)^  LOG_LEVEL +warn +\S+/\.env$`,
				`(?m)^  DATABASE_URL +postgres://postgres:\*\*\*\*\*@127\.0\.0\.1:\d+/\S+ +environment$`,
				`(?m)^  ok +postgres 127\.0\.0\.1:\d+: connected as postgres`,
				`(?m)^  ok +nats nats://spill:\*\*\*\*\*@127\.0\.0\.1:\d+: connected`,
				`(?m)^  ok +listen \(PORT/BIND/SOCKET\) 127\.0\.0\.1:0: free$`,
				`(?m)^No problems found\.$`,
			},
			secrets: []string{"pg-secret-1", "file-secret-2", "nats-secret-3"},
		},
		{
			name: "all-in-one healthy",
			main: Edge,
			args: []string{"-all-in-one"},
			env: func(t *testing.T) map[string]string {
				return map[string]string{
					"DATABASE_URL":          pgURL(t),
					"REDIS_URL":             testenv.RedisURL(t),
					"REDIS_PASSWORD":        "redis-secret-4", // REDIS_URL wins
					"PORT":                  "0",
					"STREAMING_NATS_LISTEN": "127.0.0.1:-1",
				}
			},
			want: []string{
				`(?m)^  REDIS_PASSWORD +\*\*\*\*\* +environment$`,
				`(?m)^  ok +redis 127\.0\.0\.1:\d+: PING answered$`,
				`(?m)^  ok +embedded NATS \(STREAMING_NATS_LISTEN\) 127\.0\.0\.1:-1: free$`,
				`(?m)^  ok +postgres `,
			},
			secrets: []string{"pg-secret-1", "redis-secret-4"},
		},
		{
			name: "edge: Postgres unreachable",
			main: Edge,
			env: func(t *testing.T) map[string]string {
				return map[string]string{
					"DATABASE_URL":       "postgres://postgres:pg-secret-5@" + closedAddr(t) + "/mastodon?sslmode=disable",
					"PORT":               "0",
					"STREAMING_NATS_URL": testenv.NATSServer(t),
				}
			},
			wantErr: true,
			want:    []string{`(?m)^  FAIL  postgres 127\.0\.0\.1:\d+: .*127\.0\.0\.1:\d+`, `(?m)^  ok +nats `},
			secrets: []string{"pg-secret-5"},
		},
		{
			name: "edge: database without Mastodon's tables",
			main: Edge,
			env: func(t *testing.T) map[string]string {
				u := testenv.PostgresURL(t)
				return map[string]string{
					"DATABASE_URL":       regexp.MustCompile(`search_path=[^&]*`).ReplaceAllString(u, "search_path=no_such_schema"),
					"PORT":               "0",
					"STREAMING_NATS_URL": testenv.NATSServer(t),
				}
			},
			wantErr: true,
			want:    []string{`(?m)^  FAIL  postgres 127\.0\.0\.1:\d+: connected to \S+, but reading oauth_access_tokens failed`},
		},
		{
			name: "edge: NATS unreachable",
			main: Edge,
			env: func(t *testing.T) map[string]string {
				return map[string]string{
					"DATABASE_URL":       pgURL(t),
					"PORT":               "0",
					"STREAMING_NATS_URL": "nats://spill:nats-secret-6@" + closedAddr(t),
				}
			},
			wantErr: true,
			want:    []string{`(?m)^  FAIL  nats nats://spill:\*\*\*\*\*@127\.0\.0\.1:(\d+): dial tcp 127\.0\.0\.1:\d+: .*refused`},
			secrets: []string{"pg-secret-1", "nats-secret-6"},
		},
		{
			name: "edge: port held by another program",
			main: Edge,
			env: func(t *testing.T) map[string]string {
				return map[string]string{
					"DATABASE_URL":       pgURL(t),
					"PORT":               port(t, heldAddr(t)),
					"STREAMING_NATS_URL": testenv.NATSServer(t),
				}
			},
			wantErr: true,
			want:    []string{`(?m)^  FAIL  listen \(PORT/BIND/SOCKET\) 127\.0\.0\.1:\d+: in use by another program$`},
		},
		{
			name: "edge over TLS",
			main: Edge,
			env: func(t *testing.T) map[string]string {
				cert := testenv.NewServerCert(t)
				return map[string]string{
					"DATABASE_URL":       pgURL(t),
					"PORT":               "0",
					"STREAMING_NATS_URL": testenv.NATSServer(t),
					"STREAMING_TLS_CERT": cert.CertFile,
					"STREAMING_TLS_KEY":  cert.KeyFile,
				}
			},
			want: []string{
				`(?m)^  tls +HTTPS \(HTTP/2 and HTTP/1\.1\), certificate \S+/cert\.pem$`,
				`(?m)^  STREAMING_TLS_KEY +\*\*\*\*\* +environment$`,
				`(?m)^  ok +tls: certificate for localhost,127\.0\.0\.1,::1, issued by Spillway test CA, valid until \S+$`,
				`(?m)^No problems found\.$`,
			},
		},
		{
			name: "edge: TLS key that is not the certificate's",
			main: Edge,
			env: func(t *testing.T) map[string]string {
				return map[string]string{
					"DATABASE_URL":       pgURL(t),
					"PORT":               "0",
					"STREAMING_NATS_URL": testenv.NATSServer(t),
					"STREAMING_TLS_CERT": testenv.NewServerCert(t).CertFile,
					"STREAMING_TLS_KEY":  testenv.NewServerCert(t).KeyFile,
				}
			},
			wantErr: true,
			want:    []string{`(?m)^  FAIL  tls: STREAMING_TLS_CERT \S+/cert\.pem, STREAMING_TLS_KEY: tls: private key does not match public key$`},
		},
		{
			name: "edge: invalid variable",
			main: Edge,
			env: func(t *testing.T) map[string]string {
				return map[string]string{"STREAMING_QUEUE_FRAMES": "0", "DB_PASS": "db-secret-7"}
			},
			wantErr: true,
			want:    []string{`(?m)^  FAIL  configuration: invalid STREAMING_QUEUE_FRAMES`},
			secrets: []string{"db-secret-7"},
		},
		{
			name: "broker healthy",
			main: Broker,
			args: []string{"-metrics-listen", "127.0.0.1:0"},
			env: func(t *testing.T) map[string]string {
				return map[string]string{
					"REDIS_URL":             testenv.RedisURL(t),
					"STREAMING_NATS_LISTEN": "127.0.0.1:-1",
				}
			},
			want: []string{
				`(?m)^  ok +redis 127\.0\.0\.1:\d+: PING answered$`,
				`(?m)^  ok +embedded NATS \(STREAMING_NATS_LISTEN\) 127\.0\.0\.1:-1: free$`,
				`(?m)^  ok +metrics \(-metrics-listen\) 127\.0\.0\.1:0: free$`,
				`(?m)^No problems found\.$`,
			},
		},
		{
			name: "broker of a failover pair, the other leading",
			main: Broker,
			env: func(t *testing.T) map[string]string {
				rdb, ns := testenv.Redis(t)
				if err := rdb.Set(context.Background(), ns+":spillway:broker:mastodon:leader", "other-broker", time.Minute).Err(); err != nil {
					t.Fatal(err)
				}
				return map[string]string{
					"REDIS_URL":                       testenv.RedisURL(t),
					"REDIS_NAMESPACE":                 ns,
					"STREAMING_NATS_LISTEN":           "127.0.0.1:-1",
					"STREAMING_NATS_CLUSTER_LISTEN":   "127.0.0.1:-1",
					"STREAMING_NATS_ROUTES":           "nats://peer:route-secret-10@127.0.0.1:6222",
					"STREAMING_NATS_CLUSTER_USER":     "route",
					"STREAMING_NATS_CLUSTER_PASSWORD": "route-secret-11",
				}
			},
			want: []string{
				`(?m)^  lease +3s, renewed every 1s, key \S+:spillway:broker:mastodon:leader$`,
				`(?m)^  nats cluster +routes on 127\.0\.0\.1:-1, to nats://peer:\*\*\*\*\*@127\.0\.0\.1:6222$`,
				`(?m)^  ok +broker lease \S+: held by other-broker for \d+(\.\d+)?s more`,
				`(?m)^  ok +NATS routes \(STREAMING_NATS_CLUSTER_LISTEN\) 127\.0\.0\.1:-1: free$`,
				`(?m)^No problems found\.$`,
			},
			secrets: []string{"route-secret-10", "route-secret-11"},
		},
		{
			name: "broker: Redis unreachable",
			main: Broker,
			env: func(t *testing.T) map[string]string {
				addr := closedAddr(t)
				return map[string]string{
					"REDIS_HOST":            "127.0.0.1",
					"REDIS_PORT":            port(t, addr),
					"REDIS_PASSWORD":        "redis-secret-8",
					"STREAMING_NATS_LISTEN": "127.0.0.1:-1",
				}
			},
			wantErr: true,
			want:    []string{`(?m)^  FAIL  redis 127\.0\.0\.1:\d+: dial tcp 127\.0\.0\.1:\d+: .*refused`},
			secrets: []string{"redis-secret-8"},
		},
		{
			name: "broker: NATS port held by a NATS server (the running broker)",
			main: Broker,
			env: func(t *testing.T) map[string]string {
				u, _ := url.Parse(testenv.NATSServer(t))
				return map[string]string{"REDIS_URL": testenv.RedisURL(t), "STREAMING_NATS_LISTEN": u.Host}
			},
			want: []string{`(?m)^  warn  embedded NATS \(STREAMING_NATS_LISTEN\) 127\.0\.0\.1:\d+: in use by a NATS server`},
		},
		{
			name: "broker: NATS port held by another program",
			main: Broker,
			env: func(t *testing.T) map[string]string {
				return map[string]string{"REDIS_URL": testenv.RedisURL(t), "STREAMING_NATS_LISTEN": heldAddr(t)}
			},
			wantErr: true,
			want:    []string{`(?m)^  FAIL  embedded NATS \(STREAMING_NATS_LISTEN\) 127\.0\.0\.1:\d+: in use by another program$`},
		},
		{
			name: "broker: external NATS unreachable",
			main: Broker,
			env: func(t *testing.T) map[string]string {
				return map[string]string{"REDIS_URL": testenv.RedisURL(t), "STREAMING_NATS_URL": "nats://tok-secret-9@" + closedAddr(t)}
			},
			wantErr: true,
			want:    []string{`(?m)^  FAIL  nats nats://\*\*\*\*\*@127\.0\.0\.1:\d+: dial tcp`},
			secrets: []string{"tok-secret-9"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.dotenv != "" {
				if err := os.WriteFile(filepath.Join(root, ".env"), []byte(tc.dotenv), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			name := "edge"
			if strings.HasPrefix(tc.name, "broker") {
				name = "broker"
			}
			args := append([]string{name, "-check-config", "-mastodon-root", root}, tc.args...)
			var out strings.Builder
			err := tc.main(context.Background(), args, mastodonenv.MapEnv(tc.env(t)), &out, io.Discard)
			if (err != nil) != tc.wantErr {
				t.Errorf("error %v, want error: %v", err, tc.wantErr)
			}
			for _, re := range tc.want {
				if !regexp.MustCompile(re).MatchString(out.String()) {
					t.Errorf("output does not match %s", re)
				}
			}
			for _, s := range tc.secrets {
				if strings.Contains(out.String(), s) || (err != nil && strings.Contains(err.Error(), s)) {
					t.Errorf("secret %q printed", s)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out.String())
			}
		})
	}
}

func TestHealthcheck(t *testing.T) {
	_, ns := testenv.Redis(t)
	edgeLog := command(t, Edge, []string{"edge", "-all-in-one", "-mastodon-root", t.TempDir()}, baseEnv(t, ns))
	edgeAddr := edgeLog.await(t, listeningRe)
	benv := baseEnv(t, ns)
	benv["STREAMING_NATS_LISTEN"] = "127.0.0.1:-1"
	brokerLog := command(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, benv)
	brokerURL, _ := url.Parse(brokerLog.await(t, natsRe))

	// An edge draining, which still serves its metrics.
	draining := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			io.WriteString(w, "# metrics\n")
			return
		}
		http.Error(w, "Shutting down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(draining.Close)
	socket := filepath.Join(t.TempDir(), "streaming.sock")
	sln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	unixEdge := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == healthPath {
			io.WriteString(w, "OK")
			return
		}
		http.NotFound(w, r)
	}))
	unixEdge.Listener = sln
	unixEdge.Start()
	t.Cleanup(unixEdge.Close)
	closed := closedAddr(t)
	tlsEdge := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == healthPath {
			io.WriteString(w, "OK")
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(tlsEdge.Close)

	tests := []struct {
		name    string
		main    mainFunc
		args    []string
		env     map[string]string
		want    string // in the output, or in the error when wantErr
		wantErr bool
	}{
		{"edge up", Edge, nil, map[string]string{"BIND": "0.0.0.0", "PORT": port(t, edgeAddr)}, "OK (http://127.0.0.1:" + port(t, edgeAddr) + healthPath + ")", false},
		{"edge on a socket", Edge, nil, map[string]string{"SOCKET": socket}, "OK (http://localhost" + healthPath + ")", false},
		{"edge over TLS", Edge, nil, map[string]string{"PORT": port(t, tlsEdge.Listener.Addr().String()), "STREAMING_TLS_CERT": "/etc/ssl/cert.pem", "STREAMING_TLS_KEY": "/etc/ssl/key.pem"},
			"OK (https://127.0.0.1:" + port(t, tlsEdge.Listener.Addr().String()) + healthPath + ")", false},
		{"edge down", Edge, nil, map[string]string{"PORT": port(t, closed)}, closed, true},
		{"edge draining", Edge, nil, map[string]string{"PORT": port(t, draining.Listener.Addr().String())}, "503 Service Unavailable Shutting down", true},
		{"edge with a random port", Edge, nil, map[string]string{"PORT": "0"}, "chosen at random", true},
		{"broker up", Broker, nil, map[string]string{"STREAMING_NATS_LISTEN": "0.0.0.0:" + brokerURL.Port()}, "OK (NATS on 127.0.0.1:" + brokerURL.Port() + ")", false},
		{"broker down", Broker, nil, map[string]string{"STREAMING_NATS_LISTEN": closed}, closed, true},
		{"broker port is not NATS", Broker, nil, map[string]string{"STREAMING_NATS_LISTEN": draining.Listener.Addr().String()}, "not a NATS server", true},
		{"broker on external NATS, metrics up", Broker, []string{"-metrics-listen", draining.Listener.Addr().String()},
			map[string]string{"STREAMING_NATS_URL": "nats://nats.example:4222"}, "OK (http://" + draining.Listener.Addr().String() + "/metrics)", false},
		{"broker on external NATS, no metrics", Broker, nil, map[string]string{"STREAMING_NATS_URL": "nats://nats.example:4222"}, "-metrics-listen", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			args := append([]string{"x", "-healthcheck", "-mastodon-root", t.TempDir()}, tc.args...)
			err := tc.main(context.Background(), args, mastodonenv.MapEnv(tc.env), &out, io.Discard)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got error %v, want one containing %q (output %q)", err, tc.want, out.String())
				}
				return
			}
			if err != nil || strings.TrimSpace(out.String()) != tc.want {
				t.Fatalf("got %v, %q; want %q", err, out.String(), tc.want)
			}
		})
	}
}
