//! LoRA adapters on the decoder's projections: `W·x + (alpha / r)·B·A·dropout(x)`, as PEFT
//! computes them, for training (e5v-train) and for applying a trained adapter.
//!
//! The adapter is a module of its own ([`Lora`]), separate from the frozen [`Decoder`](crate::Decoder): the
//! optimizer sees only its parameters, and [`Decoder::forward_with_lora`](crate::Decoder::forward_with_lora) adds its products to
//! the base projections. Its parameters are kept in `f32` whatever the base's dtype (PEFT does
//! the same), and have fixed ids (layer, projection, factor) so an optimizer's state saved with
//! one adapter applies to the same adapter loaded again.

mod merge;
mod peft;
mod target;

pub(crate) use merge::merged_weight;
pub use merge::{MergeReport, merge_checkpoint};
pub use peft::{CONFIG_FILE as PEFT_CONFIG_FILE, WEIGHTS_FILE as PEFT_WEIGHTS_FILE};
pub use target::LoraTarget;

use burn::{
    module::{Module, Param, ParamId},
    tensor::{DType, Distribution, Tensor, backend::Backend},
};

use crate::{DecoderConfig, ModelError, Result, nn::matmul};

/// The shape and behaviour of an adapter. [`Default`] is E5-V's: rank 64, alpha 16, dropout
/// 0.05 on all seven projections.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// The rank `r` of each update.
    pub rank: usize,
    /// `alpha`: the update is scaled by `alpha / r` (by `alpha / sqrt(r)` with `rslora`).
    pub alpha: f64,
    /// The probability of zeroing an input element of the update during training.
    pub dropout: f64,
    /// The projections that get an update, in every decoder layer.
    pub targets: Vec<LoraTarget>,
    /// rsLoRA's scaling `alpha / sqrt(r)` (PEFT's `use_rslora`).
    pub rslora: bool,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: 64,
            alpha: 16.0,
            dropout: 0.05,
            targets: LoraTarget::ALL.to_vec(),
            rslora: false,
        }
    }
}

impl LoraConfig {
    /// The factor of the update.
    pub fn scale(&self) -> f64 {
        match self.rslora {
            true => self.alpha / (self.rank as f64).sqrt(),
            false => self.alpha / self.rank as f64,
        }
    }

    /// Fails on a zero rank, a dropout outside `[0, 1)`, a non-finite alpha or no targets.
    pub fn validate(&self) -> Result<()> {
        let invalid = |what: String| Err(ModelError::InvalidConfig(format!("LoRA: {what}")));
        if self.rank == 0 {
            return invalid("the rank must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return invalid(format!("dropout {} is not in [0, 1)", self.dropout));
        }
        if !self.alpha.is_finite() {
            return invalid(format!("alpha {} is not finite", self.alpha));
        }
        if self.targets.is_empty() {
            return invalid("no target projections".into());
        }
        Ok(())
    }

    /// A fresh adapter for a decoder of `decoder`'s shape, initialised as PEFT does: `A`
    /// uniform in `±1/sqrt(in)` (Kaiming-uniform with `a = sqrt(5)`), `B` zero, so the adapted
    /// model starts equal to the base. Seed the backend (`B::seed`) for reproducible draws.
    pub fn init<B: Backend>(&self, decoder: &DecoderConfig, device: &B::Device) -> Result<Lora<B>> {
        self.validate()?;
        let layers = (0..decoder.num_layers)
            .map(|layer| {
                LayerLora::build(self, decoder, layer, |_, id, [input, output]| {
                    let bound = 1.0 / (input as f64).sqrt();
                    let a: Tensor<B, 2> = Tensor::random(
                        [input, self.rank],
                        Distribution::Uniform(-bound, bound),
                        device,
                    );
                    let b = Tensor::zeros([self.rank, output], (device, DType::F32));
                    Ok(LoraLinear::new(id, a.cast(DType::F32), b))
                })
            })
            .collect::<Result<_>>()?;
        Ok(Lora {
            layers,
            config: self.clone(),
            dropout_active: false,
        })
    }
}

/// The adapters of every decoder layer.
#[derive(Module, Debug)]
pub struct Lora<B: Backend> {
    layers: Vec<LayerLora<B>>,
    #[module(skip)]
    config: LoraConfig,
    #[module(skip)]
    dropout_active: bool,
}

/// The adapters of one decoder layer, one per target projection.
#[derive(Module, Debug)]
pub(crate) struct LayerLora<B: Backend> {
    pub q_proj: Option<LoraLinear<B>>,
    pub k_proj: Option<LoraLinear<B>>,
    pub v_proj: Option<LoraLinear<B>>,
    pub o_proj: Option<LoraLinear<B>>,
    pub gate_proj: Option<LoraLinear<B>>,
    pub up_proj: Option<LoraLinear<B>>,
    pub down_proj: Option<LoraLinear<B>>,
}

/// The two factors of one projection's update, in burn's layout: `a` is `[in, r]`, `b` is
/// `[r, out]` (PEFT's `lora_A.weight` and `lora_B.weight` transposed).
#[derive(Module, Debug)]
pub(crate) struct LoraLinear<B: Backend> {
    pub a: Param<Tensor<B, 2>>,
    pub b: Param<Tensor<B, 2>>,
}

/// Where one projection's factors sit: the fixed parameter ids of layer `layer`'s `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FactorIds {
    pub a: ParamId,
    pub b: ParamId,
}

