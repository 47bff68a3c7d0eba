//! The loader's errors, on deliberately broken copies of the tiny checkpoint.

use std::{collections::BTreeMap, path::Path};

use burn::tensor::DType;
use e5v_model::{Checkpoint, LlavaNext, ModelError};
use safetensors::{Dtype, tensor::TensorView};

use crate::fixtures::root;

type B = burn::backend::NdArray<f32>;

/// (dtype, shape, bytes) of every tensor of the f32 fixture.
fn tensors() -> BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(root().join("tiny-e5v/model.safetensors")).expect("fixture");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("valid");
    file.tensors()
        .into_iter()
        .map(|(k, v)| (k, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect()
}

/// A model directory holding the fixture's config and the given tensors.
fn model_dir(tensors: &BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        root().join("tiny-e5v/config.json"),
        dir.path().join("config.json"),
    )
    .expect("copy");
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(k, (dtype, shape, data))| {
            (
                k.clone(),
                TensorView::new(*dtype, shape.clone(), data).expect("view"),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.path().join("model.safetensors"))
        .expect("write");
    dir
}

fn load_error(dir: &Path) -> ModelError {
    LlavaNext::<B>::load(dir, &Default::default(), DType::F32).expect_err("must fail")
}

#[test]
fn missing_tensor_is_named() {
    let mut t = tensors();
    t.remove("language_model.model.norm.weight")
        .expect("present");
    let err = load_error(model_dir(&t).path());
    assert!(
        matches!(&err, ModelError::MissingTensor(k) if k == "decoder.norm.weight"),
        "{err}"
    );
}

#[test]
fn shape_mismatch_names_both_shapes() {
    let mut t = tensors();
    let entry = t.get_mut("image_newline").expect("present");
    entry.1 = vec![63];
    entry.2.truncate(63 * 4);
    let err = load_error(model_dir(&t).path());
    match &err {
        ModelError::ShapeMismatch {
            key,
            path,
            expected,
            found,
        } => {
            assert_eq!(
                (key.as_str(), expected.as_slice(), found.as_slice()),
                ("image_newline", &[64][..], &[63][..])
            );
            assert!(path.ends_with("model.safetensors"), "{}", path.display());
        }
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn unexpected_tensor_is_rejected_but_allow_listed_ones_are_not() {
    let t = tensors();
    // The fixture itself holds the lm_head, the last CLIP block and post_layernorm.
    assert!(t.contains_key("language_model.lm_head.weight"));
    assert!(
        t.keys()
            .any(|k| k.starts_with("vision_tower.post_layernorm"))
    );
    let mut t = t;
    t.insert(
        "language_model.model.extra.weight".into(),
        (Dtype::F32, vec![1], vec![0; 4]),
    );
    let err = load_error(model_dir(&t).path());
    assert!(
        matches!(&err, ModelError::UnexpectedTensors(keys) if keys == &["language_model.model.extra.weight"]),
        "{err}"
    );
}

#[test]
fn unsupported_dtype_is_named() {
    let mut t = tensors();
    t.get_mut("image_newline").expect("present").0 = Dtype::I32;
    let err = load_error(model_dir(&t).path());
    assert!(
        matches!(&err, ModelError::UnsupportedDtype { key, path, .. }
            if key == "image_newline" && path.ends_with("model.safetensors")),
        "{err}"
    );
}

#[test]
fn truncated_and_corrupt_files_are_reported_with_their_path() {
    let dir = model_dir(&tensors());
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).expect("written");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
    let err = load_error(dir.path());
    assert!(
        matches!(&err, ModelError::CorruptFile { path: p, .. } if p == &path),
        "{err}"
    );
    std::fs::write(&path, b"\xff\xff\xff\xff\xff\xff\xff\x7fnot a header").expect("garbage");
    let err = load_error(dir.path());
    assert!(matches!(&err, ModelError::CorruptFile { .. }), "{err}");
}

#[test]
fn a_tensor_ending_past_the_file_is_an_error_naming_file_and_tensor() {
    let dir = model_dir(&tensors());
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).expect("written");
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).expect("json");
    // Grow the last tensor of the data (shape and offsets stay consistent): it now ends past
    // the end of the file.
    let (key, end) = header
        .as_object()
        .expect("object")
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v["data_offsets"][1].as_u64()?)))
        .max_by_key(|(_, end)| *end)
        .expect("tensors");
    let entry = &mut header[&key];
    let start = entry["data_offsets"][0].as_u64().expect("start");
    let elements = (end - start) / 4 + 1000;
    entry["shape"] = serde_json::json!([elements]);
    entry["data_offsets"] = serde_json::json!([start, start + elements * 4]);
    let text = header.to_string();
    let mut forged = (text.len() as u64).to_le_bytes().to_vec();
    forged.extend_from_slice(text.as_bytes());
    forged.extend_from_slice(&bytes[8 + len..]);
    std::fs::write(&path, forged).expect("write");
    let err = load_error(dir.path());
    assert!(
        matches!(&err, ModelError::CorruptFile { path: p, reason }
            if p == &path && reason.contains(&format!("tensor `{key}` ends at byte"))),
        "{err}"
    );
}

