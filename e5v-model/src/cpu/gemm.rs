//! `out = act(a · wᵀ + bias)` with the weight in PyTorch's `[out, in]` layout, as every linear
//! layer of the model computes it.
//!
//! The weight is read in the layout it was loaded in (never copied whole): small pieces of it
//! are converted to f32 in cache, and their values broadcast against vectors of a transposed
//! panel of `a`. The microkernel keeps an 8 (weight rows) x `NV` vectors (rows of `a`) tile
//! of `out` in registers; 8 x 3 on AVX-512 keeps 24 accumulators and needs 11 loads per 24
//! FMAs.
//!
//! Two loop orders, by how much of `a` there is:
//! - **stream** (at most [`STREAM_ROWS`] rows of `a`, a text or two, packed in at most
//!   [`STREAM_A_BYTES`]): every weight row is read from memory once, in order, and converted
//!   to f32 in 128-value pieces that stay in L1 while all of `a` (packed once) uses them;
//! - **blocked** (images, batches): `a` in blocks of [`MC`] rows x [`KC`], the weight in
//!   chunks of [`NC`] rows converted once per block, each `a` panel kept in L1 across a chunk.
//!
//! Threads split the weight rows (`out`'s columns) evenly; all arithmetic is f32 and the
//! result is rounded once to the tensor's type.

#![allow(unsafe_op_in_unsafe_fn)]

use std::cell::RefCell;

use rayon::prelude::*;

use super::{
    activation,
    simd::{Float, Isa, Kernel, Simd, written},
};
use crate::nn::Activation;

/// Rows of the microkernel's tile: weight rows in a product, query rows in attention.
pub(super) const NR: usize = 8;
/// Depth of one pass over the weight (a multiple of every `LANES`).
const KC: usize = 128;
/// Rows of `a` per block in the blocked order.
const MC: usize = 512;
/// Weight rows converted at once in the blocked order (256 KB of f32 at `KC`).
const NC: usize = 512;
/// Most rows of `a` (padded) for which the stream order is used...
const STREAM_ROWS: usize = 96;
/// ... and most bytes of packed `a` (it is read once per 8 weight rows: it stays in L2).
const STREAM_A_BYTES: usize = 1 << 20;

/// A matrix product to run: `out[m][n] = act(Σ_k a[m][k] w[n][k] + bias[n])`.
pub(crate) struct Linear<'a, T> {
    /// `[m, k]`, row-major.
    pub a: &'a [T],
    /// `[n, k]`, row-major (PyTorch's `nn.Linear` weight).
    pub w: &'a [T],
    /// `[n]`.
    pub bias: Option<&'a [T]>,
    pub act: Option<Activation>,
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

impl<T: Float> Linear<'_, T> {
    /// The product (`[m, n]`, row-major), computed on all of rayon's threads.
    ///
    /// # Panics
    /// If a slice is shorter than its shape (a bug of the caller).
    pub fn run(&self) -> Vec<T> {
        self.run_on(Isa::detected())
    }

    /// [`Self::run`] with the vectors of `isa` (which the CPU supports).
    pub(super) fn run_on(&self, isa: Isa) -> Vec<T> {
        let (m, k, n) = (self.m, self.k, self.n);
        assert!(self.a.len() >= m * k && self.w.len() >= n * k);
        assert!(self.bias.is_none_or(|b| b.len() >= n));
        // SAFETY: the workers write every element (each its columns of every row).
        unsafe { written(m * n, |out| self.run_into(isa, out.as_mut_ptr().cast())) }
    }

    fn run_into(&self, isa: Isa, out: *mut T) {
        let (m, n) = (self.m, self.n);
        if m == 0 || n == 0 {
            return;
        }
        // Each thread takes a whole number of NR-row blocks of the weight.
        let nr = NR;
        let threads = rayon::current_num_threads().max(1);
        let per_thread = n.div_ceil(nr).div_ceil(threads) * nr;
        let out = SharedOut(out);
        (0..n.div_ceil(per_thread)).into_par_iter().for_each(|t| {
            let n0 = t * per_thread;
            let cols = per_thread.min(n - n0);
            SCRATCH.with_borrow_mut(|scratch| {
                isa.run(Worker {
                    job: self,
                    n0,
                    cols,
                    out: &out,
                    scratch,
                })
            })
        });
    }
}

