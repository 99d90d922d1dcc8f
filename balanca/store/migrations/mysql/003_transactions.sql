-- Truck weighing (DESIGN.md, "Truck weighing"): an index of transactions, nothing more. Every
-- figure is in the sealed records that carry the transaction's number (`transaction_id`);
-- a row here is written in the same database transaction as those records and can be
-- rebuilt from them at any time (balanca.store.transaction_index.rebuild). `open_plate` is the
-- plate while the transaction is open, else NULL: a plate has at most one open transaction.
-- `compared_tare` is the stored tare record a two-pass close was compared with.
-- IF NOT EXISTS makes a migration interrupted half-way safe to run again.

CREATE TABLE IF NOT EXISTS transactions (
    id BIGINT NOT NULL PRIMARY KEY,
    plate VARCHAR(16) NOT NULL,
    state VARCHAR(8) NOT NULL,
    open_plate VARCHAR(16),
    in_number BIGINT,
    out_number BIGINT,
    compared_tare BIGINT,
    opened_utc CHAR(26) NOT NULL,
    closed_utc CHAR(26),
    last_number BIGINT NOT NULL,
    UNIQUE KEY transactions_open_plate (open_plate),
    KEY transactions_plate (plate, id),
    KEY transactions_state (state, id),
    KEY transactions_opened (opened_utc)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
