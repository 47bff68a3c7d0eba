//! Layer-by-layer and end-to-end parity with transformers on the tiny random checkpoints.
//!
//! Tolerances: the fixtures are f32 with O(1) weights (see ORACLE.md), so activations are O(1)
//! to O(10). Measured max |diff| against transformers: decoder hidden states 2-4e-6, CLIP layer
//! -2 1.0-1.5e-5, projector and packed features 6-8e-6 (ndarray and flex); f32 reassociation in
//! matmuls and softmax accounts for that. The bound below leaves a 3x margin; the pooled vectors
//! agree to cosine 1 - 2e-9.

use burn::tensor::{Tensor, backend::Backend};
use e5v_model::{Batch, ImageCrops, ImagePipeline, ModelError, Sequence};

use crate::fixtures::{case, cosine, decode, ids, load, max_abs_diff, reference, reference_tensor};

const TOLERANCE: f32 = 5e-5;

fn behaviour(suffix: &str) -> ImagePipeline {
    match suffix {
        "t5" => ImagePipeline::Transformers,
        _ => ImagePipeline::Transformers441,
    }
}

fn last_row<B: Backend>(states: Tensor<B, 2>) -> Vec<f32> {
    let [seq, hidden] = states.dims();
    states
        .slice([seq - 1..seq, 0..hidden])
        .into_data()
        .to_vec()
        .expect("f32")
}

fn text_hidden_states_match<B: Backend>() {
    let device = Default::default();
    for dir in ["tiny-e5v", "tiny-e5v-4x"] {
        let model = load::<B>(dir);
        for id in ["txt_hello_t5", "txt_unicode_t5"] {
            let case = case(id);
            let states = decode(&model, model.decoder().embed(ids(&case.input_ids, &device)));
            let expected = reference_tensor::<B, 2>(&format!("{id}.hidden"), &device);
            let diff = max_abs_diff(states, expected);
            eprintln!("{dir} {id} hidden: {diff:e}");
            assert!(diff < TOLERANCE, "{dir} {id}: max |diff| {diff}");
        }
    }
}

fn image_pipeline_matches_layer_by_layer<B: Backend>() {
    let device = Default::default();
    let model = load::<B>("tiny-e5v");
    for suffix in ["t5", "t441"] {
        let id = format!("img_grad_499x300_{suffix}");
        let case = case(&id);
        let pixels = reference_tensor::<B, 4>(&format!("{id}.pixel_values"), &device);
        let clip = model.vision_tower().forward(pixels);
        let diff = max_abs_diff(
            clip.clone(),
            reference_tensor(&format!("{id}.clip_features"), &device),
        );
        eprintln!("{id} CLIP layer -2: {diff:e}");
        assert!(diff < TOLERANCE, "{id} CLIP layer -2: {diff}");
        let projected = model.projector().forward(clip);
        let diff = max_abs_diff(
            projected.clone(),
            reference_tensor(&format!("{id}.projected"), &device),
        );
        eprintln!("{id} projector: {diff:e}");
        assert!(diff < TOLERANCE, "{id} projector: {diff}");
        let [h, w] = case.image_size.expect("image case");
        let packed = model
            .pack_image(projected, (h, w), behaviour(suffix))
            .expect("packs");
        assert_eq!(
            Some(packed.dims()[0]),
            case.image_tokens,
            "{id} image tokens"
        );
        let diff = max_abs_diff(
            packed.clone(),
            reference_tensor(&format!("{id}.packed"), &device),
        );
        eprintln!("{id} packed: {diff:e}");
        assert!(diff < TOLERANCE, "{id} packed: {diff}");

        // Splice at the image token and run the decoder: the pooled vector is E5-V's.
        let at = case
            .input_ids
            .iter()
            .position(|&t| t == model.config().image_token_id)
            .expect("image token");
        let before = model.decoder().embed(ids(&case.input_ids[..at], &device));
        let after = model
            .decoder()
            .embed(ids(&case.input_ids[at + 1..], &device));
        let sequence = Tensor::cat(vec![before, packed, after], 0);
        assert_eq!(sequence.dims()[0], case.seq_len);
        let pooled = last_row(decode(&model, sequence));
        let (_, expected) = reference(&format!("{id}.embedding"));
        let cos = cosine(&pooled, &expected);
        eprintln!("{id}: cosine {cos}");
        assert!(cos > 0.99999, "{id}: cosine {cos}");
    }
}

