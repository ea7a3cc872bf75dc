//! Whether an instance's Kafka can be reached: a small task per instance
//! asks a bootstrap broker for metadata (no topics) every few seconds and
//! keeps the answer. It feeds `GET /v1/instances` (connected or not, and
//! why) and `fallback = "none"`, which refuses events while the last probe
//! failed. A probe is cheap (one small request on a kept connection) and
//! independent of the spool's forwarding, which may be busy or backing
//! off.

use std::time::Duration;

use herald::{Producer, ProducerConfig};
use tokio::sync::watch;

/// Probes this often while Kafka answers, and twice as often while it does
/// not (so a recovery is seen soon).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// What the last probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// No probe has finished yet.
    Unknown,
    Up,
    /// The error of the last probe (it names the broker address).
    Down(String),
}

/// An instance's probe: its state, and the task that keeps it.
#[derive(Debug)]
pub struct Probe {
    state: watch::Receiver<Link>,
    task: tokio::task::JoinHandle<()>,
}

impl Probe {
    /// Start probing with `cfg`'s bootstrap servers and security settings;
    /// each probe gives up after `timeout`.
    pub fn start(cfg: &ProducerConfig, timeout: Duration) -> Result<Probe, herald::Error> {
        let producer = Producer::new(cfg.clone())?;
        let servers = cfg.bootstrap_servers.join(",");
        let (tx, rx) = watch::channel(Link::Unknown);
        let task = tokio::spawn(async move {
            loop {
                let link =
                    match tokio::time::timeout(timeout, producer.fetch_metadata(Some(&[]))).await {
                        Ok(Ok(_)) => Link::Up,
                        Ok(Err(e)) => Link::Down(e.to_string()),
                        Err(_) => Link::Down(format!(
                            "no answer from {servers} within {} ms",
                            timeout.as_millis()
                        )),
                    };
                let pause = if link == Link::Up {
                    PROBE_INTERVAL
                } else {
                    PROBE_INTERVAL / 2
                };
                tx.send_replace(link);
                tokio::time::sleep(pause).await;
            }
        });
        Ok(Probe { state: rx, task })
    }

    pub fn link(&self) -> Link {
        self.state.borrow().clone()
    }

    /// The state, waiting up to `timeout` for a first probe to finish.
    pub async fn settled(&self, timeout: Duration) -> Link {
        let mut rx = self.state.clone();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|l| *l != Link::Unknown)).await;
        self.link()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}
