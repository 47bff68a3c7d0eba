//! Decoding bytes into an image (with limits checked before any pixel buffer is allocated) and
//! converting any pixel layout to RGB8 as PIL's `convert("RGB")` (transformers 4.41.2) or
//! transformers 5.x's white-background compositing does.

use std::io::Cursor;

use e5v_model::ImagePipeline;
use image::{DynamicImage, ImageReader, Limits, RgbImage};

use super::ImageError;

/// Limits applied while decoding untrusted image bytes.
///
/// The width and height limits are checked against the header, and the allocation limit against
/// the decoded buffer size, before the pixel buffer is allocated. What a decoder reserves while
/// reading the header is bounded by the file's size (a TIFF tag declaring more values than the
/// file holds is refused before the TIFF decoder reserves room for them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DecodeLimits {
    /// Largest accepted width in pixels (default 16384).
    pub max_width: u32,
    /// Largest accepted height in pixels (default 16384).
    pub max_height: u32,
    /// Largest number of bytes the decoder may allocate (default 512 MiB).
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_width: 16384,
            max_height: 16384,
            max_alloc: 512 * 1024 * 1024,
        }
    }
}

impl DecodeLimits {
    /// The default limits: 16384 x 16384 pixels and 512 MiB.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the largest accepted width in pixels.
    #[must_use]
    pub fn with_max_width(mut self, max_width: u32) -> Self {
        self.max_width = max_width;
        self
    }

    /// Sets the largest accepted height in pixels.
    #[must_use]
    pub fn with_max_height(mut self, max_height: u32) -> Self {
        self.max_height = max_height;
        self
    }

    /// Sets the largest number of bytes the decoder may allocate.
    #[must_use]
    pub fn with_max_alloc(mut self, max_alloc: u64) -> Self {
        self.max_alloc = max_alloc;
        self
    }

    fn to_image_limits(self) -> Limits {
        let mut limits = Limits::no_limits();
        limits.max_image_width = Some(self.max_width);
        limits.max_image_height = Some(self.max_height);
        limits.max_alloc = Some(self.max_alloc);
        limits
    }
}

/// Decodes PNG, JPEG, GIF (first frame), BMP, TIFF or WebP bytes, the format guessed from the
/// content.
///
/// EXIF orientation is not applied (as `PIL.Image.open` followed by the image processor does
/// not). Lossless formats decode to Pillow's pixels. JPEG does too with the `exact-jpeg` feature
/// (on by default: libjpeg-turbo's decoder, as Pillow uses; CMYK arrives converted to RGB with
/// Pillow's formula); without it the `image` crate decodes JPEG and pixels may differ from
/// Pillow's by a few levels.
///
/// # Errors
/// [`ImageError::UnsupportedFormat`] for unrecognised or unsupported content,
/// [`ImageError::TooLarge`] when a [`DecodeLimits`] limit is exceeded (checked before allocating),
/// [`ImageError::Decode`] for corrupt or truncated data, [`ImageError::Empty`] for an image with
/// no pixels.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, ImageError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Decode(Box::new(e)))?;
    if reader.format().is_none() {
        return Err(ImageError::UnsupportedFormat(
            "the bytes are not a recognised image format".into(),
        ));
    }
    #[cfg(feature = "exact-jpeg")]
    if reader.format() == Some(image::ImageFormat::Jpeg) {
        return super::jpeg::decode(bytes, limits);
    }
    if reader.format() == Some(image::ImageFormat::Tiff) {
        super::tiff_tags::check_first_directory(bytes)?;
    }
    reader.limits(limits.to_image_limits());
    let image = reader.decode().map_err(map_decode_error)?;
    if image.width() == 0 || image.height() == 0 {
        return Err(ImageError::Empty {
            height: image.height(),
            width: image.width(),
        });
    }
    Ok(image)
}

/// The size (width, height) from the header alone, as [`decode`] will see it; nothing is
/// decoded.
///
/// # Errors
/// As [`decode`], for what the header shows: [`ImageError::UnsupportedFormat`],
/// [`ImageError::Decode`] or [`ImageError::Empty`], and [`ImageError::TooLarge`] for a JPEG
/// side over the format's 65500-pixel maximum (the header cannot be read past it).
pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Decode(Box::new(e)))?;
    let (width, height) = match reader.format() {
        None => {
            return Err(ImageError::UnsupportedFormat(
                "the bytes are not a recognised image format".into(),
            ));
        }
        #[cfg(feature = "exact-jpeg")]
        Some(image::ImageFormat::Jpeg) => super::jpeg::dimensions(bytes)?,
        Some(format) => {
            if format == image::ImageFormat::Tiff {
                super::tiff_tags::check_first_directory(bytes)?;
            }
            reader.into_dimensions().map_err(map_decode_error)?
        }
    };
    if width == 0 || height == 0 {
        return Err(ImageError::Empty { height, width });
    }
    Ok((width, height))
}

