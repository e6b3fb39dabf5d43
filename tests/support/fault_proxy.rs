//! A fault-injecting HTTP/1.1 proxy (tokio, on a runtime thread of its own) between the sidecar
//! and a real management API: it forwards each request to the broker and injects, by request
//! path or at random, added latency, a connection reset (RST, no answer), a truncated body (the
//! broker's real answer cut in the middle of its body, then the connection closed) or a black
//! hole (the request read, never answered, the connection held open).
//!
//! Each connection carries one request: the proxy rewrites the request's `Connection` header
//! to `close`, so the client opens a new connection per request and each request can get its
//! own fault. Used by `tests/fault_proxy.rs` and by the fault soak (`examples/soak.rs`,
//! `bench/soak.sh`), which includes this file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A fault the proxy injects into one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwarded after this delay.
    Latency(Duration),
    /// The request is read, then the connection is reset (RST) without an answer.
    Reset,
    /// The broker's answer is forwarded up to the middle of its body, then the connection is
    /// closed (the `Content-Length`, if any, promises more).
    Truncate,
    /// The request is read and never answered; the connection stays open until the client
    /// gives up (or 10 minutes).
    BlackHole,
}

impl Fault {
    /// The kind's name, as counted by [`FaultCounts`].
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Latency(_) => "latency",
            Fault::Reset => "reset",
            Fault::Truncate => "truncate",
            Fault::BlackHole => "black_hole",
        }
    }
}

/// Random faults: each request gets one of them with these probabilities (per million), or
/// none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RandomFaults {
    /// Added latency, per million requests.
    pub latency_ppm: u32,
    /// The latency added, at most (uniform from 0).
    pub latency_max: Duration,
    /// Resets, per million requests.
    pub reset_ppm: u32,
    /// Truncated bodies, per million requests.
    pub truncate_ppm: u32,
    /// Black holes, per million requests.
    pub black_hole_ppm: u32,
}

/// Requests seen and faults injected, by kind.
#[derive(Debug, Default)]
pub struct FaultCounts {
    /// Requests forwarded untouched.
    pub passed: AtomicU64,
    /// Requests forwarded late.
    pub latency: AtomicU64,
    /// Requests answered by a reset.
    pub reset: AtomicU64,
    /// Answers cut short.
    pub truncate: AtomicU64,
    /// Requests never answered.
    pub black_hole: AtomicU64,
    /// Connections to the broker that failed (the client's connection is then closed).
    pub upstream_errors: AtomicU64,
}

impl FaultCounts {
    fn count(&self, fault: Option<Fault>) {
        let counter = match fault {
            None => &self.passed,
            Some(Fault::Latency(_)) => &self.latency,
            Some(Fault::Reset) => &self.reset,
            Some(Fault::Truncate) => &self.truncate,
            Some(Fault::BlackHole) => &self.black_hole,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `(kind, count)` of every kind, `passed` first.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("passed", self.passed.load(Ordering::Relaxed)),
            ("latency", self.latency.load(Ordering::Relaxed)),
            ("reset", self.reset.load(Ordering::Relaxed)),
            ("truncate", self.truncate.load(Ordering::Relaxed)),
            ("black_hole", self.black_hole.load(Ordering::Relaxed)),
            (
                "upstream_errors",
                self.upstream_errors.load(Ordering::Relaxed),
            ),
        ]
    }
}

/// Which requests get which fault.
#[derive(Debug, Default)]
struct Plan {
    /// A request whose target (path and query) contains the string gets the fault; the first
    /// rule that matches wins, before any random fault.
    rules: Vec<(String, Fault)>,
    /// Random faults for the other requests.
    random: RandomFaults,
    /// xorshift64 state.
    rng: u64,
}

