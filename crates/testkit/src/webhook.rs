//! The token-review webhook of a local cluster: what aws-iam-authenticator
//! is to an EKS API server.
//!
//! Every kube-apiserver of a fleet runs with
//! `--authentication-token-webhook-config-file` pointing at its own webhook
//! (`tidegate-testkit token-webhook`, one process per cluster, HTTPS on
//! 127.0.0.1 with a certificate of the cluster's CA). The API server POSTs
//! each bearer token that its other authenticators (client certificates, the
//! static token file, service-account tokens) do not know to
//! `/authenticate` as an `authentication.k8s.io/v1` TokenReview; the webhook
//! checks it with [`EksTokenVerifier`] and answers `authenticated: true` with
//! the test user ([`TEST_AWS_USER_ARN`], group `system:masters`), or
//! `authenticated: false` with the reason in `error` (the API server then
//! answers 401).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use serde_json::json;

use crate::eks_auth::{EksTokenVerifier, TEST_AWS_USER_ARN};
use crate::http::{Request, Response, accept_loop, serve_connection, tls_config};
use crate::{Error, Result};

/// The API group and version of the TokenReviews the webhook answers.
const API_VERSION: &str = "authentication.k8s.io/v1";
/// The path the API servers post TokenReviews to.
pub const TOKEN_WEBHOOK_PATH: &str = "/authenticate";
/// The groups of the test user.
const GROUPS: [&str; 1] = ["system:masters"];

/// Options of [`run_token_webhook`].
#[derive(Debug, Clone)]
pub struct TokenWebhookOptions {
    /// Address to listen on (127.0.0.1:port).
    pub listen: SocketAddr,
    /// Serving certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The cluster id (`x-k8s-aws-id`) tokens must be signed for.
    pub cluster_id: String,
}

/// Answers one TokenReview request body at time `now`.
pub fn token_review(body: &[u8], verifier: &EksTokenVerifier, now: SystemTime) -> Response {
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Response::text(400, "the body is not JSON\n");
    };
    if request["apiVersion"] != API_VERSION || request["kind"] != "TokenReview" {
        return Response::text(
            400,
            format!(
                "expected a TokenReview of {API_VERSION}, got kind {} of {}\n",
                request["kind"], request["apiVersion"]
            ),
        );
    }
    let token = request["spec"]["token"].as_str().unwrap_or_default();
    let status = match verifier.verify(token, now) {
        Ok(identity) => {
            tracing::info!(
                cluster_id = verifier.cluster_id(),
                user = %identity.arn,
                access_key_id = %identity.access_key_id,
                "token accepted"
            );
            json!({
                "authenticated": true,
                "user": {
                    "username": identity.arn,
                    "uid": format!("aws-iam-authenticator:{}:{}", identity.account, identity.user_id),
                    "groups": GROUPS,
                    "extra": {
                        "accessKeyId": [identity.access_key_id],
                        "arn": [identity.arn],
                        "canonicalArn": [TEST_AWS_USER_ARN],
                    },
                },
            })
        }
        Err(reason) => {
            tracing::warn!(cluster_id = verifier.cluster_id(), %reason, "token rejected");
            json!({ "authenticated": false, "error": reason })
        }
    };
    Response::json(
        200,
        json!({ "apiVersion": API_VERSION, "kind": "TokenReview", "status": status }).to_string(),
    )
}

fn handle(request: &Request, verifier: &EksTokenVerifier) -> Response {
    match (request.method.as_str(), request.path()) {
        ("POST", TOKEN_WEBHOOK_PATH) => token_review(&request.body, verifier, SystemTime::now()),
        (_, TOKEN_WEBHOOK_PATH) => Response::text(405, "POST a TokenReview\n"),
        ("GET", "/healthz") => Response::text(200, "ok\n"),
        _ => Response::text(404, "not found\n"),
    }
}

