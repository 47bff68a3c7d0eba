//! Embedding throughput per batch size on the CPU backends, and image preprocessing alone.
//!
//! ```sh
//! cargo bench --bench embed                      # tiny fixture, ~5 min on 2 cores
//! E5V_BENCH_BATCHES=1 cargo bench --bench embed   # tiny fixture, batch 1 only: < 1 min
//! python3 scripts/bench/make_checkpoint.py --scale small
//! E5V_BENCH_MODEL=target/bench-models/small cargo bench --bench embed   # ~20 min on 2 cores
//! scripts/bench/compare_ndarray_flex.sh          # the latter, with flex/ndarray ratios
//! ```
//!
//! Bench ids: `texts/batch_<n>/<backend>` and `images/batch_<n>/<backend>` (one batch of `n`
//! inputs, throughput in inputs), `preprocess/<image>` (decode + Pillow-exact resize + crops of
//! one encoded image). Within a batch-size group the backends run back to back, so their ratio
//! is meaningful on a noisy machine even when absolute times are not.
//!
//! Environment (the bench is a binary, it may read it):
//! - `E5V_BENCH_MODEL`: checkpoint folder (default `fixtures/tiny-e5v`).
//! - `E5V_BENCH_BACKENDS`: comma list of `ndarray`, `flex`, `flex-f16` (default `ndarray,flex`).
//! - `E5V_BENCH_BATCHES`: comma list of batch sizes (default `1,4,8`).
//! - `E5V_BENCH_IMAGE`: the image embedded by the `images/*` groups (default the fixture photo,
//!   451x300: 3 crops, 1464 image tokens).
//!
//! Criterion's own flags still apply, e.g. `-- texts` to filter, `--sample-size 20`.

use std::{env, hint::black_box, path::PathBuf, time::Duration};

use burn::tensor::backend::Backend;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use e5v_core::{Embedder, EmbedderOptions, Embeddings, Flex, Input, NdArray, Precision};

use common::TEXTS;
use e5v_core::image;

mod common;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model_dir() -> PathBuf {
    env::var_os("E5V_BENCH_MODEL").map_or_else(|| root().join("fixtures/tiny-e5v"), PathBuf::from)
}

fn list(var: &str, default: &str) -> Vec<String> {
    env::var(var)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn batch_sizes() -> Vec<usize> {
    list("E5V_BENCH_BATCHES", "1,4,8")
        .iter()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("E5V_BENCH_BATCHES: {s:?} is not a number"))
        })
        .collect()
}

/// An embedder on some backend, behind one object type so that the backends can share a loop.
trait Embed {
    fn embed(&self, inputs: &[Input]) -> Embeddings;
}

impl<B: Backend> Embed for Embedder<B> {
    fn embed(&self, inputs: &[Input]) -> Embeddings {
        Embedder::embed(self, inputs).expect("embedding failed")
    }
}

fn load<B: Backend>(precision: Precision, batch: usize) -> Box<dyn Embed> {
    let dir = model_dir();
    let options = EmbedderOptions::new()
        .with_batch_size(batch)
        .with_precision(precision);
    let embedder = Embedder::<B>::new(&dir, options, &Default::default())
        .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()));
    Box::new(embedder)
}

/// The backends to compare, loaded once, each with a batch size large enough that every
/// benchmarked batch runs as one model call.
fn backends() -> Vec<(String, Box<dyn Embed>)> {
    let batch = batch_sizes().into_iter().max().unwrap_or(1);
    list("E5V_BENCH_BACKENDS", "ndarray,flex")
        .into_iter()
        .map(|name| {
            let embedder = match name.as_str() {
                "ndarray" => load::<NdArray>(Precision::F32, batch),
                "flex" => load::<Flex>(Precision::F32, batch),
                "flex-f16" => load::<Flex>(Precision::F16, batch),
                other => panic!(
                    "E5V_BENCH_BACKENDS: unknown backend {other:?} (ndarray, flex, flex-f16)"
                ),
            };
            (name, embedder)
        })
        .collect()
}

fn image_bytes() -> Vec<u8> {
    let path = env::var_os("E5V_BENCH_IMAGE").map_or_else(
        || root().join("fixtures/images/photo_chelsea_451x300.png"),
        PathBuf::from,
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn bench_embed(c: &mut Criterion) {
    let backends = backends();
    let image = image_bytes();
    eprintln!("model: {}", model_dir().display());
    let texts = |n: usize| -> Vec<Input> {
        TEXTS
            .iter()
            .cycle()
            .take(n)
            .map(|t| Input::text(*t))
            .collect()
    };
    let images = |n: usize| -> Vec<Input> { (0..n).map(|_| Input::image(image.clone())).collect() };
    type MakeInputs<'a> = &'a dyn Fn(usize) -> Vec<Input>;
    let cases: [(&str, MakeInputs); 2] = [("texts", &texts), ("images", &images)];
    for (kind, make) in cases {
        for n in batch_sizes() {
            let inputs = make(n);
            let mut group = c.benchmark_group(format!("{kind}/batch_{n}"));
            // One iteration can take seconds on a real-sized model: flat sampling runs exactly
            // sample_size iterations instead of criterion's 1 + 2 + ... + n ramp.
            group.sampling_mode(SamplingMode::Flat);
            group.throughput(Throughput::Elements(n as u64));
            for (name, embedder) in &backends {
                group.bench_function(name.as_str(), |b| {
                    b.iter(|| embedder.embed(black_box(&inputs)))
                });
            }
            group.finish();
        }
    }
}

/// A synthetic 1920x1080 JPEG, the size of a typical phone or web photo.
fn synthetic_jpeg() -> Vec<u8> {
    let (w, h) = (1920u32, 1080u32);
    let img = ::image::RgbImage::from_fn(w, h, |x, y| {
        let noise = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) % 32;
        ::image::Rgb([
            ((x * 255 / w) + noise) as u8,
            ((y * 255 / h) + noise) as u8,
            (((x + y) % 256) ^ noise) as u8,
        ])
    });
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        ::image::ImageFormat::Jpeg,
    )
    .expect("JPEG encoding");
    bytes
}

fn bench_preprocess(c: &mut Criterion) {
    use image::{DecodeLimits, ImageProcessorConfig, decode, preprocess};

    let config = ImageProcessorConfig::default();
    let limits = DecodeLimits::default();
    let mut images: Vec<(String, Vec<u8>)> = [
        "noise_20x13",
        "grad_336x336",
        "photo_chelsea_451x300",
        "grad_640x480",
        "grad_1000x300",
    ]
    .iter()
    .map(|name| {
        let path = root().join(format!("fixtures/images/{name}.png"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        ((*name).to_owned(), bytes)
    })
    .collect();
    images.push(("jpeg_1920x1080".to_owned(), synthetic_jpeg()));
    let mut group = c.benchmark_group("preprocess");
    group.throughput(Throughput::Elements(1));
    for (name, bytes) in &images {
        group.bench_function(name.as_str(), |b| {
            b.iter(|| {
                let decoded = decode(black_box(bytes), &limits).expect("decodable image");
                preprocess(&decoded, &config, Default::default()).expect("preprocessing")
            })
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_preprocess, bench_embed
}
criterion_main!(benches);
