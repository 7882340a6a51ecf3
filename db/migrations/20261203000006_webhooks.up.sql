-- Webhooks, the booking-event outbox and its deliveries. An event and one
-- delivery per matching webhook are written in the transaction of the
-- booking change; a dispatcher leases due deliveries and POSTs them.
CREATE TABLE webhooks (
    id {{id}},
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    service_id BIGINT REFERENCES services (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    events TEXT NOT NULL,
    -- The signing secret sealed with AES-GCM (server/secretbox); never plain text.
    secret_sealed TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    created_at {{timestamp}} NOT NULL,
    updated_at {{timestamp}} NOT NULL
);
CREATE INDEX webhooks_account_idx ON webhooks (account_id, id);

CREATE TABLE booking_events (
    id {{id}},
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    service_id BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at {{timestamp}} NOT NULL
);
CREATE INDEX booking_events_account_idx ON booking_events (account_id, id);

CREATE TABLE webhook_deliveries (
    id {{id}},
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    webhook_id BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id BIGINT NOT NULL REFERENCES booking_events (id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at {{timestamp}},
    leased_until {{timestamp}},
    created_at {{timestamp}} NOT NULL,
    delivered_at {{timestamp}}
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id);

CREATE TABLE webhook_attempts (
    id {{id}},
    delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at {{timestamp}} NOT NULL,
    http_status INTEGER,
    duration_ms DOUBLE PRECISION NOT NULL,
    error TEXT,
    response_snippet TEXT
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);
