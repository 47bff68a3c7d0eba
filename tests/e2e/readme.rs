//! The README's Rust snippet ("In Rust"), run on the tiny checkpoint instead of compiled only:
//! embed a gallery of images and a text query, rank the gallery with `top_k`.

use e5v_core::{EmbedderOptions, FlexEmbedder, Input};

use crate::{fixtures, tiny_model};

#[test]
fn readme_snippet_ranks_images_for_a_text_query() -> Result<(), e5v_core::Error> {
    let cat = fixtures().join("images/photo_chelsea_451x300.png");
    let other = fixtures().join("images/grad_640x480.png");
    // The snippet's code, with a local folder for the Hub repo id (`Embedder::new`: no network).
    let embedder = FlexEmbedder::new(
        tiny_model(),
        EmbedderOptions::default(),
        &Default::default(),
    )?;
    let gallery = embedder.embed(&[Input::image(cat.as_path()), Input::image(other.as_path())])?;
    let query = embedder.embed_texts(&["a cat on a sofa"])?;
    let best = gallery.top_k(query.get(0).expect("one query"), 1)?;

    // The default options normalise: the scores are cosine similarities.
    assert_eq!((gallery.len(), query.len()), (2, 1));
    for row in gallery.rows().chain(query.rows()) {
        assert_eq!(row.len(), embedder.dim());
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    let scores = query.similarity(&gallery)?;
    assert_eq!(scores.len(), 2);
    assert!(
        scores
            .iter()
            .all(|s| (-1.0 - 1e-5..=1.0 + 1e-5).contains(s)),
        "{scores:?}"
    );
    // top_k: the best match of the similarity row, then every row in decreasing order (k past
    // the gallery's size gives the whole gallery).
    let argmax = if scores[1] > scores[0] { 1 } else { 0 };
    assert_eq!(best, [(argmax, scores[argmax])]);
    let all = gallery.top_k(query.get(0).expect("one query"), 10)?;
    assert_eq!(
        all,
        [(argmax, scores[argmax]), (1 - argmax, scores[1 - argmax])]
    );
    // An image is its own best match, at cosine 1.
    let own = gallery.top_k(gallery.get(1).expect("two images"), 1)?;
    assert_eq!(own[0].0, 1);
    assert!((own[0].1 - 1.0).abs() < 1e-4, "{own:?}");
    // `embed_images` is the same call.
    assert_eq!(
        embedder.embed_images(&[cat.as_path(), other.as_path()])?,
        gallery
    );
    Ok(())
}

/// `from_pretrained`, the snippet's constructor: a folder that exists is used as it is (no Hub
/// request, no cache).
#[cfg(feature = "hub")]
#[test]
fn from_pretrained_takes_a_local_folder() -> Result<(), e5v_core::Error> {
    let folder = tiny_model();
    let folder = folder.to_str().expect("a UTF-8 fixture path");
    let embedder =
        FlexEmbedder::from_pretrained(folder, EmbedderOptions::default(), &Default::default())?;
    let texts = ["a cat on a sofa"];
    let local = FlexEmbedder::new(
        tiny_model(),
        EmbedderOptions::default(),
        &Default::default(),
    )?;
    assert_eq!(embedder.embed_texts(&texts)?, local.embed_texts(&texts)?);
    Ok(())
}
