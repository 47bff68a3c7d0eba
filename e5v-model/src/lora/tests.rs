use std::path::PathBuf;

use burn::{
    backend::{Autodiff, NdArray},
    module::{AutodiffModule, Module},
    tensor::{DType, Distribution, Tensor, backend::Backend},
};

use super::*;
use crate::{Decoder, LlavaNext};

type B = NdArray<f32>;

fn tiny() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/tiny-e5v"))
}

fn texts() -> Vec<Vec<u32>> {
    vec![
        vec![1, 5, 9, 200, 13],
        vec![7, 3],
        vec![100, 101, 102, 103, 104, 105, 106, 107],
    ]
}

/// A rank-4 adapter on `targets` with every factor random (B non-zero, unlike a fresh one).
fn random_lora(decoder: &DecoderConfig, targets: &[LoraTarget]) -> Lora<B> {
    let device = Default::default();
    B::seed(&device, 7);
    let config = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.1,
        targets: targets.to_vec(),
        rslora: false,
    };
    let mut lora = config.init::<B>(decoder, &device).expect("valid config");
    lora.layers.iter_mut().for_each(|layer| {
        for slot in [
            &mut layer.q_proj,
            &mut layer.k_proj,
            &mut layer.v_proj,
            &mut layer.o_proj,
            &mut layer.gate_proj,
            &mut layer.up_proj,
            &mut layer.down_proj,
        ]
        .into_iter()
        .flatten()
        {
            let b = Tensor::random(slot.b.dims(), Distribution::Normal(0.0, 0.2), &device);
            slot.b = Param::initialized(slot.b.id, b);
        }
    });
    lora
}

fn max_diff(a: Tensor<B, 2>, b: Tensor<B, 2>) -> f32 {
    (a - b).abs().max().into_scalar()
}

#[test]
fn a_fresh_adapter_changes_nothing_and_draws_a_within_peft_bounds() {
    let device = Default::default();
    let (decoder, config) = Decoder::<B>::load(tiny(), &device, DType::F32).expect("tiny decoder");
    let lora = LoraConfig::default()
        .init::<B>(&config, &device)
        .expect("valid");
    assert_eq!(lora.adapters().count(), 7 * config.num_layers);
    for (_, target, adapter) in lora.adapters() {
        let bound = 1.0 / (target.shape(&config)[0] as f32).sqrt();
        assert!(adapter.a.val().abs().max().into_scalar() <= bound);
        assert_eq!(adapter.b.val().abs().max().into_scalar(), 0.0);
    }
    let base = decoder.embed_texts(&texts(), None).expect("embeds");
    let adapted = decoder.embed_texts(&texts(), Some(&lora)).expect("embeds");
    assert_eq!(max_diff(base, adapted), 0.0);
}

#[test]
fn merging_computes_what_the_unmerged_updates_do() {
    let device = Default::default();
    let (decoder, config) = Decoder::<B>::load(tiny(), &device, DType::F32).expect("tiny decoder");
    let lora = random_lora(&config, &LoraTarget::ALL);
    let unmerged = decoder.embed_texts(&texts(), Some(&lora)).expect("embeds");
    let base = decoder.embed_texts(&texts(), None).expect("embeds");
    // The update is far from negligible, so agreement below is not the base agreeing with itself.
    assert!(max_diff(unmerged.clone(), base) > 0.1);
    let mut merged = decoder.clone();
    merged.merge_lora(&lora).expect("fits");
    let merged = merged.embed_texts(&texts(), None).expect("embeds");
    assert!(max_diff(unmerged, merged) < 1e-4);
}

#[test]
fn only_the_targets_are_adapted() {
    let device = Default::default();
    let (decoder, config) = Decoder::<B>::load(tiny(), &device, DType::F32).expect("tiny decoder");
    let lora = random_lora(&config, &[LoraTarget::VProj, LoraTarget::DownProj]);
    assert_eq!(lora.adapters().count(), 2 * config.num_layers);
    let mut merged = decoder.clone();
    merged.merge_lora(&lora).expect("fits");
    let (a, b) = (&decoder.layers[1], &merged.layers[1]);
    let same = |x: &burn::nn::Linear<B>, y: &burn::nn::Linear<B>| {
        max_diff(x.weight.val(), y.weight.val()) == 0.0
    };
    assert!(same(&a.self_attn.q_proj, &b.self_attn.q_proj));
    assert!(same(&a.up_proj, &b.up_proj));
    assert!(!same(&a.self_attn.v_proj, &b.self_attn.v_proj));
    assert!(!same(&a.down_proj, &b.down_proj));
}

#[test]
fn dropout_is_off_for_inference() {
    let device = Default::default();
    let (decoder, config) = Decoder::<B>::load(tiny(), &device, DType::F32).expect("tiny decoder");
    let mut lora = random_lora(&config, &LoraTarget::ALL);
    let off = decoder.embed_texts(&texts(), Some(&lora)).expect("embeds");
    let again = decoder.embed_texts(&texts(), Some(&lora)).expect("embeds");
    assert_eq!(max_diff(off.clone(), again), 0.0);
    lora.set_dropout_active(true);
    let on = decoder.embed_texts(&texts(), Some(&lora)).expect("embeds");
    assert!(max_diff(on, off) > 0.0);
}

