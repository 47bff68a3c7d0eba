//! The one attention implementation, shared by the vision tower and the decoder.

use std::{cell::OnceCell, ops::Range};

use burn::{
    module::Module,
    nn::Linear,
    tensor::{Bool, Int, Tensor, backend::Backend},
};

use super::{adapted, matmul, rope::RopeTables};
use crate::{LoraTarget, cpu, lora::LayerAdapters};

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
    ///
    /// `lora`: the decoder layer's adapters, whose q, k, v and o updates are added.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: Option<&RopeTables<B>>,
        mask: Option<&AttentionMask<B>>,
        budget: AttentionBudget,
        lora: Option<&LayerAdapters<'_, B>>,
    ) -> Tensor<B, 3> {
        let [batch, seq, _] = x.dims();
        let q = adapted(&self.q_proj, x.clone(), lora, LoraTarget::QProj);
        let k = adapted(&self.k_proj, x.clone(), lora, LoraTarget::KProj);
        let v = adapted(&self.v_proj, x, lora, LoraTarget::VProj);
        let fused = cpu::attention(
            (&q, &k, &v),
            (self.num_heads, self.num_kv_heads, self.head_dim),
            rope.map(RopeTables::cos_sin),
            || mask.map_or(Some(cpu::Visibility::ALL), AttentionMask::visibility),
        );
        if let Some(out) = fused {
            return adapted(&self.o_proj, out, lora, LoraTarget::OProj);
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
        let out = scaled_dot_product(q, k, v, mask, budget);
        let out = out
            .swap_dims(1, 2)
            .reshape([batch, seq, self.num_heads * self.head_dim]);
        adapted(&self.o_proj, out, lora, LoraTarget::OProj)
    }
}

/// The most bytes one block of attention scores may take: the bound on attention's largest
/// intermediate on backends without the fused CPU kernel.
///
/// The default suits any device; GPU backends with a buffer-binding limit (wgpu: 128 MiB on
/// some adapters) need a budget of at most half that limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionBudget(usize);

impl AttentionBudget {
    /// 256 MiB: one block covers a whole E5-V image (32 heads x 2.9k tokens x 2.9k keys in
    /// f32 is 1.1 GB, so five query blocks).
    pub const DEFAULT: Self = Self(256 << 20);

    /// A budget of `bytes` (at least one score per batch row and head is always allowed).
    pub const fn bytes(bytes: usize) -> Self {
        Self(bytes)
    }

    /// The budget in bytes.
    pub const fn get(self) -> usize {
        self.0
    }

    /// Query and key block lengths whose scores, `[batch, heads, q_block, k_block]` elements
    /// of `elem` bytes, fit the budget: whole rows of keys when at least [`MIN_QUERY_BLOCK`]
    /// of them fit (one softmax pass), else [`MIN_QUERY_BLOCK`] queries (fewer if even that
    /// many single keys do not fit) and as many keys as fit.
    pub(crate) fn blocks(
        self,
        batch_heads: usize,
        q_len: usize,
        k_len: usize,
        elem: usize,
    ) -> (usize, usize) {
        let per_score = (batch_heads * elem).max(1);
        let scores = (self.0 / per_score).max(1);
        let rows = scores / k_len.max(1);
        if rows >= q_len.min(MIN_QUERY_BLOCK) {
            return (rows.min(q_len).max(1), k_len);
        }
        let q_block = q_len.min(MIN_QUERY_BLOCK).min(scores).max(1);
        (q_block, (scores / q_block).clamp(1, k_len.max(1)))
    }
}

