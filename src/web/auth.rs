//! The gate in front of every route: the web config's extra response headers, then HTTP basic
//! authentication against `basic_auth_users` (bcrypt), as exporter-toolkit does it. With users
//! configured every path needs credentials, `/-/healthy` and `/-/ready` included (probes pass
//! them: `rabbitmq-watch probe` reads them from the environment or a file).
//!
//! bcrypt is slow on purpose (~50-250 ms at cost 10), so verifications run off the async
//! workers, one at a time (a flood of bad passwords cannot take both cores), and their
//! outcome is cached for [`CACHE_TTL`] under a SHA-256 of user, hash and password (the
//! password itself is never kept).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// How long a verified (user, password) stays verified without running bcrypt again.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// The most cached verifications; when full, expired ones are dropped, then all.
pub const CACHE_MAX: usize = 100;

/// What the gate checks and adds.
pub struct Gate {
    /// User name → bcrypt hash; empty: no authentication.
    users: BTreeMap<String, String>,
    /// A bcrypt hash checked for unknown users, so that timing does not tell which users exist.
    decoy: String,
    /// Response headers from `http_server_config.headers`.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// SHA-256(user, hash, password) → (outcome, when verified).
    cache: Mutex<HashMap<[u8; 32], (bool, Instant)>>,
    /// One bcrypt verification at a time.
    bcrypt: tokio::sync::Mutex<()>,
}

impl Gate {
    /// A gate for `users` (validated bcrypt hashes) adding `headers`.
    pub fn new(users: BTreeMap<String, String>, headers: Vec<(HeaderName, HeaderValue)>) -> Gate {
        // The decoy costs what the real hashes cost; built once at start-up.
        let cost = users
            .values()
            .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map(|p| p.get_cost())
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        let decoy = if users.is_empty() {
            String::new()
        } else {
            bcrypt::hash("not a password of anyone", cost).unwrap_or_default()
        };
        Gate {
            users,
            decoy,
            headers,
            cache: Mutex::new(HashMap::new()),
            bcrypt: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether `authorization` (the header's value) names a configured user and their password.
    async fn authenticated(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let (known, hash) = match self.users.get(&user) {
            Some(h) => (true, h.clone()),
            None => (false, self.decoy.clone()),
        };
        let key: [u8; 32] = {
            let mut d = Sha256::new();
            for part in [user.as_bytes(), hash.as_bytes(), password.as_bytes()] {
                d.update((part.len() as u64).to_be_bytes());
                d.update(part);
            }
            d.finalize().into()
        };
        let now = Instant::now();
        if let Some(&(ok, at)) = self.lock_cache().get(&key)
            && now.duration_since(at) < CACHE_TTL
        {
            return ok && known;
        }
        let ok = {
            let _one_at_a_time = self.bcrypt.lock().await;
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
        };
        let mut cache = self.lock_cache();
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (_, at)| now.duration_since(*at) < CACHE_TTL);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, (ok, now));
        ok && known
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (bool, Instant)>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `Basic base64(user:password)` → (user, password).
fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    use base64::Engine as _;
    let text = value.to_str().ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The middleware: headers on every response; 401 with `WWW-Authenticate: Basic` without
/// valid credentials when users are configured.
pub async fn gate(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let mut response = if gate.users.is_empty()
        || gate
            .authenticated(request.headers().get(header::AUTHORIZATION))
            .await
    {
        next.run(request).await
    } else {
        tracing::debug!(path = %request.uri().path(), "unauthenticated request refused");
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"rabbitmq-watch\", charset=\"UTF-8\"",
            )],
            "Unauthorized\n",
        )
            .into_response()
    };
    for (name, value) in &gate.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderValue {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {token}")).unwrap()
    }

    #[tokio::test]
    async fn verifies_and_caches_without_leaking_users() {
        let hash = bcrypt::hash("s3cret:with colon", 4).unwrap();
        let gate = Gate::new(BTreeMap::from([("alice".to_owned(), hash)]), vec![]);
        assert!(
            gate.authenticated(Some(&basic("alice", "s3cret:with colon")))
                .await
        );
        assert_eq!(gate.lock_cache().len(), 1);
        assert!(
            gate.authenticated(Some(&basic("alice", "s3cret:with colon")))
                .await
        );
        assert_eq!(gate.lock_cache().len(), 1, "served from the cache");
        assert!(!gate.authenticated(Some(&basic("alice", "wrong"))).await);
        assert!(
            !gate
                .authenticated(Some(&basic("bob", "s3cret:with colon")))
                .await
        );
        assert!(!gate.authenticated(None).await);
        assert!(
            !gate
                .authenticated(Some(&HeaderValue::from_static("Bearer x")))
                .await
        );
    }
}
