//! The one attention implementation, shared by the vision tower and the decoder.

use std::cell::OnceCell;

use burn::{
    module::Module,
    nn::Linear,
    tensor::{Bool, Int, Tensor, backend::Backend, module::attention, ops::AttentionModuleOptions},
};

use super::{linear, rope::RopeTables};
use crate::cpu;

/// Multi-head attention with optional grouped-query heads and RoPE.
///
/// The vision tower uses it with biases, no RoPE and no mask; the decoder without biases,
/// with RoPE and a causal/padding mask.
#[derive(Module, Debug)]
pub(crate) struct MultiHeadAttention<B: Backend> {
    pub q_proj: Linear<B>,
    pub k_proj: Linear<B>,
    pub v_proj: Linear<B>,
    pub o_proj: Linear<B>,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

impl<B: Backend> MultiHeadAttention<B> {
    /// # Shapes
    /// - x: `[batch, seq, hidden]` -> `[batch, seq, hidden]`
    /// - rope tables: `[batch, 1, seq, head_dim]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: Option<&RopeTables<B>>,
        mask: Option<&AttentionMask<B>>,
    ) -> Tensor<B, 3> {
        let [batch, seq, _] = x.dims();
        let q = linear(&self.q_proj, x.clone());
        let k = linear(&self.k_proj, x.clone());
        let v = linear(&self.v_proj, x);
        let fused = cpu::attention(
            (&q, &k, &v),
            (self.num_heads, self.num_kv_heads, self.head_dim),
            rope.map(RopeTables::cos_sin),
            || mask.map_or(Some(cpu::Visibility::ALL), AttentionMask::visibility),
        );
        if let Some(out) = fused {
            return linear(&self.o_proj, out);
        }
        let heads =
            |t: Tensor<B, 3>, n: usize| t.reshape([batch, seq, n, self.head_dim]).swap_dims(1, 2);
        let mut q = heads(q, self.num_heads);
        let mut k = heads(k, self.num_kv_heads);
        let v = heads(v, self.num_kv_heads);
        if let Some(rope) = rope {
            q = rope.apply(q);
            k = rope.apply(k);
        }
        let out = scaled_dot_product(q, k, v, mask);
        let out = out
            .swap_dims(1, 2)
            .reshape([batch, seq, self.num_heads * self.head_dim]);
        linear(&self.o_proj, out)
    }
}

/// softmax(q k^T / sqrt(d)) v through burn's fused kernel, with key/value heads repeated for
/// grouped-query attention.
///
/// # Shapes
/// - q: `[batch, heads, seq, d]`; k, v: `[batch, kv_heads, seq, d]` -> `[batch, heads, seq, d]`
pub(crate) fn scaled_dot_product<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Option<&AttentionMask<B>>,
) -> Tensor<B, 4> {
    let [batch, heads, seq, _] = q.dims();
    let mask = mask.map(|m| m.dense().clone().expand([batch, heads, seq, seq]));
    let (k, v) = (repeat_kv(k, heads), repeat_kv(v, heads));
    attention(q, k, v, mask, None, AttentionModuleOptions::default())
}

/// `[batch, kv_heads, seq, d]` -> `[batch, heads, seq, d]`, each kv head serving
/// `heads / kv_heads` consecutive query heads (HF `repeat_kv`).
fn repeat_kv<B: Backend>(x: Tensor<B, 4>, heads: usize) -> Tensor<B, 4> {
    let [batch, kv_heads, seq, d] = x.dims();
    if kv_heads == heads {
        return x;
    }
    x.unsqueeze_dim::<5>(2)
        .expand([batch, kv_heads, heads / kv_heads, seq, d])
        .reshape([batch, heads, seq, d])
}

/// Which keys each query may attend to: causal, never a padding key, and with a sliding
/// window `w` only keys at distance `< w` (HF: attend iff `q - w < k <= q`).
///
/// Built once per forward pass and shared by all layers; each path reads it in its own form
/// on first use (burn's attention a dense `[batch, 1, seq, seq]` tensor, the CPU kernel the
/// padding flags).
#[derive(Debug, Clone)]
pub(crate) struct AttentionMask<B: Backend> {
    valid: Tensor<B, 2, Bool>,
    sliding_window: Option<usize>,
    dense: OnceCell<Tensor<B, 4, Bool>>,
    host_valid: OnceCell<HostFlags>,
}

/// The padding flags read to the host.
#[derive(Debug, Clone)]
enum HostFlags {
    AllReal,
    Padded(Vec<bool>),
    Unreadable,
}

impl<B: Backend> AttentionMask<B> {
    /// # Shapes
    /// - valid: `[batch, seq]`, `true` for real tokens
    pub fn causal(valid: Tensor<B, 2, Bool>, sliding_window: Option<usize>) -> Self {
        Self {
            valid,
            sliding_window,
            dense: OnceCell::new(),
            host_valid: OnceCell::new(),
        }
    }

