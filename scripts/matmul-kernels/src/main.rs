//! Launches each candidate matmul kernel directly on shape sweeps and counts the outputs that
//! differ from an f64 product. Exits non-zero if cubek's default kernel (the one e5v uses on
//! the GPU backends) is wrong anywhere.
//!
//! Usage: `e5v-matmul-kernels [wgpu|cuda]` (default wgpu).

use std::process::ExitCode;

use burn::tensor::{Distribution, Tensor, TensorPrimitive, backend::Backend};
use burn_cubecl::{CubeBackend, CubeRuntime, tensor::CubeTensor};
use cubek::{
    matmul::{
        definition::{MatmulElems, MatmulGlobalElems},
        launch::Strategy,
        routines::{
            BlueprintStrategy, TileSizeSelection, double_unit::DoubleUnitSelectionArgs,
            simple_unit::SimpleUnitSelectionArgs,
        },
    },
    std::InputBinding,
};

/// An output is wrong past this error, relative to `1 + |expected|` (f32 sums of <= 400 terms
/// stay near 1e-5).
const TOLERANCE: f64 = 1e-4;

/// `[batch, m, k] · [batch, k, n]` sweeps: the shapes where the double-buffered unit kernel
/// was found wrong on lavapipe, and neighbours where it was right.
fn sweeps() -> Vec<(&'static str, Vec<[usize; 4]>)> {
    vec![
        (
            "[4, s, s] · [4, s, 16], s = 296..=313",
            (296..=313).map(|s| [4, s, s, 16]).collect(),
        ),
        (
            "[2, 37, k] · [2, k, 100], k = 1..=80",
            (1..=80).map(|k| [2, 37, k, 100]).collect(),
        ),
        (
            "[1, 64, k] · [1, k, 64], k = 1, 8, 16, ..., 72",
            sparse(|k| [1, 64, k, 64]),
        ),
        (
            "[1, 200, k] · [1, k, 16], k = 1, 8, 16, ..., 72",
            sparse(|k| [1, 200, k, 16]),
        ),
    ]
}

/// The shapes of `shape(k)` for k = 1 and the multiples of 8 up to 72.
fn sparse(shape: impl Fn(usize) -> [usize; 4]) -> Vec<[usize; 4]> {
    std::iter::once(1)
        .chain((8..=72).step_by(8))
        .map(shape)
        .collect()
}

/// The unit kernels of burn's matmul autotune, and cubek's default choice.
fn kernels() -> Vec<(String, Strategy)> {
    let mut out = Vec::new();
    for tile_size in [
        TileSizeSelection::MaxTileSize,
        TileSizeSelection::MinTileSize,
    ] {
        let simple = SimpleUnitSelectionArgs { tile_size };
        let double = DoubleUnitSelectionArgs { tile_size };
        for strategy in [
            Strategy::SimpleUnit(BlueprintStrategy::Inferred(simple)),
            Strategy::DoubleUnit(BlueprintStrategy::Inferred(double)),
        ] {
            out.push((strategy.to_string(), strategy));
        }
    }
    out.push(("naive".into(), Strategy::Naive));
    out.push(("default (used by e5v)".into(), Strategy::default()));
    out
}

#[derive(Default)]
struct Tally {
    shapes: usize,
    wrong_shapes: Vec<String>,
    worst: f64,
    launch_errors: usize,
}

fn primitive<R: CubeRuntime>(tensor: Tensor<CubeBackend<R, f32, i32, u32>, 3>) -> CubeTensor<R> {
    match tensor.into_primitive() {
        TensorPrimitive::Float(t) => t,
        TensorPrimitive::QFloat(_) => unreachable!("float tensors"),
    }
}

