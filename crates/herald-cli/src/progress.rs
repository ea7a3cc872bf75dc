//! `herald produce`'s progress line on standard error, for a person
//! watching a long run from a terminal: records sent, acknowledged,
//! failed, and the rate of acknowledgements, redrawn in place five times a
//! second and left as a summary at the end. Only when standard error is a
//! terminal and standard input is not (a person typing records would see
//! the line redrawn over what they type): a script's output stays exactly
//! what it was.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The counts the producing loop and the printer update.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub failed: AtomicU64,
}

/// `12,345`.
fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The line: counts and the rate (acknowledged per second).
pub(crate) fn line(
    sent: u64,
    acked: u64,
    failed: u64,
    per_second: f64,
    elapsed: Duration,
) -> String {
    format!(
        "sent {} · acked {} · failed {} · {} rec/s · {:.1} s",
        grouped(sent),
        grouped(acked),
        grouped(failed),
        grouped(per_second.round() as u64),
        elapsed.as_secs_f64()
    )
}

/// A running progress display; `finish` leaves the summary.
pub(crate) struct Progress {
    counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
    started: Instant,
}

/// Erase the current terminal line (before an error message, or a redraw).
pub(crate) const CLEAR: &str = "\r\x1b[2K";

impl Progress {
    /// Start redrawing every 200 ms.
    pub(crate) fn start(counts: Arc<Counts>) -> Progress {
        let started = Instant::now();
        let c = counts.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            // The rate over the last second: (time, acked) samples.
            let mut window: std::collections::VecDeque<(Instant, u64)> = Default::default();
            loop {
                tick.tick().await;
                let now = Instant::now();
                let acked = c.acked.load(Relaxed);
                window.push_back((now, acked));
                while window.len() > 6 {
                    window.pop_front();
                }
                let (t0, a0) = window[0];
                let dt = now.duration_since(t0).as_secs_f64();
                let rate = if dt > 0.0 {
                    (acked - a0) as f64 / dt
                } else {
                    0.0
                };
                let text = line(
                    c.sent.load(Relaxed),
                    acked,
                    c.failed.load(Relaxed),
                    rate,
                    now - started,
                );
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "{CLEAR}{text}");
                let _ = err.flush();
            }
        });
        Progress {
            counts,
            task,
            started,
        }
    }

    /// Stop redrawing (and wait until the drawing task has stopped, so no
    /// late redraw follows); leave the summary (average rate) on its own
    /// line.
    pub(crate) async fn finish(self) {
        self.task.abort();
        let _ = self.task.await;
        let elapsed = self.started.elapsed();
        let c = &self.counts;
        let acked = c.acked.load(Relaxed);
        let rate = acked as f64 / elapsed.as_secs_f64().max(1e-3);
        let text = line(
            c.sent.load(Relaxed),
            acked,
            c.failed.load(Relaxed),
            rate,
            elapsed,
        );
        eprintln!("{CLEAR}{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_reads_well() {
        assert_eq!(
            line(
                1_234_567,
                1_234_000,
                3,
                25_012.4,
                Duration::from_millis(4_260)
            ),
            "sent 1,234,567 · acked 1,234,000 · failed 3 · 25,012 rec/s · 4.3 s"
        );
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
    }
}
