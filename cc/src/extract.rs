//! Request extractors that answer in the API's error shape: JSON bodies (any
//! content type; 400 for malformed JSON or wrong types naming the field, 413 when
//! too large) and bearer credentials per role.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use testamur_common::config::{ApiKey, CourseScope, Role};
use testamur_common::ids::WsId;

use crate::app::{AppState, PeerAddr};
use crate::error::ApiError;
use crate::ratelimit;

/// A JSON body parsed into `T`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is larger than this endpoint accepts (cc.conf max_body_bytes, max_batch_body_bytes for batches); split it",
                )
            } else if crate::limits::is_body_timeout(&rej) {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request body did not arrive in time (cc.conf limits.request_timeout_s); send it at once",
                )
            } else {
                ApiError::bad_request("bad_body", format!("could not read the request body: {rej}"))
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(json_error)
}

/// Like [`parse_json`], for a value already parsed (one request of a batch).
pub fn parse_value<T: DeserializeOwned>(v: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(v).map_err(json_error)
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let code = if inner.is_syntax() || inner.is_eof() {
            "malformed_json"
        } else {
            "invalid_body"
        };
        let mut err = ApiError::bad_request(
            code,
            format!("the body is not valid JSON for this request: {inner}"),
        );
        if code == "invalid_body" && path != "." {
            err = err.with_field(path);
        }
        err
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <key> header"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <key>`"))
}

/// The API key presented, compared in constant time against every key.
fn api_key<'a>(state: &'a AppState, key: &str) -> Option<&'a ApiKey> {
    let mut found = None;
    for k in &state.config.api_keys {
        if k.key.matches(key) && found.is_none() {
            found = Some(k);
        }
    }
    found
}

/// The role and name of the API key presented.
pub(crate) fn api_key_role(state: &AppState, key: &str) -> Option<(Role, String)> {
    api_key(state, key).map(|k| (k.role, k.name.clone()))
}

/// A caller holding an `lms` API key.
pub struct LmsCaller {
    /// Scopes Idempotency-Keys and picks the callback secret.
    pub key_name: String,
    /// The courses the key may act on; any other course's certificates do not
    /// exist for it.
    pub scope: CourseScope,
}

impl FromRequestParts<AppState> for LmsCaller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match api_key(state, bearer(parts)?).map(|k| (k.role, k)) {
            Some((Role::Lms, k)) => Ok(Self {
                key_name: k.name.clone(),
                scope: k.scope.clone(),
            }),
            Some(_) => Err(ApiError::forbidden(
                "this key has no lms role; use an lms API key from cc.conf",
            )),
            None => Err(unknown_key(parts, state, "unknown API key").await),
        }
    }
}

/// A credential nobody holds: counted against the source address (429 past the
/// limit, else 401 with `message`).
async fn unknown_key(parts: &Parts, state: &AppState, message: &str) -> ApiError {
    let source = ratelimit::source(parts.extensions.get::<PeerAddr>());
    match ratelimit::failed(
        &state.store,
        state.config.limits.failed_credentials_per_minute,
        "apikey",
        &source,
    )
    .await
    {
        Ok(true) => ratelimit::too_many("check the API key or token you send"),
        Ok(false) => ApiError::unauthorized(message),
        Err(e) => e,
    }
}

/// A caller holding an `operator` API key.
pub struct OperatorCaller;

impl FromRequestParts<AppState> for OperatorCaller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match api_key_role(state, bearer(parts)?) {
            Some((Role::Operator, _)) => Ok(Self),
            Some(_) => Err(ApiError::forbidden(
                "this key has no operator role; use an operator API key",
            )),
            None => Err(unknown_key(parts, state, "unknown API key").await),
        }
    }
}

/// A registered workserver, identified by the token it got at registration.
/// Tokens are stored as SHA-256 hashes and looked up by hash.
pub struct WsCaller(pub WsId);

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl FromRequestParts<AppState> for WsCaller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        match state.store.ws_for_token_hash(&token_hash(token)).await? {
            Some(ws) => Ok(Self(ws)),
            None => {
                if api_key_role(state, token).is_some() {
                    Err(ApiError::forbidden(
                        "this is an API key; workserver calls need the token from registration",
                    ))
                } else {
                    Err(unknown_key(
                        parts,
                        state,
                        "unknown workserver token (revoked by a newer registration of the same name?); register again",
                    )
                    .await)
                }
            }
        }
    }
}