fn check<R: CubeRuntime>() -> bool {
    type B<R> = CubeBackend<R, f32, i32, u32>;
    let device = Default::default();
    let kernels = kernels();
    let mut tallies: Vec<Tally> = kernels.iter().map(|_| Tally::default()).collect();
    for (title, shapes) in sweeps() {
        println!("== {title}");
        for [batch, m, k, n] in shapes {
            let lhs =
                Tensor::<B<R>, 3>::random([batch, m, k], Distribution::Uniform(0.0, 1.0), &device);
            let rhs =
                Tensor::<B<R>, 3>::random([batch, k, n], Distribution::Normal(0.0, 1.0), &device);
            let expected = product(&lhs, &rhs, [batch, m, k, n]);
            let mut line = String::new();
            for ((name, strategy), tally) in kernels.iter().zip(&mut tallies) {
                tally.shapes += 1;
                let out = Tensor::<B<R>, 3>::zeros([batch, m, n], &device);
                let (l, r, o) = (
                    primitive(lhs.clone()),
                    primitive(rhs.clone()),
                    primitive(out),
                );
                let client = o.client.clone();
                let dtype = l.dtype.into();
                let mut dtypes = MatmulElems::from_globals(&MatmulGlobalElems {
                    lhs: dtype,
                    rhs: dtype,
                    out: dtype,
                });
                let launched = cubek::matmul::launch::launch_ref(
                    strategy,
                    &client,
                    InputBinding::new(l.binding(), dtype),
                    InputBinding::new(r.binding(), dtype),
                    o.clone().binding(),
                    &mut dtypes,
                );
                if launched.is_err() {
                    tally.launch_errors += 1;
                    continue;
                }
                let got: Vec<f32> = Tensor::<B<R>, 3>::from_primitive(TensorPrimitive::Float(o))
                    .into_data()
                    .to_vec()
                    .expect("f32 output");
                let errors = got
                    .iter()
                    .zip(&expected)
                    .map(|(g, e)| (f64::from(*g) - e).abs() / (1.0 + e.abs()));
                let (worst, wrong) = errors.fold((0.0f64, 0usize), |(w, c), e| {
                    (w.max(e), c + usize::from(e > TOLERANCE))
                });
                tally.worst = tally.worst.max(worst);
                if wrong > 0 {
                    tally.wrong_shapes.push(format!("{batch}x{m}x{k}x{n}"));
                    line += &format!(
                        " {name}: {wrong}/{} wrong (error up to {worst:.1e});",
                        got.len()
                    );
                }
            }
            if !line.is_empty() {
                println!("[{batch}, {m}, {k}] · [{batch}, {k}, {n}]:{line}");
            }
        }
    }
    println!(
        "== summary (wrong: an output off by more than {TOLERANCE:e} relative to 1 + |expected|)"
    );
    println!("| kernel | shapes | shapes with wrong outputs | worst error | launch errors |");
    println!("|---|---|---|---|---|");
    for ((name, _), t) in kernels.iter().zip(&tallies) {
        println!(
            "| {name} | {} | {} | {:.1e} | {} |",
            t.shapes,
            t.wrong_shapes.len(),
            t.worst,
            t.launch_errors
        );
    }
    let default = tallies.last().expect("the default kernel is listed last");
    default.wrong_shapes.is_empty() && default.launch_errors == 0
}

/// The batched product in f64.
fn product<B: Backend>(
    lhs: &Tensor<B, 3>,
    rhs: &Tensor<B, 3>,
    [batch, m, k, n]: [usize; 4],
) -> Vec<f64> {
    let l: Vec<f32> = lhs.to_data().to_vec().expect("f32 lhs");
    let r: Vec<f32> = rhs.to_data().to_vec().expect("f32 rhs");
    let mut out = vec![0f64; batch * m * n];
    for b in 0..batch {
        for i in 0..m {
            for p in 0..k {
                let a = f64::from(l[(b * m + i) * k + p]);
                for j in 0..n {
                    out[(b * m + i) * n + j] += a * f64::from(r[(b * k + p) * n + j]);
                }
            }
        }
    }
    out
}

fn main() -> ExitCode {
    let backend = std::env::args().nth(1).unwrap_or_else(|| "wgpu".into());
    let exact = match backend.as_str() {
        #[cfg(feature = "wgpu")]
        "wgpu" => check::<cubecl::wgpu::WgpuRuntime>(),
        #[cfg(feature = "cuda")]
        "cuda" => check::<cubecl::cuda::CudaRuntime>(),
        other => {
            eprintln!("backend `{other}` is not compiled in (features: wgpu, cuda)");
            return ExitCode::from(2);
        }
    };
    if exact {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
