//! A tower layer for the kube client: `Authorization: Bearer` from a
//! [`CachedToken`], one retry with a fresh token after a 401.

use crate::CachedToken;
use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response, StatusCode, header::AUTHORIZATION};
use kube::client::Body;
use std::{
    sync::Arc,
    task::{Context, Poll},
};
use tokio::sync::Mutex;
use tower::{BoxError, Layer, Service, ServiceExt as _};

/// Adds bearer tokens to every request (see the module docs).
#[derive(Debug, Clone)]
pub struct BearerLayer {
    token: CachedToken,
}

impl BearerLayer {
    /// Tokens come from `token`.
    pub fn new(token: CachedToken) -> BearerLayer {
        BearerLayer { token }
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> BearerService<S> {
        BearerService {
            inner: Arc::new(Mutex::new(inner)),
            token: self.token.clone(),
        }
    }
}

/// The service of [`BearerLayer`].
pub struct BearerService<S> {
    inner: Arc<Mutex<S>>,
    token: CachedToken,
}

impl<S> Clone for BearerService<S> {
    fn clone(&self) -> Self {
        BearerService {
            inner: self.inner.clone(),
            token: self.token.clone(),
        }
    }
}

// === impl BearerService ===

impl<S, B> Service<Request<Body>> for BearerService<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<B>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness of the inner service is awaited in `call`, under its lock.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let cache = self.token.clone();
        Box::pin(async move {
            let again = request
                .body()
                .try_clone()
                .map(|body| (clone_head(&request), body));
            let token = cache.get().await?;
            let response = send(&inner, authorize(request, token.secret())?).await?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            let Some((head, body)) = again else {
                return Ok(response);
            };
            tracing::debug!("the API server answered 401: refreshing the token and retrying once");
            cache.invalidate(&token).await;
            let token = cache.get().await?;
            let retry = Request::from_parts(head, body);
            send(&inner, authorize(retry, token.secret())?).await
        })
    }
}

fn clone_head(request: &Request<Body>) -> http::request::Parts {
    let mut head = Request::new(()).into_parts().0;
    head.method = request.method().clone();
    head.uri = request.uri().clone();
    head.version = request.version();
    head.headers = request.headers().clone();
    head.extensions = request.extensions().clone();
    head
}

fn authorize(mut request: Request<Body>, token: &str) -> Result<Request<Body>, BoxError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "the bearer token has characters not allowed in a header")?;
    value.set_sensitive(true);
    request.headers_mut().insert(AUTHORIZATION, value);
    Ok(request)
}

async fn send<S, B>(inner: &Mutex<S>, request: Request<Body>) -> Result<Response<B>, BoxError>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
{
    let future = {
        let mut service = inner.lock().await;
        service.ready().await.map_err(Into::into)?;
        service.call(request)
    };
    future.await.map_err(Into::into)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test panics
mod tests {
    use super::*;
    use crate::{CloudError, Token, TokenSource};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, SystemTime};

    struct Numbered(AtomicU32);

    impl TokenSource for Numbered {
        fn token(&self) -> BoxFuture<'_, Result<Token, CloudError>> {
            Box::pin(async move {
                let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
                let now = SystemTime::now();
                Ok(Token::new(
                    format!("tok{n}"),
                    now,
                    now + Duration::from_secs(900),
                ))
            })
        }
    }

    /// Accepts only `tok2`; records the Authorization headers it saw.
    fn server(
        seen: Arc<std::sync::Mutex<Vec<String>>>,
    ) -> impl Service<
        Request<Body>,
        Response = Response<String>,
        Error = BoxError,
        Future = BoxFuture<'static, Result<Response<String>, BoxError>>,
    > + Send {
        tower::service_fn(move |request: Request<Body>| {
            let seen = seen.clone();
            Box::pin(async move {
                let auth = request
                    .headers()
                    .get(AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                seen.lock().unwrap().push(auth.clone());
                let status = if auth == "Bearer tok2" { 200 } else { 401 };
                Ok(Response::builder()
                    .status(status)
                    .body(String::new())
                    .unwrap())
            }) as BoxFuture<'static, _>
        })
    }

    #[tokio::test]
    async fn a_401_refreshes_the_token_once_and_retries() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let cache = CachedToken::new(Arc::new(Numbered(AtomicU32::new(0))));
        let mut service = BearerLayer::new(cache).layer(server(seen.clone()));
        let request = Request::get("/api")
            .body(Body::from(b"x".to_vec()))
            .unwrap();
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(*seen.lock().unwrap(), ["Bearer tok1", "Bearer tok2"]);
        // The refreshed token is reused.
        let request = Request::get("/api").body(Body::empty()).unwrap();
        service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(seen.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_second_401_is_returned_not_retried_forever() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let cache = CachedToken::new(Arc::new(Numbered(AtomicU32::new(5))));
        let mut service = BearerLayer::new(cache).layer(server(seen.clone()));
        let request = Request::get("/api").body(Body::empty()).unwrap();
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(seen.lock().unwrap().len(), 2);
    }
}
