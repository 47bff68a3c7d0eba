//! LLaVA-NeXT "anyres" geometry: which grid of crops an image gets, and which part of the crop
//! feature map survives unpadding.
//!
//! Pure integer/f64 arithmetic, shared by the image preprocessing (how to cut the crops) and by
//! the model's feature packing (how to lay the crop features out). Sizes are `(height, width)`
//! everywhere. Every formula reproduces transformers' Python in f64, in the same operation order.
//!
//! The two reference pipelines ([`ImagePipeline`]) differ here:
//! - [`ImagePipeline::Transformers`] (transformers >= 4.44): the grid of crops is laid out as
//!   cut, `(pinpoint_h / crop, pinpoint_w / crop)`, and unpadding rounds with `int(round(x, 7))`.
//! - [`ImagePipeline::Transformers441`] (transformers 4.41.2, which produced the E5-V paper's
//!   numbers): `get_anyres_image_grid_shape` returns `(h / crop, w / crop)` but the caller unpacks it
//!   as `(width, height)`, so the crop features are viewed as a `(w / crop) x (h / crop)` grid
//!   (transposed for 1x2, 2x1, 1x3 and 3x1 grids), and unpadding truncates with `int(x)`.

use std::ops::Range;

use crate::ImagePipeline;

/// `LlavaNextImageProcessor`'s default grid pinpoints, `(height, width)`: used when a config
/// has no `image_grid_pinpoints`.
pub const DEFAULT_PINPOINTS: [(u32, u32); 5] =
    [(336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008)];

/// Checks grid pinpoints: a non-empty list without a zero side and, given the crop size
/// `(height, width)` they must tile (the model's packing does), every side a multiple of it.
/// The error says what is wrong; each config wraps it in its own error type.
pub fn check_pinpoints(pinpoints: &[(u32, u32)], crop: Option<(u32, u32)>) -> Result<(), String> {
    if pinpoints.is_empty() {
        return Err("image_grid_pinpoints is empty".into());
    }
    if pinpoints.iter().any(|&(h, w)| h == 0 || w == 0) {
        return Err(format!(
            "image_grid_pinpoints has a zero side: {pinpoints:?}"
        ));
    }
    match crop {
        Some((ch, cw))
            if ch == 0
                || cw == 0
                || pinpoints
                    .iter()
                    .any(|&(h, w)| !h.is_multiple_of(ch) || !w.is_multiple_of(cw)) =>
        {
            Err(format!(
                "image_grid_pinpoints {pinpoints:?} are not multiples of the crop size {ch}x{cw}"
            ))
        }
        _ => Ok(()),
    }
}

/// The best pinpoint `(height, width)` for an image of size `image = (height, width)`.
///
/// For each pinpoint `(H, W)`: `s = min(W / w, H / h)`, `eff = min(floor(w s) floor(h s), w h)`,
/// `waste = H W - eff`; the largest `eff` wins, ties go to the smaller `waste`, then to the earlier
/// pinpoint (transformers' `select_best_resolution`). When no pinpoint has a positive effective
/// resolution (empty list, zero-sized image) the first pinpoint is returned, or `(0, 0)` for an
/// empty list (Python would fail there).
pub fn select_best_resolution(image: (u32, u32), pinpoints: &[(u32, u32)]) -> (u32, u32) {
    let (h, w) = (f64::from(image.0), f64::from(image.1));
    let area = u64::from(image.0) * u64::from(image.1);
    let mut best = pinpoints.first().copied().unwrap_or((0, 0));
    let mut best_eff = 0u64;
    let mut best_waste = i128::MAX;
    for &(ph, pw) in pinpoints {
        let scale = (f64::from(pw) / w).min(f64::from(ph) / h);
        // Python's int() truncates; `as` saturates NaN to 0, which only zero-sized images reach.
        let dw = (w * scale) as u64;
        let dh = (h * scale) as u64;
        let eff = dw.saturating_mul(dh).min(area);
        let waste = i128::from(ph) * i128::from(pw) - i128::from(eff);
        if eff > best_eff || (eff == best_eff && waste < best_waste) {
            best_eff = eff;
            best_waste = waste;
            best = (ph, pw);
        }
    }
    best
}

/// Size `(height, width)` after the aspect-preserving resize of `image` into `target`.
///
/// `sw = W / w`, `sh = H / h`; if `sw < sh` the width fills (`W`, `min(ceil(h sw), H)`), otherwise
/// the height does (`H`, `min(ceil(w sh), W)`). f64 exactly as written: `(375, 500)` into
/// `(672, 672)` gives 505 rows, because `375 * 1.344 = 504.00000000000006`.
pub fn resized_size(image: (u32, u32), target: (u32, u32)) -> (u32, u32) {
    let (h, w) = (f64::from(image.0), f64::from(image.1));
    let (th, tw) = target;
    let sw = f64::from(tw) / w;
    let sh = f64::from(th) / h;
    if sw < sh {
        (ceil_to_u32(h * sw).min(th), tw)
    } else {
        (th, ceil_to_u32(w * sh).min(tw))
    }
}