fn map_decode_error(error: image::ImageError) -> ImageError {
    match error {
        image::ImageError::Limits(e) => ImageError::TooLarge(Box::new(e)),
        image::ImageError::Unsupported(e) => ImageError::UnsupportedFormat(e.to_string()),
        other => ImageError::Decode(Box::new(other)),
    }
}

/// Converts any pixel layout to RGB8, as the given transformers behaviour does.
///
/// - Grey becomes R = G = B; 8-bit data is kept as is; low bit depths arrive scaled to 8 bits by
///   the decoder, as PIL scales them.
/// - 16-bit RGB, RGBA and grey+alpha keep the high byte (PIL decodes those PNGs as 8-bit
///   `RGB`/`RGBA`); 16-bit grey saturates at 255 (PIL opens it as `I;16`, and `I;16 -> RGB`
///   clamps instead of scaling).
/// - Alpha (including PNG/GIF transparency, which the decoder turns into alpha):
///   [`ImagePipeline::Transformers441`] drops it (`convert("RGB")`);
///   [`ImagePipeline::Transformers`] composites onto white with Pillow's `alpha_composite`
///   integer arithmetic, then drops it.
/// - f32 data (no PIL counterpart) is clamped to `[0, 1]`, scaled by 255 and rounded.
pub fn to_rgb(image: &DynamicImage, behaviour: ImagePipeline) -> RgbImage {
    let composite = !matches!(behaviour, ImagePipeline::Transformers441);
    let (width, height) = (image.width(), image.height());
    let mut out = RgbImage::new(width, height);
    let dst = out.chunks_exact_mut(3);
    match image {
        DynamicImage::ImageRgb8(img) => return img.clone(),
        DynamicImage::ImageLuma8(img) => {
            for (d, s) in dst.zip(img.as_raw()) {
                d.fill(*s);
            }
        }
        DynamicImage::ImageLumaA8(img) => {
            for (d, s) in dst.zip(img.as_raw().chunks_exact(2)) {
                d.fill(flatten(s[0], s[1], composite));
            }
        }
        DynamicImage::ImageRgba8(img) => {
            for (d, s) in dst.zip(img.as_raw().chunks_exact(4)) {
                for c in 0..3 {
                    d[c] = flatten(s[c], s[3], composite);
                }
            }
        }
        DynamicImage::ImageLuma16(img) => {
            for (d, s) in dst.zip(img.as_raw()) {
                d.fill((*s).min(255) as u8);
            }
        }
        DynamicImage::ImageLumaA16(img) => {
            for (d, s) in dst.zip(img.as_raw().chunks_exact(2)) {
                d.fill(flatten(high_byte(s[0]), high_byte(s[1]), composite));
            }
        }
        DynamicImage::ImageRgb16(img) => {
            for (d, s) in dst.zip(img.as_raw().chunks_exact(3)) {
                for c in 0..3 {
                    d[c] = high_byte(s[c]);
                }
            }
        }
        DynamicImage::ImageRgba16(img) => {
            for (d, s) in dst.zip(img.as_raw().chunks_exact(4)) {
                let alpha = high_byte(s[3]);
                for c in 0..3 {
                    d[c] = flatten(high_byte(s[c]), alpha, composite);
                }
            }
        }
        DynamicImage::ImageRgb32F(img) => {
            for (d, s) in dst.zip(img.as_raw().chunks_exact(3)) {
                for c in 0..3 {
                    d[c] = unit_to_u8(s[c]);
                }
            }
        }
        DynamicImage::ImageRgba32F(img) => {
            for (d, s) in dst.zip(img.as_raw().chunks_exact(4)) {
                let alpha = unit_to_u8(s[3]);
                for c in 0..3 {
                    d[c] = flatten(unit_to_u8(s[c]), alpha, composite);
                }
            }
        }
        // Layouts added to the image crate later: its own conversion (alpha dropped).
        other => return other.to_rgb8(),
    }
    out
}

fn high_byte(v: u16) -> u8 {
    (v >> 8) as u8
}

