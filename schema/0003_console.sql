-- The operator console's read model: one row per order and per SKU with the
-- columns its pages filter and count on, kept by the console projection from the
-- log. Rebuildable: empty these tables (and the checkpoint row) and it replays.

CREATE TABLE console_order (
    order_id   TEXT PRIMARY KEY,
    placed_at  INTEGER NOT NULL,   -- ms: when TikTok says the order was created
    updated_at INTEGER NOT NULL,   -- ms: the last event's recorded time
    state      TEXT NOT NULL,      -- held, released, in_katana, ... (readmodel.rs)
    stage      INTEGER NOT NULL,   -- progress steps reached, 0..=5
    so_id      INTEGER,
    skus       TEXT NOT NULL,      -- seller SKUs, comma separated, for display
    position   INTEGER NOT NULL,   -- last log position folded in
    state_json TEXT NOT NULL       -- the folded Order, so the next event applies on it
);
CREATE INDEX console_order_placed ON console_order (placed_at);
CREATE INDEX console_order_state ON console_order (state, placed_at);

CREATE TABLE console_order_sku (
    sku      TEXT NOT NULL,
    order_id TEXT NOT NULL,
    PRIMARY KEY (sku, order_id)
) WITHOUT ROWID;

CREATE TABLE console_sku (
    sku        TEXT PRIMARY KEY,
    updated_at INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    state_json TEXT NOT NULL
);

-- Orders per state and per placement hour (ms / 3,600,000), kept with the rows
-- so the overview reads a handful of rows instead of counting every order.
CREATE TABLE console_state_count (
    state TEXT PRIMARY KEY,
    n     INTEGER NOT NULL
);
CREATE TABLE console_hour_count (
    hour INTEGER PRIMARY KEY,
    n    INTEGER NOT NULL
);

CREATE TABLE console_checkpoint (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
