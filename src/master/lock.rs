//! One writer process per store, enforced by an advisory lock on `<root>/LOCK`.
//!
//! The lock belongs to the process that took it. A child made by `fork()` inherits the open file
//! (and with it the lock), so every write checks the owner's pid: a forked child can never write
//! with its parent's lock, and never releases it.

use std::fs::{File, OpenOptions};
use std::path::Path;

use fs4::fs_std::FileExt;

use crate::error::{Error, ErrorKind, IoContext, Result};

pub struct WriterLock {
    file: File,
    pid: u32,
}

impl WriterLock {
    pub fn acquire(root: &Path) -> Result<WriterLock> {
        let path = root.join("LOCK");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .at(&path)?;
        match FileExt::try_lock_exclusive(&file) {
            Ok(true) => Ok(WriterLock {
                file,
                pid: std::process::id(),
            }),
            Ok(false) => Err(Error::new(
                ErrorKind::Lock,
                format!(
                    "{} is locked by another writer process; open it with read_only=True to read snapshots",
                    root.display()
                ),
            )),
            Err(e) => Err(Error::new(ErrorKind::Lock, format!("cannot lock {}: {e}", path.display()))),
        }
    }

    /// Is this the process that took the lock?
    pub fn owned_here(&self) -> bool {
        self.pid == std::process::id()
    }

    /// Refuse a write from a process that inherited the lock through `fork()`.
    pub fn check_owner(&self, root: &Path) -> Result<()> {
        if self.owned_here() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Lock,
            format!(
                "{} was opened for writing by process {}; this process ({}) is a fork of it and \
                 cannot write with its parent's lock: open the store again in this process \
                 (read_only=True to read while the parent writes)",
                root.display(),
                self.pid,
                std::process::id()
            ),
        ))
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        if self.owned_here() {
            let _ = FileExt::unlock(&self.file);
        } else {
            // A forked child must not release its parent's lock: leak the descriptor's unlock
            // (closing our copy of the descriptor does not release a flock held by the parent).
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_writer_per_store() {
        let dir = tempfile::tempdir().unwrap();
        let l = WriterLock::acquire(dir.path()).unwrap();
        assert!(l.owned_here());
        assert!(l.check_owner(dir.path()).is_ok());
        let e = WriterLock::acquire(dir.path()).err().unwrap();
        assert_eq!(e.kind, ErrorKind::Lock);
        drop(l);
        assert!(WriterLock::acquire(dir.path()).is_ok());
    }

    #[test]
    fn a_lock_taken_by_another_pid_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = WriterLock::acquire(dir.path()).unwrap();
        l.pid = l.pid.wrapping_add(1); // as a forked child sees it
        let e = l.check_owner(dir.path()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Lock);
        assert!(e.message.contains("fork"), "{}", e.message);
    }
}
