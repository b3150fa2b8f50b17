package testenv

import (
	"testing"
	"time"
)

// pollInterval is the pause between two attempts of Eventually.
const pollInterval = 10 * time.Millisecond

// Eventually calls f every 10 ms until it returns nil, failing the test with
// f's last error once timeout has passed. f is always called at least once.
// Use it instead of sleeping for asynchronous effects (subscriptions taking
// hold, keys appearing in Redis).
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
			return
		}
		time.Sleep(pollInterval)
	}
}
