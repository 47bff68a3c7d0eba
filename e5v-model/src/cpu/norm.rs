//! RMSNorm and LayerNorm over the last axis, one pass per row, statistics in f32.

#![allow(unsafe_op_in_unsafe_fn)]

use rayon::prelude::*;

use std::mem::MaybeUninit;

use super::simd::{Float, Isa, Kernel, Simd, written};

/// Which normalisation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Norm<'a, T> {
    /// HF Llama: `w * T(x / sqrt(mean(x²) + eps))` (normalised, rounded to `T`, then scaled).
    Rms { weight: &'a [T] },
    /// `(x - mean) / sqrt(var + eps) * w + b`, biased variance, rounded once.
    Layer { weight: &'a [T], bias: &'a [T] },
}

/// A normalisation of `rows` rows of `dim` values.
pub(crate) struct RowNorm<'a, T> {
    pub x: &'a [T],
    pub norm: Norm<'a, T>,
    pub eps: f32,
    pub dim: usize,
}

impl<T: Float> RowNorm<'_, T> {
    /// Every row of `x`, normalised (same shape).
    ///
    /// # Panics
    /// If the slices disagree with `dim` (a bug of the caller).
    pub fn run(&self) -> Vec<T> {
        self.run_on(Isa::detected())
    }

    /// [`Self::run`] with the vectors of `isa` (which the CPU supports).
    pub(super) fn run_on(&self, isa: Isa) -> Vec<T> {
        // SAFETY: every row of `out` is written by the row kernel, all `dim` values.
        unsafe { written(self.x.len(), |out| self.run_into(isa, out)) }
    }

    fn run_into(&self, isa: Isa, out: &mut [MaybeUninit<T>]) {
        let dim = self.dim;
        assert!(dim > 0 && self.x.len().is_multiple_of(dim) && out.len() == self.x.len());
        let (Norm::Rms { weight } | Norm::Layer { weight, .. }) = self.norm;
        assert!(weight.len() >= dim);
        if let Norm::Layer { bias, .. } = self.norm {
            assert!(bias.len() >= dim);
        }
        // Enough rows per task to amortise scheduling; small inputs run on one thread.
        let rows_per_task = (16_384 / dim).max(1);
        out.par_chunks_mut(rows_per_task * dim)
            .zip(self.x.par_chunks(rows_per_task * dim))
            .for_each(|(out, x)| {
                for (out, x) in out.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
                    isa.run(Row { job: self, x, out });
                }
            });
    }
}

struct Row<'a, 'b, T> {
    job: &'a RowNorm<'b, T>,
    x: &'a [T],
    out: &'a mut [MaybeUninit<T>],
}

impl<T: Float> Kernel for Row<'_, '_, T> {
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        let Self { job, x, out } = self;
        let dim = job.dim;
        let l = S::LANES;
        let full = dim - dim % l;
        match job.norm {
            Norm::Rms { weight } => {
                let squares = sum_of_squares::<S, T>(x, Some(0.0));
                let inv = 1.0 / (squares / dim as f32 + job.eps).sqrt();
                // Round the normalised value to T before scaling, as HF does in half precision.
                let mut normed = [T::default(); 16];
                for i in (0..full).step_by(l) {
                    let v = S::mul(T::load::<S>(x.as_ptr().add(i)), S::splat(inv));
                    T::store::<S>(normed.as_mut_ptr(), v);
                    let v = S::mul(
                        T::load::<S>(normed.as_ptr()),
                        T::load::<S>(weight.as_ptr().add(i)),
                    );
                    T::store::<S>(out.as_mut_ptr().add(i).cast(), v);
                }
                for i in full..dim {
                    let normed = T::from_f32(x[i].to_f32() * inv).to_f32();
                    out[i].write(T::from_f32(normed * weight[i].to_f32()));
                }
            }
            Norm::Layer { weight, bias } => {
                let mean = sum_of_squares::<S, T>(x, None) / dim as f32;
                let centred = S::splat(mean);
                let var = sum_of_squares::<S, T>(x, Some(mean)) / dim as f32;
                let inv = 1.0 / (var + job.eps).sqrt();
                for i in (0..full).step_by(l) {
                    let c = S::sub(T::load::<S>(x.as_ptr().add(i)), centred);
                    let scaled = S::mul(
                        S::mul(c, S::splat(inv)),
                        T::load::<S>(weight.as_ptr().add(i)),
                    );
                    let v = S::add(scaled, T::load::<S>(bias.as_ptr().add(i)));
                    T::store::<S>(out.as_mut_ptr().add(i).cast(), v);
                }
                for i in full..dim {
                    let v = (x[i].to_f32() - mean) * inv * weight[i].to_f32() + bias[i].to_f32();
                    out[i].write(T::from_f32(v));
                }
            }
        }
    }
}

