//! LLaVA-NeXT "anyres" preprocessing: an image becomes a base crop plus a grid of crops, each
//! resized, centre-cropped, rescaled and normalised into CHW f32, exactly as transformers'
//! `LlavaNextImageProcessor` does in either [`ImagePipeline`].

use e5v_model::{
    ImagePipeline,
    anyres::{resized_size, select_best_resolution},
};
use image::{DynamicImage, RgbImage};

use super::ImageError;
use super::config::{ImageProcessorConfig, ResizeTarget};
use super::convert::to_rgb;
use super::resize::{PassOrder, resize_bicubic};

/// The model input for one image.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PreprocessedImage {
    /// `[num_crops, 3, crop_h, crop_w]`, row-major. Crop 0 is the base crop (the whole image
    /// squashed to the base size), then the grid crops row-major as cut from the padded image.
    pub pixel_values: Vec<f32>,
    /// Number of crops: 1 + grid rows x grid columns.
    pub num_crops: usize,
    /// `(crop_h, crop_w)` of every crop.
    pub crop_size: (usize, usize),
    /// The original image's `(height, width)`: the model's `image_sizes` entry.
    pub image_size: (u32, u32),
}

/// Preprocesses one image for the LLaVA-NeXT vision tower.
///
/// 1. Convert to RGB ([`to_rgb`](super::to_rgb): alpha composited onto white, or dropped for
///    4.41.2).
/// 2. Pick the best pinpoint `(H, W)`, resize into it keeping the aspect ratio (Pillow bicubic,
///    [`PassOrder::for_behaviour`]), pad with black to `(H, W)` centred (extra pixel at the
///    bottom/right; 4.41.2 pads `(H - h') // 2` on both sides, leaving the canvas one pixel short
///    for odd differences), and cut `crop x crop` tiles row-major (4.41.2's last tiles may be one
///    pixel short).
/// 3. Prepend the base crop: the whole image resized to the `size` square (or `height x width`).
/// 4. Every crop: resize by `size` (shortest edge, long side `int(s * long / short)`), centre-crop
///    to `crop_size`, `x * rescale_factor` in f64 rounded to f32, then `(x - mean) / std` in f32.
///
/// # Errors
/// [`ImageError::Empty`] for an image without pixels; [`ImageError::InvalidConfig`] when the
/// config's resize and crop settings do not yield `crop_size` crops (transformers fails there
/// too).
pub fn preprocess(
    image: &DynamicImage,
    config: &ImageProcessorConfig,
    behaviour: ImagePipeline,
) -> Result<PreprocessedImage, ImageError> {
    config.validate()?;
    let rgb = to_rgb(image, behaviour);
    let image_size = (rgb.height(), rgb.width());
    if image_size.0 == 0 || image_size.1 == 0 {
        return Err(ImageError::Empty {
            height: image_size.0,
            width: image_size.1,
        });
    }
    let order = PassOrder::for_behaviour(behaviour);
    let (crop_h, crop_w) = config.crop_size;
    let crops = anyres_crops(&rgb, config, behaviour, order);
    let lut = normalisation_table(config);
    let mut pixel_values = Vec::with_capacity(crops.len() * 3 * crop_h * crop_w);
    for (index, tile) in crops.iter().enumerate() {
        let tile = finish_crop(tile, config, behaviour, order);
        if (tile.height() as usize, tile.width() as usize) != config.crop_size {
            return Err(ImageError::InvalidConfig(format!(
                "crop {index} is {}x{} (height x width) after resizing and centre-cropping, not \
                 {crop_h}x{crop_w}: this size/crop_size combination is not usable",
                tile.height(),
                tile.width()
            )));
        }
        for (channel, table) in lut.iter().enumerate() {
            pixel_values.extend(
                tile.as_raw()
                    .chunks_exact(3)
                    .map(|px| table[px[channel] as usize]),
            );
        }
    }
    Ok(PreprocessedImage {
        pixel_values,
        num_crops: crops.len(),
        crop_size: config.crop_size,
        image_size,
    })
}

