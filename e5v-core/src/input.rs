//! What can be embedded.

use std::path::PathBuf;

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageSource {
    /// A file to read and decode.
    Path(PathBuf),
    /// Encoded bytes (PNG, JPEG, WebP, GIF, BMP, TIFF).
    Bytes(Vec<u8>),
}

impl From<PathBuf> for ImageSource {
    fn from(path: PathBuf) -> Self {
        Self::Path(path)
    }
}

impl From<&std::path::Path> for ImageSource {
    fn from(path: &std::path::Path) -> Self {
        Self::Path(path.to_owned())
    }
}

impl From<&str> for ImageSource {
    /// A file path: `Input::image("cat.jpg")`.
    fn from(path: &str) -> Self {
        Self::Path(PathBuf::from(path))
    }
}

impl From<Vec<u8>> for ImageSource {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Bytes(bytes)
    }
}

impl From<&[u8]> for ImageSource {
    /// Encoded bytes, copied.
    fn from(bytes: &[u8]) -> Self {
        Self::Bytes(bytes.to_vec())
    }
}

/// One thing to embed. Text, image and composed inputs use the templates of the
/// [`EmbedderOptions`](crate::EmbedderOptions) inside the model's chat wrapper; a custom input
/// uses its own raw prompt verbatim, with no chat wrapper.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// A text.
    Text(String),
    /// An image.
    Image(ImageSource),
    /// An image and a text together (e.g. a CIRR query: the image, modified as the text says).
    Composed {
        /// The image.
        image: ImageSource,
        /// The text.
        text: String,
    },
    /// A complete raw prompt containing `<image>` iff `image` is given and `<sent>` iff `text`
    /// is given.
    Custom {
        /// The prompt, used verbatim (the tokenizer still adds BOS).
        prompt: String,
        /// The image for the `<image>` slot.
        image: Option<ImageSource>,
        /// The text for the `<sent>` slot.
        text: Option<String>,
    },
}

impl Input {
    /// A text input.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    /// An image input.
    pub fn image(image: impl Into<ImageSource>) -> Self {
        Self::Image(image.into())
    }

    /// An image + text input.
    pub fn composed(image: impl Into<ImageSource>, text: impl Into<String>) -> Self {
        Self::Composed {
            image: image.into(),
            text: text.into(),
        }
    }

    /// A raw prompt with optional image and text.
    pub fn custom(
        prompt: impl Into<String>,
        image: Option<ImageSource>,
        text: Option<String>,
    ) -> Self {
        Self::Custom {
            prompt: prompt.into(),
            image,
            text,
        }
    }

    pub(crate) fn image_source(&self) -> Option<&ImageSource> {
        match self {
            Self::Text(_) => None,
            Self::Image(image) | Self::Composed { image, .. } => Some(image),
            Self::Custom { image, .. } => image.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_come_from_paths_and_bytes() {
        assert_eq!(
            Input::image("cat.jpg"),
            Input::Image(ImageSource::Path("cat.jpg".into()))
        );
        let png: &[u8] = b"\x89PNG";
        assert_eq!(
            Input::image(png),
            Input::Image(ImageSource::Bytes(png.to_vec()))
        );
        assert_eq!(
            Input::composed(std::path::Path::new("a.png"), "red"),
            Input::composed(PathBuf::from("a.png"), String::from("red"))
        );
    }
}
