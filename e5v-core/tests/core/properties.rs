//! Property tests of every parser that sees user data in e5v-core: image bytes (decode, then
//! preprocess), image processor configs, and templates + text through the tokenizer and the
//! model. Fixed case counts keep them cheap; `scripts/fuzz.sh` runs coverage-guided fuzzers on
//! the same entry points for longer.

use e5v_core::{
    EmbedderOptions, Error, ImagePipeline, Input, Modality, Prompts, Template,
    image::{DecodeLimits, ImageError, ImageProcessorConfig, decode, dimensions, preprocess},
};
use proptest::prelude::*;

use crate::{alloc_peak::largest_allocation, fixtures::root};

type B = burn::backend::NdArray<f32>;

/// Limits small enough that a buffer sized by a forged header would exceed them.
const MAX_SIDE: u32 = 2048;
const MAX_ALLOC: u64 = 32 << 20;

fn limits() -> DecodeLimits {
    DecodeLimits::default()
        .with_max_width(MAX_SIDE)
        .with_max_height(MAX_SIDE)
        .with_max_alloc(MAX_ALLOC)
}

/// Valid files of every format and JPEG layout, to mutate.
const SEEDS: [&str; 11] = [
    "noise_61x47.png",
    "gray8_64x40.png",
    "photo_64x40.bmp",
    "photo_64x40.tiff",
    "photo_trns_64x40.gif",
    "rgba_64x40.webp",
    "photo_161x97_progressive.jpg",
    "photo_161x97_restart.jpg",
    "gray_97x61.jpg",
    "cmyk_97x61.jpg",
    "real/hopper.jpg",
];

fn seed(index: usize) -> Vec<u8> {
    let path = root().join("pillow/inputs").join(SEEDS[index]);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Debug, Clone)]
