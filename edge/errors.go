package edge

// apiError is an error a client sees: Mastodon's message and HTTP status.
// Messages are part of the protocol; never change their text.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

var (
	errUnknownChannel = &apiError{400, "Unknown channel requested"}
	errMissingToken   = &apiError{401, "Missing access token"}
	errInvalidToken   = &apiError{401, "Invalid access token"}
	errScopes         = &apiError{401, "Access token does not have the required scopes"}
	errMissingTag     = &apiError{400, "Missing tag name parameter"}
	errMissingList    = &apiError{400, "Missing list name parameter"}
	errListForbidden  = &apiError{401, "Not authorized to stream this list"}
	errUnknownStream  = &apiError{400, "Unknown stream type"}
	errUnexpected     = &apiError{500, "An unexpected error occurred"}

	// Spillway's own refusals, which Mastodon's server never makes: the
	// client should reconnect (through the load balancer, to another edge).
	errTooMany  = &apiError{503, "Too many connections"}
	errDraining = &apiError{503, "Server shutting down"}
)

// unsubscribeErrorJSON is what Mastodon sends when an unsubscribe message
// cannot be resolved: it has no status key.
const unsubscribeErrorJSON = `{"error":"Error unsubscribing from channel"}`
