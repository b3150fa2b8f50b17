-- Spillway test schema: the subset of Mastodon's PostgreSQL schema that the
-- streaming server reads, plus the tables fixtures need for context (lists
-- membership, follows, status filters).  Column names, types, nullability and
-- defaults follow Mastodon's db/schema.rb (schema version 2025_12_17_091936).
--
-- Loaded by testenv.Postgres inside one transaction with search_path set to a
-- fresh per-test schema, so there is no BEGIN/COMMIT and no schema qualifier.
--
-- Differences from real Mastodon, on purpose:
--   * accounts.id is a plain sequence; Mastodon uses timestamp_id('accounts').
--     Fixtures insert explicit snowflake-sized ids instead.
--   * Only the columns Rails always fills (created_at/updated_at ...) are kept
--     besides the ones the streaming server reads.
--
-- Rails type mapping: t.string -> character varying, t.datetime (precision nil)
-- -> timestamp without time zone, Rails 7 t.datetime -> timestamp(6) without
-- time zone.  All timestamps hold UTC.

-- Tables the streaming server queries -------------------------------------

CREATE TABLE accounts (
    id              bigserial PRIMARY KEY,
    username        character varying NOT NULL DEFAULT '',
    domain          character varying,                 -- NULL for local accounts
    display_name    character varying NOT NULL DEFAULT '',
    note            text NOT NULL DEFAULT '',
    uri             character varying NOT NULL DEFAULT '',
    url             character varying,
    locked          boolean NOT NULL DEFAULT false,
    discoverable    boolean,
    silenced_at     timestamp without time zone,
    suspended_at    timestamp without time zone,       -- non-NULL invalidates every token
    created_at      timestamp without time zone NOT NULL,
    updated_at      timestamp without time zone NOT NULL
);
CREATE UNIQUE INDEX index_accounts_on_username_and_domain_lower
    ON accounts (lower(username::text), COALESCE(lower(domain::text), ''::text));

CREATE TABLE user_roles (
    id              bigserial PRIMARY KEY,
    name            character varying NOT NULL DEFAULT '',
    color           character varying NOT NULL DEFAULT '',
    position        integer NOT NULL DEFAULT 0,
    permissions     bigint NOT NULL DEFAULT 0,         -- 1<<20 = view_feeds, 1<<0 = administrator
    highlighted     boolean NOT NULL DEFAULT false,
    created_at      timestamp(6) without time zone NOT NULL,
    updated_at      timestamp(6) without time zone NOT NULL
);

CREATE TABLE users (
    id                  bigserial PRIMARY KEY,
    email               character varying NOT NULL DEFAULT '',
    encrypted_password  character varying NOT NULL DEFAULT '',
    account_id          bigint NOT NULL,
    disabled            boolean NOT NULL DEFAULT false,   -- true invalidates every token
    approved            boolean NOT NULL DEFAULT true,
    confirmed_at        timestamp without time zone,
    chosen_languages    character varying[],              -- NULL means no language filter
    locale              character varying,
    role_id             bigint,
    created_at          timestamp without time zone NOT NULL,
    updated_at          timestamp without time zone NOT NULL
);
CREATE UNIQUE INDEX index_users_on_email ON users (email);
CREATE INDEX index_users_on_account_id ON users (account_id);
CREATE INDEX index_users_on_role_id ON users (role_id) WHERE role_id IS NOT NULL;

CREATE TABLE oauth_access_tokens (
    id                  bigserial PRIMARY KEY,
    token               character varying NOT NULL,
    refresh_token       character varying,
    expires_in          integer,                          -- not checked by streaming
    revoked_at          timestamp without time zone,
    created_at          timestamp without time zone NOT NULL,
    scopes              character varying,                -- space separated
    application_id      bigint,
    resource_owner_id   bigint,                           -- users.id; NULL for app-only tokens
    last_used_at        timestamp without time zone,
    last_used_ip        inet
);
CREATE UNIQUE INDEX index_oauth_access_tokens_on_token ON oauth_access_tokens (token);
CREATE INDEX index_oauth_access_tokens_on_resource_owner_id
    ON oauth_access_tokens (resource_owner_id) WHERE resource_owner_id IS NOT NULL;

