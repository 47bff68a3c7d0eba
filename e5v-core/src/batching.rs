//! Grouping prepared inputs into batches by a budget of padded tokens and image crops.

use std::ops::Range;

/// What one batch may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchLimits {
    /// Inputs per batch.
    pub inputs: usize,
    /// Padded tokens per batch: inputs x the longest sequence.
    pub tokens: usize,
    /// Image crops per batch (all go through the vision tower together).
    pub crops: usize,
}

/// The size of one input, as the batcher sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InputSize {
    /// Sequence length (prompt tokens plus image features).
    pub tokens: usize,
    /// Image crops (0 for a text).
    pub crops: usize,
}

/// Consecutive batches over `sizes`, in order, each within `limits`. An input that exceeds
/// a limit on its own gets a batch of its own (the device check decides whether it can run).
///
/// With `sizes` sorted longest first, the first input of a batch is its longest, so the padded
/// size of a batch is its input count times its first length.
pub(crate) fn batches(sizes: &[InputSize], limits: BatchLimits) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < sizes.len() {
        let mut end = start + 1;
        let mut longest = sizes[start].tokens;
        let mut crops = sizes[start].crops;
        while let Some(next) = sizes.get(end) {
            let tokens = (end - start + 1) * longest.max(next.tokens);
            let count = end - start + 1;
            if count > limits.inputs || tokens > limits.tokens || crops + next.crops > limits.crops
            {
                break;
            }
            longest = longest.max(next.tokens);
            crops += next.crops;
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(list: &[(usize, usize)]) -> Vec<InputSize> {
        list.iter()
            .map(|&(tokens, crops)| InputSize { tokens, crops })
            .collect()
    }

    const ROOMY: BatchLimits = BatchLimits {
        inputs: 100,
        tokens: 1_000_000,
        crops: 1000,
    };

    #[test]
    fn the_input_count_caps_a_batch() {
        let limits = BatchLimits { inputs: 2, ..ROOMY };
        let got = batches(&sizes(&[(5, 0); 5]), limits);
        assert_eq!(got, [0..2, 2..4, 4..5]);
    }

    #[test]
    fn padded_tokens_cap_a_batch() {
        let limits = BatchLimits {
            tokens: 300,
            ..ROOMY
        };
        // 2 x 120 = 240 fits, 3 x 120 = 360 does not; then 3 x 90 = 270 fits.
        let got = batches(
            &sizes(&[(120, 0), (110, 0), (90, 0), (90, 0), (80, 0), (10, 0)]),
            limits,
        );
        assert_eq!(got, [0..2, 2..5, 5..6]);
    }

    #[test]
    fn crops_cap_a_batch_and_oversized_inputs_run_alone() {
        let limits = BatchLimits {
            tokens: 100,
            crops: 6,
            ..ROOMY
        };
        // 500 tokens alone; 5 + 2 crops > 6; then 3 x 30 = 90 tokens and 2 crops fit.
        let got = batches(
            &sizes(&[(500, 5), (30, 5), (30, 2), (20, 0), (20, 0)]),
            limits,
        );
        assert_eq!(got, [0..1, 1..2, 2..5]);
    }

    #[test]
    fn every_input_is_in_exactly_one_batch() {
        let list: Vec<(usize, usize)> = (0..50).map(|i| (200 - 3 * i, i % 3)).collect();
        for tokens in [1, 150, 600, 10_000] {
            let limits = BatchLimits {
                inputs: 7,
                tokens,
                crops: 4,
            };
            let got = batches(&sizes(&list), limits);
            let covered: Vec<usize> = got.iter().flat_map(Clone::clone).collect();
            assert_eq!(covered, (0..50).collect::<Vec<_>>());
            for batch in got.iter().filter(|b| b.len() > 1) {
                assert!(batch.len() <= 7);
                assert!(batch.len() * list[batch.start].0 <= tokens);
                assert!(list[batch.clone()].iter().map(|s| s.1).sum::<usize>() <= 4);
            }
        }
    }
}
