package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spillway/spillway/cmd/loadtest/internal/fakestream"
	"github.com/spillway/spillway/cmd/loadtest/internal/loadgen"
)

func TestHelpDocumentsEveryFlag(t *testing.T) {
	tests := []struct {
		mode     string
		args     []string
		usage    string
		examples int
		// only lists flags this mode has and others do not.
		only []string
	}{
		{modeDefault, []string{"--help"}, "Usage: loadtest [flags]", 3, []string{"ramp-start", "authors"}},
		{modeInstance, []string{"instance", "-help"}, "Usage: loadtest instance", 2, []string{"zipf", "followers", "arrivals"}},
		{modeSoak, []string{"soak", "-help"}, "Usage: loadtest soak", 1, []string{"churn-rate", "sample-interval", "metrics-url"}},
	}
	for _, tt := range tests {
		t.Run(tt.args[0], func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := run(t.Context(), tt.args, &stdout, &stderr); err != nil {
				t.Fatalf("%v: %v", tt.args, err)
			}
			help := stderr.String()
			if !strings.HasPrefix(help, tt.usage) {
				t.Fatalf("not the %q usage:\n%s", tt.usage, help)
			}
			var o options
			fs := newFlagSet(tt.mode, &o, &bytes.Buffer{})
			fs.VisitAll(func(f *flag.Flag) {
				if !strings.Contains(help, "-"+f.Name+" ") && !strings.Contains(help, "-"+f.Name+"\n") {
					t.Errorf("help lacks -%s", f.Name)
				}
				if f.Usage == "" {
					t.Errorf("-%s has no usage text", f.Name)
				}
			})
			for _, name := range tt.only {
				if fs.Lookup(name) == nil {
					t.Errorf("no -%s", name)
				}
				for _, other := range []string{modeDefault, modeInstance, modeSoak} {
					if other != tt.mode && newFlagSet(other, &options{}, &bytes.Buffer{}).Lookup(name) != nil {
						t.Errorf("-%s is also a flag of mode %q", name, other)
					}
				}
			}
			cmd := "\n  loadtest -url"
			if tt.mode != modeDefault {
				cmd = "\n  loadtest " + tt.mode + " -url"
			}
			if n := strings.Count(help, cmd); n != tt.examples {
				t.Errorf("help has %d example command lines, want %d:\n%s", n, tt.examples, help)
			}
		})
	}
}

func TestSubcommandHelp(t *testing.T) {
	for _, sub := range []string{"fixtures", "relay"} {
		var stdout, stderr bytes.Buffer
		if err := run(t.Context(), []string{sub, "-help"}, &stdout, &stderr); err != nil {
			t.Fatalf("%s -help: %v", sub, err)
		}
		if !strings.Contains(stderr.String(), "Usage: loadtest "+sub) {
			t.Fatalf("not the %s usage:\n%s", sub, stderr.String())
		}
	}
}

