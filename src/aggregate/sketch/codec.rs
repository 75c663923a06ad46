//! The one codec of every binary state (the sketches', and the partial states of the
//! aggregates): bounds-checked little-endian reads (`ByteReader`), where every read of a truncated
//! or malformed buffer is an error naming what it reads, never a panic; little-endian writes
//! (`ByteWriter`); and one error type (`SketchError`), which converts into the crate's error.

use std::fmt;

/// A malformed sketch or state, or an operation a sketch cannot do (a bad parameter, merging
/// sketches of different parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SketchError(pub String);

/// A sketch's error as the crate's: a bad parameter or a mismatch the caller asked for. (Bytes
/// read from a file are reported as corruption by the caller, which knows the file.)
impl From<SketchError> for crate::error::Error {
    fn from(e: SketchError) -> Self {
        crate::error::Error::invalid(e.0)
    }
}

impl fmt::Display for SketchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SketchError {}

pub struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> ByteReader<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        ByteReader { buf, pos: 0, what }
    }

    pub fn error(&self, msg: &str) -> SketchError {
        SketchError(format!(
            "corrupt {} bytes at offset {}: {msg}",
            self.what, self.pos
        ))
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], SketchError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.error("truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SketchError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, SketchError> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16, SketchError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, SketchError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, SketchError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn f64(&mut self) -> Result<f64, SketchError> {
        Ok(f64::from_le_bytes(self.array()?))
    }
    pub fn u128(&mut self) -> Result<u128, SketchError> {
        Ok(u128::from_le_bytes(self.array()?))
    }

    /// The bytes not read yet, without reading them.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// A minimal LEB128 varint of at most 5 bytes (a value below 2^35).
    pub fn varint(&mut self) -> Result<u64, SketchError> {
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let b = self.u8().map_err(|_| self.error("truncated varint"))?;
            if shift >= 35 {
                return Err(self.error("varint too long"));
            }
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                if b == 0 && shift > 0 {
                    return Err(self.error("non-minimal varint"));
                }
                return Ok(v);
            }
            shift += 7;
        }
    }

    /// Every byte not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    /// A count of items of `size` bytes each that must fit in the bytes left (so a corrupt
    /// count cannot make a reader allocate more than the buffer holds).
    pub fn count(&mut self, size: usize) -> Result<usize, SketchError> {
        let n = self.u64()?;
        let left = (self.buf.len() - self.pos) as u64;
        if size > 0 && n > left / size as u64 {
            return Err(self.error("count exceeds the bytes left"));
        }
        Ok(n as usize)
    }

    /// Every byte was read.
    pub fn finish(&self) -> Result<(), SketchError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(self.error("trailing bytes"))
        }
    }
}

/// A value written little-endian (the layout of every state).
pub trait LittleEndian: Copy {
    fn write_le(self, out: &mut Vec<u8>);
}

macro_rules! little_endian {
    ($($t:ty),*) => {$(
        impl LittleEndian for $t {
            #[inline]
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
little_endian!(u16, u32, u64, u128, i64, i128, f64);

impl<T: LittleEndian> LittleEndian for &T {
    #[inline]
    fn write_le(self, out: &mut Vec<u8>) {
        (*self).write_le(out)
    }
}

/// Little-endian writes into a byte buffer, the inverse of `ByteReader`'s reads.
pub trait ByteWriter {
    fn put<T: LittleEndian>(&mut self, v: T);
}

impl ByteWriter for Vec<u8> {
    #[inline]
    fn put<T: LittleEndian>(&mut self, v: T) {
        v.write_le(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_and_bad_bytes_are_errors() {
        let mut out = Vec::new();
        out.put(7u16);
        out.put(u32::MAX);
        out.put(-3i64);
        out.put(1.5f64);
        out.put(u128::MAX - 1);
        out.extend_from_slice(&[0xAC, 0x02]); // varint 300
        let mut r = ByteReader::new(&out, "test state");
        assert_eq!(r.u16().unwrap(), 7);
        assert_eq!(r.u32().unwrap(), u32::MAX);
        assert_eq!(r.u64().unwrap() as i64, -3);
        assert_eq!(r.f64().unwrap(), 1.5);
        assert_eq!(r.u128().unwrap(), u128::MAX - 1);
        assert_eq!(r.remaining(), &[0xAC, 0x02]);
        assert_eq!(r.varint().unwrap(), 300);
        r.finish().unwrap();
        let e = ByteReader::new(&[0x80, 0x00], "test state")
            .varint()
            .unwrap_err();
        assert!(e.0.contains("non-minimal varint"), "{e}");
        let e = ByteReader::new(&[0xFF; 6], "test state")
            .varint()
            .unwrap_err();
        assert!(e.0.contains("varint too long"), "{e}");
        let e = ByteReader::new(&[1, 2], "test state").u32().unwrap_err();
        assert_eq!(e.0, "corrupt test state bytes at offset 0: truncated");
        let e: crate::Error = e.into();
        assert_eq!(e.kind, crate::ErrorKind::InvalidArgument);
    }
}
