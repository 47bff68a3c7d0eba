//! Property tests of the embed example's input line parser, compiled in from the example.

use std::path::Path;

use e5v::{ImageSource, Input};
use proptest::prelude::*;
use serde_json::{Map, Value};

#[path = "../../examples/embed/jsonl.rs"]
mod parser;

use parser::parse_line;

/// A field's value: mostly strings (any Unicode), sometimes other JSON types or null.
fn field() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => "\\PC{0,12}".prop_map(Value::from),
        1 => Just(Value::Null),
        1 => any::<i32>().prop_map(Value::from),
        1 => Just(serde_json::json!(["a"])),
        1 => Just(serde_json::json!({"text": "nested"})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any line is an input or an error message, never a panic.
    #[test]
    fn any_line_parses_or_fails_cleanly(line in "\\PC{0,64}") {
        let _ = parse_line(&line, Path::new("."));
    }

    /// A JSON object is accepted exactly when its only keys are text, image and prompt, each
    /// a string or null, and one is a string; the strings arrive unchanged in the input.
    #[test]
    fn objects_are_accepted_exactly_when_valid(
        fields in prop::collection::btree_map(
            prop_oneof![Just("text"), Just("image"), Just("prompt"), Just("images"), Just("")],
            field(),
            0..4,
        ),
    ) {
        let object: Map<String, Value> =
            fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let line = Value::Object(object).to_string();
        let string = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_owned);
        let known = fields.keys().all(|k| ["text", "image", "prompt"].contains(k));
        let typed = fields.values().all(|v| v.is_string() || v.is_null());
        let some = fields.values().any(Value::is_string);
        let parsed = parse_line(&line, Path::new("base"));
        prop_assert_eq!(parsed.is_ok(), known && typed && some, "{}: {:?}", line, parsed);
        let Ok(input) = parsed else { return Ok(()) };
        let image = string("image").map(|p| ImageSource::Path(Path::new("base").join(p)));
        let expected = match (string("prompt"), image, string("text")) {
            (Some(prompt), image, text) => Input::Custom { prompt, image, text },
            (None, Some(image), Some(text)) => Input::Composed { image, text },
            (None, Some(image), None) => Input::Image(image),
            (None, None, Some(text)) => Input::Text(text),
            (None, None, None) => unreachable!("accepted without a string"),
        };
        prop_assert_eq!(input, expected);
    }
}
