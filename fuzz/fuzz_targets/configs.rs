//! config.json and processor config text -> typed configs (and their derived geometry).
#![no_main]

use e5v_core::image::ImageProcessorConfig;
use e5v_model::{ImagePipeline, LlavaNextConfig, anyres};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(config) = LlavaNextConfig::from_json(text) {
        let per_side = config.vision.patches_per_side();
        for image in [(1, 1), (336, 336), (4000, 17)] {
            let _ = anyres::image_token_count(
                image,
                &config.grid_pinpoints,
                config.vision.image_size as u32,
                per_side,
                ImagePipeline::Transformers441,
            );
        }
    }
    if let Ok(config) = ImageProcessorConfig::from_json_str(text) {
        let _ = config.validate();
    }
});
