//! Fused multi-head attention on projected q, k, v, as the model lays them out
//! (`[batch, seq, heads * head_dim]`): RoPE, grouped-query heads, the causal / padding /
//! sliding-window mask and an exact streaming softmax, without a `[seq, seq]` score matrix,
//! a repeated key/value head or a mask tensor.
//!
//! Keys are prepared once (RoPE, f32, transposed into panels of [`KB`] keys); then every block
//! of 8 query rows of every head walks the key blocks it may see, keeping a running row
//! maximum and sum (the online softmax) and an f32 output accumulator. Score and value
//! products run on the GEMM microkernel.

#![allow(unsafe_op_in_unsafe_fn)]

use rayon::prelude::*;

use super::{
    gemm::{NR, Tile, tile_update},
    simd::{Float, Isa, Kernel, Simd, written},
};

/// Keys per block (the width of a score tile: two runs of 3 AVX-512 vectors).
const KB: usize = 96;
/// Query rows per block (the microkernel's broadcast rows).
const QB: usize = NR;
/// Widest head this kernel takes.
pub(crate) const MAX_HEAD_DIM: usize = 256;
/// Head widths are multiples of this (whole vectors on every instruction set).
pub(crate) const HEAD_DIM_MULTIPLE: usize = 16;

/// Which keys a query sees.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Visibility<'a> {
    /// Only keys at or before the query.
    pub causal: bool,
    /// With `causal`, only keys less than this far back (`q - w < k <= q`).
    pub window: Option<usize>,
    /// `[batch, seq]`: `false` keys are never seen.
    pub valid: Option<&'a [bool]>,
}

impl Visibility<'_> {
    /// Every query sees every key (the vision tower).
    pub const ALL: Self = Self {
        causal: false,
        window: None,
        valid: None,
    };
}

