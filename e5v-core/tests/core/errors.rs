//! Bad input gives typed errors, never a panic.

use e5v_core::{EmbedderOptions, Error, ImageSource, Input, PromptError, Truncation};

use crate::fixtures::{embedder, root};

type B = burn::backend::NdArray<f32>;

#[test]
fn empty_input_gives_an_empty_result_and_empty_text_is_valid() {
    let e = embedder::<B>("tiny-e5v", EmbedderOptions::default());
    assert!(e.embed(&[]).expect("empty").is_empty());
    let one = e.embed_texts(&[""]).expect("empty text");
    assert_eq!(one.len(), 1);
    let norm: f32 = one.get(0).expect("row").iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-5, "normalised by default");
}

#[test]
fn bad_images_are_typed_errors_with_the_input_index() {
    let e = embedder::<B>("tiny-e5v", EmbedderOptions::default());
    let png = std::fs::read(root().join("images/grad_336x336.png")).expect("fixture");
    let cases: Vec<(Input, &str)> = vec![
        (Input::image(b"definitely not an image".to_vec()), "format"),
        (Input::image(png[..png.len() / 3].to_vec()), "decode"),
        (Input::image(root().join("images/missing.png")), "read"),
    ];
    for (bad, what) in cases {
        let err = e.embed(&[Input::text("ok"), bad]).expect_err(what);
        match &err {
            Error::Image { index, .. } => assert_eq!(*index, 1, "{what}: {err}"),
            Error::ReadInput { index, path, .. } => {
                assert!(*index == 1 && path.ends_with("missing.png"), "{what}")
            }
            other => panic!("{what}: unexpected error {other}"),
        }
    }
    // An image file that cannot be decoded: the error names the file, not only the input.
    let dir = tempfile::tempdir().expect("temp dir");
    let truncated = dir.path().join("truncated.png");
    std::fs::write(&truncated, &png[..png.len() / 3]).expect("write");
    let err = e
        .embed(&[Input::image(truncated.clone())])
        .expect_err("truncated");
    assert!(
        matches!(&err, Error::Image { index: 0, path: Some(p), .. } if *p == truncated),
        "{err:?}"
    );
    assert!(err.to_string().contains("truncated.png"), "{err}");
}

#[test]
fn decode_limits_reject_large_images_before_decoding() {
    let limits = e5v_core::DecodeLimits::default()
        .with_max_width(100)
        .with_max_height(100);
    let e = embedder::<B>(
        "tiny-e5v",
        EmbedderOptions::default().with_decode_limits(limits),
    );
    let err = e.embed(&[Input::image(ImageSource::Path(
        root().join("images/grad_336x336.png"),
    ))]);
    assert!(matches!(err, Err(Error::Image { index: 0, .. })), "{err:?}");
}

#[test]
fn special_tokens_in_user_text_are_rejected() {
    let e = embedder::<B>("tiny-e5v", EmbedderOptions::default());
    for text in ["look: <image> here", "end<|eot_id|>", "<|begin_of_text|>"] {
        let err = e.embed_texts(&["fine", text]).expect_err(text);
        assert!(
            matches!(
                &err,
                Error::Prompt {
                    index: 1,
                    source: PromptError::SpecialTokenInText { .. }
                }
            ),
            "{text}: {err}"
        );
    }
}

#[test]
fn over_long_text_fails_or_is_truncated_as_asked() {
    let long = "word ".repeat(5000);
    let e = embedder::<B>("tiny-e5v", EmbedderOptions::default());
    let err = e.embed_texts(&[&long]).expect_err("too long");
    assert!(matches!(err, Error::TooLong { index: 0, .. }), "{err}");
    let e = embedder::<B>(
        "tiny-e5v",
        EmbedderOptions::default().with_truncation(Truncation::TruncateText),
    );
    let out = e.embed_texts(&[&long]).expect("truncated");
    let info = out.info(0).expect("row");
    assert!(
        info.seq_len <= e.max_positions() && info.seq_len > e.max_positions() - 8,
        "{info:?}"
    );
    // The prompt's end survives truncation: the last tokens are the template's.
    let ids = e.token_ids(&Input::text("x")).expect("ids");
    let truncated = e.token_ids(&Input::text(long)).expect("ids");
    assert_eq!(truncated[truncated.len() - 10..], ids[ids.len() - 10..]);
}

#[test]
fn invalid_options_and_custom_prompts_are_rejected() {
    let dir = root().join("tiny-e5v");
    let bad = EmbedderOptions::default().with_batch_size(0);
    assert!(matches!(
        e5v_core::Embedder::<B>::new(&dir, bad, &Default::default()),
        Err(Error::InvalidArgument(_))
    ));
    let e = embedder::<B>("tiny-e5v", EmbedderOptions::default());
    let err = e.embed(&[Input::custom(
        "<image> twice <image>",
        Some(root().join("images/grad_336x336.png").into()),
        None,
    )]);
    assert!(matches!(err, Err(Error::Prompt { .. })), "{err:?}");
    let err = e.embed(&[Input::custom("an <image> without one", None, None)]);
    assert!(matches!(err, Err(Error::InvalidArgument(_))), "{err:?}");
    // `<pad>` is an added token outside the embedding table.
    let err = e.embed(&[
        Input::text("fine"),
        Input::custom("raw <pad> prompt", None, None),
    ]);
    assert!(
        matches!(err, Err(Error::UnknownToken { index: 1, .. })),
        "{err:?}"
    );
}

