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
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
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
        Self::new(ErrorKind::Io, format!("{context}: {err}"))
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
