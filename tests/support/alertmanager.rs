//! A real Alertmanager for the notification tests: Debian's prometheus-alertmanager
//! (`scripts/install-deps.sh alertmanager`), queried back through its API.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::free_port;

const BINARY: &str = "/usr/bin/prometheus-alertmanager";

/// Numbers the Alertmanager directories of this test process.
static AM_SEQ: AtomicU32 = AtomicU32::new(0);

/// An HTTP client for the tests' own requests.
pub fn client() -> reqwest::Client {
    rabbitmq_watch::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// A throwaway Alertmanager; killed and its directory removed on drop.
pub struct Alertmanager {
    child: Child,
    dir: PathBuf,
    pub url: String,
}

impl Alertmanager {
    pub async fn start() -> Alertmanager {
        assert!(
            std::path::Path::new(BINARY).exists(),
            "{BINARY} is missing: `scripts/install-deps.sh alertmanager` installs Debian's \
             prometheus-alertmanager"
        );
        let dir = std::env::temp_dir().join(format!(
            "rabbitmq-watch-am-{}-{}",
            std::process::id(),
            AM_SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("am.yml"),
            "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n",
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("am.log")).unwrap();
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {BINARY}: {e} (`scripts/install-deps.sh alertmanager` installs it)"
                )
            });
        let mut am = Alertmanager {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        am.wait_ready().await;
        am
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready = format!("{}/-/ready", self.url);
        let client = client();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Alertmanager exited ({status}):\n{}", self.log());
            }
            if let Ok(r) = client.get(&ready).send().await
                && r.status() == reqwest::StatusCode::OK
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager not ready after 30 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("am.log")).unwrap_or_default()
    }

    /// `GET /api/v2/alerts` with every kind of alert included (active, silenced, inhibited,
    /// unprocessed); Alertmanager leaves out alerts whose `endsAt` has passed.
    pub async fn alerts(&self) -> Vec<Value> {
        let url = format!(
            "{}/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true",
            self.url
        );
        let response = client().get(url).send().await.expect("GET /api/v2/alerts");
        assert!(response.status().is_success(), "{}", response.status());
        response.json().await.expect("alerts JSON")
    }

    /// The alert named `alertname` (label), if Alertmanager lists it.
    pub async fn alert(&self, alertname: &str) -> Option<Value> {
        self.alerts()
            .await
            .into_iter()
            .find(|a| a["labels"]["alertname"] == alertname)
    }

    /// Waits until `check` holds for the alert named `alertname` (or its absence), for at
    /// most 15 s; returns the last value seen.
    pub async fn wait_for(
        &self,
        alertname: &str,
        what: &str,
        check: impl Fn(Option<&Value>) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let alert = self.alert(alertname).await;
            if check(alert.as_ref()) {
                return alert;
            }
            assert!(
                Instant::now() < deadline,
                "{alertname}: {what} not seen within 15 s; last: {alert:?}\nAlertmanager log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
