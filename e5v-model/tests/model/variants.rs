//! Parity of the two decoder variants E5-V itself does not use, against transformers 5.x
//! (`fixtures/generate_variants.py`):
//!
//! - `tiny-llava-mistral`: a LLaVA-NeXT-Mistral decoder with `sliding_window` 8, on a 29- and a
//!   63-token text and a 1580-token image sequence (`grad_499x300`, 1560 image tokens);
//! - `tiny-e5v-llama3-rope`: a Llama decoder with `llama3` rope scaling (factor 8, low 1, high 4,
//!   original context 64, so 7 of the 8 frequencies of a 16-wide head change), on 29, 63 and
//!   233 tokens.
//!
//! The generator checks that each feature matters: the same weights without the window / the
//! scaling move the hidden states by 3.3-4.6 (max |diff|). Tolerance as in `parity.rs`.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use e5v_model::{DecoderFamily, ImagePipeline, LlavaNextConfig};
use serde::Deserialize;

use crate::fixtures::{cosine, decode, ids, load, max_abs_diff, reference_tensor, root};

const TOLERANCE: f32 = 5e-5;
const MISTRAL: &str = "tiny-llava-mistral";
const LLAMA3: &str = "tiny-e5v-llama3-rope";

#[derive(Debug, Deserialize)]
struct VariantCase {
    id: String,
    model: String,
    kind: String,
    input_ids: Vec<u32>,
    seq_len: usize,
    image_tokens: Option<usize>,
    image_size: Option<[u32; 2]>,
    /// `tensors.safetensors:<key>` of the image input.
    pixel_values: Option<String>,
    /// Positions of `{id}.hidden_rows` (image case).
    hidden_rows: Option<Vec<usize>>,
}

#[derive(Debug, Deserialize)]
struct Variants {
    cases: Vec<VariantCase>,
}

fn variant_cases(model: &str, kind: &str) -> Vec<VariantCase> {
    let text = std::fs::read_to_string(root().join("reference/variants.json"))
        .expect("reference/variants.json");
    let cases: Vec<_> = serde_json::from_str::<Variants>(&text)
        .expect("valid variants.json")
        .cases
        .into_iter()
        .filter(|c| c.model == model && c.kind == kind)
        .collect();
    assert!(!cases.is_empty(), "no {kind} case for {model}");
    cases
}

/// A tensor of `reference/variants.safetensors`.
fn variant_tensor<B: Backend, const D: usize>(key: &str, device: &B::Device) -> Tensor<B, D> {
    let bytes = std::fs::read(root().join("reference/variants.safetensors")).expect("tensors");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let view = file
        .tensor(key)
        .unwrap_or_else(|_| panic!("no variant tensor {key}"));
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Tensor::from_data(TensorData::new(values, view.shape().to_vec()), device)
}

#[test]
fn configs_parse_as_expected() {
    let mistral = LlavaNextConfig::from_file(root().join(MISTRAL).join("config.json"))
        .expect("mistral config");
    assert_eq!(mistral.text.family, DecoderFamily::Mistral);
    assert_eq!(mistral.text.sliding_window, Some(8));
    assert_eq!(mistral.text.rope.theta, 1e6);
    assert_eq!(mistral.text.rope.llama3_scaling, None);
    assert_eq!((mistral.text.num_heads, mistral.text.num_kv_heads), (4, 2));
    assert_eq!(mistral.text.head_dim, 16);

    let llama = LlavaNextConfig::from_file(root().join(LLAMA3).join("config.json"))
        .expect("llama3-rope config");
    assert_eq!(llama.text.family, DecoderFamily::Llama);
    assert_eq!(llama.text.sliding_window, None);
    assert_eq!(llama.text.rope.theta, 500000.0);
    assert_eq!(llama.text.head_dim, 16);
    let scaling = llama.text.rope.llama3_scaling.expect("llama3 rope scaling");
    assert_eq!(
        (
            scaling.factor,
            scaling.low_freq_factor,
            scaling.high_freq_factor,
            scaling.original_max_position_embeddings
        ),
        (8.0, 1.0, 4.0, 64)
    );
}

