-- Truck weighing (DESIGN.md, "Truck weighing"): an index of transactions, nothing more. Every
-- figure is in the sealed records that carry the transaction's number (`transaction_id`);
-- a row here is written in the same database transaction as those records and can be
-- rebuilt from them at any time (balanca.store.transaction_index.rebuild). `open_plate` is the
-- plate while the transaction is open, else NULL: a plate has at most one open transaction.
-- `compared_tare` is the stored tare record a two-pass close was compared with.

CREATE TABLE transactions (
    id INTEGER PRIMARY KEY,
    plate TEXT NOT NULL,
    state TEXT NOT NULL,
    open_plate TEXT UNIQUE,
    in_number INTEGER,
    out_number INTEGER,
    compared_tare INTEGER,
    opened_utc TEXT NOT NULL,
    closed_utc TEXT,
    last_number INTEGER NOT NULL
);

CREATE INDEX transactions_plate ON transactions (plate, id);
CREATE INDEX transactions_state ON transactions (state, id);
CREATE INDEX transactions_opened ON transactions (opened_utc);
