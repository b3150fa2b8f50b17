package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"
)

// probeTimeout bounds how long a helper waits for an external service before
// deciding it is unreachable.
const probeTimeout = 2 * time.Second

// unavailable skips the test, or fails it when the environment demands that
// services exist (CI), so a misconfigured CI run cannot pass by skipping.
func unavailable(t testing.TB, service, where, envVar string, err error) {
	t.Helper()
	if os.Getenv("CI") != "" || os.Getenv("STREAMING_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s not reachable at %s: %v (required because CI or STREAMING_TEST_REQUIRE_SERVICES=1 is set; set %s)",
			service, where, err, envVar)
	}
	t.Skipf("%s not reachable at %s: %v (set %s; CI fails instead of skipping)", service, where, err, envVar)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// randomHex returns 2*n lowercase hex digits, safe in SQL identifiers and
// Redis glob patterns alike.
func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testenv: random: %v", err)
	}
	return hex.EncodeToString(b)
}

// redact hides a password in a service URL so it never reaches test logs.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "(unparseable connection string)"
	}
	return u.Redacted()
}
