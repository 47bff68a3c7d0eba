//! Safetensors checkpoints (one file or index-listed shards), memory-mapped.

use std::{
    collections::{BTreeMap, HashMap},
    fs::File,
    path::{Path, PathBuf},
};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use super::layout::canonical_key;
use crate::{ModelError, Result};

/// A checkpoint's tensors, indexed by canonical key, read lazily from memory maps.
#[derive(Debug)]
pub struct Checkpoint {
    files: Vec<MappedFile>,
    tensors: BTreeMap<String, TensorEntry>,
}

#[derive(Debug)]
struct MappedFile {
    path: PathBuf,
    map: Mmap,
}

/// Where one tensor lives.
#[derive(Debug, Clone)]
pub(crate) struct TensorEntry {
    /// The key as written in the file.
    pub original_key: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    file: usize,
    /// Byte range inside the file.
    start: usize,
    end: usize,
}

/// One file of a checkpoint ([`Checkpoint::files`]).
pub(crate) struct CheckpointFile<'a> {
    pub path: &'a Path,
    /// (canonical key, entry), by canonical key.
    pub tensors: Vec<(&'a str, &'a TensorEntry)>,
    pub metadata: Option<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, String>,
}

/// For a header the safetensors reader refused: the tensor whose data would end past the end of
/// the file, if that is what is wrong (the reader itself only says the file is not covered).
fn tensor_past_the_end(file: &[u8]) -> Option<String> {
    let len = usize::try_from(u64::from_le_bytes(file.get(..8)?.try_into().ok()?)).ok()?;
    let header: HashMap<String, serde_json::Value> =
        serde_json::from_slice(file.get(8..8usize.checked_add(len)?)?).ok()?;
    let data = file.len() - 8 - len;
    let (key, end) = header
        .iter()
        .filter_map(|(key, info)| Some((key, info.get("data_offsets")?.get(1)?.as_u64()?)))
        .max_by_key(|(_, end)| *end)?;
    (end > data as u64).then(|| {
        format!(
            "tensor `{key}` ends at byte {end} of the data, but the file holds {data} bytes of data"
        )
    })
}

