//! The LLaVA-NeXT image processor settings: a raw serde mirror of `preprocessor_config.json`
//! (transformers 4.x) or of the `image_processor` section of `processor_config.json`
//! (transformers 5.x), converted once into a validated [`ImageProcessorConfig`].

use std::path::Path;

use serde::Deserialize;

use e5v_model::anyres::{self, DEFAULT_PINPOINTS};

use super::ImageError;

/// transformers' `OPENAI_CLIP_MEAN`, the LLaVA-NeXT default (and E5-V's value).
const CLIP_MEAN: [f64; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// transformers' `OPENAI_CLIP_STD`.
const CLIP_STD: [f64; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];
/// PIL's `Resampling.BICUBIC`.
const BICUBIC: i64 = 3;

/// How each crop is resized before the centre crop (transformers' `size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResizeTarget {
    /// `{"shortest_edge": n}`: the shorter side becomes `n`, the longer `int(n * long / short)`.
    /// The base crop is the whole image squashed to `n x n`.
    ShortestEdge(u32),
    /// `{"height": h, "width": w}`: squash to exactly `h x w` (also the base crop's size).
    Exact {
        /// Height in pixels.
        height: u32,
        /// Width in pixels.
        width: u32,
    },
}

/// LLaVA-NeXT image processor settings, validated when parsed.
///
/// [`Default`] is the E5-V (llava-v1.6, CLIP ViT-L/14-336) configuration: pinpoints
/// `[[336,672],[672,336],[672,672],[1008,336],[336,1008]]`, shortest edge 336, centre crop 336,
/// bicubic, rescale 1/255, CLIP mean/std. Missing keys in a config file take
/// `LlavaNextImageProcessor`'s defaults, as in transformers (shortest edge and crop 224).
/// Fields are public for reading; [`preprocess`](super::preprocess) re-checks them, so a value
/// edited into something unusable is an error there, never a panic.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ImageProcessorConfig {
    /// Candidate grid resolutions, `(height, width)` (`image_grid_pinpoints`).
    pub grid_pinpoints: Vec<(u32, u32)>,
    /// The resize applied to every crop (when [`do_resize`](Self::do_resize)); also the base
    /// crop's size (`size`).
    pub size: ResizeTarget,
    /// `(height, width)` of the crops fed to the vision tower (`crop_size`). The grid cell is
    /// `height x height`, as transformers cuts it.
    pub crop_size: (usize, usize),
    /// Whether every crop is resized by [`size`](Self::size) (`do_resize`).
    pub do_resize: bool,
    /// Whether every crop is centre-cropped to [`crop_size`](Self::crop_size) (`do_center_crop`).
    pub do_center_crop: bool,
    /// The factor pixel values are multiplied by (in f64, then rounded to f32); `None` when
    /// `do_rescale` is false.
    pub rescale_factor: Option<f64>,
    /// Per-channel `(image_mean, image_std)`, applied in f32 as numpy does; `None` when
    /// `do_normalize` is false.
    pub normalization: Option<([f64; 3], [f64; 3])>,
    /// `do_pad`: pads a batch's crop counts; it never changes a single image's pixels.
    pub do_pad: bool,
    /// `do_convert_rgb`, as read. Images are always converted to RGB (the vision tower needs three
    /// channels), so this flag does not change the output.
    pub do_convert_rgb: bool,
}

impl Default for ImageProcessorConfig {
    fn default() -> Self {
        Self {
            grid_pinpoints: DEFAULT_PINPOINTS.to_vec(),
            size: ResizeTarget::ShortestEdge(336),
            crop_size: (336, 336),
            do_resize: true,
            do_center_crop: true,
            rescale_factor: Some(1.0 / 255.0),
            normalization: Some((CLIP_MEAN, CLIP_STD)),
            do_pad: true,
            do_convert_rgb: true,
        }
    }
}

