//! The `embed` example run as its users run it, held to the contract the README and the
//! example's documentation state: every input kind, one output line per input in input order
//! holding the library's vector, and a bad line failing the run with its line number while
//! writing nothing (an existing output file is left as it was).

use std::{
    collections::BTreeSet,
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Output,
};

use e5v_core::{Embedder, EmbedderOptions, Flex, ImagePipeline, Input, Precision};
use serde_json::{Value, json};

use crate::{TempDir, fixtures, tiny_model};

/// The example binary cargo built next to this test binary: `cargo test -p e5v` builds the
/// package's examples, `cargo test --test e2e` on its own does not.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/examples/embed
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lies in target/<profile>/deps");
    let binary = profile
        .join("examples")
        .join(format!("embed{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "the embed example is not built at {}: run `cargo test -p e5v --features e5v-core/flex` \
         (it builds the examples), or `cargo build -p e5v --features e5v-core/flex --example \
         embed` before `--test e2e`",
        binary.display()
    );
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/embed.rs");
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    if let (Some(built), Some(edited)) = (modified(&binary), modified(&source)) {
        assert!(
            built >= edited,
            "{} is older than examples/embed.rs: rebuild it (`cargo test -p e5v` builds the \
             examples)",
            binary.display()
        );
    }
    binary
}

/// What one run of the example left: its exit code and stderr.
struct Run {
    code: Option<i32>,
    stderr: String,
}

/// Runs the example from the repository root (where the README's command runs), the Hub kept
/// offline with a private cache: a model folder must never reach the network or the cache.
fn run_example(args: &[&dyn AsRef<OsStr>]) -> Run {
    let cache = TempDir::new("hf-cache");
    let Output { status, stderr, .. } = std::process::Command::new(example_binary())
        .args(args.iter().map(|arg| arg.as_ref()))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", cache.path())
        .output()
        .expect("run the embed example");
    Run {
        code: status.code(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

impl Run {
    fn assert_success(&self, count: usize) {
        assert_eq!(self.code, Some(0), "the example failed:\n{}", self.stderr);
        assert!(
            self.stderr.contains(&format!("wrote {count} embeddings")),
            "stderr:\n{}",
            self.stderr
        );
    }

    /// A clean failure (exit code 1, no panic) whose message holds every one of `parts`.
    fn assert_error(&self, parts: &[&str]) {
        assert_eq!(
            self.code,
            Some(1),
            "expected a clean failure (exit code 1), stderr:\n{}",
            self.stderr
        );
        // The message may follow the progress line without a line break.
        let message = self
            .stderr
            .rfind("error: ")
            .and_then(|start| self.stderr[start..].lines().next())
            .unwrap_or_else(|| panic!("no `error: ` message on stderr:\n{}", self.stderr));
        for part in parts {
            assert!(message.contains(part), "{part:?} missing from {message:?}");
        }
        // The line number replaces the library's position of the input in its call.
        let call_index = message
            .match_indices("input ")
            .any(|(at, _)| message[at + 6..].starts_with(|c: char| c.is_ascii_digit()));
        assert!(
            !call_index,
            "an `input N` index next to the line number: {message:?}"
        );
    }
}

/// One output line.
#[derive(Debug)]
struct Row {
    embedding: Vec<f32>,
    seq_len: usize,
    image_tokens: Option<usize>,
}

/// The output file: JSONL, each line exactly `{"embedding", "seq_len", "image_tokens"}`.
fn read_output(path: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(path).expect("the output file");
    assert!(
        text.ends_with('\n'),
        "every output line ends with a newline"
    );
    let keys = BTreeSet::from(["embedding", "image_tokens", "seq_len"]);
    let count = |value: &Value| usize::try_from(value.as_u64()?).ok();
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let at = format!("output line {}: {line:.80}", i + 1);
            let value: Value = serde_json::from_str(line).expect(&at);
            let fields = value.as_object().expect(&at);
            assert_eq!(
                fields.keys().map(String::as_str).collect::<BTreeSet<_>>(),
                keys,
                "{at}"
            );
            let embedding = fields["embedding"].as_array().expect(&at);
            Row {
                embedding: embedding
                    .iter()
                    .map(|x| x.as_f64().expect(&at) as f32)
                    .collect(),
                seq_len: count(&fields["seq_len"]).expect(&at),
                image_tokens: match &fields["image_tokens"] {
                    Value::Null => None,
                    other => Some(count(other).expect(&at)),
                },
            }
        })
        .collect()
}

/// An input line as the README defines it: `text`, `image` (relative to the input file's
/// folder), both (composed), or any of these with a raw `prompt`.
fn contract_input(line: &Value, base: &Path) -> Input {
    let field = |key: &str| line.get(key).and_then(Value::as_str);
    let image = field("image").map(|path| base.join(path));
    let text = field("text").map(str::to_owned);
    match (field("prompt"), image, text) {
        (Some(prompt), image, text) => Input::custom(prompt, image.map(Into::into), text),
        (None, Some(image), Some(text)) => Input::composed(image, text),
        (None, Some(image), None) => Input::image(image),
        (None, None, Some(text)) => Input::text(text),
        (None, None, None) => panic!("not an input line: {line}"),
    }
}

/// The non-blank lines of an input file, as inputs.
fn contract_inputs(path: &Path) -> Vec<(Input, bool)> {
    let base = path.parent().expect("the input file's folder");
    std::fs::read_to_string(path)
        .expect("the input file")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let value: Value = serde_json::from_str(line).expect("a valid input line");
            (contract_input(&value, base), value.get("image").is_some())
        })
        .collect()
}

