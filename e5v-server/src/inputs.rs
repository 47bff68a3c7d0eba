//! A request's inputs as the embedder's: texts, images from data URIs, composed queries from
//! chat messages, and the prompts a preset picks. Everything here is checked before the request
//! is queued, so a bad input costs no model time. Parsing blocks (it decodes base64 and may
//! fetch allowed image URLs): the server runs it off the async threads.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use e5v_core::{FashionCategory, Input, Preset, Prompts};

use crate::api::{Content, EmbeddingRequest, Modality, Part};
use crate::error::ApiError;
use crate::remote::RemoteImages;

/// What one request may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLimits {
    /// Inputs per request (OpenAI's limit is 2048).
    pub max_inputs: usize,
    /// Bytes of one decoded image file.
    pub max_image_bytes: usize,
    /// Characters of one text.
    pub max_text_chars: usize,
    /// Which image URLs are fetched (none by default).
    pub remote: RemoteImages,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_inputs: 2048,
            max_image_bytes: 20 << 20,
            max_text_chars: 64 * 1024,
            remote: RemoteImages {
                allowed_hosts: Vec::new(),
                timeout: std::time::Duration::from_secs(10),
            },
        }
    }
}

/// The presets a request may name, by their wire names.
pub const PRESETS: [(&str, Preset); 11] = [
    ("text", Preset::Text),
    ("image", Preset::Image),
    ("sts", Preset::Sts),
    ("cirr-query", Preset::CirrQuery),
    ("cirr-gallery", Preset::CirrGallery),
    (
        "fashioniq-query-dress",
        Preset::FashionIqQuery(FashionCategory::Dress),
    ),
    (
        "fashioniq-query-shirt",
        Preset::FashionIqQuery(FashionCategory::Shirt),
    ),
    (
        "fashioniq-query-toptee",
        Preset::FashionIqQuery(FashionCategory::Toptee),
    ),
    (
        "fashioniq-gallery-dress",
        Preset::FashionIqGallery(FashionCategory::Dress),
    ),
    (
        "fashioniq-gallery-shirt",
        Preset::FashionIqGallery(FashionCategory::Shirt),
    ),
    (
        "fashioniq-gallery-toptee",
        Preset::FashionIqGallery(FashionCategory::Toptee),
    ),
];

/// The inputs of a request and the prompts to embed them with.
#[derive(Debug)]
pub struct Parsed {
    /// One per output vector, in order.
    pub inputs: Vec<Input>,
    /// The server's prompts, with the request's preset if it named one.
    pub prompts: Prompts,
}

/// Turns a request into inputs.
///
/// # Errors
/// A 400 [`ApiError`] naming the field or input: no or both of `input` and `messages`,
/// `dimensions`, an unknown preset, too many inputs, an empty or oversized text, a malformed or
/// oversized image, an image URL that is not allowed or cannot be fetched.
pub fn parse(
    request: EmbeddingRequest,
    base: &Prompts,
    limits: &RequestLimits,
) -> Result<Parsed, ApiError> {
    if request.dimensions.is_some() {
        return Err(ApiError::invalid(
            "dimensions_unsupported",
            Some("dimensions".into()),
            "E5-V's embeddings cannot be shortened: it is not a Matryoshka model; leave \
             `dimensions` out",
        ));
    }
    let mut prompts = base.clone();
    if let Some(name) = &request.preset {
        let preset = PRESETS
            .iter()
            .find(|(known, _)| known == name)
            .map(|&(_, preset)| preset)
            .ok_or_else(|| {
                let known: Vec<_> = PRESETS.iter().map(|(n, _)| *n).collect();
                ApiError::invalid(
                    "unknown_preset",
                    Some("preset".into()),
                    format!("unknown preset {name:?}; known: {}", known.join(", ")),
                )
            })?;
        prompts = prompts.with(preset);
    }
    let inputs = match (request.input, request.messages) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "conflicting_inputs",
                Some("messages".into()),
                "give either `input` or `messages`, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "missing_input",
                Some("input".into()),
                "the request has no `input` (or `messages`)",
            ));
        }
        (Some(input), None) => {
            let modality = request.modality.unwrap_or(Modality::Text);
            let items = input.into_vec();
            check_count(items.len(), limits)?;
            items
                .into_iter()
                .enumerate()
                .map(|(index, item)| {
                    match modality {
                        Modality::Text => text(item, limits).map(Input::Text),
                        Modality::Image => image(&item, limits).map(Input::image),
                    }
                    .map_err(|e| e.at(format!("input[{index}]")))
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        (None, Some(messages)) => {
            if request.modality.is_some() {
                return Err(ApiError::invalid(
                    "conflicting_inputs",
                    Some("modality".into()),
                    "`modality` applies to `input`; `messages` say their modality by their parts",
                ));
            }
            vec![message_input(messages, limits)?]
        }
    };
    Ok(Parsed { inputs, prompts })
}

fn check_count(count: usize, limits: &RequestLimits) -> Result<(), ApiError> {
    if count == 0 {
        return Err(ApiError::invalid(
            "missing_input",
            Some("input".into()),
            "`input` is an empty list",
        ));
    }
    if count > limits.max_inputs {
        return Err(ApiError::invalid(
            "too_many_inputs",
            Some("input".into()),
            format!(
                "{count} inputs, over this server's limit of {} per request",
                limits.max_inputs
            ),
        ));
    }
    Ok(())
}

/// A problem with one part of the request, before it is placed (`input[3]`, ...).
struct PartError {
    code: &'static str,
    message: String,
}

impl PartError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn at(self, param: String) -> ApiError {
        ApiError::invalid(self.code, Some(param), self.message)
    }
}

