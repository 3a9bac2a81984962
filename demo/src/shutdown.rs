//! When a server stops: Ctrl-C, SIGTERM, or (for the driver's children) standard input closing.

use tokio::io::AsyncReadExt as _;

/// Resolves when the process is asked to stop.
pub(crate) async fn requested(until_stdin_closes: bool) {
    let stdin_closed = async {
        if !until_stdin_closes {
            return std::future::pending().await;
        }
        // The driver never writes; its end closes when it stops it, or when it dies.
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    let terminated = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = stdin_closed => {}
        () = terminated => {}
    }
}
