//! One `Embedder` shared by many threads gives, call for call, the vectors it gives alone, bit
//! for bit. Short here; `scripts/stress-concurrency.sh` runs it long (E5V_STRESS_THREADS,
//! E5V_STRESS_CALLS).

use std::sync::Arc;

use burn::tensor::backend::Backend;
use e5v_core::{EmbedderOptions, Embeddings, Input};

use crate::fixtures::{embedder, root};

/// Calls of different sizes mixing texts, images of several grids and composed queries.
fn calls() -> Vec<Vec<Input>> {
    let image = |name: &str| Input::image(root().join("images").join(name));
    vec![
        vec![Input::text("one text")],
        vec![image("grad_499x300.png"), Input::text("a short text")],
        vec![
            Input::text("a longer text, long enough to sort it before the short ones"),
            image("noise_20x13.png"),
            Input::composed(root().join("images/grad_336x336.png"), "make it blue"),
            Input::text(""),
            image("rgba_320x240.png"),
        ],
        vec![image("grad_300x1000.png"), image("gray_299x200.png")],
    ]
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn concurrent_calls_equal_sequential_ones<B: Backend>() {
    let threads = env("E5V_STRESS_THREADS", 3);
    let rounds = env("E5V_STRESS_CALLS", 1);
    let e = Arc::new(embedder::<B>(
        "tiny-e5v",
        EmbedderOptions::default().with_batch_size(2),
    ));
    let calls = Arc::new(calls());
    let alone: Vec<Embeddings> = calls
        .iter()
        .map(|inputs| e.embed(inputs).expect("embeds"))
        .collect();
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let (e, calls) = (Arc::clone(&e), Arc::clone(&calls));
            std::thread::spawn(move || {
                // Each thread starts at another call, so different calls overlap.
                (0..rounds * calls.len())
                    .map(|k| {
                        let call = (thread + k) % calls.len();
                        (call, e.embed(&calls[call]).expect("embeds"))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut checked = 0;
    for handle in handles {
        for (call, result) in handle.join().expect("no thread panicked") {
            let same_bits = result
                .as_matrix()
                .iter()
                .zip(alone[call].as_matrix())
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same_bits && result == alone[call],
                "call {call} differs under concurrency"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, threads * rounds * calls.len());
}

#[test]
fn flex_concurrent_calls_equal_sequential_ones() {
    concurrent_calls_equal_sequential_ones::<burn::backend::Flex>();
}

/// ndarray is several times slower on images: only in the long run.
#[test]
#[ignore = "slow: scripts/stress-concurrency.sh runs it"]
fn ndarray_concurrent_calls_equal_sequential_ones() {
    concurrent_calls_equal_sequential_ones::<burn::backend::NdArray<f32>>();
}
