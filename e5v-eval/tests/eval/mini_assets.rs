//! The bundled assets: the mini set is complete, small, and every file has its source and
//! licence recorded; the font ships with its licence.

use std::path::Path;

use e5v_eval::datasets::{MINI_IMAGES_DIR, bundled_mini_dir, load_mini};

fn folder_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("readable")
        .map(|e| {
            let e = e.expect("entry");
            let meta = e.metadata().expect("metadata");
            if meta.is_dir() {
                folder_size(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

#[test]
fn bundled_mini_set() {
    let dir = bundled_mini_dir();
    let data = load_mini(&dir).expect("captions.json loads");
    assert!(
        (20..=30).contains(&data.images.len()),
        "{}",
        data.images.len()
    );
    let images = dir.join(MINI_IMAGES_DIR);
    let listed: Vec<_> = data.images.iter().map(|im| im.path.clone()).collect();
    let mut on_disk: Vec<std::path::PathBuf> = std::fs::read_dir(&images)
        .expect("images/")
        .map(|e| e.expect("entry").file_name().into())
        .collect();
    on_disk.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, on_disk, "captions.json and images/ disagree");
    for path in &listed {
        let (w, h) = image::image_dimensions(images.join(path)).expect("decodable");
        assert!(w.max(h) <= 512, "{}: {w}x{h}", path.display());
    }
    for caption in &data.captions {
        assert!(caption.len() > 10 && !caption.contains('\n'), "{caption}");
    }
    assert!(folder_size(&dir) < 4 << 20, "mini set over 4 MB");
    // Every entry names its source and licence; LICENCES.md covers every file.
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("captions.json")).expect("read"))
            .expect("json");
    let licences = std::fs::read_to_string(dir.join("LICENCES.md")).expect("LICENCES.md");
    for entry in raw.as_array().expect("list") {
        let licence = entry["licence"].as_str().expect("licence");
        assert!(
            licence.starts_with("CC0") || licence.starts_with("public domain"),
            "{entry}"
        );
        assert!(!entry["source"].as_str().expect("source").is_empty());
        let file = entry["image"].as_str().expect("image");
        assert!(
            licences.contains(file),
            "LICENCES.md does not mention {file}"
        );
    }
}

#[test]
fn bundled_font_and_licence() {
    let fonts = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/fonts");
    let licence = std::fs::read_to_string(fonts.join("LICENSE-OFL.txt")).expect("licence");
    assert!(licence.contains("SIL OPEN FONT LICENSE Version 1.1"));
    let font = std::fs::read(fonts.join("LiberationSans-Regular.ttf")).expect("font");
    assert_eq!(font, e5v_eval::render::FONT);
}
