//! `cargo run -p session-demo`: the demo site. See the crate docs of
//! `session_demo` for the environment variables.

use anyhow::Context;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    if let Err(err) = run().await {
        eprintln!("session-demo: {err:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let settings = session_demo::Settings::from_env()?;
    let app = session_demo::build(&settings).await?;
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .with_context(|| format!("cannot listen on {}", settings.addr))?;
    tracing::info!(
        "session-demo listening on http://{}",
        listener.local_addr()?
    );
    session_demo::serve(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
