-- Spillway test fixtures for testdata/schema.sql.  Every timestamp is an
-- explicit UTC literal so results never depend on the wall clock (except the
-- "expired"/"not yet expired" filter, whose dates are far in the past/future).
-- The Go constants in fixtures.go name the same ids and tokens.
--
-- Rows marked [mastodon] restate Mastodon's reference fixtures; rows marked
-- [spillway] are extra cases for Spillway's own tests.
--
-- ACCOUNTS (accounts.id / users.id)
--   109000000000000001 alice        user 1   no language filter                         [mastodon]
--   109000000000000002 bob          user 2   chosen_languages {en}; owns list 5002      [mastodon]
--   109000000000000003 carol        user 3   alice BLOCKS carol                         [mastodon]
--   109000000000000004 dave@remote.example   no user; alice MUTES dave                  [mastodon]
--   109000000000000005 erin@blocked.example  no user; alice DOMAIN-BLOCKS blocked.example [mastodon]
--   109000000000000006 frank        user 6   disabled -> every token invalid            [mastodon]
--   109000000000000007 grace        user 7   suspended -> every token invalid           [mastodon]
--   109000000000000008 mallory      user 8   mallory BLOCKS alice                       [mastodon]
--   109000000000000009 heidi        user 9   role FeedViewer (view_feeds, 1<<20)        [mastodon]
--   109000000000000010 ivan@remote.example   no user; plain remote author               [mastodon]
--   109000000000000011 judy         user 11  chosen_languages '{}' (drops everything), no filters [spillway]
--   109000000000000012 ken          user 12  role Admin (administrator only, permissions 1);
--                                            filters 7005 (two keywords) and 7006 (expires 2999) [spillway]
--
-- TOKENS (token -> id, owner, scopes)
--   alice-read-token            1  alice   "read write follow push"                  [mastodon]
--   alice-statuses-token        2  alice   "read:statuses"                           [mastodon]
--   alice-notifications-token   3  alice   "read:notifications"                      [mastodon]
--   alice-write-token           4  alice   "write"                                   [mastodon]
--   alice-revoked-token         5  alice   "read", revoked -> invalid                [mastodon]
--   bob-read-token              6  bob     "read"                                    [mastodon]
--   carol-read-token            7  carol   "read"                                    [mastodon]
--   frank-read-token            8  frank   "read", user disabled -> invalid          [mastodon]
--   grace-read-token            9  grace   "read", account suspended -> invalid      [mastodon]
--   mallory-read-token          10 mallory "read"                                    [mastodon]
--   heidi-read-token            11 heidi   "read", view_feeds                        [mastodon]
--   alice-profile-token         12 alice   "profile"                                 [mastodon]
--   judy-read-token             13 judy    "read"                                    [spillway]
--   alice-nullscopes-token      14 alice   NULL scopes -> server error (500)         [spillway]
--   app-only-token              15 (none)  "read", resource_owner_id NULL -> invalid [spillway]
--   ken-read-token              16 ken     "read"                                    [spillway]
--   alice-spaced-token          17 alice   "read:statuses  write " (split keeps empty items) [spillway]
--   alice-expired-token         18 alice   "read", expires_in 7200 from 2020 -> still valid  [spillway]
--
-- LISTS: 5001 "Friends" (alice; members bob, carol), 5002 "Bob's list" (bob)  [mastodon]
--
-- CUSTOM FILTERS
--   7001 alice "Spoilers" warn  {home,public}  "spoiler" whole_word            [mastodon]
--   7002 alice "Hidden"   hide  {public}       "hideme"  not whole_word        [mastodon]
--   7003 alice "Expired"  hide  expired 2020   "oldnews"                       [mastodon]
--   7004 heidi "Blurry"   blur  {public}       "blurme" whole_word             [mastodon]
--   7005 ken   "Multi"    hide  {home,notifications} "foo" whole_word, "bar baz" not whole_word [spillway]
--   7006 ken   "Future"   warn  {public}  expires 2999-01-01  "later" whole_word          [spillway]
--
-- No settings rows: every feed is allowed.  Tests insert *_feed_access rows
-- themselves (value E'--- disabled\n' blocks a side).