fn ceil_to_u32(x: f64) -> u32 {
    // Saturating for non-finite input (zero-sized images only).
    x.ceil() as u32
}

/// Grid `(rows, cols)` of crops for an image, in the shape the model uses to lay out the crop
/// features (the grid crops follow the base crop, row-major, in `pixel_values`).
///
/// With `(H, W)` the best pinpoint: [`ImagePipeline::Transformers`] gives `(H / crop, W / crop)`,
/// the grid as it was cut. [`ImagePipeline::Transformers441`] gives `(W / crop, H / crop)`: 4.41.2
/// unpacks `get_anyres_image_grid_shape`'s `(H / crop, W / crop)` as `(num_patch_width,
/// num_patch_height)` and then calls `view(num_patch_height, num_patch_width, ...)`, so the crops,
/// still in the order they were cut, are laid out in a transposed grid. Both agree for square
/// grids.
///
/// The preprocessing cuts `ceil(H / crop) * ceil(W / crop)` crops; pinpoints are multiples of the
/// crop size in every released LLaVA-NeXT config, where the two counts agree.
pub fn grid_shape(
    image: (u32, u32),
    pinpoints: &[(u32, u32)],
    crop: u32,
    behaviour: ImagePipeline,
) -> (usize, usize) {
    let (ph, pw) = select_best_resolution(image, pinpoints);
    let rows = ph.checked_div(crop).unwrap_or(0) as usize;
    let cols = pw.checked_div(crop).unwrap_or(0) as usize;
    match behaviour {
        ImagePipeline::Transformers441 => (cols, rows),
        _ => (rows, cols),
    }
}

/// Rows and columns of a `map = (fh, fw)` feature map kept by unpadding, for `image` = the
/// original `(h, w)`.
///
/// If `w / h > fw / fh` rows are cut: `nh = int(round(h * (fw / w), 7))` (4.41.2: `int(h * (fw /
/// w))`), `pad = (fh - nh) // 2`, rows `pad..fh - pad`, all columns. Otherwise columns are cut the
/// same way with `nw = int(round(w * (fh / h), 7))`. The kept band is `fh - 2 pad` long, so it can
/// differ from `nh` by one. Degenerate input (zero sizes) yields ranges clamped into the map, never
/// a panic.
pub fn unpad_region(
    image: (u32, u32),
    map: (usize, usize),
    behaviour: ImagePipeline,
) -> (Range<usize>, Range<usize>) {
    let (h, w) = (f64::from(image.0), f64::from(image.1));
    let (fh, fw) = map;
    let original_aspect = w / h;
    let current_aspect = fw as f64 / fh as f64;
    if original_aspect > current_aspect {
        let new_height = to_int(h * (fw as f64 / w), behaviour);
        (band(fh, new_height), 0..fw)
    } else {
        let new_width = to_int(w * (fh as f64 / h), behaviour);
        (0..fh, band(fw, new_width))
    }
}

/// Python's `int(round(x, 7))` (or `int(x)` for 4.41.2) for the non-negative sizes seen here.
///
/// `round(x, 7)` reaches the next integer exactly when the fractional part is at least
/// 0.99999995; that decimal lies strictly between two doubles, the lower being
/// `0.99999995_f64`, so the test on the (exactly computed) fractional part is `> 0.99999995_f64`.
fn to_int(x: f64, behaviour: ImagePipeline) -> i64 {
    if !x.is_finite() {
        return 0;
    }
    let floor = x.floor();
    let round_up = match behaviour {
        ImagePipeline::Transformers441 => false,
        _ => x - floor > 0.999_999_95_f64,
    };
    floor as i64 + i64::from(round_up)
}

/// `pad = (len - kept) // 2` (Python floor division), kept range `pad..len - pad`, clamped.
fn band(len: usize, kept: i64) -> Range<usize> {
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let pad = (len_i - kept).div_euclid(2).clamp(0, len_i / 2);
    let pad = pad as usize;
    pad..len - pad
}