/// One attention call.
pub(crate) struct Attention<'a, T> {
    /// `[batch, seq, heads * head_dim]`.
    pub q: &'a [T],
    /// `[batch, seq, kv_heads * head_dim]` (each key/value head serves `heads / kv_heads`
    /// consecutive query heads).
    pub k: &'a [T],
    pub v: &'a [T],
    /// cos and sin of the rotary embedding, `[batch, seq, head_dim]` (HF's `rotate_half`).
    pub rope: Option<(&'a [T], &'a [T])>,
    pub visibility: Visibility<'a>,
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl<T: Float> Attention<'_, T> {
    /// `softmax(q kᵀ / sqrt(d) + mask) v`, `[batch, seq, heads * head_dim]`.
    ///
    /// # Panics
    /// If a slice is shorter than its shape or the head shapes are inconsistent (a bug of the
    /// caller).
    pub fn run(&self) -> Vec<T> {
        self.run_on(Isa::detected())
    }

    /// [`Self::run`] with the vectors of `isa` (which the CPU supports).
    pub(super) fn run_on(&self, isa: Isa) -> Vec<T> {
        let len = self.batch * self.seq * self.heads * self.head_dim;
        // SAFETY: every (batch, position, head) row is written by its query block.
        unsafe { written(len, |out| self.run_into(isa, out.as_mut_ptr().cast())) }
    }

    fn run_into(&self, isa: Isa, out: *mut T) {
        let (b, s, h, kvh, d) = (
            self.batch,
            self.seq,
            self.heads,
            self.kv_heads,
            self.head_dim,
        );
        assert!(
            kvh > 0 && h % kvh == 0 && d % HEAD_DIM_MULTIPLE == 0 && d > 0 && d <= MAX_HEAD_DIM
        );
        assert!(self.q.len() >= b * s * h * d);
        assert!(self.k.len() >= b * s * kvh * d && self.v.len() >= b * s * kvh * d);
        assert!(
            self.rope
                .is_none_or(|(c, sn)| c.len() >= b * s * d && sn.len() >= b * s * d)
        );
        assert!(self.visibility.valid.is_none_or(|v| v.len() >= b * s));
        if b * s == 0 {
            return;
        }
        let keys = Keys::prepare(self, isa);
        let blocks = s.div_ceil(QB);
        let out = OutRows(out);
        let buffers = || Buffers {
            q: vec![0.0; QB * d],
            acc: vec![0.0; QB * d],
            scores: vec![0.0; QB * KB],
        };
        (0..b * h * blocks)
            .into_par_iter()
            .for_each_init(buffers, |buffers, item| {
                let (batch, rest) = (item / (h * blocks), item % (h * blocks));
                isa.run(QueryBlock {
                    job: self,
                    keys: &keys,
                    batch,
                    head: rest / blocks,
                    row0: (rest % blocks) * QB,
                    out: &out,
                    buffers,
                })
            });
    }

    /// The `head_dim` values of one head at one position (`src`) times `scale`, as f32, with
    /// RoPE at table row `rope_at` (`batch * seq + position`) if given. RoPE as HF applies it:
    /// `x * cos + rotate_half(x) * sin`, `rotate_half([a, b]) = [-b, a]`.
    #[inline(always)]
    unsafe fn row<S: Simd>(&self, src: &[T], rope_at: Option<usize>, scale: f32, dst: &mut [f32]) {
        let (d, l) = (self.head_dim, S::LANES);
        let (src, out) = (src[..d].as_ptr(), dst[..d].as_mut_ptr());
        let (Some((cos, sin)), Some(at)) = (self.rope, rope_at) else {
            for i in (0..d).step_by(l) {
                S::store(
                    out.add(i),
                    S::mul(T::load::<S>(src.add(i)), S::splat(scale)),
                );
            }
            return;
        };
        let (cos, sin) = (cos[at * d..].as_ptr(), sin[at * d..].as_ptr());
        let half = d / 2;
        if half % l == 0 {
            for i in (0..half).step_by(l) {
                let (a, b) = (T::load::<S>(src.add(i)), T::load::<S>(src.add(half + i)));
                let (c0, s0) = (T::load::<S>(cos.add(i)), T::load::<S>(sin.add(i)));
                let (c1, s1) = (
                    T::load::<S>(cos.add(half + i)),
                    T::load::<S>(sin.add(half + i)),
                );
                let lo = S::sub(S::mul(a, c0), S::mul(b, s0));
                let hi = S::add(S::mul(b, c1), S::mul(a, s1));
                S::store(out.add(i), S::mul(lo, S::splat(scale)));
                S::store(out.add(half + i), S::mul(hi, S::splat(scale)));
            }
            return;
        }
        for i in 0..d {
            let rotated = if i < half {
                -(*src.add(i + half)).to_f32()
            } else {
                (*src.add(i - half)).to_f32()
            };
            let x = (*src.add(i)).to_f32();
            *out.add(i) = (x * (*cos.add(i)).to_f32() + rotated * (*sin.add(i)).to_f32()) * scale;
        }
    }

    /// The values of head `head` (of `heads`) at `position` of sequence `batch` in `x`.
    fn head_of<'x>(
        &self,
        x: &'x [T],
        heads: usize,
        batch: usize,
        position: usize,
        head: usize,
    ) -> &'x [T] {
        let d = self.head_dim;
        &x[((batch * self.seq + position) * heads + head) * d..][..d]
    }

    /// Whether queries `row0..=last` of sequence `batch` all see keys `k0..k0 + keys`.
    fn all_visible(&self, batch: usize, row0: usize, k0: usize, keys: usize, last: usize) -> bool {
        let v = &self.visibility;
        let (first_key, last_key) = (k0, k0 + keys - 1);
        if v.causal && (last_key > row0 || v.window.is_some_and(|w| last >= first_key + w)) {
            return false;
        }
        v.valid.is_none_or(|valid| {
            let at = batch * self.seq;
            valid[at + first_key..=at + last_key].iter().all(|&ok| ok)
        })
    }

    /// Whether query `q` of sequence `batch` sees key `k`.
    fn sees(&self, batch: usize, q: usize, k: usize) -> bool {
        let v = &self.visibility;
        if v.causal && (k > q || v.window.is_some_and(|w| q >= k + w)) {
            return false;
        }
        v.valid.is_none_or(|valid| valid[batch * self.seq + k])
    }
}