enum Edit {
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, Vec<u8>),
    Remove(prop::sample::Index, usize),
    Truncate(prop::sample::Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    let index = any::<prop::sample::Index>();
    prop_oneof![
        4 => (index.clone(), prop_oneof![any::<u8>(), Just(0xFF), Just(0), Just(0x7F)])
            .prop_map(|(i, b)| Edit::Set(i, b)),
        1 => (index.clone(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => (index.clone(), 1usize..64).prop_map(|(i, n)| Edit::Remove(i, n)),
        1 => index.prop_map(Edit::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    if bytes.is_empty() {
        return;
    }
    match edit {
        Edit::Set(i, b) => {
            let at = i.index(bytes.len());
            bytes[at] = *b;
        }
        Edit::Insert(i, new) => {
            let at = i.index(bytes.len());
            bytes.splice(at..at, new.iter().copied());
        }
        Edit::Remove(i, n) => {
            let at = i.index(bytes.len());
            bytes.drain(at..(at + n).min(bytes.len()));
        }
        Edit::Truncate(i) => bytes.truncate(i.index(bytes.len())),
    }
}

/// Decodes and, when that works, preprocesses for both pipelines; checks the allocation bound.
fn decode_and_preprocess(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (decoded, peak) = largest_allocation(|| decode(bytes, &limits()));
    prop_assert!(
        peak as u64 <= MAX_ALLOC,
        "an allocation of {peak} bytes, over the {MAX_ALLOC}-byte limit ({decoded:?})"
    );
    let header = dimensions(bytes);
    if let Ok(image) = decoded {
        prop_assert!(image.width() <= MAX_SIDE && image.height() <= MAX_SIDE);
        prop_assert_eq!(header.ok(), Some((image.width(), image.height())));
        let config = ImageProcessorConfig::default();
        for pipeline in [ImagePipeline::Transformers, ImagePipeline::Transformers441] {
            let _ = preprocess(&image, &config, pipeline);
        }
    }
    Ok(())
}

/// Any image side, with the edges drawn often: empty, the test's limit, JPEG's own maximum
/// (65500, which libjpeg refuses past) and what a 16-bit JPEG field wraps to.
fn side() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        prop::sample::select(vec![
            0,
            1,
            MAX_SIDE,
            MAX_SIDE + 1,
            65_500,
            65_501,
            65_535,
            65_536,
            u32::MAX,
        ]),
    ]
}

/// The PNG signature and an IHDR chunk with its CRC for the given size.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &b| {
        (0..8).fold(crc ^ u32::from(b), |c, _| {
            if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            }
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any edit of a valid file of any format: a typed error or an image within the limits,
    /// never a panic, never an allocation past the limit; the header's size is the decoded one.
    #[test]
    fn edited_images_decode_or_fail_cleanly(
        which in 0..SEEDS.len(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let mut bytes = seed(which);
        for edit in &edits {
            apply(&mut bytes, edit);
        }
        decode_and_preprocess(&bytes)?;
    }

    /// Forged sizes in a PNG header or a JPEG frame header: refused before any pixel buffer
    /// exists when over the limits.
    #[test]
    fn forged_sizes_are_refused_before_allocating(width in side(), height in side(), jpeg in any::<bool>()) {
        let bytes = if jpeg {
            let mut bytes = seed(10); // hopper.jpg, baseline
            let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).expect("SOF0");
            bytes[sof + 5..sof + 7].copy_from_slice(&(height as u16).to_be_bytes());
            bytes[sof + 7..sof + 9].copy_from_slice(&(width as u16).to_be_bytes());
            bytes
        } else {
            let mut bytes = png_header(width, height);
            bytes.extend_from_slice(&seed(0)[33..]); // the rest of a real PNG
            bytes
        };
        let (width, height) = if jpeg { (width & 0xFFFF, height & 0xFFFF) } else { (width, height) };
        let (decoded, peak) = largest_allocation(|| decode(&bytes, &limits()));
        prop_assert!(peak as u64 <= MAX_ALLOC, "allocation of {} bytes", peak);
        if width == 0 || height == 0 {
            prop_assert!(decoded.is_err());
        } else if width > MAX_SIDE || height > MAX_SIDE {
            prop_assert!(matches!(decoded, Err(ImageError::TooLarge(_))), "{:?}", decoded);
        }
    }

    /// Any processor config text: a typed error or a validated config, never a panic.
    #[test]
    fn processor_configs_parse_or_fail_cleanly(
        size in prop_oneof![Just(serde_json::json!(336)), any::<i64>().prop_map(serde_json::Value::from),
            prop_oneof![0u32..700, Just(70_000), Just(u32::MAX)].prop_map(serde_json::Value::from),
            Just(serde_json::json!({"shortest_edge": 0})), Just(serde_json::json!({"height": 1, "width": 0}))],
        crop in prop_oneof![Just(serde_json::json!(336)), any::<u32>().prop_map(serde_json::Value::from),
            prop_oneof![0u32..700, Just(70_000), Just(u32::MAX)].prop_map(serde_json::Value::from),
            Just(serde_json::json!({"height": 336, "width": 3}))],
        pinpoints in prop::collection::vec((0u32..2000, 0u32..2000), 0..4),
        // Valid more often than not, so that most cases reach preprocessing.
        resample in prop_oneof![3 => Just(3i8), 1 => any::<i8>()],
        mean in prop_oneof![
            3 => Just(vec![0.5; 3]),
            1 => prop::collection::vec(prop_oneof![Just(0.5), Just(f64::MAX), Just(-0.0)], 0..5),
        ],
        garbage in prop::option::weighted(0.25, "\\PC{0,32}"),
    ) {
        let json = garbage.unwrap_or_else(|| serde_json::json!({
            "size": size, "crop_size": crop, "image_grid_pinpoints": pinpoints,
            "resample": resample, "image_mean": mean,
        }).to_string());
        if let Ok(config) = ImageProcessorConfig::from_json_str(&json) {
            let image = ::image::DynamicImage::new_rgb8(37, 23);
            for pipeline in [ImagePipeline::Transformers, ImagePipeline::Transformers441] {
                let _ = preprocess(&image, &config, pipeline);
            }
        }
    }
}

/// User text, often holding placeholders, special tokens and odd Unicode.
fn user_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("<image>".to_string()),
        Just("<sent>".to_string()),
        Just("<|eot_id|>".to_string()),
        Just("<|begin_of_text|>".to_string()),
        Just("\u{0}\u{FEFF}\r\n".to_string()),
        "\\PC{0,16}",
    ];
    prop::collection::vec(piece, 0..5).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any text with any template, through the real tokenizer and the tiny model: vectors or a
    /// typed prompt error, never a panic; with the default prompts every text embeds.
    #[test]
    fn any_text_and_template_embed_or_fail_cleanly(
        texts in prop::collection::vec(user_text(), 1..4),
        template in user_text(),
    ) {
        let embedder = crate::fixtures::embedder::<B>("tiny-e5v", EmbedderOptions::default());
        let inputs: Vec<Input> = texts.iter().map(Input::text).collect();
        match embedder.embed(&inputs) {
            Ok(vectors) => prop_assert_eq!(vectors.len(), inputs.len()),
            Err(Error::Prompt { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error: {other}"),
        }
        if let Ok(template) = Template::new(format!("{template}<sent>"), Modality::Text) {
            let prompts = Prompts::default().with(template);
            match embedder.embed_with(&inputs, &prompts) {
                Ok(vectors) => prop_assert_eq!(vectors.len(), inputs.len()),
                Err(Error::Prompt { .. }) => {}
                Err(other) => prop_assert!(false, "unexpected error: {other}"),
            }
        }
    }
}

/// A case the edit property found: the TIFF seed cut to 2354 bytes with 14 bytes removed at 84
/// shifts a tag's count to 2.6 M, and the TIFF decoder reserved 80 MiB for it while reading the
/// header, before the limits applied.
#[test]
fn a_tiff_tag_count_past_the_file_reserves_nothing_large() {
    let mut bytes = seed(3);
    bytes.truncate(2354);
    bytes.drain(84..98);
    let (decoded, peak) = largest_allocation(|| decode(&bytes, &limits()));
    assert!(peak < 1 << 20, "an allocation of {peak} bytes");
    assert!(matches!(decoded, Err(ImageError::Decode(_))), "{decoded:?}");
    assert!(matches!(dimensions(&bytes), Err(ImageError::Decode(_))));
}
