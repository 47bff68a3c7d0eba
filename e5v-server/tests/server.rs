//! The server on loopback with the tiny fixture model: vectors over HTTP equal the library's,
//! in both image styles and both encodings; every bad input is a 4xx naming it; concurrent
//! clients all get their own vectors; a full queue is 429; shutdown finishes accepted requests.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use e5v_core::{Embedder, EmbedderOptions, Embeddings, Flex, Input, Prompts};
use e5v_server::api::{EmbeddingResponse, EmbeddingValue};
use e5v_server::{App, Model, QueueConfig, RemoteImages, RequestLimits, ServerConfig};
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn image_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("images").join(name)).expect("fixture image")
}

fn data_uri(name: &str) -> String {
    format!(
        "data:image/png;base64,{}",
        STANDARD.encode(image_bytes(name))
    )
}

fn embedder() -> Embedder<Flex> {
    Embedder::new(
        fixtures().join("tiny-e5v"),
        EmbedderOptions::new(),
        &Default::default(),
    )
    .expect("fixture loads")
}

/// A server on 127.0.0.1 with its own runtime; shut down on drop.
struct Server {
    url: String,
    runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    fn start(app: &App) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = app.router();
        let served = runtime.spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serves");
        });
        Self {
            url,
            runtime,
            stop: Some(stop),
            served: Some(served),
        }
    }

    /// Stops accepting and waits until the accepted requests are answered.
    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            self.runtime.block_on(served).expect("server task");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// POSTs `body` to /v1/embeddings: the status, the Retry-After header and the JSON body.
fn post(url: &str, body: &Value) -> (u16, Option<String>, Value) {
    let mut response = agent()
        .post(&format!("{url}/v1/embeddings"))
        .send_json(body)
        .expect("request");
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = response.body_mut().read_json::<Value>().expect("json body");
    (status, retry, body)
}

fn get(url: &str, path: &str) -> (u16, String) {
    let mut response = agent()
        .get(&format!("{url}{path}"))
        .call()
        .expect("request");
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().expect("body"))
}

fn vectors(body: &Value) -> Vec<Vec<f32>> {
    let response: EmbeddingResponse = serde_json::from_value(body.clone()).expect("response");
    assert_eq!(response.object, "list");
    response
        .data
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            assert_eq!(item.index, i);
            match item.embedding {
                EmbeddingValue::Float(v) => v,
                EmbeddingValue::Base64(b) => STANDARD
                    .decode(b)
                    .expect("base64")
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            }
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

fn assert_same(got: &[Vec<f32>], want: &Embeddings) {
    assert_eq!(got.len(), want.len());
    for (i, row) in got.iter().enumerate() {
        let cos = cosine(row, want.get(i).expect("row"));
        assert!(cos >= 0.999_999, "vector {i}: cosine {cos}");
    }
}

fn ready_app(config: ServerConfig) -> App {
    let app = App::new(config);
    app.ready(embedder());
    app
}

#[test]
fn vectors_over_http_equal_the_librarys() {
    let app = ready_app(ServerConfig::default());
    let server = Server::start(&app);
    let reference = embedder();

    // OpenAI's shape: texts, floats then base64.
    let texts = ["a cat on a sofa", "two dogs"];
    let want = reference.embed(&texts.map(Input::text)).expect("library");
    for format in ["float", "base64"] {
        let (status, _, body) = post(
            &server.url,
            &json!({"input": texts, "model": "e5-v", "encoding_format": format}),
        );
        assert_eq!(status, 200, "{body}");
        assert_same(&vectors(&body), &want);
        let tokens: usize = (0..want.len())
            .map(|i| want.info(i).expect("info").seq_len)
            .sum();
        assert_eq!(body["usage"]["prompt_tokens"], tokens);
        assert_eq!(body["usage"]["total_tokens"], tokens);
        assert_eq!(body["model"], "e5-v");
    }
    let (status, _, body) = post(&server.url, &json!({"input": "a cat on a sofa"}));
    assert_eq!(status, 200);
    assert_same(&vectors(&body)[..1], &want.slice(0..1).expect("row"));

    // infinity's style: images as data URIs with `modality`.
    let images = ["grad_499x300.png", "noise_20x13.png"];
    let want = reference
        .embed(&images.map(|n| Input::image(image_bytes(n))))
        .expect("library");
    let (status, _, body) = post(
        &server.url,
        &json!({"input": images.map(data_uri), "modality": "image"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_same(&vectors(&body), &want);

    // vLLM's style: a user message with an image and text is a composed query; a preset picks
    // the CIRR prompt.
    let message = |preset: Option<&str>| {
        let mut body = json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_uri("grad_336x336.png")}},
            {"type": "text", "text": "make it blue"},
        ]}]});
        if let Some(preset) = preset {
            body["preset"] = json!(preset);
        }
        body
    };
    let composed = [Input::composed(
        image_bytes("grad_336x336.png"),
        "make it blue",
    )];
    let (status, _, body) = post(&server.url, &message(None));
    assert_eq!(status, 200, "{body}");
    assert_same(
        &vectors(&body),
        &reference.embed(&composed).expect("library"),
    );
    let cirr = Prompts::new().with(e5v_core::Preset::CirrQuery);
    let (status, _, body) = post(&server.url, &message(Some("cirr-query")));
    assert_eq!(status, 200, "{body}");
    assert_same(
        &vectors(&body),
        &reference.embed_with(&composed, &cirr).expect("library"),
    );
}

