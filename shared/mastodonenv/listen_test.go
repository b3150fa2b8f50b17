package mastodonenv

import (
	"log/slog"
	"testing"
)

func TestListenFromEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Listen
		err  string
	}{
		{name: "defaults", want: Listen{"tcp", "127.0.0.1:4000"}},
		{name: "empty PORT is default", env: map[string]string{"PORT": ""}, want: Listen{"tcp", "127.0.0.1:4000"}},
		{name: "PORT", env: map[string]string{"PORT": "8080"}, want: Listen{"tcp", "127.0.0.1:8080"}},
		{name: "PORT with white space", env: map[string]string{"PORT": " 8080\n"}, want: Listen{"tcp", "127.0.0.1:8080"}},
		{name: "PORT zero", env: map[string]string{"PORT": "0"}, want: Listen{"tcp", "127.0.0.1:0"}},
		{name: "PORT leading zeros", env: map[string]string{"PORT": "04000"}, want: Listen{"tcp", "127.0.0.1:4000"}},
		{name: "PORT not a number", env: map[string]string{"PORT": "abc"}, err: "Invalid PORT environment variable: abc"},
		{name: "PORT trailing junk", env: map[string]string{"PORT": "4000x"}, err: "Invalid PORT environment variable: 4000x"},
		{name: "PORT blank", env: map[string]string{"PORT": "  "}, err: "Invalid PORT environment variable:   "},
		{name: "PORT too big", env: map[string]string{"PORT": "65536"}, err: "Invalid PORT environment variable: 65536"},
		{name: "PORT negative", env: map[string]string{"PORT": "-1"}, err: "Invalid PORT environment variable: -1"},
		{name: "BIND", env: map[string]string{"BIND": "0.0.0.0"}, want: Listen{"tcp", "0.0.0.0:4000"}},
		{name: "BIND empty means all interfaces", env: map[string]string{"BIND": ""}, want: Listen{"tcp", ":4000"}},
		{name: "BIND bracketed IPv6", env: map[string]string{"BIND": "[::1]", "PORT": "4001"}, want: Listen{"tcp", "[::1]:4001"}},
		{name: "BIND bare IPv6", env: map[string]string{"BIND": "::"}, want: Listen{"tcp", "[::]:4000"}},
		{name: "BIND hostname", env: map[string]string{"BIND": "localhost"}, want: Listen{"tcp", "localhost:4000"}},
		{name: "SOCKET", env: map[string]string{"SOCKET": "/run/mastodon/streaming.sock", "PORT": "abc", "BIND": "x"}, want: Listen{"unix", "/run/mastodon/streaming.sock"}},
		{name: "empty SOCKET ignored", env: map[string]string{"SOCKET": "", "PORT": "5000"}, want: Listen{"tcp", "127.0.0.1:5000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ListenFromEnv(MapEnv(tt.env))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLogLevelFromEnv(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want slog.Level
	}{
		{nil, slog.LevelDebug},
		{map[string]string{"NODE_ENV": "production"}, slog.LevelInfo},
		{map[string]string{"NODE_ENV": "test"}, slog.LevelInfo},
		{map[string]string{"LOG_LEVEL": "trace"}, LevelTrace},
		{map[string]string{"LOG_LEVEL": "debug", "NODE_ENV": "production"}, slog.LevelDebug},
		{map[string]string{"LOG_LEVEL": "info"}, slog.LevelInfo},
		{map[string]string{"LOG_LEVEL": "warn"}, slog.LevelWarn},
		{map[string]string{"LOG_LEVEL": "error"}, slog.LevelError},
		{map[string]string{"LOG_LEVEL": "fatal"}, LevelFatal},
		{map[string]string{"LOG_LEVEL": "silent", "NODE_ENV": "production"}, slog.LevelInfo},
		{map[string]string{"LOG_LEVEL": "WARN", "NODE_ENV": "production"}, slog.LevelInfo},
		{map[string]string{"LOG_LEVEL": "warning"}, slog.LevelDebug},
		{map[string]string{"LOG_LEVEL": ""}, slog.LevelDebug},
	}
	for _, tt := range tests {
		if got := LogLevelFromEnv(MapEnv(tt.env)); got != tt.want {
			t.Errorf("LogLevelFromEnv(%v) = %v, want %v", tt.env, got, tt.want)
		}
	}
}

func TestLevelName(t *testing.T) {
	for name, l := range pinoLevels {
		if got := LevelName(l); got != name {
			t.Errorf("LevelName(%v) = %q, want %q", l, got, name)
		}
	}
	tests := []struct {
		l    slog.Level
		want string
	}{
		{LevelTrace - 10, "trace"},
		{slog.LevelDebug + 1, "debug"},
		{slog.LevelWarn + 3, "warn"},
		{LevelFatal + 100, "fatal"},
	}
	for _, tt := range tests {
		if got := LevelName(tt.l); got != tt.want {
			t.Errorf("LevelName(%v) = %q, want %q", tt.l, got, tt.want)
		}
	}
}
