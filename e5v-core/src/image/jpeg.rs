//! JPEG decoded as Pillow decodes it (feature `exact-jpeg`, on by default).
//!
//! Pillow decodes JPEG with libjpeg-turbo: the accurate integer IDCT ("islow"), fancy
//! (triangular) chroma upsampling and libjpeg's YCbCr -> RGB tables. This module runs the same
//! C code: the decoder of MozJPEG, a libjpeg-turbo fork that shares it, vendored and compiled by
//! cargo (`mozjpeg-sys`, no system library, no assembler needed). Decoded pixels are therefore
//! bit-identical to Pillow's on valid files (`fixtures/pillow/jpeg.json` holds the proof cases).
//!
//! What Pillow does around the decoder is reproduced too:
//! - the image mode follows the number of components: 1 -> `L`, 3 -> `RGB`, 4 -> `CMYK`
//!   (others are rejected, as Pillow rejects them);
//! - CMYK data is taken as Adobe's inverted CMYK (Pillow's raw mode `CMYK;I`) and converted to
//!   RGB with Pillow's `cmyk2rgb` integer formula, which is what both `convert("RGB")` and
//!   transformers 5's RGBA compositing give for a CMYK image;
//! - EXIF orientation is ignored;
//! - data that ends before libjpeg has decoded the last row is an error, as Pillow's "image file
//!   is truncated" (this includes a file cut just before its end-of-image marker, which the
//!   decoder reads ahead for).
//!
//! libjpeg reports fatal errors through a callback that must not return; here it unwinds back
//! to [`decode`], which turns it into an [`ImageError`]. That needs `panic = "unwind"`, checked
//! at compile time below.

use std::os::raw::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use image::{DynamicImage, GrayImage, RgbImage};
use mozjpeg::{ColorSpace, Decompress};
use mozjpeg_sys::{
    JERR_IMAGE_TOO_BIG, JWRN_JPEG_EOF, jpeg_common_struct, jpeg_error_mgr, jpeg_std_error,
};

use super::{DecodeLimits, ImageError};

#[cfg(not(panic = "unwind"))]
compile_error!(
    "e5v-core's `exact-jpeg` feature needs `panic = \"unwind\"` (libjpeg's errors unwind back to \
     the caller); with `panic = \"abort\"`, disable the feature (default-features = false) to \
     decode JPEG with the `image` crate instead"
);

/// Bytes of libjpeg's coefficient storage per 8x8 block (64 `i16`), allocated for every block
/// of the image when the file has several scans (progressive, or one scan per component).
const COEFFICIENT_BYTES_PER_BLOCK: u64 = 128;

/// Decodes JPEG bytes to `L` (grey) or `RGB` pixels exactly as Pillow does.
///
/// # Errors
/// [`ImageError::TooLarge`] when the header's size exceeds `limits` (checked before anything
/// is allocated for pixels), [`ImageError::Empty`] for a zero-sized image,
/// [`ImageError::UnsupportedFormat`] for component counts Pillow rejects, and
/// [`ImageError::Decode`] for corrupt or truncated data.
pub(super) fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, ImageError> {
    guarded(|| decode_unguarded(bytes, limits))
}

/// The size (width, height) in the header, read as [`decode`] reads it.
///
/// # Errors
/// [`ImageError::TooLarge`] for a side over libjpeg's 65500-pixel maximum, and
/// [`ImageError::Decode`] when libjpeg cannot read the header.
pub(super) fn dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    guarded(|| {
        let decoder = Decompress::with_err(error_manager())
            .from_mem(bytes)
            .map_err(|e| ImageError::Decode(Box::new(e)))?;
        let (width, height) = decoder.size();
        Ok((dimension(width)?, dimension(height)?))
    })
}

/// Runs libjpeg code, turning its unwinding errors into [`ImageError::Decode`], or
/// [`ImageError::TooLarge`] for a header whose size libjpeg refuses (a side over 65500 pixels:
/// a size refusal like the one `limits` makes, only fixed by the format).
fn guarded<T>(run: impl FnOnce() -> Result<T, ImageError>) -> Result<T, ImageError> {
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(result) => result,
        Err(payload) => Err(match payload.downcast::<Failure>() {
            Ok(failure) if failure.code == JERR_IMAGE_TOO_BIG as c_int => {
                ImageError::TooLarge(failure.message.into())
            }
            Ok(failure) => ImageError::Decode(failure.message.into()),
            Err(other) => ImageError::Decode(
                match other.downcast::<String>() {
                    Ok(message) => format!("JPEG decoder failed: {message}"),
                    Err(_) => "JPEG decoder failed".to_string(),
                }
                .into(),
            ),
        }),
    }
}

