//! One measured herald run, in the style the workload names.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::{Producer, ProducerConfig, Record};

use crate::client::{self, count, due, Figures, Latency, Style, Workload};

pub fn run(bootstrap: &str, topic: &str, w: &Workload) -> Result<Figures, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut props = vec![
        ("bootstrap.servers", bootstrap.to_string()),
        ("acks", w.acks.clone()),
        ("linger.ms", w.linger_ms.to_string()),
        ("compression.type", w.compression.clone()),
        ("enable.idempotence", w.idempotence.to_string()),
        ("buffer.memory", w.buffer_bytes.to_string()),
    ];
    if let Some(b) = w.batch_size {
        props.push(("batch.size", b.to_string()));
    }
    let props: Vec<(&str, &str)> = props.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cfg = ProducerConfig::from_properties(&props).map_err(|e| e.to_string())?;
    let latency = client::latency(w);
    rt.block_on(async {
        let p = Producer::new(cfg).map_err(|e| e.to_string())?;
        let (keys, values) = w.data()?;
        for i in 0..w.warmup {
            let mut r = Record::new(topic, values.bytes(i));
            if let Some(k) = keys.bytes(i) {
                r = r.key(k);
            }
            drop(p.send(r).await.map_err(|e| e.to_string())?);
        }
        p.flush().await;
        if p.stats().records_failed > 0 {
            return Err("herald: warm-up records failed".into());
        }
        let failed_before = p.stats().records_failed;
        let (cpu0, _) = client::usage();
        let start = Instant::now();
        let mut tasks = Vec::new();
        // Held once, cloned per record (a reference count), as the docs of
        // `Record::topic` suggest.
        let topic: Arc<str> = Arc::from(topic);
        for t in 0..w.tasks {
            let (p, values, w, keys, topic) = (
                p.clone(),
                values.clone(),
                w.clone(),
                keys.clone(),
                topic.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut waiting = VecDeque::new();
                for i in (t..w.records).step_by(w.tasks) {
                    if let Some(at) = due(start, w.rate, i) {
                        tokio::time::sleep_until(at.into()).await;
                    }
                    let mut r = Record::new(topic.clone(), values.bytes(i));
                    if let Some(k) = keys.bytes(i) {
                        r = r.key(k);
                    }
                    let sent = latency.map_or(0, |l| l.stamp());
                    match w.style {
                        Style::FireAndForget => drop(p.send(r).await.map_err(|e| e.to_string())?),
                        // Without latency, a closure that captures nothing:
                        // herald boxes it, and a box of nothing allocates
                        // nothing (librdkafka's callback allocates nothing
                        // per record either).
                        Style::Callback => match latency {
                            Some(l) => {
                                p.send_with_callback(r, move |o| {
                                    if o.is_ok() {
                                        l.record(sent);
                                    }
                                    count(o.is_ok());
                                })
                                .await
                            }
                            None => p.send_with_callback(r, |o| count(o.is_ok())).await,
                        }
                        .map_err(|e| e.to_string())?,
                        Style::Futures => {
                            if waiting.len() == w.window {
                                settle(waiting.pop_front(), latency).await;
                            }
                            let f = p.send(r).await.map_err(|e| e.to_string())?;
                            waiting.push_back((sent, f));
                        }
                    }
                }
                while !waiting.is_empty() {
                    settle(waiting.pop_front(), latency).await;
                }
                Ok::<(), String>(())
            }));
        }
        for t in tasks {
            t.await.map_err(|e| e.to_string())??;
        }
        p.flush().await;
        let took = start.elapsed();
        client::check_outcomes("herald", w, p.stats().records_failed - failed_before)?;
        p.close(Duration::from_secs(30))
            .await
            .map_err(|e| e.to_string())?;
        let (cpu1, _) = client::usage();
        Ok(client::figures("herald", w, took, cpu1 - cpu0, latency))
    })
}

/// Await the oldest record's outcome and count it.
async fn settle(oldest: Option<(usize, herald::DeliveryFuture)>, latency: Option<&Latency>) {
    if let Some((sent, f)) = oldest {
        let ok = f.await.is_ok();
        if let (true, Some(l)) = (ok, latency) {
            l.record(sent);
        }
        count(ok);
    }
}
