//! f32 vectors per instruction set behind one trait, so each kernel is written once.
//!
//! A kernel implements [`Kernel`] with an `#[inline(always)]` method generic over [`Simd`];
//! [`Isa::run`] calls it through a `#[target_feature]` entry point per instruction set, chosen
//! at run time by [`Isa::detected`], so that the intrinsics inline into code compiled for it.
//! Half-precision values are widened to f32 on load and rounded (to nearest, ties to even) on
//! store: all arithmetic is f32.

#![allow(unsafe_op_in_unsafe_fn)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::sync::OnceLock;

use burn::tensor::{bf16, f16};

/// The instruction sets the kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// AVX-512F (16 lanes).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// AVX2 + FMA + F16C (8 lanes).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// Plain Rust on arrays of 8 (auto-vectorised for the build target).
    Portable,
}

impl Isa {
    /// The best set this CPU supports (detected once).
    pub fn detected() -> Self {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                if is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
                {
                    return Isa::Avx512;
                }
                if is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
                {
                    return Isa::Avx2;
                }
            }
            Isa::Portable
        })
    }

    /// Every set this CPU can run (for tests that compare them).
    #[cfg(test)]
    pub fn available() -> Vec<Self> {
        let mut all = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if matches!(Self::detected(), Isa::Avx2 | Isa::Avx512) {
                all.push(Isa::Avx2);
            }
            if Self::detected() == Isa::Avx512 {
                all.push(Isa::Avx512);
            }
        }
        all
    }
}

/// A computation written once for every instruction set, run by [`Isa::run`].
pub(crate) trait Kernel {
    type Output;
    /// Runs with the vectors of `S`. Implementations are `#[inline(always)]`, so that they
    /// compile inside the `#[target_feature]` entry point of `S`'s instruction set.
    ///
    /// # Safety
    /// The CPU supports `S`'s instruction set.
    unsafe fn run<S: Simd>(self) -> Self::Output;
}

