//! One writer process per store, enforced by an advisory lock on `<root>/LOCK`.

use std::fs::{File, OpenOptions};
use std::path::Path;

use fs4::fs_std::FileExt;

use crate::error::{Error, ErrorKind, IoContext, Result};

pub struct WriterLock {
    _file: File,
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
            Ok(true) => Ok(WriterLock { _file: file }),
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
}