impl ImageProcessorConfig {
    /// Reads the image processor settings of a model directory: the `image_processor` section of
    /// `processor_config.json` (transformers 5.x) if present, else `preprocessor_config.json`
    /// (transformers 4.x), the priority transformers uses. `grid_pinpoints`, when given (e.g. the
    /// `image_grid_pinpoints` of the model's config.json), replaces the file's pinpoints.
    ///
    /// # Errors
    /// [`ImageError::MissingConfig`], [`ImageError::ReadConfig`], [`ImageError::ParseConfig`],
    /// [`ImageError::UnsupportedResample`] or [`ImageError::InvalidConfig`].
    pub fn from_model_dir(
        dir: &Path,
        grid_pinpoints: Option<&[(u32, u32)]>,
    ) -> Result<Self, ImageError> {
        let config = Self::read_model_dir(dir)?;
        match grid_pinpoints {
            Some(pinpoints) => config.with_grid_pinpoints(pinpoints),
            None => Ok(config),
        }
    }

    fn read_model_dir(dir: &Path) -> Result<Self, ImageError> {
        let processor = dir.join("processor_config.json");
        if processor.is_file() {
            let value = read_json(&processor)?;
            if let Some(section) = value.get("image_processor") {
                return Self::from_value(section.clone()).map_err(|e| with_path(e, &processor));
            }
        }
        let preprocessor = dir.join("preprocessor_config.json");
        if preprocessor.is_file() {
            let value = read_json(&preprocessor)?;
            return Self::from_value(value).map_err(|e| with_path(e, &preprocessor));
        }
        Err(ImageError::MissingConfig(dir.to_path_buf()))
    }

    /// Parses the settings from JSON text: either an image processor config
    /// (`preprocessor_config.json`) or a processor config with an `image_processor` section.
    ///
    /// # Errors
    /// [`ImageError::ParseConfig`], [`ImageError::UnsupportedResample`] or
    /// [`ImageError::InvalidConfig`].
    pub fn from_json_str(json: &str) -> Result<Self, ImageError> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(parse_error)?;
        match value.get("image_processor") {
            Some(section) => Self::from_value(section.clone()),
            None => Self::from_value(value),
        }
    }

    fn from_value(value: serde_json::Value) -> Result<Self, ImageError> {
        let raw: RawImageProcessorConfig = serde_json::from_value(value).map_err(parse_error)?;
        Self::try_from(raw)
    }

    /// Replaces the grid pinpoints, `(height, width)` each.
    ///
    /// # Errors
    /// [`ImageError::InvalidConfig`] for an empty list or a zero dimension.
    pub fn with_grid_pinpoints(mut self, pinpoints: &[(u32, u32)]) -> Result<Self, ImageError> {
        validate_pinpoints(pinpoints)?;
        self.grid_pinpoints = pinpoints.to_vec();
        Ok(self)
    }

    /// Checks the invariants [`preprocess`](super::preprocess) relies on: non-empty pinpoints and
    /// non-zero sizes.
    ///
    /// # Errors
    /// [`ImageError::InvalidConfig`] naming the offending setting.
    pub fn validate(&self) -> Result<(), ImageError> {
        validate_pinpoints(&self.grid_pinpoints)?;
        let zero_size = match self.size {
            ResizeTarget::ShortestEdge(n) => n == 0,
            ResizeTarget::Exact { height, width } => height == 0 || width == 0,
        };
        if zero_size || self.crop_size.0 == 0 || self.crop_size.1 == 0 {
            return Err(ImageError::InvalidConfig(format!(
                "zero size: size {:?}, crop_size {:?}",
                self.size, self.crop_size
            )));
        }
        if u32::try_from(self.crop_size.0.max(self.crop_size.1)).is_err() {
            return Err(ImageError::InvalidConfig(format!(
                "crop_size {:?}",
                self.crop_size
            )));
        }
        Ok(())
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value, ImageError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImageError::ReadConfig {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| with_path(parse_error(e), path))
}

fn parse_error(error: serde_json::Error) -> ImageError {
    ImageError::ParseConfig {
        path: None,
        source: Box::new(error),
    }
}

