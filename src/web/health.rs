//! `/healthz` and `/metrics`.

use metrics_exporter_prometheus::PrometheusHandle;
use poem::{IntoResponse, Response, handler, http::StatusCode, web::Data};

use crate::app::{self, Context};

/// 200 `ok` when the database answers, 503 otherwise.
#[handler]
pub async fn healthz(Data(ctx): Data<&Context>) -> Response {
    match app::healthy(ctx).await {
        Ok(()) => "ok".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

/// Prometheus text format. The event-log gauges are read at scrape time.
#[handler]
pub async fn metrics(Data(ctx): Data<&Context>, Data(handle): Data<&PrometheusHandle>) -> Response {
    if let Ok((head, checkpoint)) = app::audit::progress(ctx).await {
        ::metrics::gauge!("pulseguardian_event_log_head_seq").set(head as f64);
        ::metrics::gauge!("pulseguardian_projector_checkpoint_seq").set(checkpoint as f64);
        ::metrics::gauge!("pulseguardian_projector_lag_events").set((head - checkpoint).max(0) as f64);
    }
    handle
        .render()
        .with_content_type("text/plain; version=0.0.4; charset=utf-8")
        .into_response()
}
