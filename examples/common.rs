//! What every example shares: the secret and the server.

use std::error::Error;

/// `SESSION_SECRET` when set (at least 32 bytes), else a fixed development
/// secret with a warning: a real deployment keeps its secret out of the code.
pub fn secret() -> String {
    std::env::var("SESSION_SECRET").unwrap_or_else(|_| {
        eprintln!("SESSION_SECRET is not set: using a development secret");
        "development secret, never for production!".to_owned()
    })
}

/// Serves `app` on 127.0.0.1:3000 (or `PORT`) until the process is stopped.
pub async fn serve(app: axum::Router) -> Result<(), Box<dyn Error>> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
