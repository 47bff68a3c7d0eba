//! The committed reference fixtures (`fixtures/`, made by `fixtures/generate.py`).

use std::path::PathBuf;

use e5v_core::{Embedder, EmbedderOptions, ImagePipeline, Input};
use serde::Deserialize;

/// `fixtures/` of this checkout, or `E5V_FIXTURES` (the test binary copied to a GPU host by
/// scripts/device-check.sh runs far from the checkout it was built in).
pub fn root() -> PathBuf {
    std::env::var_os("E5V_FIXTURES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures"),
        PathBuf::from,
    )
}

#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub id: String,
    pub behaviour: String,
    pub kind: String,
    pub text: Option<String>,
    pub image: Option<String>,
    pub prompt: String,
    pub input_ids: Vec<u32>,
    pub seq_len: usize,
    pub image_tokens: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Batch {
    pub id: String,
    pub case_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct Cases {
    pub cases: Vec<Case>,
    pub batches: Vec<Batch>,
}

pub fn cases() -> Cases {
    let text = std::fs::read_to_string(root().join("reference/cases.json")).expect("cases.json");
    serde_json::from_str(&text).expect("valid cases.json")
}

impl Case {
    /// The input this case embeds. Custom cases hold the raw prompt given to the processor.
    pub fn input(&self) -> Input {
        let image = self.image.as_ref().map(|p| root().join(p).into());
        match (self.kind.as_str(), image) {
            ("text", _) => Input::text(self.text.clone().expect("text case")),
            ("image", Some(image)) => Input::Image(image),
            ("composed", Some(image)) => Input::composed(image, self.text.clone().expect("text")),
            ("custom", image) => Input::custom(self.prompt.clone(), image, self.text.clone()),
            (kind, _) => panic!("unknown case kind {kind}"),
        }
    }

    /// The checkpoint and image behaviour the reference used.
    pub fn setup(&self) -> (&'static str, ImagePipeline) {
        match self.behaviour.as_str() {
            "transformers" => ("tiny-e5v", ImagePipeline::Transformers),
            _ => ("tiny-e5v-4x", ImagePipeline::Transformers441),
        }
    }
}

/// The reference pooled vector of a case (not normalised).
pub fn reference(key: &str) -> Vec<f32> {
    let bytes = std::fs::read(root().join("reference/tensors.safetensors")).expect("tensors");
    let file = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let view = file
        .tensor(key)
        .unwrap_or_else(|_| panic!("no reference tensor {key}"));
    view.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

pub fn embedder<B: burn::tensor::backend::Backend>(
    dir: &str,
    options: EmbedderOptions,
) -> Embedder<B> {
    Embedder::new(root().join(dir), options, &Default::default()).expect("fixture loads")
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