CREATE TABLE blocks (
    id                  bigserial PRIMARY KEY,
    account_id          bigint NOT NULL,                  -- blocker
    target_account_id   bigint NOT NULL,                  -- blocked
    uri                 character varying,
    created_at          timestamp without time zone NOT NULL,
    updated_at          timestamp without time zone NOT NULL
);
CREATE UNIQUE INDEX index_blocks_on_account_id_and_target_account_id ON blocks (account_id, target_account_id);
CREATE INDEX index_blocks_on_target_account_id ON blocks (target_account_id);

CREATE TABLE mutes (
    id                  bigserial PRIMARY KEY,
    account_id          bigint NOT NULL,                  -- muter
    target_account_id   bigint NOT NULL,                  -- muted
    hide_notifications  boolean NOT NULL DEFAULT true,
    expires_at          timestamp without time zone,
    created_at          timestamp without time zone NOT NULL,
    updated_at          timestamp without time zone NOT NULL
);
CREATE UNIQUE INDEX index_mutes_on_account_id_and_target_account_id ON mutes (account_id, target_account_id);
CREATE INDEX index_mutes_on_target_account_id ON mutes (target_account_id);

CREATE TABLE account_domain_blocks (
    id          bigserial PRIMARY KEY,
    domain      character varying NOT NULL,               -- compared with = (case sensitive)
    account_id  bigint NOT NULL,
    created_at  timestamp without time zone NOT NULL,
    updated_at  timestamp without time zone NOT NULL
);
CREATE UNIQUE INDEX index_account_domain_blocks_on_account_id_and_domain ON account_domain_blocks (account_id, domain);

CREATE TABLE lists (
    id              bigserial PRIMARY KEY,
    account_id      bigint NOT NULL,                      -- owner
    title           character varying NOT NULL DEFAULT '',
    replies_policy  integer NOT NULL DEFAULT 0,
    exclusive       boolean NOT NULL DEFAULT false,
    created_at      timestamp without time zone NOT NULL,
    updated_at      timestamp without time zone NOT NULL
);
CREATE INDEX index_lists_on_account_id ON lists (account_id);

CREATE TABLE custom_filters (
    id          bigserial PRIMARY KEY,
    account_id  bigint NOT NULL,
    expires_at  timestamp without time zone,
    phrase      text NOT NULL DEFAULT '',                 -- the filter title
    context     character varying[] NOT NULL DEFAULT '{}',
    action      integer NOT NULL DEFAULT 0,               -- 0 warn, 1 hide, 2 blur
    created_at  timestamp without time zone NOT NULL,
    updated_at  timestamp without time zone NOT NULL
);
CREATE INDEX index_custom_filters_on_account_id ON custom_filters (account_id);

CREATE TABLE custom_filter_keywords (
    id                bigserial PRIMARY KEY,
    custom_filter_id  bigint NOT NULL,
    keyword           text NOT NULL DEFAULT '',
    whole_word        boolean NOT NULL DEFAULT true,
    created_at        timestamp(6) without time zone NOT NULL,
    updated_at        timestamp(6) without time zone NOT NULL
);
CREATE INDEX index_custom_filter_keywords_on_custom_filter_id ON custom_filter_keywords (custom_filter_id);

-- rails-settings: values are YAML scalars such as E'--- disabled\n'.
CREATE TABLE settings (
    id          bigserial PRIMARY KEY,
    var         character varying NOT NULL,
    value       text,
    created_at  timestamp without time zone,
    updated_at  timestamp without time zone
);
CREATE UNIQUE INDEX index_settings_on_var ON settings (var);

