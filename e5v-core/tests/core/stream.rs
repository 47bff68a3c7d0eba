//! `embed_iter` and per-call prompts give the vectors `embed` gives.

use std::cell::RefCell;

use e5v_core::{EmbedderOptions, Embeddings, Error, Input, Preset, Prompts};

use crate::fixtures::{embedder, root};

type B = burn::backend::NdArray<f32>;

fn inputs() -> Vec<Input> {
    let image = |name: &str| Input::image(root().join("images").join(name));
    vec![
        Input::text("a dog on a beach"),
        image("grad_336x336.png"),
        Input::text("the longest text of this little stream, by a few words"),
        Input::composed(root().join("images/grad_499x300.png"), "make it red"),
        Input::text(""),
    ]
}

fn max_diff(a: &Embeddings, b: &Embeddings) -> f32 {
    assert_eq!((a.len(), a.dim()), (b.len(), b.dim()));
    a.as_matrix()
        .iter()
        .zip(b.as_matrix())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn a_stream_gives_the_vectors_of_one_call_in_chunks_with_progress() {
    let e = embedder::<B>("tiny-e5v", EmbedderOptions::default().with_batch_size(2));
    let whole = e.embed(&inputs()).expect("embeds");
    let reports = RefCell::new(Vec::new());
    let chunks: Vec<Embeddings> = e
        .embed_iter(inputs())
        .with_chunk_size(2)
        .with_progress(|p| reports.borrow_mut().push(*p))
        .collect::<Result<_, _>>()
        .expect("embeds");
    assert_eq!(
        chunks.iter().map(Embeddings::len).collect::<Vec<_>>(),
        [2, 2, 1]
    );
    let mut streamed = chunks[0].clone();
    for chunk in &chunks[1..] {
        streamed.append(chunk.clone()).expect("same width");
    }
    // Other batches, same vectors (batch invariance, f32 reassociation only).
    assert!(max_diff(&whole, &streamed) < 1e-5);
    for i in 0..whole.len() {
        assert_eq!(whole.info(i), streamed.info(i), "input {i}");
    }
    let reports = reports.into_inner();
    let last = reports.last().expect("progress reported");
    assert_eq!((last.done, last.total), (5, Some(5)));
    let tokens: usize = (0..whole.len())
        .filter_map(|i| whole.info(i))
        .map(|info| info.seq_len)
        .sum();
    assert_eq!(last.tokens, tokens);
    assert!(reports.windows(2).all(|w| w[0].done < w[1].done));
    let all = e.embed_iter(inputs()).into_embeddings().expect("embeds");
    assert!(max_diff(&whole, &all) < 1e-5);
}

#[test]
fn a_stream_error_names_the_input_in_the_whole_stream_and_ends_it() {
    let e = embedder::<B>("tiny-e5v", EmbedderOptions::default());
    let mut bad = inputs();
    bad[3] = Input::image(root().join("images/missing.png"));
    let mut stream = e.embed_iter(bad).with_chunk_size(2);
    assert!(stream.next().expect("first chunk").is_ok());
    let err = stream
        .next()
        .expect("second chunk")
        .expect_err("missing file");
    assert_eq!(err.input_index(), Some(3), "{err}");
    assert!(matches!(err, Error::ReadInput { .. }), "{err:?}");
    assert!(stream.next().is_none(), "an error ends the stream");
    let err = e
        .embed_iter(inputs())
        .with_chunk_size(0)
        .next()
        .expect("an item")
        .expect_err("chunk size 0");
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
}

#[test]
fn per_call_prompts_equal_an_embedder_built_with_them() {
    let sts = Prompts::new().with(Preset::Sts);
    let texts = [
        Input::text("A man plays a guitar."),
        Input::text("A cat sleeps."),
    ];
    let e = embedder::<B>("tiny-e5v", EmbedderOptions::default());
    let per_call = e.embed_with(&texts, &sts).expect("embeds");
    let built = embedder::<B>(
        "tiny-e5v",
        EmbedderOptions::default().with_template(Preset::Sts),
    )
    .embed(&texts)
    .expect("embeds");
    assert_eq!(per_call, built);
    let default = e.embed(&texts).expect("embeds");
    assert!(
        max_diff(&default, &per_call) > 1e-3,
        "the prompt changes the vectors"
    );
    let streamed = e
        .embed_iter(texts.to_vec())
        .with_prompts(sts)
        .into_embeddings()
        .expect("embeds");
    assert_eq!(streamed, per_call);
}