#[test]
fn a_model_directory_without_tokenizer_fails_clearly() {
    let err = e5v_core::Embedder::<B>::new(
        root().join("images"),
        EmbedderOptions::default(),
        &Default::default(),
    )
    .expect_err("not a model");
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn a_tokenizer_of_another_model_is_a_mismatch_naming_the_file() {
    // The tiny tokenizer with more base tokens than the model has embeddings.
    let dir = tempfile::tempdir().expect("temp dir");
    let model = root().join("tiny-e5v");
    for file in ["config.json", "model.safetensors", "processor_config.json"] {
        std::fs::copy(model.join(file), dir.path().join(file)).expect("copy");
    }
    let text = std::fs::read_to_string(model.join("tokenizer.json")).expect("tokenizer");
    let mut tokenizer: serde_json::Value = serde_json::from_str(&text).expect("json");
    let vocab = tokenizer["model"]["vocab"]
        .as_object_mut()
        .expect("a BPE vocabulary");
    for i in 0..10 {
        vocab.insert(format!("extra{i}"), serde_json::json!(2000 + i));
    }
    std::fs::write(
        dir.path().join("tokenizer.json"),
        serde_json::to_string(&tokenizer).expect("json"),
    )
    .expect("write");
    let err =
        e5v_core::Embedder::<B>::new(dir.path(), EmbedderOptions::default(), &Default::default())
            .expect_err("vocabulary mismatch");
    assert!(matches!(err, Error::Mismatch(_)), "{err:?}");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

#[test]
fn non_finite_weights_fail_the_load_when_checked() {
    let model = root().join("tiny-e5v");
    let bytes = std::fs::read(model.join("model.safetensors")).expect("fixture");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("valid");
    let key = "language_model.model.norm.weight";
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    let norm = tensors.iter_mut().find(|t| t.0 == key).expect("tensor");
    norm.3[..4].copy_from_slice(&f32::INFINITY.to_le_bytes());
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["config.json", "tokenizer.json", "processor_config.json"] {
        std::fs::copy(model.join(name), dir.path().join(name)).expect("copy");
    }
    let views = tensors.iter().map(|(k, dtype, shape, data)| {
        let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), data);
        (k.clone(), view.expect("view"))
    });
    safetensors::serialize_to_file(views, None, &dir.path().join("model.safetensors"))
        .expect("write");
    // Off by default.
    e5v_core::Embedder::<B>::new(dir.path(), EmbedderOptions::default(), &Default::default())
        .expect("loads");
    let checked = EmbedderOptions::default().with_check_finite_weights(true);
    let err = e5v_core::Embedder::<B>::new(dir.path(), checked, &Default::default())
        .expect_err("an infinite weight");
    assert!(
        matches!(&err, Error::Model(e5v_core::ModelError::NonFinite { key: k, .. }) if k == key),
        "{err:?}"
    );
}

/// A LoRA adapter given at load time is merged: the vectors equal those of a checkpoint with
/// the adapter merged on disk (e5v-model's `merge_checkpoint`), and differ from the base's.
#[test]
fn a_lora_adapter_is_applied_at_load_time() {
    use burn::backend::NdArray;
    use e5v_core::{Embedder, EmbedderOptions, Input};
    use e5v_model::{LlavaNextConfig, Lora, lora::merge_checkpoint};

    let base_dir = crate::fixtures::root().join("tiny-e5v");
    let adapter = crate::fixtures::root().join("train/adapter");
    let device = Default::default();
    let config = LlavaNextConfig::from_file(base_dir.join("config.json")).expect("config");
    let lora = Lora::<NdArray>::load_peft(&adapter, &config.text, &device).expect("adapter");
    let merged_dir = tempfile::tempdir().expect("temp dir");
    let merged_dir = merged_dir.path().join("merged");
    merge_checkpoint(&base_dir, &lora, &merged_dir).expect("merges");
    let inputs = [
        Input::text("a dog on the beach"),
        Input::image(crate::fixtures::root().join("images/grad_480x640.png")),
    ];
    let embed = |dir: &std::path::Path, options: EmbedderOptions| {
        let embedder = Embedder::<NdArray>::new(dir, options, &device).expect("loads");
        embedder.embed(&inputs).expect("embeds")
    };
    let with_adapter = embed(
        &base_dir,
        EmbedderOptions::new().with_lora_adapter(&adapter),
    );
    let merged = embed(&merged_dir, EmbedderOptions::new());
    let base = embed(&base_dir, EmbedderOptions::new());
    for i in 0..inputs.len() {
        let row = |e: &e5v_core::Embeddings| e.get(i).expect("a row per input").to_vec();
        let (a, m, b) = (row(&with_adapter), row(&merged), row(&base));
        let diff = a
            .iter()
            .zip(&m)
            .fold(0f32, |d, (x, y)| d.max((x - y).abs()));
        assert!(
            diff < 1e-5,
            "input {i}: adapter at load vs merged checkpoint differ by {diff}"
        );
        assert!(
            crate::fixtures::cosine(&a, &b) < 0.99,
            "input {i}: the adapter changed nothing"
        );
    }
    let err = Embedder::<NdArray>::new(
        &base_dir,
        EmbedderOptions::new().with_lora_adapter(base_dir.join("missing")),
        &device,
    )
    .expect_err("no adapter there");
    assert!(err.to_string().contains("adapter_config.json"), "{err}");
}
