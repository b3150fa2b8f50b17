package testenv

// Account ids of the fixture accounts (testdata/fixtures.sql). Local accounts
// have a user whose users.id is the last digits (alice is user 1, judy user 11).
const (
	Alice   int64 = 109000000000000001 // no language filter; blocks carol, mutes dave, domain-blocks blocked.example; filters 7001-7003
	Bob     int64 = 109000000000000002 // chosen_languages {en}; owns list 5002
	Carol   int64 = 109000000000000003 // blocked by alice
	Dave    int64 = 109000000000000004 // dave@remote.example, muted by alice
	Erin    int64 = 109000000000000005 // erin@blocked.example
	Frank   int64 = 109000000000000006 // user disabled
	Grace   int64 = 109000000000000007 // account suspended
	Mallory int64 = 109000000000000008 // blocks alice
	Heidi   int64 = 109000000000000009 // view_feeds permission; blur filter 7004
	Ivan    int64 = 109000000000000010 // ivan@remote.example
	Judy    int64 = 109000000000000011 // chosen_languages '{}' (empty), no filters
	Ken     int64 = 109000000000000012 // Admin role (permissions 1, no view_feeds); filters 7005, 7006
)

// Fixture domains.
const (
	RemoteDomain  = "remote.example"
	BlockedDomain = "blocked.example" // domain-blocked by alice
)

// Fixture lists.
const (
	AliceList int64 = 5001 // "Friends", owned by alice
	BobList   int64 = 5002 // "Bob's list", owned by bob
)

// ViewFeedsPermission is the user_roles.permissions bit (1<<20) that heidi's
// role grants.
const ViewFeedsPermission int64 = 1 << 20

// Token describes one fixture access token.
type Token struct {
	Token     string
	ID        int64
	AccountID int64 // owner account; 0 for the application-only token
	Scopes    string
	Valid     bool // whether Mastodon's token lookup finds it
}

// Tokens lists every fixture access token in id order. It is a function so
// callers cannot mutate shared state.
func Tokens() []Token {
	return []Token{
		{"alice-read-token", 1, Alice, "read write follow push", true},
		{"alice-statuses-token", 2, Alice, "read:statuses", true},
		{"alice-notifications-token", 3, Alice, "read:notifications", true},
		{"alice-write-token", 4, Alice, "write", true},
		{"alice-revoked-token", 5, Alice, "read", false},
		{"bob-read-token", 6, Bob, "read", true},
		{"carol-read-token", 7, Carol, "read", true},
		{"frank-read-token", 8, Frank, "read", false},
		{"grace-read-token", 9, Grace, "read", false},
		{"mallory-read-token", 10, Mallory, "read", true},
		{"heidi-read-token", 11, Heidi, "read", true},
		{"alice-profile-token", 12, Alice, "profile", true},
		{"judy-read-token", 13, Judy, "read", true},
		{"alice-nullscopes-token", 14, Alice, "", true}, // NULL scopes: found, but Mastodon answers 500
		{"app-only-token", 15, 0, "read", false},
		{"ken-read-token", 16, Ken, "read", true},
		{"alice-spaced-token", 17, Alice, "read:statuses  write ", true},
		{"alice-expired-token", 18, Alice, "read", true}, // expires_in is not checked
	}
}

// Frequently used fixture tokens.
const (
	AliceReadToken     = "alice-read-token"
	AliceStatusesToken = "alice-statuses-token"
	AliceNotifToken    = "alice-notifications-token"
	AliceWriteToken    = "alice-write-token"
	AliceRevokedToken  = "alice-revoked-token"
	BobReadToken       = "bob-read-token"
	HeidiReadToken     = "heidi-read-token"
	JudyReadToken      = "judy-read-token"
	NullScopesToken    = "alice-nullscopes-token"
	AppOnlyToken       = "app-only-token"
)
