package mastodonenv

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParseJSInt(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"5432", 5432, true},
		{"  42", 42, true},
		{"\t\n\u00a0\ufeff\u2028 7", 7, true},
		{"+5", 5, true},
		{"-5", -5, true},
		{"12abc", 12, true},
		{"1e3", 1, true},
		{"0x10", 0, true},
		{"007", 7, true},
		{"3.9", 3, true},
		{"9223372036854775807", 9223372036854775807, true},
		{"9223372036854775808", 0, false},
		{"99999999999999999999", 0, false},
		{"", 0, false},
		{"   ", 0, false},
		{"abc", 0, false},
		{"+", 0, false},
		{"-", 0, false},
		{"+-1", 0, false},
		{"NaN", 0, false},
		{"Infinity", 0, false},
		{"٣", 0, false}, // non-ASCII digits are not digits to parseInt
	}
	for _, tt := range tests {
		got, ok := parseJSInt(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseJSInt(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParseJSInt(f *testing.F) {
	for _, s := range []string{"0", "5432", " 42", "-5", "12abc", "", "abc", "99999999999999999999", "\u3000+7x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := parseJSInt(s)
		if !ok {
			return
		}
		// The digits read must reproduce n.
		rest := strings.TrimLeftFunc(s, isJSSpace)
		neg := strings.HasPrefix(rest, "-")
		rest = strings.TrimLeft(rest, "+-")
		end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if end < 0 {
			end = len(rest)
		}
		want, err := strconv.ParseInt(rest[:end], 10, 64)
		if err != nil {
			t.Fatalf("parseJSInt(%q) = %d, but digits %q do not parse: %v", s, n, rest[:end], err)
		}
		if neg {
			want = -want
		}
		if n != want {
			t.Fatalf("parseJSInt(%q) = %d, want %d", s, n, want)
		}
	})
}

func TestNodeEnv(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{nil, "development"},
		{map[string]string{"NODE_ENV": ""}, "development"},
		{map[string]string{"NODE_ENV": "production"}, "production"},
		{map[string]string{"NODE_ENV": "test"}, "test"},
	}
	for _, tt := range tests {
		if got := NodeEnv(MapEnv(tt.env)); got != tt.want {
			t.Errorf("NodeEnv(%v) = %q, want %q", tt.env, got, tt.want)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadDotenv(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, ".env"), "FROM=dev\nSHARED=dev-file\nNODE_ENV=production\nEMPTY_IN_ENV=file\nREF=${FROM}-x\n")
	writeFile(t, filepath.Join(root, ".env.production"), "# comment\nFROM=prod\nSHARED='prod file'\nNODE_ENV=development\nDB_PASS=\"p#ss\"\n")

	type lookup struct {
		key   string
		value string
		ok    bool
	}
	tests := []struct {
		name string
		env  map[string]string
		want []lookup
	}{
		{
			name: "development file by default",
			env:  map[string]string{"SHARED": "real"},
			want: []lookup{
				{"FROM", "dev", true},
				{"SHARED", "real", true},
				{"REF", "dev-x", true},
				{"NODE_ENV", "", false}, // never from the file
				{"MISSING", "", false},
			},
		},
		{
			name: "empty NODE_ENV is development",
			env:  map[string]string{"NODE_ENV": "", "EMPTY_IN_ENV": ""},
			want: []lookup{
				{"FROM", "dev", true},
				{"EMPTY_IN_ENV", "", true}, // set-but-empty in the real env wins
				{"NODE_ENV", "", true},
			},
		},
		{
			name: "test environment uses .env",
			env:  map[string]string{"NODE_ENV": "test"},
			want: []lookup{{"FROM", "dev", true}},
		},
		{
			name: "production file",
			env:  map[string]string{"NODE_ENV": "production"},
			want: []lookup{
				{"FROM", "prod", true},
				{"SHARED", "prod file", true},
				{"DB_PASS", "p#ss", true},
				{"NODE_ENV", "production", true},
				{"REF", "", false},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := LoadDotenv(MapEnv(tt.env), root)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range tt.want {
				v, ok := env(l.key)
				if v != l.value || ok != l.ok {
					t.Errorf("%s = %q, %v; want %q, %v", l.key, v, ok, l.value, l.ok)
				}
			}
		})
	}
}

func TestLoadDotenvMissingFile(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, ".env"), "ONLY_DEV=1\n")
	env, err := LoadDotenv(MapEnv(map[string]string{"NODE_ENV": "production", "A": "b"}), root)
	if err != nil {
		t.Fatalf("missing .env.production: %v", err)
	}
	if v, ok := env("ONLY_DEV"); ok {
		t.Errorf("ONLY_DEV = %q from the development file in production", v)
	}
	if env.Get("A") != "b" {
		t.Errorf("A = %q, want b", env.Get("A"))
	}
	if _, err := LoadDotenv(MapEnv(nil), filepath.Join(root, "nonexistent")); err != nil {
		t.Errorf("missing root: %v", err)
	}
}

func TestLoadDotenvErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
	}{
		{"unterminated quote", func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, ".env"), "A=\"never closed\nB=1\n")
		}},
		{"directory", func(t *testing.T, root string) {
			if err := os.Mkdir(filepath.Join(root, ".env"), 0o700); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.setup(t, root)
			_, err := LoadDotenv(MapEnv(nil), root)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), "NODE_ENV") {
				t.Errorf("error %q does not name NODE_ENV", err)
			}
		})
	}
}

func TestLoadDotenvOSLookup(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, ".env"), "MASTODONENV_TEST_A=file\nMASTODONENV_TEST_B=file\n")
	t.Setenv("NODE_ENV", "")
	t.Setenv("MASTODONENV_TEST_A", "real")
	env, err := LoadDotenv(os.LookupEnv, root)
	if err != nil {
		t.Fatal(err)
	}
	if got := env.Get("MASTODONENV_TEST_A"); got != "real" {
		t.Errorf("A = %q, want real", got)
	}
	if got := env.Get("MASTODONENV_TEST_B"); got != "file" {
		t.Errorf("B = %q, want file", got)
	}
	if _, ok := os.LookupEnv("MASTODONENV_TEST_B"); ok {
		t.Error("LoadDotenv modified the process environment")
	}
}
