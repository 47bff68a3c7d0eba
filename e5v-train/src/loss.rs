//! E5-V's contrastive objective: InfoNCE over cosine similarities with in-batch negatives and
//! the hard negatives as extra columns.

use burn::tensor::{Int, Tensor, activation::log_softmax, backend::Backend};

/// `mean_i -log softmax(logits_i)[i]` with `logits = [cos(a_i, p_j) | cos(a_i, n_j)] / t`: row
/// `i` scores anchor `i` against every positive (its own is the target) and every hard
/// negative of the batch.
///
/// # Shapes
/// - anchors, positives, negatives: `[n, hidden]` (raw, unnormalised embeddings)
/// - output: `[1]`
pub fn info_nce<B: Backend>(
    anchors: Tensor<B, 2>,
    positives: Tensor<B, 2>,
    negatives: Option<Tensor<B, 2>>,
    temperature: f64,
) -> Tensor<B, 1> {
    let [n, _] = anchors.dims();
    let anchors = unit(anchors);
    let mut columns = unit(positives);
    if let Some(negatives) = negatives {
        columns = Tensor::cat(vec![columns, unit(negatives)], 0);
    }
    let logits = anchors.matmul(columns.transpose()) / temperature;
    let targets = Tensor::<B, 1, Int>::arange(0..n as i64, &logits.device()).reshape([n, 1]);
    let picked = log_softmax(logits, 1).gather(1, targets);
    picked.mean().neg()
}

/// Rows scaled to unit length (a zero row stays zero, as PyTorch's cosine clamps the norm).
fn unit<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-8);
    x / norm
}

#[cfg(test)]
mod tests {
    use burn::{backend::NdArray, tensor::TensorData};

    use super::*;

    type B = NdArray<f64>;

    fn tensor(rows: &[[f64; 3]]) -> Tensor<B, 2> {
        let flat: Vec<f64> = rows.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), 3]), &Default::default())
    }

    /// The definition, written out with scalars.
    fn by_hand(a: &[[f64; 3]], p: &[[f64; 3]], n: &[[f64; 3]], t: f64) -> f64 {
        let cos = |x: &[f64; 3], y: &[f64; 3]| {
            let dot: f64 = x.iter().zip(y).map(|(a, b)| a * b).sum();
            let norm = |v: &[f64; 3]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
            dot / (norm(x) * norm(y))
        };
        let rows = a.len();
        (0..rows)
            .map(|i| {
                let logits: Vec<f64> = p.iter().chain(n).map(|c| cos(&a[i], c) / t).collect();
                let log_sum = logits.iter().map(|l| l.exp()).sum::<f64>().ln();
                log_sum - logits[i]
            })
            .sum::<f64>()
            / rows as f64
    }

    #[test]
    fn matches_the_definition() {
        let a = [[1.0, 0.2, -0.3], [0.1, 2.0, 0.5], [-0.4, 0.3, 1.5]];
        let p = [[0.9, 0.1, -0.2], [0.3, 1.0, 0.0], [0.2, -0.1, 2.0]];
        let n = [[-1.0, 0.5, 0.3], [0.4, -2.0, 0.1], [1.0, 1.0, 1.0]];
        for t in [0.05, 1.0] {
            let got = info_nce(tensor(&a), tensor(&p), Some(tensor(&n)), t).into_scalar();
            assert!((got - by_hand(&a, &p, &n, t)).abs() < 1e-9, "t = {t}");
        }
        let got = info_nce(tensor(&a), tensor(&p), None, 0.05).into_scalar();
        assert!((got - by_hand(&a, &p, &[], 0.05)).abs() < 1e-9);
    }
}
