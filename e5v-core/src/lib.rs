//! E5-V embeddings: the Embedder API (in progress).
