//! The on-disk embedding cache: an interrupted or repeated run reuses every vector it already
//! computed.
//!
//! # Layout
//! `<cache dir>/<namespace>/` holds one append-only file, `vectors.bin`, and a readable
//! `meta.json` saying what the namespace is. The namespace (32 hex digits) is a hash of
//! everything that changes the vectors of a given input: the model directory's fingerprint
//! (`config.json` bytes plus the size and modification time of every other file), the
//! backend, precision and image behaviour, and the cache format. Inside it, each vector is
//! keyed by a SHA-256 of the item: the full prompt (chat wrapper included), the SHA-256 of the
//! image file's bytes (or, for a rendered caption, the renderer's id and the caption) and the
//! text. Vectors are stored raw (not normalised), as `f32`.
//!
//! `vectors.bin`: a 16-byte header (`E5VCACHE`, format version u32 LE, dim u32 LE), then
//! fixed-size records: key (32 bytes), `dim` f32 LE, and the first 4 bytes of the SHA-256 of
//! key and vector as a checksum. Records are appended after each batch and flushed; on open, a
//! partial record at the end (a run killed mid-write) is cut off, and a record whose checksum
//! fails is treated as missing and recomputed. A later record for the same key wins. One run at
//! a time per cache directory: concurrent writers would interleave records.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{EvalError, Result};

const MAGIC: &[u8; 8] = b"E5VCACHE";
const FORMAT: u32 = 1;
const HEADER: u64 = 16;
const KEY: usize = 32;
const CHECKSUM: usize = 4;

/// A 32-byte cache key.
pub(crate) type Key = [u8; 32];

/// How many vectors a run took from the cache and how many it computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CacheStats {
    /// Vectors read from the cache.
    pub hits: usize,
    /// Vectors computed by the model (and stored, when a cache is used).
    pub embedded: usize,
}

