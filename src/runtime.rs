//! Process plumbing every command shares: the Tokio runtime it runs on, and the signals that
//! end a long-running one (the controller, `login`, `sim`).

use std::future::Future;

/// Runs a command's future to completion on a multi-threaded runtime.
pub fn block_on<F: Future>(future: F) -> std::io::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(future))
}

/// Returns on SIGTERM (a pod being stopped) or Ctrl-C.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
