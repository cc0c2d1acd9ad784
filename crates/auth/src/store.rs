//! Where token records live: one Secret in the management cluster.
//!
//! `<namespace>/tidegate-api-tokens` (namespace `tidegate-system` unless
//! chosen otherwise, as for the controller's Lease and journals) holds one
//! data key per token id, its value the JSON [`TokenRecord`]: digests,
//! never a token. Every controller replica and every CLI that can reach the
//! management cluster sees the same tokens, and Kubernetes RBAC on this one
//! Secret decides who may mint or revoke them (`update`/`create`) and who
//! may check them (`get`, for the controller), with `resourceNames` limiting
//! both to this Secret. Writes are read-modify-write with the
//! `resourceVersion` as precondition, so concurrent CLIs never lose each
//! other's tokens.
//!
//! A Secret rather than a ConfigMap: the digests are not secrets, but names,
//! roles and who created what are; clusters grant `get secrets` far more
//! sparingly than `get configmaps`, and encryption at rest covers Secrets.

use crate::authorize::Principal;
use crate::error::{AuthError, StoreError};
use crate::record::{TokenRecord, TokenSet, check_name};
use crate::roles::Roles;
use crate::token::{self, TokenId, TokenValue};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The namespace of the token Secret unless another is chosen.
pub const DEFAULT_NAMESPACE: &str = "tidegate-system";
/// The token Secret's name.
pub const SECRET_NAME: &str = "tidegate-api-tokens";
/// The token Secret's `type`.
pub const SECRET_TYPE: &str = "tidegate.dev/api-token-hashes";
const MANAGER: &str = "tidegate";
const CONFLICT_RETRIES: usize = 8;

/// What `tidegate token create` asks for.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The identity's subject (see [`TokenRecord::name`]).
    pub name: String,
    /// Roles per environment (at least one).
    pub roles: Roles,
    /// Lifetime in seconds (`None`: never expires).
    pub lifetime: Option<i64>,
    /// Who creates it (`user@host`).
    pub created_by: String,
}

/// The token records in the management cluster.
#[derive(Clone)]
pub struct TokenStore {
    api: Api<DynamicObject>,
    namespace: String,
    name: String,
}