/// One namespace of the cache, open for reading and appending.
#[derive(Debug)]
pub(crate) struct EmbeddingCache {
    path: PathBuf,
    file: File,
    dim: usize,
    index: HashMap<Key, u64>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EvalError + '_ {
    move |source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn checksum(key: &Key, payload: &[u8]) -> [u8; CHECKSUM] {
    let digest = Sha256::new()
        .chain_update(key)
        .chain_update(payload)
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

impl EmbeddingCache {
    /// Opens (creating it if needed) the namespace `namespace` under `root` for vectors of
    /// width `dim`; `meta` is written to `meta.json` when the namespace is new.
    pub(crate) fn open(
        root: &Path,
        namespace: &Key,
        dim: usize,
        meta: &serde_json::Value,
    ) -> Result<Self> {
        let hex: String = namespace[..16].iter().map(|b| format!("{b:02x}")).collect();
        let dir = root.join(hex);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let meta_path = dir.join("meta.json");
        if !meta_path.exists() {
            let text = serde_json::to_string_pretty(meta).unwrap_or_default();
            std::fs::write(&meta_path, text + "\n").map_err(io(&meta_path))?;
        }
        let path = dir.join("vectors.bin");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        let len = file.metadata().map_err(io(&path))?.len();
        let dim32 = u32::try_from(dim)
            .map_err(|_| EvalError::InvalidArgument(format!("embedding dim {dim} too large")))?;
        if len < HEADER {
            // New (or cut off before its header was complete).
            let mut header = Vec::with_capacity(HEADER as usize);
            header.extend_from_slice(MAGIC);
            header.extend_from_slice(&FORMAT.to_le_bytes());
            header.extend_from_slice(&dim32.to_le_bytes());
            file.set_len(0).map_err(io(&path))?;
            file.write_all(&header).map_err(io(&path))?;
            file.flush().map_err(io(&path))?;
        } else {
            let mut header = [0u8; HEADER as usize];
            file.read_exact(&mut header).map_err(io(&path))?;
            let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
            let stored_dim = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
            if &header[..8] != MAGIC || version != FORMAT {
                return Err(EvalError::Cache {
                    path,
                    message: "not an e5v-eval cache file of this format; delete it".into(),
                });
            }
            if stored_dim != dim32 {
                return Err(EvalError::Cache {
                    path,
                    message: format!("holds vectors of width {stored_dim}, the model's are {dim}"),
                });
            }
        }
        let mut cache = Self {
            path,
            file,
            dim,
            index: HashMap::new(),
        };
        cache.build_index(len.max(HEADER))?;
        Ok(cache)
    }

    fn record_len(&self) -> u64 {
        (KEY + 4 * self.dim + CHECKSUM) as u64
    }

    /// Reads every record's key; cuts off a partial record at the end.
    fn build_index(&mut self, len: u64) -> Result<()> {
        let record = self.record_len();
        let complete = (len - HEADER) / record;
        let valid_len = HEADER + complete * record;
        if valid_len != len {
            self.file.set_len(valid_len).map_err(io(&self.path))?;
        }
        let mut reader = BufReader::new(&self.file);
        reader
            .seek(SeekFrom::Start(HEADER))
            .map_err(io(&self.path))?;
        let skip = (record - KEY as u64) as i64;
        for i in 0..complete {
            let mut key = [0u8; KEY];
            reader.read_exact(&mut key).map_err(io(&self.path))?;
            reader.seek_relative(skip).map_err(io(&self.path))?;
            self.index.insert(key, HEADER + i * record);
        }
        Ok(())
    }

    /// Number of vectors stored.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// The vector stored under `key`, if any (and if its checksum holds).
    pub(crate) fn get(&mut self, key: &Key) -> Result<Option<Vec<f32>>> {
        let Some(&offset) = self.index.get(key) else {
            return Ok(None);
        };
        let mut record = vec![0u8; self.record_len() as usize];
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(io(&self.path))?;
        self.file.read_exact(&mut record).map_err(io(&self.path))?;
        let (stored_key, rest) = record.split_at(KEY);
        let (payload, sum) = rest.split_at(4 * self.dim);
        if stored_key != key || sum != checksum(key, payload) {
            self.index.remove(key);
            return Ok(None);
        }
        Ok(Some(
            payload
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ))
    }

    /// Appends vectors (each `dim` long) and flushes them to the file.
    pub(crate) fn put_all<'a>(
        &mut self,
        records: impl IntoIterator<Item = (Key, &'a [f32])>,
    ) -> Result<()> {
        let mut offset = self.file.seek(SeekFrom::End(0)).map_err(io(&self.path))?;
        let mut buffer = Vec::new();
        let mut added = Vec::new();
        for (key, vector) in records {
            if vector.len() != self.dim {
                return Err(EvalError::InvalidArgument(format!(
                    "cache vector of width {}, expected {}",
                    vector.len(),
                    self.dim
                )));
            }
            let start = buffer.len();
            buffer.extend_from_slice(&key);
            for v in vector {
                buffer.extend_from_slice(&v.to_le_bytes());
            }
            let sum = checksum(&key, &buffer[start + KEY..]);
            buffer.extend_from_slice(&sum);
            added.push((key, offset));
            offset += self.record_len();
        }
        self.file.write_all(&buffer).map_err(io(&self.path))?;
        self.file.flush().map_err(io(&self.path))?;
        self.index.extend(added);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> Key {
        [i; 32]
    }

    fn open(root: &Path, dim: usize) -> Result<EmbeddingCache> {
        EmbeddingCache::open(root, &key(9), dim, &serde_json::json!({"test": true}))
    }

    #[test]
    fn round_trip_and_reopen() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut cache = open(root.path(), 3).expect("open");
        assert_eq!(cache.get(&key(1)).expect("get"), None);
        cache
            .put_all([
                (key(1), &[1.0, 2.0, 3.0][..]),
                (key(2), &[-0.5, 0.0, 7.25][..]),
            ])
            .expect("put");
        assert_eq!(
            cache.get(&key(2)).expect("get"),
            Some(vec![-0.5, 0.0, 7.25])
        );
        drop(cache);
        let mut cache = open(root.path(), 3).expect("reopen");
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&key(1)).expect("get"), Some(vec![1.0, 2.0, 3.0]));
        // A later record for the same key wins.
        cache
            .put_all([(key(1), &[4.0, 5.0, 6.0][..])])
            .expect("put");
        drop(cache);
        let mut cache = open(root.path(), 3).expect("reopen");
        assert_eq!(cache.get(&key(1)).expect("get"), Some(vec![4.0, 5.0, 6.0]));
        // Another width in the same namespace is refused.
        assert!(matches!(open(root.path(), 4), Err(EvalError::Cache { .. })));
        assert!(cache.put_all([(key(3), &[1.0][..])]).is_err());
    }

    #[test]
    fn torn_and_corrupt_records() {
        let root = tempfile::tempdir().expect("tempdir");
        let mut cache = open(root.path(), 2).expect("open");
        cache
            .put_all([(key(1), &[1.0, 2.0][..]), (key(2), &[3.0, 4.0][..])])
            .expect("put");
        let path = cache.path.clone();
        drop(cache);
        // A run killed mid-write: half a record at the end is cut off on open.
        let mut bytes = std::fs::read(&path).expect("read");
        let full = bytes.len();
        bytes.extend_from_slice(&[7u8; 20]);
        std::fs::write(&path, &bytes).expect("write");
        let cache = open(root.path(), 2).expect("reopen");
        assert_eq!(cache.len(), 2);
        assert_eq!(std::fs::metadata(&path).expect("meta").len() as usize, full);
        // A flipped byte in a vector: the checksum fails, the vector counts as missing.
        drop(cache);
        bytes.truncate(full);
        bytes[HEADER as usize + KEY] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        let mut cache = open(root.path(), 2).expect("reopen");
        assert_eq!(cache.get(&key(1)).expect("get"), None);
        assert_eq!(cache.get(&key(2)).expect("get"), Some(vec![3.0, 4.0]));
        // Not a cache file at all.
        drop(cache);
        std::fs::write(&path, b"something else entirely").expect("write");
        assert!(matches!(open(root.path(), 2), Err(EvalError::Cache { .. })));
    }
}
