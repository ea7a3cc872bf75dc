//! A fault-injecting TCP proxy for Kafka connections (the "chaos proxy"):
//! frame-aware on the way back, so it can swallow whole responses (the
//! broker did the work, the client never hears of it); it can also stall
//! every connection (nothing forwarded either way until released), cut
//! them (FIN) or reset them (RST), mid-request or not, whatever is in
//! flight.

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
    reset: Arc<AtomicBool>,
    stall: watch::Sender<bool>,
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
        let (stall, stall_rx) = watch::channel(false);
        let reset = Arc::new(AtomicBool::new(false));
        let sw = swallow.clone();
        let dn = down.clone();
        let rs = reset.clone();
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
                tokio::spawn(pipe(
                    client,
                    server,
                    Faults {
                        swallow: sw.clone(),
                        reset: rs.clone(),
                        cut: cut_rx.clone(),
                        stall: stall_rx.clone(),
                    },
                ));
            }
        });
        FaultProxy {
            port,
            swallow,
            down,
            cut,
            reset,
            stall,
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

    /// Close every open connection now (FIN).
    pub fn cut_connections(&self) {
        self.reset.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Reset every open connection now (RST: SO_LINGER 0, then close).
    pub fn reset_connections(&self) {
        self.reset.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// While on, nothing is forwarded in either direction on any
    /// connection; what arrives waits in the proxy.
    pub fn stall(&self, on: bool) {
        self.stall.send_replace(on);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

struct Faults {
    swallow: Arc<AtomicBool>,
    reset: Arc<AtomicBool>,
    cut: watch::Receiver<u64>,
    stall: watch::Receiver<bool>,
}

/// Wait while the proxy is stalled.
async fn unstalled(stall: &mut watch::Receiver<bool>) {
    let _ = stall.wait_for(|on| !*on).await;
}

async fn pipe(client: TcpStream, server: TcpStream, faults: Faults) {
    let Faults {
        swallow,
        reset,
        mut cut,
        stall,
    } = faults;
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut stall_up = stall.clone();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = cr.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            unstalled(&mut stall_up).await;
            sw.write_all(&buf[..n]).await?;
        }
    };
    let mut stall_down = stall;
    let down = async {
        loop {
            let mut len = [0u8; 4];
            sr.read_exact(&mut len).await?;
            let mut frame = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
            sr.read_exact(&mut frame).await?;
            unstalled(&mut stall_down).await;
            if !swallow.load(Ordering::SeqCst) {
                cw.write_all(&len).await?;
                cw.write_all(&frame).await?;
            }
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    };
    cut.mark_unchanged();
    let was_cut = tokio::select! {
        _ = up => false,
        _ = down => false,
        _ = cut.changed() => true,
    };
    if was_cut && reset.load(Ordering::SeqCst) {
        // Linger 0 makes the close an RST; it never blocks with a zero time.
        #[allow(deprecated)]
        let _ = cw.as_ref().set_linger(Some(std::time::Duration::ZERO));
    }
}
