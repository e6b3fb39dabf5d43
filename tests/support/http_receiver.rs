//! A real HTTP server that records every request (webhook receivers, Alertmanager's push API
//! stand-in) and answers with scripted statuses.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A request received by [`HttpReceiver`].
#[derive(Debug, Clone)]
pub struct Received {
    /// Request line target.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: String,
    /// The status answered.
    pub status: u16,
}

/// A real HTTP server that records every request and answers with scripted statuses (then 200).
pub struct HttpReceiver {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl HttpReceiver {
    /// Starts on a free port (or `port`), answering `statuses` in order, then 200.
    pub fn start(port: Option<u16>, statuses: Vec<u16>) -> HttpReceiver {
        use std::io::{Read, Write};
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", port.unwrap_or(0))).expect("bind receiver");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(statuses.into_iter()));
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                let script = script.clone();
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut data = Vec::new();
                    let mut buf = [0u8; 8192];
                    let header_end = loop {
                        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => data.extend_from_slice(&buf[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&data[..header_end]).to_string();
                    let mut lines = head.lines();
                    let path = lines
                        .next()
                        .and_then(|l| l.split_whitespace().nth(1))
                        .unwrap_or("")
                        .to_owned();
                    let headers: BTreeMap<String, String> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .collect();
                    let length: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while data.len() < header_end + length {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => data.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = String::from_utf8_lossy(&data[header_end..]).to_string();
                    let status = script.lock().unwrap().next().unwrap_or(200);
                    log.lock().unwrap().push(Received {
                        path,
                        headers,
                        body,
                        status,
                    });
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    );
                });
            }
        });
        HttpReceiver { url, received }
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}
