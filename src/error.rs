//! The error type of the core. Every failure a user can cause maps to one kind,
//! which the Python binding turns into the matching `lamina.*Error` class.

use std::fmt;
use std::path::Path;

/// What went wrong, in the categories the Python exception hierarchy exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Data does not fit the store's schema (missing column, wrong type, null event time, out of range).
    Schema,
    /// Another process holds the store's writer lock.
    Lock,
    /// A file failed its checksum or could not be decoded.
    Corruption,
    /// An unknown view, column or commit.
    NotFound,
    /// A bad argument: grain, filter, definition.
    InvalidArgument,
    /// An integer sum left the int64 range.
    Overflow,
    /// The store was closed.
    Closed,
    /// The operation was cancelled (Ctrl-C).
    Interrupted,
    /// An operating-system I/O failure.
    Io,
    /// A broken invariant of lamina itself (a bug, or a failpoint in tests): never the user's data.
    Internal,
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// For an I/O error, the system's error number when known (so the binding raises
    /// `FileNotFoundError`, `PermissionError`, ... as Python's own I/O does).
    pub errno: Option<i32>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            errno: None,
        }
    }
    pub fn schema(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Schema, message)
    }
    pub fn corruption(file: &Path, what: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Corruption, format!("{}: {what}", file.display()))
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    pub fn io(context: impl fmt::Display, err: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        // POSIX numbers where the OS gave none (an error made by a library, not a system call).
        let errno = err.raw_os_error().or(match err.kind() {
            K::NotFound => Some(2),
            K::PermissionDenied => Some(13),
            K::AlreadyExists => Some(17),
            _ => None,
        });
        Error {
            errno,
            ..Self::new(ErrorKind::Io, format!("{context}: {err}"))
        }
    }
    pub fn internal(message: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Internal, format!("internal error: {message}"))
    }
    pub fn interrupted() -> Self {
        Self::new(ErrorKind::Interrupted, "interrupted")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Arrow errors come from the kernels lamina drives over data that has already been conformed:
/// a cast or a shape that fails there is a schema problem of the data, an I/O error is I/O, and
/// anything else is internal.
impl From<crate::arrow::error::ArrowError> for Error {
    fn from(e: crate::arrow::error::ArrowError) -> Self {
        use crate::arrow::error::ArrowError as A;
        let kind = match &e {
            A::CastError(_) | A::ParseError(_) | A::SchemaError(_) | A::InvalidArgumentError(_) => {
                ErrorKind::Schema
            }
            A::ComputeError(_) | A::ArithmeticOverflow(_) | A::DivideByZero => ErrorKind::Schema,
            A::IoError(_, _) => ErrorKind::Io,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::internal(format!("json: {e}"))
    }
}

/// A lock poisoned by a panic in another thread: the state it guards may be half-updated.
impl<T> From<std::sync::PoisonError<T>> for Error {
    fn from(_: std::sync::PoisonError<T>) -> Self {
        Error::internal("a lock was poisoned by a panic in another thread")
    }
}

/// Attach a path to an I/O error.
pub trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(path.display(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_keeps_its_number() {
        let missing = std::fs::read("/nonexistent/lamina/file").unwrap_err();
        let e = Path::new("/nonexistent/lamina/file").display();
        let e = Error::io(e, missing);
        assert_eq!((e.kind, e.errno), (ErrorKind::Io, Some(2)));
        assert!(e.message.starts_with("/nonexistent/lamina/file: "), "{e}");
        let made = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no");
        assert_eq!(Error::io("x", made).errno, Some(13));
        assert_eq!(Error::invalid("x").errno, None);
    }
}