#[test]
fn unreadable_files_are_errors_naming_the_path() {
    // A folder where a file should be: the OS refuses to map or read it.
    let dir = model_dir(&tensors());
    let weights = dir.path().join("model.safetensors");
    std::fs::remove_file(&weights).expect("remove");
    std::fs::create_dir(&weights).expect("folder");
    let err = LlavaNext::<B>::load(dir.path(), &Default::default(), DType::F32).expect_err("dir");
    assert!(
        matches!(&err, ModelError::Io { path, .. } | ModelError::NoWeights(path)
            if path.starts_with(dir.path())),
        "{err}"
    );
    let dir = model_dir(&tensors());
    let config = dir.path().join("config.json");
    std::fs::remove_file(&config).expect("remove");
    std::fs::create_dir(&config).expect("folder");
    let err = load_error(dir.path());
    assert!(
        matches!(&err, ModelError::Io { path, .. } if path == &config),
        "{err}"
    );
}

#[test]
fn a_directory_without_weights_or_with_a_missing_shard_fails_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        root().join("tiny-e5v/config.json"),
        dir.path().join("config.json"),
    )
    .expect("copy");
    assert!(matches!(load_error(dir.path()), ModelError::NoWeights(_)));
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        r#"{"metadata": {}, "weight_map": {"image_newline": "model-00001-of-00001.safetensors"}}"#,
    )
    .expect("index");
    let err = load_error(dir.path());
    assert!(
        err.to_string().contains("model-00001-of-00001.safetensors"),
        "{err}"
    );
    // Shard names that would leave the folder are refused before any file is opened.
    for name in [
        "../model.safetensors",
        "/etc/hostname",
        "sub/model.safetensors",
        "..",
    ] {
        let index = serde_json::json!({"weight_map": {"image_newline": name}});
        std::fs::write(
            dir.path().join("model.safetensors.index.json"),
            index.to_string(),
        )
        .expect("index");
        let err = load_error(dir.path());
        assert!(
            matches!(&err, ModelError::CorruptFile { path, reason }
                if path.ends_with("model.safetensors.index.json") && reason.contains(name)),
            "{name}: {err}"
        );
    }
}

#[test]
fn missing_config_is_an_io_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = load_error(dir.path());
    assert!(
        matches!(&err, ModelError::Io { path, .. } if path.ends_with("config.json")),
        "{err}"
    );
}

#[test]
fn a_dtype_the_backend_cannot_hold_is_an_error_not_a_panic() {
    let err = LlavaNext::<B>::load(root().join("tiny-e5v"), &Default::default(), DType::F16)
        .expect_err("ndarray has no f16");
    assert!(
        matches!(&err, ModelError::Unsupported { field: "dtype", .. }),
        "{err}"
    );
}

#[test]
fn non_finite_weights_are_found_on_request_naming_tensor_and_file() {
    let key = "language_model.model.norm.weight";
    let clean = tensors();
    let (_, shape, _) = clean.get(key).cloned().expect("fixture tensor");
    let count: usize = shape.iter().product();
    // One bad value, last in the tensor, in each stored dtype.
    let cases: [(Dtype, Vec<u8>, Vec<u8>); 3] = [
        (
            Dtype::F32,
            1.0f32.to_le_bytes().to_vec(),
            f32::NAN.to_le_bytes().to_vec(),
        ),
        (
            Dtype::F16,
            0x3c00u16.to_le_bytes().to_vec(),
            0x7c00u16.to_le_bytes().to_vec(),
        ),
        (
            Dtype::BF16,
            0x3f80u16.to_le_bytes().to_vec(),
            0xff80u16.to_le_bytes().to_vec(),
        ),
    ];
    for (dtype, one, bad) in cases {
        let mut broken = clean.clone();
        let mut data = one.repeat(count - 1);
        data.extend_from_slice(&bad);
        broken.insert(key.to_owned(), (dtype, shape.clone(), data));
        let dir = model_dir(&broken);
        // Off by default: the model loads.
        LlavaNext::<B>::load(dir.path(), &Default::default(), DType::F32).expect("loads");
        let checkpoint = Checkpoint::open(dir.path()).expect("opens");
        match checkpoint.check_finite() {
            Err(ModelError::NonFinite { key: found, path }) => {
                assert_eq!(found, key, "{dtype:?}");
                assert!(path.ends_with("model.safetensors"), "{dtype:?}: {path:?}");
            }
            other => panic!("{dtype:?}: {other:?}"),
        }
    }
    let dir = model_dir(&clean);
    Checkpoint::open(dir.path())
        .expect("opens")
        .check_finite()
        .expect("the fixture is finite");
}

mod properties {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    /// Splits a safetensors file into its header JSON and its data.
    fn split(bytes: &[u8]) -> (Value, &[u8]) {
        let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        let header = serde_json::from_slice(&bytes[8..8 + len]).expect("header");
        (header, &bytes[8 + len..])
    }

