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
/// too), or when they would make the pipeline create more than 2^27 pixels in all (sizes no
/// vision tower takes; checked before the pixels are allocated).
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
    let grid = Grid::new(image_size, config, behaviour);
    let num_crops = 1 + grid.tiles();
    let mut crops = Crops::new(config, behaviour, num_crops)?;
    // The base crop: the whole image squashed to the base size.
    let (base_h, base_w) = match config.size {
        ResizeTarget::ShortestEdge(s) => (s, s),
        ResizeTarget::Exact { height, width } => (height, width),
    };
    let base = crops.resize(&rgb, base_h, base_w)?;
    crops.push(&base)?;
    // The grid: square tiles of crop_size's height cut row-major from the padded canvas; canvas
    // pixel (y, x) is resized pixel (y - top, x - left), black outside it.
    let resized = crops.resize(&rgb, grid.resized.0, grid.resized.1)?;
    let cell = grid.cell;
    for y in (0..grid.canvas.0).step_by(cell as usize) {
        for x in (0..grid.canvas.1).step_by(cell as usize) {
            let (h, w) = (cell.min(grid.canvas.0 - y), cell.min(grid.canvas.1 - x));
            crops
                .budget
                .take("a grid tile", u64::from(h) * u64::from(w))?;
            let (top, left) = (
                i64::from(y) - i64::from(grid.top),
                i64::from(x) - i64::from(grid.left),
            );
            crops.push(&window(&resized, top, left, h, w))?;
        }
    }
    Ok(PreprocessedImage {
        pixel_values: crops.pixel_values,
        num_crops: crops.count,
        crop_size: config.crop_size,
        image_size,
    })
}

/// The most pixels one [`preprocess`] call may create: every intermediate image, every crop
/// and the output counted (a resize counts its output and its intermediate pass). With E5-V's
/// config a photo creates about 4 M, and the largest image the default decode limits let
/// through (16384 x 16384) about 20 M. A config that needs over 2^27 (~134 M; up to 1.6 GB and
/// seconds of work) is broken rather than large, and is refused before the pixels exist.
const MAX_PIXELS: u64 = 1 << 27;

/// Pixels created so far by one [`preprocess`] call, against [`MAX_PIXELS`].
#[derive(Default)]
struct PixelBudget {
    used: u64,
}

impl PixelBudget {
    /// Counts `pixels` more for `what`.
    ///
    /// # Errors
    /// [`ImageError::InvalidConfig`] past [`MAX_PIXELS`].
    fn take(&mut self, what: &str, pixels: u64) -> Result<(), ImageError> {
        self.used = self.used.saturating_add(pixels);
        if self.used > MAX_PIXELS {
            return Err(ImageError::InvalidConfig(format!(
                "preprocessing would create more than {MAX_PIXELS} pixels (reached at {what}): \
                 size, crop_size and image_grid_pinpoints must be image sizes a vision tower takes"
            )));
        }
        Ok(())
    }
}

/// The anyres grid for one image: where the resized image sits on the pinpoint's canvas and
/// the tile size.
struct Grid {
    /// The image resized into the best pinpoint, keeping its aspect ratio `(height, width)`.
    resized: (u32, u32),
    /// The offset of the resized image on the canvas (the padding before it).
    top: u32,
    left: u32,
    /// The padded canvas `(height, width)`: the pinpoint, or for 4.41.2 the resized image plus
    /// the same padding on both sides (one pixel short for odd differences).
    canvas: (u32, u32),
    /// The tile side: transformers cuts square tiles of crop_size's height (validated non-zero
    /// and < 2^32).
    cell: u32,
}

impl Grid {
    fn new(
        image_size: (u32, u32),
        config: &ImageProcessorConfig,
        behaviour: ImagePipeline,
    ) -> Self {
        let (target_h, target_w) = select_best_resolution(image_size, &config.grid_pinpoints);
        let (new_h, new_w) = resized_size(image_size, (target_h, target_w));
        let (top, left) = ((target_h - new_h) / 2, (target_w - new_w) / 2);
        let canvas = match behaviour {
            ImagePipeline::Transformers441 => (new_h + 2 * top, new_w + 2 * left),
            _ => (target_h, target_w),
        };
        Self {
            resized: (new_h, new_w),
            top,
            left,
            canvas,
            cell: config.crop_size.0 as u32,
        }
    }

    /// The number of grid tiles (the last row and column may be narrower).
    fn tiles(&self) -> u64 {
        let count = |side: u32| u64::from(side.div_ceil(self.cell));
        count(self.canvas.0) * count(self.canvas.1)
    }
}

