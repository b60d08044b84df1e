//! Names the database is keyed by, one spelling each: lookup kinds, subscriber
//! checkpoints and poll cursors. They are stored, so changing one is a migration,
//! not a rename.

/// Kinds of the `lookup` table.
pub mod lookup {
    /// Katana SO id -> the order stream that created it.
    pub const SO: &str = "so";
    /// Katana variant id -> the SKU stream mapped to it.
    pub const VARIANT: &str = "variant";
    /// `<stream>#<exception key>` -> the open exception's message.
    pub const EXCEPTION: &str = "exception";
    /// A poll's name -> when its last run started.
    pub const CURSOR: &str = "cursor";
}

/// Feed subscribers, by their checkpoint names.
pub mod subscriber {
    pub const DEMAND_POLICY: &str = "demand-policy";
    pub const TIKTOK_READER: &str = "tiktok-reader";
    pub const TIKTOK_WRITER: &str = "tiktok-writer";
    pub const KATANA_WRITER: &str = "katana-writer";
    pub const KATANA_READER: &str = "katana-reader";
    /// In memory only: folds the whole log at every start.
    pub const METRICS: &str = "metrics";
    /// The console's read model, checkpointed in its own tables' transaction.
    pub const CONSOLE: &str = "console";
    /// Not a subscriber: the checkpoint `/health` writes to prove the store writes.
    pub const HEALTH_PROBE: &str = "health-probe";

    /// The durable subscribers that act on the log: caught up with the head, the
    /// service has done everything the log asks of it so far.
    pub const EFFECTS: [&str; 5] = [
        DEMAND_POLICY,
        TIKTOK_READER,
        TIKTOK_WRITER,
        KATANA_WRITER,
        KATANA_READER,
    ];
}

/// Keys of [`lookup::CURSOR`] entries, one per poll that reads "changed since".
pub mod cursor {
    pub const TIKTOK_ORDERS: &str = "tiktok-orders";
    pub const KATANA_ORDERS: &str = "katana-orders";
    /// When the last list of changed fulfillments was asked for (the next one's
    /// `updated_at_min`, less a minute of overlap).
    pub const KATANA_FULFILLMENTS: &str = "katana-fulfillments";
}
