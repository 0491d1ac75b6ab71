//! Prometheus metrics of the server and a minimal HTTP endpoint that serves them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabel {
    stage: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: String,
}

/// The server's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    rounds: Family<OutcomeLabel, Counter>,
    clients: Family<StageLabel, Gauge>,
    dropouts: Family<DropLabel, Counter>,
    stage_seconds: Family<StageLabel, Histogram>,
    bytes: Family<DirectionLabel, Counter>,
    connections: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("secagg");
        let rounds = Family::<OutcomeLabel, Counter>::default();
        let clients = Family::<StageLabel, Gauge>::default();
        let dropouts = Family::<DropLabel, Counter>::default();
        let stage_seconds = Family::<StageLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 18))
        });
        let bytes = Family::<DirectionLabel, Counter>::default();
        let connections = Gauge::default();
        r.register(
            "rounds",
            "Rounds ended, by outcome (finished, aborted)",
            rounds.clone(),
        );
        r.register(
            "clients",
            "Clients that entered each stage of the latest round",
            clients.clone(),
        );
        r.register(
            "dropouts",
            "Clients dropped, by stage and reason",
            dropouts.clone(),
        );
        r.register(
            "stage_duration_seconds",
            "Duration of each stage",
            stage_seconds.clone(),
        );
        r.register(
            "bytes",
            "Protocol bytes received (in) and sent (out)",
            bytes.clone(),
        );
        r.register("connections", "Open client streams", connections.clone());
        Self {
            registry: Arc::new(Mutex::new(r)),
            rounds,
            clients,
            dropouts,
            stage_seconds,
            bytes,
            connections,
        }
    }

    /// A round ended.
    pub fn round_ended(&self, released: bool) {
        let outcome = if released { "finished" } else { "aborted" };
        self.rounds
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
    }
    /// `n` clients entered `stage`.
    pub fn clients_at(&self, stage: &str, n: usize) {
        self.clients
            .get_or_create(&StageLabel {
                stage: stage.into(),
            })
            .set(n as i64);
    }
    /// A client dropped out.
    pub fn dropout(&self, stage: &str, reason: &str) {
        self.dropouts
            .get_or_create(&DropLabel {
                stage: stage.into(),
                reason: reason.into(),
            })
            .inc();
    }
    /// A stage took `secs`.
    pub fn stage_duration(&self, stage: &str, secs: f64) {
        self.stage_seconds
            .get_or_create(&StageLabel {
                stage: stage.into(),
            })
            .observe(secs);
    }
    /// Protocol bytes in or out.
    pub fn bytes(&self, incoming: bool, n: usize) {
        let direction = if incoming { "in" } else { "out" };
        self.bytes
            .get_or_create(&DirectionLabel {
                direction: direction.into(),
            })
            .inc_by(n as u64);
    }
    /// A stream opened (+1) or closed (-1).
    pub fn connection(&self, delta: i64) {
        self.connections.inc_by(delta);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(r) = self.registry.lock() {
            let _ = encode(&mut out, &r);
        }
        out
    }
}

/// Serves `GET /metrics` on `addr` until the task is dropped.
pub async fn serve(addr: SocketAddr, metrics: Metrics) -> std::io::Result<()> {
    serve_listener(TcpListener::bind(addr).await?, metrics).await
}

/// Serves `GET /metrics` on a bound listener.
pub async fn serve_listener(listener: TcpListener, metrics: Metrics) -> std::io::Result<()> {
    loop {
        let (mut sock, _) = listener.accept().await?;
        let m = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut len = 0;
            // Read the request head (bounded), then answer and close.
            while len < buf.len() {
                match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    sock.read(&mut buf[len..]),
                )
                .await
                {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => len += n,
                }
                if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..len]);
            let resp = if head.starts_with("GET /metrics") {
                let body = m.render();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_http() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let m = Metrics::new();
            m.round_ended(false);
            tokio::spawn(serve_listener(l, m));
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            assert!(
                out.starts_with("HTTP/1.1 200")
                    && out.contains("secagg_rounds_total{outcome=\"aborted\"} 1"),
                "{out}"
            );
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            assert!(out.starts_with("HTTP/1.1 404"));
        });
    }

    #[test]
    fn renders_all_families() {
        let m = Metrics::new();
        m.round_ended(true);
        m.clients_at("share", 10);
        m.dropout("share", "timeout");
        m.stage_duration("share", 0.5);
        m.bytes(true, 100);
        let t = m.render();
        for name in [
            "secagg_rounds_total",
            "secagg_clients",
            "secagg_dropouts_total",
            "secagg_stage_duration_seconds",
            "secagg_bytes_total",
        ] {
            assert!(t.contains(name), "{name} missing in {t}");
        }
    }
}