/// The base crop followed by the grid tiles (before the per-crop resize and centre crop).
fn anyres_crops(
    rgb: &RgbImage,
    config: &ImageProcessorConfig,
    behaviour: ImagePipeline,
    order: PassOrder,
) -> Vec<RgbImage> {
    let image_size = (rgb.height(), rgb.width());
    let (target_h, target_w) = select_best_resolution(image_size, &config.grid_pinpoints);
    let (new_h, new_w) = resized_size(image_size, (target_h, target_w));
    let resized = resize_bicubic(rgb, new_w, new_h, order);
    let (top, left) = ((target_h - new_h) / 2, (target_w - new_w) / 2);
    let (canvas_h, canvas_w) = match behaviour {
        ImagePipeline::Transformers441 => (new_h + 2 * top, new_w + 2 * left),
        _ => (target_h, target_w),
    };
    let (base_h, base_w) = match config.size {
        ResizeTarget::ShortestEdge(s) => (s, s),
        ResizeTarget::Exact { height, width } => (height, width),
    };
    let mut crops = vec![resize_bicubic(rgb, base_w, base_h, order)];
    // transformers cuts square tiles of crop_size's height (validated non-zero and < 2^32).
    let cell = config.crop_size.0 as u32;
    for y in (0..canvas_h).step_by(cell as usize) {
        for x in (0..canvas_w).step_by(cell as usize) {
            let h = cell.min(canvas_h - y);
            let w = cell.min(canvas_w - x);
            // Canvas pixel (y, x) is resized pixel (y - top, x - left), black outside it.
            crops.push(window(
                &resized,
                y as i64 - top as i64,
                x as i64 - left as i64,
                h,
                w,
            ));
        }
    }
    crops
}

/// The `height x width` window of `src` whose top-left corner is at `(top, left)` (possibly
/// negative or past the edge), black where it leaves `src`.
fn window(src: &RgbImage, top: i64, left: i64, height: u32, width: u32) -> RgbImage {
    let mut out = RgbImage::new(width, height);
    let (src_h, src_w) = (i64::from(src.height()), i64::from(src.width()));
    let x0 = left.clamp(0, src_w);
    let x1 = (left + i64::from(width)).clamp(0, src_w);
    if x1 <= x0 {
        return out;
    }
    let (src_row, out_row) = (src_w as usize * 3, width as usize * 3);
    let span = (x1 - x0) as usize * 3;
    let out_x = (x0 - left) as usize * 3;
    let dst: &mut [u8] = &mut out;
    for y in 0..i64::from(height) {
        let sy = top + y;
        if sy < 0 || sy >= src_h {
            continue;
        }
        let from = &src.as_raw()[sy as usize * src_row + x0 as usize * 3..][..span];
        dst[y as usize * out_row + out_x..][..span].copy_from_slice(from);
    }
    out
}

/// Step 4 before normalisation: the `size` resize and the centre crop.
fn finish_crop(
    tile: &RgbImage,
    config: &ImageProcessorConfig,
    behaviour: ImagePipeline,
    order: PassOrder,
) -> RgbImage {
    let resized;
    let mut tile = tile;
    if config.do_resize {
        let (h, w) = output_size((tile.height(), tile.width()), config.size);
        resized = resize_bicubic(tile, w, h, order);
        tile = &resized;
    }
    if config.do_center_crop {
        let (crop_h, crop_w) = config.crop_size;
        center_crop(tile, crop_h as u32, crop_w as u32, behaviour)
    } else {
        tile.clone()
    }
}

/// transformers' `get_resize_output_image_size(..., default_to_square=False)` for
/// `shortest_edge`, or the exact size.
fn output_size((h, w): (u32, u32), size: ResizeTarget) -> (u32, u32) {
    match size {
        ResizeTarget::Exact { height, width } => (height, width),
        ResizeTarget::ShortestEdge(s) => {
            let (short, long) = if w <= h { (w, h) } else { (h, w) };
            // Python: int(s * long / short); the product is exact, the division correctly rounded.
            let new_long = (f64::from(s) * f64::from(long) / f64::from(short)) as u32;
            if w <= h { (new_long, s) } else { (s, new_long) }
        }
    }
}