#[test]
fn dropout_keeps_one_minus_p_of_the_inputs_scaled_up() {
    let device = Default::default();
    let adapter = LoraLinear::<B>::new(
        FactorIds::of(0, LoraTarget::QProj),
        Tensor::eye(64, &device),
        Tensor::eye(64, &device),
    );
    let x = Tensor::<B, 2>::ones([256, 64], &device);
    let out = adapter.delta(x, 1.0, 0.25);
    let kept = out.clone().greater_elem(0.0).int().sum().into_scalar() as f64 / (256.0 * 64.0);
    assert!((kept - 0.75).abs() < 0.02, "kept {kept}");
    let scaled = out.max().into_scalar();
    assert!((scaled - 1.0 / 0.75).abs() < 1e-6);
}

#[test]
fn gradients_reach_the_adapter_and_not_the_frozen_base() {
    type A = Autodiff<B>;
    let device = Default::default();
    let (decoder, config) = Decoder::<A>::load(tiny(), &device, DType::F32).expect("tiny decoder");
    let decoder = decoder.no_grad();
    A::seed(&device, 3);
    let lora = LoraConfig {
        rank: 4,
        ..Default::default()
    }
    .init::<A>(&config, &device)
    .expect("valid");
    let loss = decoder
        .embed_texts(&texts(), Some(&lora))
        .expect("embeds")
        .powi_scalar(2)
        .sum();
    let grads = loss.backward();
    for (_, _, adapter) in lora.adapters() {
        // With B = 0 only B receives a gradient (as in PEFT): dL/dA = 0 exactly.
        let b = adapter.b.grad(&grads).expect("B has a gradient");
        assert!(b.abs().max().into_scalar() > 0.0);
    }
    let q = &decoder.layers[0].self_attn.q_proj.weight;
    assert!(q.grad(&grads).is_none());
    // The inner (no-graph) copy computes the same vectors.
    let inner = decoder
        .valid()
        .embed_texts(&texts(), Some(&lora.valid()))
        .expect("embeds");
    let outer = decoder
        .embed_texts(&texts(), Some(&lora))
        .expect("embeds")
        .inner();
    assert!(max_diff(inner, outer) < 1e-6);
}

#[test]
fn peft_files_round_trip_with_the_same_parameter_ids() {
    let device = Default::default();
    let (_, config) = Decoder::<B>::load(tiny(), &device, DType::F32).expect("tiny decoder");
    let lora = random_lora(&config, &[LoraTarget::QProj, LoraTarget::UpProj]);
    let dir = tempfile::tempdir().expect("temp dir");
    lora.save_peft(dir.path(), "tiny-e5v").expect("writes");
    let back = Lora::<B>::load_peft(dir.path(), &config, &device).expect("reads");
    assert_eq!(back.config().rank, 4);
    assert_eq!(back.config().alpha, 8.0);
    assert_eq!(
        back.config().targets,
        [LoraTarget::QProj, LoraTarget::UpProj]
    );
    for ((_, _, a), (_, _, b)) in lora.adapters().zip(back.adapters()) {
        assert_eq!((a.a.id, a.b.id), (b.a.id, b.b.id));
        assert_eq!(max_diff(a.a.val(), b.a.val()), 0.0);
        assert_eq!(max_diff(a.b.val(), b.b.val()), 0.0);
    }
}

#[test]
fn adapters_that_cannot_be_applied_completely_are_refused() {
    let device = Default::default();
    let (_, config) = Decoder::<B>::load(tiny(), &device, DType::F32).expect("tiny decoder");
    let lora = random_lora(&config, &[LoraTarget::QProj]);
    let dir = tempfile::tempdir().expect("temp dir");
    lora.save_peft(dir.path(), "tiny-e5v").expect("writes");
    let config_path = dir.path().join(PEFT_CONFIG_FILE);
    let original = std::fs::read_to_string(&config_path).expect("config");
    for (from, to) in [
        ("\"use_dora\": false", "\"use_dora\": true"),
        ("\"bias\": \"none\"", "\"bias\": \"all\""),
        ("\"rank_pattern\": {}", "\"rank_pattern\": {\"q_proj\": 8}"),
        ("\"r\": 4", "\"r\": 8"),
    ] {
        assert!(original.contains(from), "{from}");
        std::fs::write(&config_path, original.replace(from, to)).expect("write");
        let err = Lora::<B>::load_peft(dir.path(), &config, &device).expect_err(to);
        assert!(
            matches!(err, ModelError::InvalidAdapter { .. }),
            "{to}: {err}"
        );
    }
    std::fs::write(&config_path, &original).expect("write");
    // Another decoder's adapter (more layers than this one has).
    let mut smaller = config.clone();
    smaller.num_layers = 1;
    let err = Lora::<B>::load_peft(dir.path(), &smaller, &device).expect_err("too many layers");
    assert!(err.to_string().contains("layer 1"), "{err}");
}

#[test]
fn a_merged_checkpoint_loads_and_embeds_as_base_plus_adapter() {
    let device = Default::default();
    let (decoder, config) = Decoder::<B>::load(tiny(), &device, DType::F32).expect("tiny decoder");
    let lora = random_lora(&config, &LoraTarget::ALL);
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("merged");
    let report = merge_checkpoint(tiny(), &lora, &out).expect("merges");
    assert_eq!(report.merged_tensors, 7 * config.num_layers);
    assert!(out.join("tokenizer.json").is_file() && out.join("config.json").is_file());
    let merged = LlavaNext::<B>::load(&out, &device, DType::F32).expect("loads as a whole model");
    let expected = decoder.embed_texts(&texts(), Some(&lora)).expect("embeds");
    let got = merged
        .decoder()
        .embed_texts(&texts(), None)
        .expect("embeds");
    assert!(max_diff(expected, got) < 1e-4);
    let err = merge_checkpoint(tiny(), &lora, &out).expect_err("output exists");
    assert!(err.to_string().contains("not empty"), "{err}");
}
