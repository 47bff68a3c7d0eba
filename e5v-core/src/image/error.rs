//! The image module's error type.

use std::path::PathBuf;

/// A boxed underlying error (kept opaque so that no dependency's error type is public).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of image decoding, processor-config loading and preprocessing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The bytes are not an image in a supported format (PNG, JPEG, GIF, BMP, TIFF, WebP).
    #[error("unsupported image format: {0}")]
    UnsupportedFormat(String),
    /// The image data is corrupt or truncated.
    #[error("cannot decode the image")]
    Decode(#[source] BoxError),
    /// The image exceeds the [`DecodeLimits`](super::DecodeLimits) (checked before allocating).
    #[error("the image exceeds the decode limits")]
    TooLarge(#[source] BoxError),
    /// The image has no pixels.
    #[error("the image is empty ({height}x{width} pixels, height x width)")]
    Empty {
        /// Height in pixels.
        height: u32,
        /// Width in pixels.
        width: u32,
    },
    /// A model directory has neither a `processor_config.json` with an `image_processor`
    /// section nor a `preprocessor_config.json`.
    #[error("no image processor config (processor_config.json or preprocessor_config.json) in {0}")]
    MissingConfig(PathBuf),
    /// A processor config file could not be read.
    #[error("cannot read {path}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A processor config is not valid JSON of the expected shape.
    #[error("invalid image processor config{}", path_suffix(.path))]
    ParseConfig {
        /// The file, when the config came from one.
        path: Option<PathBuf>,
        /// The parse error.
        #[source]
        source: BoxError,
    },
    /// The config asks for a resampling filter other than bicubic (PIL code 3).
    #[error("unsupported resample filter {0}: only 3 (PIL bicubic) is implemented")]
    UnsupportedResample(i64),
    /// The config holds values the pipeline cannot use (or that make it produce crops of the
    /// wrong size).
    #[error("invalid image processor config: {0}")]
    InvalidConfig(String),
}

fn path_suffix(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" in {}", p.display()))
        .unwrap_or_default()
}
