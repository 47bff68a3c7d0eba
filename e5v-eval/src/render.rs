//! Captions drawn as images, for the image-image variant of Flickr30K and COCO.
//!
//! The paper's code (`create_text_image` in the E5-V repository) draws each caption with PIL:
//! black on a white 800x400 image, Arial at size 40, greedy word wrap at 760 px, lines starting
//! at x = 20, and the block centred vertically, where each line is as tall as its own ink
//! (`textbbox` height) and the next line starts right below it. This module follows that
//! algorithm step by step with [Liberation Sans] Regular, the free font with Arial's metrics
//! (SIL Open Font License 1.1, bundled in `assets/fonts/` with its licence), rasterised by
//! `ab_glyph`:
//!
//! - wrap: words (split on whitespace) are added to a line, each followed by a space, while
//!   the line plus the next word measures at most 760 px; the measure is Pillow's `textlength`,
//!   the sum of advance widths rounded to whole pixels (FreeType's hinted advances) plus kerning.
//! - line height: the ink extent of the line's glyphs, baseline included (every line ends in a
//!   space), as `textbbox` gives it; the block starts at `(400 - total) // 2`.
//! - drawing: each glyph's coverage is taken per pixel (the maximum where glyphs of a line
//!   overlap) and blended onto the image as Pillow pastes a fill through a mask.
//!
//! Differences from the paper's images, which cannot be avoided: the font is Liberation Sans,
//! not Arial (same advance widths, different outlines), and glyphs are not hinted, so edges
//! differ by a pixel here and there. One deliberate change: a single word wider than 760 px
//! gets a line of its own (the original loops forever on it).
//!
//! [Liberation Sans]: https://github.com/liberationfonts/liberation-fonts

use std::io::Cursor;

use ab_glyph::{Font, FontRef, GlyphId, OutlinedGlyph, PxScale, ScaleFont, point};
use image::{GrayImage, ImageFormat, Luma};
use sha2::{Digest, Sha256};

use crate::error::{EvalError, Result};

/// The bundled font: Liberation Sans Regular 2.1.5 (SIL OFL 1.1).
pub const FONT: &[u8] = include_bytes!("../assets/fonts/LiberationSans-Regular.ttf");
/// Width of a rendered caption.
pub const CAPTION_WIDTH: u32 = 800;
/// Height of a rendered caption.
pub const CAPTION_HEIGHT: u32 = 400;
/// Font size in pixels per em (PIL's `truetype(path, 40)`).
pub const FONT_SIZE: f32 = 40.0;
/// Left edge of the text.
pub const TEXT_X: i32 = 20;
/// The widest a line may measure (the image width minus 40).
pub const WRAP_WIDTH: f32 = 760.0;

/// Bumped whenever the rendered pixels change, so that cached embeddings of old renderings
/// are not reused.
const RENDER_VERSION: u32 = 1;

/// Draws captions as the paper's image-image evaluation does (see the module docs).
#[derive(Clone, Debug)]
pub struct CaptionRenderer {
    font: FontRef<'static>,
    scale: PxScale,
    /// The ascender line's distance above the baseline, whole pixels.
    ascender: i32,
}

/// One glyph placed on a line: its outline (if it has ink) at a pen position.
struct Placed {
    outline: Option<OutlinedGlyph>,
}

impl CaptionRenderer {
    /// Loads the bundled font.
    pub fn new() -> Result<Self> {
        let font = FontRef::try_from_slice(FONT)
            .map_err(|e| EvalError::Render(format!("the bundled font cannot be read: {e}")))?;
        let units_per_em = font
            .units_per_em()
            .ok_or_else(|| EvalError::Render("the bundled font has no units per em".into()))?;
        // ab_glyph scales by the font's height (ascent - descent); PIL by the em.
        let scale = PxScale::from(FONT_SIZE * font.height_unscaled() / units_per_em);
        let ascender = font.as_scaled(scale).ascent().ceil() as i32;
        Ok(Self {
            font,
            scale,
            ascender,
        })
    }

    /// Identifies the rendering (font bytes, sizes, algorithm version) in cache keys.
    pub fn id(&self) -> String {
        let font = Sha256::digest(FONT);
        let hex: String = font[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "liberation-sans-{hex}/{CAPTION_WIDTH}x{CAPTION_HEIGHT}/size{FONT_SIZE}/wrap{WRAP_WIDTH}/x{TEXT_X}/v{RENDER_VERSION}"
        )
    }

