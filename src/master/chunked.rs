//! A vector in shared chunks: cloning it copies one pointer per chunk and pushing copies at most
//! the last chunk, so a manifest state with a long history is cheap to snapshot and to extend.
//! Serialized as a plain sequence.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Items per chunk (also the size of a sealed commit-history file of the manifest).
pub const CHUNK: usize = 512;

#[derive(Debug, Clone)]
pub struct ChunkedVec<T> {
    chunks: Vec<Arc<Vec<T>>>,
    len: usize,
}

impl<T> Default for ChunkedVec<T> {
    fn default() -> Self {
        ChunkedVec {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Clone> ChunkedVec<T> {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn push(&mut self, x: T) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => Arc::make_mut(c).push(x),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(x);
                self.chunks.push(Arc::new(c));
            }
        }
        self.len += 1;
    }
    /// The chunks: every one but the last holds exactly `CHUNK` items.
    pub fn chunks(&self) -> &[Arc<Vec<T>>] {
        &self.chunks
    }
    /// Append a full chunk (the vector must end on a chunk boundary).
    pub fn push_chunk(&mut self, chunk: Arc<Vec<T>>) {
        debug_assert!(self.len % CHUNK == 0 && chunk.len() <= CHUNK);
        self.len += chunk.len();
        self.chunks.push(chunk);
    }
    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }
    pub fn last(&self) -> Option<&T> {
        self.chunks.last()?.last()
    }
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + '_ {
        self.chunks.iter().flat_map(|c| c.iter())
    }
    /// Remove the last `n` items and return them in order.
    pub fn pop_tail(&mut self, n: usize) -> Vec<T> {
        let n = n.min(self.len);
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let Some(last) = self.chunks.last_mut() else {
                break;
            };
            match Arc::make_mut(last).pop() {
                Some(x) => out.push(x),
                None => {
                    self.chunks.pop();
                }
            }
        }
        if self.chunks.last().is_some_and(|c| c.is_empty()) {
            self.chunks.pop();
        }
        self.len -= out.len();
        out.reverse();
        out
    }
    /// Index of the first item for which `pred` is false (items must be partitioned by `pred`).
    pub fn partition_point(&self, pred: impl Fn(&T) -> bool) -> usize {
        let ci = self.chunks.partition_point(|c| c.last().is_some_and(&pred));
        match self.chunks.get(ci) {
            Some(c) => ci * CHUNK + c.partition_point(&pred),
            None => self.len,
        }
    }
}

impl<T: Clone> FromIterator<T> for ChunkedVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut v = ChunkedVec::default();
        for x in iter {
            v.push(x);
        }
        v
    }
}

impl<T: Clone + PartialEq> PartialEq for ChunkedVec<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: Serialize + Clone> Serialize for ChunkedVec<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de, T: Deserialize<'de> + Clone> Deserialize<'de> for ChunkedVec<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Vec::<T>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_get_pop_and_clone_share_chunks() {
        let mut v: ChunkedVec<u64> = (0..2000).collect();
        let snapshot = v.clone();
        v.push(2000);
        assert_eq!(v.len(), 2001);
        assert_eq!(snapshot.len(), 2000);
        assert_eq!(v.get(1999), Some(&1999));
        assert_eq!(v.partition_point(|&x| x < 1500), 1500);
        assert_eq!(v.pop_tail(3), vec![1998, 1999, 2000]);
        assert_eq!(v.len(), 1998);
        assert_eq!(v.last(), Some(&1997));
        assert!(v.iter().copied().eq(0..1998));
        assert!(snapshot.iter().copied().eq(0..2000));
        let json = serde_json::to_string(&v).unwrap();
        let back: ChunkedVec<u64> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
    }
}