/// Keys and values in f32: keys with RoPE, transposed into `[d][KB]` panels per key block;
/// values as rows.
struct Keys {
    /// `[batch][kv_heads][key blocks][d][KB]`.
    k: Vec<f32>,
    /// `[batch][kv_heads][seq][d]`.
    v: Vec<f32>,
}

impl Keys {
    fn prepare<T: Float>(job: &Attention<'_, T>, isa: Isa) -> Self {
        let (s, kvh, d) = (job.seq, job.kv_heads, job.head_dim);
        let per_head_k = s.div_ceil(KB) * d * KB;
        // The last block's keys past the sequence stay zero (their scores are masked).
        let mut k = vec![0.0f32; job.batch * kvh * per_head_k];
        let mut v = vec![0.0f32; job.batch * kvh * s * d];
        k.par_chunks_mut(per_head_k)
            .zip(v.par_chunks_mut(s * d))
            .enumerate()
            .for_each(|(item, (k, v))| {
                isa.run(PrepareHead {
                    job,
                    batch: item / kvh,
                    head: item % kvh,
                    k,
                    v,
                })
            });
        Self { k, v }
    }
}

/// One key/value head of one sequence, into [`Keys`]' layout.
struct PrepareHead<'a, 'b, T> {
    job: &'a Attention<'b, T>,
    batch: usize,
    head: usize,
    k: &'a mut [f32],
    v: &'a mut [f32],
}

impl<T: Float> Kernel for PrepareHead<'_, '_, T> {
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        let Self {
            job,
            batch,
            head,
            k,
            v,
        } = self;
        let (s, kvh, d) = (job.seq, job.kv_heads, job.head_dim);
        let mut row = [0.0f32; MAX_HEAD_DIM];
        for pos in 0..s {
            let key = job.head_of(job.k, kvh, batch, pos, head);
            job.row::<S>(key, Some(batch * s + pos), 1.0, &mut row);
            let panel = &mut k[(pos / KB) * d * KB..];
            for (i, x) in row[..d].iter().enumerate() {
                panel[i * KB + pos % KB] = *x;
            }
            let value = job.head_of(job.v, kvh, batch, pos, head);
            job.row::<S>(value, None, 1.0, &mut v[pos * d..]);
        }
    }
}

/// The output, written by several threads at disjoint rows and heads.
struct OutRows<T>(*mut T);
// SAFETY: each query block writes only its own rows of its own head.
unsafe impl<T: Send> Sync for OutRows<T> {}

/// Up to 8 query rows of one head against every key they see.
struct QueryBlock<'a, 'b, T> {
    job: &'a Attention<'b, T>,
    keys: &'a Keys,
    batch: usize,
    head: usize,
    row0: usize,
    out: &'a OutRows<T>,
    buffers: &'a mut Buffers,
}

/// A query block's working memory, reused by the blocks one task runs.
struct Buffers {
    /// Queries with RoPE, scaled, `[QB][d]`.
    q: Vec<f32>,
    /// The output rows, `[QB][d]`.
    acc: Vec<f32>,
    /// Scores, then weights, of a key block, `[QB][KB]`.
    scores: Vec<f32>,
}

