//! Sums and products of same-shaped tensors (residual connections, the gated MLP), in f32 and
//! rounded once, on all cores.

#![allow(unsafe_op_in_unsafe_fn)]

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::simd::{Float, Isa, Kernel, Simd, written};

/// Values per task: large enough to amortise scheduling, small enough to split a hidden state.
const CHUNK: usize = 16 * 1024;

/// Which operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Add,
    Mul,
}

/// `a op b`, elementwise.
pub(crate) struct Binary<'a, T> {
    pub a: &'a [T],
    pub b: &'a [T],
    pub op: BinaryOp,
}

impl<T: Float> Binary<'_, T> {
    /// # Panics
    /// If the slices differ in length (a bug of the caller).
    pub fn run(&self) -> Vec<T> {
        self.run_on(Isa::detected())
    }

    /// [`Self::run`] with the vectors of `isa` (which the CPU supports).
    pub(super) fn run_on(&self, isa: Isa) -> Vec<T> {
        assert_eq!(self.a.len(), self.b.len());
        // SAFETY: the chunks cover `out` and each writes all of its values.
        unsafe {
            written(self.a.len(), |out| {
                out.par_chunks_mut(CHUNK)
                    .zip(self.a.par_chunks(CHUNK).zip(self.b.par_chunks(CHUNK)))
                    .for_each(|(out, (a, b))| {
                        isa.run(Chunk {
                            a,
                            b,
                            op: self.op,
                            out,
                        })
                    })
            })
        }
    }
}

struct Chunk<'a, T> {
    a: &'a [T],
    b: &'a [T],
    op: BinaryOp,
    out: &'a mut [MaybeUninit<T>],
}

impl<T: Float> Kernel for Chunk<'_, T> {
    type Output = ();

    #[inline(always)]
    unsafe fn run<S: Simd>(self) {
        let Self { a, b, op, out } = self;
        let full = a.len() - a.len() % S::LANES;
        let apply = |x: S::V, y: S::V| match op {
            BinaryOp::Add => S::add(x, y),
            BinaryOp::Mul => S::mul(x, y),
        };
        for i in (0..full).step_by(S::LANES) {
            let v = apply(
                T::load::<S>(a.as_ptr().add(i)),
                T::load::<S>(b.as_ptr().add(i)),
            );
            T::store::<S>(out.as_mut_ptr().add(i).cast(), v);
        }
        for i in full..a.len() {
            let (x, y) = (a[i].to_f32(), b[i].to_f32());
            out[i].write(T::from_f32(match op {
                BinaryOp::Add => x + y,
                BinaryOp::Mul => x * y,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::f16;

    use super::*;
    use crate::cpu::test_util::Lcg;

    #[test]
    fn sums_and_products_round_once() {
        let mut rng = Lcg::new(7);
        // A chunk and a bit, with a tail shorter than any vector.
        let (a, b): (Vec<f16>, Vec<f16>) = (rng.floats(CHUNK + 37), rng.floats(CHUNK + 37));
        for isa in Isa::available() {
            for op in [BinaryOp::Add, BinaryOp::Mul] {
                let got = Binary { a: &a, b: &b, op }.run_on(isa);
                for i in 0..a.len() {
                    let (x, y) = (a[i].to_f32(), b[i].to_f32());
                    let want = f16::from_f32(if op == BinaryOp::Add { x + y } else { x * y });
                    assert_eq!(got[i], want, "{isa:?} {op:?} at {i}");
                }
            }
        }
    }
}