    /// The glyph ids of `text` with each one's pen offset from the line start, in pixels.
    fn layout(&self, text: &str) -> (Vec<(GlyphId, f32)>, f32) {
        let scaled = self.font.as_scaled(self.scale);
        let mut pen = 0.0f32;
        let mut previous: Option<GlyphId> = None;
        let mut glyphs = Vec::new();
        for c in text.chars() {
            let id = self.font.glyph_id(c);
            if let Some(prev) = previous {
                pen += scaled.kern(prev, id).round();
            }
            glyphs.push((id, pen));
            pen += scaled.h_advance(id).round();
            previous = Some(id);
        }
        (glyphs, pen)
    }

    /// PIL's `textlength`: the advance width of `text` in pixels.
    pub fn text_length(&self, text: &str) -> f32 {
        self.layout(text).1
    }

    /// Splits a caption into lines as the paper's `draw_text_with_wrapping` does; every line
    /// keeps its trailing space.
    pub fn wrap(&self, caption: &str) -> Vec<String> {
        let mut words = caption
            .split(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
            .filter(|w| !w.is_empty())
            .peekable();
        let mut lines = Vec::new();
        while words.peek().is_some() {
            let mut line = String::new();
            while let Some(word) = words.peek() {
                if self.text_length(&format!("{line}{word}")) > WRAP_WIDTH {
                    break;
                }
                line.push_str(word);
                line.push(' ');
                words.next();
            }
            if line.is_empty() {
                // A word wider than the wrap width: on a line of its own (see the module docs).
                if let Some(word) = words.next() {
                    line = format!("{word} ");
                }
            }
            lines.push(line);
        }
        lines
    }

    /// Places the glyphs of a line with the pen starting at `(x, baseline)`.
    fn place(&self, line: &str, x: f32, baseline: f32) -> Vec<Placed> {
        self.layout(line)
            .0
            .into_iter()
            .map(|(id, offset)| Placed {
                outline: self.font.outline_glyph(
                    id.with_scale_and_position(self.scale, point(x + offset, baseline)),
                ),
            })
            .collect()
    }

    /// The height of a line as `textbbox` measures it: from the top of its highest ink to the
    /// bottom of its lowest, the baseline included.
    pub fn line_height(&self, line: &str) -> i32 {
        let (mut top, mut bottom) = (0.0f32, 0.0f32);
        for placed in self.place(line, 0.0, 0.0) {
            if let Some(outline) = placed.outline {
                let bounds = outline.px_bounds();
                top = top.min(bounds.min.y);
                bottom = bottom.max(bounds.max.y);
            }
        }
        (bottom - top) as i32
    }

    /// Draws `caption` on a white 800x400 image (grey levels; the model sees it as RGB).
    pub fn render(&self, caption: &str) -> GrayImage {
        let (width, height) = (CAPTION_WIDTH, CAPTION_HEIGHT);
        let mut image = GrayImage::from_pixel(width, height, Luma([255]));
        let lines = self.wrap(caption);
        let heights: Vec<i32> = lines.iter().map(|l| self.line_height(l)).collect();
        let total: i32 = heights.iter().sum();
        let mut y = (height as i32 - total).div_euclid(2);
        let mut coverage = vec![0u8; (width * height) as usize];
        for (line, line_height) in lines.iter().zip(heights) {
            coverage.fill(0);
            let baseline = (y + self.ascender) as f32;
            for placed in self.place(line, TEXT_X as f32, baseline) {
                let Some(outline) = placed.outline else {
                    continue;
                };
                let min = outline.px_bounds().min;
                outline.draw(|gx, gy, c| {
                    let px = min.x as i64 + i64::from(gx);
                    let py = min.y as i64 + i64::from(gy);
                    if (0..i64::from(width)).contains(&px) && (0..i64::from(height)).contains(&py) {
                        let cell = &mut coverage[(py as u32 * width + px as u32) as usize];
                        *cell = (*cell).max((c.clamp(0.0, 1.0) * 255.0).round() as u8);
                    }
                });
            }
            // Black through the coverage mask, rounded as Pillow's paste blends.
            for (pixel, &mask) in image.pixels_mut().zip(&coverage) {
                if mask > 0 {
                    let value = u32::from(pixel.0[0]) * (255 - u32::from(mask));
                    pixel.0[0] = ((value + 127) / 255) as u8;
                }
            }
            y += line_height;
        }
        image
    }

    /// [`Self::render`] encoded as PNG.
    pub fn render_png(&self, caption: &str) -> Result<Vec<u8>> {
        let mut bytes = Cursor::new(Vec::new());
        self.render(caption)
            .write_to(&mut bytes, ImageFormat::Png)
            .map_err(|e| EvalError::Render(format!("cannot encode a rendered caption: {e}")))?;
        Ok(bytes.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renderer() -> CaptionRenderer {
        CaptionRenderer::new().expect("bundled font")
    }

    /// Columns and rows that hold any ink (pixel < 255).
    fn ink_extent(image: &GrayImage) -> Option<(u32, u32, u32, u32)> {
        let mut extent: Option<(u32, u32, u32, u32)> = None;
        for (x, y, p) in image.enumerate_pixels() {
            if p.0[0] < 255 {
                extent = Some(match extent {
                    None => (x, y, x, y),
                    Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
                });
            }
        }
        extent
    }

    #[test]
    fn metrics_match_arial_at_size_40() {
        let r = renderer();
        // Arial (and Liberation Sans) advances at 40 px/em: space 11, "a" 22, "W" 38.
        assert_eq!(r.text_length(" "), 11.0);
        assert_eq!(r.text_length("a"), 22.0);
        assert_eq!(r.text_length("W"), 38.0);
        // Cap height ~29 px, descender ~8-9 px; baseline included for a bare space.
        let caps = r.line_height("HELLO ");
        assert!((28..=30).contains(&caps), "{caps}");
        let with_descender = r.line_height("Hgy ");
        assert!(with_descender > caps + 6, "{with_descender}");
        assert_eq!(r.line_height(" "), 0);
    }

    #[test]
    fn wraps_long_captions_inside_the_margins() {
        let r = renderer();
        let caption = "A black and white dog is running through the tall green grass of a \
                       garden next to a wooden fence while two children watch from the porch.";
        let lines = r.wrap(caption);
        assert!(lines.len() >= 3, "{lines:?}");
        for line in &lines {
            assert!(line.ends_with(' '));
            assert!(r.text_length(line.trim_end()) <= WRAP_WIDTH, "{line:?}");
        }
        // Greedy: the next line's first word would not have fitted.
        for pair in lines.windows(2) {
            let next_word = pair[1].split(' ').next().expect("word");
            assert!(r.text_length(&format!("{}{next_word}", pair[0])) > WRAP_WIDTH);
        }
        assert_eq!(lines.concat().trim_end(), caption);
        let image = r.render(caption);
        assert_eq!(image.dimensions(), (CAPTION_WIDTH, CAPTION_HEIGHT));
        let (x0, y0, x1, y1) = ink_extent(&image).expect("ink");
        // Starts at x = 20 (a glyph's side bearing may reach a pixel left of it) and stays
        // inside the 760 px text width.
        assert!((18..=22).contains(&x0) && x1 <= 781, "{x0}..{x1}");
        // The block is centred by the sum of the lines' ink heights (as the paper's code does);
        // the first line's ink starts below its ascender line, by the ascender minus the cap
        // height (~8 px).
        let total: i32 = lines.iter().map(|l| r.line_height(l)).sum();
        let start = (CAPTION_HEIGHT as i32 - total) / 2;
        assert!(
            (start..=start + 10).contains(&(y0 as i32)),
            "start {start} ink {y0}"
        );
        assert!(
            (y1 as i32) < start + total + 12,
            "end {} ink {y1}",
            start + total
        );
        // Pure black is reached inside glyph stems.
        assert!(image.pixels().any(|p| p.0[0] == 0));
    }

    #[test]
    fn rendering_is_deterministic() {
        let r = renderer();
        let caption = "Two young men outside.";
        let a = r.render_png(caption).expect("png");
        let b = renderer().render_png(caption).expect("png");
        assert_eq!(a, b);
        assert_ne!(a, r.render_png("Two young men inside.").expect("png"));
        let image = r.render(caption);
        let (_, y0, _, y1) = ink_extent(&image).expect("ink");
        // One line, near the middle.
        assert!(y0 > 170 && y1 < 230, "{y0}..{y1}");
        assert!(ink_extent(&r.render("   ")).is_none());
        assert!(r.id().starts_with("liberation-sans-"));
    }

    #[test]
    #[ignore = "writes /tmp/e5v-caption.png for a visual check"]
    fn write_sample() {
        let caption = "A black and white dog is running through the tall green grass of a \
                       garden next to a wooden fence while two children watch from the porch.";
        std::fs::write(
            "/tmp/e5v-caption.png",
            renderer().render_png(caption).expect("png"),
        )
        .expect("write");
    }

    #[test]
    fn overlong_word_gets_its_own_line() {
        let r = renderer();
        let word = "W".repeat(30);
        let lines = r.wrap(&format!("a {word} b"));
        assert_eq!(
            lines,
            vec!["a ".to_owned(), format!("{word} "), "b ".to_owned()]
        );
    }
}
