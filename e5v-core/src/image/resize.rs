//! Pillow-exact 8-bit bicubic resize of RGB images.
//!
//! A port of the algorithm of Pillow's `libImaging/Resample.c` (MIT-CMU licence) as described in
//! `docs/PILLOW-RESIZE.md`: per-axis f64 Keys-cubic weights (a = -0.5, widened by the scale when
//! downscaling), normalised, quantised to i32 with 22 fractional bits; each pass accumulates in
//! i32 from 2^21, shifts right by 22 and clamps to u8, so the image between the two passes is u8.
//! Only the passes whose size changes run; which runs first when both do is the [`PassOrder`].

use e5v_model::ImagePipeline;
use image::RgbImage;

/// Fractional bits of the quantised weights (`32 - 8 - 2` in Pillow).
const PRECISION_BITS: u32 = 22;
/// The accumulator's start value: one half, so that the final shift rounds.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Which Pillow release's rule orders the two passes of a resize that changes both axes.
///
/// Pillow 13 changed the rule, which changes results for some sizes (noise: up to 25 levels), so
/// the order is tied to the reproduced transformers behaviour: see [`PassOrder::for_behaviour`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PassOrder {
    /// Pillow <= 12.x: horizontal pass first, then vertical.
    Pillow12,
    /// Pillow >= 13.0: vertical first iff `in_h - out_h > 0` and `in_h - out_h > 2 (in_w - out_w)`,
    /// otherwise horizontal first. Default.
    #[default]
    Pillow13,
}

impl PassOrder {
    /// The Pillow that ran with each transformers behaviour: [`ImagePipeline::Transformers441`]
    /// with Pillow 12 (the 2024 stack), [`ImagePipeline::Transformers`] with Pillow 13.
    pub fn for_behaviour(behaviour: ImagePipeline) -> Self {
        match behaviour {
            ImagePipeline::Transformers441 => PassOrder::Pillow12,
            _ => PassOrder::Pillow13,
        }
    }

    /// Whether the vertical pass runs first for a resize of `(in_h, in_w)` to `(out_h, out_w)`
    /// that changes both axes.
    fn vertical_first(self, input: (usize, usize), output: (usize, usize)) -> bool {
        match self {
            PassOrder::Pillow12 => false,
            PassOrder::Pillow13 => {
                let dh = input.0 as i64 - output.0 as i64;
                let dw = input.1 as i64 - output.1 as i64;
                dh > 0 && dh > 2 * dw
            }
        }
    }
}

/// Keys' cubic convolution kernel with a = -0.5, in Pillow's operation order (no fused
/// multiply-add: Rust never contracts f64 expressions).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Quantised taps of one axis: output sample `i` reads the `len[i]` inputs from `start[i]` with
/// the weights `weights[i * stride..][..len[i]]`.
struct Taps {
    start: Vec<usize>,
    len: Vec<usize>,
    stride: usize,
    weights: Vec<i32>,
}

impl Taps {
    /// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for bicubic, no box.
    fn new(in_size: usize, out_size: usize) -> Self {
        const SUPPORT: f64 = 2.0;
        let scale = in_size as f64 / out_size as f64;
        let filter_scale = scale.max(1.0);
        let support = SUPPORT * filter_scale;
        let inv = 1.0 / filter_scale;
        let stride = support.ceil() as usize * 2 + 1;
        let mut start = Vec::with_capacity(out_size);
        let mut len = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * stride];
        let mut raw = vec![0f64; stride];
        for (i, quantised) in weights.chunks_exact_mut(stride).enumerate() {
            let center = (i as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero; negative values are then clamped to 0.
            let lo = ((center - support + 0.5) as i64).max(0) as usize;
            let hi = ((center + support + 0.5) as i64).clamp(0, in_size as i64) as usize;
            let n = hi.saturating_sub(lo).min(stride);
            let mut sum = 0.0;
            for (k, w) in raw[..n].iter_mut().enumerate() {
                *w = bicubic((((k + lo) as f64) - center + 0.5) * inv);
                sum += *w;
            }
            for (w, q) in raw[..n].iter().zip(quantised.iter_mut()) {
                let w = if sum != 0.0 { w / sum } else { *w };
                let scaled = w * f64::from(1u32 << PRECISION_BITS);
                *q = if w < 0.0 {
                    (scaled - 0.5) as i32
                } else {
                    (scaled + 0.5) as i32
                };
            }
            start.push(lo);
            len.push(n);
        }
        Taps {
            start,
            len,
            stride,
            weights,
        }
    }

    fn get(&self, i: usize) -> (usize, &[i32]) {
        let w = &self.weights[i * self.stride..][..self.len[i]];
        (self.start[i], w)
    }
}

/// `acc >> 22` clamped to `0..=255` (Pillow's `clip8`).
#[inline(always)]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes `src` to `width x height` exactly as Pillow's `Image.resize(size, BICUBIC)` does for
/// an RGB image (no box, no `reducing_gap`), with the pass order of the given Pillow release.
/// An empty source or target (which Pillow refuses) gives a black image of the target size.
pub(crate) fn resize_bicubic(
    src: &RgbImage,
    width: u32,
    height: u32,
    order: PassOrder,
) -> RgbImage {
    if width == 0 || height == 0 || src.width() == 0 || src.height() == 0 {
        return RgbImage::new(width, height);
    }
    let input = (src.height() as usize, src.width() as usize);
    let output = (height as usize, width as usize);
    let horizontal = input.1 != output.1;
    let vertical = input.0 != output.0;
    match (horizontal, vertical) {
        (false, false) => src.clone(),
        (true, false) => horizontal_pass(src, width),
        (false, true) => vertical_pass(src, height),
        (true, true) if order.vertical_first(input, output) => {
            horizontal_pass(&vertical_pass(src, height), width)
        }
        (true, true) => vertical_pass(&horizontal_pass(src, width), height),
    }
}

