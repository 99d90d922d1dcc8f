-- The MQTT outbox (DESIGN.md, "Fleet publishing"): sealed records and transactions queued in
-- the transaction that writes them, removed once the broker acknowledges them. AUTOINCREMENT:
-- an id is never used twice, so the publisher's place in the queue stays valid after the
-- newest rows leave it.

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    number INTEGER NOT NULL,
    payload TEXT NOT NULL,
    queued_utc TEXT NOT NULL
);
