//! Image bytes -> decode (every format, limits small) -> preprocess in both pipelines.
#![no_main]

use e5v_core::{
    ImagePipeline,
    image::{DecodeLimits, ImageProcessorConfig, decode, dimensions, preprocess},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let limits = DecodeLimits::default()
        .with_max_width(2048)
        .with_max_height(2048)
        .with_max_alloc(32 << 20);
    let header = dimensions(bytes);
    if let Ok(image) = decode(bytes, &limits) {
        assert!(image.width() <= 2048 && image.height() <= 2048);
        assert_eq!(header.ok(), Some((image.width(), image.height())));
        let config = ImageProcessorConfig::default();
        for pipeline in [ImagePipeline::Transformers, ImagePipeline::Transformers441] {
            let _ = preprocess(&image, &config, pipeline);
        }
    }
});
