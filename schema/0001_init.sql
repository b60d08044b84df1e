-- The append-only event log and the tables that must change in the same
-- transaction as it: timers, inbox, subscriber checkpoints, snapshots.

CREATE TABLE events (
    position        INTEGER PRIMARY KEY,          -- rowid: the global, gap-free order
    stream          TEXT    NOT NULL,
    seq             INTEGER NOT NULL CHECK (seq >= 1),
    event_type      TEXT    NOT NULL,
    event_version   INTEGER NOT NULL,
    payload         TEXT    NOT NULL,             -- JSON
    event_id        TEXT    NOT NULL,
    correlation_id  TEXT    NOT NULL,
    causation_id    TEXT,
    recorded_at     INTEGER NOT NULL,             -- unix milliseconds, from the injected clock
    UNIQUE (stream, seq)
);

CREATE INDEX events_recorded_at ON events (recorded_at);

CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: UPDATE refused');
END;

CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: DELETE refused');
END;

-- Durable timers: armed and disarmed in the same transaction as the events that
-- cause them. The id is deterministic (stream + kind), so arming twice replaces.
CREATE TABLE timers (
    id      TEXT    PRIMARY KEY,
    stream  TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    due_at  INTEGER NOT NULL                      -- unix milliseconds
);

CREATE INDEX timers_due ON timers (due_at);

-- Inbound deliveries (webhooks), recorded before they are acknowledged and
-- deduplicated on the sender's delivery id.
CREATE TABLE inbox (
    source       TEXT    NOT NULL,
    delivery_id  TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    payload      TEXT    NOT NULL,
    PRIMARY KEY (source, delivery_id)
);

CREATE TABLE checkpoints (
    subscriber  TEXT    PRIMARY KEY,
    position    INTEGER NOT NULL
);

CREATE TABLE snapshots (
    stream         TEXT    PRIMARY KEY,
    seq            INTEGER NOT NULL,
    state_version  INTEGER NOT NULL,
    state          TEXT    NOT NULL
);
