//! Inputs shared by the benchmarks (and mirrored in `scripts/bench/vs_transformers.py`).

/// Eight everyday sentences of 13-17 words: a batch of N texts cycles through them.
pub const TEXTS: [&str; 8] = [
    "A dog runs along the beach, chasing a red ball that the waves keep carrying away.",
    "Two people are playing chess in a park while a small crowd watches every move.",
    "The stock market fell sharply today, and investors are worried about the economy.",
    "A woman is riding a horse across a wide green field under a cloudy sky.",
    "Scientists have discovered a new species of bright yellow frog in the rainforest.",
    "The city council voted to build a trial bicycle lane near the central station.",
    "Grandmother baked apple pies for the whole family every Sunday afternoon.",
    "A small boat is sailing on the calm blue sea under a bright yellow sun.",
];