/// transformers' `center_crop`: `top = (h - crop_h) // 2`; a too-small image is first padded
/// with black, by `ceil(d / 2)` before (transformers 5.x) or `d // 2` (4.41.2).
fn center_crop(src: &RgbImage, crop_h: u32, crop_w: u32, behaviour: ImagePipeline) -> RgbImage {
    let (h, w) = (i64::from(src.height()), i64::from(src.width()));
    let (ch, cw) = (i64::from(crop_h), i64::from(crop_w));
    let top = (h - ch).div_euclid(2);
    let left = (w - cw).div_euclid(2);
    if top >= 0 && top + ch <= h && left >= 0 && left + cw <= w {
        return window(src, top, left, crop_h, crop_w);
    }
    let (new_h, new_w) = (ch.max(h), cw.max(w));
    let pad = |d: i64| match behaviour {
        ImagePipeline::Transformers441 => d.div_euclid(2),
        _ => (d + 1).div_euclid(2),
    };
    let (top_pad, left_pad) = (pad(new_h - h), pad(new_w - w));
    // The crop window in padded coordinates, clipped to the padded image.
    let (y0, y1) = ((top + top_pad).max(0), (top + top_pad + ch).min(new_h));
    let (x0, x1) = ((left + left_pad).max(0), (left + left_pad + cw).min(new_w));
    let (out_h, out_w) = ((y1 - y0).max(0) as u32, (x1 - x0).max(0) as u32);
    window(src, y0 - top_pad, x0 - left_pad, out_h, out_w)
}

