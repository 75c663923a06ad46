//! Durable file writes (write, fsync, rename, fsync the directory) and checksummed reads.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, IoContext, Result};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

pub use crate::layout::TMP_PREFIX;

/// Write `bytes` to `path` atomically: a reader sees the old state or the whole new file.
/// With `durable`, data and directory entry are fsynced before returning.
pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::invalid(format!("bad path {}", path.display())))?;
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("{TMP_PREFIX}{}-{n}", std::process::id()));
    let written = (|| {
        let mut f = File::create(&tmp).at(&tmp)?;
        crate::failpoint::hit("write.tmp")?;
        f.write_all(bytes).at(&tmp)?;
        if durable {
            f.sync_all().at(&tmp)?;
        }
        fs::rename(&tmp, path).at(path)
    })();
    if let Err(e) = written {
        // A failed write (a full disk) must not hold its space until the next open.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).at(dir)?;
    d.sync_all().at(dir)
}

/// Read a whole file and check its CRC-32 against the manifest's.
pub fn read_checked(path: &Path, crc: u32, len: u64) -> Result<bytes::Bytes> {
    crate::failpoint::hit("read.before_file")?;
    let data = fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::corruption(path, "file is missing")
        } else {
            Error::io(path.display(), e)
        }
    })?;
    if data.len() as u64 != len {
        return Err(Error::corruption(
            path,
            format!("size is {} bytes, expected {len} (truncated?)", data.len()),
        ));
    }
    let got = crc32fast::hash(&data);
    if got != crc {
        return Err(Error::corruption(
            path,
            format!("checksum mismatch (crc32 {got:08x}, expected {crc:08x})"),
        ));
    }
    Ok(bytes::Bytes::from(data))
}

/// Create a folder of the store (and its parents). A folder that is a symbolic link is refused:
/// lamina writes only inside the store's own directory.
pub fn ensure_dir(path: &Path) -> Result<PathBuf> {
    match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => return Ok(path.to_path_buf()),
        Ok(md) if md.file_type().is_symlink() => {
            return Err(Error::invalid(format!(
                "{} is a symbolic link: lamina writes only inside the store's own directory",
                path.display()
            )))
        }
        _ => {}
    }
    fs::create_dir_all(path).at(path)?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_then_checked_read_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.bin");
        write_atomic(&p, b"hello", true).unwrap();
        let crc = crc32fast::hash(b"hello");
        assert_eq!(&read_checked(&p, crc, 5).unwrap()[..], b"hello");
        fs::write(&p, b"hellO").unwrap();
        let e = read_checked(&p, crc, 5).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Corruption);
        assert!(e.message.contains("f.bin"));
        fs::remove_file(&p).unwrap();
        assert!(read_checked(&p, crc, 5)
            .unwrap_err()
            .message
            .contains("missing"));
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert!(leftovers.is_empty(), "no temporary file is left behind");
    }
}
