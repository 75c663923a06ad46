//! Bounds-checked little-endian reads for the sketch codecs: every read of a truncated or
//! malformed buffer is an error naming the sketch, never a panic.

use std::fmt;

/// A malformed sketch, or an operation the sketch cannot do (merging different parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BytesError(pub String);

impl fmt::Display for BytesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BytesError {}

pub struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> ByteReader<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        ByteReader { buf, pos: 0, what }
    }

    pub fn error(&self, msg: &str) -> BytesError {
        BytesError(format!(
            "corrupt {} bytes at offset {}: {msg}",
            self.what, self.pos
        ))
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], BytesError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.error("truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BytesError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, BytesError> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16, BytesError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, BytesError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, BytesError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn f64(&mut self) -> Result<f64, BytesError> {
        Ok(f64::from_le_bytes(self.array()?))
    }
    pub fn u128(&mut self) -> Result<u128, BytesError> {
        Ok(u128::from_le_bytes(self.array()?))
    }

    /// Every byte not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    /// A count of items of `size` bytes each that must fit in the bytes left (so a corrupt
    /// count cannot make a reader allocate more than the buffer holds).
    pub fn count(&mut self, size: usize) -> Result<usize, BytesError> {
        let n = self.u64()?;
        let left = (self.buf.len() - self.pos) as u64;
        if size > 0 && n > left / size as u64 {
            return Err(self.error("count exceeds the bytes left"));
        }
        Ok(n as usize)
    }

    /// Every byte was read.
    pub fn finish(&self) -> Result<(), BytesError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(self.error("trailing bytes"))
        }
    }
}