impl<T: Float> Kernel for QueryBlock<'_, '_, T> {
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        let QueryBlock {
            job,
            keys: prepared,
            batch,
            head,
            row0,
            out,
            buffers: Buffers { q, acc, scores },
        } = self;
        let (s, d, kvh) = (job.seq, job.head_dim, job.kv_heads);
        let rows = QB.min(s - row0);
        let kv_head = head / (job.heads / kvh);
        let scale = 1.0 / (d as f32).sqrt();
        // Rows past the sequence are zero.
        for r in 0..QB {
            let row = &mut q[r * d..(r + 1) * d];
            if r < rows {
                let query = job.head_of(job.q, job.heads, batch, row0 + r, head);
                job.row::<S>(query, Some(batch * s + row0 + r), scale, row);
            } else {
                row.fill(0.0);
            }
        }
        acc.fill(0.0);
        let mut max = [f32::NEG_INFINITY; QB];
        let mut sum = [0.0f32; QB];
        let head_k = &prepared.k[(batch * kvh + kv_head) * s.div_ceil(KB) * d * KB..];
        let head_v = &prepared.v[(batch * kvh + kv_head) * s * d..];
        let last = row0 + rows - 1;
        let (first_block, end_block) = match (job.visibility.causal, job.visibility.window) {
            (true, Some(w)) => (row0.saturating_sub(w - 1) / KB, last / KB + 1),
            (true, None) => (0, last / KB + 1),
            (false, _) => (0, s.div_ceil(KB)),
        };
        for block in first_block..end_block {
            let k0 = block * KB;
            let keys = KB.min(s - k0);
            // scores = q kᵀ over d, in pieces the microkernel's vectors divide.
            scores.fill(0.0);
            let panel = head_k[block * d * KB..].as_ptr();
            let tile = Tile {
                ptr: scores.as_mut_ptr(),
                stride: KB,
            };
            score_tile::<S>(d, q.as_ptr(), d, panel, tile);
            // Mask (only blocks that cut through the visible region), then the online
            // softmax update of each row.
            let masked = keys < KB || !job.all_visible(batch, row0, k0, keys, last);
            let hidden = |r: usize, j: usize| j >= keys || !job.sees(batch, row0 + r, k0 + j);
            if masked {
                for r in 0..rows {
                    for (j, score) in scores[r * KB..(r + 1) * KB].iter_mut().enumerate() {
                        if hidden(r, j) {
                            *score = f32::NEG_INFINITY;
                        }
                    }
                }
            }
            let mut new_max = [f32::NEG_INFINITY; QB];
            let mut shift = [0.0f32; 16];
            for r in 0..rows {
                new_max[r] = max[r].max(row_max::<S>(&scores[r * KB..(r + 1) * KB]));
                shift[r] = max[r] - new_max[r];
            }
            // The running sums and outputs scale by e^(old max - new max), all rows at once.
            let mut correction = [0.0f32; 16];
            for at in (0..QB).step_by(S::LANES) {
                S::store(
                    correction.as_mut_ptr().add(at),
                    S::exp(S::load(shift.as_ptr().add(at))),
                );
            }
            for r in 0..rows {
                let row = &mut scores[r * KB..(r + 1) * KB];
                if new_max[r] == f32::NEG_INFINITY {
                    row.fill(0.0);
                    continue;
                }
                let correction = if max[r] == f32::NEG_INFINITY {
                    0.0
                } else {
                    correction[r]
                };
                exp_shifted::<S>(row, new_max[r]);
                if masked {
                    // e^(-inf - max) rounds to a tiny normal, not 0: masked weights are exactly 0.
                    for (j, p) in row.iter_mut().enumerate() {
                        if hidden(r, j) {
                            *p = 0.0;
                        }
                    }
                }
                sum[r] = sum[r] * correction + row_sum::<S>(row);
                max[r] = new_max[r];
                if correction != 1.0 {
                    acc[r * d..(r + 1) * d]
                        .iter_mut()
                        .for_each(|a| *a *= correction);
                }
            }
            for r in rows..QB {
                scores[r * KB..(r + 1) * KB].fill(0.0);
            }
            // acc += p v over the block's keys.
            let values = head_v[k0 * d..].as_ptr();
            value_tile::<S>(keys, scores.as_ptr(), values, d, acc.as_mut_ptr());
        }
        for (r, total) in sum.iter().enumerate().take(rows) {
            let pos = row0 + r;
            let at = (batch * s + pos) * job.heads * d + head * d;
            let dst = out.0.add(at);
            let inv = S::splat(if *total > 0.0 { 1.0 / total } else { 0.0 });
            for i in (0..d).step_by(S::LANES) {
                T::store::<S>(
                    dst.add(i),
                    S::mul(S::load(acc.as_ptr().add(r * d + i)), inv),
                );
            }
        }
    }
}

