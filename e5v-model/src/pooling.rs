//! Last-token pooling: E5-V's embedding is the final hidden state of a prompt's last token.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

/// The hidden state at the last real position of each right-padded row.
///
/// # Shapes
/// - states: `[batch, longest, hidden]`, lengths: `batch` values in `1..=longest`
/// - output: `[batch, hidden]`
pub(crate) fn last_token<B: Backend>(states: Tensor<B, 3>, lengths: &[usize]) -> Tensor<B, 2> {
    let [rows, longest, hidden] = states.dims();
    debug_assert_eq!(rows, lengths.len());
    let last: Vec<i64> = lengths
        .iter()
        .enumerate()
        .map(|(row, &len)| (row * longest + len.clamp(1, longest) - 1) as i64)
        .collect();
    let last = Tensor::<B, 1, Int>::from_data(TensorData::new(last, [rows]), &states.device());
    states.reshape([rows * longest, hidden]).select(0, last)
}

#[cfg(test)]
mod tests {
    use burn::backend::NdArray;

    use super::*;

    #[test]
    fn picks_each_rows_last_real_token() {
        let device = Default::default();
        // Two rows of three positions, hidden 2; row 0 has 3 real tokens, row 1 has 2.
        let states = Tensor::<NdArray<f32>, 3>::from_floats(
            [
                [[0.0, 0.1], [1.0, 1.1], [2.0, 2.1]],
                [[3.0, 3.1], [4.0, 4.1], [9.0, 9.9]],
            ],
            &device,
        );
        let pooled: Vec<f32> = last_token(states, &[3, 2])
            .into_data()
            .to_vec()
            .expect("f32");
        assert_eq!(pooled, [2.0, 2.1, 4.0, 4.1]);
    }
}
