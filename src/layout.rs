//! The store's directory layout: every path lamina writes, and the one parser that recognises
//! them.
//!
//! ```text
//! <root>/LOCK                                         writer lock
//! <root>/_log/<version>.json                          manifest records (+ checkpoints)
//! <root>/segments/<commit>.parquet                    one commit's rows
//! <root>/segments/<first>-<last>-<version>.parquet    a compacted run of commits
//! <root>/quarantine/<commit>.parquet                  one commit's refused rows
//! <root>/views/<stem>/<snapshot>-<fp>-<version>.parquet          a published batch view
//! <root>/views/<stem>/speed-<first>-<last>-<fp>-<version>.parquet a speed state saved at close
//! <root>/<dir>/.tmp-<pid>-<n>                         a file being written (renamed when whole)
//! ```
//!
//! Invariant: cleanup deletes only files this parser recognises as lamina's own, in lamina's own
//! folders, and only when no committed record references them. A name is lamina's when it
//! matches one of the shapes above exactly (numbers of the widths lamina writes, a view folder
//! named by [`view_stem`]); anything else (a user's `notes.txt`, `views/index.html`) is never
//! touched, whatever its age. A store whose folders are symbolic links is refused at open
//! (`check_no_links`), so nothing outside the store's directory is ever written or deleted.

use std::fs;
use std::path::Path;

use crate::error::{Error, Result};

/// Prefix of temporary files: a file is written as `.tmp-<pid>-<n>`, then renamed.
pub const TMP_PREFIX: &str = ".tmp-";

/// The folders a store writes into (besides `_log`).
pub const DATA_DIRS: [&str; 3] = ["segments", "quarantine", "views"];

/// The entries a store's root may hold: a folder holding anything else and no `_log` is not a
/// store, and is never opened as one.
pub const ROOT_ENTRIES: [&str; 5] = ["LOCK", "_log", "segments", "quarantine", "views"];

pub fn segment(commit: u64) -> String {
    format!("segments/{commit:020}.parquet")
}

pub fn compacted(first: u64, last: u64, version: u64) -> String {
    format!("segments/{first:020}-{last:020}-{version}.parquet")
}

pub fn quarantine(commit: u64) -> String {
    format!("quarantine/{commit:020}.parquet")
}

pub fn batch_view(view: &str, snapshot: u64, fingerprint: &str, version: u64) -> String {
    format!(
        "views/{}/{snapshot:020}-{fingerprint}-{version}.parquet",
        view_stem(view)
    )
}

pub fn saved_speed(view: &str, first: u64, last: u64, fingerprint: &str, version: u64) -> String {
    format!(
        "views/{}/speed-{first:020}-{last:020}-{fingerprint}-{version}.parquet",
        view_stem(view)
    )
}

/// The folder of a view's files: a readable prefix of its name and a hash of the whole name
/// (names may hold any text; two names never share a folder unless their hashes collide).
pub fn view_stem(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    format!(
        "{clean}-{:08x}",
        xxhash_rust::xxh3::xxh3_64(name.as_bytes()) as u32
    )
}

/// A file lamina recognises as its own, and what its name says about when it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnFile {
    /// A temporary file of a write that never finished (renamed only when whole).
    Temporary,
    /// Written for commit `n`.
    ForCommit(u64),
    /// Written for manifest version `n`.
    ForVersion(u64),
    /// A name of an older landing that carries neither (retired by its records only).
    Unversioned,
}

impl OwnFile {
    /// Was the file written for a commit or version after the last committed one? Then no
    /// committed state ever referenced it and no reader can be using it.
    pub fn never_committed(self, last_commit: u64, version: u64) -> bool {
        match self {
            OwnFile::Temporary => true,
            OwnFile::ForCommit(c) => c > last_commit,
            OwnFile::ForVersion(v) => v > version,
            OwnFile::Unversioned => false,
        }
    }
}