/// The pixel layout asked of libjpeg, by the number of components (Pillow's mode).
#[derive(Clone, Copy)]
enum Layout {
    Grey,
    Rgb,
    Cmyk,
}

impl Layout {
    fn channels(self) -> u64 {
        match self {
            Layout::Grey => 1,
            Layout::Rgb => 3,
            Layout::Cmyk => 4,
        }
    }
}

fn decode_unguarded(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, ImageError> {
    let decoder = Decompress::with_err(error_manager())
        .from_mem(bytes)
        .map_err(|e| ImageError::Decode(Box::new(e)))?;
    let (width, height) = decoder.size();
    let (width, height) = (dimension(width)?, dimension(height)?);
    if width == 0 || height == 0 {
        return Err(ImageError::Empty { height, width });
    }
    if width > limits.max_width || height > limits.max_height {
        return Err(ImageError::TooLarge(
            format!(
                "{width}x{height} pixels (width x height) exceed the limit of {}x{}",
                limits.max_width, limits.max_height
            )
            .into(),
        ));
    }
    let layout = match decoder.components().len() {
        1 => Layout::Grey,
        3 => Layout::Rgb,
        4 => Layout::Cmyk,
        n => {
            return Err(ImageError::UnsupportedFormat(format!(
                "JPEG with {n} components (1, 3 or 4 are supported)"
            )));
        }
    };
    // The output rows plus, conservatively, the whole-image coefficient buffer of multi-scan
    // files (the header does not say yet whether more than one scan follows).
    let blocks: u64 = decoder
        .components()
        .iter()
        .map(|c| u64::from(c.width_in_blocks) * u64::from(c.height_in_blocks))
        .sum();
    let needed = u64::from(width) * u64::from(height) * layout.channels()
        + blocks * COEFFICIENT_BYTES_PER_BLOCK;
    if needed > limits.max_alloc {
        return Err(ImageError::TooLarge(
            format!(
                "decoding needs about {needed} bytes, more than the limit of {}",
                limits.max_alloc
            )
            .into(),
        ));
    }
    let space = match layout {
        Layout::Grey => ColorSpace::JCS_GRAYSCALE,
        Layout::Rgb => ColorSpace::JCS_RGB,
        Layout::Cmyk => ColorSpace::JCS_CMYK,
    };
    let mut started = decoder
        .to_colorspace(space)
        .map_err(|e| ImageError::Decode(Box::new(e)))?;
    // Every row is read; `finish` (which would look for the end-of-image marker once more) is
    // not called: Pillow does not fail there either.
    let pixels: Vec<u8> = started
        .read_scanlines()
        .map_err(|e| ImageError::Decode(Box::new(e)))?;
    let expected = u64::from(width) * u64::from(height) * layout.channels();
    if pixels.len() as u64 != expected {
        return Err(ImageError::Decode(
            format!(
                "the decoder returned {} bytes, not {expected}",
                pixels.len()
            )
            .into(),
        ));
    }
    let image = match layout {
        Layout::Grey => GrayImage::from_raw(width, height, pixels).map(DynamicImage::ImageLuma8),
        Layout::Rgb => RgbImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8),
        Layout::Cmyk => RgbImage::from_raw(width, height, inverted_cmyk_to_rgb(&pixels))
            .map(DynamicImage::ImageRgb8),
    };
    image.ok_or_else(|| ImageError::Decode("decoded buffer of the wrong size".into()))
}

fn dimension(value: usize) -> Result<u32, ImageError> {
    u32::try_from(value).map_err(|_| ImageError::TooLarge(format!("{value} pixels").into()))
}

/// Adobe CMYK as libjpeg returns it (inverted) to RGB, as Pillow's `CMYK;I` unpacking followed
/// by `cmyk2rgb` (libImaging/Convert.c) computes it: with `c, m, y, k` the re-inverted values and
/// `nk = 255 - k`, each channel is `clip(nk - muldiv255(c, nk))`, where
/// `muldiv255(a, b) = (t + (t >> 8)) >> 8` with `t = a * b + 128`.
fn inverted_cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for pixel in cmyk.chunks_exact(4) {
        let nk = i32::from(pixel[3]); // 255 - (255 - raw k)
        for &raw in &pixel[..3] {
            let t = (255 - i32::from(raw)) * nk + 128;
            let value = nk - (((t >> 8) + t) >> 8);
            rgb.push(value.clamp(0, 255) as u8);
        }
    }
    rgb
}