fn unit_to_u8(v: f32) -> u8 {
    // NaN maps to 0 (`as` saturates).
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// One colour sample with its alpha, made opaque: dropped alpha, or composited onto white.
#[inline]
fn flatten(value: u8, alpha: u8, composite: bool) -> u8 {
    if composite {
        over_white(value, alpha)
    } else {
        value
    }
}

/// Pillow's `alpha_composite(white, src)` for one sample (libImaging/AlphaComposite.c).
///
/// With an opaque white destination, Pillow's `outa255 = 255 * 255`, so its
/// `coef1 = a * 255 * 255 * 128 / outa255` is exactly `a * 128` and `coef2 = (255 - a) * 128`;
/// the result is `SHIFTFORDIV255(v coef1 + 255 coef2 + (0x80 << 7)) >> 7`, where
/// `SHIFTFORDIV255(t) = ((t >> 8) + t) >> 8`. Fully transparent samples give the background.
#[inline]
fn over_white(value: u8, alpha: u8) -> u8 {
    if alpha == 0 {
        return 255;
    }
    let (v, a) = (u32::from(value), u32::from(alpha));
    let t = v * a * 128 + 255 * (255 - a) * 128 + (0x80 << 7);
    ((((t >> 8) + t) >> 8) >> 7) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::test_support::{fixture, fixture_bytes, load_rgb, pipeline};

    #[test]
    fn compositing_extremes() {
        for v in 0..=255u8 {
            assert_eq!(over_white(v, 255), v);
            assert_eq!(over_white(v, 0), 255);
        }
        assert_eq!(over_white(0, 128), 127);
    }

    /// RGB after conversion, for both behaviours, pixel-exact against transformers 5.24's
    /// `convert_to_rgb` with Pillow 13 and 4.41.2's with Pillow 12
    /// (`fixtures/pillow/generate.py`, stage `convert`), decoding with [`decode`].
    #[test]
    fn matches_transformers_conversions() {
        let json = fixture("convert.json");
        let cases = json["cases"].as_array().expect("cases");
        let mut failures = Vec::new();
        for case in cases {
            let input = case["input"].as_str().expect("input");
            let behaviour = pipeline(case);
            let decoded = decode(
                &fixture_bytes(&format!("inputs/{input}")),
                &DecodeLimits::default(),
            )
            .unwrap_or_else(|e| panic!("{input}: {e}"));
            let rgb = to_rgb(&decoded, behaviour);
            let expected = load_rgb(&format!("expected/{}", case["png"].as_str().expect("png")));
            let label = format!("{input} ({:?}, {behaviour:?})", decoded.color());
            if rgb.dimensions() != expected.dimensions() {
                failures.push(format!("{label}: size {:?}", rgb.dimensions()));
                continue;
            }
            let differing = rgb
                .iter()
                .zip(expected.iter())
                .filter(|(a, b)| a != b)
                .count();
            if differing > 0 {
                failures.push(format!("{label}: {differing} bytes differ"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn decode_errors_are_typed() {
        let limits = DecodeLimits::default();
        assert!(matches!(
            decode(b"", &limits),
            Err(ImageError::UnsupportedFormat(_))
        ));
        assert!(matches!(
            decode(b"hello world", &limits),
            Err(ImageError::UnsupportedFormat(_))
        ));
        let png = fixture_bytes("inputs/noise_97x61.png");
        let truncated = &png[..png.len() / 2];
        assert!(matches!(
            decode(truncated, &limits),
            Err(ImageError::Decode(_))
        ));
        let header_only = &png[..40];
        assert!(matches!(
            decode(header_only, &limits),
            Err(ImageError::Decode(_))
        ));
        let small = DecodeLimits::default().with_max_width(96);
        assert!(matches!(decode(&png, &small), Err(ImageError::TooLarge(_))));
        let small = DecodeLimits::default().with_max_height(60);
        assert!(matches!(decode(&png, &small), Err(ImageError::TooLarge(_))));
        let small = DecodeLimits::default().with_max_alloc(97 * 61 * 3 - 1);
        assert!(matches!(decode(&png, &small), Err(ImageError::TooLarge(_))));
        let ok = decode(
            &png,
            &DecodeLimits::new().with_max_width(97).with_max_height(61),
        );
        assert_eq!(ok.map(|i| (i.width(), i.height())).ok(), Some((97, 61)));
    }

    #[test]
    fn huge_header_is_rejected_before_allocation() {
        // A valid PNG header claiming 100000 x 100000 pixels (30 GB of RGB) and no data.
        let mut png = fixture_bytes("inputs/noise_97x61.png");
        png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let result = decode(
            &png,
            &DecodeLimits::default()
                .with_max_width(200_000)
                .with_max_height(200_000),
        );
        assert!(matches!(result, Err(ImageError::TooLarge(_))), "{result:?}");
        let result = decode(&png, &DecodeLimits::default());
        assert!(matches!(result, Err(ImageError::TooLarge(_))), "{result:?}");
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
