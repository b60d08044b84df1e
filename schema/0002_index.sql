-- Lookups written in the same transaction as the events that cause them: which
-- order a Katana sales order belongs to, which exceptions are open, poll cursors.

CREATE TABLE lookup (
    kind   TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