fn both_layouts_load_the_same_weights<B: Backend>() {
    let device = Default::default();
    let case = case("txt_short1_t5");
    let pooled: Vec<Vec<f32>> = ["tiny-e5v", "tiny-e5v-4x"]
        .iter()
        .map(|dir| {
            let model = load::<B>(dir);
            last_row(decode(
                &model,
                model.decoder().embed(ids(&case.input_ids, &device)),
            ))
        })
        .collect();
    assert_eq!(
        pooled[0], pooled[1],
        "f32 and fp16-sharded copies hold the same values"
    );
}

/// A mixed batch through `LlavaNext::forward`: one vector per sequence, in order, each equal to
/// transformers' embedding and to what the sequence gives alone.
fn forward_pools_a_mixed_batch<B: Backend>() {
    let device = Default::default();
    let model = load::<B>("tiny-e5v");
    let ids = ["txt_hello_t5", "img_grad_499x300_t5", "txt_long_t5"];
    let sequence = |id: &str| {
        let case = case(id);
        let image = case.image_size.map(|[h, w]| ImageCrops {
            pixels: reference_tensor::<B, 4>(&format!("{id}.pixel_values"), &device),
            size: (h, w),
        });
        Sequence {
            ids: case.input_ids,
            image,
        }
    };
    let batch = |ids: &[&str]| Batch {
        sequences: ids.iter().map(|id| sequence(id)).collect(),
        image_pipeline: ImagePipeline::Transformers,
    };
    let pooled = model.forward(batch(&ids)).expect("valid batch");
    assert_eq!(pooled.dims(), [3, model.config().text.hidden_size]);
    for (row, id) in ids.iter().enumerate() {
        let [_, hidden] = pooled.dims();
        let vector = pooled.clone().slice([row..row + 1, 0..hidden]);
        let values: Vec<f32> = vector.clone().into_data().to_vec().expect("f32");
        let (_, expected) = reference(&format!("{id}.embedding"));
        let cos = cosine(&values, &expected);
        assert!(cos > 0.99999, "{id}: cosine {cos}");
        let alone = model.forward(batch(&[id])).expect("valid batch");
        let diff = max_abs_diff(vector, alone);
        assert!(diff < TOLERANCE, "{id}: batched vs alone {diff}");
    }
}

fn forward_rejects_inconsistent_input<B: Backend>() {
    let device = Default::default();
    let model = load::<B>("tiny-e5v");
    let image_token = model.config().image_token_id;
    let text = case("txt_hello_t5").input_ids;
    let image_case = case("img_grad_499x300_t5");
    let [h, w] = image_case.image_size.expect("image case");
    let pixels = reference_tensor::<B, 4>("img_grad_499x300_t5.pixel_values", &device);
    let vocab = model.decoder().vocab_size() as u32;
    let bad = [
        vec![],
        vec![Sequence::text(vec![])],
        vec![Sequence::text(vec![1, image_token, 2])],
        vec![Sequence::text(vec![1, vocab])],
        vec![Sequence::with_image(
            text.clone(),
            ImageCrops {
                pixels: pixels.clone(),
                size: (h, w),
            },
        )],
        // The image's base crop without its grid crops.
        vec![Sequence::with_image(
            image_case.input_ids.clone(),
            ImageCrops {
                pixels: pixels.narrow(0, 0, 1),
                size: (h, w),
            },
        )],
    ];
    for sequences in bad {
        let what = format!("{:?}", sequences.iter().map(|s| &s.ids).collect::<Vec<_>>());
        let result = model.forward(Batch {
            sequences,
            image_pipeline: ImagePipeline::Transformers,
        });
        assert!(
            matches!(result, Err(ModelError::InvalidInput(_))),
            "{what}: {result:?}"
        );
    }
}

on_backends!(
    text_hidden_states_match,
    image_pipeline_matches_layer_by_layer,
    both_layouts_load_the_same_weights,
    forward_pools_a_mixed_batch,
    forward_rejects_inconsistent_input
);
