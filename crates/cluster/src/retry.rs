//! Retrying transient API failures with exponential backoff.

use crate::is_retryable;
use std::{future::Future, time::Duration};

/// Runs `call` up to 5 times while it fails with a retryable error
/// (429, 5xx, timeouts), waiting 200 ms, 400 ms, ... up to 5 s between tries.
pub async fn with_retries<T, F, Fut>(what: &str, mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if attempt < 5 && is_retryable(&e) => {
                tracing::warn!(%what, attempt, error = %e, "retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            other => return other,
        }
    }
}
