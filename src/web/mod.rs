//! The web site: every route in one table, the middleware every request and response
//! passes through, and serving until a shutdown signal. Handlers are thin: who is
//! asking (the session or a token), one call into the application, one view.

mod accounts;
mod admin;
mod alerts;
mod api;
mod archives;
mod assets;
mod audit;
mod auth_pages;
pub mod client;
pub mod error;
mod health;
mod home;
mod me;
mod middleware;
mod queues;
pub mod respond;
pub mod session;
pub mod views;

use std::time::Duration;

use poem::{
    EndpointExt, Route, Server, get,
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
    post,
};

use metrics_exporter_prometheus::PrometheusHandle;

use crate::app::Context;

/// Every route of the site. `session_key` signs and encrypts the session cookies;
/// `metrics` renders `/metrics`.
pub fn routes(ctx: Context, session_key: &[u8], metrics: PrometheusHandle) -> impl poem::Endpoint + 'static {
    let secure = ctx.config.public_url.scheme() == "https";
    let api_routes = Route::new()
        .at("/queues", get(api::list_queues))
        .at("/queues/:vhost/:name", poem::delete(api::delete_queue))
        .at("/events", get(api::events))
        .at("/archives/:vhost/:name", get(archives::api_download))
        .at("/archives/:vhost/:name/republish", post(archives::api_republish))
        .at(
            "/accounts/:name/webhooks",
            get(alerts::api_list_webhooks).post(alerts::api_add_webhook),
        )
        .at("/accounts/:name/webhooks/:id", poem::delete(alerts::api_remove_webhook))
        .catch_error(api::not_found)
        .catch_error(api::bad_query);
    let pages = Route::new()
        .at("/", get(home::index))
        .at("/healthz", get(health::healthz))
        .at("/metrics", get(health::metrics))
        .nest("/assets", assets::endpoint())
        .at("/signin", get(auth_pages::sign_in_page))
        .at("/auth/login", get(auth_pages::oidc_login))
        .at("/auth/callback", get(auth_pages::oidc_callback))
        .at("/auth/email", post(auth_pages::send_link))
        .at(
            "/auth/email/:token",
            get(auth_pages::confirm_link).post(auth_pages::follow_link),
        )
        .at("/auth/logout", post(auth_pages::logout))
        .at("/dev/mailbox", get(auth_pages::dev_mailbox))
        .at("/accounts", get(accounts::index).post(accounts::create))
        .at("/accounts/:name/password", post(accounts::change_password))
        .at("/accounts/:name/owners", post(accounts::change_owners))
        .at("/accounts/:name/delete", post(accounts::delete))
        .at("/accounts/:name/recipients", post(alerts::add_recipient))
        .at(
            "/accounts/:name/recipients/:id/resend",
            post(alerts::resend_confirmation),
        )
        .at("/accounts/:name/recipients/:id/remove", post(alerts::remove_recipient))
        .at("/accounts/:name/webhooks", post(alerts::add_webhook))
        .at("/accounts/:name/webhooks/:id/remove", post(alerts::remove_webhook))
        .at(
            "/recipients/confirm/:token",
            get(alerts::confirm_page).post(alerts::confirm),
        )
        .at("/me", get(me::index))
        .at("/me/tokens", post(me::create_token))
        .at("/me/tokens/:id/revoke", post(me::revoke_token))
        .at("/admin/users", get(admin::users))
        .at("/admin/users/roles", post(admin::change_role))
        .at("/queues", get(queues::index))
        .at("/queues/rows", get(queues::rows_partial))
        .at("/queues/:vhost/:name", get(queues::show))
        .at("/queues/:vhost/:name/live", get(queues::show_live))
        .at("/queues/:vhost/:name/delete", post(queues::delete))
        .at("/queues/:vhost/:name/policy", post(queues::set_policy))
        .at("/queues/:vhost/:name/alarms", post(queues::set_alarms))
        .at("/queues/:vhost/:name/archive", get(archives::download))
        .at("/queues/:vhost/:name/archive/republish", post(archives::republish))
        .at("/queues/:vhost/:name/archive/purge", post(archives::purge))
        .at("/audit", get(audit::index))
        .at("/audit/rows", get(audit::more))
        .at("/audit/export", get(audit::export))
        .nest("/api/v1", api_routes)
        .catch_error(error::not_found)
        .catch_error(error::bad_query);
    pages
        .with(session::CsrfCheck)
        .with(session::cookie_session(session_key, secure))
        .with(middleware::SecurityHeaders)
        .with(middleware::BodyLimit)
        .with(middleware::RequestMetrics)
        .data(ctx)
        .data(metrics)
}

/// Binds `addr` (`BIND`).
pub async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<TcpAcceptor> {
    TcpListener::bind(addr)
        .into_acceptor()
        .await
        .map_err(|e| anyhow::anyhow!("BIND: cannot listen on {addr}: {e}"))
}

/// Serves `site` on `acceptor` until `shutdown` completes, then lets requests in flight
/// finish.
pub async fn serve(
    site: impl poem::Endpoint + 'static,
    acceptor: TcpAcceptor,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    if let Some(addr) = acceptor.local_addr().first() {
        tracing::info!(address = %addr, "PulseGuardian is listening");
    }
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(site, shutdown, Some(Duration::from_secs(10)))
        .await
}