fn with_path(error: ImageError, path: &Path) -> ImageError {
    match error {
        ImageError::ParseConfig { path: None, source } => ImageError::ParseConfig {
            path: Some(path.to_path_buf()),
            source,
        },
        other => other,
    }
}

/// Like transformers' processor, the image config alone does not require pinpoints that tile
/// its crop size (its defaults do not); the model's config does.
fn validate_pinpoints(pinpoints: &[(u32, u32)]) -> Result<(), ImageError> {
    anyres::check_pinpoints(pinpoints, None).map_err(ImageError::InvalidConfig)
}

/// `preprocessor_config.json` as written by transformers (unknown keys are ignored).
#[derive(Debug, Deserialize)]
struct RawImageProcessorConfig {
    image_grid_pinpoints: Option<Vec<[u32; 2]>>,
    size: Option<RawSize>,
    crop_size: Option<RawSize>,
    resample: Option<i64>,
    do_resize: Option<bool>,
    do_center_crop: Option<bool>,
    do_rescale: Option<bool>,
    rescale_factor: Option<f64>,
    do_normalize: Option<bool>,
    image_mean: Option<RawFloats>,
    image_std: Option<RawFloats>,
    do_pad: Option<bool>,
    do_convert_rgb: Option<bool>,
}

/// transformers' size dict, or the legacy int / `[height, width]` forms `get_size_dict` accepts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSize {
    Int(u32),
    Pair([u32; 2]),
    Dict {
        shortest_edge: Option<u32>,
        longest_edge: Option<u32>,
        height: Option<u32>,
        width: Option<u32>,
        max_height: Option<u32>,
        max_width: Option<u32>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawFloats {
    One(f64),
    Many(Vec<f64>),
}

impl RawSize {
    /// `(height, width)` or `shortest_edge`, as `get_size_dict` reads it; `square` is its
    /// `default_to_square` (false for `size`, true for `crop_size`).
    fn resolve(&self, name: &str, square: bool) -> Result<ResizeTarget, ImageError> {
        let target = match *self {
            RawSize::Int(n) if square => ResizeTarget::Exact {
                height: n,
                width: n,
            },
            RawSize::Int(n) => ResizeTarget::ShortestEdge(n),
            RawSize::Pair([height, width]) => ResizeTarget::Exact { height, width },
            RawSize::Dict {
                shortest_edge: Some(n),
                longest_edge: None,
                height: None,
                width: None,
                max_height: None,
                max_width: None,
            } => ResizeTarget::ShortestEdge(n),
            RawSize::Dict {
                shortest_edge: None,
                longest_edge: None,
                height: Some(height),
                width: Some(width),
                max_height: None,
                max_width: None,
            } => ResizeTarget::Exact { height, width },
            ref other => {
                return Err(ImageError::InvalidConfig(format!(
                    "unsupported {name} {other:?}: expected shortest_edge or height and width"
                )));
            }
        };
        let zero = match target {
            ResizeTarget::ShortestEdge(n) => n == 0,
            ResizeTarget::Exact { height, width } => height == 0 || width == 0,
        };
        if zero {
            return Err(ImageError::InvalidConfig(format!(
                "{name} has a zero dimension"
            )));
        }
        Ok(target)
    }
}

fn channels(
    value: Option<RawFloats>,
    default: [f64; 3],
    name: &str,
) -> Result<[f64; 3], ImageError> {
    let values = match value {
        None => default,
        Some(RawFloats::One(v)) => [v; 3],
        Some(RawFloats::Many(v)) => <[f64; 3]>::try_from(v.as_slice()).map_err(|_| {
            ImageError::InvalidConfig(format!("{name} needs 3 values (RGB), got {}", v.len()))
        })?,
    };
    if values.iter().any(|v| !v.is_finite()) {
        return Err(ImageError::InvalidConfig(format!(
            "{name} is not finite: {values:?}"
        )));
    }
    Ok(values)
}

impl TryFrom<RawImageProcessorConfig> for ImageProcessorConfig {
    type Error = ImageError;

    fn try_from(raw: RawImageProcessorConfig) -> Result<Self, ImageError> {
        let resample = raw.resample.unwrap_or(BICUBIC);
        if resample != BICUBIC {
            return Err(ImageError::UnsupportedResample(resample));
        }
        let grid_pinpoints = match raw.image_grid_pinpoints {
            Some(p) => p.into_iter().map(|[h, w]| (h, w)).collect(),
            None => DEFAULT_PINPOINTS.to_vec(),
        };
        validate_pinpoints(&grid_pinpoints)?;
        let size = match raw.size {
            Some(s) => s.resolve("size", false)?,
            None => ResizeTarget::ShortestEdge(224),
        };
        let crop_size = match raw.crop_size {
            Some(c) => match c.resolve("crop_size", true)? {
                ResizeTarget::Exact { height, width } => (height as usize, width as usize),
                ResizeTarget::ShortestEdge(_) => {
                    return Err(ImageError::InvalidConfig(
                        "crop_size needs height and width".into(),
                    ));
                }
            },
            None => (224, 224),
        };
        let rescale_factor = if raw.do_rescale.unwrap_or(true) {
            let factor = raw.rescale_factor.unwrap_or(1.0 / 255.0);
            if !factor.is_finite() {
                return Err(ImageError::InvalidConfig(format!(
                    "rescale_factor {factor}"
                )));
            }
            Some(factor)
        } else {
            None
        };
        let normalization = if raw.do_normalize.unwrap_or(true) {
            let mean = channels(raw.image_mean, CLIP_MEAN, "image_mean")?;
            let std = channels(raw.image_std, CLIP_STD, "image_std")?;
            if std.contains(&0.0) {
                return Err(ImageError::InvalidConfig(format!(
                    "image_std has a zero: {std:?}"
                )));
            }
            Some((mean, std))
        } else {
            None
        };
        let config = Self {
            grid_pinpoints,
            size,
            crop_size,
            do_resize: raw.do_resize.unwrap_or(true),
            do_center_crop: raw.do_center_crop.unwrap_or(true),
            rescale_factor,
            normalization,
            do_pad: raw.do_pad.unwrap_or(true),
            do_convert_rgb: raw.do_convert_rgb.unwrap_or(true),
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::test_support::fixture_path;

    #[test]
    fn reads_both_layouts_into_the_e5v_default() {
        for file in [
            "config/preprocessor_config.json",
            "config/processor_config.json",
        ] {
            let text = std::fs::read_to_string(fixture_path(file)).expect("fixture");
            let config = ImageProcessorConfig::from_json_str(&text).expect("valid config");
            assert_eq!(config, ImageProcessorConfig::default(), "{file}");
        }
    }

    #[test]
    fn model_dir_prefers_the_nested_processor_config() {
        let dir = std::env::temp_dir().join(format!("e5v-image-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let nested = fixture_path("config/processor_config.json");
        std::fs::copy(nested, dir.join("processor_config.json")).expect("copy");
        let flat = r#"{"crop_size": {"height": 224, "width": 224}}"#;
        std::fs::write(dir.join("preprocessor_config.json"), flat).expect("write");
        let config = ImageProcessorConfig::from_model_dir(&dir, None).expect("config");
        assert_eq!(config, ImageProcessorConfig::default());
        std::fs::remove_file(dir.join("processor_config.json")).expect("remove");
        let config = ImageProcessorConfig::from_model_dir(&dir, None).expect("config");
        assert_eq!(config.crop_size, (224, 224));
        std::fs::remove_dir_all(&dir).expect("clean up");

        let dir = fixture_path("config");
        let pins = [(336, 336), (672, 672)];
        let config = ImageProcessorConfig::from_model_dir(&dir, Some(&pins)).expect("config");
        assert_eq!(config.grid_pinpoints, pins);
        let missing = ImageProcessorConfig::from_model_dir(&fixture_path("inputs"), None);
        assert!(matches!(missing, Err(ImageError::MissingConfig(_))));
    }

    /// serde_json's f64 parsing of the E5-V values agrees with Python's (exact bits).
    #[test]
    fn parsed_floats_are_python_floats() {
        let config = ImageProcessorConfig::from_json_str(
            r#"{"rescale_factor": 0.00392156862745098, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711]}"#,
        )
        .expect("config");
        assert_eq!(config.rescale_factor, Some(1.0 / 255.0));
        assert_eq!(config.normalization, Some((CLIP_MEAN, CLIP_STD)));
    }

    #[test]
    fn missing_keys_take_transformers_defaults() {
        let config = ImageProcessorConfig::from_json_str("{}").expect("config");
        assert_eq!(config.size, ResizeTarget::ShortestEdge(224));
        assert_eq!(config.crop_size, (224, 224));
        assert_eq!(config.grid_pinpoints, DEFAULT_PINPOINTS);
        let legacy = ImageProcessorConfig::from_json_str(r#"{"size": 336, "crop_size": 336}"#);
        let legacy = legacy.expect("config");
        assert_eq!(
            (legacy.size, legacy.crop_size),
            (ResizeTarget::ShortestEdge(336), (336, 336))
        );
        let exact =
            ImageProcessorConfig::from_json_str(r#"{"size": {"height": 336, "width": 336}}"#);
        assert_eq!(
            exact.expect("config").size,
            ResizeTarget::Exact {
                height: 336,
                width: 336
            }
        );
        let off =
            ImageProcessorConfig::from_json_str(r#"{"do_rescale": false, "do_normalize": false}"#);
        let off = off.expect("config");
        assert_eq!((off.rescale_factor, off.normalization), (None, None));
        let oblong =
            ImageProcessorConfig::from_json_str(r#"{"crop_size": {"height": 336, "width": 224}}"#);
        assert_eq!(oblong.expect("config").crop_size, (336, 224));
    }

    #[test]
    fn rejects_what_it_cannot_reproduce() {
        let err = |json: &str| ImageProcessorConfig::from_json_str(json).err();
        assert!(matches!(
            err(r#"{"resample": 2}"#),
            Some(ImageError::UnsupportedResample(2))
        ));
        assert!(matches!(
            err(r#"{"crop_size": {"shortest_edge": 336}}"#),
            Some(ImageError::InvalidConfig(_))
        ));
        assert!(matches!(
            err(r#"{"size": {"shortest_edge": 336, "longest_edge": 672}}"#),
            Some(ImageError::InvalidConfig(_))
        ));
        assert!(matches!(
            err(r#"{"size": {"shortest_edge": 0}}"#),
            Some(ImageError::InvalidConfig(_))
        ));
        assert!(matches!(
            err(r#"{"image_grid_pinpoints": []}"#),
            Some(ImageError::InvalidConfig(_))
        ));
        assert!(matches!(
            err(r#"{"image_grid_pinpoints": [[0, 336]]}"#),
            Some(ImageError::InvalidConfig(_))
        ));
        assert!(matches!(
            err(r#"{"image_mean": [0.5, 0.5]}"#),
            Some(ImageError::InvalidConfig(_))
        ));
        assert!(matches!(
            err(r#"{"image_std": [0.5, 0.0, 0.5]}"#),
            Some(ImageError::InvalidConfig(_))
        ));
        assert!(matches!(
            err(r#"{"size": "big"}"#),
            Some(ImageError::ParseConfig { .. })
        ));
        assert!(matches!(
            err("not json"),
            Some(ImageError::ParseConfig { .. })
        ));
        let config = ImageProcessorConfig::default();
        assert!(config.clone().with_grid_pinpoints(&[]).is_err());
        let mut edited = config;
        edited.crop_size = (0, 336);
        assert!(matches!(
            edited.validate(),
            Err(ImageError::InvalidConfig(_))
        ));
    }
}
