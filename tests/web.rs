//! The HTTP server's security against the real binary with real clients: TLS, client
//! certificates, basic auth, extra headers and the admin API switch, checked with `curl` and
//! with `rabbitmq-watch probe`; certificates are made at test time with the `openssl` CLI
//! (Debian's `openssl`). No broker is needed: the sidecar serves (`up 0`) while the management
//! API is unreachable.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Sidecar, eventually, free_port, output_text, run_watch, temp_dir, watch_exits};

const WAIT: Duration = Duration::from_secs(20);

/// A management URL where nothing listens.
fn nowhere() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// Runs `openssl ARGS` in `dir`; panics when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Certificates made for one test: two CAs, a server certificate for 127.0.0.1/localhost
/// signed by `ca`, and client certificates signed by `ca` and by `other-ca`.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir = temp_dir(tag);
        for ca in ["ca", "other-ca"] {
            openssl(
                &dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.crt"),
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN=rabbitmq-watch test {ca}"),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            );
        }
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("client.ext"),
            "subjectAltName=DNS:client.test\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        let pki = Pki { dir };
        pki.leaf("server", "ca", "server.ext");
        pki.leaf("client", "ca", "client.ext");
        pki.leaf("stranger", "other-ca", "client.ext");
        pki
    }

    /// `NAME.key` and `NAME.crt` signed by `ca` with the extensions in `ext`.
    fn leaf(&self, name: &str, ca: &str, ext: &str) {
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.crt"),
                "-CAkey",
                &format!("{ca}.key"),
                "-set_serial",
                &format!("{}", 1000 + name.len()),
                "-days",
                "2",
                "-extfile",
                ext,
                "-out",
                &format!("{name}.crt"),
            ],
        );
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// curl `url` trusting `ca.crt`, presenting the client certificate `NAME.crt` (key
    /// `NAME.key`) when `cert` is `Some(NAME)`, with `extra` options.
    fn curl_tls(&self, url: &str, cert: Option<&str>, extra: &[&str]) -> Curl {
        let mut owned = vec!["--cacert".to_owned(), self.path("ca.crt")];
        if let Some(name) = cert {
            owned.extend([
                "--cert".to_owned(),
                self.path(&format!("{name}.crt")),
                "--key".to_owned(),
                self.path(&format!("{name}.key")),
            ]);
        }
        owned.extend(extra.iter().map(ToString::to_string));
        owned.push(url.to_owned());
        curl(&owned.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Writes `web.yml` (relative certificate paths: resolved against its directory).
    fn web_config(&self, text: &str) -> String {
        let path = self.dir.join("web.yml");
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

/// A started sidecar with the web config `web` (and the admin API as `admin`).
fn sidecar(web: &str, admin: bool) -> (Sidecar, String) {
    let sidecar = Sidecar::start(
        &nowhere(),
        &[
            ("RABBITMQ_WATCH__WEB__CONFIG_FILE", web),
            (
                "RABBITMQ_WATCH__WEB__ENABLE_ADMIN_API",
                if admin { "true" } else { "false" },
            ),
        ],
    );
    let port = sidecar.base.rsplit(':').next().expect("port").to_owned();
    (sidecar, port)
}

/// What curl saw.
#[derive(Debug)]
struct Curl {
    /// curl's exit code (0: transfer done; 35, 56, 60…: TLS failures).
    exit: i32,
    /// HTTP status (0 without a response).
    status: u16,
    /// Response headers, lower-cased names.
    headers: String,
    body: String,
    stderr: String,
}

fn curl(args: &[&str]) -> Curl {
    let out = Command::new("curl")
        .args(["-sS", "-m", "10", "-D", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (rest, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let (headers, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    Curl {
        exit: out.status.code().unwrap_or(-1),
        status: code.trim().parse().unwrap_or(0),
        headers: headers.to_ascii_lowercase(),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn tls_serves_the_configured_certificate_and_clients_of_other_cas_fail() {
    let pki = Pki::new("web-tls");
    let web = pki.web_config(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n",
    );
    let (_sidecar, port) = sidecar(&web, false);
    let url = format!("https://127.0.0.1:{port}/-/healthy");
    let ok = pki.curl_tls(&url, None, &[]);
    assert_eq!((ok.exit, ok.status), (0, 200), "{ok:?}");
    assert_eq!(ok.body, "OK\n");
    // By name too (the certificate has DNS:localhost).
    let by_name = pki.curl_tls(&format!("https://localhost:{port}/-/healthy"), None, &[]);
    assert_eq!(by_name.status, 200, "{by_name:?}");

    let wrong_ca = curl(&["--cacert", &pki.path("other-ca.crt"), &url]);
    assert_eq!(
        wrong_ca.exit, 60,
        "certificate problem expected: {wrong_ca:?}"
    );
    assert_eq!(wrong_ca.status, 0);
    assert!(wrong_ca.stderr.contains("certificate"), "{wrong_ca:?}");

    // min_version TLS13: a TLS 1.2 client is refused.
    let old = pki.curl_tls(&url, None, &["--tls-max", "1.2"]);
    assert_ne!(old.exit, 0, "{old:?}");
    assert_eq!(old.status, 0, "{old:?}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = curl(&[&format!("http://127.0.0.1:{port}/-/healthy")]);
    assert_ne!(plain.status, 200, "{plain:?}");
}

#[test]
fn client_certificates_are_required_and_verified_when_configured() {
    let pki = Pki::new("web-mtls");
    let web = pki.web_config(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n",
    );
    let (_sidecar, port) = sidecar(&web, false);
    let url = format!("https://127.0.0.1:{port}/metrics");
    let ca = pki.path("ca.crt");

    let without = pki.curl_tls(&url, None, &[]);
    assert_ne!(without.exit, 0, "{without:?}");
    assert_eq!(without.status, 0, "{without:?}");

    let with = pki.curl_tls(&url, Some("client"), &[]);
    assert_eq!((with.exit, with.status), (0, 200), "{with:?}");
    assert!(with.body.contains("rabbitmq_watch_polls_total"), "{with:?}");

    let stranger = pki.curl_tls(&url, Some("stranger"), &[]);
    assert_ne!(stranger.exit, 0, "{stranger:?}");
    assert_eq!(stranger.status, 0, "{stranger:?}");

    // The probe presents a client certificate when told to.
    let probe_url = format!("https://127.0.0.1:{port}/-/healthy");
    watch_exits(
        0,
        &[
            "probe",
            "--url",
            &probe_url,
            "--ca-file",
            &ca,
            "--client-cert",
            &pki.path("client.crt"),
            "--client-key",
            &pki.path("client.key"),
        ],
        &[],
    );
    watch_exits(1, &["probe", "--url", &probe_url, "--ca-file", &ca], &[]);
}

#[test]
fn basic_auth_protects_every_path_and_headers_are_added() {
    let pki = Pki::new("web-auth");
    let hash = bcrypt::hash("correct horse", 4).unwrap();
    let web = pki.web_config(&format!(
        "basic_auth_users:\n  alice: '{hash}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n"
    ));
    let (sidecar, _) = sidecar(&web, false);
    for path in [
        "/metrics",
        "/-/healthy",
        "/-/ready",
        "/",
        "/api/v1/alerts",
        "/no/such/path",
    ] {
        let url = format!("{}{path}", sidecar.base);
        let anonymous = curl(&[&url]);
        assert_eq!(anonymous.status, 401, "{path}: {anonymous:?}");
        assert!(
            anonymous
                .headers
                .contains("www-authenticate: basic realm=\"rabbitmq-watch\""),
            "{anonymous:?}"
        );
        assert!(
            anonymous.headers.contains("x-frame-options: deny"),
            "{anonymous:?}"
        );
        let wrong = curl(&["-u", "alice:battery staple", &url]);
        assert_eq!(wrong.status, 401, "{path}: {wrong:?}");
        let nobody = curl(&["-u", "bob:correct horse", &url]);
        assert_eq!(nobody.status, 401, "{path}: {nobody:?}");
    }
    let ok = curl(&[
        "-u",
        "alice:correct horse",
        &format!("{}/metrics", sidecar.base),
    ]);
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(
        ok.headers.contains("x-content-type-options: nosniff"),
        "{ok:?}"
    );
    assert!(ok.headers.contains("x-frame-options: deny"), "{ok:?}");
    let healthy = curl(&[
        "-u",
        "alice:correct horse",
        &format!("{}/-/healthy", sidecar.base),
    ]);
    assert_eq!(healthy.status, 200, "{healthy:?}");

    // The probe: the password from the environment or a file, never the command line.
    let url = format!("{}/-/healthy", sidecar.base);
    let out = watch_exits(1, &["probe", "--url", &url], &[]);
    assert!(out.contains("401"), "{out}");
    watch_exits(
        0,
        &["probe", "--url", &url, "--username", "alice"],
        &[("RABBITMQ_WATCH_PROBE_PASSWORD", "correct horse")],
    );
    let file = pki.dir.join("probe-password");
    std::fs::write(&file, "correct horse\n").unwrap();
    watch_exits(
        0,
        &["probe", "--url", &url],
        &[
            ("RABBITMQ_WATCH_PROBE_USERNAME", "alice"),
            (
                "RABBITMQ_WATCH_PROBE_PASSWORD_FILE",
                &file.display().to_string(),
            ),
        ],
    );
    let out = watch_exits(1, &["probe", "--url", &url, "--username", "alice"], &[]);
    assert!(out.contains("RABBITMQ_WATCH_PROBE_PASSWORD"), "{out}");
}

const SILENCE: &str = r#"{"matchers":["alertname=\"RabbitmqDown\""],"duration":"1h","createdBy":"test","comment":"web test"}"#;

#[test]
fn write_endpoints_need_the_admin_api_switch_and_authentication() {
    let pki = Pki::new("web-admin");
    let hash = bcrypt::hash("pw", 4).unwrap();
    let web = pki.web_config(&format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  admin: '{hash}'\n"
    ));
    let ca = pki.path("ca.crt");
    let post = |port: &str, auth: Option<&str>| {
        let url = format!("https://127.0.0.1:{port}/api/v1/silences");
        let mut args = vec![
            "--cacert",
            &ca,
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "--data",
            SILENCE,
        ];
        if let Some(a) = auth {
            args.extend(["-u", a]);
        }
        let owned: Vec<String> = args.iter().map(ToString::to_string).collect();
        let mut refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        refs.push(&url);
        curl(&refs)
    };

    let (disabled, port) = sidecar(&web, false);
    let refused = post(&port, Some("admin:pw"));
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.body.contains("web.enable_admin_api"), "{refused:?}");
    assert!(
        refused
            .body
            .contains("RABBITMQ_WATCH__WEB__ENABLE_ADMIN_API"),
        "{refused:?}"
    );
    let delete = curl(&[
        "--cacert",
        &ca,
        "-u",
        "admin:pw",
        "-X",
        "DELETE",
        &format!("https://127.0.0.1:{port}/api/v1/silences/x"),
    ]);
    assert_eq!(delete.status, 403, "{delete:?}");
    // Reading stays allowed.
    let list = curl(&[
        "--cacert",
        &ca,
        "-u",
        "admin:pw",
        &format!("https://127.0.0.1:{port}/api/v1/silences"),
    ]);
    assert_eq!(list.status, 200, "{list:?}");
    drop(disabled);

    let (_enabled, port) = sidecar(&web, true);
    let anonymous = post(&port, None);
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    let created = post(&port, Some("admin:pw"));
    assert_eq!(created.status, 200, "{created:?}");
    assert!(created.body.contains("silenceId"), "{created:?}");
}

#[test]
fn the_probe_follows_the_web_config_by_default() {
    let pki = Pki::new("web-probe");
    let hash = bcrypt::hash("pw", 4).unwrap();
    let web = pki.web_config(&format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  alice: '{hash}'\n"
    ));
    let (_sidecar, port) = sidecar(&web, false);
    let listen = format!("0.0.0.0:{port}");
    let env = [
        ("RABBITMQ_WATCH__LISTEN", listen.as_str()),
        ("RABBITMQ_WATCH__WEB__CONFIG_FILE", web.as_str()),
        ("RABBITMQ_WATCH_PROBE_USERNAME", "alice"),
        ("RABBITMQ_WATCH_PROBE_PASSWORD", "pw"),
    ];
    // https at the listen address, trusting the web config's certificate: it reaches the
    // sidecar, which is not ready (no broker).
    let said = watch_exits(1, &["probe"], &env);
    assert!(
        said.contains(&format!("https://127.0.0.1:{port}/-/ready")),
        "{said}"
    );
    assert!(said.contains("503"), "{said}");
    let healthy = format!("https://127.0.0.1:{port}/-/healthy");
    watch_exits(0, &["probe", "--url", &healthy], &env);
    // --web.config.file on the command line works as well as the variable.
    watch_exits(
        0,
        &["probe", "--url", &healthy, "--web.config.file", &web],
        &env[2..],
    );
    // A CA that did not sign the server's certificate is refused.
    watch_exits(
        1,
        &[
            "probe",
            "--url",
            &healthy,
            "--ca-file",
            &pki.path("other-ca.crt"),
        ],
        &env,
    );
}

#[test]
fn a_bad_web_config_stops_start_up_naming_the_key() {
    let pki = Pki::new("web-bad");
    for (content, key) in [
        (
            "tls_server_config:\n  certfile: server.crt\n",
            "tls_server_config.certfile",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Sometimes\n",
            "tls_server_config.client_auth_type",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: missing.key\n",
            "tls_server_config.key_file",
        ),
        (
            "http_server_config:\n  headers:\n    Server: evil\n",
            "http_server_config.headers.Server",
        ),
        (
            "basic_auth_users:\n  alice: plaintext\n",
            "basic_auth_users.alice",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n",
            "tls_server_config.key_file",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n",
            "tls_server_config.client_auth_type",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n",
            "tls_server_config.client_ca_file",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
            "tls_server_config.cipher_suites",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  curve_preferences: [CurveP521]\n",
            "tls_server_config.curve_preferences",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n  max_version: TLS12\n",
            "tls_server_config.min_version",
        ),
    ] {
        let web = pki.web_config(content);
        let out = watch_exits(
            2,
            &["check-config", "--web.config.file", &web],
            &[("RABBITMQ_WATCH__RABBITMQ__URL", "http://127.0.0.1:1")],
        );
        assert!(out.contains(key), "{key}: {out}");
        assert!(!out.contains("plaintext"), "{out}");
        // The sidecar itself refuses to start.
        let out = run_watch(
            &["--web.config.file", &web],
            &[
                ("RABBITMQ_WATCH__RABBITMQ__URL", "http://127.0.0.1:1"),
                ("RABBITMQ_WATCH__LISTEN", "127.0.0.1:0"),
            ],
        );
        assert_ne!(out.status.code(), Some(0), "{}", output_text(&out));
        assert!(
            output_text(&out).contains(key),
            "{key}: {}",
            output_text(&out)
        );
    }
}

/// A client that opens a connection and sends half a request is cut off after the
/// header-read timeout (10 s), not held forever.
#[test]
fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use std::io::{Read as _, Write as _};
    let pki = Pki::new("web-slow");
    let web = pki.web_config("");
    let (sidecar, port) = sidecar(&web, false);
    let mut stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(20),
        "closed after {waited:?}"
    );
    // The server still serves others.
    eventually(WAIT, "healthy", || {
        (sidecar.get("/-/healthy").0 == 200).then_some(())
    });
}

/// At most `web::MAX_CONNECTIONS` connections are served at once: one more waits (in the
/// kernel's accept queue) until another closes.
#[test]
fn connections_beyond_the_limit_wait_until_others_close() {
    let pki = Pki::new("web-limit");
    let web = pki.web_config("");
    let (sidecar, port) = sidecar(&web, false);
    let addr = format!("127.0.0.1:{port}");
    let idle: Vec<std::net::TcpStream> = (0..rabbitmq_watch::web::MAX_CONNECTIONS)
        .map(|_| std::net::TcpStream::connect(&addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let url = format!("{}/-/healthy", sidecar.base);
    let waiting = curl(&["-m", "2", &url]);
    assert_eq!(waiting.exit, 28, "a timeout expected: {waiting:?}");
    drop(idle);
    let served = curl(&[&url]);
    assert_eq!(served.status, 200, "{served:?}");
}

/// A renewed certificate (files replaced, as cert-manager or certbot do) is served without a
/// restart.
#[test]
fn a_renewed_certificate_is_served_without_a_restart() {
    let pki = Pki::new("web-renew");
    let web =
        pki.web_config("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
    let (_sidecar, port) = sidecar(&web, false);
    let url = format!("https://127.0.0.1:{port}/-/healthy");
    let old = curl(&["--cacert", &pki.path("ca.crt"), &url]);
    assert_eq!(old.status, 200, "{old:?}");
    pki.leaf("renewed", "other-ca", "server.ext");
    std::fs::copy(pki.dir.join("renewed.key"), pki.dir.join("server.key")).unwrap();
    std::fs::copy(pki.dir.join("renewed.crt"), pki.dir.join("server.crt")).unwrap();
    eventually(WAIT, "the renewed certificate served", || {
        (curl(&["--cacert", &pki.path("other-ca.crt"), &url]).status == 200).then_some(())
    });
    let stale = curl(&["--cacert", &pki.path("ca.crt"), &url]);
    assert_eq!(stale.exit, 60, "{stale:?}");
}

/// The other client auth types, with Go's meanings: RequestClientCert asks and takes anything
/// (or nothing), RequireAnyClientCert takes any certificate but not none,
/// VerifyClientCertIfGiven takes none or a verified one. TLS 1.2 with the configured suite and
/// curve works too.
#[test]
fn client_auth_types_and_tls12_settings_behave_as_in_go() {
    let pki = Pki::new("web-auth-types");
    for (auth, none_ok, stranger_ok) in [
        ("RequestClientCert", true, true),
        ("RequireAnyClientCert", false, true),
        ("VerifyClientCertIfGiven", true, false),
    ] {
        let ca_line = if auth == "VerifyClientCertIfGiven" {
            "  client_ca_file: ca.crt\n"
        } else {
            ""
        };
        let web = pki.web_config(&format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: {auth}\n{ca_line}  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n  curve_preferences: [CurveP256]\n"
        ));
        let (_sidecar, port) = sidecar(&web, false);
        let url = format!("https://127.0.0.1:{port}/-/healthy");
        let none = pki.curl_tls(&url, None, &[]);
        assert_eq!(
            none.status == 200,
            none_ok,
            "{auth}, no certificate: {none:?}"
        );
        let theirs = pki.curl_tls(&url, Some("stranger"), &[]);
        assert_eq!(
            theirs.status == 200,
            stranger_ok,
            "{auth}, other CA: {theirs:?}"
        );
        let ours = pki.curl_tls(&url, Some("client"), &[]);
        assert_eq!(ours.status, 200, "{auth}, our CA: {ours:?}");
        // max_version TLS12: a client that insists on TLS 1.3 is refused.
        let refused = pki.curl_tls(&url, Some("client"), &["--tlsv1.3"]);
        assert_eq!(refused.status, 0, "{auth}, TLS 1.3 only: {refused:?}");
    }
}
