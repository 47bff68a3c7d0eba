//! The reference image pipelines e5v reproduces bit for bit.

/// Which reference image pipeline to reproduce, end to end: RGBA handling, the order of
/// Pillow's resize passes, the padding of the anyres canvas, the layout of the crop grid and
/// the unpadding of its features (see docs/IMAGE-PIPELINE.md). transformers changed several
/// of these in 4.44, and Pillow its pass order in 12.2; the E5-V paper's numbers were made with
/// the old stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ImagePipeline {
    /// transformers >= 4.44 (fixed grid/unpad/padding), paired with Pillow >= 13. Default.
    #[default]
    Transformers,
    /// transformers 4.41.2, which produced the E5-V paper's numbers, paired with Pillow <= 12:
    /// transposed non-square grids, truncating unpad, symmetric odd padding, alpha dropped.
    Transformers441,
}

impl ImagePipeline {
    /// Every pipeline, the default first.
    pub const ALL: [Self; 2] = [Self::Transformers, Self::Transformers441];
    const NAMES: &[&str] = &["transformers", "transformers-4.41"];

    /// `transformers` or `transformers-4.41`: the name command lines and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Transformers => "transformers",
            Self::Transformers441 => "transformers-4.41",
        }
    }
}

impl std::fmt::Display for ImagePipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ImagePipeline {
    type Err = crate::UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::UnknownName::parse("image pipeline", s, &Self::ALL, Self::name, Self::NAMES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_parse_from_their_names() {
        for pipeline in ImagePipeline::ALL {
            assert_eq!(pipeline.to_string().parse(), Ok(pipeline));
        }
        let err = "transformers-4.44"
            .parse::<ImagePipeline>()
            .expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown image pipeline \"transformers-4.44\" (expected transformers, transformers-4.41)"
        );
    }
}
