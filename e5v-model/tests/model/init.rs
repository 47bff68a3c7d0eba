//! Random initialisation (`LlavaNextConfig::init`): the parameters of a loaded model, HF's
//! initialisers, and a working forward pass.

use burn::{
    module::{Module, ModuleVisitor, Param},
    tensor::{DType, Int, Tensor, backend::Backend},
};
use e5v_model::{Batch, ImageCrops, LlavaNextConfig, ModelError, Sequence, anyres};

use crate::fixtures::{load, max_abs_diff, root};

const FIXTURES: [&str; 4] = [
    "tiny-e5v",
    "tiny-e5v-4x",
    "tiny-llava-mistral",
    "tiny-e5v-llama3-rope",
];

fn config(dir: &str) -> LlavaNextConfig {
    LlavaNextConfig::from_file(root().join(dir).join("config.json")).expect("fixture config")
}

/// One float parameter.
#[derive(Debug, PartialEq)]
struct Entry {
    /// Module path, as `decoder.layers.0.self_attn.q_proj.weight`.
    path: String,
    dims: Vec<usize>,
    dtype: DType,
    /// The values, as f32.
    values: Vec<f32>,
}

/// Collects every float parameter.
#[derive(Default)]
struct Params {
    path: Vec<String>,
    params: Vec<Entry>,
}

impl<B: Backend> ModuleVisitor<B> for Params {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        self.params.push(Entry {
            path: self.path.join("."),
            dims: tensor.dims().to_vec(),
            dtype: tensor.dtype(),
            values: tensor.cast(DType::F32).into_data().to_vec().expect("f32"),
        });
    }
}

fn params<B: Backend>(model: &impl Module<B>) -> Vec<Entry> {
    let mut visitor = Params::default();
    model.visit(&mut visitor);
    visitor.params
}

fn shapes<B: Backend>(model: &impl Module<B>) -> Vec<(String, Vec<usize>)> {
    params(model)
        .into_iter()
        .map(|entry| (entry.path, entry.dims))
        .collect()
}

/// A batch of one text and one image sequence, with synthetic pixels of the right shape.
fn batch<B: Backend>(config: &LlavaNextConfig, device: &B::Device) -> Batch<B> {
    batch_of(config, device, DType::F32)
}

/// [`batch`] with pixels in `dtype`.
fn batch_of<B: Backend>(config: &LlavaNextConfig, device: &B::Device, dtype: DType) -> Batch<B> {
    let size = (300, 499);
    let side = config.vision.image_size;
    let (rows, cols) = anyres::grid_shape(
        size,
        &config.grid_pinpoints,
        side as u32,
        Default::default(),
    );
    let crops = 1 + rows * cols;
    let pixels = Tensor::<B, 1, Int>::arange(0..(crops * 3 * side * side) as i64, device)
        .float()
        .reshape([crops, 3, side, side]);
    let pixels = (pixels * 0.001).sin().cast(dtype);
    let image = config.image_token_id;
    Batch {
        sequences: vec![
            Sequence::text(vec![1, 5, 9, 17]),
            Sequence::with_image(vec![1, 2, image, 3, 4], ImageCrops { pixels, size }),
        ],
        image_pipeline: Default::default(),
    }
}

fn init_has_the_parameters_of_a_loaded_model<B: Backend>() {
    let device = Default::default();
    for dir in FIXTURES {
        let loaded = load::<B>(dir);
        let config = config(dir);
        let init = config.init::<B>(&device);
        assert_eq!(shapes(&init), shapes(&loaded), "{dir}");
        assert_eq!(init.num_params(), loaded.num_params(), "{dir}");
        // Each part on its own, as its config builds it.
        assert_eq!(
            shapes(&config.vision.init::<B>(&device)),
            shapes(loaded.vision_tower())
        );
        assert_eq!(
            shapes(&config.projector.init::<B>(&device)),
            shapes(loaded.projector())
        );
        assert_eq!(
            shapes(&config.text.init::<B>(&device)),
            shapes(loaded.decoder())
        );
    }
}

fn a_loaded_record_loads_into_an_init_model<B: Backend>() {
    let device = Default::default();
    let loaded = load::<B>("tiny-e5v");
    let text = || Batch {
        sequences: vec![Sequence::text(vec![1, 5, 9, 17])],
        image_pipeline: Default::default(),
    };
    let expected = loaded.forward(text()).expect("valid batch");
    let init = config("tiny-e5v").init::<B>(&device);
    let random = init.forward(text()).expect("valid batch");
    assert!(
        max_abs_diff(random, expected.clone()) > 1e-3,
        "random weights"
    );
    let init = init.load_record(loaded.clone().into_record());
    assert!(params(&init) == params(&loaded), "every parameter loaded");
    let got = init.forward(text()).expect("valid batch");
    assert_eq!(max_abs_diff(got, expected), 0.0);
}

