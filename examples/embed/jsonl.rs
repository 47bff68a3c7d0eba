//! The input line format of the embed example: one JSON object per line.

use std::path::Path;

use e5v::Input;
use serde_json::{Map, Value};

/// One input line: `{"text": ...}`, `{"image": PATH}`, `{"image": PATH, "text": ...}`, each
/// optionally with `"prompt": RAW`. Relative image paths resolve against `base`. The error
/// says what is wrong with the line (the caller adds its number).
pub fn parse_line(line: &str, base: &Path) -> Result<Input, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(mut fields) = value else {
        return Err("expected a JSON object".into());
    };
    let mut take = |key: &str| -> Result<Option<String>, String> {
        match fields.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("\"{key}\" must be a string, got {other}")),
        }
    };
    let (text, image, prompt) = (take("text")?, take("image")?, take("prompt")?);
    if let Some(key) = Map::keys(&fields).next() {
        return Err(format!(
            "unknown field \"{key}\" (expected text, image, prompt)"
        ));
    }
    let image = image.map(|p| base.join(p).into());
    Ok(match (prompt, image, text) {
        (Some(prompt), image, text) => Input::custom(prompt, image, text),
        (None, Some(image), Some(text)) => Input::composed(image, text),
        (None, Some(image), None) => Input::Image(image),
        (None, None, Some(text)) => Input::text(text),
        (None, None, None) => return Err("a line needs \"text\", \"image\" or \"prompt\"".into()),
    })
}
