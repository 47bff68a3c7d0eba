//! What a device allows: the largest buffer one tensor may occupy, and the batch and
//! attention budgets that follow from it, so that an input the device cannot hold is a typed
//! error instead of a silently wrong vector.

use burn::tensor::backend::Backend;
use e5v_model::{AttentionBudget, LlavaNextConfig};

/// The limits of one device for one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceLimits {
    /// Bytes one tensor may occupy (`None`: no limit below the device's memory).
    pub max_buffer: Option<u64>,
}

/// Default padded tokens per batch: a few E5-V images (~2.3-2.9k tokens each) or a few
/// hundred short texts.
pub(crate) const DEFAULT_BATCH_TOKENS: usize = 16_384;
/// Default image crops per batch: three to six images through the vision tower together.
pub(crate) const DEFAULT_BATCH_CROPS: usize = 32;

impl DeviceLimits {
    /// The limits of `device`: wgpu adapters cap each storage-buffer binding (128 MiB on
    /// some); the CPU backends and CUDA have no cap below memory.
    pub fn of<B: Backend>(device: &B::Device) -> Self {
        Self {
            max_buffer: max_buffer_bytes::<B>(device),
        }
    }

    /// Attention's score blocks: the default, or half a binding when that is smaller.
    pub fn attention_budget(self) -> AttentionBudget {
        match self.max_buffer {
            Some(max) => AttentionBudget::bytes(
                AttentionBudget::DEFAULT
                    .get()
                    .min(usize::try_from(max / 2).unwrap_or(usize::MAX)),
            ),
            None => AttentionBudget::DEFAULT,
        }
    }

    /// The default token budget: [`DEFAULT_BATCH_TOKENS`], fewer if the decoder's widest
    /// activation would not fit one buffer.
    pub fn batch_tokens(self, config: &LlavaNextConfig, elem: usize) -> usize {
        let per_token = (decoder_row(config) * elem) as u64;
        self.fitting(DEFAULT_BATCH_TOKENS, per_token)
    }

    /// The default crop budget: [`DEFAULT_BATCH_CROPS`], fewer if the vision tower's widest
    /// activation would not fit one buffer.
    pub fn batch_crops(self, config: &LlavaNextConfig, elem: usize) -> usize {
        let per_crop = (vision_crop(config) * elem) as u64;
        self.fitting(DEFAULT_BATCH_CROPS, per_crop)
    }

    /// The widest weight that does not fit one buffer, as `(elements, limit)`.
    pub fn oversized_weight(
        self,
        config: &LlavaNextConfig,
        vocab: usize,
        elem: usize,
    ) -> Option<(u64, u64)> {
        let text = &config.text;
        let widest = [
            vocab * text.hidden_size,
            text.intermediate_size * text.hidden_size,
            text.num_heads * text.head_dim * text.hidden_size,
            config.vision.intermediate_size * config.vision.hidden_size,
            config.projector.input_size * config.projector.output_size,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        self.exceeded((widest * elem) as u64)
    }

    /// Whether a decoder batch of `rows` sequences of `seq` tokens fits, as `(bytes, limit)`
    /// when it does not.
    pub fn decoder_overflow(
        self,
        config: &LlavaNextConfig,
        rows: usize,
        seq: usize,
        elem: usize,
    ) -> Option<(u64, u64)> {
        self.exceeded((rows * seq * decoder_row(config) * elem) as u64)
    }

    /// Whether `crops` crops fit the vision tower at once, as `(bytes, limit)` when not.
    pub fn vision_overflow(
        self,
        config: &LlavaNextConfig,
        crops: usize,
        elem: usize,
    ) -> Option<(u64, u64)> {
        self.exceeded((crops * vision_crop(config) * elem) as u64)
    }

    fn exceeded(self, bytes: u64) -> Option<(u64, u64)> {
        self.max_buffer
            .filter(|&max| bytes > max)
            .map(|max| (bytes, max))
    }

    fn fitting(self, default: usize, per_item: u64) -> usize {
        match self.max_buffer {
            Some(max) => default
                .min(usize::try_from(max / per_item.max(1)).unwrap_or(usize::MAX))
                .max(1),
            None => default,
        }
    }
}

/// Elements per token of the decoder's widest activation (the MLP's intermediate).
fn decoder_row(config: &LlavaNextConfig) -> usize {
    let text = &config.text;
    text.intermediate_size
        .max(text.hidden_size)
        .max(text.num_heads * text.head_dim)
}

/// Elements per crop of the vision tower's and projector's widest activation.
fn vision_crop(config: &LlavaNextConfig) -> usize {
    let vision = &config.vision;
    let tokens = vision.patches_per_crop() + 1;
    tokens
        * vision
            .intermediate_size
            .max(vision.hidden_size)
            .max(config.projector.output_size)
}

/// The storage-buffer binding limit of a wgpu device (`None` on other backends, and on
/// adapters with 64-bit indexing, which report no limit).
#[allow(unused_variables)]
fn max_buffer_bytes<B: Backend>(device: &B::Device) -> Option<u64> {
    #[cfg(feature = "wgpu")]
    if let Some(device) =
        (device as &dyn std::any::Any).downcast_ref::<burn::backend::wgpu::WgpuDevice>()
    {
        use cubecl::Runtime;
        let max = cubecl::wgpu::WgpuRuntime::client(device)
            .properties()
            .memory
            .max_page_size;
        return (max < u64::MAX / 2).then_some(max);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_shrink_to_a_binding_limit() {
        let unlimited = DeviceLimits { max_buffer: None };
        assert_eq!(unlimited.attention_budget(), AttentionBudget::DEFAULT);
        let lavapipe = DeviceLimits {
            max_buffer: Some(128 << 20),
        };
        assert_eq!(
            lavapipe.attention_budget(),
            AttentionBudget::bytes(64 << 20)
        );
        assert_eq!(lavapipe.fitting(16_384, 14_336 * 4), 2340);
        assert_eq!(lavapipe.fitting(16_384, 1 << 40), 1);
        assert_eq!(lavapipe.exceeded(128 << 20), None);
        assert_eq!(
            lavapipe.exceeded((128 << 20) + 1),
            Some(((128 << 20) + 1, 128 << 20))
        );
    }
}