impl FactorIds {
    fn of(layer: usize, target: LoraTarget) -> Self {
        // Above 2^40, far from nothing: ParamId::new() draws 64-bit random ids, a collision
        // with these is as unlikely as between two random ones.
        let base = (1u64 << 40) + (layer as u64 * LoraTarget::ALL.len() as u64 + target as u64) * 2;
        Self {
            a: ParamId::from(base),
            b: ParamId::from(base + 1),
        }
    }
}

impl<B: Backend> LoraLinear<B> {
    fn new(ids: FactorIds, a: Tensor<B, 2>, b: Tensor<B, 2>) -> Self {
        Self {
            a: Param::initialized(ids.a, a.require_grad()),
            b: Param::initialized(ids.b, b.require_grad()),
        }
    }

    /// `scale · dropout(x) · A · B`, in `x`'s dtype (computed in the factors' `f32`).
    fn delta<const D: usize>(&self, x: Tensor<B, D>, scale: f64, dropout: f64) -> Tensor<B, D> {
        let dtype = x.dtype();
        let a = self.a.val();
        let mut x = match dtype == a.dtype() {
            true => x,
            false => x.cast(a.dtype()),
        };
        if dropout > 0.0 {
            let keep = 1.0 - dropout;
            let mask =
                Tensor::<B, D>::random(x.shape(), Distribution::Bernoulli(keep), &x.device());
            x = x * mask.cast(a.dtype()) / keep;
        }
        let delta = matmul(matmul(x, a.unsqueeze()), self.b.val().unsqueeze()) * scale;
        match delta.dtype() == dtype {
            true => delta,
            false => delta.cast(dtype),
        }
    }
}

impl<B: Backend> LayerLora<B> {
    /// The layer's adapters, each made by `make(target, ids, [in, out])` for the configured
    /// targets.
    fn build(
        config: &LoraConfig,
        decoder: &DecoderConfig,
        layer: usize,
        mut make: impl FnMut(LoraTarget, FactorIds, [usize; 2]) -> Result<LoraLinear<B>>,
    ) -> Result<Self> {
        let mut slot = |target: LoraTarget| -> Result<Option<LoraLinear<B>>> {
            match config.targets.contains(&target) {
                true => make(target, FactorIds::of(layer, target), target.shape(decoder)).map(Some),
                false => Ok(None),
            }
        };
        Ok(Self {
            q_proj: slot(LoraTarget::QProj)?,
            k_proj: slot(LoraTarget::KProj)?,
            v_proj: slot(LoraTarget::VProj)?,
            o_proj: slot(LoraTarget::OProj)?,
            gate_proj: slot(LoraTarget::GateProj)?,
            up_proj: slot(LoraTarget::UpProj)?,
            down_proj: slot(LoraTarget::DownProj)?,
        })
    }