/// Serves the webhook until the process is killed (`tidegate-testkit
/// token-webhook`). Fails only when it cannot start.
pub fn run_token_webhook(options: &TokenWebhookOptions) -> Result<()> {
    let config = tls_config(&options.cert, &options.key)?;
    let listener = TcpListener::bind(options.listen)
        .map_err(Error::io(format!("listening on {}", options.listen)))?;
    let verifier = EksTokenVerifier::new(&options.cluster_id);
    tracing::info!(
        listen = %options.listen,
        cluster_id = %options.cluster_id,
        "token webhook serving https://{}{TOKEN_WEBHOOK_PATH}",
        options.listen
    );
    let serve = Arc::new(move |tcp: TcpStream| {
        let connection = match rustls::ServerConnection::new(config.clone()) {
            Ok(c) => c,
            Err(e) => return tracing::warn!(error = %e, "TLS connection"),
        };
        let tls = rustls::StreamOwned::new(connection, tcp);
        let handler = |r: &Request| handle(r, &verifier);
        if let Err(e) = serve_connection(tls, &handler) {
            tracing::debug!(error = %e, "connection ended");
        }
    });
    accept_loop(&listener, &AtomicBool::new(false), serve);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(token: &str) -> Vec<u8> {
        json!({"apiVersion": API_VERSION, "kind": "TokenReview", "spec": {"token": token, "audiences": ["https://kubernetes.default.svc.cluster.local"]}})
            .to_string()
            .into_bytes()
    }

    fn status(response: &Response) -> serde_json::Value {
        assert_eq!(response.status, 200);
        let review: serde_json::Value = serde_json::from_slice(&response.body).expect("test step");
        assert_eq!(review["apiVersion"], API_VERSION);
        assert_eq!(review["kind"], "TokenReview");
        review["status"].clone()
    }

    #[test]
    fn valid_tokens_authenticate_the_test_user_as_a_cluster_admin() {
        use crate::eks_auth::tests::{GOLDEN_CLUSTER, GOLDEN_TOKEN, at};
        let verifier = EksTokenVerifier::new(GOLDEN_CLUSTER);
        let answer = status(&token_review(&body(GOLDEN_TOKEN), &verifier, at(0)));
        assert_eq!(answer["authenticated"], true, "{answer}");
        assert_eq!(answer["user"]["username"], TEST_AWS_USER_ARN);
        assert_eq!(answer["user"]["groups"], json!(["system:masters"]));
        assert_eq!(
            answer["user"]["uid"],
            "aws-iam-authenticator:000000000000:AIDATIDEGATEE2EUSER01"
        );
        assert_eq!(answer.get("error"), None);
        // An hour later the same token is refused, with the reason.
        let answer = status(&token_review(&body(GOLDEN_TOKEN), &verifier, at(3600)));
        assert_eq!(answer["authenticated"], false, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| e.contains("expired"))
        );
    }

    #[test]
    fn rejections_say_why() {
        let verifier = EksTokenVerifier::new("eks-us-east-1");
        let answer = status(&token_review(
            &body("not-a-token"),
            &verifier,
            SystemTime::now(),
        ));
        assert_eq!(answer["authenticated"], false);
        let error = answer["error"].as_str().expect("test step");
        assert!(error.contains("k8s-aws-v1."), "{error}");
    }

    #[test]
    fn other_requests_are_refused() {
        let verifier = EksTokenVerifier::new("eks-us-east-1");
        assert_eq!(token_review(b"{", &verifier, SystemTime::now()).status, 400);
        let wrong_kind =
            json!({"apiVersion": "authentication.k8s.io/v1beta1", "kind": "TokenReview"});
        let answer = token_review(
            wrong_kind.to_string().as_bytes(),
            &verifier,
            SystemTime::now(),
        );
        assert_eq!(answer.status, 400);
        let get = Request {
            method: "GET".into(),
            target: TOKEN_WEBHOOK_PATH.into(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        assert_eq!(handle(&get, &verifier).status, 405);
    }
}