func TestRunRejectsBadInvocations(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("secret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	accountTokens := filepath.Join(dir, "account-tokens")
	if err := os.WriteFile(accountTokens, []byte("secret-token\t1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-nope"}, "not defined"},
		{"stray argument", []string{"extra"}, "unexpected arguments"},
		{"remote target", []string{"-url", "http://192.0.2.1:4000", "-redis-url", "redis://127.0.0.1:1/0"}, "non-loopback"},
		{"bad stream", []string{"-streams", "bogus"}, "unknown stream"},
		{"user stream without accounts", []string{"-streams", "user", "-tokens", tokens}, "account id"},
		{"missing token file", []string{"-tokens", filepath.Join(dir, "none")}, "-tokens"},
		{"bad ratio", []string{"-sse-ratio", "2"}, "sse-ratio"},
		{"bad source ips", []string{"-source-ips", "10.1.1.1"}, "loopback"},
		{"missing authors file", []string{"-authors", filepath.Join(dir, "none")}, "-authors"},
		{"bad authors file", []string{"-authors", tokens}, "-authors: authors line 1"},
		{"fixtures without database", []string{"fixtures"}, "-database-url is required"},
		{"instance without tokens", []string{"instance"}, "needs -tokens"},
		{"instance without account ids", []string{"instance", "-tokens", tokens}, "account id"},
		{"instance with a ramp flag", []string{"instance", "-ramp-start", "5"}, "not defined"},
		{"instance bad arrivals", []string{"instance", "-tokens", tokens, "-arrivals", "burst"}, "-arrivals"},
		{"instance direct stream", []string{"instance", "-tokens", accountTokens, "-streams", "direct"}, "never receives events"},
		{"soak without server pid", []string{"soak", "-tokens", accountTokens}, "-server-pid"},
		{"soak remote metrics", []string{"soak", "-tokens", accountTokens, "-server-pid", "1", "-metrics-url", "http://192.0.2.1/metrics"}, "non-loopback"},
		{"soak bad tolerance", []string{"soak", "-streams", "public", "-server-pid", "1", "-flat-tolerance", "-1"}, "-flat-tolerance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tt.args, &stdout, &stderr)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q lacks %q", err, tt.want)
			}
			if strings.Contains(err.Error()+stderr.String(), "secret-token") {
				t.Fatal("token leaked")
			}
		})
	}
}

// TestEndToEndThroughRedis runs the whole command against the fake server,
// which follows a uniquely namespaced Redis like a real streaming server.
func TestEndToEndThroughRedis(t *testing.T) {
	u := os.Getenv("STREAMING_TEST_REDIS_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379/0"
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer func() { _ = rdb.Close() }()
	pingCtx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	err = rdb.Ping(pingCtx).Err()
	cancel()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis unreachable under CI: %v", err)
		}
		t.Skipf("redis unreachable: %v", err)
	}
	ns := fmt.Sprintf("loadtest-e2e-%d-%d", os.Getpid(), time.Now().UnixNano())
	srv := fakestream.New(fakestream.Options{
		Tokens: map[string]string{"tok-1": "201", "tok-2": "202"},
		Inject: func(c fakestream.Conn, seq uint64) fakestream.Action {
			if c.SSE && seq%4 == 0 {
				return fakestream.Drop
			}
			return fakestream.Deliver
		},
	})
	defer srv.Close()
	if err := srv.FollowRedis(t.Context(), rdb, ns); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.tsv")
	if err := os.WriteFile(tokens, []byte("tok-1\t201\ntok-2\t202\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	jsonOut := filepath.Join(dir, "report.json")
	args := []string{
		"-url", srv.URL, "-redis-url", u, "-redis-namespace", ns,
		"-clients", "8", "-sse-ratio", "0.5", "-streams", "public,user", "-tokens", tokens,
		"-rate", "20", "-duration", "1s", "-warmup", "200ms", "-drain", "2s",
		"-source-ips", "2", "-server-pid", fmt.Sprint(os.Getpid()), "-json", jsonOut,
	}
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "latency ms") || !strings.Contains(stderr.String(), "deliv/s") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	if strings.Contains(stdout.String()+stderr.String(), "tok-1") {
		t.Fatal("token leaked into output")
	}
	b, err := os.ReadFile(jsonOut)
	if err != nil {
		t.Fatal(err)
	}
	var rep loadgen.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	st := rep.Steps[0]
	sse, ws, _, _ := srv.Stats()
	d := st.Deliveries
	perClient := d.Expected / uint64(st.Counted)
	if st.Connected != 8 || st.Counted != 8 || sse+ws != 8 || perClient == 0 ||
		d.Expected != perClient*8 || d.Duplicates != 0 {
		t.Fatalf("step %+v", st)
	}
	// Sequence numbers run per channel; SSE clients lose every 4th.
	if d.Lost == 0 || d.Lost > uint64(sse)*(perClient/4+1) || d.Unique+d.Lost != d.Expected {
		t.Fatalf("deliveries %+v with %d sse clients", d, sse)
	}
	if st.Server == nil || st.Server.RSSConnectedKB == 0 {
		t.Fatalf("server stats %+v", st.Server)
	}
	t.Logf("report:\n%s", stdout.String())
}
