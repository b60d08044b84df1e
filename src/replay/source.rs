//! Opens whatever log the operator points `tks-replay` at: a tks SQLite database or
//! a JSONL capture, told apart by their content (not their name), behind one
//! [`EventStore`]. Anything else (an empty file, another program's SQLite database,
//! arbitrary text) is refused with a message that says what the file is not.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags};

use super::capture::{self, CaptureError, CaptureHeader};
use crate::store::{EventStore, MemoryStore, Snapshot, SqliteStore, StoreError, SCHEMA_VERSION};

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}: no such file")]
    NotFound(PathBuf),
    #[error("{0}: is a directory, not a log file")]
    Directory(PathBuf),
    #[error("{0}: cannot read: {1}")]
    Unreadable(PathBuf, std::io::Error),
    #[error("{0}: the file is empty (neither a tks database nor a capture)")]
    Empty(PathBuf),
    #[error("{path}: not a tks log: {reason}")]
    Foreign { path: PathBuf, reason: String },
    #[error("{path}: written by database schema v{found}, this build reads up to v{supported}: upgrade tks-replay")]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("{0}: {1}")]
    Database(PathBuf, StoreError),
    #[error("{0}: {1}")]
    Capture(PathBuf, CaptureError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    Database,
    Capture,
}

/// An opened log, read-only in spirit: the replay tools never append to it.
pub struct Log {
    pub path: PathBuf,
    pub kind: LogKind,
    /// The capture's header when the log is a capture.
    pub header: Option<CaptureHeader>,
    store: Arc<dyn EventStore>,
}

impl Log {
    pub fn store(&self) -> &dyn EventStore {
        self.store.as_ref()
    }

    pub fn shared(&self) -> Arc<dyn EventStore> {
        self.store.clone()
    }

    /// The live snapshots to verify against: a capture carries none.
    pub fn snapshots(&self) -> Result<Vec<Snapshot>, StoreError> {
        match self.kind {
            LogKind::Database => self.store.all_snapshots(),
            LogKind::Capture => Ok(Vec::new()),
        }
    }
}

/// Opens `path`. `progress(done, total)` reports bytes while a capture loads.
pub fn open(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<Log, SourceError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SourceError::NotFound(path.to_path_buf()))
        }
        Err(e) => return Err(SourceError::Unreadable(path.to_path_buf(), e)),
    };
    if meta.is_dir() {
        return Err(SourceError::Directory(path.to_path_buf()));
    }
    if meta.len() == 0 {
        return Err(SourceError::Empty(path.to_path_buf()));
    }
    let mut head = [0u8; 16];
    let n = File::open(path)
        .and_then(|mut f| read_up_to(&mut f, &mut head))
        .map_err(|e| SourceError::Unreadable(path.to_path_buf(), e))?;
    if n == head.len() && &head == SQLITE_MAGIC {
        return open_database(path);
    }
    let first = head[..n].iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        return open_capture(path, meta.len(), progress);
    }
    Err(SourceError::Foreign {
        path: path.to_path_buf(),
        reason: "neither an SQLite database nor a JSONL capture".into(),
    })
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match f.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Checks the schema over a read-only connection before the store opens it, so a
/// foreign database is never migrated (written to) by mistake.
fn open_database(path: &Path) -> Result<Log, SourceError> {
    let foreign = |reason: String| SourceError::Foreign {
        path: path.to_path_buf(),
        reason,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| foreign(format!("cannot open as SQLite: {e}")))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| foreign(format!("unreadable SQLite file: {e}")))?;
    if version > SCHEMA_VERSION {
        return Err(SourceError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    let columns = "position, stream, seq, event_type, event_version, payload, event_id, \
                   correlation_id, causation_id, recorded_at";
    if version < 1
        || conn
            .prepare(&format!("SELECT {columns} FROM events LIMIT 0"))
            .is_err()
    {
        return Err(foreign(
            "an SQLite database without the tks event tables".into(),
        ));
    }
    drop(conn);
    let store =
        SqliteStore::open(path).map_err(|e| SourceError::Database(path.to_path_buf(), e))?;
    Ok(Log {
        path: path.to_path_buf(),
        kind: LogKind::Database,
        header: None,
        store: Arc::new(store),
    })
}

fn open_capture(
    path: &Path,
    total: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Log, SourceError> {
    let file = File::open(path).map_err(|e| SourceError::Unreadable(path.to_path_buf(), e))?;
    let (header, events) =
        capture::read_capture(BufReader::with_capacity(1 << 16, file), &mut |done| {
            progress(done, total)
        })
        .map_err(|e| match e {
            CaptureError::NotACapture(reason) => SourceError::Foreign {
                path: path.to_path_buf(),
                reason: format!("JSON, but not a tks capture: {reason}"),
            },
            other => SourceError::Capture(path.to_path_buf(), other),
        })?;
    let store = MemoryStore::new();
    store
        .import(events)
        .map_err(|e| SourceError::Capture(path.to_path_buf(), CaptureError::Store(e)))?;
    Ok(Log {
        path: path.to_path_buf(),
        kind: LogKind::Capture,
        header: Some(header),
        store: Arc::new(store),
    })
}