impl Checkpoint {
    /// Opens `model.safetensors.index.json` (and its shards) or `model.safetensors` in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let index = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        let paths = if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(|source| ModelError::Io {
                path: index.clone(),
                source,
            })?;
            let parsed: ShardIndex =
                serde_json::from_str(&text).map_err(|source| ModelError::Json {
                    path: index.clone(),
                    source,
                })?;
            let mut shards: Vec<String> = parsed.weight_map.into_values().collect();
            shards.sort();
            shards.dedup();
            // A shard is a file next to the index: no folders, no `..`, no absolute paths.
            if let Some(bad) = shards
                .iter()
                .find(|name| Path::new(name).file_name() != Some(std::ffi::OsStr::new(name)))
            {
                return Err(ModelError::CorruptFile {
                    path: index,
                    reason: format!("shard `{bad}` is not a file name in the checkpoint's folder"),
                });
            }
            shards.into_iter().map(|name| dir.join(name)).collect()
        } else if single.is_file() {
            vec![single]
        } else {
            return Err(ModelError::NoWeights(dir.to_owned()));
        };
        Self::from_files(paths)
    }

    /// Opens the given safetensors files as one checkpoint.
    pub fn from_files(paths: Vec<PathBuf>) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut tensors = BTreeMap::new();
        for path in paths {
            let file = File::open(&path).map_err(|source| ModelError::Io {
                path: path.clone(),
                source,
            })?;
            // SAFETY: the map is read-only; like every mmap-based loader we assume the file is
            // not truncated or rewritten by another process while the checkpoint is open.
            let map = unsafe { Mmap::map(&file) }.map_err(|source| ModelError::Io {
                path: path.clone(),
                source,
            })?;
            let corrupt = |reason: String| ModelError::CorruptFile {
                path: path.clone(),
                reason,
            };
            let (header_len, metadata) = SafeTensors::read_metadata(&map)
                .map_err(|e| corrupt(tensor_past_the_end(&map).unwrap_or_else(|| e.to_string())))?;
            let data_start = 8 + header_len;
            for (key, info) in metadata.tensors() {
                let (start, end) = (
                    data_start + info.data_offsets.0,
                    data_start + info.data_offsets.1,
                );
                if end > map.len() {
                    return Err(corrupt(format!(
                        "tensor `{key}` ends at byte {end} but the file has {} bytes",
                        map.len()
                    )));
                }
                let canonical = canonical_key(&key).unwrap_or_else(|| key.clone());
                let entry = TensorEntry {
                    original_key: key.clone(),
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    file: files.len(),
                    start,
                    end,
                };
                if let Some(previous) = tensors.insert(canonical, entry) {
                    return Err(corrupt(format!(
                        "tensor `{key}` duplicates `{}`",
                        previous.original_key
                    )));
                }
            }
            files.push(MappedFile { path, map });
        }
        Ok(Self { files, tensors })
    }

    /// Canonical keys of all tensors.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub(crate) fn entry(&self, key: &str) -> Option<&TensorEntry> {
        self.tensors.get(key)
    }

    /// The raw little-endian bytes of a tensor.
    pub(crate) fn bytes(&self, entry: &TensorEntry) -> &[u8] {
        &self.files[entry.file].map[entry.start..entry.end]
    }

    /// Tells the kernel a tensor's pages are no longer needed, so that loading a model does not
    /// keep the whole file resident on top of the loaded weights.
    #[cfg(unix)]
    pub(crate) fn release(&self, entry: &TensorEntry) {
        let map = &self.files[entry.file].map;
        // Page-align the start; the kernel rounds the length up.
        let start = entry.start - entry.start % page_size();
        // SAFETY: the mapping is private and read-only and backed by a file: dropped pages are
        // read again from the file if touched, and we hold no references into this range
        // after the tensor was copied out of it.
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, entry.end - start)
        };
    }

    /// Without madvise the pages stay cached until the checkpoint is dropped.
    #[cfg(not(unix))]
    pub(crate) fn release(&self, _entry: &TensorEntry) {}

    /// Scans every tensor for NaN or infinite values (a checkpoint damaged on disk or by a bad
    /// conversion would otherwise give NaN vectors). Reads the whole checkpoint once (seconds
    /// per 10 GB), releasing each tensor's pages after it, so it is an option, off by default.
    pub fn check_finite(&self) -> Result<()> {
        for entry in self.tensors.values() {
            let bytes = self.bytes(entry);
            let finite = match entry.dtype {
                Dtype::F32 => all_finite::<4>(bytes, |b| {
                    u32::from_le_bytes(b) & 0x7f80_0000 != 0x7f80_0000
                }),
                Dtype::F16 => all_finite::<2>(bytes, |b| u16::from_le_bytes(b) & 0x7c00 != 0x7c00),
                Dtype::BF16 => all_finite::<2>(bytes, |b| u16::from_le_bytes(b) & 0x7f80 != 0x7f80),
                // Loading reports the dtype; integer tensors are always finite.
                _ => true,
            };
            self.release(entry);
            if !finite {
                return Err(ModelError::NonFinite {
                    key: entry.original_key.clone(),
                    path: self.path_of(entry).to_owned(),
                });
            }
        }
        Ok(())
    }

    /// The files, in order, each with its tensors (canonical key, entry) and the string
    /// metadata of its header (`{"format": "pt"}` for PyTorch's files).
    pub(crate) fn files(&self) -> Vec<CheckpointFile<'_>> {
        self.files
            .iter()
            .enumerate()
            .map(|(index, file)| CheckpointFile {
                path: &file.path,
                tensors: self
                    .tensors
                    .iter()
                    .filter(|(_, entry)| entry.file == index)
                    .map(|(key, entry)| (key.as_str(), entry))
                    .collect(),
                metadata: SafeTensors::read_metadata(&file.map)
                    .ok()
                    .and_then(|(_, header)| header.metadata().clone()),
            })
            .collect()
    }

    /// The path of the file holding a tensor, for error messages.
    pub(crate) fn path_of(&self, entry: &TensorEntry) -> &Path {
        &self.files[entry.file].path
    }
}

/// Whether `is_finite` holds for every `N`-byte little-endian value of `bytes`.
fn all_finite<const N: usize>(bytes: &[u8], is_finite: impl Fn([u8; N]) -> bool) -> bool {
    bytes.chunks_exact(N).all(|chunk| {
        let mut value = [0u8; N];
        value.copy_from_slice(chunk);
        is_finite(value)
    })
}

fn page_size() -> usize {
    4096
}