-- Context-only tables (not queried by the streaming server) -----------------

CREATE TABLE oauth_applications (
    id            bigserial PRIMARY KEY,
    name          character varying NOT NULL,
    uid           character varying NOT NULL,
    secret        character varying NOT NULL,
    redirect_uri  text NOT NULL,
    scopes        character varying NOT NULL DEFAULT '',
    superapp      boolean NOT NULL DEFAULT false,
    website       character varying,
    confidential  boolean NOT NULL DEFAULT true,
    created_at    timestamp without time zone,
    updated_at    timestamp without time zone
);
CREATE UNIQUE INDEX index_oauth_applications_on_uid ON oauth_applications (uid);

CREATE TABLE follows (
    id                  bigserial PRIMARY KEY,
    account_id          bigint NOT NULL,
    target_account_id   bigint NOT NULL,
    show_reblogs        boolean NOT NULL DEFAULT true,
    notify              boolean NOT NULL DEFAULT false,
    languages           character varying[],
    uri                 character varying,
    created_at          timestamp without time zone NOT NULL,
    updated_at          timestamp without time zone NOT NULL
);
CREATE UNIQUE INDEX index_follows_on_account_id_and_target_account_id ON follows (account_id, target_account_id);

CREATE TABLE list_accounts (
    id                  bigserial PRIMARY KEY,
    list_id             bigint NOT NULL,
    account_id          bigint NOT NULL,
    follow_id           bigint,
    follow_request_id   bigint
);
CREATE UNIQUE INDEX index_list_accounts_on_account_id_and_list_id ON list_accounts (account_id, list_id);

CREATE TABLE custom_filter_statuses (
    id                bigserial PRIMARY KEY,
    custom_filter_id  bigint NOT NULL,
    status_id         bigint NOT NULL,
    created_at        timestamp(6) without time zone NOT NULL,
    updated_at        timestamp(6) without time zone NOT NULL
);
CREATE UNIQUE INDEX index_custom_filter_statuses_on_status_id_and_custom_filter_id
    ON custom_filter_statuses (status_id, custom_filter_id);

-- Foreign keys as in Mastodon -------------------------------------------------

ALTER TABLE users                  ADD FOREIGN KEY (account_id)        REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE users                  ADD FOREIGN KEY (role_id)           REFERENCES user_roles(id) ON DELETE SET NULL;
ALTER TABLE oauth_access_tokens    ADD FOREIGN KEY (resource_owner_id) REFERENCES users(id) ON DELETE CASCADE;
ALTER TABLE oauth_access_tokens    ADD FOREIGN KEY (application_id)    REFERENCES oauth_applications(id) ON DELETE CASCADE;
ALTER TABLE blocks                 ADD FOREIGN KEY (account_id)        REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE blocks                 ADD FOREIGN KEY (target_account_id) REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE mutes                  ADD FOREIGN KEY (account_id)        REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE mutes                  ADD FOREIGN KEY (target_account_id) REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE account_domain_blocks  ADD FOREIGN KEY (account_id)        REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE lists                  ADD FOREIGN KEY (account_id)        REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE custom_filters         ADD FOREIGN KEY (account_id)        REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE custom_filter_keywords ADD FOREIGN KEY (custom_filter_id)  REFERENCES custom_filters(id) ON DELETE CASCADE;
ALTER TABLE custom_filter_statuses ADD FOREIGN KEY (custom_filter_id)  REFERENCES custom_filters(id) ON DELETE CASCADE;
ALTER TABLE follows                ADD FOREIGN KEY (account_id)        REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE follows                ADD FOREIGN KEY (target_account_id) REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE list_accounts          ADD FOREIGN KEY (list_id)           REFERENCES lists(id) ON DELETE CASCADE;
ALTER TABLE list_accounts          ADD FOREIGN KEY (account_id)        REFERENCES accounts(id) ON DELETE CASCADE;