/// `out`, written by several threads at disjoint columns.
struct SharedOut<T>(*mut T);
// SAFETY: threads write disjoint elements (`Worker` writes only its own columns).
unsafe impl<T: Send> Sync for SharedOut<T> {}

/// Per-thread buffers, kept between calls so that steady-state runs do not allocate.
#[derive(Default)]
struct Scratch {
    /// Transposed panels of `a`.
    a: Vec<f32>,
    /// Pieces of the weight as f32, in a [`WeightLayout`].
    w: Vec<f32>,
    /// Output tiles being accumulated.
    c: Vec<f32>,
}

impl Scratch {
    /// The three buffers, grown to at least these lengths.
    fn buffers(&mut self, a: usize, w: usize, c: usize) -> (*mut f32, *mut f32, *mut f32) {
        for (buffer, len) in [(&mut self.a, a), (&mut self.w, w), (&mut self.c, c)] {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
        }
        (
            self.a.as_mut_ptr(),
            self.w.as_mut_ptr(),
            self.c.as_mut_ptr(),
        )
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// `(k0, kc)`: the blocks of [`KC`] columns (the last one shorter) covering `0..k`.
fn depth_blocks(k: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..k).step_by(KC).map(move |k0| (k0, KC.min(k - k0)))
}

/// One thread's share: columns `n0..n0 + cols` of `out`.
struct Worker<'a, 'b, T> {
    job: &'a Linear<'b, T>,
    n0: usize,
    cols: usize,
    out: &'a SharedOut<T>,
    scratch: &'a mut Scratch,
}

impl<T: Float> Kernel for Worker<'_, '_, T> {
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        // 8 x 3 vectors where registers allow (AVX-512: 24 accumulators of 32), else 8 x 1.
        if S::LANES >= 16 {
            self.run_with::<S, 3>()
        } else {
            self.run_with::<S, 1>()
        }
    }
}

impl<T: Float> Worker<'_, '_, T> {
    #[inline(always)]
    unsafe fn run_with<S: Simd, const NV: usize>(self) {
        let job = self.job;
        let l = S::LANES;
        let mpad = job.m.div_ceil(l) * l;
        if mpad <= STREAM_ROWS && mpad * job.k * size_of::<f32>() <= STREAM_A_BYTES {
            self.stream::<S, NV>(mpad)
        } else {
            self.blocked::<S, NV>(mpad)
        }
    }

    /// Small `a`: all of it packed once; each weight row block read once, in order.
    #[inline(always)]
    unsafe fn stream<S: Simd, const NV: usize>(self, mpad: usize) {
        let Self {
            job,
            n0,
            cols,
            out,
            scratch,
        } = self;
        let nr = NR;
        let panels = Panels::new::<S, NV>(mpad);
        let (a, w, c) = scratch.buffers(mpad * job.k, nr * KC, nr * mpad);
        for (k0, kc) in depth_blocks(job.k) {
            pack_a::<S, T>(job, 0, &panels, k0, kc, a.add(k0 * mpad));
        }
        let tiles = Tiles {
            base: c,
            blocks: 1,
            panels: &panels,
        };
        let mut c0 = 0;
        while c0 < cols {
            let rows = nr.min(cols - c0);
            init_tiles::<S, T>(job, n0 + c0, rows, &tiles, 0);
            for (k0, kc) in depth_blocks(job.k) {
                convert_w::<S, T>(job, n0 + c0, nr, rows, k0, kc, WeightLayout::Rows, w);
                for p in 0..panels.count {
                    let panel = a.add(k0 * mpad + p * panels.width * kc);
                    let w = (w.cast_const(), WeightLayout::Rows);
                    kernel::<S, NV>(kc, w, panel, tiles.at(0, p), panels.vectors(p));
                }
            }
            epilogue::<S, T>(job, 0, n0 + c0, rows, &tiles, 0, out);
            c0 += rows;
        }
    }