    /// `[batch, 1, seq, seq]`, `true` = masked.
    pub fn dense(&self) -> &Tensor<B, 4, Bool> {
        self.dense.get_or_init(|| {
            let [batch, seq] = self.valid.dims();
            let device = self.valid.device();
            let index = Tensor::<B, 1, Int>::arange(0..seq as i64, &device);
            let query = index.clone().reshape([seq, 1]).expand([seq, seq]);
            let key = index.reshape([1, seq]).expand([seq, seq]);
            let mut hidden = key.clone().greater(query.clone());
            if let Some(window) = self.sliding_window {
                hidden = hidden.bool_or((query - key).greater_equal_elem(window as i64));
            }
            let padding = self
                .valid
                .clone()
                .bool_not()
                .reshape([batch, 1, 1, seq])
                .expand([batch, 1, seq, seq]);
            let hidden = hidden
                .reshape([1, 1, seq, seq])
                .expand([batch, 1, seq, seq]);
            hidden.bool_or(padding)
        })
    }

    /// The mask as the CPU kernel takes it (reads the padding flags to the host once), or
    /// `None` if they cannot be read.
    pub fn visibility(&self) -> Option<cpu::Visibility<'_>> {
        let flags =
            self.host_valid
                .get_or_init(|| match self.valid.clone().into_data().to_vec::<bool>() {
                    Ok(flags) if flags.iter().all(|&v| v) => HostFlags::AllReal,
                    Ok(flags) => HostFlags::Padded(flags),
                    Err(_) => HostFlags::Unreadable,
                });
        let valid = match flags {
            HostFlags::AllReal => None,
            HostFlags::Padded(flags) => Some(flags.as_slice()),
            HostFlags::Unreadable => return None,
        };
        Some(cpu::Visibility {
            causal: true,
            window: self.sliding_window,
            valid,
        })
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor, TensorData, Tolerance, activation::softmax};

    use super::*;

    type B = burn::backend::NdArray<f32>;

    /// The plain definition, for checking the fused kernel.
    fn reference(
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        mask: Option<Tensor<B, 4, Bool>>,
    ) -> Tensor<B, 4> {
        let d = q.dims()[3] as f64;
        let mut scores = q.matmul(k.swap_dims(2, 3)) / d.sqrt();
        if let Some(mask) = mask {
            scores = scores.mask_fill(mask, f32::NEG_INFINITY);
        }
        softmax(scores, 3).matmul(v)
    }

    #[test]
    fn fused_attention_matches_the_definition_with_gqa_causal_and_padding() {
        let device = Default::default();
        let (batch, heads, kv_heads, seq, d) = (2, 4, 2, 5, 8);
        let q = Tensor::<B, 4>::random(
            [batch, heads, seq, d],
            Distribution::Normal(0., 2.),
            &device,
        );
        let k = Tensor::<B, 4>::random(
            [batch, kv_heads, seq, d],
            Distribution::Normal(0., 2.),
            &device,
        );
        let v = Tensor::<B, 4>::random(
            [batch, kv_heads, seq, d],
            Distribution::Normal(0., 1.),
            &device,
        );
        // Row 0 is full; row 1 has two padding tokens at the end.
        let valid = Tensor::<B, 2, Bool>::from_bool(
            TensorData::new(
                vec![true; 5]
                    .into_iter()
                    .chain([true, true, true, false, false])
                    .collect(),
                [2, 5],
            ),
            &device,
        );
        let mask = AttentionMask::causal(valid, None);
        let got = scaled_dot_product(q.clone(), k.clone(), v.clone(), Some(&mask));
        let expected = reference(
            q,
            repeat_kv(k, heads),
            repeat_kv(v, heads),
            Some(mask.dense().clone().expand([batch, heads, seq, seq])),
        );
        // Only the real tokens matter (padding queries see no padding keys either way).
        got.slice([0..2, 0..heads, 0..3, 0..d])
            .into_data()
            .assert_approx_eq::<f32>(
                &expected.slice([0..2, 0..heads, 0..3, 0..d]).into_data(),
                Tolerance::absolute(1e-5),
            );
    }

    #[test]
    fn causal_mask_hides_future_padding_and_far_keys() {
        let device = Default::default();
        let valid = Tensor::<B, 2, Bool>::from_bool(
            TensorData::new(vec![true, true, true, false], [1, 4]),
            &device,
        );
        let mask = AttentionMask::causal(valid, Some(2))
            .dense()
            .clone()
            .into_data();
        #[rustfmt::skip]
        let expected = [
            false, true,  true,  true,
            false, false, true,  true,
            true,  false, false, true,
            true,  true,  false, true,
        ];
        assert_eq!(mask.to_vec::<bool>().expect("bool data"), expected);
    }

    #[test]
    fn repeat_kv_follows_hf_order() {
        let device = Default::default();
        let x = Tensor::<B, 1, Int>::arange(0..2, &device)
            .float()
            .reshape([1, 2, 1, 1]);
        let got = repeat_kv(x, 4)
            .into_data()
            .to_vec::<f32>()
            .expect("f32 data");
        assert_eq!(got, [0.0, 0.0, 1.0, 1.0]);
    }
}
