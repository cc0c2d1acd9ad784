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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("boom", "Test").with_code(code),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn retries_throttling_and_server_errors_then_succeeds() {
        let calls = AtomicU32::new(0);
        let result = with_retries("test", || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Err(api_error(429)),
                    1 => Err(api_error(503)),
                    _ => Ok(n),
                }
            }
        })
        .await;
        assert_eq!(result.ok(), Some(2));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn never_retries_validation_errors_or_conflicts() {
        for code in [400, 403, 404, 409, 422] {
            let calls = AtomicU32::new(0);
            let result: Result<(), _> = with_retries("test", || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(api_error(code)) }
            })
            .await;
            assert!(result.is_err());
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{code} is not retried");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_five_tries() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retries("test", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(api_error(500)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }
}