/// `tile[8][KB] += q[8][d] (rows ldq apart) x panel[d][KB]`.
#[inline(always)]
unsafe fn score_tile<S: Simd>(d: usize, q: *const f32, ldq: usize, panel: *const f32, tile: Tile) {
    let mut c0 = 0;
    while c0 < KB {
        let v = vectors::<S>(KB - c0);
        let tile = Tile {
            ptr: tile.ptr.add(c0),
            stride: tile.stride,
        };
        let panel = panel.add(c0);
        match v {
            3 => tile_update::<S, 3>(d, (q, ldq, 1), panel, KB, tile),
            2 => tile_update::<S, 2>(d, (q, ldq, 1), panel, KB, tile),
            _ => tile_update::<S, 1>(d, (q, ldq, 1), panel, KB, tile),
        }
        c0 += v * S::LANES;
    }
}

/// `acc[8][d] += p[8][keys] (rows KB apart) x values[keys][d]`.
#[inline(always)]
unsafe fn value_tile<S: Simd>(
    keys: usize,
    p: *const f32,
    values: *const f32,
    d: usize,
    acc: *mut f32,
) {
    let mut c0 = 0;
    while c0 < d {
        let v = vectors::<S>(d - c0);
        let tile = Tile {
            ptr: acc.add(c0),
            stride: d,
        };
        let values = values.add(c0);
        match v {
            3 => tile_update::<S, 3>(keys, (p, KB, 1), values, d, tile),
            2 => tile_update::<S, 2>(keys, (p, KB, 1), values, d, tile),
            _ => tile_update::<S, 1>(keys, (p, KB, 1), values, d, tile),
        }
        c0 += v * S::LANES;
    }
}

/// Vectors for the next run of `width` columns (a multiple of the lanes): up to 3 where the
/// registers hold 3 x 8 accumulators.
#[inline(always)]
fn vectors<S: Simd>(width: usize) -> usize {
    let max = if S::LANES >= 16 { 3 } else { 1 };
    max.min(width / S::LANES).max(1)
}

#[inline(always)]
unsafe fn row_max<S: Simd>(row: &[f32]) -> f32 {
    let mut m = S::splat(f32::NEG_INFINITY);
    for chunk in row.chunks_exact(S::LANES) {
        m = S::max(m, S::load(chunk.as_ptr()));
    }
    S::max_lane(m)
}

#[inline(always)]
unsafe fn row_sum<S: Simd>(row: &[f32]) -> f32 {
    let mut total = S::splat(0.0);
    for chunk in row.chunks_exact(S::LANES) {
        total = S::add(total, S::load(chunk.as_ptr()));
    }
    S::sum(total)
}

