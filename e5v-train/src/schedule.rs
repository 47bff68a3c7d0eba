//! The learning-rate schedule: linear warmup from 0, then linear decay to 0 at the last step
//! (transformers' `get_linear_schedule_with_warmup`, which E5-V trained with).

/// `lr(step)` for optimizer steps `0..total`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearWarmup {
    /// The peak learning rate, reached at the end of the warmup.
    pub peak: f64,
    /// Steps of warmup.
    pub warmup: usize,
    /// Optimizer steps in the whole run.
    pub total: usize,
}

impl LinearWarmup {
    /// The learning rate of optimizer step `step` (0-based). As in transformers, the first
    /// step of a warmup has learning rate 0.
    pub fn lr(&self, step: usize) -> f64 {
        let factor = if step < self.warmup {
            step as f64 / self.warmup.max(1) as f64
        } else {
            let left = self.total.saturating_sub(step) as f64;
            (left / self.total.saturating_sub(self.warmup).max(1) as f64).max(0.0)
        };
        self.peak * factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_then_decays_to_zero() {
        let s = LinearWarmup {
            peak: 4e-4,
            warmup: 100,
            total: 716,
        };
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(50) - 2e-4).abs() < 1e-12);
        assert!((s.lr(100) - 4e-4).abs() < 1e-12);
        assert!((s.lr(408) - 2e-4).abs() < 1e-12);
        assert!(s.lr(715) > 0.0);
        assert_eq!(s.lr(716), 0.0);
        let none = LinearWarmup {
            peak: 1e-3,
            warmup: 0,
            total: 4,
        };
        assert_eq!(none.lr(0), 1e-3);
        assert_eq!(none.lr(2), 5e-4);
    }
}
