//! Rotary position embedding in HF's `rotate_half` layout.

use burn::tensor::{DType, Int, Tensor, backend::Backend};

use crate::config::{Llama3RopeScaling, RopeConfig};

/// The inverse frequencies of a rotary embedding (a constant, not a parameter).
#[derive(Debug, Clone)]
pub(crate) struct RotaryEmbedding {
    inv_freq: Vec<f32>,
}

impl RotaryEmbedding {
    /// Frequencies for heads of width `head_dim`, computed in f32 as transformers does.
    pub fn new(config: &RopeConfig, head_dim: usize) -> Self {
        let base = config.theta as f32;
        let inv_freq = (0..head_dim / 2)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / head_dim as f32))
            .map(|f| match &config.llama3_scaling {
                Some(scaling) => llama3_scale(f, scaling),
                None => f,
            })
            .collect();
        Self { inv_freq }
    }

    /// cos/sin tables for the given positions, computed in f32 and cast to `dtype`.
    ///
    /// # Shapes
    /// - positions: `[batch, seq]` -> tables `[batch, 1, seq, head_dim]`
    pub fn tables<B: Backend>(&self, positions: Tensor<B, 2, Int>, dtype: DType) -> RopeTables<B> {
        let [batch, seq] = positions.dims();
        let half = self.inv_freq.len();
        let device = positions.device();
        let inv_freq = Tensor::<B, 1>::from_data(self.inv_freq.as_slice(), (&device, DType::F32))
            .reshape([1, 1, half]);
        let freqs = positions.float().cast(DType::F32).reshape([batch, seq, 1]) * inv_freq;
        let angles = Tensor::cat(vec![freqs.clone(), freqs], 2).unsqueeze_dim::<4>(1);
        RopeTables {
            cos: angles.clone().cos().cast(dtype),
            sin: angles.sin().cast(dtype),
        }
    }
}

/// The `llama3` frequency scaling of transformers (`_compute_llama3_parameters`).
fn llama3_scale(inv_freq: f32, s: &Llama3RopeScaling) -> f32 {
    let old_context = s.original_max_position_embeddings as f32;
    let low_freq_wavelen = old_context / s.low_freq_factor as f32;
    let high_freq_wavelen = old_context / s.high_freq_factor as f32;
    let wavelen = 2.0 * std::f32::consts::PI / inv_freq;
    let factor = s.factor as f32;
    if wavelen < high_freq_wavelen {
        inv_freq
    } else if wavelen > low_freq_wavelen {
        inv_freq / factor
    } else {
        let smooth = (old_context / wavelen - s.low_freq_factor as f32)
            / (s.high_freq_factor - s.low_freq_factor) as f32;
        (1.0 - smooth) * inv_freq / factor + smooth * inv_freq
    }
}

/// cos and sin of the rotation angles for a batch of positions.
#[derive(Debug, Clone)]
pub(crate) struct RopeTables<B: Backend> {
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
}

impl<B: Backend> RopeTables<B> {
    /// The cos and sin tables, `[batch, 1, seq, head_dim]`.
    pub fn cos_sin(&self) -> (&Tensor<B, 4>, &Tensor<B, 4>) {
        (&self.cos, &self.sin)
    }

    /// `x * cos + rotate_half(x) * sin`, with `rotate_half([a, b]) = [-b, a]`.
    ///
    /// # Shapes
    /// - x: `[batch, heads, seq, head_dim]` -> same
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [batch, heads, seq, dim] = x.dims();
        let half = dim / 2;
        let first = x.clone().slice([0..batch, 0..heads, 0..seq, 0..half]);
        let second = x.clone().slice([0..batch, 0..heads, 0..seq, half..dim]);
        let rotated = Tensor::cat(vec![second.neg(), first], 3);
        x * self.cos.clone() + rotated * self.sin.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequencies_follow_the_hf_formula() {
        let rope = RotaryEmbedding::new(
            &RopeConfig {
                theta: 500000.0,
                llama3_scaling: None,
            },
            8,
        );
        let expected: Vec<f32> = (0..4)
            .map(|i| 1.0 / 500000f32.powf(i as f32 / 4.0))
            .collect();
        assert_eq!(rope.inv_freq, expected);
    }

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let s = Llama3RopeScaling {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        };
        assert_eq!(llama3_scale(1.0, &s), 1.0);
        assert_eq!(llama3_scale(1e-5, &s), 1e-5 / 8.0);
        let medium = 2.0 * std::f32::consts::PI / 4000.0;
        let scaled = llama3_scale(medium, &s);
        assert!(scaled < medium && scaled > medium / 8.0);
    }
}
