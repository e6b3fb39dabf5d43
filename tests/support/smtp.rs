//! A real SMTP server for the email tests: Debian's python3-aiosmtpd
//! (`scripts/install-deps.sh smtp`), with delivered emails parsed by Python's `email` package.
//! The Python programs are files beside this one (`smtp_auth.py`, `parse_mail.py`), run by
//! path.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::free_port;

const PYTHON: &str = "/usr/bin/python3";
const INSTALL_HINT: &str =
    "`scripts/install-deps.sh smtp` installs it (Debian package python3-aiosmtpd)";

/// An aiosmtpd child process writing what it receives to a maildir; killed on drop.
pub struct SmtpSink {
    child: Child,
    port: u16,
    /// Temporary directory holding the maildir and the server's log.
    root: PathBuf,
}

/// A server with aiosmtpd's stock command line: accepts everything, stores it in a maildir.
const CLI: &[&str] = &["-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Mailbox"];

/// A Python program of this directory, by path.
fn program(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name)
}

impl SmtpSink {
    /// aiosmtpd's stock server (`python3 -m aiosmtpd ... -c aiosmtpd.handlers.Mailbox`).
    pub fn start() -> Self {
        Self::spawn(|port, maildir| {
            let mut args: Vec<String> = CLI.iter().map(|s| (*s).to_owned()).collect();
            args.extend(["-l".to_owned(), format!("127.0.0.1:{port}")]);
            args.push(maildir.to_string_lossy().into_owned());
            args
        })
    }

    /// A server that requires AUTH (PLAIN/LOGIN, no TLS: loopback only) as `alerts` /
    /// `correct horse`, answers 451 to recipients `busy@…` and 550 to `nobody@…`, and stores
    /// the rest in the maildir: `smtp_auth.py` (arguments: port, maildir).
    pub fn start_with_auth() -> Self {
        Self::spawn(|port, maildir| {
            vec![
                program("smtp_auth.py").to_string_lossy().into_owned(),
                port.to_string(),
                maildir.to_string_lossy().into_owned(),
            ]
        })
    }

    fn spawn(args: impl Fn(u16, &Path) -> Vec<String>) -> Self {
        require_aiosmtpd();
        static N: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "rabbitmq-watch-smtp-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let maildir = root.join("maildir");
        let log = std::fs::File::create(root.join("server.log")).unwrap();
        let port = free_port();
        let child = Command::new(PYTHON)
            .args(args(port, &maildir))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {PYTHON}: {e}; {INSTALL_HINT}"));
        let mut sink = SmtpSink { child, port, root };
        sink.wait_until_listening();
        sink
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "aiosmtpd exited with {status} before listening: {}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {addr} within 15s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
    }

    pub fn smarthost(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The `n` delivered emails (waiting up to 5 s for them), parsed, oldest first.
    pub fn delivered(&self, n: usize) -> Vec<Parsed> {
        let new = self.root.join("maildir/new");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&new)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .map(|e| {
                            let modified = e
                                .metadata()
                                .and_then(|m| m.modified())
                                .unwrap_or(std::time::UNIX_EPOCH);
                            (modified, e.path())
                        })
                        .collect()
                })
                .unwrap_or_default();
            if files.len() >= n {
                files.sort();
                return files.iter().map(|(_, p)| parse(p)).collect();
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} emails in {}: {}",
                files.len(),
                new.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Fails (never skips) when the SMTP server is not installed.
pub fn require_aiosmtpd() {
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is missing: these tests need Python 3 and aiosmtpd; {INSTALL_HINT}"
    );
    let found = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "the Python module aiosmtpd is missing for {PYTHON}; {INSTALL_HINT}"
    );
}

/// A delivered email as Python's `email` package reads it.
#[derive(Debug, serde::Deserialize)]
pub struct Parsed {
    pub subject: String,
    pub from: String,
    /// Addresses of the `To` header.
    pub to: Vec<String>,
    /// Envelope recipients, as the server recorded them (`X-RcptTo`).
    pub rcpt_to: String,
    /// The client's address as the server saw it (`X-Peer`): one per connection.
    pub peer: String,
    pub content_type: String,
    /// (content type, decoded text) of each leaf part.
    pub parts: Vec<(String, String)>,
}

impl Parsed {
    pub fn part(&self, content_type: &str) -> &str {
        self.parts
            .iter()
            .find(|(t, _)| t == content_type)
            .map(|(_, body)| body.as_str())
            .unwrap_or_else(|| panic!("no {content_type} part in {:?}", self.parts))
    }
}

/// Parses the email stored at `path` with `parse_mail.py`; panics when Python cannot.
pub fn parse(path: &Path) -> Parsed {
    let out = Command::new(PYTHON)
        .arg(program("parse_mail.py"))
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cannot parse {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
