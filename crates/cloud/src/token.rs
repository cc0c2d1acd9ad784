//! Bearer tokens, their sources, and a cache that refreshes before expiry.

use crate::CloudError;
use futures::future::BoxFuture;
use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};
use tokio::sync::Mutex;

/// A bearer token and when it stops being valid. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    secret: String,
    obtained_at: SystemTime,
    expires_at: SystemTime,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("secret", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Token {
    /// A token obtained at `obtained_at`, valid until `expires_at`.
    pub fn new(secret: String, obtained_at: SystemTime, expires_at: SystemTime) -> Token {
        Token {
            secret,
            obtained_at,
            expires_at,
        }
    }

    /// The token itself: put it in an `Authorization` header, never in a log.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// When the token expires.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// True when the token should be replaced at `now`: less than a quarter
    /// of its lifetime (at most one minute) is left.
    pub fn needs_refresh(&self, now: SystemTime) -> bool {
        let lifetime = self
            .expires_at
            .duration_since(self.obtained_at)
            .unwrap_or_default();
        let margin = (lifetime / 4).min(Duration::from_secs(60));
        match self.expires_at.duration_since(now) {
            Ok(left) => left <= margin,
            Err(_) => true,
        }
    }
}

/// Where bearer tokens come from (one per cloud credential and cluster).
pub trait TokenSource: Send + Sync + 'static {
    /// A fresh token.
    fn token(&self) -> BoxFuture<'_, Result<Token, CloudError>>;
}

/// A [`TokenSource`] with a cache: one fetch at a time, reused until it
/// needs refreshing, dropped when the API server rejects it.
#[derive(Clone)]
pub struct CachedToken {
    source: Arc<dyn TokenSource>,
    current: Arc<Mutex<Option<Token>>>,
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CachedToken([redacted])")
    }
}

impl CachedToken {
    /// Caches the tokens of `source`.
    pub fn new(source: Arc<dyn TokenSource>) -> CachedToken {
        CachedToken {
            source,
            current: Arc::new(Mutex::new(None)),
        }
    }

    /// The cached token, or a new one when it is missing or about to expire.
    pub async fn get(&self) -> Result<Token, CloudError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref()
            && !token.needs_refresh(SystemTime::now())
        {
            return Ok(token.clone());
        }
        let token = self.source.token().await?;
        tracing::debug!(expires_at = ?token.expires_at(), "obtained a bearer token");
        *current = Some(token.clone());
        Ok(token)
    }

    /// Forgets `rejected` (if still cached) so the next [`get`](Self::get) fetches a new token.
    pub async fn invalidate(&self, rejected: &Token) {
        let mut current = self.current.lock().await;
        if current.as_ref() == Some(rejected) {
            *current = None;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test panics
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting(AtomicU32, Duration);

    impl TokenSource for Counting {
        fn token(&self) -> BoxFuture<'_, Result<Token, CloudError>> {
            Box::pin(async move {
                let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
                let now = SystemTime::now();
                Ok(Token::new(format!("t{n}"), now, now + self.1))
            })
        }
    }

    #[tokio::test]
    async fn cached_until_close_to_expiry_then_refreshed() {
        let source = Arc::new(Counting(AtomicU32::new(0), Duration::from_millis(400)));
        let cache = CachedToken::new(source.clone());
        assert_eq!(cache.get().await.unwrap().secret(), "t1");
        assert_eq!(cache.get().await.unwrap().secret(), "t1");
        tokio::time::sleep(Duration::from_millis(320)).await;
        assert_eq!(cache.get().await.unwrap().secret(), "t2");
    }

    #[tokio::test]
    async fn invalidated_tokens_are_fetched_again() {
        let cache = CachedToken::new(Arc::new(Counting(
            AtomicU32::new(0),
            Duration::from_secs(900),
        )));
        let first = cache.get().await.unwrap();
        cache.invalidate(&first).await;
        assert_eq!(cache.get().await.unwrap().secret(), "t2");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let now = SystemTime::now();
        let token = Token::new("s3cr3t".into(), now, now);
        assert!(!format!("{token:?}").contains("s3cr3t"));
    }
}
