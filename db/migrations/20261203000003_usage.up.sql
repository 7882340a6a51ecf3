-- Usage: API request logs and monthly quota counters.
CREATE TABLE api_logs (
    id {{id}},
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    api_key_id BIGINT NOT NULL,
    api_key_prefix TEXT NOT NULL,
    occurred_at {{timestamp}} NOT NULL,
    operation_name TEXT NOT NULL DEFAULT '',
    operation_type TEXT NOT NULL DEFAULT '',
    root_fields TEXT NOT NULL DEFAULT '',
    cost INTEGER NOT NULL DEFAULT 0,
    status INTEGER NOT NULL,
    error_codes TEXT NOT NULL DEFAULT '',
    duration_us BIGINT NOT NULL,
    client_ip TEXT NOT NULL DEFAULT '',
    origin TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX api_logs_account_id_idx ON api_logs (account_id, id);
CREATE INDEX api_logs_account_time_idx ON api_logs (account_id, occurred_at);
CREATE INDEX api_logs_time_idx ON api_logs (occurred_at);

CREATE TABLE usage_months (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    month TEXT NOT NULL,
    used BIGINT NOT NULL,
    PRIMARY KEY (account_id, month)
);
