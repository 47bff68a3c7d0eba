//! One optimizer step's gradient over a whole contrastive batch, in micro-batches that keep
//! every row's in-batch negatives (GradCache, Gao et al. 2021):
//!
//! 1. embed each micro-batch without a graph;
//! 2. compute the loss over all the embeddings, with them as leaves: their gradients;
//! 3. embed each micro-batch again with a graph and backpropagate its embeddings' gradients
//!    into the adapter, summing over micro-batches.
//!
//! The gradient is the full batch's, with at most one micro-batch's activations held at a
//! time. Dropout masks are replayed between the two passes: the backend's generator is seeded
//! with the same value before both embeddings of a micro-batch. The loss is computed in `f32`
//! whatever the base's dtype (as the reference casts the embeddings).

use burn::{
    module::AutodiffModule,
    optim::{GradientsAccumulator, GradientsParams},
    tensor::{
        DType, ElementConversion, Tensor,
        backend::{AutodiffBackend, Backend},
    },
};
use e5v_model::{Decoder, Lora};

use crate::{Result, loss::info_nce};

/// A training row as token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedTriplet {
    /// The anchor's prompt ids.
    pub anchor: Vec<u32>,
    /// The positive's prompt ids.
    pub positive: Vec<u32>,
    /// The hard negative's prompt ids.
    pub negative: Vec<u32>,
}

/// What one contrastive step computed.
pub struct StepGradients {
    /// The batch's loss (before the update).
    pub loss: f64,
    /// The adapter's gradients.
    pub grads: GradientsParams,
}

/// The loss and the adapter's gradients over `rows`, `micro_batch` rows per forward pass.
/// `seed(k)` seeds the dropout of micro-batch `k`.
pub fn contrastive_gradients<B: AutodiffBackend>(
    decoder: &Decoder<B>,
    lora: &Lora<B>,
    rows: &[EncodedTriplet],
    micro_batch: usize,
    temperature: f64,
    device: &B::Device,
    seed: impl Fn(usize) -> u64,
) -> Result<StepGradients> {
    let micro_batch = micro_batch.max(1);
    if rows.len() <= micro_batch {
        B::seed(device, seed(0));
        let reps = decoder
            .embed_texts(&sequences(rows), Some(lora))?
            .cast(DType::F32);
        let (a, p, n) = split(reps, rows.len());
        let loss = info_nce(a, p, Some(n), temperature);
        let value = loss.clone().into_scalar().elem::<f64>();
        let grads = GradientsParams::from_grads(loss.backward(), lora);
        return Ok(StepGradients { loss: value, grads });
    }
    let chunks: Vec<&[EncodedTriplet]> = rows.chunks(micro_batch).collect();
    // 1. Embeddings without a graph.
    let (inner_decoder, inner_lora) = (decoder.valid(), lora.valid());
    let mut leaves = Vec::with_capacity(chunks.len());
    for (k, chunk) in chunks.iter().enumerate() {
        B::seed(device, seed(k));
        let reps = inner_decoder
            .embed_texts(&sequences(chunk), Some(&inner_lora))?
            .cast(DType::F32);
        leaves.push(Tensor::<B, 2>::from_inner(reps).require_grad());
    }
    // 2. The loss over the whole batch, and its gradient at each embedding.
    let mut parts = (Vec::new(), Vec::new(), Vec::new());
    for (leaf, chunk) in leaves.iter().zip(&chunks) {
        let (a, p, n) = split(leaf.clone(), chunk.len());
        parts.0.push(a);
        parts.1.push(p);
        parts.2.push(n);
    }
    let loss = info_nce(
        Tensor::cat(parts.0, 0),
        Tensor::cat(parts.1, 0),
        Some(Tensor::cat(parts.2, 0)),
        temperature,
    );
    let value = loss.clone().into_scalar().elem::<f64>();
    let rep_grads = loss.backward();
    // 3. Each micro-batch again, with its graph, backpropagating those gradients.
    let mut accumulator = GradientsAccumulator::<Lora<B>>::new();
    for (k, (leaf, chunk)) in leaves.iter().zip(&chunks).enumerate() {
        let Some(upstream) = leaf.grad(&rep_grads) else {
            continue;
        };
        B::seed(device, seed(k));
        let reps = decoder
            .embed_texts(&sequences(chunk), Some(lora))?
            .cast(DType::F32);
        let surrogate = (reps * Tensor::from_inner(upstream)).sum();
        accumulator.accumulate(
            lora,
            GradientsParams::from_grads(surrogate.backward(), lora),
        );
    }
    Ok(StepGradients {
        loss: value,
        grads: accumulator.grads(),
    })
}

/// Anchors, then positives, then negatives: one forward pass embeds a whole micro-batch.
fn sequences(rows: &[EncodedTriplet]) -> Vec<Vec<u32>> {
    let column = |pick: fn(&EncodedTriplet) -> &Vec<u32>| rows.iter().map(move |r| pick(r).clone());
    column(|r| &r.anchor)
        .chain(column(|r| &r.positive))
        .chain(column(|r| &r.negative))
        .collect()
}

/// The `[3n, hidden]` embeddings of [`sequences`] as (anchors, positives, negatives).
fn split<B: Backend>(reps: Tensor<B, 2>, n: usize) -> (Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 2>) {
    let hidden = reps.dims()[1];
    let rows = |k: usize| reps.clone().slice([k * n..(k + 1) * n, 0..hidden]);
    (rows(0), rows(1), rows(2))
}
