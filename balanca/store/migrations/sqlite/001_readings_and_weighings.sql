-- Readings and weighings (SQLite). Weights are TEXT: SQLite has no DECIMAL, and a NUMERIC
-- column would store them as floats. Times are UTC text that sorts, with the offset in seconds.

CREATE TABLE readings (
    id INTEGER PRIMARY KEY,
    scale TEXT NOT NULL,
    run TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time TEXT NOT NULL,
    utc_offset INTEGER NOT NULL,
    source TEXT NOT NULL,
    weight TEXT,
    weight_decimals INTEGER,
    unit TEXT NOT NULL,
    stable INTEGER NOT NULL,
    mode TEXT NOT NULL,
    tare TEXT,
    tare_decimals INTEGER,
    status TEXT NOT NULL,
    UNIQUE (scale, run, seq)
);

CREATE INDEX readings_scale_time ON readings (scale, time);

CREATE TABLE weighings (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    scale TEXT NOT NULL,
    run TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time TEXT NOT NULL,
    utc_offset INTEGER NOT NULL,
    weight TEXT NOT NULL,
    weight_decimals INTEGER NOT NULL,
    unit TEXT NOT NULL,
    mode TEXT NOT NULL,
    tare TEXT,
    tare_decimals INTEGER,
    reference TEXT,
    note TEXT
);

CREATE INDEX weighings_scale_id ON weighings (scale, id);
