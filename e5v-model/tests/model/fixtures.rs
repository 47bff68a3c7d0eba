//! Reading the committed reference fixtures.

use std::path::PathBuf;

use burn::tensor::{Bool, DType, Int, Tensor, TensorData, backend::Backend};
use e5v_model::LlavaNext;
use serde::Deserialize;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

#[derive(Debug, Deserialize)]
pub struct Case {
    pub id: String,
    pub input_ids: Vec<u32>,
    pub seq_len: usize,
    pub image_tokens: Option<usize>,
    pub image_size: Option<[u32; 2]>,
}

#[derive(Debug, Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

pub fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(root().join("reference/cases.json")).expect("cases.json");
    serde_json::from_str::<Cases>(&text)
        .expect("valid cases.json")
        .cases
}

pub fn case(id: &str) -> Case {
    cases()
        .into_iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no case {id}"))
}

/// A reference tensor as (shape, f32 values).
pub fn reference(key: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(root().join("reference/tensors.safetensors")).expect("tensors");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let view = file
        .tensor(key)
        .unwrap_or_else(|_| panic!("no reference tensor {key}"));
    let values = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (view.shape().to_vec(), values)
}

pub fn reference_tensor<B: Backend, const D: usize>(key: &str, device: &B::Device) -> Tensor<B, D> {
    let (shape, values) = reference(key);
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Largest absolute difference, after checking the shapes agree.
pub fn max_abs_diff<B: Backend, const D: usize>(got: Tensor<B, D>, expected: Tensor<B, D>) -> f32 {
    assert_eq!(got.dims(), expected.dims(), "shapes differ");
    (got - expected).abs().max().into_scalar().elem()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

use burn::tensor::ElementConversion;

pub fn load<B: Backend>(dir: &str) -> LlavaNext<B> {
    LlavaNext::load(root().join(dir), &Default::default(), DType::F32).expect("fixture loads")
}

pub fn ids<B: Backend>(ids: &[u32], device: &B::Device) -> Tensor<B, 1, Int> {
    let ids: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
    let n = ids.len();
    Tensor::from_data(TensorData::new(ids, [n]), device)
}

/// Runs the decoder on one sequence of embeddings and returns all final hidden states.
pub fn decode<B: Backend>(model: &LlavaNext<B>, embeddings: Tensor<B, 2>) -> Tensor<B, 2> {
    let device = embeddings.device();
    let [seq, hidden] = embeddings.dims();
    let valid =
        Tensor::<B, 2, Bool>::from_bool(TensorData::new(vec![true; seq], [1, seq]), &device);
    let positions = Tensor::<B, 1, Int>::arange(0..seq as i64, &device).reshape([1, seq]);
    model
        .decoder()
        .forward(embeddings.unsqueeze(), valid, positions)
        .reshape([seq, hidden])
}
