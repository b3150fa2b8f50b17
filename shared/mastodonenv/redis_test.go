package mastodonenv

import (
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestRedisFromEnv(t *testing.T) {
	type plain struct {
		network, addr, user, pass string
		db                        int
		tls                       bool
	}
	type sentinel struct {
		master     string
		addrs      []string
		user, pass string
		suser      string
		spass      string
		db         int
	}
	tests := []struct {
		name     string
		env      map[string]string
		plain    *plain
		sentinel *sentinel
		prefix   string
		err      string
	}{
		{
			name:  "defaults",
			plain: &plain{network: "tcp", addr: "127.0.0.1:6379"},
		},
		{
			name:  "empty values are defaults",
			env:   map[string]string{"REDIS_HOST": "", "REDIS_PORT": "", "REDIS_DB": "", "REDIS_URL": "", "REDIS_NAMESPACE": ""},
			plain: &plain{network: "tcp", addr: "127.0.0.1:6379"},
		},
		{
			name: "host port db credentials namespace",
			env: map[string]string{
				"REDIS_HOST": "redis.internal", "REDIS_PORT": "6380", "REDIS_DB": "3",
				"REDIS_USERNAME": "acl", "REDIS_PASSWORD": "s3cret", "REDIS_NAMESPACE": "mastodon",
			},
			plain:  &plain{network: "tcp", addr: "redis.internal:6380", user: "acl", pass: "s3cret", db: 3},
			prefix: "mastodon:",
		},
		{
			name:  "IPv6 host",
			env:   map[string]string{"REDIS_HOST": "::1"},
			plain: &plain{network: "tcp", addr: "[::1]:6379"},
		},
		{
			name:  "parseInt prefix",
			env:   map[string]string{"REDIS_PORT": " 6390xyz", "REDIS_DB": "2.5"},
			plain: &plain{network: "tcp", addr: "127.0.0.1:6390", db: 2},
		},
		{name: "bad port", env: map[string]string{"REDIS_PORT": "abc"}, err: "Invalid REDIS_PORT environment variable: abc"},
		{name: "port out of range", env: map[string]string{"REDIS_PORT": "65536"}, err: "Invalid REDIS_PORT environment variable: 65536"},
		{name: "port zero", env: map[string]string{"REDIS_PORT": "0"}, err: "Invalid REDIS_PORT environment variable: 0"},
		{name: "bad db", env: map[string]string{"REDIS_DB": "x1"}, err: "Invalid REDIS_DB environment variable: x1"},
		{name: "negative db", env: map[string]string{"REDIS_DB": "-1"}, err: "Invalid REDIS_DB environment variable: -1"},
		{
			name:   "url",
			env:    map[string]string{"REDIS_URL": "redis://user:pw@cache:6400/4", "REDIS_PORT": "abc", "REDIS_DB": "x", "REDIS_HOST": "ignored", "REDIS_NAMESPACE": "ns"},
			plain:  &plain{network: "tcp", addr: "cache:6400", user: "user", pass: "pw", db: 4},
			prefix: "ns:",
		},
		{
			name:  "url password only",
			env:   map[string]string{"REDIS_URL": "redis://:pw@cache"},
			plain: &plain{network: "tcp", addr: "cache:6379", pass: "pw"},
		},
		{
			name:  "rediss",
			env:   map[string]string{"REDIS_URL": "rediss://cache:6380"},
			plain: &plain{network: "tcp", addr: "cache:6380", tls: true},
		},
		{
			name:  "unix url",
			env:   map[string]string{"REDIS_URL": "unix:///run/redis.sock?db=2"},
			plain: &plain{network: "unix", addr: "/run/redis.sock", db: 2},
		},
		{
			name:  "url beats sentinel",
			env:   map[string]string{"REDIS_URL": "redis://cache", "REDIS_SENTINELS": "s1", "REDIS_SENTINEL_MASTER": "m"},
			plain: &plain{network: "tcp", addr: "cache:6379"},
		},
		{name: "url bad scheme", env: map[string]string{"REDIS_URL": "http://cache"}, err: "Invalid REDIS_URL environment variable: redis: invalid URL scheme: http"},
		{name: "url bad db", env: map[string]string{"REDIS_URL": "redis://cache/x"}, err: "Invalid REDIS_URL environment variable"},
		{name: "url unparsable", env: map[string]string{"REDIS_URL": "redis://u:topsecret@[::1"}, err: "Invalid REDIS_URL environment variable"},
		{
			name: "sentinel",
			env: map[string]string{
				"REDIS_SENTINELS": "s1, s2:26380 ,[fd00::1]:26381,fd00::2,", "REDIS_SENTINEL_MASTER": "mymaster",
				"REDIS_DB": "1", "REDIS_USERNAME": "u", "REDIS_PASSWORD": "p", "REDIS_PORT": "abc", "REDIS_HOST": "ignored",
			},
			sentinel: &sentinel{
				master: "mymaster", addrs: []string{"s1:26379", "s2:26380", "[fd00::1]:26381", "[fd00::2]:26379"},
				user: "u", pass: "p", suser: "u", spass: "p", db: 1,
			},
		},
		{
			name: "sentinel port and own credentials",
			env: map[string]string{
				"REDIS_SENTINELS": "s1,s2:1", "REDIS_SENTINEL_MASTER": "m", "REDIS_SENTINEL_PORT": "26400",
				"REDIS_PASSWORD": "p", "REDIS_SENTINEL_USERNAME": "su", "REDIS_SENTINEL_PASSWORD": "sp",
			},
			sentinel: &sentinel{master: "m", addrs: []string{"s1:26400", "s2:1"}, pass: "p", suser: "su", spass: "sp"},
		},
		{
			name: "sentinel credentials set empty stay empty",
			env: map[string]string{
				"REDIS_SENTINELS": "s1", "REDIS_SENTINEL_MASTER": "m",
				"REDIS_USERNAME": "u", "REDIS_PASSWORD": "p", "REDIS_SENTINEL_USERNAME": "", "REDIS_SENTINEL_PASSWORD": "",
			},
			sentinel: &sentinel{master: "m", addrs: []string{"s1:26379"}, user: "u", pass: "p"},
		},
		{
			name:  "sentinels without master is plain",
			env:   map[string]string{"REDIS_SENTINELS": "s1", "REDIS_SENTINEL_MASTER": ""},
			plain: &plain{network: "tcp", addr: "127.0.0.1:6379"},
		},
		{
			name:  "master without sentinels is plain",
			env:   map[string]string{"REDIS_SENTINEL_MASTER": "m"},
			plain: &plain{network: "tcp", addr: "127.0.0.1:6379"},
		},
		{name: "sentinel bad port var", env: map[string]string{"REDIS_SENTINELS": "s1", "REDIS_SENTINEL_MASTER": "m", "REDIS_SENTINEL_PORT": "x"}, err: "Invalid REDIS_SENTINEL_PORT environment variable: x"},
		{name: "sentinel bad db", env: map[string]string{"REDIS_SENTINELS": "s1", "REDIS_SENTINEL_MASTER": "m", "REDIS_DB": "x"}, err: "Invalid REDIS_DB environment variable: x"},
		{name: "sentinel bad entry port", env: map[string]string{"REDIS_SENTINELS": "s1:abc", "REDIS_SENTINEL_MASTER": "m"}, err: "Invalid REDIS_SENTINELS environment variable: s1:abc"},
		{name: "sentinel empty list", env: map[string]string{"REDIS_SENTINELS": " , ", "REDIS_SENTINEL_MASTER": "m"}, err: "Invalid REDIS_SENTINELS environment variable:  , "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := RedisFromEnv(MapEnv(tt.env))
			if tt.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("err = %v, want prefix %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "topsecret") {
					t.Errorf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Prefix(); got != tt.prefix {
				t.Errorf("Prefix() = %q, want %q", got, tt.prefix)
			}
			if (r.Options == nil) == (r.Failover == nil) {
				t.Fatalf("want exactly one of Options/Failover, got %+v", r)
			}
			if tt.plain != nil {
				o := r.Options
				if o == nil {
					t.Fatalf("got sentinel config %+v, want plain", r.Failover)
				}
				got := plain{network: o.Network, addr: o.Addr, user: o.Username, pass: o.Password, db: o.DB, tls: o.TLSConfig != nil}
				if got != *tt.plain {
					t.Errorf("got %+v, want %+v", got, *tt.plain)
				}
			}
			if tt.sentinel != nil {
				f := r.Failover
				if f == nil {
					t.Fatalf("got plain config %+v, want sentinel", r.Options)
				}
				got := sentinel{master: f.MasterName, addrs: f.SentinelAddrs, user: f.Username, pass: f.Password, suser: f.SentinelUsername, spass: f.SentinelPassword, db: f.DB}
				if !reflect.DeepEqual(got, *tt.sentinel) {
					t.Errorf("got %+v, want %+v", got, *tt.sentinel)
				}
			}
			c := r.NewClient()
			if c == nil {
				t.Fatal("NewClient returned nil")
			}
			_ = c.Close()
		})
	}
}

func TestRedisPrefix(t *testing.T) {
	for ns, want := range map[string]string{"": "", "mastodon": "mastodon:", "a:b": "a:b:"} {
		if got := (Redis{Namespace: ns}).Prefix(); got != want {
			t.Errorf("Prefix(%q) = %q, want %q", ns, got, want)
		}
	}
}

func TestParseSentinels(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{in: "s1", want: []string{"s1:26379"}},
		{in: "s1:1,s2:65535", want: []string{"s1:1", "s2:65535"}},
		{in: "s1:", want: []string{"s1:26379"}},
		{in: "10.0.0.1:26380", want: []string{"10.0.0.1:26380"}},
		{in: "[::1]", want: []string{"[::1]:26379"}},
		{in: "[::1]:5", want: []string{"[::1]:5"}},
		{in: "::1", want: []string{"[::1]:26379"}},
		{in: ",,s1,,", want: []string{"s1:26379"}},
		{in: "", err: true},
		{in: ",", err: true},
		{in: ":26379", err: true},
		{in: "s1:0", err: true},
		{in: "s1:65536", err: true},
		{in: "s1:26379x", err: true},
		{in: "[::1", err: true},
		{in: "[]:1", err: true},
		{in: "[::1]x", err: true},
		{in: "s1:1:2", err: true},
		{in: "]", err: true},
		{in: "a]b:1", err: true},
		{in: "fe80::1%eth0", want: []string{"[fe80::1%eth0]:26379"}},
	}
	for _, tt := range tests {
		got, err := ParseSentinels(tt.in, 26379)
		if tt.err {
			if err == nil {
				t.Errorf("ParseSentinels(%q) = %v, want error", tt.in, got)
			} else if !strings.HasPrefix(err.Error(), "Invalid REDIS_SENTINELS environment variable: ") {
				t.Errorf("ParseSentinels(%q) error %q does not name REDIS_SENTINELS", tt.in, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseSentinels(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParseSentinels(f *testing.F) {
	for _, s := range []string{"s1", "s1:26380,s2", "[::1]:26379", "fd00::1", "a:b:c", ",", "[::1", "s1:99999", "redis-sentinel-0.svc:26379,redis-sentinel-1.svc:26379"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addrs, err := ParseSentinels(s, 26379)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "Invalid REDIS_SENTINELS environment variable: ") {
				t.Fatalf("error %q does not name the variable", err)
			}
			return
		}
		if len(addrs) == 0 {
			t.Fatal("no addresses and no error")
		}
		for _, a := range addrs {
			host, port, err := net.SplitHostPort(a)
			if err != nil {
				t.Fatalf("address %q: %v", a, err)
			}
			if host == "" {
				t.Fatalf("address %q has no host", a)
			}
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				t.Fatalf("address %q has bad port", a)
			}
		}
	})
}