#[test]
fn bad_input_is_a_4xx_in_openais_shape_naming_the_input() {
    let config = ServerConfig {
        limits: RequestLimits {
            max_inputs: 4,
            max_image_bytes: 4096,
            ..RequestLimits::default()
        },
        max_body_bytes: 1 << 20,
        ..ServerConfig::default()
    };
    let server = Server::start(&ready_app(config));
    let png = data_uri("noise_20x13.png");
    let not_an_image = format!(
        "data:image/png;base64,{}",
        STANDARD.encode(b"not a png at all")
    );
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (
            json!({"input": ["a", "b"], "dimensions": 64}),
            400,
            "dimensions_unsupported",
            Some("dimensions"),
        ),
        (
            json!({"input": "a", "temperature": 1}),
            400,
            "invalid_request",
            None,
        ),
        (json!({"input": [1, 2, 3]}), 400, "invalid_request", None),
        (json!({}), 400, "missing_input", Some("input")),
        (json!({"input": []}), 400, "missing_input", Some("input")),
        (
            json!({"input": vec!["a"; 5]}),
            400,
            "too_many_inputs",
            Some("input"),
        ),
        (
            json!({"input": ["a", ""]}),
            400,
            "empty_input",
            Some("input[1]"),
        ),
        (
            json!({"input": ["a", "x".repeat(70_000)]}),
            400,
            "input_too_long",
            Some("input[1]"),
        ),
        (
            json!({"input": "a", "model": "gpt-4"}),
            404,
            "model_not_found",
            Some("model"),
        ),
        (
            json!({"input": "a", "preset": "nope"}),
            400,
            "unknown_preset",
            Some("preset"),
        ),
        (
            json!({"input": [png, "data:image/png;base64,@@@"], "modality": "image"}),
            400,
            "invalid_image",
            Some("input[1]"),
        ),
        (
            json!({"input": ["data:text/plain;base64,aGk="], "modality": "image"}),
            400,
            "invalid_image",
            Some("input[0]"),
        ),
        (
            json!({"input": ["https://example.com/cat.png"], "modality": "image"}),
            400,
            "remote_image_disabled",
            Some("input[0]"),
        ),
        (
            json!({"input": [png, data_uri("grad_499x300.png")], "modality": "image"}),
            400,
            "image_too_large",
            Some("input[1]"),
        ),
        // Decoded by the model worker: only this request fails, naming its input.
        (
            json!({"input": [png, not_an_image], "modality": "image"}),
            400,
            "invalid_image",
            Some("input[1]"),
        ),
        (
            json!({"messages": [{"role": "assistant", "content": "hi"}]}),
            400,
            "invalid_messages",
            Some("messages[0].role"),
        ),
        (
            json!({"input": "a", "messages": []}),
            400,
            "conflicting_inputs",
            Some("messages"),
        ),
        (
            json!({"input": "x".repeat(1 << 20)}),
            413,
            "invalid_request",
            None,
        ),
    ];
    for (body, status, code, param) in cases {
        let (got, _, answer) = post(&server.url, &body);
        let shown = body.to_string();
        let shown = &shown[..shown.len().min(120)];
        assert_eq!(got, status, "{shown}: {answer}");
        let error = &answer["error"];
        assert_eq!(error["code"], code, "{shown}: {answer}");
        assert_eq!(error["param"].as_str(), param, "{shown}: {answer}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(error["type"].as_str().is_some());
    }
    // The server is still well: a good request after all that.
    let (status, _, _) = post(&server.url, &json!({"input": "still here"}));
    assert_eq!(status, 200);
    let (status, metrics) = get(&server.url, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("e5v_requests_total{outcome=\"client_error\"} 18"),
        "{metrics}"
    );
    assert!(
        metrics.contains("e5v_requests_total{outcome=\"ok\"} 1"),
        "{metrics}"
    );
}