/// Number of image tokens after packing: `tokens_per_side^2` base-crop features plus the unpadded
/// grid feature map with one newline per row, `R * (C + 1)`.
///
/// `tokens_per_side` = crop / patch (24 for E5-V's CLIP ViT-L/14-336). E5-V: a 336x336 image gives
/// 1176 tokens, (h, w) = (480, 640) gives 2340 and 512x512 gives 2928; with 4.41.2, (300, 1000)
/// gives 776 instead of 2182 and (800, 400) 888 instead of 1776.
pub fn image_token_count(
    image: (u32, u32),
    pinpoints: &[(u32, u32)],
    crop: u32,
    tokens_per_side: usize,
    behaviour: ImagePipeline,
) -> usize {
    let (rows, cols) = grid_shape(image, pinpoints, crop, behaviour);
    let map = (rows * tokens_per_side, cols * tokens_per_side);
    let (kept_rows, kept_cols) = unpad_region(image, map, behaviour);
    tokens_per_side * tokens_per_side + kept_rows.len() * (kept_cols.len() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinpoints_are_checked_in_one_place() {
        assert_eq!(
            check_pinpoints(&DEFAULT_PINPOINTS, Some((336, 336))),
            Ok(())
        );
        // transformers' processor defaults: 336-based pinpoints with 224 crops.
        assert_eq!(check_pinpoints(&DEFAULT_PINPOINTS, None), Ok(()));
        assert!(check_pinpoints(&DEFAULT_PINPOINTS, Some((224, 224))).is_err());
        assert!(check_pinpoints(&[], None).is_err());
        assert!(check_pinpoints(&[(0, 336)], None).is_err());
        assert!(check_pinpoints(&[(336, 336)], Some((0, 336))).is_err());
    }

    const PINPOINTS: [(u32, u32); 5] =
        [(336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008)];
    const NEW: ImagePipeline = ImagePipeline::Transformers;
    const OLD: ImagePipeline = ImagePipeline::Transformers441;

    fn tokens(h: u32, w: u32, behaviour: ImagePipeline) -> usize {
        image_token_count((h, w), &PINPOINTS, 336, 24, behaviour)
    }

    #[test]
    fn best_resolution_matches_reference() {
        assert_eq!(select_best_resolution((336, 336), &PINPOINTS), (336, 672));
        assert_eq!(select_best_resolution((480, 640), &PINPOINTS), (672, 672));
        assert_eq!(select_best_resolution((1000, 300), &PINPOINTS), (1008, 336));
        assert_eq!(select_best_resolution((300, 1000), &PINPOINTS), (336, 1008));
        assert_eq!(select_best_resolution((800, 400), &PINPOINTS), (672, 336));
        assert_eq!(select_best_resolution((1, 1), &PINPOINTS), (336, 672));
        assert_eq!(select_best_resolution((10, 10), &[]), (0, 0));
        assert_eq!(select_best_resolution((0, 10), &PINPOINTS), (336, 672));
    }

    #[test]
    fn resized_size_uses_f64_ceil() {
        // 375 * (672 / 500) = 504.00000000000006 -> 505 rows.
        assert_eq!(resized_size((375, 500), (672, 672)), (505, 672));
        assert_eq!(resized_size((336, 336), (336, 672)), (336, 336));
        assert_eq!(resized_size((1000, 300), (1008, 336)), (1008, 303));
        assert_eq!(resized_size((13, 20), (336, 672)), (336, 517));
        assert_eq!(resized_size((0, 0), (336, 672)), (336, 0));
    }

    #[test]
    fn grid_is_transposed_only_for_441_non_square_grids() {
        assert_eq!(grid_shape((336, 336), &PINPOINTS, 336, NEW), (1, 2));
        assert_eq!(grid_shape((336, 336), &PINPOINTS, 336, OLD), (2, 1));
        assert_eq!(grid_shape((1000, 300), &PINPOINTS, 336, NEW), (3, 1));
        assert_eq!(grid_shape((1000, 300), &PINPOINTS, 336, OLD), (1, 3));
        assert_eq!(grid_shape((480, 640), &PINPOINTS, 336, NEW), (2, 2));
        assert_eq!(grid_shape((480, 640), &PINPOINTS, 336, OLD), (2, 2));
        assert_eq!(grid_shape((480, 640), &PINPOINTS, 0, OLD), (0, 0));
    }

    #[test]
    fn unpad_rounds_in_transformers_and_truncates_in_441() {
        // (h, w) = (55, 176) into a 24x48 map: 55 * (48 / 176) = 14.999999999999998.
        assert_eq!(unpad_region((55, 176), (24, 48), NEW), (4..20, 0..48));
        assert_eq!(unpad_region((55, 176), (24, 48), OLD), (5..19, 0..48));
        // Columns are cut when the image is relatively taller than the map.
        assert_eq!(unpad_region((1000, 300), (72, 24), NEW), (0..72, 1..23));
        assert_eq!(unpad_region((0, 0), (24, 48), NEW), (0..24, 24..24));
        assert_eq!(unpad_region((10, 10), (0, 0), NEW), (0..0, 0..0));
    }

    /// The token counts quoted in docs/IMAGE-PIPELINE.md, section "8. Packing" (sizes there are
    /// (h, w)).
    #[test]
    fn reference_doc_token_counts() {
        assert_eq!(tokens(336, 336, NEW), 1176);
        assert_eq!(tokens(336, 336, OLD), 1176);
        assert_eq!(tokens(480, 640, NEW), 2340);
        assert_eq!(tokens(512, 512, NEW), 2928);
        assert_eq!(tokens(300, 1000, NEW), 2182);
        assert_eq!(tokens(300, 1000, OLD), 776);
        assert_eq!(tokens(800, 400, NEW), 1776);
        assert_eq!(tokens(800, 400, OLD), 888);
    }

    /// (h, w, tokens with transformers 5.24, tokens with transformers 4.41.2), computed by running
    /// each version's own `pack_image_features` on index-valued features
    /// (`fixtures/pillow/generate.py`, stage `anyres`; the full sweep is in `anyres.json`).
    const TOKEN_COUNTS: [(u32, u32, usize, usize); 26] = [
        (1, 1, 1176, 1176),
        (13, 20, 1464, 976),
        (20, 13, 984, 1476),
        (47, 47, 1176, 1176),
        (55, 176, 1360, 776),
        (88, 55, 984, 1526),
        (88, 99, 1272, 1126),
        (147, 196, 1368, 1026),
        (224, 224, 1176, 1176),
        (251, 337, 1368, 1026),
        (300, 1000, 2182, 776),
        (335, 336, 1176, 1176),
        (336, 336, 1176, 1176),
        (337, 336, 1176, 1176),
        (400, 800, 1752, 876),
        (480, 640, 2340, 2340),
        (500, 700, 2242, 2242),
        (512, 512, 2928, 2928),
        (640, 480, 2352, 2352),
        (672, 1008, 2144, 2144),
        (800, 400, 1776, 888),
        (1000, 300, 2232, 792),
        (1008, 1009, 2928, 2928),
        (1080, 1920, 1948, 1948),
        (4000, 1, 600, 624),
        (1, 4000, 576, 576),
    ];

    #[test]
    fn token_counts_match_both_transformers_versions() {
        for (h, w, new, old) in TOKEN_COUNTS {
            assert_eq!(
                tokens(h, w, NEW),
                new,
                "transformers 5.24, (h, w) = ({h}, {w})"
            );
            assert_eq!(
                tokens(h, w, OLD),
                old,
                "transformers 4.41.2, (h, w) = ({h}, {w})"
            );
        }
    }

    /// Replays the model's packing from [`grid_shape`] and [`unpad_region`]: crop `c` (base = 0)
    /// feature `k` has the value `c * 576 + k`, newlines are -1; returns FNV-1a 64 over the
    /// little-endian i32 sequence, as `generate.py` hashes the real `pack_image_features` output.
    fn packed_hash(image: (u32, u32), behaviour: ImagePipeline) -> (usize, u64) {
        const T: usize = 24;
        let (rows, cols) = grid_shape(image, &PINPOINTS, 336, behaviour);
        let (kept_rows, kept_cols) = unpad_region(image, (rows * T, cols * T), behaviour);
        let mut seq: Vec<i32> = (0..(T * T) as i32).collect();
        for y in kept_rows {
            for x in kept_cols.clone() {
                let crop = 1 + (y / T) * cols + x / T;
                seq.push((crop * T * T + (y % T) * T + x % T) as i32);
            }
            seq.push(-1);
        }
        let mut hash = 0xcbf2_9ce4_8422_2325_u64;
        for byte in seq.iter().flat_map(|v| v.to_le_bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        (seq.len(), hash)
    }

    #[test]
    fn packing_order_matches_python_sweep() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/pillow/anyres.json"
        );
        let text = std::fs::read_to_string(path).expect("fixtures/pillow/anyres.json");
        let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let mut checked = 0;
        for (key, behaviour) in [("transformers", NEW), ("transformers441", OLD)] {
            let cases = json[key].as_array().expect("case list");
            for case in cases {
                let field = |name: &str| case[name].as_u64().expect("integer field");
                let (h, w) = (field("h") as u32, field("w") as u32);
                let (len, hash) = packed_hash((h, w), behaviour);
                assert_eq!(len as u64, field("tokens"), "{key} ({h}, {w}) token count");
                assert_eq!(
                    tokens(h, w, behaviour) as u64,
                    field("tokens"),
                    "{key} ({h}, {w})"
                );
                let rows = grid_shape((h, w), &PINPOINTS, 336, behaviour);
                assert_eq!(
                    (rows.0 * rows.1 + 1) as u64,
                    field("crops"),
                    "{key} ({h}, {w}) crops"
                );
                assert_eq!(
                    format!("{hash:016x}"),
                    case["fnv"].as_str().expect("hash"),
                    "{key} ({h}, {w}) order"
                );
                checked += 1;
            }
        }
        assert!(checked > 2000, "only {checked} cases");
    }
}
