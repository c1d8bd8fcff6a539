//! The WebSub callback: the hub's verification of intent (GET) and its content
//! distributions (POST) on `<callback path>/<subscription token>`. What they mean is decided
//! in [`crate::websub`]; this only turns requests into its calls and its replies into HTTP.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::Endpoint;
use crate::websub::Reply;

/// Seconds a hub is asked to wait when the callback is over its rate or the queue is full.
const RETRY_AFTER_SECS: &str = "5";

fn respond(reply: Reply) -> Response {
    match reply {
        Reply::Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response(),
        Reply::Accepted => StatusCode::ACCEPTED.into_response(),
        Reply::NotFound => (StatusCode::NOT_FOUND, "no such subscription\n").into_response(),
        Reply::Forbidden(why) => (StatusCode::FORBIDDEN, format!("{why}\n")).into_response(),
        Reply::TooMany => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, RETRY_AFTER_SECS)],
            "too many requests\n",
        )
            .into_response(),
        Reply::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, RETRY_AFTER_SECS)],
            "busy\n",
        )
            .into_response(),
    }
}

pub async fn verify(State(e): State<Endpoint>, Path(token): Path<String>, uri: Uri) -> Response {
    let Some(subscriber) = &e.websub else {
        return respond(Reply::NotFound);
    };
    respond(subscriber.verify(&token, uri.query().unwrap_or("")).await)
}

pub async fn distribute(
    State(e): State<Endpoint>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(subscriber) = &e.websub else {
        return respond(Reply::NotFound);
    };
    let limit = usize::try_from(e.max_body).unwrap_or(usize::MAX);
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than poll.max_feed_size\n",
        )
            .into_response();
    };
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    respond(subscriber.distribute(
        &token,
        text("x-hub-signature").as_deref(),
        text("content-type"),
        bytes.to_vec(),
    ))
}