    fn join(header: &Value, data: &[u8]) -> Vec<u8> {
        let text = header.to_string();
        let mut out = (text.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(data);
        out
    }

    /// One edit of a tensor's header entry or of the file's bytes.
    #[derive(Debug, Clone)]
    enum Edit {
        Dtype(prop::sample::Index, String),
        Shape(prop::sample::Index, Vec<u64>),
        Offsets(prop::sample::Index, u64, u64),
        HeaderLength(u64),
        Byte(prop::sample::Index, u8),
        Truncate(prop::sample::Index),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let huge = prop_oneof![any::<u64>(), 0u64..5000, Just(u64::MAX), Just(1 << 62)];
        prop_oneof![
            (
                any::<prop::sample::Index>(),
                prop_oneof![
                    Just("F32"),
                    Just("F16"),
                    Just("BF16"),
                    Just("I64"),
                    Just("F8_E4M3"),
                    Just("bogus")
                ]
                .prop_map(String::from)
            )
                .prop_map(|(i, d)| Edit::Dtype(i, d)),
            (
                any::<prop::sample::Index>(),
                prop::collection::vec(huge.clone(), 0..4)
            )
                .prop_map(|(i, s)| Edit::Shape(i, s)),
            (any::<prop::sample::Index>(), huge.clone(), huge.clone())
                .prop_map(|(i, a, b)| Edit::Offsets(i, a, b)),
            huge.prop_map(Edit::HeaderLength),
            (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Byte(i, b)),
            any::<prop::sample::Index>().prop_map(Edit::Truncate),
        ]
    }

    fn apply(bytes: Vec<u8>, edit: &Edit) -> Vec<u8> {
        match edit {
            Edit::HeaderLength(len) => {
                let mut bytes = bytes;
                bytes[..8].copy_from_slice(&len.to_le_bytes());
                bytes
            }
            Edit::Byte(i, b) => {
                let mut bytes = bytes;
                let at = i.index(bytes.len());
                bytes[at] = *b;
                bytes
            }
            Edit::Truncate(i) => bytes[..i.index(bytes.len())].to_vec(),
            Edit::Dtype(i, _) | Edit::Shape(i, _) | Edit::Offsets(i, _, _) => {
                if bytes.len() < 8 || split_ok(&bytes).is_none() {
                    return bytes;
                }
                let (mut header, data) = split(&bytes);
                let map = header.as_object_mut().expect("object");
                let keys: Vec<String> = map
                    .keys()
                    .filter(|k| *k != "__metadata__")
                    .cloned()
                    .collect();
                let key = &keys[i.index(keys.len())];
                let tensor = map.get_mut(key).expect("entry");
                match edit {
                    Edit::Dtype(_, d) => tensor["dtype"] = Value::from(d.as_str()),
                    Edit::Shape(_, s) => tensor["shape"] = Value::from(s.clone()),
                    Edit::Offsets(_, a, b) => tensor["data_offsets"] = Value::from(vec![*a, *b]),
                    _ => unreachable!(),
                }
                join(&header, data)
            }
        }
    }

    /// Whether the bytes still start with a readable header (edits of the JSON need one).
    fn split_ok(bytes: &[u8]) -> Option<()> {
        let len = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
        let header = bytes.get(8..8usize.checked_add(len)?)?;
        serde_json::from_slice::<Value>(header)
            .ok()
            .filter(Value::is_object)
            .map(|_| ())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any edit of the checkpoint's header (dtype, shape, offsets, header length), any
        /// byte and any truncation: loading gives a model or a typed error, never a panic, and
        /// a `CorruptFile` error names the file.
        #[test]
        fn edited_checkpoints_load_or_fail_cleanly(edits in prop::collection::vec(edit(), 1..4)) {
            let dir = model_dir(&tensors());
            let path = dir.path().join("model.safetensors");
            let mut bytes = std::fs::read(&path).expect("written");
            for edit in &edits {
                bytes = apply(bytes, edit);
            }
            std::fs::write(&path, &bytes).expect("write");
            match LlavaNext::<B>::load(dir.path(), &Default::default(), DType::F32) {
                Ok(_) => {}
                Err(ModelError::CorruptFile { path: p, .. }) => prop_assert_eq!(p, path),
                Err(_) => {}
            }
            if let Ok(checkpoint) = Checkpoint::open(dir.path()) {
                let _ = checkpoint.check_finite();
            }
        }

        /// Any index file: a typed error or a checkpoint, never a panic or a file outside the
        /// folder.
        #[test]
        fn arbitrary_index_files_fail_cleanly(
            names in prop::collection::vec(prop_oneof![
                Just("model.safetensors".to_string()),
                Just("../model.safetensors".to_string()),
                Just("".to_string()),
                Just(".".to_string()),
                "\\PC{0,12}",
            ], 0..4),
            raw in prop::option::of("\\PC{0,40}"),
        ) {
            let dir = model_dir(&tensors());
            let map: serde_json::Map<String, Value> = names
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("t{i}"), Value::from(n.as_str())))
                .collect();
            let index = raw.unwrap_or_else(|| serde_json::json!({"weight_map": map}).to_string());
            std::fs::write(dir.path().join("model.safetensors.index.json"), index).expect("index");
            let _ = Checkpoint::open(dir.path());
        }
    }
}