fn text_hidden_states_match<B: Backend>(dir: &str) {
    let device = Default::default();
    let model = load::<B>(dir);
    for case in variant_cases(dir, "text") {
        assert_eq!(case.input_ids.len(), case.seq_len);
        let states = decode(&model, model.decoder().embed(ids(&case.input_ids, &device)));
        let expected = variant_tensor::<B, 2>(&format!("{}.hidden", case.id), &device);
        let diff = max_abs_diff(states, expected);
        eprintln!(
            "{dir} {} ({} tokens) hidden: {diff:e}",
            case.id, case.seq_len
        );
        assert!(diff < TOLERANCE, "{dir} {}: max |diff| {diff}", case.id);
    }
}

fn mistral_sliding_window_text_matches<B: Backend>() {
    text_hidden_states_match::<B>(MISTRAL);
}

fn llama3_rope_text_matches<B: Backend>() {
    text_hidden_states_match::<B>(LLAMA3);
}

/// CLIP + projector + transformers-5.x anyres packing + splice + the windowed decoder. With a
/// window of 8 and 2 layers the last token sees only the last 15 positions (text), so rows
/// inside the image span are compared as well.
fn mistral_sliding_window_image_matches<B: Backend>() {
    let device = Default::default();
    let model = load::<B>(MISTRAL);
    for case in variant_cases(MISTRAL, "image") {
        let key = case
            .pixel_values
            .as_deref()
            .and_then(|p| p.strip_prefix("tensors.safetensors:"))
            .expect("pixel values in tensors.safetensors");
        let pixels = reference_tensor::<B, 4>(key, &device);
        let features = model.image_features(pixels);
        let [h, w] = case.image_size.expect("image case");
        let packed = model
            .pack_image(features, (h, w), ImagePipeline::Transformers)
            .expect("packs");
        assert_eq!(
            Some(packed.dims()[0]),
            case.image_tokens,
            "{} image tokens",
            case.id
        );
        let at = case
            .input_ids
            .iter()
            .position(|&t| t == model.config().image_token_id)
            .expect("image token");
        let before = model.decoder().embed(ids(&case.input_ids[..at], &device));
        let after = model
            .decoder()
            .embed(ids(&case.input_ids[at + 1..], &device));
        let sequence = Tensor::cat(vec![before, packed, after], 0);
        assert_eq!(sequence.dims()[0], case.seq_len);
        let states = decode(&model, sequence);

        let rows = case.hidden_rows.as_ref().expect("hidden rows");
        let index: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
        let index = Tensor::<B, 1, Int>::from_data(TensorData::new(index, [rows.len()]), &device);
        let expected = variant_tensor::<B, 2>(&format!("{}.hidden_rows", case.id), &device);
        let diff = max_abs_diff(states.clone().select(0, index), expected);
        eprintln!(
            "{} ({} tokens, {} rows) hidden rows: {diff:e}",
            case.id,
            case.seq_len,
            rows.len()
        );
        assert!(
            diff < TOLERANCE,
            "{} hidden rows: max |diff| {diff}",
            case.id
        );

        let [seq, hidden] = states.dims();
        let pooled: Vec<f32> = states
            .slice([seq - 1..seq, 0..hidden])
            .into_data()
            .to_vec()
            .expect("f32");
        let expected: Vec<f32> = variant_tensor::<B, 1>(&format!("{}.embedding", case.id), &device)
            .into_data()
            .to_vec()
            .expect("f32");
        let cos = cosine(&pooled, &expected);
        eprintln!("{}: cosine {cos}", case.id);
        assert!(cos > 0.99999, "{}: cosine {cos}", case.id);
    }
}

on_backends!(
    mistral_sliding_window_text_matches,
    mistral_sliding_window_image_matches,
    llama3_rope_text_matches
);
