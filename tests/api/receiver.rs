//! A webhook receiver for the tests, written from the contract rather than from
//! the server's code: a small HTTP/1.1 server on loopback that records every
//! request, answers as a test scripts it, can be stopped (its port then refuses
//! connections) and started again on the same port, and checks signatures with
//! an HMAC-SHA256 built here from SHA-256 (RFC 2104), not with the server's crate.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    /// Waits this long, then answers with the status.
    Slow(Duration, u16),
    /// 302 to this location.
    Redirect(String),
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    /// Whether `X-Promoter-Signature-256` is the HMAC of the raw body with `secret`.
    pub fn signed_with(&self, secret: &str) -> bool {
        self.header("x-promoter-signature-256")
            == format!(
                "sha256={}",
                hex::encode(hmac_sha256(secret.as_bytes(), &self.body))
            )
    }
}

/// HMAC-SHA256 from its definition: H((K ^ opad) || H((K ^ ipad) || m)).
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    script: VecDeque<Answer>,
    always: Option<Answer>,
    /// Requests being answered now, per delivery id, and the most ever seen at once.
    in_flight: HashMap<String, usize>,
    most_at_once: usize,
}

pub struct Receiver {
    pub port: u16,
    state: Arc<Mutex<State>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut receiver = Receiver {
            port,
            state: Arc::default(),
            server: None,
        };
        receiver.serve(listener);
        receiver
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn serve(&mut self, listener: TcpListener) {
        let state = self.state.clone();
        // The connections live in this task's JoinSet: stopping the task closes
        // them all, as a receiver that went away would.
        self.server = Some(tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            connections.spawn(answer(stream, state.clone()));
                        }
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        }));
    }

    /// Stops listening: connections to the port are refused until `restart`.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    pub async fn restart(&mut self) {
        self.stop();
        for _ in 0..100 {
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", self.port)).await {
                self.serve(listener);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("could not listen on port {} again", self.port);
    }

    /// The answers to the next requests, in order; after them, `always` (or 200).
    pub fn answer_next(&self, answers: &[Answer]) {
        self.state
            .lock()
            .unwrap()
            .script
            .extend(answers.iter().cloned());
    }

    pub fn answer_always(&self, answer: Answer) {
        self.state.lock().unwrap().always = Some(answer);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// The most requests for one delivery id ever answered at the same time.
    pub fn most_at_once(&self) -> usize {
        self.state.lock().unwrap().most_at_once
    }

    /// Waits (at most 90 s) until `count` requests have arrived; returns them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        for _ in 0..900 {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the receiver got {} requests, not {count}",
            self.received().len()
        );
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads one request, records it, answers as scripted, and closes.
async fn answer(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut buffer = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 8192];
        let Ok(read) = stream.read(&mut chunk).await else {
            return;
        };
        if read == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .unwrap_or_default()
        .to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(read) => body.extend_from_slice(&chunk[..read]),
        }
    }
    let delivery = headers
        .get("x-promoter-delivery")
        .cloned()
        .unwrap_or_default();
    let reply = {
        let mut state = state.lock().unwrap();
        state.received.push(Received {
            path,
            headers,
            body,
        });
        let now = state.in_flight.entry(delivery.clone()).or_default();
        *now += 1;
        let now = *now;
        state.most_at_once = state.most_at_once.max(now);
        state
            .script
            .pop_front()
            .or_else(|| state.always.clone())
            .unwrap_or(Answer::Status(200))
    };
    let (status, location) = match reply {
        Answer::Status(status) => (status, None),
        Answer::Slow(wait, status) => {
            tokio::time::sleep(wait).await;
            (status, None)
        }
        Answer::Redirect(to) => (302, Some(to)),
    };
    let location = location.map_or(String::new(), |to| format!("Location: {to}\r\n"));
    let _ = stream
        .write_all(
            format!(
                "HTTP/1.1 {status} Scripted\r\n{location}Content-Length: 2\r\nConnection: close\r\n\r\nok"
            )
            .as_bytes(),
        )
        .await;
    let _ = stream.shutdown().await;
    if let Some(now) = state.lock().unwrap().in_flight.get_mut(&delivery) {
        *now -= 1;
    }
}

#[test]
fn hmac_matches_rfc_4231() {
    assert_eq!(
        hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}
