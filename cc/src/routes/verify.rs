//! `GET /verify/{verify_uuid}`: the public answer to "does this certificate still
//! stand?" for anyone holding a certificate's verify URL. No authentication: it
//! says only what the published verification page already implies (that a
//! version exists) plus its status and dates. JSON, or to a browser the live
//! verification page (crate::verify_page).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use testamur_common::ids::PublicUuid;
use testamur_common::wire::Verification;

use crate::app::AppState;
use crate::error::ApiError;
use crate::verify_page;

pub async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> Result<Response, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let found = lookup(&state, &uuid).await;
    let mut r = match (verify_page::wants_html(accept), found) {
        (false, found) => found.map(|v| Json(v).into_response())?,
        (true, Ok(v)) => {
            // Its own URL as the visitor reached it (for LinkedIn's certUrl).
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            let page_url = format!("https://{host}/verify/{uuid}");
            crate::dashboard::html_answer(StatusCode::OK, verify_page::page(&v, &page_url))
        }
        (true, Err(e)) if e.status == StatusCode::NOT_FOUND => {
            crate::dashboard::html_answer(StatusCode::NOT_FOUND, verify_page::not_found())
        }
        (true, Err(e)) => return Err(e),
    };
    // The same URL answers JSON or HTML: caches must keep them apart.
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    Ok(r)
}

async fn lookup(state: &AppState, uuid: &str) -> Result<Verification, ApiError> {
    let uuid = PublicUuid::parse(uuid).map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_value",
            "a verify uuid is a lowercase hyphenated uuid, as in the certificate's verify URL",
        )
        .with_field("verify_uuid")
    })?;
    state.store.verification(&uuid).await?.ok_or_else(|| {
        ApiError::not_found(
            "no certificate was ever published under this verify uuid: treat the document as not genuine",
        )
    })
}
