// Package testenv provides the services Spillway's tests run against: an
// isolated Postgres schema loaded with a Mastodon schema subset and fixtures,
// a namespaced Redis client, embedded NATS servers, a TCP proxy that cuts a
// service off and restores it, and a polling assertion.
//
// It is a normal package (like net/http/httptest) but only _test.go files may
// import it. Every helper registers its own teardown with t.Cleanup, so tests
// can run in parallel without sharing state.
//
// Postgres and Redis are external services: when one is unreachable the test
// is skipped, unless CI is set or STREAMING_TEST_REQUIRE_SERVICES=1, in which
// case it fails. NATS is always embedded.
package testenv
