//! The activations of [`Activation`] on f32 vectors, for kernel epilogues.

#![allow(unsafe_op_in_unsafe_fn)]

use super::simd::Simd;
use crate::nn::Activation;

/// `act(x)` lane by lane. Within a few ulp of the scalar definitions in
/// [`Activation::forward`] (GELU's erf to 1.5e-7 absolute).
///
/// # Safety
/// As [`Simd`].
#[inline(always)]
pub(crate) unsafe fn apply<S: Simd>(act: Activation, x: S::V) -> S::V {
    match act {
        Activation::QuickGelu => S::div(
            x,
            S::add(S::splat(1.0), S::exp(S::mul(x, S::splat(-1.702)))),
        ),
        Activation::Silu => S::div(x, S::add(S::splat(1.0), S::exp(S::sub(S::splat(0.0), x)))),
        Activation::Gelu => {
            let erf = erf::<S>(S::mul(x, S::splat(std::f32::consts::FRAC_1_SQRT_2)));
            S::mul(S::mul(x, S::splat(0.5)), S::add(S::splat(1.0), erf))
        }
        Activation::GeluTanh => {
            // 0.5 x (1 + tanh(u)) = x / (1 + e^(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3)
            let x3 = S::mul(S::mul(x, x), x);
            let u = S::mul(S::fma(x3, S::splat(0.044715), x), S::splat(0.797_884_6));
            S::div(x, S::add(S::splat(1.0), S::exp(S::mul(u, S::splat(-2.0)))))
        }
        Activation::Relu => S::max(x, S::splat(0.0)),
    }
}

/// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), odd-extended.
#[inline(always)]
unsafe fn erf<S: Simd>(x: S::V) -> S::V {
    let zero = S::splat(0.0);
    let a = S::max(x, S::sub(zero, x));
    let t = S::div(
        S::splat(1.0),
        S::fma(a, S::splat(0.327_591_1), S::splat(1.0)),
    );
    let mut p = S::splat(1.061_405_4);
    for c in [-1.453_152, 1.421_413_8, -0.284_496_74, 0.254_829_6] {
        p = S::fma(p, t, S::splat(c));
    }
    p = S::mul(p, t);
    let e = S::exp(S::sub(zero, S::mul(a, a)));
    let magnitude = S::sub(S::splat(1.0), S::mul(p, e));
    // erf is odd: times sign(x), as x * f32::MAX clamped to [-1, 1] (0 at 0; below 3e-39 in
    // magnitude the product is a fraction of a magnitude that is itself ~1e-9).
    let sign = S::min(
        S::max(S::mul(x, S::splat(f32::MAX)), S::splat(-1.0)),
        S::splat(1.0),
    );
    S::mul(magnitude, sign)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::simd::{Isa, Kernel};

    struct Apply<'a>(Activation, &'a [f32]);

    impl Kernel for Apply<'_> {
        type Output = Vec<f32>;
        #[inline(always)]
        unsafe fn run<S: Simd>(self) -> Vec<f32> {
            let mut out = vec![0.0; self.1.len()];
            for (i, o) in self.1.chunks(S::LANES).zip(out.chunks_mut(S::LANES)) {
                S::store(o.as_mut_ptr(), apply::<S>(self.0, S::load(i.as_ptr())));
            }
            out
        }
    }

    /// The definitions in f64.
    fn reference(act: Activation, x: f64) -> f64 {
        let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
        match act {
            Activation::QuickGelu => x * sigmoid(1.702 * x),
            Activation::Silu => x * sigmoid(x),
            Activation::Gelu => 0.5 * x * (1.0 + erf64(x / std::f64::consts::SQRT_2)),
            Activation::GeluTanh => {
                let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
                0.5 * x * (1.0 + u.tanh())
            }
            Activation::Relu => x.max(0.0),
        }
    }

    /// erf in f64 by its Taylor series (|x| <= 3) and continued fraction beyond.
    fn erf64(x: f64) -> f64 {
        let a = x.abs();
        let value = if a <= 3.0 {
            let (mut term, mut sum, mut n) = (a, a, 0.0);
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = k as f64 / 2.0 / (a + f);
            }
            1.0 - (-a * a).exp() / (a + f) / std::f64::consts::PI.sqrt()
        };
        value.copysign(x)
    }

    #[test]
    fn activations_match_their_definitions() {
        let x: Vec<f32> = (0..1600).map(|i| -12.0 + i as f32 * 0.015).collect();
        for isa in Isa::available() {
            for act in [
                Activation::QuickGelu,
                Activation::Silu,
                Activation::Gelu,
                Activation::GeluTanh,
                Activation::Relu,
            ] {
                let got = isa.run(Apply(act, &x));
                for (x, y) in x.iter().zip(got) {
                    let want = reference(act, f64::from(*x));
                    let err = (f64::from(y) - want).abs();
                    assert!(
                        err <= 4e-7 * want.abs().max(1.0),
                        "{isa:?} {act:?}({x}) = {y}, want {want}"
                    );
                }
            }
        }
    }
}
