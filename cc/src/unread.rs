//! Reads what is left of a request body the handler did not read. A request
//! refused before its body (a batch without a key: 401; an unknown route: 404)
//! still has that body on the wire; hyper would close the connection with it
//! unread, and a client still sending it gets a reset connection instead of the
//! answer. The rest is read and dropped (never kept) up to `limit` bytes, the
//! largest body the CC accepts anywhere; past that the connection is closed as
//! before. The server's request deadline bounds the time (`crate::limits`).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as _, Frame, SizeHint};

/// The request body, shared so that it can be finished after the handler.
struct Shared(Arc<Mutex<Body>>);

impl Shared {
    fn body(&self) -> std::sync::MutexGuard<'_, Body> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl http_body::Body for Shared {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut *self.body()).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body().is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body().size_hint()
    }
}

/// Middleware: run the request, then read the rest of its body (up to `limit`).
pub async fn finish_body(limit: usize, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let shared = Arc::new(Mutex::new(body));
    let resp = next
        .run(Request::from_parts(
            parts,
            Body::new(Shared(shared.clone())),
        ))
        .await;
    // Still held elsewhere (nothing does today): leave it to hyper.
    let Ok(body) = Arc::try_unwrap(shared) else {
        return resp;
    };
    let mut body = body.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut read = 0usize;
    while !body.is_end_stream() && read <= limit {
        match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
            // The client went away or the request deadline passed.
            Some(Err(_)) | None => break,
        }
    }
    resp
}