    /// Large `a`: blocks of MC rows of `a` and NC rows of the weight, KC deep.
    #[inline(always)]
    unsafe fn blocked<S: Simd, const NV: usize>(self, mpad: usize) {
        let Self {
            job,
            n0,
            cols,
            out,
            scratch,
        } = self;
        let nr = NR;
        let mc_max = MC.min(mpad);
        let nc_max = NC.min(cols.div_ceil(nr) * nr);
        let (a, w, c) = scratch.buffers(mc_max * KC, nc_max * KC, nc_max * mc_max);
        let mut m0 = 0;
        while m0 < mpad {
            let panels = Panels::new::<S, NV>(MC.min(mpad - m0));
            let mut c0 = 0;
            while c0 < cols {
                let nc = NC.min(cols - c0);
                let blocks = nc.div_ceil(nr);
                let rows_of = |b: usize| nr.min(nc - b * nr);
                let tiles = Tiles {
                    base: c,
                    blocks,
                    panels: &panels,
                };
                for b in 0..blocks {
                    init_tiles::<S, T>(job, n0 + c0 + b * nr, rows_of(b), &tiles, b);
                }
                for (k0, kc) in depth_blocks(job.k) {
                    pack_a::<S, T>(job, m0, &panels, k0, kc, a);
                    for b in 0..blocks {
                        let (row, dst) = (n0 + c0 + b * nr, w.add(b * nr * KC));
                        let layout = WeightLayout::Interleaved;
                        convert_w::<S, T>(job, row, nr, rows_of(b), k0, kc, layout, dst);
                    }
                    for p in 0..panels.count {
                        let panel = a.add(p * panels.width * kc);
                        for b in 0..blocks {
                            let w = (w.add(b * nr * KC).cast_const(), WeightLayout::Interleaved);
                            kernel::<S, NV>(kc, w, panel, tiles.at(b, p), panels.vectors(p));
                        }
                    }
                }
                for b in 0..blocks {
                    epilogue::<S, T>(job, m0, n0 + c0 + b * nr, rows_of(b), &tiles, b, out);
                }
                c0 += nc;
            }
            m0 += panels.rows;
        }
    }
}

/// How a block of `rows` rows of `a` (a multiple of LANES) is cut into panels of up to
/// `NV` vectors.
struct Panels {
    rows: usize,
    width: usize,
    count: usize,
    lanes: usize,
}

impl Panels {
    fn new<S: Simd, const NV: usize>(rows: usize) -> Self {
        let width = NV * S::LANES;
        Self {
            rows,
            width,
            count: rows.div_ceil(width),
            lanes: S::LANES,
        }
    }

    /// Rows of panel `p` (the last one may be narrower).
    fn rows_of(&self, p: usize) -> usize {
        self.width.min(self.rows - p * self.width)
    }

    /// Vectors across panel `p`.
    fn vectors(&self, p: usize) -> usize {
        self.rows_of(p) / self.lanes
    }
}

/// Where the accumulators of weight block `b` x panel `p` (`[8][rows_of(p)]`) live: panel by
/// panel, so that the microkernel walks consecutive tiles of one panel in memory order.
struct Tiles<'a> {
    base: *mut f32,
    blocks: usize,
    panels: &'a Panels,
}

impl Tiles<'_> {
    fn at(&self, b: usize, p: usize) -> *mut f32 {
        let panel = p * self.blocks * 8 * self.panels.width;
        // SAFETY: the scratch holds `blocks` x 8 x `rows` values.
        unsafe { self.base.add(panel + b * 8 * self.panels.rows_of(p)) }
    }
}

/// Packs rows `m0..m0 + panels.rows` of `a`, columns `k0..k0 + kc`, transposed: panel `p` at
/// `dst + p * width * kc` is `[kc][rows_of(p)]` (rows past `m` are zero). Eight rows at a
/// time, by 8 x 8 transposes (from `a` itself when it is f32, else from f32 staging).
#[inline(always)]
unsafe fn pack_a<S: Simd, T: Float>(
    job: &Linear<'_, T>,
    m0: usize,
    panels: &Panels,
    k0: usize,
    kc: usize,
    dst: *mut f32,
) {
    for p in 0..panels.count {
        let width = panels.rows_of(p);
        let panel = dst.add(p * panels.width * kc);
        for j0 in (0..width).step_by(8) {
            let m = m0 + p * panels.width + j0;
            let rows = 8.min(job.m.saturating_sub(m));
            for r in 8..8 + 8.min(job.m.saturating_sub(m + 8)) {
                prefetch_row::<S, T>(job.a.as_ptr().add((m + r) * job.k + k0), kc);
            }
            transpose_rows::<S, T>(
                job.a.as_ptr().add(m * job.k + k0),
                job.k,
                rows,
                kc,
                panel.add(j0),
                width,
            );
        }
    }
}