impl Default for AttentionBudget {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Fewest queries per block before keys are split instead (keeps matmuls wide enough).
pub(crate) const MIN_QUERY_BLOCK: usize = 64;

/// softmax(q k^T / sqrt(d) + mask) v, one block of queries and keys at a time: an exact
/// streaming softmax (running maximum, rescaled sums) whose largest intermediate is one block
/// of scores within `budget`. Causal blocks skip the keys after their last query and before
/// the window of their first; masks are built per block from positions.
///
/// Rows that see no key at all (only padding queries past a sliding window can) come out as
/// zeros, never NaN, so padding never poisons real tokens through `p @ v`.
///
/// # Shapes
/// - q: `[batch, heads, seq, d]`; k, v: `[batch, kv_heads, seq, d]` -> `[batch, heads, seq, d]`
pub(crate) fn scaled_dot_product<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Option<&AttentionMask<B>>,
    budget: AttentionBudget,
) -> Tensor<B, 4> {
    let [batch, heads, seq, d] = q.dims();
    let (k, v) = (repeat_kv(k, heads), repeat_kv(v, heads));
    let scale = 1.0 / (d as f64).sqrt();
    let elem = q.dtype().size();
    let (q_block, k_block) = budget.blocks(batch * heads, seq, seq, elem);
    let finfo = q.dtype().finfo();
    let (min, tiny) = finfo.map_or((f64::from(f32::MIN), f64::from(f32::MIN_POSITIVE)), |f| {
        (f.min, f.min_positive)
    });
    let blocks: Vec<Tensor<B, 4>> = (0..seq)
        .step_by(q_block)
        .map(|q0| {
            let queries = q0..(q0 + q_block).min(seq);
            let q = q.clone().slice([0..batch, 0..heads, queries.clone(), 0..d]);
            let keys = mask.map_or(0..seq, |m| m.visible_keys(queries.clone()));
            let mut state: Option<(Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>)> = None;
            for k0 in keys.clone().step_by(k_block) {
                let key_range = k0..(k0 + k_block).min(keys.end);
                let hidden = match mask {
                    Some(m) => match m.block(queries.clone(), key_range.clone()) {
                        BlockMask::AllHidden => continue,
                        BlockMask::AllVisible => None,
                        BlockMask::Partly(hidden) => Some(hidden),
                    },
                    None => None,
                };
                let k = k
                    .clone()
                    .slice([0..batch, 0..heads, key_range.clone(), 0..d]);
                let v = v
                    .clone()
                    .slice([0..batch, 0..heads, key_range.clone(), 0..d]);
                let mut scores = matmul(q.clone(), k.swap_dims(2, 3)) * scale;
                if let Some(hidden) = hidden {
                    let [_, _, qn, kn] = scores.dims();
                    scores =
                        scores.mask_fill(hidden.expand([batch, heads, qn, kn]), f32::NEG_INFINITY);
                }
                // A row with every key hidden keeps a finite maximum: exp gives zeros, not NaN.
                let max = scores.clone().max_dim(3).clamp_min(min);
                let p = (scores - max.clone()).exp();
                let sum = p.clone().sum_dim(3);
                let out = matmul(p, v);
                state = Some(match state {
                    None => (max, sum, out),
                    Some((run_max, run_sum, run_out)) => {
                        let new_max = run_max.clone().max_pair(max.clone());
                        let (old, now) = (
                            (run_max - new_max.clone()).exp(),
                            (max - new_max.clone()).exp(),
                        );
                        (
                            new_max,
                            run_sum * old.clone() + sum * now.clone(),
                            run_out * old + out * now,
                        )
                    }
                });
            }
            match state {
                Some((_, sum, out)) => out / sum.clamp_min(tiny),
                None => q.zeros_like(),
            }
        })
        .collect();
    Tensor::cat(blocks, 2)
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
/// Built once per forward pass and shared by all layers. It is never expanded to a
/// `[seq, seq]` tensor: the blocked attention asks for one block at a time, the CPU kernel
/// takes the padding flags (both read to the host once, on first use).
#[derive(Debug, Clone)]
pub(crate) struct AttentionMask<B: Backend> {
    valid: Tensor<B, 2, Bool>,
    sliding_window: Option<usize>,
    host_valid: OnceCell<HostFlags>,
}

/// The padding flags read to the host.
#[derive(Debug, Clone)]
enum HostFlags {
    AllReal,
    Padded(Vec<bool>),
    Unreadable,
}

/// What a mask says about one block of queries and keys.
pub(crate) enum BlockMask<B: Backend> {
    /// Every query of the block sees every key.
    AllVisible,
    /// No query of the block sees any key.
    AllHidden,
    /// `[batch, 1, queries, keys]`, `true` = hidden.
    Partly(Tensor<B, 4, Bool>),
}

impl<B: Backend> AttentionMask<B> {
    /// # Shapes
    /// - valid: `[batch, seq]`, `true` for real tokens
    pub fn causal(valid: Tensor<B, 2, Bool>, sliding_window: Option<usize>) -> Self {
        Self {
            valid,
            sliding_window,
            host_valid: OnceCell::new(),
        }
    }

    /// The keys any of `queries` may see, padding aside: from the start of the first
    /// query's window to the last query.
    pub fn visible_keys(&self, queries: Range<usize>) -> Range<usize> {
        let first = self
            .sliding_window
            .map_or(0, |w| (queries.start + 1).saturating_sub(w));
        first..queries.end
    }

    /// The mask of one block of query and key positions.
    pub fn block(&self, queries: Range<usize>, keys: Range<usize>) -> BlockMask<B> {
        let (first_query, last_query) = (queries.start, queries.end.saturating_sub(1));
        let (first_key, last_key) = (keys.start, keys.end.saturating_sub(1));
        let window = self.sliding_window;
        if first_key > last_query || window.is_some_and(|w| first_query >= last_key + w) {
            return BlockMask::AllHidden;
        }
        let structural =
            last_key > first_query || window.is_some_and(|w| last_query - first_key >= w);
        let [batch, seq] = self.valid.dims();
        let (any_padding, all_padding) = match self.host_flags() {
            HostFlags::AllReal => (false, false),
            HostFlags::Padded(flags) => {
                let padding = flags
                    .chunks_exact(seq)
                    .flat_map(|row| &row[keys.clone()])
                    .filter(|&&real| !real)
                    .count();
                (padding > 0, padding == batch * keys.len())
            }
            HostFlags::Unreadable => (true, false),
        };
        if all_padding {
            return BlockMask::AllHidden;
        }
        if !structural && !any_padding {
            return BlockMask::AllVisible;
        }
        let (rows, cols) = (queries.len(), keys.len());
        let device = self.valid.device();
        let position =
            |r: Range<usize>| Tensor::<B, 1, Int>::arange(r.start as i64..r.end as i64, &device);
        let query = position(queries).reshape([rows, 1]).expand([rows, cols]);
        let key = position(keys.clone())
            .reshape([1, cols])
            .expand([rows, cols]);
        let mut hidden = key.clone().greater(query.clone());
        if let Some(window) = window {
            hidden = hidden.bool_or((query - key).greater_equal_elem(window as i64));
        }
        let mut hidden = hidden
            .reshape([1, 1, rows, cols])
            .expand([batch, 1, rows, cols]);
        if any_padding {
            let padding = self
                .valid
                .clone()
                .slice([0..batch, keys])
                .bool_not()
                .reshape([batch, 1, 1, cols])
                .expand([batch, 1, rows, cols]);
            hidden = hidden.bool_or(padding);
        }
        BlockMask::Partly(hidden)
    }

    /// The mask as the CPU kernel takes it (reads the padding flags to the host once), or
    /// `None` if they cannot be read.
    pub fn visibility(&self) -> Option<cpu::Visibility<'_>> {
        let valid = match self.host_flags() {
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

    fn host_flags(&self) -> &HostFlags {
        self.host_valid
            .get_or_init(|| match self.valid.clone().into_data().to_vec::<bool>() {
                Ok(flags) if flags.iter().all(|&v| v) => HostFlags::AllReal,
                Ok(flags) => HostFlags::Padded(flags),
                Err(_) => HostFlags::Unreadable,
            })
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor, TensorData, Tolerance, activation::softmax};

    use super::*;

    type B = burn::backend::NdArray<f32>;

    /// The plain definition: dense scores, `-inf` where hidden, softmax, `@ v`.
    fn reference(
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        hidden: Option<Tensor<B, 4, Bool>>,
    ) -> Tensor<B, 4> {
        let d = q.dims()[3] as f64;
        let mut scores = q.matmul(k.swap_dims(2, 3)) / d.sqrt();
        if let Some(hidden) = hidden {
            scores = scores.mask_fill(hidden, f32::NEG_INFINITY);
        }
        softmax(scores, 3).matmul(v)
    }

    /// The mask by its definition, `[batch, 1, seq, seq]`, `true` = hidden.
    fn dense_mask(lengths: &[usize], seq: usize, window: Option<usize>) -> Tensor<B, 4, Bool> {
        let hidden: Vec<bool> = lengths
            .iter()
            .flat_map(|&len| {
                (0..seq).flat_map(move |q| {
                    (0..seq).map(move |k| k > q || k >= len || window.is_some_and(|w| q >= k + w))
                })
            })
            .collect();
        Tensor::from_bool(
            TensorData::new(hidden, [lengths.len(), 1, seq, seq]),
            &Default::default(),
        )
    }

    fn valid(lengths: &[usize], seq: usize) -> Tensor<B, 2, Bool> {
        let flags = lengths
            .iter()
            .flat_map(|&len| (0..seq).map(move |i| i < len))
            .collect();
        Tensor::from_bool(
            TensorData::new(flags, [lengths.len(), seq]),
            &Default::default(),
        )
    }

    fn random(shape: [usize; 4], std: f64) -> Tensor<B, 4> {
        Tensor::random(shape, Distribution::Normal(0., std), &Default::default())
    }

    /// Real query rows of `got` and `expected` agree; no row of `got` is NaN.
    fn assert_real_rows_match(got: Tensor<B, 4>, expected: Tensor<B, 4>, lengths: &[usize]) {
        let [_, heads, _, d] = got.dims();
        let all = got.clone().into_data().to_vec::<f32>().expect("f32 data");
        assert!(all.iter().all(|x| x.is_finite()), "non-finite output");
        for (row, &len) in lengths.iter().enumerate() {
            let pick =
                |t: Tensor<B, 4>| t.slice([row..row + 1, 0..heads, 0..len, 0..d]).into_data();
            pick(got.clone())
                .assert_approx_eq::<f32>(&pick(expected.clone()), Tolerance::absolute(1e-5));
        }
    }

    /// Budgets from one block down to single keys, with GQA, causal masking, right padding
    /// and a sliding window: the blocked streaming softmax equals the definition.
    #[test]
    fn blocked_attention_matches_the_definition_at_every_block_size() {
        let (heads, kv_heads, seq, d) = (4, 2, 11, 8);
        let lengths = [11, 7];
        let q = random([2, heads, seq, d], 2.);
        let k = random([2, kv_heads, seq, d], 2.);
        let v = random([2, kv_heads, seq, d], 1.);
        let scores = |n: usize| AttentionBudget::bytes(n * 2 * heads * 4);
        for window in [None, Some(3)] {
            let mask = AttentionMask::causal(valid(&lengths, seq), window);
            let dense = dense_mask(&lengths, seq, window).expand([2, heads, seq, seq]);
            let expected = reference(
                q.clone(),
                repeat_kv(k.clone(), heads),
                repeat_kv(v.clone(), heads),
                Some(dense),
            );
            for budget in [
                AttentionBudget::DEFAULT,
                scores(seq * 5),
                scores(6),
                scores(1),
            ] {
                let got = scaled_dot_product(q.clone(), k.clone(), v.clone(), Some(&mask), budget);
                assert_real_rows_match(got, expected.clone(), &lengths);
            }
        }
    }

    /// Without a mask (the vision tower) every query sees every key, in any blocking.
    #[test]
    fn blocked_attention_without_a_mask_matches_the_definition() {
        let (heads, seq, d) = (3, 9, 4);
        let (q, k, v) = (
            random([2, heads, seq, d], 2.),
            random([2, heads, seq, d], 2.),
            random([2, heads, seq, d], 1.),
        );
        let expected = reference(q.clone(), k.clone(), v.clone(), None);
        for budget in [
            AttentionBudget::DEFAULT,
            AttentionBudget::bytes(2 * heads * 4 * 5),
        ] {
            let got = scaled_dot_product(q.clone(), k.clone(), v.clone(), None, budget);
            got.into_data()
                .assert_approx_eq::<f32>(&expected.clone().into_data(), Tolerance::absolute(1e-5));
        }
    }

    /// A padding query past the window sees no key: zeros, not NaN (which `p @ v` would carry
    /// into real rows of the next layer).
    #[test]
    fn a_query_that_sees_nothing_gets_zeros() {
        let (seq, d) = (6, 4);
        let mask = AttentionMask::causal(valid(&[2], seq), Some(2));
        let q = random([1, 1, seq, d], 1.);
        let (k, v) = (random([1, 1, seq, d], 1.), random([1, 1, seq, d], 1.));
        for budget in [AttentionBudget::DEFAULT, AttentionBudget::bytes(4)] {
            let got = scaled_dot_product(q.clone(), k.clone(), v.clone(), Some(&mask), budget);
            let rows = got.into_data().to_vec::<f32>().expect("f32 data");
            assert!(rows.iter().all(|x| x.is_finite()));
            // Query 5 (padding) may see keys 4 and 5, both padding.
            assert_eq!(&rows[5 * d..], &[0.0; 4]);
        }
    }

    #[test]
    fn blocks_fit_the_budget_and_prefer_whole_key_rows() {
        // E5-V's decoder on one image in f32: 32 heads, ~2.9k tokens.
        let (q, k) = AttentionBudget::DEFAULT.blocks(32, 2900, 2900, 4);
        assert_eq!(k, 2900);
        assert!(32 * q * k * 4 <= AttentionBudget::DEFAULT.get());
        assert!(q >= MIN_QUERY_BLOCK);
        // Small sequences are one block.
        assert_eq!(AttentionBudget::DEFAULT.blocks(8, 100, 100, 4), (100, 100));
        // A tight budget splits keys once queries are at the minimum.
        let budget = AttentionBudget::bytes(1 << 20);
        let (q, k) = budget.blocks(64, 100_000, 100_000, 2);
        assert_eq!(q, MIN_QUERY_BLOCK);
        assert!(64 * q * k * 2 <= budget.get() && k >= 1);
        // Never below one score per batch row and head.
        assert_eq!(AttentionBudget::bytes(0).blocks(4, 10, 10, 4), (1, 1));
    }

    #[test]
    fn block_masks_follow_causality_padding_and_the_window() {
        let mask = AttentionMask::causal(valid(&[3], 4), Some(2));
        assert_eq!(mask.visible_keys(2..4), 1..4);
        assert!(matches!(mask.block(0..2, 2..4), BlockMask::AllHidden));
        assert!(matches!(mask.block(3..4, 0..2), BlockMask::AllHidden));
        let BlockMask::Partly(hidden) = mask.block(0..4, 0..4) else {
            panic!("a partly hidden block");
        };
        let hidden = hidden.into_data().to_vec::<bool>().expect("bool data");
        let expected = dense_mask(&[3], 4, Some(2))
            .into_data()
            .to_vec::<bool>()
            .expect("bool data");
        assert_eq!(hidden, expected);
        let unpadded = AttentionMask::causal(valid(&[4], 4), None);
        assert!(matches!(unpadded.block(2..4, 0..2), BlockMask::AllVisible));
    }

    /// E5-V's decoder at its real sequence length and head count (32 query and 8 key heads
    /// over ~2.9k tokens, where dense f32 scores take 1.1 GB), at a reduced head width:
    /// blocked attention within the default budget (five query blocks) equals the fused CPU
    /// kernel, which holds no scores at all.
    #[cfg(feature = "flex")]
    #[test]
    fn attention_at_e5v_length_and_heads_matches_the_cpu_kernel() {
        type F = burn::backend::Flex;
        let (heads, kv_heads, seq, d) = (32, 8, 2900, 16);
        let q = random([1, heads, seq, d], 1.);
        let k = random([1, kv_heads, seq, d], 1.);
        let v = random([1, kv_heads, seq, d], 1.);
        let (q_block, _) = AttentionBudget::DEFAULT.blocks(heads, seq, seq, 4);
        assert_eq!(seq.div_ceil(q_block), 5);
        let mask = AttentionMask::causal(valid(&[seq], seq), None);
        let blocked = scaled_dot_product(
            q.clone(),
            k.clone(),
            v.clone(),
            Some(&mask),
            AttentionBudget::DEFAULT,
        );
        // The CPU kernel takes `[batch, seq, heads * d]`, as the projections come.
        let flat = |t: Tensor<B, 4>| {
            let [b, h, s, d] = t.dims();
            Tensor::<F, 3>::from_data(
                t.swap_dims(1, 2).reshape([b, s, h * d]).into_data(),
                &Default::default(),
            )
        };
        let fused = cpu::attention(
            (&flat(q), &flat(k), &flat(v)),
            (heads, kv_heads, d),
            None,
            || {
                Some(cpu::Visibility {
                    causal: true,
                    window: None,
                    valid: None,
                })
            },
        )
        .expect("the CPU kernel takes flex tensors");
        let blocked = blocked
            .swap_dims(1, 2)
            .reshape([1, seq, heads * d])
            .into_data();
        blocked.assert_approx_eq::<f32>(&fused.into_data(), Tolerance::absolute(1e-5));
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