fn digits(s: &str, width: usize) -> Option<u64> {
    (s.len() == width && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn number(s: &str) -> Option<u64> {
    (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn hex(s: &str, width: usize) -> bool {
    s.len() == width && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Is `name` a temporary file lamina writes (`.tmp-<pid>-<n>`)?
pub fn is_temporary(name: &str) -> bool {
    name.strip_prefix(TMP_PREFIX)
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(pid, n)| number(pid).is_some() && number(n).is_some())
}

/// Is `name` a view folder lamina makes (`<up to 48 of [A-Za-z0-9_-]>-<8 hex>`)?
pub fn is_view_folder(name: &str) -> bool {
    let Some((prefix, hash)) = name.rsplit_once('-') else {
        return false;
    };
    hex(hash, 8)
        && prefix.chars().count() <= 48
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// What lamina's own file `rel` (a path relative to the root, `/`-separated) is, or None if
/// the name is not one lamina writes.
pub fn own_file(rel: &str) -> Option<OwnFile> {
    let parts: Vec<&str> = rel.split('/').collect();
    let (dir, name) = match parts.as_slice() {
        [dir, name] if *dir == "segments" || *dir == "quarantine" => (*dir, *name),
        ["views", folder, name] if is_view_folder(folder) => ("views", *name),
        _ => return None,
    };
    if is_temporary(name) {
        return Some(OwnFile::Temporary);
    }
    let stem = name.strip_suffix(".parquet")?;
    let fields: Vec<&str> = stem.split('-').collect();
    match (dir, fields.as_slice()) {
        ("segments" | "quarantine", [c]) => digits(c, 20).map(OwnFile::ForCommit),
        ("segments", [a, b, v]) => {
            digits(a, 20)?;
            digits(b, 20)?;
            number(v).map(OwnFile::ForVersion)
        }
        // The first landing's compacted names: no version.
        ("segments", [a, b]) => {
            digits(a, 20)?;
            digits(b, 20).map(|_| OwnFile::Unversioned)
        }
        ("views", [s, fp, v]) => {
            digits(s, 20)?;
            hex(fp, 16).then_some(())?;
            number(v).map(OwnFile::ForVersion)
        }
        ("views", ["speed", a, b, fp, v]) => {
            digits(a, 20)?;
            digits(b, 20)?;
            hex(fp, 16).then_some(())?;
            number(v).map(OwnFile::ForVersion)
        }
        ("views", ["speed", a, b, fp]) => {
            digits(a, 20)?;
            digits(b, 20)?;
            hex(fp, 16).then_some(OwnFile::Unversioned)
        }
        // Batch views of the first landing: <snapshot>-<fingerprint>.
        ("views", [s, fp]) => {
            digits(s, 20)?;
            hex(fp, 16).then_some(OwnFile::Unversioned)
        }
        _ => None,
    }
}

/// A store writes only inside its own directory: refuse one whose folders are symbolic links
/// (or not folders), which would send writes and deletions elsewhere.
pub fn check_no_links(root: &Path) -> Result<()> {
    let mut dirs: Vec<std::path::PathBuf> = ["_log", "segments", "quarantine", "views"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    if let Ok(entries) = fs::read_dir(root.join("views")) {
        if !fs::symlink_metadata(root.join("views")).is_ok_and(|m| m.file_type().is_symlink()) {
            // Only the folders lamina itself writes into: a user's link elsewhere in `views/`
            // is never followed (cleanup skips what it does not recognise).
            dirs.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_str().is_some_and(is_view_folder))
                    .map(|e| e.path()),
            );
        }
    }
    dirs.push(root.join("LOCK"));
    for d in dirs {
        let Ok(md) = fs::symlink_metadata(&d) else {
            continue; // not there yet: created as a real folder when first needed
        };
        if md.file_type().is_symlink() {
            return Err(Error::invalid(format!(
                "{} is a symbolic link: lamina writes only inside the store's own directory and \
                 never follows links there (move the data into the store, or link the whole store \
                 directory instead)",
                d.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_lamina_writes_is_recognised_and_nothing_else() {
        let fp = "0123456789abcdef";
        assert_eq!(own_file(&segment(7)), Some(OwnFile::ForCommit(7)));
        assert_eq!(own_file(&quarantine(7)), Some(OwnFile::ForCommit(7)));
        assert_eq!(
            own_file(&compacted(1, 5, 21)),
            Some(OwnFile::ForVersion(21))
        );
        assert_eq!(
            own_file(&batch_view("traffic/é \"x\"", 9, fp, 30)),
            Some(OwnFile::ForVersion(30))
        );
        assert_eq!(
            own_file(&saved_speed("t", 10, 12, fp, 31)),
            Some(OwnFile::ForVersion(31))
        );
        let stem = view_stem("t");
        assert_eq!(
            own_file(&format!(
                "views/{stem}/speed-{:020}-{:020}-{fp}.parquet",
                1, 2
            )),
            Some(OwnFile::Unversioned)
        );
        assert_eq!(
            own_file(&format!("segments/{}", ".tmp-123-4")),
            Some(OwnFile::Temporary)
        );
        assert_eq!(
            own_file(&format!("views/{stem}/.tmp-1-0")),
            Some(OwnFile::Temporary)
        );
        for foreign in [
            "segments/intro.mp3",
            "segments/7.parquet",
            "segments/00000000000000000007.parquet.bak",
            "segments/.tmp-notes",
            "segments/.tmp-1-x",
            "quarantine/notes.txt",
            "quarantine/00000000000000000001-00000000000000000002-3.parquet",
            "views/index.html",
            "views/00000000000000000001-0123456789abcdef-3.parquet",
            "views/my photos/00000000000000000001-0123456789abcdef-3.parquet",
            "views/t-0000000g/00000000000000000001-0123456789abcdef-3.parquet",
            "other/00000000000000000001.parquet",
            "segments/sub/00000000000000000001.parquet",
        ] {
            assert_eq!(own_file(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn a_file_named_for_a_later_commit_or_version_was_never_committed() {
        assert!(OwnFile::ForCommit(8).never_committed(7, 20));
        assert!(!OwnFile::ForCommit(7).never_committed(7, 20));
        assert!(OwnFile::ForVersion(21).never_committed(7, 20));
        assert!(!OwnFile::ForVersion(20).never_committed(7, 20));
        assert!(!OwnFile::Unversioned.never_committed(7, 20));
        assert!(OwnFile::Temporary.never_committed(0, 0));
    }
}
