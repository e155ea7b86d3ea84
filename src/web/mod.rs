//! The web server: every route in one table, the middleware every response passes
//! through, and serving until a shutdown signal.

mod assets;
mod health;
mod home;
mod middleware;
pub mod views;

use std::time::Duration;

use poem::{
    EndpointExt, Route, Server,
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
};

use crate::app::App;

/// Every route of the site.
pub fn routes(app: App) -> impl poem::Endpoint {
    Route::new()
        .at("/", poem::get(home::index))
        .at("/healthz", poem::get(health::healthz))
        .at("/metrics", poem::get(health::metrics))
        .nest("/assets", assets::endpoint())
        .catch_error(views::not_found)
        .with(middleware::SecurityHeaders)
        .with(middleware::RequestMetrics)
        .data(app)
}

/// Binds the configured address.
pub async fn bind(app: &App) -> anyhow::Result<TcpAcceptor> {
    TcpListener::bind(app.config.bind)
        .into_acceptor()
        .await
        .map_err(|e| anyhow::anyhow!("BIND: cannot listen on {}: {e}", app.config.bind))
}

/// Serves on `acceptor` until `shutdown` completes, then lets requests in flight finish.
pub async fn serve(
    app: App,
    acceptor: TcpAcceptor,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    if let Some(addr) = acceptor.local_addr().first() {
        tracing::info!(address = %addr, url = %app.config.public_url, "PulseGuardian is listening");
    }
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(routes(app), shutdown, Some(Duration::from_secs(10)))
        .await
}