/// What an unwinding libjpeg callback carries back to [`decode`]: libjpeg's message code
/// (`JERR_*`, or `JWRN_JPEG_EOF` for truncation) and its text.
struct Failure {
    code: c_int,
    message: String,
}

fn error_manager() -> jpeg_error_mgr {
    // SAFETY: `jpeg_error_mgr` is a plain C struct (function pointers, integers, raw pointers),
    // valid when zeroed, and `jpeg_std_error` fills in every field.
    let mut manager: jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { jpeg_std_error(&mut manager) };
    manager.error_exit = Some(error_exit);
    manager.emit_message = Some(emit_message);
    manager
}

/// libjpeg's fatal error: unwinds with its message (it must not return to libjpeg).
extern "C-unwind" fn error_exit(cinfo: &mut jpeg_common_struct) {
    // SAFETY: libjpeg calls this with `err` pointing at the manager set up by `error_manager`.
    let code = unsafe { (*cinfo.err).msg_code };
    let message = format_message(cinfo);
    resume_unwind(Box::new(Failure { code, message }));
}

/// libjpeg's warnings (corrupt data it can recover from, as Pillow does) are ignored, except
/// running out of data: Pillow fails with "image file is truncated" where libjpeg would pad.
extern "C-unwind" fn emit_message(cinfo: &mut jpeg_common_struct, level: c_int) {
    // SAFETY: libjpeg calls this with `err` pointing at the manager set up by `error_manager`.
    let code = unsafe { (*cinfo.err).msg_code };
    if level < 0 && code == JWRN_JPEG_EOF as c_int {
        resume_unwind(Box::new(Failure {
            code,
            message: "the JPEG data is truncated (it ends before the last row)".into(),
        }));
    }
}

