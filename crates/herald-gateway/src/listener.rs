//! The accept loop: hyper's HTTP/1 connections, each in its own task, with
//! what `axum::serve` does not give: a deadline for request headers (which
//! also closes keep-alive connections left idle, and slowloris clients), a
//! cap on open connections (beyond it a new connection gets a 503 and is
//! closed, rather than waiting unseen in the kernel's backlog), and a
//! graceful stop that lets requests in progress finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

/// The TCP peer of a request's connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub std::net::SocketAddr);

/// A listening socket for `addr` with a backlog of 4096 (capped by the
/// kernel's `somaxconn`): the usual 128 overflows when a crowd connects at
/// once, and each dropped SYN costs its client a one-second retransmit.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Connection settings.
pub(crate) struct Limits {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

/// What a connection over the cap is told before it is closed.
fn over_capacity(max: usize) -> Vec<u8> {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": format!(
            "the gateway has {max} connections open (limits.max_connections): retry shortly, \
             and reuse keep-alive connections"
        ),
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serve `app` on `listener` until `shutdown` resolves; then keep
/// serving for `lame_duck` (the app answers publishes and `/readyz` with
/// 503 meanwhile, so load balancers and clients on open connections learn
/// it is stopping), then stop accepting, let each connection finish its
/// request in progress (keep-alive ends), and return once all are closed or
/// `grace` passed.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    (lame_duck, grace): (Duration, Duration),
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // Request line and headers at most 64 KiB (hyper's default is
        // ~400 KiB per connection).
        .max_buf_size(64 << 10);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let lingering = Arc::new(Semaphore::new(64));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut stop_at: Option<tokio::time::Instant> = None;
    loop {
        let (mut stream, peer) = tokio::select! {
            _ = &mut shutdown, if stop_at.is_none() => {
                stop_at = Some(tokio::time::Instant::now() + lame_duck);
                continue;
            }
            _ = tokio::time::sleep_until(stop_at.unwrap_or_else(tokio::time::Instant::now)),
                if stop_at.is_some() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: the error is the
                    // listener's, not a client's; pause before accepting
                    // again instead of spinning.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let answer = over_capacity(limits.max_connections);
            // Answer, then read what the client sent until it closes (1 s
            // at most): closing with its request unread would send a reset
            // that can destroy the answer before it is read. At most 64
            // such lingering sockets (each holds a file descriptor); beyond
            // that the answer is written if the socket takes it at once,
            // and the socket closed.
            match lingering.clone().try_acquire_owned() {
                Ok(linger) => {
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(Duration::from_secs(1), async {
                            stream.write_all(&answer).await?;
                            stream.shutdown().await?;
                            let mut sink = [0u8; 4096];
                            while stream.read(&mut sink).await? > 0 {}
                            Ok::<(), std::io::Error>(())
                        })
                        .await;
                        drop(linger);
                    });
                }
                Err(_) => {
                    let _ = stream.try_write(&answer);
                }
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        // The client's address, for what only loopback may see.
        let svc = TowerToHyperService::new(app.clone().map_request(
            move |mut r: hyper::Request<hyper::body::Incoming>| {
                r.extensions_mut().insert(ClientAddr(peer));
                r
            },
        ));
        let builder = builder.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let stopping = tokio::select! {
                _ = conn.as_mut() => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if stopping {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every permit back: every connection closed.
    let _ = tokio::time::timeout(
        grace,
        slots.acquire_many(limits.max_connections.min(u32::MAX as usize) as u32),
    )
    .await;
}