/// Per-channel u8 -> f32 tables computing transformers' rescale then normalise: numpy computes
/// `(x.astype(float64) * factor).astype(float32)`, then `(v - float32(mean)) / float32(std)` in
/// float32.
fn normalisation_table(config: &ImageProcessorConfig) -> [[f32; 256]; 3] {
    let mut lut = [[0f32; 256]; 3];
    for (channel, table) in lut.iter_mut().enumerate() {
        for (x, out) in table.iter_mut().enumerate() {
            let mut v = match config.rescale_factor {
                Some(factor) => (x as f64 * factor) as f32,
                None => x as f32,
            };
            if let Some((mean, std)) = config.normalization {
                v = (v - mean[channel] as f32) / std[channel] as f32;
            }
            *out = v;
        }
    }
    lut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::convert::{DecodeLimits, decode};
    use crate::image::test_support::{fixture, fixture_bytes, fnv1a64, pipeline};

    #[test]
    fn shortest_edge_output_size() {
        let s = ResizeTarget::ShortestEdge(336);
        assert_eq!(output_size((336, 335), s), (337, 336));
        assert_eq!(output_size((335, 336), s), (336, 337));
        assert_eq!(output_size((336, 336), s), (336, 336));
        assert_eq!(output_size((500, 700), s), (336, 470));
    }

    #[test]
    fn center_crop_pads_small_images_per_version() {
        let mut src = RgbImage::new(3, 3);
        src.put_pixel(0, 0, image::Rgb([9, 9, 9]));
        let new = center_crop(&src, 6, 6, ImagePipeline::Transformers);
        assert_eq!(new.dimensions(), (6, 6));
        assert_eq!(new.get_pixel(2, 2).0, [9, 9, 9]);
        // 4.41.2 pads by d // 2 and then clips a window starting at -1: one row/col short.
        let old = center_crop(&src, 6, 6, ImagePipeline::Transformers441);
        assert_eq!(old.dimensions(), (5, 5));
        assert_eq!(old.get_pixel(1, 1).0, [9, 9, 9]);
    }

    #[test]
    fn window_fills_outside_with_black() {
        let src = RgbImage::from_pixel(2, 2, image::Rgb([7, 7, 7]));
        let w = window(&src, -1, -1, 4, 4);
        let lit: Vec<_> = w
            .enumerate_pixels()
            .filter(|p| p.2.0[0] == 7)
            .map(|p| (p.0, p.1))
            .collect();
        assert_eq!(lit, vec![(1, 1), (2, 1), (1, 2), (2, 2)]);
        assert_eq!(window(&src, 5, 5, 2, 2), RgbImage::new(2, 2));
    }

    #[test]
    fn unusable_crop_settings_are_an_error_not_a_panic() {
        let config = ImageProcessorConfig::from_json_str(
            r#"{"size": {"shortest_edge": 336}, "crop_size": 336, "do_center_crop": false}"#,
        )
        .expect("config");
        let image = DynamicImage::new_rgb8(300, 1000);
        let result = preprocess(&image, &config, ImagePipeline::Transformers441);
        assert!(
            matches!(result, Err(ImageError::InvalidConfig(_))),
            "{result:?}"
        );
        let empty = DynamicImage::new_rgb8(0, 5);
        let result = preprocess(
            &empty,
            &ImageProcessorConfig::default(),
            ImagePipeline::Transformers,
        );
        assert!(matches!(result, Err(ImageError::Empty { .. })));
    }

    /// The whole pipeline against transformers 5.24 `LlavaNextImageProcessorPil` + Pillow 13 and
    /// transformers 4.41.2 `LlavaNextImageProcessor` + Pillow 12 (`fixtures/pillow/generate.py`,
    /// stage `preprocess`), with E5-V's settings: crop count, image size, sampled values (max
    /// abs diff <= 1e-6; they are in fact bit-identical) and the FNV-1a hash of every crop's f32
    /// bytes (bit-exact).
    #[test]
    fn matches_transformers_pixel_values() {
        let json = fixture("preprocess.json");
        let config = ImageProcessorConfig::default();
        let mut failures = Vec::new();
        let images = json["images"].as_array().expect("images");
        assert!(images.len() >= 16);
        for case in images {
            let input = case["input"].as_str().expect("input");
            if !cfg!(feature = "exact-jpeg") && input.ends_with(".jpg") {
                continue; // the `image` crate's JPEG decoder is not Pillow's
            }
            let behaviour = pipeline(case);
            let label = format!("{input} ({behaviour:?})");
            let image = decode(
                &fixture_bytes(&format!("inputs/{input}")),
                &DecodeLimits::default(),
            )
            .expect("decodable fixture");
            let out = preprocess(&image, &config, behaviour).expect("preprocess");
            let num_crops = case["num_crops"].as_u64().expect("num_crops") as usize;
            let size = &case["image_size"];
            let image_size = (
                size[0].as_u64().expect("h") as u32,
                size[1].as_u64().expect("w") as u32,
            );
            assert_eq!(out.num_crops, num_crops, "{label}: crops");
            assert_eq!(out.image_size, image_size, "{label}: image size");
            assert_eq!(out.crop_size, (336, 336), "{label}");
            assert_eq!(out.pixel_values.len(), num_crops * 3 * 336 * 336, "{label}");
            let crop_len = 3 * 336 * 336;
            for (k, crop) in case["crops"].as_array().expect("crops").iter().enumerate() {
                let values = &out.pixel_values[k * crop_len..(k + 1) * crop_len];
                let mut max_diff = 0f64;
                for sample in crop["samples"].as_array().expect("samples") {
                    let index = sample[0].as_u64().expect("index") as usize;
                    let expected = sample[1].as_f64().expect("value");
                    max_diff = max_diff.max((f64::from(values[index]) - expected).abs());
                }
                if max_diff > 1e-6 {
                    failures.push(format!(
                        "{label} crop {k}: sampled max abs diff {max_diff:e}"
                    ));
                }
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                if format!("{:016x}", fnv1a64(&bytes)) != crop["fnv"].as_str().expect("fnv") {
                    let means: Vec<f64> = (0..3)
                        .map(|c| {
                            let plane = &values[c * 336 * 336..(c + 1) * 336 * 336];
                            plane.iter().map(|&v| f64::from(v)).sum::<f64>() / plane.len() as f64
                        })
                        .collect();
                    failures.push(format!(
                        "{label} crop {k}: f32 hash differs (channel means {means:?}, expected {})",
                        crop["mean"]
                    ));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}
