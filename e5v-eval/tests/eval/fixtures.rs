//! Paths of the fixtures, and the generator of the miniature datasets' images.
//!
//! The images under `tests/data/` are tiny (40x30) synthetic pictures, a colour gradient with
//! a block whose colour and place derive from the file name, so that each differs. They are
//! committed; `cargo test -p e5v-eval --test eval -- --ignored write_fixture_images`
//! rewrites them.

use std::path::{Path, PathBuf};

use image::{ImageFormat, Rgb, RgbImage};

/// A path under `tests/data/`.
pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// The tiny random checkpoint with E5-V's structure.
pub fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tiny-e5v")
}

/// Every image the miniature datasets refer to, relative to `tests/data/`.
pub const FIXTURE_IMAGES: &[&str] = &[
    "karpathy/flickr30k-images/1007129816.jpg",
    "karpathy/flickr30k-images/1009434119.jpg",
    "karpathy/flickr30k-images/101362133.jpg",
    "karpathy/val2014/COCO_val2014_000000391895.jpg",
    "karpathy/val2014/COCO_val2014_000000522418.jpg",
    "cirr/img_raw/dev/dev-0-0-img0.png",
    "cirr/img_raw/dev/dev-0-0-img1.png",
    "cirr/img_raw/dev/dev-0-1-img0.png",
    "cirr/img_raw/dev/dev-1-0-img1.png",
    "cirr/img_raw/dev/dev-1-2-img0.png",
    "cirr/img_raw/dev/dev-2-0-img1.png",
    "cirr/img_raw/test1/test1-147-1-img1.png",
    "cirr/img_raw/test1/test1-1001-2-img0.png",
    "cirr/img_raw/test1/test1-83-1-img1.png",
    "cirr/img_raw/test1/test1-359-0-img1.png",
    "cirr/img_raw/test1/test1-906-0-img1.png",
    "cirr/img_raw/test1/test1-83-0-img1.png",
    "fashioniq/images/B008BHCT58.png",
    "fashioniq/images/B003FGW7MK.png",
    "fashioniq/images/B0084Y8VFW.png",
    "fashioniq/images/B00BNYCQSK.png",
    "fashioniq/images/B07ABSENT1.png",
    "fashioniq/images/B00006M009.png",
    "fashioniq/images/B00CZ7QJUG.png",
    "fashioniq/images/B001THROSC.png",
    "fashioniq/images/B0082993AO.png",
    "fashioniq/images/B008QYL5BG.png",
    "fashioniq/images/B004XF2W1G.png",
    "mini/images/red-square.png",
    "mini/images/green-bar.png",
    "mini/images/blue-corner.png",
];

/// FNV-1a of the name: the seed of its picture.
fn seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The picture of one fixture image.
pub fn fixture_image(name: &str) -> RgbImage {
    let s = seed(name);
    let byte = |shift: u32| ((s >> shift) & 0xff) as u8;
    let (w, h) = (40u32, 30u32);
    let block = Rgb([byte(0), byte(8), byte(16)]);
    let (bx, by) = (
        u32::from(byte(24)) % (w - 12),
        u32::from(byte(32)) % (h - 10),
    );
    RgbImage::from_fn(w, h, |x, y| {
        if (bx..bx + 12).contains(&x) && (by..by + 10).contains(&y) {
            block
        } else {
            Rgb([
                (x * 255 / w) as u8,
                (y * 255 / h) as u8,
                byte(40).wrapping_add((x + y) as u8),
            ])
        }
    })
}

#[test]
#[ignore = "rewrites the committed fixture images"]
fn write_fixture_images() {
    for rel in FIXTURE_IMAGES {
        let path = data(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let format = if rel.ends_with(".jpg") {
            ImageFormat::Jpeg
        } else {
            ImageFormat::Png
        };
        fixture_image(rel)
            .save_with_format(&path, format)
            .expect("write image");
    }
}

#[test]
fn fixture_images_exist() {
    for rel in FIXTURE_IMAGES {
        let image = image::open(data(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!((image.width(), image.height()), (40, 30), "{rel}");
    }
}