/// Writes `dst[k][r] = src[r][k]` for 8 rows (`rows` of them from `src`, rows `lds` apart, the
/// rest zero) and `kc` columns, `dst` rows `ldd` apart, as f32.
#[inline(always)]
unsafe fn transpose_rows<S: Simd, T: Float>(
    src: *const T,
    lds: usize,
    rows: usize,
    kc: usize,
    dst: *mut f32,
    ldd: usize,
) {
    // Written (all 8 rows, `kc` columns) before it is read; not zeroed on every call.
    let mut staging = std::mem::MaybeUninit::<[f32; 8 * KC]>::uninit();
    let (from, stride) = if T::IS_F32 && rows == 8 {
        (src.cast::<f32>(), lds)
    } else {
        let staging = staging.as_mut_ptr().cast::<f32>();
        for r in 0..8 {
            let row = staging.add(r * KC);
            if r < rows {
                to_f32::<S, T>(src.add(r * lds), kc, row);
            } else {
                std::ptr::write_bytes(row, 0, kc);
            }
        }
        (staging.cast_const(), KC)
    };
    let whole = kc - kc % 8;
    for kk in (0..whole).step_by(8) {
        S::transpose8x8(from.add(kk), stride, dst.add(kk * ldd), ldd);
    }
    for kk in whole..kc {
        for r in 0..8 {
            *dst.add(kk * ldd + r) = *from.add(r * stride + kk);
        }
    }
}

/// How converted weight rows are laid out for the microkernel.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WeightLayout {
    /// `[8][KC]`: a plain conversion (few rows of `a` use each piece).
    Rows,
    /// `[kc][8]`: the 8 values one step broadcasts share a cache line (many rows of `a` do).
    Interleaved,
}

impl WeightLayout {
    /// `(row stride, k stride)` of `w[i][k]`.
    fn strides(self) -> (usize, usize) {
        match self {
            Self::Rows => (KC, 1),
            Self::Interleaved => (1, 8),
        }
    }
}

/// Weight rows `n..n + rows` (then zeros up to `nr` = 8), columns `k0..k0 + kc`, as f32 at
/// `dst` in `layout`. The next block's rows are prefetched: they stream from memory in short
/// runs.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn convert_w<S: Simd, T: Float>(
    job: &Linear<'_, T>,
    n: usize,
    nr: usize,
    rows: usize,
    k0: usize,
    kc: usize,
    layout: WeightLayout,
    dst: *mut f32,
) {
    for next in n + nr..(n + 2 * nr).min(job.n) {
        prefetch_row::<S, T>(job.w.as_ptr().add(next * job.k + k0), kc);
    }
    let src = job.w.as_ptr().add(n * job.k + k0);
    match layout {
        WeightLayout::Rows => {
            for i in 0..nr {
                let row = dst.add(i * KC);
                if i < rows {
                    to_f32::<S, T>(src.add(i * job.k), kc, row);
                } else {
                    std::ptr::write_bytes(row, 0, kc);
                }
            }
        }
        WeightLayout::Interleaved => transpose_rows::<S, T>(src, job.k, rows, kc, dst, 8),
    }
}

/// Hints that `count` values at `row` are read soon.
#[inline(always)]
unsafe fn prefetch_row<S: Simd, T>(row: *const T, count: usize) {
    let start = row.cast::<u8>();
    for byte in (0..count * size_of::<T>()).step_by(64) {
        S::prefetch(start.add(byte));
    }
}

