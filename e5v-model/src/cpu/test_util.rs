//! Deterministic inputs and a tolerance check for the kernel tests.

use super::simd::Float;

/// A linear congruential generator: reproducible inputs without a dependency.
pub(crate) struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1))
    }

    /// Uniform in [-1, 1).
    pub fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    pub fn floats<T: Float>(&mut self, n: usize) -> Vec<T> {
        (0..n).map(|_| T::from_f32(self.next())).collect()
    }
}

/// Every `got[i]` within `tolerance * max(1, |want[i]|)` of `want[i]`.
pub(crate) fn assert_close(got: &[f32], want: &[f32], tolerance: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tolerance * w.abs().max(1.0),
            "{what}: element {i} is {g}, want {w}"
        );
    }
}