#[test]
fn concurrent_clients_with_mixed_inputs_each_get_their_own_vectors() {
    let server = Server::start(&ready_app(ServerConfig::default()));
    let reference = embedder();
    let requests: Vec<(Value, Vec<Input>)> = vec![
        (
            json!({"input": ["one text", "another, longer text"]}),
            vec![Input::text("one text"), Input::text("another, longer text")],
        ),
        (
            json!({"input": [data_uri("grad_300x1000.png")], "modality": "image"}),
            vec![Input::image(image_bytes("grad_300x1000.png"))],
        ),
        (
            json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "make it"}, {"type": "text", "text": "blue"},
            {"type": "image_url", "image_url": {"url": data_uri("odd_337x251.png")}}]}]}),
            vec![Input::composed(
                image_bytes("odd_337x251.png"),
                "make it blue",
            )],
        ),
        (
            json!({"input": "a single text"}),
            vec![Input::text("a single text")],
        ),
    ];
    let expected: Vec<Embeddings> = requests
        .iter()
        .map(|(_, inputs)| reference.embed(inputs).expect("library"))
        .collect();
    let requests = Arc::new(requests);
    let expected = Arc::new(expected);
    let handles: Vec<_> = (0..6)
        .map(|client| {
            let (url, requests, expected) = (
                server.url.clone(),
                Arc::clone(&requests),
                Arc::clone(&expected),
            );
            std::thread::spawn(move || {
                for k in 0..requests.len() {
                    let which = (client + k) % requests.len();
                    let (status, _, body) = post(&url, &requests[which].0);
                    assert_eq!(status, 200, "{body}");
                    assert_same(&vectors(&body), &expected[which]);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("client");
    }
    let (_, metrics) = get(&server.url, "/metrics");
    assert!(
        metrics.contains("e5v_requests_total{outcome=\"ok\"} 24"),
        "{metrics}"
    );
}

/// How long a test waits on the model or the model on the test: a broken test fails, never
/// hangs.
const WAIT: Duration = Duration::from_secs(60);

/// A model that holds the worker: each call reports its number of inputs, then waits for the
/// test's go and answers constant vectors.
struct Gate {
    entered: mpsc::Sender<usize>,
    go: Mutex<mpsc::Receiver<()>>,
}

impl Model for Gate {
    fn embed(&self, inputs: &[Input], _: &Prompts) -> e5v_core::Result<Embeddings> {
        let _ = self.entered.send(inputs.len());
        self.go
            .lock()
            .expect("lock")
            .recv_timeout(WAIT)
            .expect("the test's go");
        Embeddings::from_matrix(2, vec![0.5; 2 * inputs.len()])
    }
}

/// The test's side of a [`Gate`].
struct GateControl {
    entered: mpsc::Receiver<usize>,
    go: mpsc::Sender<()>,
}

impl GateControl {
    /// Waits until the model is called; its number of inputs.
    fn entered(&self) -> usize {
        self.entered
            .recv_timeout(WAIT)
            .expect("the model was called")
    }

    /// Lets the waiting call finish.
    fn go(&self) {
        self.go.send(()).expect("the model is there");
    }
}

fn gate() -> (Gate, GateControl) {
    let (entered, entered_rx) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    let model = Gate {
        entered,
        go: Mutex::new(go_rx),
    };
    let control = GateControl {
        entered: entered_rx,
        go,
    };
    (model, control)
}

#[test]
fn a_full_queue_is_429_and_shutdown_answers_every_accepted_request() {
    let (model, control) = gate();
    let app = App::new(ServerConfig {
        queue: QueueConfig {
            capacity: 2,
            max_batch_inputs: 64,
        },
        ..ServerConfig::default()
    });
    let mut server = Server::start(&app);
    // Before the model is ready: /health and requests say so.
    assert_eq!(get(&server.url, "/health").0, 503);
    let (status, _, body) = post(&server.url, &json!({"input": "early"}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("loading"))
    );
    app.ready(model);
    assert_eq!(get(&server.url, "/health").0, 200);

    let send = |text: &'static str| {
        let url = server.url.clone();
        std::thread::spawn(move || post(&url, &json!({"input": text})))
    };
    // The first request occupies the worker; two more fill the queue; the fourth is refused.
    let first = send("first");
    assert_eq!(control.entered(), 1);
    let queued = [send("second"), send("third")];
    let deadline = std::time::Instant::now() + WAIT;
    while !get(&server.url, "/metrics")
        .1
        .contains("e5v_queue_depth 2\n")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the queue never filled"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, retry, body) = post(&server.url, &json!({"input": "fourth"}));
    assert_eq!(status, 429, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["error"]["type"], "rate_limit_error");

    // Shut down while three accepted requests are in flight: all three are answered.
    let releaser = std::thread::spawn(move || {
        control.go(); // the first call
        let batched = control.entered(); // the queued two, in one call
        control.go();
        batched
    });
    server.shutdown();
    assert_eq!(
        releaser.join().expect("releaser"),
        2,
        "the queued two ran as one batch"
    );
    for handle in [first].into_iter().chain(queued) {
        let (status, _, body) = handle.join().expect("client");
        assert_eq!(status, 200, "{body}");
        assert_eq!(vectors(&body).len(), 1);
    }
}

/// A plain HTTP server on 127.0.0.1 with an image, an oversized file, a redirect and nothing
/// else; kept alive by the returned runtime.
fn image_host(image: Vec<u8>, big: usize) -> (String, tokio::runtime::Runtime) {
    use axum::response::Redirect;
    use axum::routing::get as route;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let router = axum::Router::new()
        .route("/cat.png", route(move || async move { image.clone() }))
        .route("/big", route(move || async move { vec![0u8; big] }))
        .route(
            "/moved",
            route(|| async { Redirect::temporary("/cat.png") }),
        );
    runtime.spawn(async move { axum::serve(listener, router).await });
    (format!("127.0.0.1:{port}"), runtime)
}

#[test]
fn allowed_image_urls_are_fetched_and_others_refused() {
    let cat = image_bytes("grad_499x300.png");
    let (host, _host_runtime) = image_host(cat.clone(), 300_000);
    let port = host.rsplit(':').next().expect("port").to_string();
    let mut config = ServerConfig::default();
    config.limits.max_image_bytes = 200_000;
    config.limits.remote = RemoteImages {
        allowed_hosts: vec!["127.0.0.1".into()],
        timeout: Duration::from_secs(10),
    };
    let server = Server::start(&ready_app(config));
    let reference = embedder();

    let url = format!("http://{host}/cat.png");
    let (status, _, body) = post(&server.url, &json!({"input": [url], "modality": "image"}));
    assert_eq!(status, 200, "{body}");
    assert_same(
        &vectors(&body),
        &reference
            .embed(&[Input::image(cat.clone())])
            .expect("library"),
    );
    let (status, _, body) = post(
        &server.url,
        &json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "blue"}]}]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_same(
        &vectors(&body),
        &reference
            .embed(&[Input::composed(cat, "blue")])
            .expect("library"),
    );

    for (url, code) in [
        (
            format!("http://localhost:{port}/cat.png"),
            "remote_image_not_allowed",
        ),
        (format!("http://{host}/big"), "image_too_large"),
        (format!("http://{host}/moved"), "image_fetch_failed"),
        (format!("http://{host}/missing"), "image_fetch_failed"),
        (format!("ftp://{host}/cat.png"), "invalid_image"),
    ] {
        let (status, _, body) = post(
            &server.url,
            &json!({"input": [data_uri("noise_20x13.png"), url], "modality": "image"}),
        );
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["error"]["code"], code, "{url}: {body}");
        assert_eq!(body["error"]["param"], "input[1]", "{url}: {body}");
    }
}

