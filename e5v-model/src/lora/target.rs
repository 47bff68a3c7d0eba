//! The decoder projections an adapter can target, named as in HF and PEFT.

use std::{fmt, str::FromStr};

use crate::{DecoderConfig, ModelError};

/// One of the seven linear projections of a decoder layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LoraTarget {
    /// `self_attn.q_proj`
    QProj,
    /// `self_attn.k_proj`
    KProj,
    /// `self_attn.v_proj`
    VProj,
    /// `self_attn.o_proj`
    OProj,
    /// `mlp.gate_proj`
    GateProj,
    /// `mlp.up_proj`
    UpProj,
    /// `mlp.down_proj`
    DownProj,
}

impl LoraTarget {
    /// All seven, in layer order (E5-V adapts all of them).
    pub const ALL: [Self; 7] = [
        Self::QProj,
        Self::KProj,
        Self::VProj,
        Self::OProj,
        Self::GateProj,
        Self::UpProj,
        Self::DownProj,
    ];

    /// The module's HF name (`q_proj`, ...), PEFT's `target_modules` entry.
    pub fn name(self) -> &'static str {
        match self {
            Self::QProj => "q_proj",
            Self::KProj => "k_proj",
            Self::VProj => "v_proj",
            Self::OProj => "o_proj",
            Self::GateProj => "gate_proj",
            Self::UpProj => "up_proj",
            Self::DownProj => "down_proj",
        }
    }

    /// The module's path inside a decoder layer (`self_attn.q_proj`, `mlp.up_proj`, ...).
    pub fn path(self) -> &'static str {
        match self {
            Self::QProj => "self_attn.q_proj",
            Self::KProj => "self_attn.k_proj",
            Self::VProj => "self_attn.v_proj",
            Self::OProj => "self_attn.o_proj",
            Self::GateProj => "mlp.gate_proj",
            Self::UpProj => "mlp.up_proj",
            Self::DownProj => "mlp.down_proj",
        }
    }

    /// `[in, out]` features of the projection in a decoder of this shape.
    pub fn shape(self, c: &DecoderConfig) -> [usize; 2] {
        let (q, kv) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
        match self {
            Self::QProj => [c.hidden_size, q],
            Self::KProj | Self::VProj => [c.hidden_size, kv],
            Self::OProj => [q, c.hidden_size],
            Self::GateProj | Self::UpProj => [c.hidden_size, c.intermediate_size],
            Self::DownProj => [c.intermediate_size, c.hidden_size],
        }
    }

    /// The target whose module path is `path` (`self_attn.q_proj`).
    pub(crate) fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.path() == path)
    }
}

impl fmt::Display for LoraTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LoraTarget {
    type Err = ModelError;

    /// `q_proj`, ..., `down_proj`.
    fn from_str(name: &str) -> Result<Self, ModelError> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| ModelError::Unsupported {
                field: "LoRA target",
                found: name.to_owned(),
                supported: "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj",
            })
    }
}