fn init_model_forward_gives_finite_vectors<B: Backend>() {
    let device = Default::default();
    let config = config("tiny-e5v");
    let model = config.init::<B>(&device);
    let pooled = model.forward(batch(&config, &device)).expect("valid batch");
    assert_eq!(pooled.dims(), [2, config.text.hidden_size]);
    let values: Vec<f32> = pooled.into_data().to_vec().expect("f32");
    assert!(values.iter().all(|v| v.is_finite()), "{values:?}");
    // Final-normed states of a random model are O(1), not collapsed to a constant.
    let spread = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(spread > 0.1, "max |value| {spread}");
}

/// Which parameters, by path.
type Select<'a> = &'a dyn Fn(&str) -> bool;

/// (mean, std, count) of the values of all parameters whose path satisfies `select`.
fn moments(params: &[Entry], select: Select) -> (f64, f64, usize) {
    let values: Vec<f64> = params
        .iter()
        .filter(|entry| select(&entry.path))
        .flat_map(|entry| entry.values.iter().map(|&v| f64::from(v)))
        .collect();
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt(), values.len())
}

fn init_draws_the_configured_stds<B: Backend>() {
    let mut config = config("tiny-e5v");
    config.text.initializer_range = 0.05;
    config.vision.initializer_range = 0.01;
    config.projector.initializer_range = 0.03;
    let params = params(&config.init::<B>(&Default::default()));
    let is_bias = |p: &str| p.ends_with(".bias");
    let is_norm = |p: &str| p.contains("norm");
    let groups: [(&str, f64, Select); 8] = [
        ("decoder table", 0.05, &|p| p == "decoder.embed_tokens"),
        ("decoder linears", 0.05, &|p| {
            p.starts_with("decoder.layers.") && !is_norm(p)
        }),
        ("vision linears", 0.01, &|p| {
            p.starts_with("vision.layers.") && !is_norm(p) && !is_bias(p)
        }),
        ("patch embedding", 0.01, &|p| p == "vision.patch_embedding"),
        ("position embedding", 0.01, &|p| {
            p == "vision.position_embedding"
        }),
        ("projector", 0.03, &|p| {
            p.starts_with("projector.") && !is_bias(p)
        }),
        // 32 and 64 values: a loose check that the std is hidden^-0.5, not 0.02.
        ("class embedding", 32f64.powf(-0.5), &|p| {
            p == "vision.class_embedding"
        }),
        ("image newline", 64f64.powf(-0.5), &|p| p == "image_newline"),
    ];
    for (name, std, select) in groups {
        let (mean, got, n) = moments(&params, select);
        // The relative error of a sample std is about 1/sqrt(2n): 5 sigma, at least 2%.
        let tolerance = (5.0 / (2.0 * n as f64).sqrt()).max(0.02);
        assert!(n >= 32, "{name}: {n} values");
        assert!(
            (got / std - 1.0).abs() < tolerance,
            "{name}: std {got} for {std} ({n} values)"
        );
        assert!(
            mean.abs() < 5.0 * std / (n as f64).sqrt(),
            "{name}: mean {mean}"
        );
    }
    for Entry { path, values, .. } in &params {
        let constant = match path {
            p if is_bias(p) => 0.0,
            p if is_norm(p) => 1.0,
            _ => continue,
        };
        assert!(values.iter().all(|&v| v == constant), "{path}: {values:?}");
    }
    let biases = params.iter().filter(|entry| is_bias(&entry.path)).count();
    assert_eq!(
        biases,
        2 * 6 + 2 * 2 + 1 + 2,
        "vision, LayerNorms, projector"
    );
}

fn init_with_dtype_casts_every_weight<B: Backend>(dtype: DType) {
    let device = Default::default();
    let config = config("tiny-e5v");
    match B::supports_dtype(&device, dtype) {
        true => {
            let model = config
                .init_with_dtype::<B>(&device, dtype)
                .expect("supported");
            let params = params(&model);
            assert!(params.iter().all(|entry| entry.dtype == dtype));
            let pooled = model
                .forward(batch_of(&config, &device, dtype))
                .expect("valid batch");
            assert_eq!(pooled.dtype(), dtype);
            let values: Vec<f32> = pooled.cast(DType::F32).into_data().to_vec().expect("f32");
            assert!(values.iter().all(|v| v.is_finite()));
        }
        false => {
            let err = config
                .init_with_dtype::<B>(&device, dtype)
                .expect_err("unsupported");
            assert!(
                matches!(err, ModelError::Unsupported { field: "dtype", .. }),
                "{err}"
            );
        }
    }
}

fn init_with_half_precision<B: Backend>() {
    init_with_dtype_casts_every_weight::<B>(DType::F16);
}

on_backends!(
    init_has_the_parameters_of_a_loaded_model,
    a_loaded_record_loads_into_an_init_model,
    init_model_forward_gives_finite_vectors,
    init_draws_the_configured_stds,
    init_with_half_precision
);