/// `count` values of `src` as f32 at `dst`.
#[inline(always)]
unsafe fn to_f32<S: Simd, T: Float>(src: *const T, count: usize, dst: *mut f32) {
    let full = count - count % S::LANES;
    let mut i = 0;
    while i < full {
        S::store(dst.add(i), T::load::<S>(src.add(i)));
        i += S::LANES;
    }
    for j in full..count {
        *dst.add(j) = (*src.add(j)).to_f32();
    }
}

/// Starts the tiles of weight block `b` (rows `n..n + rows` of 8) for every panel: the bias,
/// or 0.
#[inline(always)]
unsafe fn init_tiles<S: Simd, T: Float>(
    job: &Linear<'_, T>,
    n: usize,
    rows: usize,
    tiles: &Tiles<'_>,
    b: usize,
) {
    for p in 0..tiles.panels.count {
        let width = tiles.panels.rows_of(p);
        let tile = tiles.at(b, p);
        for i in 0..8 {
            let value = match job.bias {
                Some(bias) if i < rows => bias[n + i].to_f32(),
                _ => 0.0,
            };
            for j in (0..width).step_by(S::LANES) {
                S::store(tile.add(i * width + j), S::splat(value));
            }
        }
    }
}

/// The activation, rounding to `T`, and the transposed copy of weight block `b`'s finished
/// tiles (rows `n..n + rows`) into `out`, starting at row `m0` of `a`.
#[inline(always)]
unsafe fn epilogue<S: Simd, T: Float>(
    job: &Linear<'_, T>,
    m0: usize,
    n: usize,
    rows: usize,
    tiles: &Tiles<'_>,
    b: usize,
    out: &SharedOut<T>,
) {
    let panels = tiles.panels;
    for p in 0..panels.count {
        let width = panels.rows_of(p);
        let tile = tiles.at(b, p);
        if let Some(act) = job.act {
            for i in 0..rows {
                for j in (0..width).step_by(S::LANES) {
                    let at = tile.add(i * width + j);
                    S::store(at, activation::apply::<S>(act, S::load(at)));
                }
            }
        }
        let first = m0 + p * panels.width;
        for j0 in (0..width).step_by(8) {
            let dst = out.0.add((first + j0) * job.n + n);
            if rows == 8 && first + j0 + 8 <= job.m {
                T::store_transposed::<S>(tile.add(j0), width, dst, job.n);
                continue;
            }
            for j in j0..(j0 + 8).min(job.m.saturating_sub(first)) {
                for i in 0..rows {
                    *out.0.add((first + j) * job.n + n + i) = T::from_f32(*tile.add(i * width + j));
                }
            }
        }
    }
}

/// The microkernel for a GEMM panel `vectors` wide (weight in `layout`, packed panels).
#[inline(always)]
unsafe fn kernel<S: Simd, const NV: usize>(
    kc: usize,
    (w, layout): (*const f32, WeightLayout),
    a: *const f32,
    tile: *mut f32,
    vectors: usize,
) {
    let width = vectors * S::LANES;
    let tile = Tile {
        ptr: tile,
        stride: width,
    };
    let (w_row, w_step) = layout.strides();
    let w = (w, w_row, w_step);
    match vectors {
        3 if NV >= 3 => tile_update::<S, 3>(kc, w, a, width, tile),
        2 if NV >= 2 => tile_update::<S, 2>(kc, w, a, width, tile),
        _ => tile_update::<S, 1>(kc, w, a, width, tile),
    }
}

/// An 8-row block of f32 accumulators, `stride` apart.
#[derive(Clone, Copy)]
pub(super) struct Tile {
    pub ptr: *mut f32,
    pub stride: usize,
}

