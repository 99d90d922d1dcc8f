-- The MQTT outbox (DESIGN.md, "Fleet publishing"): sealed records and transactions queued in
-- the transaction that writes them, removed once the broker acknowledges them, oldest first
-- by id. IF NOT EXISTS makes a migration interrupted half-way safe to run again.

CREATE TABLE IF NOT EXISTS outbox (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    topic VARCHAR(32) NOT NULL,
    number BIGINT NOT NULL,
    payload MEDIUMTEXT NOT NULL,
    queued_utc CHAR(26) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
