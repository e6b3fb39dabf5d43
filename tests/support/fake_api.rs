//! A fake management API on a raw TCP socket, for answers and faults a real broker cannot
//! produce (malformed, failing, slow and cut responses; other RabbitMQ versions).

use std::sync::{Arc, Mutex};

/// A fake management API on a raw TCP socket, for shapes and faults no broker here can produce.
/// `respond` maps a request target (path and query) to the raw HTTP response bytes; every
/// request target is recorded.
pub struct FakeApi {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Request targets received, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl FakeApi {
    /// Starts serving; one thread per connection, `Connection: close` semantics.
    pub fn start(respond: fn(&str) -> Vec<u8>) -> FakeApi {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let target = text.split_whitespace().nth(1).unwrap_or("").to_owned();
                    seen.lock().unwrap().push(target.clone());
                    let _ = stream.write_all(&respond(&target));
                    let _ = stream.flush();
                });
            }
        });
        FakeApi { url, requests }
    }

    /// Request targets received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// A complete HTTP/1.1 response with a JSON body.
pub fn json_response(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
