//! A fault-injecting TCP proxy for Kafka connections: frame-aware, so it
//! can swallow whole responses (the broker did the work, the client never
//! hears of it), or cut every connection.

use std::net::TcpListener as StdListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The proxy; stops when dropped.
pub struct FaultProxy {
    port: u16,
    swallow: Arc<AtomicBool>,
    down: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    /// Forward connections accepted on `listener` to `upstream` (`host:port`).
    pub fn start(listener: StdListener, upstream: String) -> FaultProxy {
        let port = listener.local_addr().expect("bound").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let swallow = Arc::new(AtomicBool::new(false));
        let down = Arc::new(AtomicBool::new(false));
        let (cut, cut_rx) = watch::channel(0u64);
        let sw = swallow.clone();
        let dn = down.clone();
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("tokio listener");
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if dn.load(Ordering::SeqCst) {
                    // "Broker down": the connection is closed at once.
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(pipe(client, server, sw.clone(), cut_rx.clone()));
            }
        });
        FaultProxy {
            port,
            swallow,
            down,
            cut,
            runtime: Some(runtime),
        }
    }

    /// `127.0.0.1:port` of the proxy.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// While on, every response from the broker is read and dropped.
    pub fn swallow_responses(&self, on: bool) {
        self.swallow.store(on, Ordering::SeqCst);
    }

    /// Take the "broker" down (every connection cut, new ones closed at
    /// once) or bring it back up.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.cut_connections();
        }
    }

    /// Close every open connection now.
    pub fn cut_connections(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    swallow: Arc<AtomicBool>,
    mut cut: watch::Receiver<u64>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async { tokio::io::copy(&mut cr, &mut sw).await.map(|_| ()) };
    let down = async {
        loop {
            let mut len = [0u8; 4];
            sr.read_exact(&mut len).await?;
            let mut frame = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
            sr.read_exact(&mut frame).await?;
            if !swallow.load(Ordering::SeqCst) {
                cw.write_all(&len).await?;
                cw.write_all(&frame).await?;
            }
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    };
    cut.mark_unchanged();
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = cut.changed() => {}
    }
}