    pub(crate) fn get(&self, target: LoraTarget) -> Option<&LoraLinear<B>> {
        match target {
            LoraTarget::QProj => self.q_proj.as_ref(),
            LoraTarget::KProj => self.k_proj.as_ref(),
            LoraTarget::VProj => self.v_proj.as_ref(),
            LoraTarget::OProj => self.o_proj.as_ref(),
            LoraTarget::GateProj => self.gate_proj.as_ref(),
            LoraTarget::UpProj => self.up_proj.as_ref(),
            LoraTarget::DownProj => self.down_proj.as_ref(),
        }
    }
}

/// One layer's adapters as the decoder block applies them.
#[derive(Clone, Copy)]
pub(crate) struct LayerAdapters<'a, B: Backend> {
    layer: &'a LayerLora<B>,
    scale: f64,
    dropout: f64,
}

impl<B: Backend> LayerAdapters<'_, B> {
    /// `target`'s update of `x`, if it has an adapter.
    pub(crate) fn delta<const D: usize>(
        &self,
        target: LoraTarget,
        x: &Tensor<B, D>,
    ) -> Option<Tensor<B, D>> {
        let adapter = self.layer.get(target)?;
        Some(adapter.delta(x.clone(), self.scale, self.dropout))
    }
}

impl<B: Backend> Lora<B> {
    /// The configuration it was made with (or read from a PEFT adapter).
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// Decoder layers covered.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Turns the dropout of the updates on (training) or off (the default: inference).
    /// Masks are drawn from the backend's generator: seed it (`B::seed`) to replay them.
    pub fn set_dropout_active(&mut self, active: bool) {
        self.dropout_active = active;
    }

    /// Whether dropout is applied.
    pub fn dropout_active(&self) -> bool {
        self.dropout_active
    }

    /// Layer `layer`'s adapters, with the scale and the dropout in force.
    pub(crate) fn layer(&self, layer: usize) -> Option<LayerAdapters<'_, B>> {
        Some(LayerAdapters {
            layer: self.layers.get(layer)?,
            scale: self.config.scale(),
            dropout: match self.dropout_active {
                true => self.config.dropout,
                false => 0.0,
            },
        })
    }

    /// The factors of layer `layer`'s `target`, if adapted.
    pub(crate) fn layer_adapter(&self, layer: usize, target: LoraTarget) -> Option<&LoraLinear<B>> {
        self.layers.get(layer)?.get(target)
    }

    /// The parameter ids of layer `layer`'s `target` factors `(A, B)`, if adapted: where an
    /// optimizer's gradients and state for them are found.
    pub fn param_ids(&self, layer: usize, target: LoraTarget) -> Option<(ParamId, ParamId)> {
        self.layer_adapter(layer, target).map(|f| (f.a.id, f.b.id))
    }

    /// Every adapted projection: (layer, target, factors).
    pub(crate) fn adapters(&self) -> impl Iterator<Item = (usize, LoraTarget, &LoraLinear<B>)> {
        self.layers.iter().enumerate().flat_map(|(layer, lora)| {
            LoraTarget::ALL
                .iter()
                .filter_map(move |&target| lora.get(target).map(|a| (layer, target, a)))
        })
    }

    /// Fails unless the adapter covers exactly `layers` decoder layers.
    pub(crate) fn check_fits_layers(&self, layers: usize) -> Result<()> {
        match self.layers.len() == layers {
            true => Ok(()),
            false => Err(ModelError::InvalidInput(format!(
                "LoRA adapter: {} layers for a decoder of {layers}",
                self.layers.len()
            ))),
        }
    }

    /// Fails unless the adapter fits a decoder of `decoder`'s shape.
    pub fn check_fits(&self, decoder: &DecoderConfig) -> Result<()> {
        let mismatch =
            |what: String| Err(ModelError::InvalidInput(format!("LoRA adapter: {what}")));
        if self.layers.len() != decoder.num_layers {
            return mismatch(format!(
                "{} layers for a decoder of {}",
                self.layers.len(),
                decoder.num_layers
            ));
        }
        for (layer, target, adapter) in self.adapters() {
            let [input, output] = target.shape(decoder);
            let rank = self.config.rank;
            if adapter.a.dims() != [input, rank] || adapter.b.dims() != [rank, output] {
                return mismatch(format!(
                    "layer {layer} {}: A {:?} and B {:?}, expected {:?} and {:?}",
                    target.name(),
                    adapter.a.dims(),
                    adapter.b.dims(),
                    [input, rank],
                    [rank, output]
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