impl Isa {
    /// Runs `kernel` with this instruction set's vectors.
    pub fn run<K: Kernel>(self, kernel: K) -> K::Output {
        match self {
            // SAFETY: `detected` returned this set (or a subset of it), so the CPU supports it.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { run_avx512(kernel) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { run_avx2(kernel) },
            // SAFETY: plain Rust.
            Isa::Portable => unsafe { kernel.run::<Portable>() },
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn run_avx512<K: Kernel>(kernel: K) -> K::Output {
    kernel.run::<Avx512>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run_avx2<K: Kernel>(kernel: K) -> K::Output {
    kernel.run::<Avx2>()
}

/// An instruction set's f32 vector and the operations the kernels use.
///
/// # Safety
/// Every method needs the CPU to support the instruction set; pointer methods read or write
/// `LANES` values.
pub(crate) trait Simd: Copy + Send + Sync + 'static {
    /// f32 values per vector.
    const LANES: usize;
    /// The vector.
    type V: Copy;

    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a * b + c`, rounded once.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    /// Sum of the lanes.
    unsafe fn sum(v: Self::V) -> f32;
    /// Largest lane.
    unsafe fn max_lane(v: Self::V) -> f32;
    /// `e^x`.
    unsafe fn exp(x: Self::V) -> Self::V;
    unsafe fn load_f16(p: *const f16) -> Self::V;
    unsafe fn load_bf16(p: *const bf16) -> Self::V;
    unsafe fn store_f16(p: *mut f16, v: Self::V);
    unsafe fn store_bf16(p: *mut bf16, v: Self::V);
    /// Writes the transpose of the 8 x 8 block at `src` (rows `lds` apart) to `dst` (rows
    /// `ldd` apart).
    #[inline(always)]
    unsafe fn transpose8x8(src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
        for i in 0..8 {
            for j in 0..8 {
                *dst.add(j * ldd + i) = *src.add(i * lds + j);
            }
        }
    }
    /// Hint that the cache line at `p` is read soon.
    #[inline(always)]
    unsafe fn prefetch(p: *const u8) {
        #[cfg(target_arch = "x86_64")]
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }
}

/// A float type tensors are held in; loaded into and stored from f32 vectors.
pub(crate) trait Float: Copy + Default + Send + Sync + 'static {
    /// `Self` is `f32`: slices of it can be read as f32 without a conversion.
    const IS_F32: bool;
    fn to_f32(self) -> f32;
    fn from_f32(x: f32) -> Self;
    /// `S::LANES` values at `p`, widened.
    ///
    /// # Safety
    /// As [`Simd`].
    unsafe fn load<S: Simd>(p: *const Self) -> S::V;
    /// `S::LANES` values to `p`, rounded to nearest even.
    ///
    /// # Safety
    /// As [`Simd`].
    unsafe fn store<S: Simd>(p: *mut Self, v: S::V);
    /// The transpose of the 8 x 8 f32 block at `src` (rows `lds` apart) to `dst` (rows `ldd`
    /// apart), rounded.
    ///
    /// # Safety
    /// As [`Simd`]; both blocks are in bounds.
    #[inline(always)]
    unsafe fn store_transposed<S: Simd>(src: *const f32, lds: usize, dst: *mut Self, ldd: usize) {
        let mut block = [0.0f32; 64];
        S::transpose8x8(src, lds, block.as_mut_ptr(), 8);
        let mut rounded = [Self::default(); 64];
        for at in (0..64).step_by(S::LANES) {
            Self::store::<S>(
                rounded.as_mut_ptr().add(at),
                S::load(block.as_ptr().add(at)),
            );
        }
        for row in 0..8 {
            std::ptr::copy_nonoverlapping(rounded.as_ptr().add(row * 8), dst.add(row * ldd), 8);
        }
    }
}

impl Float for f32 {
    const IS_F32: bool = true;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        x
    }
    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const Self) -> S::V {
        S::load(p)
    }
    #[inline(always)]
    unsafe fn store<S: Simd>(p: *mut Self, v: S::V) {
        S::store(p, v)
    }
    #[inline(always)]
    unsafe fn store_transposed<S: Simd>(src: *const f32, lds: usize, dst: *mut Self, ldd: usize) {
        S::transpose8x8(src, lds, dst, ldd)
    }
}

impl Float for f16 {
    const IS_F32: bool = false;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const Self) -> S::V {
        S::load_f16(p)
    }
    #[inline(always)]
    unsafe fn store<S: Simd>(p: *mut Self, v: S::V) {
        S::store_f16(p, v)
    }
}

impl Float for bf16 {
    const IS_F32: bool = false;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        bf16::from_f32(x)
    }
    #[inline(always)]
    unsafe fn load<S: Simd>(p: *const Self) -> S::V {
        S::load_bf16(p)
    }
    #[inline(always)]
    unsafe fn store<S: Simd>(p: *mut Self, v: S::V) {
        S::store_bf16(p, v)
    }
}

/// `e^x` for the vector sets: `x = n ln 2 + r` with `|r| <= ln 2 / 2`, `e^r` by its Taylor
/// series to `r^7` (truncation below 1e-8 relative), times `2^n`. Within 2 ulp of the true
/// value; inputs below -87.3 give the smallest normal f32 or 0, above 88.7 `f32::MAX`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn exp_taylor<S: Simd>(x: S::V, scale_by_pow2: impl Fn(S::V, S::V) -> S::V) -> S::V {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = S::min(S::max(x, S::splat(-87.33)), S::splat(88.7));
    let n = round::<S>(S::mul(x, S::splat(std::f32::consts::LOG2_E)));
    let r = S::fma(n, S::splat(-LN2_HI), x);
    let r = S::fma(n, S::splat(-LN2_LO), r);
    let mut p = S::splat(1.0 / 5040.0);
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = S::fma(p, r, S::splat(c));
    }
    scale_by_pow2(p, n)
}

/// Rounds to the nearest integer (adding and removing 1.5 * 2^23 rounds f32 in
/// `[-2^22, 2^22]` to nearest even, in the current rounding mode).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn round<S: Simd>(x: S::V) -> S::V {
    let magic = S::splat(12_582_912.0);
    S::sub(S::add(x, magic), magic)
}

/// A vector of `len` values, all written by `write`: outputs are not zeroed first (a kernel
/// overwrites every value; zeroing cost as much as a norm).
///
/// # Safety
/// `write` initialises every element of the slice it is given.
pub(crate) unsafe fn written<T>(
    len: usize,
    write: impl FnOnce(&mut [std::mem::MaybeUninit<T>]),
) -> Vec<T> {
    let mut out = Vec::with_capacity(len);
    write(&mut out.spare_capacity_mut()[..len]);
    // SAFETY: the caller guarantees that `write` initialised all `len` values.
    unsafe { out.set_len(len) };
    out
}

/// [`Simd::transpose8x8`] in 24 AVX shuffles.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn transpose8x8_avx(src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
    let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * lds)));
    // Pairs of rows interleaved, then quadruples, then the 128-bit halves exchanged.
    let t: [__m256; 8] = std::array::from_fn(|i| {
        let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_ps(a, b)
        } else {
            _mm256_unpackhi_ps(a, b)
        }
    });
    let q: [__m256; 8] = std::array::from_fn(|i| {
        let (group, k) = (i / 4 * 4, i % 4);
        let (a, b) = (t[group + k / 2], t[group + 2 + k / 2]);
        if k % 2 == 0 {
            _mm256_shuffle_ps::<0x44>(a, b)
        } else {
            _mm256_shuffle_ps::<0xEE>(a, b)
        }
    });
    for j in 0..4 {
        _mm256_storeu_ps(
            dst.add(j * ldd),
            _mm256_permute2f128_ps::<0x20>(q[j], q[j + 4]),
        );
        _mm256_storeu_ps(
            dst.add((j + 4) * ldd),
            _mm256_permute2f128_ps::<0x31>(q[j], q[j + 4]),
        );
    }
}

/// Plain Rust, 8 lanes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

/// The [`Portable`] vector.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lanes8([f32; 8]);

impl Lanes8 {
    #[inline(always)]
    fn map(self, f: impl Fn(f32) -> f32) -> Self {
        Self(self.0.map(f))
    }
    #[inline(always)]
    fn zip(self, other: Self, f: impl Fn(f32, f32) -> f32) -> Self {
        Self(std::array::from_fn(|i| f(self.0[i], other.0[i])))
    }
}

impl Simd for Portable {
    const LANES: usize = 8;
    type V = Lanes8;
    #[inline(always)]
    unsafe fn splat(x: f32) -> Lanes8 {
        Lanes8([x; 8])
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Lanes8 {
        Lanes8(std::ptr::read_unaligned(p.cast()))
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Lanes8) {
        std::ptr::write_unaligned(p.cast(), v.0)
    }
    #[inline(always)]
    unsafe fn fma(a: Lanes8, b: Lanes8, c: Lanes8) -> Lanes8 {
        Lanes8(std::array::from_fn(|i| a.0[i].mul_add(b.0[i], c.0[i])))
    }
    #[inline(always)]
    unsafe fn add(a: Lanes8, b: Lanes8) -> Lanes8 {
        a.zip(b, |x, y| x + y)
    }
    #[inline(always)]
    unsafe fn sub(a: Lanes8, b: Lanes8) -> Lanes8 {
        a.zip(b, |x, y| x - y)
    }
    #[inline(always)]
    unsafe fn mul(a: Lanes8, b: Lanes8) -> Lanes8 {
        a.zip(b, |x, y| x * y)
    }
    #[inline(always)]
    unsafe fn div(a: Lanes8, b: Lanes8) -> Lanes8 {
        a.zip(b, |x, y| x / y)
    }
    #[inline(always)]
    unsafe fn max(a: Lanes8, b: Lanes8) -> Lanes8 {
        a.zip(b, f32::max)
    }
    #[inline(always)]
    unsafe fn min(a: Lanes8, b: Lanes8) -> Lanes8 {
        a.zip(b, f32::min)
    }
    #[inline(always)]
    unsafe fn sum(v: Lanes8) -> f32 {
        v.0.iter().sum()
    }
    #[inline(always)]
    unsafe fn max_lane(v: Lanes8) -> f32 {
        v.0.iter().copied().fold(f32::NEG_INFINITY, f32::max)
    }
    #[inline(always)]
    unsafe fn exp(x: Lanes8) -> Lanes8 {
        x.map(f32::exp)
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const f16) -> Lanes8 {
        Lanes8(std::array::from_fn(|i| (*p.add(i)).to_f32()))
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const bf16) -> Lanes8 {
        Lanes8(std::array::from_fn(|i| (*p.add(i)).to_f32()))
    }
    #[inline(always)]
    unsafe fn store_f16(p: *mut f16, v: Lanes8) {
        for (i, x) in v.0.into_iter().enumerate() {
            *p.add(i) = f16::from_f32(x);
        }
    }
    #[inline(always)]
    unsafe fn store_bf16(p: *mut bf16, v: Lanes8) {
        for (i, x) in v.0.into_iter().enumerate() {
            *p.add(i) = bf16::from_f32(x);
        }
    }
}

/// AVX-512F, 16 lanes.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx512 {
    const LANES: usize = 16;
    type V = __m512;
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m512, b: __m512) -> __m512 {
        _mm512_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        _mm512_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn div(a: __m512, b: __m512) -> __m512 {
        _mm512_div_ps(a, b)
    }
    #[inline(always)]
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        _mm512_max_ps(a, b)
    }
    #[inline(always)]
    unsafe fn min(a: __m512, b: __m512) -> __m512 {
        _mm512_min_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sum(v: __m512) -> f32 {
        _mm512_reduce_add_ps(v)
    }
    #[inline(always)]
    unsafe fn max_lane(v: __m512) -> f32 {
        _mm512_reduce_max_ps(v)
    }
    #[inline(always)]
    unsafe fn transpose8x8(src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
        transpose8x8_avx(src, lds, dst, ldd)
    }
    #[inline(always)]
    unsafe fn exp(x: __m512) -> __m512 {
        exp_taylor::<Self>(x, |p, n| _mm512_scalef_ps(p, n))
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const f16) -> __m512 {
        _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()))
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const bf16) -> __m512 {
        let x = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast()));
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(x))
    }
    #[inline(always)]
    unsafe fn store_f16(p: *mut f16, v: __m512) {
        let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
        _mm256_storeu_si256(p.cast(), h)
    }
    #[inline(always)]
    unsafe fn store_bf16(p: *mut bf16, v: __m512) {
        // Round to nearest even: add 0x7fff plus the lowest kept bit; NaNs stay quiet NaNs.
        let bits = _mm512_castps_si512(v);
        let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(1));
        let rounded = _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd));
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
        let quiet = _mm512_or_si512(bits, _mm512_set1_epi32(0x0040_0000));
        let bits = _mm512_mask_mov_epi32(rounded, nan, quiet);
        _mm256_storeu_si256(
            p.cast(),
            _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(bits)),
        )
    }
}

/// AVX2 + FMA + F16C, 8 lanes.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx2 {
    const LANES: usize = 8;
    type V = __m256;
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        _mm256_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        _mm256_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        _mm256_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sub(a: __m256, b: __m256) -> __m256 {
        _mm256_sub_ps(a, b)
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        _mm256_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn div(a: __m256, b: __m256) -> __m256 {
        _mm256_div_ps(a, b)
    }
    #[inline(always)]
    unsafe fn max(a: __m256, b: __m256) -> __m256 {
        _mm256_max_ps(a, b)
    }
    #[inline(always)]
    unsafe fn min(a: __m256, b: __m256) -> __m256 {
        _mm256_min_ps(a, b)
    }
    #[inline(always)]
    unsafe fn sum(v: __m256) -> f32 {
        let half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
        _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
    }
    #[inline(always)]
    unsafe fn max_lane(v: __m256) -> f32 {
        let half = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let pair = _mm_max_ps(half, _mm_movehl_ps(half, half));
        _mm_cvtss_f32(_mm_max_ss(pair, _mm_movehdup_ps(pair)))
    }
    #[inline(always)]
    unsafe fn transpose8x8(src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
        transpose8x8_avx(src, lds, dst, ldd)
    }
    #[inline(always)]
    unsafe fn exp(x: __m256) -> __m256 {
        exp_taylor::<Self>(x, |p, n| {
            // n is in [-126, 128]: 2^n in two steps keeps both factors normal.
            let half = _mm256_cvtps_epi32(_mm256_mul_ps(n, _mm256_set1_ps(0.5)));
            let rest = _mm256_sub_epi32(_mm256_cvtps_epi32(n), half);
            let pow2 = |e: __m256i| {
                _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
                    e,
                    _mm256_set1_epi32(127),
                )))
            };
            _mm256_mul_ps(_mm256_mul_ps(p, pow2(half)), pow2(rest))
        })
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const f16) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const bf16) -> __m256 {
        let x = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(x))
    }
    #[inline(always)]
    unsafe fn store_f16(p: *mut f16, v: __m256) {
        let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
        _mm_storeu_si128(p.cast(), h)
    }
    #[inline(always)]
    unsafe fn store_bf16(p: *mut bf16, v: __m256) {
        let bits = _mm256_castps_si256(v);
        let odd = _mm256_and_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(1));
        let rounded = _mm256_add_epi32(bits, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), odd));
        let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        let quiet = _mm256_or_si256(bits, _mm256_set1_epi32(0x0040_0000));
        let bits = _mm256_srli_epi32::<16>(_mm256_blendv_epi8(rounded, quiet, nan));
        // Pack the 8 low halves: lanes 0-3 and 4-7 live in different 128-bit halves.
        let packed = _mm256_packus_epi32(bits, bits);
        let packed = _mm256_permute4x64_epi64::<0b1000>(packed);
        _mm_storeu_si128(p.cast(), _mm256_castsi256_si128(packed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on every instruction set of this CPU.
    fn each_isa(f: impl Fn(Isa)) {
        for isa in Isa::available() {
            f(isa);
        }
    }

    struct ExpOf<'a>(&'a [f32]);

    impl Kernel for ExpOf<'_> {
        type Output = Vec<f32>;
        #[inline(always)]
        unsafe fn run<S: Simd>(self) -> Vec<f32> {
            let mut out = vec![0.0; self.0.len()];
            // Chunks of exactly LANES values (the inputs are multiples of 16).
            for (i, o) in self.0.chunks(S::LANES).zip(out.chunks_mut(S::LANES)) {
                S::store(o.as_mut_ptr(), S::exp(S::load(i.as_ptr())))
            }
            out
        }
    }

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        let x: Vec<f32> = (0..3200).map(|i| -87.0 + i as f32 * 0.0548).collect();
        each_isa(|isa| {
            let got = isa.run(ExpOf(&x));
            for (x, y) in x.iter().zip(got) {
                let want = x.exp();
                let ulp = (want.to_bits() as i64 - y.to_bits() as i64).abs();
                assert!(ulp <= 2, "{isa:?}: exp({x}) = {y}, libm {want} ({ulp} ulp)");
            }
        });
    }

    struct Roundtrip<'a>(&'a [f32]);

    impl Kernel for Roundtrip<'_> {
        type Output = (Vec<f16>, Vec<bf16>);
        #[inline(always)]
        unsafe fn run<S: Simd>(self) -> Self::Output {
            let mut h = vec![f16::ZERO; self.0.len()];
            let mut b = vec![bf16::ZERO; self.0.len()];
            // Chunks of exactly LANES values.
            for (i, chunk) in self.0.chunks(S::LANES).enumerate() {
                let at = i * S::LANES;
                let v = S::load(chunk.as_ptr());
                f16::store::<S>(h.as_mut_ptr().add(at), v);
                bf16::store::<S>(b.as_mut_ptr().add(at), v);
                // And back: widening is exact.
                let mut w = vec![0.0f32; S::LANES];
                S::store(w.as_mut_ptr(), f16::load::<S>(h.as_ptr().add(at)));
                for (j, w) in w.iter().enumerate() {
                    assert_eq!(w.to_bits(), h[at + j].to_f32().to_bits());
                }
            }
            (h, b)
        }
    }

    struct Transpose<'a>(&'a [f32]);

    impl Kernel for Transpose<'_> {
        type Output = Vec<f32>;
        #[inline(always)]
        unsafe fn run<S: Simd>(self) -> Vec<f32> {
            // The 8 x 8 block at row 1, column 2 of a 10 x 11 matrix, into a 9-wide one.
            let mut out = vec![0.0; 8 * 9];
            S::transpose8x8(self.0.as_ptr().add(11 + 2), 11, out.as_mut_ptr(), 9);
            out
        }
    }

    #[test]
    fn transpose8x8_transposes() {
        let m: Vec<f32> = (0..110).map(|i| i as f32).collect();
        each_isa(|isa| {
            let out = isa.run(Transpose(&m));
            for i in 0..8 {
                for j in 0..8 {
                    assert_eq!(
                        out[j * 9 + i],
                        m[(1 + i) * 11 + 2 + j],
                        "{isa:?} ({i}, {j})"
                    );
                }
            }
        });
    }

    #[test]
    fn half_conversions_round_to_nearest_even_like_the_half_crate() {
        let mut x: Vec<f32> = (0..4000)
            .map(|i| (i as f32 - 2000.0) * 0.37 + 1e-3)
            .collect();
        // Ties, subnormals, overflow, infinities and NaN.
        x.extend([
            1.0 + f32::EPSILON * 2048.0,
            1.0 + f32::EPSILON * 4096.0 * 3.0,
            6.0e-8,
            1.0e-40,
            70000.0,
            -70000.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -0.0,
            bf16::MAX.to_f32() * 2.0,
        ]);
        x.resize(x.len().div_ceil(16) * 16, 0.5);
        each_isa(|isa| {
            let (h, b) = isa.run(Roundtrip(&x));
            for (i, x) in x.iter().enumerate() {
                let (want_h, want_b) = (f16::from_f32(*x), bf16::from_f32(*x));
                assert!(
                    h[i].to_bits() == want_h.to_bits() || (h[i].is_nan() && want_h.is_nan()),
                    "{isa:?}: f16({x}) = {:?}, want {want_h:?}",
                    h[i]
                );
                assert!(
                    b[i].to_bits() == want_b.to_bits() || (b[i].is_nan() && want_b.is_nan()),
                    "{isa:?}: bf16({x}) = {:?}, want {want_b:?}",
                    b[i]
                );
            }
        });
    }
}