impl TokenStore {
    /// The store `<namespace>/tidegate-api-tokens` reached with `client`.
    pub fn new(client: Client, namespace: &str) -> Self {
        let resource = ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Secret".into(),
            plural: "secrets".into(),
        };
        TokenStore {
            api: Api::namespaced_with(client, namespace, &resource),
            namespace: namespace.to_string(),
            name: SECRET_NAME.to_string(),
        }
    }

    /// The namespace of the Secret.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Secret's name.
    pub fn secret_name(&self) -> &str {
        &self.name
    }

    /// Every token record (none when the Secret does not exist yet).
    pub async fn load(&self) -> Result<TokenSet, StoreError> {
        let object = self.read().await?;
        let records = match &object {
            Some(object) => records_of(object)?,
            None => BTreeMap::new(),
        };
        Ok(TokenSet::new(records.into_values()))
    }

    /// The identity and roles a presented token proves at `now` (Unix
    /// seconds), with one read of the Secret.
    pub async fn authenticate(&self, presented: &str, now: i64) -> Result<Principal, AuthError> {
        Ok(self.load().await?.authenticate(presented, now)?)
    }

    /// Creates a token: stores its record (digest only) and returns it with
    /// the token, which exists nowhere else.
    pub async fn create(
        &self,
        new: NewToken,
        now: i64,
    ) -> Result<(TokenRecord, TokenValue), StoreError> {
        check_name(&new.name)?;
        if new.roles.is_empty() {
            return Err(StoreError::Invalid(
                "a token needs at least one role: --role ENV=ROLE (e.g. prod=deployer, *=viewer)"
                    .into(),
            ));
        }
        let expires_at = match new.lifetime {
            Some(seconds) => Some(
                now.checked_add(seconds)
                    .ok_or_else(|| StoreError::Invalid("the expiry is out of range".into()))?,
            ),
            None => None,
        };
        self.modify(|records| {
            let (value, hash) = token::generate()?;
            if records.contains_key(value.id().as_str()) {
                // 64 random bits twice: retried with new bytes.
                return Err(StoreError::Contended(value.id().to_string()));
            }
            let record = TokenRecord {
                id: value.id().clone(),
                name: new.name.clone(),
                roles: new.roles.clone(),
                hash,
                created_at: now,
                created_by: new.created_by.clone(),
                expires_at,
                revoked_at: None,
                revoked_by: None,
            };
            tracing::debug!(
                id = %record.id,
                name = %record.name,
                roles = %record.roles,
                expires_at = ?record.expires_at,
                "storing the digest of a new API token"
            );
            records.insert(record.id.to_string(), record.clone());
            Ok((record, value))
        })
        .await
    }

    /// Revokes token `id` at `now`: it never authenticates again. The
    /// record is kept (who had it, who revoked it, when).
    pub async fn revoke(
        &self,
        id: &TokenId,
        by: &str,
        now: i64,
    ) -> Result<TokenRecord, StoreError> {
        self.modify(|records| {
            let record = records
                .get_mut(id.as_str())
                .ok_or_else(|| StoreError::NotFound(id.clone()))?;
            if record.revoked_at.is_some() {
                return Err(StoreError::AlreadyRevoked(id.clone()));
            }
            record.revoked_at = Some(now);
            record.revoked_by = Some(by.to_string());
            tracing::debug!(id = %id, name = %record.name, by, "revoking an API token");
            Ok(record.clone())
        })
        .await
    }

    async fn read(&self) -> Result<Option<DynamicObject>, StoreError> {
        tracing::debug!(namespace = %self.namespace, secret = %self.name, "reading the API token records");
        self.api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.kube_error("reading the API tokens", e))
    }

    /// Read, change, write with the `resourceVersion` as precondition;
    /// retried on conflicts (and on the rare id collision of `create`).
    async fn modify<R>(
        &self,
        mut change: impl FnMut(&mut BTreeMap<String, TokenRecord>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        for _ in 0..CONFLICT_RETRIES {
            let existing = self.read().await?;
            let mut records = match &existing {
                Some(object) => records_of(object)?,
                None => BTreeMap::new(),
            };
            let result = match change(&mut records) {
                Err(StoreError::Contended(_)) => continue,
                other => other?,
            };
            let object = self.object(&records, existing.as_ref())?;
            let params = PostParams {
                field_manager: Some(MANAGER.into()),
                ..PostParams::default()
            };
            let written = match &existing {
                None => self.api.create(&params, &object).await,
                Some(_) => self.api.replace(&self.name, &params, &object).await,
            };
            match written {
                Ok(_) => return Ok(result),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(kube::Error::Api(s)) if s.code == 404 && existing.is_none() => {
                    return Err(StoreError::NoNamespace(self.namespace.clone()));
                }
                Err(e) => return Err(self.kube_error("writing the API tokens", e)),
            }
        }
        Err(StoreError::Contended(format!(
            "{}/{}",
            self.namespace, self.name
        )))
    }

    fn object(
        &self,
        records: &BTreeMap<String, TokenRecord>,
        existing: Option<&DynamicObject>,
    ) -> Result<DynamicObject, StoreError> {
        let mut data = Map::new();
        for (id, record) in records {
            let json = serde_json::to_vec(record).map_err(|e| StoreError::Corrupt {
                key: id.clone(),
                detail: e.to_string(),
            })?;
            data.insert(id.clone(), Value::String(STANDARD.encode(json)));
        }
        let mut metadata = json!({
            "name": self.name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/managed-by": "tidegate"},
            "annotations": {
                "tidegate.dev/contents": "SHA-256 digests of Tidegate API tokens, never the tokens (see docs/auth.md)"
            },
        });
        if let Some(version) = existing.and_then(|o| o.metadata.resource_version.as_ref()) {
            metadata["resourceVersion"] = json!(version);
        }
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "type": SECRET_TYPE,
            "metadata": metadata,
            "data": data,
        }))
        .map_err(|e| StoreError::Corrupt {
            key: self.name.clone(),
            detail: e.to_string(),
        })
    }

    fn kube_error(&self, what: &str, source: kube::Error) -> StoreError {
        StoreError::Kube {
            what: what.to_string(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }
}

/// The records of a token Secret, by data key (the token id).
fn records_of(object: &DynamicObject) -> Result<BTreeMap<String, TokenRecord>, StoreError> {
    let mut records = BTreeMap::new();
    let Some(data) = object.data.get("data").and_then(Value::as_object) else {
        return Ok(records);
    };
    for (key, value) in data {
        let corrupt = |detail: String| StoreError::Corrupt {
            key: key.clone(),
            detail,
        };
        let encoded = value
            .as_str()
            .ok_or_else(|| corrupt("not a base64 string".into()))?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|e| corrupt(format!("not base64: {e}")))?;
        let record: TokenRecord = serde_json::from_slice(&bytes)
            .map_err(|e| corrupt(format!("not a token record: {e}")))?;
        if record.id.as_str() != key {
            return Err(corrupt(format!(
                "it holds the record of token {}",
                record.id
            )));
        }
        records.insert(key.clone(), record);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_with(data: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": SECRET_NAME, "namespace": "ns"},
            "data": data,
        }))
        .expect("object")
    }

    fn record() -> TokenRecord {
        let (value, hash) = token::generate().expect("token");
        TokenRecord {
            id: value.id().clone(),
            name: "alice".into(),
            roles: Roles::parse(["*=viewer"]).expect("roles"),
            hash,
            created_at: 1,
            created_by: "root@host".into(),
            expires_at: None,
            revoked_at: None,
            revoked_by: None,
        }
    }

    #[test]
    fn records_are_read_by_id_from_base64_json() {
        let r = record();
        let encoded = STANDARD.encode(serde_json::to_vec(&r).expect("json"));
        let object = secret_with(json!({ r.id.as_str(): encoded }));
        let records = records_of(&object).expect("records");
        assert_eq!(records.get(r.id.as_str()), Some(&r));
        assert!(
            records_of(&secret_with(json!(null)))
                .expect("none")
                .is_empty()
        );
    }

    #[test]
    fn a_record_under_another_id_or_unreadable_is_an_error_naming_the_key() {
        let r = record();
        let encoded = STANDARD.encode(serde_json::to_vec(&r).expect("json"));
        let moved = secret_with(json!({ "0000000000000000": encoded }));
        let err = records_of(&moved).expect_err("moved").to_string();
        assert!(
            err.contains("0000000000000000") && err.contains("holds the record of token"),
            "{err}"
        );
        let garbage = secret_with(json!({ "k": "!!" }));
        assert!(
            records_of(&garbage)
                .expect_err("garbage")
                .to_string()
                .contains("not base64")
        );
    }
}