/// `Σ (x - centre)²`, or `Σ x` without a centre.
#[inline(always)]
unsafe fn sum_of_squares<S: Simd, T: Float>(x: &[T], centre: Option<f32>) -> f32 {
    let l = S::LANES;
    let full = x.len() - x.len() % l;
    let c = S::splat(centre.unwrap_or(0.0));
    let mut acc = S::splat(0.0);
    for i in (0..full).step_by(l) {
        let v = S::sub(T::load::<S>(x.as_ptr().add(i)), c);
        acc = match centre {
            Some(_) => S::fma(v, v, acc),
            None => S::add(acc, v),
        };
    }
    let tail = x[full..].iter().map(|v| v.to_f32());
    S::sum(acc)
        + match centre {
            Some(centre) => tail.map(|v| (v - centre) * (v - centre)).sum::<f32>(),
            None => tail.sum::<f32>(),
        }
}

#[cfg(test)]
mod tests {
    use burn::tensor::bf16;

    use super::*;
    use crate::cpu::test_util::{Lcg, assert_close};

    fn reference<T: Float>(job: &RowNorm<'_, T>) -> Vec<f32> {
        let d = job.dim;
        job.x
            .chunks(d)
            .flat_map(|row| {
                let row: Vec<f64> = row.iter().map(|v| f64::from(v.to_f32())).collect();
                let mean = row.iter().sum::<f64>() / d as f64;
                let (centre, spread) = match job.norm {
                    Norm::Rms { .. } => (0.0, row.iter().map(|v| v * v).sum::<f64>() / d as f64),
                    Norm::Layer { .. } => (
                        mean,
                        row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64,
                    ),
                };
                let inv = 1.0 / (spread + f64::from(job.eps)).sqrt();
                (0..d)
                    .map(|i| {
                        let normed = (row[i] - centre) * inv;
                        match job.norm {
                            Norm::Rms { weight } => (normed * f64::from(weight[i].to_f32())) as f32,
                            Norm::Layer { weight, bias } => {
                                (normed * f64::from(weight[i].to_f32())
                                    + f64::from(bias[i].to_f32()))
                                    as f32
                            }
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn check<T: Float>(rows: usize, dim: usize, tolerance: f32) {
        let mut rng = Lcg::new(dim as u64);
        let x: Vec<T> = rng.floats(rows * dim);
        let weight: Vec<T> = rng.floats(dim);
        let bias: Vec<T> = rng.floats(dim);
        for norm in [
            Norm::Rms { weight: &weight },
            Norm::Layer {
                weight: &weight,
                bias: &bias,
            },
        ] {
            let job = RowNorm {
                x: &x,
                norm,
                eps: 1e-5,
                dim,
            };
            let want = reference(&job);
            let name = if matches!(norm, Norm::Rms { .. }) {
                "rms"
            } else {
                "layer"
            };
            for isa in Isa::available() {
                let got: Vec<f32> = job.run_on(isa).iter().map(|v| v.to_f32()).collect();
                let what = format!("{isa:?} {name} {rows}x{dim}");
                assert_close(&got, &want, tolerance, &what);
            }
        }
    }

    #[test]
    fn norms_match_their_definitions() {
        for (rows, dim) in [(1, 1), (3, 7), (5, 64), (40, 576), (2, 1030)] {
            check::<f32>(rows, dim, 2e-6);
        }
        check::<bf16>(9, 100, 2.0 / 128.0);
    }
}