/// The options the example's flags stand for, with its defaults (batches of 8, f32, current
/// transformers' image behaviour, normalised).
fn example_options() -> EmbedderOptions {
    EmbedderOptions::new()
        .with_batch_size(8)
        .with_precision(Precision::F32)
        .with_image_pipeline(ImagePipeline::Transformers)
        .with_normalize(true)
}

/// The output holds, line for line, what the library computes for the same inputs and options.
fn assert_library_rows(rows: &[Row], inputs: &[(Input, bool)], options: EmbedderOptions) {
    let embedder = Embedder::<Flex>::new(tiny_model(), options, &Default::default())
        .expect("load the tiny checkpoint");
    let just_inputs: Vec<Input> = inputs.iter().map(|(input, _)| input.clone()).collect();
    let expected = embedder
        .embed(&just_inputs)
        .expect("the library embeds the inputs");
    assert_eq!(rows.len(), inputs.len(), "one output line per input");
    for (i, (row, (_, has_image))) in rows.iter().zip(inputs).enumerate() {
        let line = i + 1;
        let want = expected.get(i).expect("one vector per input");
        assert_eq!(
            row.embedding.len(),
            embedder.dim(),
            "output line {line}: width"
        );
        let diff = row
            .embedding
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            diff <= 1e-6,
            "output line {line}: off the library's vector by {diff}"
        );
        let info = expected.info(i).expect("one info per input");
        assert_eq!(row.seq_len, info.seq_len, "output line {line}: seq_len");
        assert_eq!(
            row.image_tokens, info.image_tokens,
            "output line {line}: image_tokens"
        );
        assert_eq!(
            row.image_tokens.is_some(),
            *has_image,
            "output line {line}: image_tokens"
        );
    }
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

/// The files of a folder and their contents.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("list the folder")
        .map(|entry| {
            let path = entry.expect("a folder entry").path();
            let bytes = std::fs::read(&path).unwrap_or_default();
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n")).expect("write the input file");
}

/// The README's main command, verbatim, on the sample inputs shipped with the example.
#[test]
fn readme_command_embeds_the_sample_inputs() {
    let dir = TempDir::new("readme-command");
    let output = dir.path().join("embeddings.jsonl");
    let run = run_example(&[
        &"--model",
        &"fixtures/tiny-e5v",
        &"--input",
        &"examples/data/inputs.jsonl",
        &"--output",
        &output,
    ]);
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/inputs.jsonl");
    let inputs = contract_inputs(&sample);
    run.assert_success(inputs.len());
    let rows = read_output(&output);
    for (i, row) in rows.iter().enumerate() {
        let n = norm(&row.embedding);
        assert!(
            (n - 1.0).abs() < 1e-4,
            "output line {}: norm {n}, not 1",
            i + 1
        );
    }
    assert_library_rows(&rows, &inputs, example_options());
    assert_eq!(
        snapshot(dir.path()).len(),
        1,
        "only the output file is written"
    );
}

/// Every input kind (text, image by relative and absolute path, composed, raw prompts with an
/// image, a text and both), blank lines, a last line without a newline, and the options: batches
/// of one, raw vectors, the transformers 4.41 image behaviour. An existing output file is
/// replaced.
#[test]
fn every_input_kind_in_input_order_with_the_options() {
    let dir = TempDir::new("kinds");
    let images = fixtures().join("images");
    std::fs::create_dir(dir.path().join("pics")).expect("create pics/");
    std::fs::copy(
        images.join("grad_336x336.png"),
        dir.path().join("pics/square.png"),
    )
    .expect("copy an image next to the input file");
    let wide = images.join("grad_640x480.png");
    let photo = images.join("photo_chelsea_451x300.png");
    let lines = [
        json!({"text": "A cat sleeping on a sofa"}).to_string(),
        json!({"image": "pics/square.png"}).to_string(),
        String::new(),
        json!({"image": wide, "text": "make the background blue"}).to_string(),
        json!({"prompt": "<image>\nWhat is this?", "image": "pics/square.png"}).to_string(),
        "   ".into(),
        json!({"prompt": "<sent>\nIn one word:", "text": "A rocket launching into the sky"})
            .to_string(),
        json!({"prompt": "<image>\n<sent>\nOne word:", "image": photo, "text": "a cat"})
            .to_string(),
        json!({"text": "the last line, without a newline"}).to_string(),
    ];
    let input = dir.path().join("inputs.jsonl");
    write_lines(&input, &lines);
    let output = dir.path().join("out.jsonl");
    std::fs::write(&output, "an older output\n").expect("write an existing output");
    let run = run_example(&[
        &"--model",
        &tiny_model(),
        &"--offline",
        &"--input",
        &input,
        &"--output",
        &output,
        &"--batch-size",
        &"1",
        &"--no-normalize",
        &"--image-pipeline",
        &"transformers-4.41",
    ]);
    let inputs = contract_inputs(&input);
    assert_eq!(inputs.len(), 7);
    run.assert_success(inputs.len());
    let rows = read_output(&output);
    assert!(
        rows.iter()
            .any(|row| (norm(&row.embedding) - 1.0).abs() > 1e-3),
        "--no-normalize keeps the raw vectors"
    );
    let options = example_options()
        .with_batch_size(1)
        .with_normalize(false)
        .with_image_pipeline(ImagePipeline::Transformers441);
    assert_library_rows(&rows, &inputs, options);
    let names: Vec<_> = snapshot(dir.path())
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    assert_eq!(
        names,
        [input, output, dir.path().join("pics")],
        "no leftover files"
    );
}

/// The run that fails: exit code 1, the message, an existing output untouched (or none
/// created), no other file.
fn assert_fails_writing_nothing(dir: &TempDir, lines: &[String], existing: bool, parts: &[&str]) {
    let input = dir.path().join("inputs.jsonl");
    write_lines(&input, lines);
    let output = dir.path().join("out.jsonl");
    match existing {
        true => std::fs::write(&output, "precious\n").expect("write an existing output"),
        false => {
            let _ = std::fs::remove_file(&output);
        }
    }
    let before = snapshot(dir.path());
    let run = run_example(&[
        &"--model",
        &tiny_model(),
        &"--offline",
        &"--input",
        &input,
        &"--output",
        &output,
    ]);
    run.assert_error(parts);
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a failed run writes nothing (lines {lines:?})"
    );
}