/// `tile[8][V * L] += w[8][kc] x a[kc][V * L]`: each `w` value is broadcast against a row of
/// `a`. `w[i][k]` is at `w + i * w_row + k * w_step`; rows of `a` are `lda` apart.
///
/// # Safety
/// As [`Simd`]; the pointers cover the shapes above.
#[inline(always)]
pub(super) unsafe fn tile_update<S: Simd, const V: usize>(
    kc: usize,
    (w, w_row, w_step): (*const f32, usize, usize),
    a: *const f32,
    lda: usize,
    tile: Tile,
) {
    let l = S::LANES;
    let mut acc: [[S::V; V]; NR] = std::array::from_fn(|i| {
        std::array::from_fn(|v| S::load(tile.ptr.add(i * tile.stride + v * l)))
    });
    for k in 0..kc {
        let av: [S::V; V] = std::array::from_fn(|v| S::load(a.add(k * lda + v * l)));
        for (i, row) in acc.iter_mut().enumerate() {
            let b = S::splat(*w.add(i * w_row + k * w_step));
            for (acc, a) in row.iter_mut().zip(av) {
                *acc = S::fma(b, a, *acc);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (v, acc) in row.iter().enumerate() {
            S::store(tile.ptr.add(i * tile.stride + v * l), *acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{bf16, f16};

    use super::*;
    use crate::cpu::test_util::Lcg;

    /// The definition in f64, and for each output the bound on the error of any f32
    /// summation order (`k u Σ|a w|`, u = 2^-24) plus the final rounding to `T` (`ulp`).
    fn reference<T: Float>(job: &Linear<'_, T>, ulp: f64) -> (Vec<f32>, Vec<f32>) {
        let (m, k, n) = (job.m, job.k, job.n);
        let (mut out, mut bound) = (vec![0.0; m * n], vec![0.0; m * n]);
        for i in 0..m {
            for j in 0..n {
                let mut sum = job.bias.map_or(0.0, |b| f64::from(b[j].to_f32()));
                let mut magnitude = sum.abs();
                for kk in 0..k {
                    let product = f64::from(job.a[i * k + kk].to_f32())
                        * f64::from(job.w[j * k + kk].to_f32());
                    sum += product;
                    magnitude += product.abs();
                }
                let value = match job.act {
                    Some(Activation::Silu) => sum / (1.0 + (-sum).exp()),
                    _ => sum,
                };
                out[i * n + j] = value as f32;
                bound[i * n + j] = ((k + 2) as f64 * magnitude / f64::from(1u32 << 24)
                    + ulp * value.abs().max(1.0)) as f32;
            }
        }
        (out, bound)
    }

    fn check<T: Float>(
        m: usize,
        k: usize,
        n: usize,
        bias: bool,
        act: Option<Activation>,
        ulp: f64,
    ) {
        let mut rng = Lcg::new((m * 31 + k * 7 + n) as u64);
        let a: Vec<T> = rng.floats(m * k);
        let w: Vec<T> = rng.floats(n * k);
        let b: Vec<T> = rng.floats(n);
        let job = Linear {
            a: &a,
            w: &w,
            bias: bias.then_some(b.as_slice()),
            act,
            m,
            k,
            n,
        };
        let (want, bound) = reference(&job, ulp);
        for isa in Isa::available() {
            let out = job.run_on(isa);
            for (i, (got, (want, bound))) in out.iter().zip(want.iter().zip(&bound)).enumerate() {
                let got = got.to_f32();
                assert!(
                    (got - want).abs() <= *bound,
                    "{isa:?} {m}x{k}x{n}: element {i} is {got}, want {want} (bound {bound})"
                );
            }
        }
    }

    #[test]
    fn matches_the_definition_in_both_orders_and_at_every_edge() {
        // Shapes straddle the tile (8 x 48), KC (128), MC (512), NC (512) and both loop orders
        // (stream up to 96 rows of a, blocked beyond).
        for (m, k, n) in [
            (1, 1, 1),
            (1, 7, 5),
            (17, 300, 50),
            (48, 128, 8),
            (49, 129, 9),
            (100, 300, 20),
            (1100, 600, 70),
            (600, 1000, 530),
        ] {
            check::<f32>(m, k, n, true, None, 0.0);
            // The activation adds a few ulp of its own.
            check::<f32>(
                m,
                k,
                n,
                false,
                Some(Activation::Silu),
                4.0 / f64::from(1u32 << 24),
            );
        }
    }

    #[test]
    fn half_types_accumulate_in_f32_and_round_once() {
        for (m, k, n) in [(5, 300, 17), (1100, 600, 30)] {
            // Plus the final rounding: half an ulp, 2^-11 for f16 and 2^-8 for bf16.
            check::<f16>(m, k, n, true, None, 1.0 / 2048.0);
            check::<bf16>(m, k, n, true, None, 1.0 / 256.0);
        }
    }
}
