//! Server lifecycle: bind `127.0.0.1:0`, serve an axum router on a background task, stop on
//! `shutdown()` or when the handle is dropped.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::SimError;

/// A running HTTP server bound to a random loopback port. Dropping it aborts the server task, which
/// closes the listener and every open connection.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `127.0.0.1:0`; serve on it with [`Server::serve`] once the router (which usually needs
    /// the origin) is built.
    pub async fn bind() -> Result<TcpListener, SimError> {
        Ok(TcpListener::bind(("127.0.0.1", 0)).await?)
    }

    /// Starts serving `router` on `listener` in the background.
    pub fn serve(listener: TcpListener, router: Router) -> Result<Self, SimError> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    // A dropped sender also means "stop".
                    stopped.await.ok();
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "simulator server stopped with an error");
            }
        });
        Ok(Self { addr, stop: Some(stop), task: Some(task) })
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` without a trailing slash.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits (at most 250 ms) for in-flight requests.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The receiver is gone only if the server already stopped.
            stop.send(()).ok();
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_millis(250), &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
