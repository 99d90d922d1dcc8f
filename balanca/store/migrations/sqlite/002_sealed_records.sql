-- Sealed records (DESIGN.md, "Weighings are sealed records"): one row per record, one column
-- per key, values exactly as sealed (weights as text). `captured_utc` is an index for time
-- ranges, outside the seal. No code path updates or deletes a row: the chain check finds any
-- row changed or removed behind the service's back.

CREATE TABLE records (
    number INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    scale TEXT,
    run TEXT,
    seq INTEGER,
    time TEXT,
    captured TEXT NOT NULL,
    captured_utc TEXT NOT NULL,
    weight TEXT,
    unit TEXT,
    decimals INTEGER,
    mode TEXT,
    tare TEXT,
    status TEXT,
    source TEXT,
    frame TEXT,
    plate TEXT,
    reference TEXT,
    product TEXT,
    party TEXT,
    note TEXT,
    operator TEXT,
    transaction_id INTEGER,
    gross TEXT,
    net TEXT,
    tare_record INTEGER,
    again INTEGER,
    voids INTEGER,
    reason TEXT,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    signature TEXT NOT NULL
);

CREATE INDEX records_scale ON records (scale, number);
CREATE INDEX records_plate ON records (plate, number);
CREATE INDEX records_kind ON records (kind, number);
CREATE INDEX records_captured ON records (captured_utc);
CREATE INDEX records_voids ON records (voids);
CREATE INDEX records_transaction ON records (transaction_id);

-- Which capture wrote which record: a capture retried after a lost connection finds its
-- record instead of writing a second one.
CREATE TABLE record_captures (
    uid TEXT NOT NULL PRIMARY KEY,
    number INTEGER NOT NULL
);

-- Idempotency-Key answers, kept 24 h: the same key on the same path gets the first answer.
CREATE TABLE idempotency (
    scope TEXT NOT NULL PRIMARY KEY,
    body_hash TEXT NOT NULL,
    status INTEGER,
    answer TEXT,
    created_utc TEXT NOT NULL
);

CREATE INDEX idempotency_created ON idempotency (created_utc);
