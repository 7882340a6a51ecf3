-- Placeholders {{id}} and {{timestamp}} are replaced per dialect (see migrate.go).
CREATE TABLE accounts (
    id {{id}},
    name TEXT NOT NULL UNIQUE,
    plan TEXT NOT NULL,
    rate INTEGER,
    burst INTEGER,
    monthly_quota BIGINT,
    created_at {{timestamp}} NOT NULL
);

CREATE TABLE api_keys (
    id {{id}},
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    domain TEXT,
    created_at {{timestamp}} NOT NULL,
    last_used_at {{timestamp}},
    revoked_at {{timestamp}}
);
CREATE INDEX api_keys_account_idx ON api_keys (account_id, id);

CREATE TABLE services (
    id {{id}},
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    timezone TEXT NOT NULL,
    created_at {{timestamp}} NOT NULL,
    updated_at {{timestamp}} NOT NULL
);
CREATE INDEX services_account_idx ON services (account_id, id);

CREATE TABLE time_slots (
    id {{id}},
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    service_id BIGINT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    day_of_week INTEGER NOT NULL CHECK (day_of_week BETWEEN 0 AND 6),
    start_minute INTEGER NOT NULL,
    end_minute INTEGER NOT NULL,
    max_bookings INTEGER NOT NULL CHECK (max_bookings >= 1),
    created_at {{timestamp}} NOT NULL,
    updated_at {{timestamp}} NOT NULL,
    CHECK (start_minute >= 0 AND start_minute < end_minute AND end_minute <= 1440)
);
CREATE INDEX time_slots_service_idx ON time_slots (service_id, day_of_week, start_minute);

CREATE TABLE customers (
    id {{id}},
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name TEXT,
    email TEXT,
    phone TEXT,
    created_at {{timestamp}} NOT NULL,
    updated_at {{timestamp}} NOT NULL
);
CREATE UNIQUE INDEX customers_email_idx ON customers (account_id, email);
CREATE INDEX customers_phone_idx ON customers (account_id, phone);

CREATE TABLE bookings (
    id {{id}},
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    service_id BIGINT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    time_slot_id BIGINT NOT NULL REFERENCES time_slots (id) ON DELETE CASCADE,
    date TEXT NOT NULL,
    start_minute INTEGER NOT NULL,
    status TEXT NOT NULL,
    cancel_reason TEXT,
    message TEXT,
    customer_id BIGINT REFERENCES customers (id) ON DELETE SET NULL,
    created_at {{timestamp}} NOT NULL,
    updated_at {{timestamp}} NOT NULL
);
CREATE INDEX bookings_account_order_idx ON bookings (account_id, date DESC, start_minute DESC, id DESC);
CREATE INDEX bookings_service_order_idx ON bookings (service_id, date DESC, start_minute DESC, id DESC);
CREATE INDEX bookings_occurrence_idx ON bookings (time_slot_id, date);
CREATE UNIQUE INDEX bookings_one_per_customer_idx ON bookings (time_slot_id, date, customer_id) WHERE status <> 'cancelled';

CREATE TABLE slot_occurrences (
    time_slot_id BIGINT NOT NULL REFERENCES time_slots (id) ON DELETE CASCADE,
    date TEXT NOT NULL,
    booked INTEGER NOT NULL CHECK (booked >= 0),
    PRIMARY KEY (time_slot_id, date)
);
