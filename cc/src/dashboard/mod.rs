//! `GET /dashboard`: the cluster's status as a page a person can read, refreshing
//! itself every 5 s, served by every CC. Operators sign in with an operator API
//! key through a form; the CC then sets a `Secure; HttpOnly; SameSite=Strict`
//! session cookie whose token is kept (hashed) in Redis for 12 hours, so any CC
//! accepts it. `Authorization: Bearer <operator key>` works too (scripts).

pub mod html;

use std::time::Duration;

use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use testamur_common::config::Role;
use testamur_common::ids::random_hex;
use testamur_common::time_fmt::{now_ms, rfc3339_ms};

use crate::app::{AppState, PeerAddr};
use crate::error::ApiError;
use crate::extract::{api_key_role, token_hash};
use crate::ratelimit;

/// The session cookie's name.
pub const COOKIE: &str = "tm_session";
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if !signed_in(&state, &headers).await? {
        return Ok(html_answer(
            StatusCode::UNAUTHORIZED,
            html::login_page(&state.config.name, None),
        ));
    }
    let status = crate::routes::status::collect(&state).await?;
    let (_, dead) = state.store.dead_letters(20).await?;
    Ok(html_answer(
        StatusCode::OK,
        html::dashboard(&status, &dead, &rfc3339_ms(now_ms())),
    ))
}

#[derive(Deserialize)]
pub struct LoginForm {
    key: String,
}

pub async fn login(
    State(state): State<AppState>,
    peer: Option<Extension<PeerAddr>>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let peer = peer.map(|Extension(p)| p);
    let ip = peer
        .map(|PeerAddr(a)| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let name = &state.config.name;
    let Ok(Form(form)) = form else {
        return Ok(html_answer(
            StatusCode::BAD_REQUEST,
            html::login_page(name, Some("Enter an operator key.")),
        ));
    };
    match api_key_role(&state, form.key.trim()) {
        Some((Role::Operator, key_name)) => {
            let token = random_hex(32);
            state
                .store
                .create_session(&token_hash(&token), &key_name, SESSION_TTL)
                .await?;
            tracing::info!(key = %key_name, %ip, "dashboard sign-in");
            let cookie = format!(
                "{COOKIE}={token}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
                SESSION_TTL.as_secs()
            );
            Ok(redirect(Some(cookie)))
        }
        other => {
            let over = ratelimit::failed(
                &state.store,
                state.config.limits.failed_credentials_per_minute,
                "login",
                &ratelimit::source(peer.as_ref()),
            )
            .await?;
            tracing::warn!(%ip, "dashboard sign-in with a wrong key");
            if over {
                // Wrong keys slow down; the right key still signs in.
                let mut r = html_answer(
                    StatusCode::TOO_MANY_REQUESTS,
                    html::login_page(
                        name,
                        Some("Too many failed sign-ins from this address; wait a minute."),
                    ),
                );
                r.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(ratelimit::WINDOW.as_secs()),
                );
                return Ok(r);
            }
            let msg = if other.is_some() {
                "That key has no operator role."
            } else {
                "Unknown key."
            };
            Ok(html_answer(
                StatusCode::UNAUTHORIZED,
                html::login_page(name, Some(msg)),
            ))
        }
    }
}

pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = session_token(&headers) {
        state.store.delete_session(&token_hash(token)).await?;
    }
    Ok(redirect(Some(format!(
        "{COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict"
    ))))
}

/// A bearer operator key, or a live session of a key that is still an operator key.
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<bool, ApiError> {
    if let Some(key) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Ok(matches!(
            api_key_role(state, key.trim()),
            Some((Role::Operator, _))
        ));
    }
    let Some(token) = session_token(headers) else {
        return Ok(false);
    };
    Ok(match state.store.session(&token_hash(token)).await? {
        Some(key_name) => state
            .config
            .api_keys
            .iter()
            .any(|k| k.name == key_name && k.role == Role::Operator),
        None => false,
    })
}

fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .find(|t| !t.is_empty())
}

fn redirect(cookie: Option<String>) -> Response {
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/dashboard")]).into_response();
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// An HTML answer that loads nothing from anywhere and cannot be framed or cached.
pub(crate) fn html_answer(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}
