//! Schema migrations, embedded from `schema/` and applied in order at open time.
//! The database's `user_version` records the last one applied.

use rusqlite::Connection;

use super::StoreError;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../schema/0001_init.sql")),
    (2, include_str!("../../schema/0002_index.sql")),
    (3, include_str!("../../schema/0003_console.sql")),
    (4, include_str!("../../schema/0004_console_shop.sql")),
];

pub const LATEST: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > LATEST {
        // A newer tks wrote this file; writing to it with older code could corrupt
        // what the newer schema relies on, so refuse instead of downgrading.
        return Err(StoreError::NewerSchema {
            found: current,
            supported: LATEST,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(())
}