/// The output under construction: each crop finished (step 4) and appended as CHW f32.
struct Crops<'a> {
    config: &'a ImageProcessorConfig,
    behaviour: ImagePipeline,
    order: PassOrder,
    lut: [[f32; 256]; 3],
    budget: PixelBudget,
    pixel_values: Vec<f32>,
    count: usize,
}

impl<'a> Crops<'a> {
    /// Room for `num_crops` crops, counted against the budget before it is allocated.
    fn new(
        config: &'a ImageProcessorConfig,
        behaviour: ImagePipeline,
        num_crops: u64,
    ) -> Result<Self, ImageError> {
        let (crop_h, crop_w) = config.crop_size;
        let mut budget = PixelBudget::default();
        let pixels = num_crops.saturating_mul(crop_h as u64 * crop_w as u64);
        budget.take("the crops", pixels)?;
        // Within the budget, so the count fits in usize.
        let values = 3 * pixels as usize;
        Ok(Self {
            config,
            behaviour,
            order: PassOrder::for_behaviour(behaviour),
            lut: normalisation_table(config),
            budget,
            pixel_values: Vec::with_capacity(values),
            count: 0,
        })
    }

    /// [`resize_bicubic`] to `height x width`, its output and intermediate pass counted first.
    fn resize(&mut self, src: &RgbImage, height: u32, width: u32) -> Result<RgbImage, ImageError> {
        // The intermediate pass is new width x old height or old width x new height, by order.
        let (src_h, src_w) = (u64::from(src.height()), u64::from(src.width()));
        let (h, w) = (u64::from(height), u64::from(width));
        let between = (src_h * w).max(h * src_w);
        self.budget
            .take("a resize", (h * w).saturating_add(between))?;
        Ok(resize_bicubic(src, width, height, self.order))
    }

    /// Step 4: the `size` resize, the centre crop, then rescale and normalise into the output.
    fn push(&mut self, tile: &RgbImage) -> Result<(), ImageError> {
        let (crop_h, crop_w) = self.config.crop_size;
        let resized;
        let mut tile = tile;
        if self.config.do_resize {
            let (h, w) = output_size((tile.height(), tile.width()), self.config.size);
            resized = self.resize(tile, h, w)?;
            tile = &resized;
        }
        let cropped;
        if self.config.do_center_crop {
            self.budget
                .take("a centre crop", crop_h as u64 * crop_w as u64)?;
            cropped = center_crop(tile, crop_h as u32, crop_w as u32, self.behaviour);
            tile = &cropped;
        }
        if (tile.height() as usize, tile.width() as usize) != self.config.crop_size {
            return Err(ImageError::InvalidConfig(format!(
                "crop {} is {}x{} (height x width) after resizing and centre-cropping, not \
                 {crop_h}x{crop_w}: this size/crop_size combination is not usable",
                self.count,
                tile.height(),
                tile.width()
            )));
        }
        for (channel, table) in self.lut.iter().enumerate() {
            self.pixel_values.extend(
                tile.as_raw()
                    .chunks_exact(3)
                    .map(|px| table[px[channel] as usize]),
            );
        }
        self.count += 1;
        Ok(())
    }
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

    #[test]
    fn configs_needing_absurd_pixel_counts_are_refused_before_allocating() {
        let image = DynamicImage::new_rgb8(37, 23);
        for json in [
            // Crops of 4e9 x 4e9 (found by the property test: an abort allocating the output).
            r#"{"size": 336, "crop_size": 4000000000}"#,
            // A 300000 x 300000 base crop.
            r#"{"size": 300000, "crop_size": 336}"#,
            // One-pixel tiles over a 1e6 x 1e6 canvas: 1e12 crops.
            r#"{"size": 1, "crop_size": 1, "image_grid_pinpoints": [[1000000, 1000000]]}"#,
            // A 1-pixel-wide last tile resized to shortest edge 20000: 20000 x 7e6.
            r#"{"size": {"shortest_edge": 20000}, "crop_size": 336, "do_center_crop": false,
                "image_grid_pinpoints": [[336, 337]]}"#,
        ] {
            let config = ImageProcessorConfig::from_json_str(json).expect(json);
            for behaviour in [ImagePipeline::Transformers, ImagePipeline::Transformers441] {
                let result = preprocess(&image, &config, behaviour);
                assert!(
                    matches!(&result, Err(ImageError::InvalidConfig(m)) if m.contains("pixels")),
                    "{json}: {result:?}"
                );
            }
        }
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
