//! Counters and histograms, written in Prometheus' text format at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Upper bounds of the request latency histogram, in seconds.
const LATENCY_BOUNDS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds of the batch size histogram, in inputs.
const BATCH_BOUNDS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// A cumulative histogram with fixed bounds.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// The sum of observations, in millionths.
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: f64) {
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            if value <= *bound {
                count.fetch_add(1, Relaxed);
            }
        }
        self.sum_micros.fetch_add((value * 1e6) as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Relaxed)
            );
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// The server's metrics. Cheap to update from any thread.
#[derive(Debug)]
pub struct Metrics {
    requests_ok: AtomicU64,
    requests_client_error: AtomicU64,
    requests_rejected: AtomicU64,
    requests_server_error: AtomicU64,
    inputs: AtomicU64,
    tokens: AtomicU64,
    busy_micros: AtomicU64,
    latency: Histogram,
    batch_inputs: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests_ok: AtomicU64::new(0),
            requests_client_error: AtomicU64::new(0),
            requests_rejected: AtomicU64::new(0),
            requests_server_error: AtomicU64::new(0),
            inputs: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            busy_micros: AtomicU64::new(0),
            latency: Histogram::new(&LATENCY_BOUNDS),
            batch_inputs: Histogram::new(&BATCH_BOUNDS),
        }
    }
}

/// How a request ended, for the request counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 200.
    Ok,
    /// 429: the queue was full.
    Rejected,
    /// Another 4xx.
    ClientError,
    /// 5xx.
    ServerError,
}

impl Metrics {
    /// A request ended after `seconds`.
    pub fn request(&self, outcome: Outcome, seconds: f64) {
        let counter = match outcome {
            Outcome::Ok => &self.requests_ok,
            Outcome::Rejected => &self.requests_rejected,
            Outcome::ClientError => &self.requests_client_error,
            Outcome::ServerError => &self.requests_server_error,
        };
        counter.fetch_add(1, Relaxed);
        if outcome == Outcome::Ok {
            self.latency.observe(seconds);
        }
    }

    /// One model call embedded `inputs` inputs of `tokens` tokens in `seconds`.
    pub fn batch(&self, inputs: usize, tokens: usize, seconds: f64) {
        self.batch_inputs.observe(inputs as f64);
        self.inputs.fetch_add(inputs as u64, Relaxed);
        self.tokens.fetch_add(tokens as u64, Relaxed);
        self.busy_micros.fetch_add((seconds * 1e6) as u64, Relaxed);
    }

    /// The Prometheus text, with the queue's current depth.
    pub fn render(&self, queue_depth: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP e5v_requests_total Embedding requests by outcome.\n\
             # TYPE e5v_requests_total counter"
        );
        for (outcome, counter) in [
            ("ok", &self.requests_ok),
            ("client_error", &self.requests_client_error),
            ("rejected", &self.requests_rejected),
            ("server_error", &self.requests_server_error),
        ] {
            let _ = writeln!(
                out,
                "e5v_requests_total{{outcome=\"{outcome}\"}} {}",
                counter.load(Relaxed)
            );
        }
        let busy = self.busy_micros.load(Relaxed) as f64 / 1e6;
        let tokens = self.tokens.load(Relaxed);
        for (name, kind, help, value) in [
            (
                "e5v_queue_depth",
                "gauge",
                "Requests waiting for the model.",
                queue_depth as f64,
            ),
            (
                "e5v_inputs_total",
                "counter",
                "Inputs embedded.",
                self.inputs.load(Relaxed) as f64,
            ),
            (
                "e5v_tokens_total",
                "counter",
                "Tokens embedded (prompts and image tokens).",
                tokens as f64,
            ),
            (
                "e5v_model_busy_seconds_total",
                "counter",
                "Seconds spent in model calls.",
                busy,
            ),
            (
                "e5v_tokens_per_second",
                "gauge",
                "Tokens per second of model time, since start.",
                if busy > 0.0 {
                    tokens as f64 / busy
                } else {
                    0.0
                },
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        self.latency.write(
            &mut out,
            "e5v_request_seconds",
            "Latency of successful requests, from arrival to response.",
        );
        self.batch_inputs.write(
            &mut out,
            "e5v_batch_inputs",
            "Inputs per model call (requests batched together).",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_the_text_parses_as_prometheus_lines() {
        let metrics = Metrics::default();
        metrics.request(Outcome::Ok, 0.02);
        metrics.request(Outcome::Ok, 3.0);
        metrics.request(Outcome::Rejected, 0.0);
        metrics.batch(3, 120, 0.5);
        let text = metrics.render(2);
        assert!(
            text.contains("e5v_request_seconds_bucket{le=\"0.025\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("e5v_request_seconds_bucket{le=\"5\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("e5v_request_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("e5v_requests_total{outcome=\"rejected\"} 1\n"));
        assert!(text.contains("e5v_queue_depth 2\n"));
        assert!(text.contains("e5v_tokens_per_second 240\n"), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').expect(line);
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
