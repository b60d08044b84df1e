//! Files that hold buyer data (the event log, captures) are created readable and
//! writable by their owner only, whatever the process umask says.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

const OWNER_ONLY: u32 = 0o600;

/// Creates (or truncates) `path` for writing with mode 0600.
pub fn create(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    restrict(&mut opts);
    opts.open(path)
}

/// Makes sure a file exists at `path` before another library (SQLite) opens it, so
/// it is born 0600 rather than with the umask's mode; an existing file is left as
/// it is.
pub fn ensure_exists(path: &Path) -> io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    restrict(&mut opts);
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn restrict(opts: &mut OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    opts.mode(OWNER_ONLY);
}

#[cfg(not(unix))]
fn restrict(_opts: &mut OpenOptions) {}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn new_files_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.jsonl");
        create(&a).unwrap();
        assert_eq!(
            std::fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let b = dir.path().join("b.db");
        ensure_exists(&b).unwrap();
        assert_eq!(
            std::fs::metadata(&b).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
