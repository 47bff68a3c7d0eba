//! The wire format: OpenAI's `/v1/embeddings` request and response, with the two ways
//! multimodal embedding servers accept images (vLLM's chat-style `messages`, infinity's
//! `modality`) and E5-V's prompt presets.

use serde::{Deserialize, Serialize};

/// A `POST /v1/embeddings` body. Unknown fields are refused, so a misspelt option is an error
/// rather than silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingRequest {
    /// A string or an array of strings: texts, or with `modality: "image"` image data URIs.
    #[serde(default)]
    pub input: Option<InputField>,
    /// vLLM's chat-style input: one embedding of the user message's text and image parts.
    #[serde(default)]
    pub messages: Option<Vec<Message>>,
    /// infinity's modality of `input`: `text` (the default) or `image`.
    #[serde(default)]
    pub modality: Option<Modality>,
    /// The served model's name (checked when the server was started with one).
    #[serde(default)]
    pub model: Option<String>,
    /// `float` (default) or `base64` (little-endian f32, as OpenAI's clients decode it).
    #[serde(default)]
    pub encoding_format: Option<EncodingFormat>,
    /// Refused: E5-V's vectors cannot be shortened (it is not a Matryoshka model).
    #[serde(default)]
    pub dimensions: Option<u64>,
    /// An end-user id (OpenAI's field); accepted, not used.
    #[serde(default)]
    pub user: Option<String>,
    /// One of E5-V's prompt presets (`text`, `image`, `sts`, `cirr-query`, `cirr-gallery`,
    /// `fashioniq-query-dress`, ...): replaces the prompt of its modality for this request.
    #[serde(default)]
    pub preset: Option<String>,
}

/// `input`: one string or many (token-id arrays, which OpenAI also accepts, are refused by
/// the deserialiser's error).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum InputField {
    /// One input.
    One(String),
    /// Several inputs, one vector each.
    Many(Vec<String>),
}

impl InputField {
    /// The inputs as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// infinity's `modality`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    /// `input` holds texts.
    Text,
    /// `input` holds images as data URIs or bare base64.
    Image,
}

/// `encoding_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// A JSON array of numbers.
    #[default]
    Float,
    /// Base64 of the little-endian f32 bytes.
    Base64,
}

/// One chat message; only `user` messages are embedded.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// `user` (others are refused: an embedding has no assistant turn).
    pub role: String,
    /// A plain string, or text and image parts.
    pub content: Content,
}

/// A message's content.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Text only.
    Text(String),
    /// Parts: at most one image and any text (joined with spaces).
    Parts(Vec<Part>),
}

/// One part of a message's content.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Part {
    /// `{"type": "text", "text": ...}`
    Text {
        /// The text.
        text: String,
    },
    /// `{"type": "image_url", "image_url": {"url": ...}}`
    ImageUrl {
        /// The image's URL.
        image_url: ImageUrl,
    },
}

/// OpenAI's image URL object.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageUrl {
    /// A `data:` URI (or, when enabled, an `http(s)` URL).
    pub url: String,
    /// OpenAI's detail hint; accepted and ignored (E5-V's crops are fixed by the image size).
    #[serde(default)]
    pub detail: Option<String>,
}

/// The response body.
#[derive(Debug, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    /// Always `list`.
    pub object: String,
    /// One entry per input, in input order.
    pub data: Vec<EmbeddingData>,
    /// The served model's name.
    pub model: String,
    /// Token counts.
    pub usage: Usage,
}

/// One vector.
#[derive(Debug, Serialize, Deserialize)]
pub struct EmbeddingData {
    /// Always `embedding`.
    pub object: String,
    /// The input's position in the request.
    pub index: usize,
    /// The vector, as numbers or base64.
    pub embedding: EmbeddingValue,
}

/// A vector as `encoding_format` asked.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingValue {
    /// `float`.
    Float(Vec<f32>),
    /// `base64`.
    Base64(String),
}

/// Token counts: every token of the prompted sequences, image tokens included.
#[derive(Debug, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens read.
    pub prompt_tokens: usize,
    /// The same (embeddings produce no tokens).
    pub total_tokens: usize,
}
