//! Which rows each optimizer step trains on, and the seeds of its dropout: pure functions of
//! the run's seed and the step, so a resumed run continues exactly as an uninterrupted one.

/// The rows of step `step` (0-based): epoch `step / steps_per_epoch` is a seeded permutation
/// of all rows, cut into consecutive batches of `batch_size` (the last one may be smaller).
pub(crate) fn batch_rows(rows: usize, batch_size: usize, seed: u64, step: usize) -> Vec<usize> {
    let per_epoch = steps_per_epoch(rows, batch_size);
    let (epoch, batch) = (step / per_epoch, step % per_epoch);
    let order = permutation(rows, mix(seed, &[0x5eed_0da7a, epoch as u64]));
    order[batch * batch_size..((batch + 1) * batch_size).min(rows)].to_vec()
}

/// Optimizer steps per epoch (a partial last batch is a step).
pub(crate) fn steps_per_epoch(rows: usize, batch_size: usize) -> usize {
    rows.div_ceil(batch_size.max(1)).max(1)
}

/// The dropout seed of micro-batch `micro` of step `step`.
pub(crate) fn dropout_seed(seed: u64, step: usize, micro: usize) -> u64 {
    mix(seed, &[0xd0_0e, step as u64, micro as u64])
}

/// Fisher-Yates with SplitMix64: stable across platforms and crate versions.
fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed;
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (splitmix(&mut state) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

fn mix(seed: u64, parts: &[u64]) -> u64 {
    let mut state = seed;
    for part in parts {
        state ^= part.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        splitmix(&mut state);
    }
    splitmix(&mut state)
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_visits_every_row_once_in_a_new_order() {
        let (rows, batch) = (10, 4);
        assert_eq!(steps_per_epoch(rows, batch), 3);
        let epoch = |e: usize| -> Vec<usize> {
            (0..3)
                .flat_map(|b| batch_rows(rows, batch, 42, e * 3 + b))
                .collect()
        };
        let (first, second) = (epoch(0), epoch(1));
        let sorted = |mut v: Vec<usize>| {
            v.sort();
            v
        };
        assert_eq!(sorted(first.clone()), (0..10).collect::<Vec<_>>());
        assert_eq!(sorted(second.clone()), (0..10).collect::<Vec<_>>());
        assert_ne!(first, second);
        assert_eq!(batch_rows(rows, batch, 42, 2).len(), 2);
        assert_eq!(first, epoch(0));
        assert_ne!(
            batch_rows(rows, batch, 43, 0),
            batch_rows(rows, batch, 42, 0)
        );
        assert_ne!(dropout_seed(1, 0, 1), dropout_seed(1, 1, 0));
    }
}