/// libjpeg's text for the current message.
fn format_message(cinfo: &mut jpeg_common_struct) -> String {
    /// libjpeg's `JMSG_LENGTH_MAX`.
    const LENGTH: usize = 200;
    type Format = unsafe extern "C-unwind" fn(&mut jpeg_common_struct, *mut u8);
    // SAFETY: `err` points at our manager (see `emit_message`); `format_message` writes a
    // NUL-terminated string of at most JMSG_LENGTH_MAX bytes into the buffer. The bindings type
    // its buffer as a shared array reference; it is passed as the raw pointer the C code takes.
    let (code, format) = unsafe { ((*cinfo.err).msg_code, (*cinfo.err).format_message) };
    let Some(format) = format else {
        return format!("libjpeg error {code}");
    };
    let mut buffer = [0u8; LENGTH];
    unsafe {
        let format: Format = std::mem::transmute(format);
        format(cinfo, buffer.as_mut_ptr());
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(LENGTH);
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::image::test_support::{fixture, fixture_bytes, fnv1a64, pipeline};
    use crate::image::{decode as decode_any, dimensions as dimensions_any, to_rgb};
    use image::GenericImageView;

    /// Every JPEG case of `fixtures/pillow/jpeg.json` (Pillow 13 with libjpeg-turbo 3.2 and
    /// Pillow 10.4 with 3.0.3, through each behaviour's RGB conversion): the same RGB bytes, or
    /// an error where Pillow fails.
    #[test]
    fn decodes_as_pillow() {
        let json = fixture("jpeg.json");
        let cases = json["cases"].as_array().expect("cases");
        assert!(cases.len() >= 40);
        let mut failures = Vec::new();
        for case in cases {
            let input = case["input"].as_str().expect("input");
            let behaviour = pipeline(case);
            let label = format!("{input} ({behaviour:?})");
            let bytes = fixture_bytes(&format!("inputs/{input}"));
            let decoded = decode_any(&bytes, &DecodeLimits::default());
            if let (Ok(image), Ok(size)) = (&decoded, dimensions_any(&bytes))
                && size != image.dimensions()
            {
                failures.push(format!("{label}: header size {size:?}"));
            }
            match (decoded, case.get("error")) {
                (Err(ImageError::Decode(_)), Some(_)) => {}
                (Ok(_), Some(error)) => failures.push(format!("{label}: decoded; Pillow: {error}")),
                (Err(e), _) => failures.push(format!("{label}: {e:?}")),
                (Ok(image), None) => {
                    let grey = case["mode"] == "L";
                    if grey != matches!(image, DynamicImage::ImageLuma8(_)) {
                        failures.push(format!(
                            "{label}: {:?}, Pillow {}",
                            image.color(),
                            case["mode"]
                        ));
                    }
                    let size = [image.width(), image.height()];
                    if serde_json::json!(size) != case["size"] {
                        failures.push(format!("{label}: size {size:?}"));
                    }
                    let rgb = to_rgb(&image, behaviour);
                    if format!("{:016x}", fnv1a64(rgb.as_raw()))
                        != case["rgb_fnv"].as_str().expect("rgb_fnv")
                    {
                        failures.push(format!("{label}: pixels differ"));
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn limits_are_checked_before_decoding() {
        let bytes = fixture_bytes("inputs/real/flower.jpg"); // 480 x 360
        let narrow = DecodeLimits::default().with_max_width(479);
        assert!(matches!(
            decode(&bytes, &narrow),
            Err(ImageError::TooLarge(_))
        ));
        let short = DecodeLimits::default().with_max_height(359);
        assert!(matches!(
            decode(&bytes, &short),
            Err(ImageError::TooLarge(_))
        ));
        // 480 * 360 * 3 output bytes alone.
        let small = DecodeLimits::default().with_max_alloc(480 * 360 * 3);
        assert!(matches!(
            decode(&bytes, &small),
            Err(ImageError::TooLarge(_))
        ));
        assert!(decode(&bytes, &DecodeLimits::default()).is_ok());
    }

    #[test]
    fn sides_past_the_format_maximum_are_too_large_not_corrupt() {
        let bytes = fixture_bytes("inputs/real/hopper.jpg");
        let sof = bytes
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("SOF0");
        let unlimited = DecodeLimits::default()
            .with_max_width(u32::MAX)
            .with_max_height(u32::MAX);
        for (width, height) in [(65_501u16, 1u16), (1, 65_535), (65_535, 65_535)] {
            let mut forged = bytes.clone();
            forged[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
            forged[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
            let decoded = decode(&forged, &unlimited);
            assert!(
                matches!(&decoded, Err(ImageError::TooLarge(e)) if e.to_string().contains("65500")),
                "{width}x{height}: {decoded:?}"
            );
            let header = dimensions(&forged);
            assert!(
                matches!(header, Err(ImageError::TooLarge(_))),
                "{width}x{height}: {header:?}"
            );
        }
    }

    #[test]
    fn corrupt_data_is_an_error_with_libjpeg_message() {
        let mut bytes = fixture_bytes("inputs/real/hopper.jpg");
        // Break the start-of-frame marker's precision byte: libjpeg's fatal error path.
        let sof = bytes
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("SOF0");
        bytes[sof + 4] = 12;
        let err = decode(&bytes, &DecodeLimits::default()).expect_err("12-bit");
        let ImageError::Decode(source) = err else {
            panic!("{err:?}")
        };
        assert!(source.to_string().contains("precision"), "{source}");
        // Header only: no scan.
        assert!(matches!(
            decode(&bytes[..sof], &DecodeLimits::default()),
            Err(ImageError::Decode(_))
        ));
    }

    #[test]
    fn cmyk_formula_matches_pillow_on_corner_values() {
        // Raw (inverted) bytes: 255 = no ink. No ink at all is white, full black ink is black.
        assert_eq!(inverted_cmyk_to_rgb(&[255, 255, 255, 255]), [255, 255, 255]);
        assert_eq!(inverted_cmyk_to_rgb(&[255, 255, 255, 0]), [0, 0, 0]);
        // Full cyan, no black: red channel 0, others 255.
        assert_eq!(inverted_cmyk_to_rgb(&[0, 255, 255, 255]), [0, 255, 255]);
        // c = 100, k = 50 (raw 155 and 205): nk = 205, t = 100 * 205 + 128 = 20628,
        // muldiv255 = (20628 + 80) >> 8 = 80, so 205 - 80 = 125.
        assert_eq!(inverted_cmyk_to_rgb(&[155, 255, 255, 205]), [125, 205, 205]);
    }
}
