//! Middleware every request and response passes through: a bound on request bodies,
//! security headers and request metrics.

use std::time::Instant;

use poem::http::{StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result, http::HeaderValue};

/// The largest request body any route takes: forms are a few KiB, the API takes none.
pub const MAX_BODY: usize = 64 * 1024;

/// Every request body is bounded: one that says it is larger than [`MAX_BODY`] is refused
/// before it is read, one that does not say (chunked) is read up to the bound and
/// refused beyond it. Both get 413; nothing reaches a handler.
pub struct BodyLimit;

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint(ep)
    }
}

pub struct BodyLimitEndpoint<E>(E);

fn too_large(req: &Request) -> Response {
    let message = format!("the request body is larger than {} KiB", MAX_BODY / 1024);
    if req.uri().path().starts_with("/api/") {
        return crate::web::error::ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
    }
    (StatusCode::PAYLOAD_TOO_LARGE, message).into_response()
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;
    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().parse::<u64>());
        match declared {
            Some(Ok(n)) if n > MAX_BODY as u64 => return Ok(too_large(&req)),
            Some(Ok(_)) => {}
            Some(Err(_)) => return Ok((StatusCode::BAD_REQUEST, "invalid Content-Length").into_response()),
            None if req.headers().contains_key(header::TRANSFER_ENCODING) => {
                match req.take_body().into_bytes_limit(MAX_BODY).await {
                    Ok(body) => req.set_body(body),
                    Err(_) => return Ok(too_large(&req)),
                }
            }
            None => {}
        }
        Ok(match self.0.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        })
    }
}

/// A strict content security policy (no inline script or style, no framing) and the
/// other protective headers, on every response including errors and assets.
pub struct SecurityHeaders;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

impl<E: Endpoint> Middleware<E> for SecurityHeaders {
    type Output = SecurityHeadersEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        SecurityHeadersEndpoint(ep)
    }
}

pub struct SecurityHeadersEndpoint<E>(E);

impl<E: Endpoint> Endpoint for SecurityHeadersEndpoint<E> {
    type Output = Response;
    async fn call(&self, req: Request) -> Result<Self::Output> {
        let mut resp = match self.0.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        let h = resp.headers_mut();
        h.insert("content-security-policy", HeaderValue::from_static(CSP));
        h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
        h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
        h.insert(
            "permissions-policy",
            HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
        );
        Ok(resp)
    }
}

/// Counts requests and records their latency, labelled by method, route area and status.
pub struct RequestMetrics;

impl<E: Endpoint> Middleware<E> for RequestMetrics {
    type Output = RequestMetricsEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        RequestMetricsEndpoint(ep)
    }
}

pub struct RequestMetricsEndpoint<E>(E);

/// The route area of a path: its first segment (two under `/api`), so labels stay few
/// whatever names appear in paths.
fn area(path: &str) -> String {
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("api"), Some(version), Some(resource)) => format!("/api/{version}/{resource}"),
        (Some(first), _, _) if !first.is_empty() => format!("/{first}"),
        _ => "/".to_owned(),
    }
}

impl<E: Endpoint> Endpoint for RequestMetricsEndpoint<E> {
    type Output = Response;
    async fn call(&self, req: Request) -> Result<Self::Output> {
        let started = Instant::now();
        let method = req.method().to_string();
        let area = area(req.uri().path());
        let resp = match self.0.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        let status = resp.status().as_u16().to_string();
        metrics::counter!("http_requests_total", "method" => method.clone(), "path" => area.clone(), "status" => status)
            .increment(1);
        metrics::histogram!("http_request_duration_seconds", "method" => method, "path" => area)
            .record(started.elapsed().as_secs_f64());
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn areas_keep_labels_few() {
        assert_eq!(super::area("/"), "/");
        assert_eq!(super::area("/queues/%2F/queue%2Fa%2Fb"), "/queues");
        assert_eq!(super::area("/api/v1/queues/%2F/x"), "/api/v1/queues");
        assert_eq!(super::area("/assets/htmx.min.js"), "/assets");
    }
}
