//! Pearson and Spearman correlation (as `scipy.stats.pearsonr` / `spearmanr`), in [-1, 1].

use crate::error::{EvalError, Result};

/// Checks two samples have the same length >= 2.
fn check(x: &[f64], y: &[f64]) -> Result<()> {
    if x.len() != y.len() {
        return Err(EvalError::InvalidArgument(format!(
            "correlation of samples of different lengths ({} and {})",
            x.len(),
            y.len()
        )));
    }
    if x.len() < 2 {
        return Err(EvalError::InvalidArgument(
            "correlation needs at least 2 pairs".into(),
        ));
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(EvalError::InvalidArgument(
            "correlation of non-finite values".into(),
        ));
    }
    Ok(())
}

/// Pearson's r. Fails on mismatched lengths, fewer than 2 pairs, non-finite values, or a constant
/// sample (where r is undefined; scipy returns NaN).
pub fn pearson(x: &[f64], y: &[f64]) -> Result<f64> {
    check(x, y)?;
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return Err(EvalError::InvalidArgument(
            "correlation of a constant sample".into(),
        ));
    }
    // Clamp rounding overshoot, as scipy does.
    Ok((sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0))
}

/// Spearman's rho: Pearson's r of the ranks, tied values getting the average of their ranks.
/// Fails as [`pearson`] does.
pub fn spearman(x: &[f64], y: &[f64]) -> Result<f64> {
    check(x, y)?;
    pearson(&average_ranks(x), &average_ranks(y))
}

/// 1-based ranks, ties sharing the mean of the ranks they span (`scipy.stats.rankdata`,
/// method "average"). Values must be finite.
fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|a, b| v[*a].total_cmp(&v[*b]));
    let mut ranks = vec![0.0; v.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && v[order[end]] == v[order[start]] {
            end += 1;
        }
        // Positions start..end hold equal values: ranks start+1 ..= end, mean (start+1+end)/2.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    #[test]
    fn pearson_hand_computed() {
        // x = 1..5, y = [2, 4, 5, 4, 5]: mx 3, my 4, sxy 6, sxx 10, syy 6 -> 6 / sqrt(60).
        close(
            pearson(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 4.0, 5.0, 4.0, 5.0]).expect("r"),
            6.0 / 60f64.sqrt(),
        );
        close(
            pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).expect("r"),
            -1.0,
        );
        assert!(pearson(&[1.0, 1.0], &[1.0, 2.0]).is_err());
        assert!(pearson(&[1.0], &[1.0]).is_err());
        assert!(pearson(&[1.0, 2.0], &[1.0]).is_err());
        assert!(pearson(&[1.0, f64::NAN], &[1.0, 2.0]).is_err());
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(
            average_ranks(&[10.0, 20.0, 10.0, 30.0, 10.0]),
            vec![2.0, 4.0, 2.0, 5.0, 2.0]
        );
        assert_eq!(
            average_ranks(&[3.0, 1.0, 2.0, 2.0]),
            vec![4.0, 1.0, 2.5, 2.5]
        );
    }

    #[test]
    fn spearman_hand_computed() {
        // Monotone but non-linear: rho = 1.
        close(
            spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 8.0, 27.0, 64.0]).expect("rho"),
            1.0,
        );
        // x ranks [1, 2, 3, 4], y = [1, 3, 2, 4]: d^2 sum = 2 -> 1 - 6*2/(4*15) = 0.8.
        close(
            spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]).expect("rho"),
            0.8,
        );
        // With ties: y ranks [1.5, 1.5, 3, 4] vs x ranks [1, 2, 3, 4]:
        // my = 2.5, dy = [-1, -1, .5, 1.5], dx = [-1.5, -.5, .5, 1.5];
        // sxy = 1.5 + .5 + .25 + 2.25 = 4.5, sxx = 5, syy = 1 + 1 + .25 + 2.25 = 4.5.
        close(
            spearman(&[1.0, 2.0, 3.0, 4.0], &[5.0, 5.0, 6.0, 7.0]).expect("rho"),
            4.5 / (5f64 * 4.5).sqrt(),
        );
    }
}