impl Plan {
    fn next(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn pick(&mut self, target: &str) -> Option<Fault> {
        if let Some((_, fault)) = self.rules.iter().find(|(s, _)| target.contains(s.as_str())) {
            return Some(*fault);
        }
        let r = self.random;
        let roll = (self.next() % 1_000_000) as u32;
        let mut edge = 0u32;
        for (ppm, fault) in [
            (r.reset_ppm, Fault::Reset),
            (r.truncate_ppm, Fault::Truncate),
            (r.black_hole_ppm, Fault::BlackHole),
        ] {
            edge = edge.saturating_add(ppm);
            if roll < edge {
                return Some(fault);
            }
        }
        edge = edge.saturating_add(r.latency_ppm);
        if roll < edge {
            let max = r.latency_max.as_millis().max(1) as u64;
            return Some(Fault::Latency(Duration::from_millis(self.next() % max)));
        }
        None
    }
}

/// The proxy: listens on a free loopback port and forwards to `upstream`.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`: give this to the sidecar as `rabbitmq.url`.
    pub url: String,
    /// Requests and faults so far.
    pub counts: Arc<FaultCounts>,
    plan: Arc<Mutex<Plan>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://HOST:PORT`, e.g. a node's management URL) that
    /// injects nothing until told to.
    pub fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fault proxy");
        std_listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", std_listener.local_addr().unwrap());
        let counts = Arc::new(FaultCounts::default());
        let plan = Arc::new(Mutex::new(Plan {
            rng: 0x9E37_79B9_7F4A_7C15,
            ..Plan::default()
        }));
        let (c, p) = (counts.clone(), plan.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                while let Ok((client, _)) = listener.accept().await {
                    let (c, p, upstream) = (c.clone(), p.clone(), upstream.clone());
                    tokio::spawn(async move {
                        let _ = serve(client, &upstream, &c, &p).await;
                    });
                }
            });
        });
        FaultProxy { url, counts, plan }
    }

    /// Every request whose target contains `path_part` gets `fault` from now on.
    pub fn add_rule(&self, path_part: &str, fault: Fault) {
        self.plan
            .lock()
            .unwrap()
            .rules
            .push((path_part.to_owned(), fault));
    }

    /// Removes every rule.
    pub fn clear_rules(&self) {
        self.plan.lock().unwrap().rules.clear();
    }

    /// Sets the random faults (all 0: none), seeding the generator with `seed` (not 0).
    pub fn set_random(&self, random: RandomFaults, seed: u64) {
        let mut plan = self.plan.lock().unwrap();
        plan.random = random;
        plan.rng = seed.max(1);
    }

    /// Faults injected so far of `kind` (`passed`, `latency`, `reset`, `truncate`,
    /// `black_hole`, `upstream_errors`).
    pub fn count(&self, kind: &str) -> u64 {
        self.counts
            .snapshot()
            .into_iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| n)
    }
}

/// Most bytes of a request head read.
const MAX_HEAD: usize = 64 * 1024;

/// Handles one client connection: one request.
async fn serve(
    mut client: TcpStream,
    upstream: &str,
    counts: &FaultCounts,
    plan: &Mutex<Plan>,
) -> std::io::Result<()> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if data.len() > MAX_HEAD {
            return Ok(());
        }
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    // One request per connection: `Connection: close` replaces whatever the client asked.
    let mut rewritten = String::new();
    for (i, line) in head.trim_end_matches("\r\n").split("\r\n").enumerate() {
        let lower = line.to_ascii_lowercase();
        if i > 0 && (lower.starts_with("connection:") || lower.starts_with("keep-alive:")) {
            continue;
        }
        rewritten.push_str(line);
        rewritten.push_str("\r\n");
    }
    rewritten.push_str("Connection: close\r\n\r\n");
    let fault = plan.lock().unwrap().pick(&target);
    counts.count(fault);
    match fault {
        Some(Fault::Reset) => {
            // SO_LINGER 0: closing sends RST instead of FIN.
            let _ = client.set_zero_linger();
            drop(client);
            return Ok(());
        }
        Some(Fault::BlackHole) => {
            // Hold the connection, read (and drop) whatever comes, until the client gives up.
            let _ = tokio::time::timeout(Duration::from_secs(600), async {
                while client.read(&mut buf).await.is_ok_and(|n| n > 0) {}
            })
            .await;
            return Ok(());
        }
        Some(Fault::Latency(d)) => tokio::time::sleep(d).await,
        Some(Fault::Truncate) | None => {}
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        counts.upstream_errors.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    };
    server.write_all(rewritten.as_bytes()).await?;
    server.write_all(&data[head_end..]).await?;
    if fault == Some(Fault::Truncate) {
        // Read the whole answer (the broker closes: Connection: close), send half its body.
        let mut answer = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(60), server.read_to_end(&mut answer)).await;
        let body_start = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(0, |i| i + 4);
        let cut = body_start + (answer.len() - body_start) / 2;
        client.write_all(&answer[..cut]).await?;
        client.flush().await?;
        return Ok(());
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    Ok(())
}