fn text(text: String, limits: &RequestLimits) -> Result<String, PartError> {
    if text.is_empty() {
        return Err(PartError::new("empty_input", "the text is empty"));
    }
    let chars = text.chars().count();
    if chars > limits.max_text_chars {
        return Err(PartError::new(
            "input_too_long",
            format!(
                "{chars} characters, over this server's limit of {}",
                limits.max_text_chars
            ),
        ));
    }
    Ok(text)
}

/// The bytes of an image given as a `data:` URI (`data:image/png;base64,...`), as bare base64,
/// or as an `http(s)` URL on the allow-list of [`RequestLimits::remote`] (refused otherwise).
fn image(source: &str, limits: &RequestLimits) -> Result<Vec<u8>, PartError> {
    let payload = if let Some(rest) = source.strip_prefix("data:") {
        let (header, data) = rest.split_once(',').ok_or_else(|| {
            PartError::new(
                "invalid_image",
                "a data URI without a comma before its data",
            )
        })?;
        let mut fields = header.split(';');
        let media = fields.next().unwrap_or_default();
        if !(media.is_empty() || media.starts_with("image/")) {
            return Err(PartError::new(
                "invalid_image",
                format!("a data URI of type {media:?}, not an image"),
            ));
        }
        if !fields.any(|f| f == "base64") {
            return Err(PartError::new(
                "invalid_image",
                "a data URI without `;base64`: images must be base64-encoded",
            ));
        }
        data
    } else if source.starts_with("http://") || source.starts_with("https://") {
        return limits
            .remote
            .fetch(source, limits.max_image_bytes)
            .map_err(|e| PartError::new(e.code, e.message));
    } else {
        source
    };
    // Three bytes per four characters: refuse oversized images before decoding them.
    let estimate = payload.len() / 4 * 3;
    if estimate > limits.max_image_bytes + 3 {
        return Err(PartError::new(
            "image_too_large",
            format!(
                "about {estimate} bytes of image, over this server's limit of {}",
                limits.max_image_bytes
            ),
        ));
    }
    let bytes = STANDARD
        .decode(payload.trim())
        .map_err(|e| PartError::new("invalid_image", format!("invalid base64: {e}")))?;
    if bytes.is_empty() {
        return Err(PartError::new("invalid_image", "the image is empty"));
    }
    if bytes.len() > limits.max_image_bytes {
        return Err(PartError::new(
            "image_too_large",
            format!(
                "{} bytes of image, over this server's limit of {}",
                bytes.len(),
                limits.max_image_bytes
            ),
        ));
    }
    Ok(bytes)
}

/// vLLM's chat-style input: the user message's texts (joined by a space) and at most one
/// image make one text, image or composed input.
fn message_input(
    messages: Vec<crate::api::Message>,
    limits: &RequestLimits,
) -> Result<Input, ApiError> {
    let [message] = <[_; 1]>::try_from(messages).map_err(|messages: Vec<_>| {
        ApiError::invalid(
            "invalid_messages",
            Some("messages".into()),
            format!(
                "{} messages: give exactly one `user` message (one embedding)",
                messages.len()
            ),
        )
    })?;
    if message.role != "user" {
        return Err(ApiError::invalid(
            "invalid_messages",
            Some("messages[0].role".into()),
            format!("role {:?}: only a `user` message is embedded", message.role),
        ));
    }
    let parts = match message.content {
        Content::Text(text) => vec![Part::Text { text }],
        Content::Parts(parts) => parts,
    };
    let mut texts = Vec::new();
    let mut picture = None;
    for (index, part) in parts.into_iter().enumerate() {
        let at = || format!("messages[0].content[{index}]");
        match part {
            Part::Text { text } => texts.push(text),
            Part::ImageUrl { image_url } => {
                if picture.is_some() {
                    return Err(ApiError::invalid(
                        "invalid_messages",
                        Some(at()),
                        "a second image: E5-V embeds at most one image per input",
                    ));
                }
                picture = Some(image(&image_url.url, limits).map_err(|e| e.at(at()))?);
            }
        }
    }
    let joined = (!texts.is_empty()).then(|| texts.join(" "));
    let joined = joined
        .map(|t| text(t, limits).map_err(|e| e.at("messages[0].content".into())))
        .transpose()?;
    match (picture, joined) {
        (Some(image), Some(text)) => Ok(Input::composed(image, text)),
        (Some(image), None) => Ok(Input::image(image)),
        (None, Some(text)) => Ok(Input::Text(text)),
        (None, None) => Err(ApiError::invalid(
            "missing_input",
            Some("messages[0].content".into()),
            "the message has no text and no image",
        )),
    }
}
