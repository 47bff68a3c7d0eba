//! Building the decoder's input: token embeddings with each image's features spliced in at its
//! image token, right-padded into one batch with the valid mask and the RoPE positions.

use burn::tensor::{Bool, Int, Tensor, TensorData, backend::Backend};

use crate::Decoder;

/// A batch of merged sequences, ready for [`Decoder::forward`].
pub(crate) struct Merged<B: Backend> {
    /// `[batch, longest, hidden]`, zeros after each sequence's end.
    pub embeddings: Tensor<B, 3>,
    /// `[batch, longest]`, `true` for real tokens.
    pub valid: Tensor<B, 2, Bool>,
    /// `[batch, longest]`, `0..longest` on every row (padding comes last, so real tokens keep
    /// the positions they have alone).
    pub positions: Tensor<B, 2, Int>,
    /// Real length of each sequence.
    pub lengths: Vec<usize>,
}

/// The embeddings of one sequence: its token embeddings, with `image` (packed features) in
/// place of the single `image_token` when there is one.
///
/// # Shapes
/// - image: `[image_tokens, hidden]` -> `[ids.len() - 1 + image_tokens, hidden]`
///   (`[ids.len(), hidden]` without an image)
pub(crate) fn splice<B: Backend>(
    decoder: &Decoder<B>,
    ids: &[u32],
    image_token: u32,
    image: Option<Tensor<B, 2>>,
    device: &B::Device,
) -> Tensor<B, 2> {
    let embed = |ids: &[u32]| {
        let ids: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
        let n = ids.len();
        decoder.embed(Tensor::from_data(TensorData::new(ids, [n]), device))
    };
    let at = ids.iter().position(|&id| id == image_token);
    let (Some(at), Some(image)) = (at, image) else {
        return embed(ids);
    };
    let mut parts = Vec::with_capacity(3);
    if at > 0 {
        parts.push(embed(&ids[..at]));
    }
    parts.push(image);
    if at + 1 < ids.len() {
        parts.push(embed(&ids[at + 1..]));
    }
    Tensor::cat(parts, 0)
}

/// Right-pads sequences of embeddings to the longest. With causal attention and padding keys
/// masked out, each real token sees exactly what it would see alone.
///
/// # Shapes
/// - sequences: `[len_i, hidden]` each (at least one) -> `[batch, longest, hidden]`
pub(crate) fn pad<B: Backend>(sequences: Vec<Tensor<B, 2>>, device: &B::Device) -> Merged<B> {
    let lengths: Vec<usize> = sequences.iter().map(|s| s.dims()[0]).collect();
    let longest = lengths.iter().copied().max().unwrap_or(0);
    let rows = sequences.len();
    let padded: Vec<Tensor<B, 2>> = sequences
        .into_iter()
        .map(|sequence| {
            let [len, hidden] = sequence.dims();
            match longest - len {
                0 => sequence,
                pad => {
                    let zeros = Tensor::zeros([pad, hidden], (device, sequence.dtype()));
                    Tensor::cat(vec![sequence, zeros], 0)
                }
            }
        })
        .collect();
    let valid: Vec<bool> = lengths
        .iter()
        .flat_map(|&len| (0..longest).map(move |i| i < len))
        .collect();
    let valid = Tensor::from_bool(TensorData::new(valid, [rows, longest]), device);
    let positions = Tensor::<B, 1, Int>::arange(0..longest as i64, device)
        .reshape([1, longest])
        .expand([rows, longest]);
    Merged {
        embeddings: Tensor::stack(padded, 0),
        valid,
        positions,
        lengths,
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::NdArray;

    use super::*;

    type B = NdArray<f32>;

    #[test]
    fn pad_right_pads_with_zeros_and_masks_the_padding() {
        let device = Default::default();
        let a = Tensor::<B, 2>::from_floats([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], &device);
        let b = Tensor::<B, 2>::from_floats([[7.0, 8.0]], &device);
        let merged = pad(vec![a, b], &device);
        assert_eq!(merged.lengths, [3, 1]);
        let values: Vec<f32> = merged.embeddings.into_data().to_vec().expect("f32");
        assert_eq!(values, [1., 2., 3., 4., 5., 6., 7., 8., 0., 0., 0., 0.]);
        let valid: Vec<bool> = merged.valid.into_data().to_vec().expect("bool");
        assert_eq!(valid, [true, true, true, true, false, false]);
        let positions: Vec<i64> = merged
            .positions
            .into_data()
            .convert::<i64>()
            .to_vec()
            .expect("i64");
        assert_eq!(positions, [0, 1, 2, 0, 1, 2]);
    }
}