#[test]
fn a_request_past_its_timeout_is_504_and_costs_no_model_time() {
    let (model, control) = gate();
    let app = App::new(ServerConfig {
        request_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    });
    app.ready(model);
    let server = Server::start(&app);
    let first = {
        let url = server.url.clone();
        std::thread::spawn(move || post(&url, &json!({"input": "first"})))
    };
    assert_eq!(control.entered(), 1);
    // The worker is busy past the timeout: the second request gives up with 504.
    let (status, _, body) = post(&server.url, &json!({"input": ["second", "third"]}));
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "timeout");
    control.go();
    let (status, _, body) = first.join().expect("client");
    assert_eq!(status, 504, "the first waited past its timeout too: {body}");
    // A later request runs alone: the abandoned two-input one never reaches the model.
    let later = {
        let url = server.url.clone();
        std::thread::spawn(move || post(&url, &json!({"input": "later"})))
    };
    assert_eq!(control.entered(), 1);
    control.go();
    assert_eq!(later.join().expect("client").0, 200);
}

/// A model with a bug: it panics on one text.
struct Panicky;

impl Model for Panicky {
    fn embed(&self, inputs: &[Input], _: &Prompts) -> e5v_core::Result<Embeddings> {
        assert!(!inputs.contains(&Input::text("boom")), "a bug in the model");
        Embeddings::from_matrix(2, vec![0.5; 2 * inputs.len()])
    }
}

#[test]
fn a_panicking_model_fails_its_batch_with_500_and_the_server_lives_on() {
    let app = App::new(ServerConfig::default());
    app.ready(Panicky);
    let server = Server::start(&app);
    let (status, _, body) = post(&server.url, &json!({"input": ["fine", "boom"]}));
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["type"], "server_error");
    let (status, _, body) = post(&server.url, &json!({"input": ["fine"]}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&server.url, "/health").0, 200);
}