INSERT INTO user_roles (id, name, color, position, permissions, highlighted, created_at, updated_at) VALUES
  (1, 'FeedViewer', '', 10, 1048576, false, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (2, 'Admin',      '', 20, 1,       false, '2024-01-01 00:00:00', '2024-01-01 00:00:00');

INSERT INTO accounts (id, username, domain, display_name, uri, url, suspended_at, created_at, updated_at) VALUES
  (109000000000000001, 'alice',   NULL,              'Alice',   '', 'https://example.test/@alice',   NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (109000000000000002, 'bob',     NULL,              'Bob',     '', 'https://example.test/@bob',     NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (109000000000000003, 'carol',   NULL,              'Carol',   '', 'https://example.test/@carol',   NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (109000000000000004, 'dave',    'remote.example',  'Dave',    'https://remote.example/users/dave',  'https://remote.example/@dave',  NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (109000000000000005, 'erin',    'blocked.example', 'Erin',    'https://blocked.example/users/erin', 'https://blocked.example/@erin', NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (109000000000000006, 'frank',   NULL,              'Frank',   '', 'https://example.test/@frank',   NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (109000000000000007, 'grace',   NULL,              'Grace',   '', 'https://example.test/@grace',   '2024-06-01 00:00:00', '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (109000000000000008, 'mallory', NULL,              'Mallory', '', 'https://example.test/@mallory', NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (109000000000000009, 'heidi',   NULL,              'Heidi',   '', 'https://example.test/@heidi',   NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (109000000000000010, 'ivan',    'remote.example',  'Ivan',    'https://remote.example/users/ivan',  'https://remote.example/@ivan',  NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (109000000000000011, 'judy',    NULL,              'Judy',    '', 'https://example.test/@judy',    NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (109000000000000012, 'ken',     NULL,              'Ken',     '', 'https://example.test/@ken',     NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00');

INSERT INTO users (id, email, account_id, disabled, confirmed_at, chosen_languages, role_id, created_at, updated_at) VALUES
  (1,  'alice@example.test',   109000000000000001, false, '2024-01-01 00:00:00', NULL,   NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (2,  'bob@example.test',     109000000000000002, false, '2024-01-01 00:00:00', '{en}', NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (3,  'carol@example.test',   109000000000000003, false, '2024-01-01 00:00:00', NULL,   NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (6,  'frank@example.test',   109000000000000006, true,  '2024-01-01 00:00:00', NULL,   NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (7,  'grace@example.test',   109000000000000007, false, '2024-01-01 00:00:00', NULL,   NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (8,  'mallory@example.test', 109000000000000008, false, '2024-01-01 00:00:00', NULL,   NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (9,  'heidi@example.test',   109000000000000009, false, '2024-01-01 00:00:00', NULL,   1,    '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (11, 'judy@example.test',    109000000000000011, false, '2024-01-01 00:00:00', '{}',   NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (12, 'ken@example.test',     109000000000000012, false, '2024-01-01 00:00:00', NULL,   2,    '2024-01-01 00:00:00', '2024-01-01 00:00:00');

INSERT INTO oauth_applications (id, name, uid, secret, redirect_uri, scopes, confidential, created_at, updated_at) VALUES
  (1, 'Test client', 'test-client-uid', 'test-client-secret', 'urn:ietf:wg:oauth:2.0:oob', 'read write follow push profile', false, '2024-01-01 00:00:00', '2024-01-01 00:00:00');

INSERT INTO oauth_access_tokens (id, token, scopes, application_id, resource_owner_id, revoked_at, expires_in, created_at) VALUES
  (1,  'alice-read-token',          'read write follow push', 1, 1,    NULL,                  NULL, '2024-01-01 00:00:00'),
  (2,  'alice-statuses-token',      'read:statuses',          1, 1,    NULL,                  NULL, '2024-01-01 00:00:00'),
  (3,  'alice-notifications-token', 'read:notifications',     1, 1,    NULL,                  NULL, '2024-01-01 00:00:00'),
  (4,  'alice-write-token',         'write',                  1, 1,    NULL,                  NULL, '2024-01-01 00:00:00'),
  (5,  'alice-revoked-token',       'read',                   1, 1,    '2024-02-01 00:00:00', NULL, '2024-01-01 00:00:00'),
  (6,  'bob-read-token',            'read',                   1, 2,    NULL,                  NULL, '2024-01-01 00:00:00'),
  (7,  'carol-read-token',          'read',                   1, 3,    NULL,                  NULL, '2024-01-01 00:00:00'),
  (8,  'frank-read-token',          'read',                   1, 6,    NULL,                  NULL, '2024-01-01 00:00:00'),
  (9,  'grace-read-token',          'read',                   1, 7,    NULL,                  NULL, '2024-01-01 00:00:00'),
  (10, 'mallory-read-token',        'read',                   1, 8,    NULL,                  NULL, '2024-01-01 00:00:00'),
  (11, 'heidi-read-token',          'read',                   1, 9,    NULL,                  NULL, '2024-01-01 00:00:00'),
  (12, 'alice-profile-token',       'profile',                1, 1,    NULL,                  NULL, '2024-01-01 00:00:00'),
  (13, 'judy-read-token',           'read',                   1, 11,   NULL,                  NULL, '2024-01-01 00:00:00'),
  (14, 'alice-nullscopes-token',    NULL,                     1, 1,    NULL,                  NULL, '2024-01-01 00:00:00'),
  (15, 'app-only-token',            'read',                   1, NULL, NULL,                  NULL, '2024-01-01 00:00:00'),
  (16, 'ken-read-token',            'read',                   1, 12,   NULL,                  NULL, '2024-01-01 00:00:00'),
  (17, 'alice-spaced-token',        'read:statuses  write ',  1, 1,    NULL,                  NULL, '2024-01-01 00:00:00'),
  (18, 'alice-expired-token',       'read',                   1, 1,    NULL,                  7200, '2020-01-01 00:00:00');

-- alice blocks carol; mallory blocks alice
INSERT INTO blocks (account_id, target_account_id, created_at, updated_at) VALUES
  (109000000000000001, 109000000000000003, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (109000000000000008, 109000000000000001, '2024-01-01 00:00:00', '2024-01-01 00:00:00');

-- alice mutes dave@remote.example
INSERT INTO mutes (account_id, target_account_id, hide_notifications, created_at, updated_at) VALUES
  (109000000000000001, 109000000000000004, true, '2024-01-01 00:00:00', '2024-01-01 00:00:00');

-- alice hides everything from blocked.example
INSERT INTO account_domain_blocks (account_id, domain, created_at, updated_at) VALUES
  (109000000000000001, 'blocked.example', '2024-01-01 00:00:00', '2024-01-01 00:00:00');

-- alice follows bob and carol (context only)
INSERT INTO follows (account_id, target_account_id, created_at, updated_at) VALUES
  (109000000000000001, 109000000000000002, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (109000000000000001, 109000000000000003, '2024-01-01 00:00:00', '2024-01-01 00:00:00');

INSERT INTO lists (id, account_id, title, created_at, updated_at) VALUES
  (5001, 109000000000000001, 'Friends',     '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (5002, 109000000000000002, 'Bob''s list', '2024-01-01 00:00:00', '2024-01-01 00:00:00');

INSERT INTO list_accounts (list_id, account_id) VALUES
  (5001, 109000000000000002),
  (5001, 109000000000000003);

INSERT INTO custom_filters (id, account_id, expires_at, phrase, context, action, created_at, updated_at) VALUES
  (7001, 109000000000000001, NULL,                  'Spoilers', '{home,public}',        0, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (7002, 109000000000000001, NULL,                  'Hidden',   '{public}',             1, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (7003, 109000000000000001, '2020-01-01 00:00:00', 'Expired',  '{public}',             1, '2019-01-01 00:00:00', '2019-01-01 00:00:00'),
  (7004, 109000000000000009, NULL,                  'Blurry',   '{public}',             2, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (7005, 109000000000000012, NULL,                  'Multi',    '{home,notifications}', 1, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (7006, 109000000000000012, '2999-01-01 00:00:00', 'Future',   '{public}',             0, '2024-01-01 00:00:00', '2024-01-01 00:00:00');

INSERT INTO custom_filter_keywords (id, custom_filter_id, keyword, whole_word, created_at, updated_at) VALUES
  (1, 7001, 'spoiler', true,  '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (2, 7002, 'hideme',  false, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (3, 7003, 'oldnews', true,  '2019-01-01 00:00:00', '2019-01-01 00:00:00'),
  (4, 7004, 'blurme',  true,  '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (5, 7005, 'foo',     true,  '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (6, 7005, 'bar baz', false, '2024-01-01 00:00:00', '2024-01-01 00:00:00'),
  (7, 7006, 'later',   true,  '2024-01-01 00:00:00', '2024-01-01 00:00:00');

-- Keep sequences ahead of the explicit ids above.
SELECT setval('accounts_id_seq', 109000000000000100), setval('users_id_seq', 100),
       setval('user_roles_id_seq', 100), setval('oauth_applications_id_seq', 100),
       setval('oauth_access_tokens_id_seq', 100), setval('lists_id_seq', 6000),
       setval('custom_filters_id_seq', 8000), setval('custom_filter_keywords_id_seq', 100),
       setval('blocks_id_seq', 100), setval('mutes_id_seq', 100),
       setval('account_domain_blocks_id_seq', 100), setval('follows_id_seq', 100),
       setval('list_accounts_id_seq', 100);