/// Lines that are not inputs fail the run before the model loads, with the file and line.
#[test]
fn bad_lines_fail_with_their_line_number_and_write_nothing() {
    let dir = TempDir::new("bad-lines");
    let input = dir.path().join("inputs.jsonl");
    let at_line_4 = format!("{}:4: ", input.display());
    let square = fixtures().join("images/grad_336x336.png");
    let cases = [
        (r#"{"text": "unterminated"#, "invalid JSON"),
        (r#"{"txt": "a typo"}"#, r#"unknown field "txt""#),
        (r#"{"audio": "a.wav"}"#, r#"unknown field "audio""#),
        (r#"{"text": 42}"#, r#""text" must be a string"#),
        (r#"["a", "list"]"#, "expected a JSON object"),
        ("{}", r#"needs "text", "image" or "prompt""#),
    ];
    for (i, (bad, message)) in cases.into_iter().enumerate() {
        let lines = [
            json!({"text": "fine"}).to_string(),
            String::new(),
            json!({"image": square}).to_string(),
            bad.to_owned(),
            json!({"text": "never read"}).to_string(),
        ];
        assert_fails_writing_nothing(&dir, &lines, i % 2 == 0, &[&at_line_4, message]);
    }
}

/// Inputs that parse but cannot be embedded fail the run with their line number (counting
/// blank lines, past the first chunk of the stream), after the model loaded: a missing image, a
/// file that is not an image, a raw prompt without the slot its text needs, a text too long for
/// the model.
#[test]
fn inputs_failing_to_embed_name_their_line_and_write_nothing() {
    let dir = TempDir::new("embed-errors");
    std::fs::write(dir.path().join("broken.png"), "not a png").expect("write a broken image");
    let text = |t: &str| json!({ "text": t }).to_string();
    // The example streams the inputs in chunks of 128 (`EmbedIter`'s default): the missing
    // image, on line 132 after a blank line, is the third input of the second chunk.
    let mut missing: Vec<String> = (1..=130).map(|i| text(&format!("text {i}"))).collect();
    missing.push(String::new());
    missing.push(json!({"image": "missing.png"}).to_string());
    missing.push(text("never embedded"));
    assert_fails_writing_nothing(&dir, &missing, true, &["error: line 132: ", "missing.png"]);
    let broken = [text("one"), json!({"image": "broken.png"}).to_string()];
    assert_fails_writing_nothing(&dir, &broken, false, &["error: line 2: ", "image"]);
    let prompt = [
        String::new(),
        String::new(),
        json!({"prompt": "no slot here", "text": "a text"}).to_string(),
    ];
    assert_fails_writing_nothing(&dir, &prompt, true, &["error: line 3: "]);
    // Longer than the model's 4096 positions (the default policy refuses to cut a text).
    let long = [text("one"), text(&"word ".repeat(5000))];
    assert_fails_writing_nothing(&dir, &long, false, &["error: line 2: ", "4096"]);
}
