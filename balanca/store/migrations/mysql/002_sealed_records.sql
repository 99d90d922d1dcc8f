-- Sealed records (DESIGN.md, "Weighings are sealed records"): one row per record, one column
-- per key, values exactly as sealed (weights as text, so nothing is rounded). `captured_utc`
-- is an index for time ranges, outside the seal. No code path updates or deletes a row: the
-- chain check finds any row changed or removed behind the service's back. IF NOT EXISTS makes
-- a migration interrupted half-way safe to run again.

CREATE TABLE IF NOT EXISTS records (
    number BIGINT NOT NULL PRIMARY KEY,
    kind VARCHAR(16) NOT NULL,
    scale VARCHAR(64),
    run VARCHAR(40),
    seq BIGINT,
    time VARCHAR(40),
    captured VARCHAR(40) NOT NULL,
    captured_utc CHAR(26) NOT NULL,
    weight VARCHAR(40),
    unit VARCHAR(16),
    decimals INT,
    mode VARCHAR(8),
    tare VARCHAR(40),
    status VARCHAR(16),
    source VARCHAR(16),
    frame TEXT,
    plate VARCHAR(16),
    reference TEXT,
    product TEXT,
    party TEXT,
    note TEXT,
    operator VARCHAR(64),
    transaction_id BIGINT,
    gross VARCHAR(40),
    net VARCHAR(40),
    tare_record BIGINT,
    again TINYINT,
    voids BIGINT,
    reason TEXT,
    prev CHAR(64) NOT NULL,
    hash CHAR(64) NOT NULL,
    signature VARCHAR(100) NOT NULL,
    UNIQUE KEY records_hash (hash),
    KEY records_scale (scale, number),
    KEY records_plate (plate, number),
    KEY records_kind (kind, number),
    KEY records_captured (captured_utc),
    KEY records_voids (voids),
    KEY records_transaction (transaction_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Which capture wrote which record: a capture retried after a lost connection finds its
-- record instead of writing a second one.
CREATE TABLE IF NOT EXISTS record_captures (
    uid CHAR(32) NOT NULL PRIMARY KEY,
    number BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Idempotency-Key answers, kept 24 h: the same key on the same path gets the first answer.
CREATE TABLE IF NOT EXISTS idempotency (
    scope CHAR(64) NOT NULL PRIMARY KEY,
    body_hash CHAR(64) NOT NULL,
    status INT,
    answer MEDIUMTEXT,
    created_utc CHAR(26) NOT NULL,
    KEY idempotency_created (created_utc)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