/// Resamples every row of `src` to `width` pixels.
fn horizontal_pass(src: &RgbImage, width: u32) -> RgbImage {
    let (in_w, out_w) = (src.width() as usize, width as usize);
    let taps = Taps::new(in_w, out_w);
    let mut out = RgbImage::new(width, src.height());
    let src_rows = src.as_raw().chunks_exact(in_w * 3);
    for (src_row, out_row) in src_rows.zip(out.chunks_exact_mut(out_w * 3)) {
        for (x, out_px) in out_row.chunks_exact_mut(3).enumerate() {
            let (start, weights) = taps.get(x);
            let pixels = &src_row[start * 3..(start + weights.len()) * 3];
            let (mut r, mut g, mut b) = (HALF, HALF, HALF);
            for (px, &w) in pixels.chunks_exact(3).zip(weights) {
                r += i32::from(px[0]) * w;
                g += i32::from(px[1]) * w;
                b += i32::from(px[2]) * w;
            }
            out_px[0] = clip8(r);
            out_px[1] = clip8(g);
            out_px[2] = clip8(b);
        }
    }
    out
}

/// Resamples every column of `src` to `height` pixels, a whole row of accumulators at a time.
fn vertical_pass(src: &RgbImage, height: u32) -> RgbImage {
    let (in_h, out_h) = (src.height() as usize, height as usize);
    let row_len = src.width() as usize * 3;
    let taps = Taps::new(in_h, out_h);
    let mut out = RgbImage::new(src.width(), height);
    let src = src.as_raw();
    let mut acc = vec![HALF; row_len];
    for (y, out_row) in out.chunks_exact_mut(row_len).enumerate() {
        let (start, weights) = taps.get(y);
        acc.fill(HALF);
        for (k, &w) in weights.iter().enumerate() {
            let row = &src[(start + k) * row_len..][..row_len];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += i32::from(p) * w;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::test_support::{fixture, fnv1a64, load_rgb};

    #[test]
    fn kernel_values() {
        assert_eq!(bicubic(0.0), 1.0);
        assert_eq!(bicubic(1.0), 0.0);
        assert_eq!(bicubic(-0.5), 0.5625);
        assert_eq!(bicubic(1.5), -0.0625);
        assert_eq!(bicubic(2.0), 0.0);
    }

    #[test]
    fn taps_of_an_identity_axis_are_one_hot() {
        let taps = Taps::new(5, 5);
        for i in 0..5 {
            let (start, w) = taps.get(i);
            let at = w.iter().position(|&q| q != 0).map(|p| p + start);
            assert_eq!(at, Some(i));
            assert_eq!(w.iter().sum::<i32>(), 1 << PRECISION_BITS);
        }
    }

    #[test]
    fn pass_order_rule() {
        let p13 = PassOrder::Pillow13;
        assert!(p13.vertical_first((1000, 300), (336, 336)));
        assert!(!p13.vertical_first((300, 1000), (336, 336)));
        assert!(!p13.vertical_first((100, 100), (200, 50)));
        assert!(!PassOrder::Pillow12.vertical_first((1000, 300), (336, 336)));
        assert_eq!(PassOrder::for_behaviour(ImagePipeline::Transformers), p13);
        assert_eq!(
            PassOrder::for_behaviour(ImagePipeline::Transformers441),
            PassOrder::Pillow12
        );
    }

    #[test]
    fn degenerate_sizes_do_not_panic() {
        let src = RgbImage::new(3, 2);
        assert_eq!(
            resize_bicubic(&src, 0, 0, PassOrder::Pillow13).dimensions(),
            (0, 0)
        );
        assert_eq!(
            resize_bicubic(&src, 0, 5, PassOrder::Pillow13).dimensions(),
            (0, 5)
        );
        let empty = RgbImage::new(0, 0);
        assert_eq!(
            resize_bicubic(&empty, 4, 4, PassOrder::Pillow12).dimensions(),
            (4, 4)
        );
    }

    /// Pixel-exact against Pillow 13.0.0 and 12.3.0 (`fixtures/pillow/generate.py`, stage
    /// `resize`): every case's FNV-1a hash, and for small outputs the full expected image.
    #[test]
    fn matches_pillow_golden_outputs() {
        let json = fixture("resize.json");
        let cases = json["cases"].as_array().expect("cases");
        assert!(cases.len() >= 100, "{} cases", cases.len());
        let mut failures = Vec::new();
        for case in cases {
            let input = case["input"].as_str().expect("input");
            let width = case["width"].as_u64().expect("width") as u32;
            let height = case["height"].as_u64().expect("height") as u32;
            let order = match case["order"].as_str() {
                Some("pillow12") => PassOrder::Pillow12,
                Some("pillow13") => PassOrder::Pillow13,
                other => panic!("unknown order {other:?}"),
            };
            let src = load_rgb(input);
            let out = resize_bicubic(&src, width, height, order);
            assert_eq!(out.dimensions(), (width, height));
            let label = format!("{input} -> {width}x{height} ({order:?})");
            if let Some(png) = case["png"].as_str() {
                let expected = load_rgb(&format!("expected/{png}"));
                let differing = out
                    .iter()
                    .zip(expected.iter())
                    .filter(|(a, b)| a != b)
                    .count();
                if differing > 0 {
                    failures.push(format!("{label}: {differing} bytes differ"));
                }
            }
            if format!("{:016x}", fnv1a64(out.as_raw())) != case["fnv"].as_str().expect("fnv") {
                failures.push(format!("{label}: hash differs"));
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
