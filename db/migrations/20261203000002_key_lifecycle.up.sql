-- API key lifecycle: expiry, scopes, IP allow-lists; and the audit trail.
ALTER TABLE api_keys ADD COLUMN expires_at {{timestamp}};
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN allowed_cidrs TEXT NOT NULL DEFAULT '';

CREATE TABLE audit_events (
    id {{id}},
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    action TEXT NOT NULL,
    actor_key_id BIGINT,
    actor_key_prefix TEXT NOT NULL DEFAULT '',
    target TEXT NOT NULL,
    occurred_at {{timestamp}} NOT NULL
);
CREATE INDEX audit_events_account_idx ON audit_events (account_id, id);