/// `row[j] = e^(row[j] - shift)`.
#[inline(always)]
unsafe fn exp_shifted<S: Simd>(row: &mut [f32], shift: f32) {
    for chunk in row.chunks_exact_mut(S::LANES) {
        let x = S::sub(S::load(chunk.as_ptr()), S::splat(shift));
        S::store(chunk.as_mut_ptr(), S::exp(x));
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::f16;

    use super::*;
    use crate::cpu::test_util::{Lcg, assert_close};

    /// One head's values at one position, with RoPE if the job has tables, in f64.
    fn rotated<T: Float>(
        job: &Attention<'_, T>,
        x: &[T],
        heads: usize,
        batch: usize,
        pos: usize,
        head: usize,
        rope: bool,
    ) -> Vec<f64> {
        let d = job.head_dim;
        let x: Vec<f64> = job
            .head_of(x, heads, batch, pos, head)
            .iter()
            .map(|v| f64::from(v.to_f32()))
            .collect();
        let Some((cos, sin)) = job.rope.filter(|_| rope) else {
            return x;
        };
        let at = (batch * job.seq + pos) * d;
        (0..d)
            .map(|i| {
                let rotated = if i < d / 2 {
                    -x[i + d / 2]
                } else {
                    x[i - d / 2]
                };
                x[i] * f64::from(cos[at + i].to_f32()) + rotated * f64::from(sin[at + i].to_f32())
            })
            .collect()
    }

    /// The definition, in f64, one (batch, head, query) at a time.
    fn reference<T: Float>(job: &Attention<'_, T>) -> Vec<f32> {
        let (b, s, h, d) = (job.batch, job.seq, job.heads, job.head_dim);
        let mut out = vec![0.0; b * s * h * d];
        for batch in 0..b {
            for head in 0..h {
                let kv = head / (h / job.kv_heads);
                for i in 0..s {
                    let q = rotated(job, job.q, h, batch, i, head, true);
                    let mut weights = vec![0.0f64; s];
                    for (j, w) in weights.iter_mut().enumerate() {
                        let k = rotated(job, job.k, job.kv_heads, batch, j, kv, true);
                        let dot: f64 = q.iter().zip(&k).map(|(a, b)| a * b).sum();
                        *w = if job.sees(batch, i, j) {
                            dot / (d as f64).sqrt()
                        } else {
                            f64::NEG_INFINITY
                        };
                    }
                    let max = weights.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    if max == f64::NEG_INFINITY {
                        continue;
                    }
                    weights.iter_mut().for_each(|w| *w = (*w - max).exp());
                    let total: f64 = weights.iter().sum();
                    for c in 0..d {
                        let value: f64 = (0..s)
                            .map(|j| {
                                weights[j]
                                    * rotated(job, job.v, job.kv_heads, batch, j, kv, false)[c]
                            })
                            .sum();
                        out[(batch * s + i) * h * d + head * d + c] = (value / total) as f32;
                    }
                }
            }
        }
        out
    }

    /// `(batch, seq, heads, kv_heads, head_dim)`
    type Shape = (usize, usize, usize, usize, usize);

    fn check<T: Float>(shape: Shape, visibility: Visibility<'_>, rope: bool, tolerance: f32) {
        let (batch, seq, heads, kv_heads, d) = shape;
        let mut rng = Lcg::new((seq * 13 + d) as u64);
        let q: Vec<T> = rng.floats(batch * seq * heads * d);
        let k: Vec<T> = rng.floats(batch * seq * kv_heads * d);
        let v: Vec<T> = rng.floats(batch * seq * kv_heads * d);
        let angles: Vec<f32> = (0..batch * seq * d)
            .map(|i| ((i / d) % seq) as f32 * 0.3 / (1 + i % (d / 2)) as f32)
            .collect();
        let cos: Vec<T> = angles.iter().map(|a| T::from_f32(a.cos())).collect();
        let sin: Vec<T> = angles.iter().map(|a| T::from_f32(a.sin())).collect();
        let job = Attention {
            q: &q,
            k: &k,
            v: &v,
            rope: rope.then_some((cos.as_slice(), sin.as_slice())),
            visibility,
            batch,
            seq,
            heads,
            kv_heads,
            head_dim: d,
        };
        let want = reference(&job);
        for isa in Isa::available() {
            let got: Vec<f32> = job.run_on(isa).iter().map(|x| x.to_f32()).collect();
            let what = format!("{isa:?} {batch}x{seq} {heads}/{kv_heads}x{d} {visibility:?}");
            assert_close(&got, &want, tolerance, &what);
        }
    }

    #[test]
    fn matches_the_definition_with_gqa_rope_causal_padding_and_window() {
        let open = Visibility {
            causal: false,
            window: None,
            valid: None,
        };
        let causal = Visibility {
            causal: true,
            ..open
        };
        // Sequence lengths straddle the query (8) and key (96) blocks.
        for seq in [1, 7, 9, 50, 97] {
            check::<f32>((1, seq, 4, 2, 16), causal, true, 2e-6);
            check::<f32>((2, seq, 2, 2, 64), open, false, 2e-6);
        }
        // Right padding: the second sequence has 3 real tokens of 60.
        let valid: Vec<bool> = (0..120).map(|i| i < 60 || i - 60 < 3).collect();
        check::<f32>(
            (2, 60, 4, 1, 128),
            Visibility {
                valid: Some(&valid),
                ..causal
            },
            true,
            2e-6,
        );
        // Mistral's sliding window, narrower than a key block and wider than one.
        for w in [5, 70] {
            check::<f32>(
                (1, 130, 2, 1, 32),
                Visibility {
                    window: Some(w),
                    ..causal
                },
                true,
                2e-6,
            );
        }
        check::<f16>((1, 70, 4, 2, 64), causal, true, 2e-3);
    }
}
