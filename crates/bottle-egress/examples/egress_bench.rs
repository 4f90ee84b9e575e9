//! Helper for `bench/egress`: certificates, the proxy under test, and a load generator.
//!
//! * `certs DIR` writes the origin CA and origin leaves (`api.test`, `other.test`), the bench
//!   bottle CA, and a leaf for the nginx comparator.
//! * `proxy CONFIG.json AUDIT.jsonl` runs the egress proxy from an `EgressConfig` JSON, with
//!   `api.test` and `other.test` resolved to 127.0.0.1 (no /etc/hosts edits).
//! * `load ...` opens N connections (optionally through `CONNECT`), does TLS with the given SNI
//!   and sends keep-alive (or one-per-connection) GETs, closed loop or at a fixed rate, and
//!   prints one JSON line with counts, throughput and latency percentiles.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("certs") => certs(&args[1]),
        Some("proxy") => proxy(&args[1], &args[2]),
        Some("load") => load(&args[1..]),
        _ => {
            eprintln!("usage: egress_bench certs DIR | proxy CONFIG AUDIT | load OPTIONS");
            std::process::exit(2);
        }
    }
}

fn certs(dir: &str) {
    let d = std::path::Path::new(dir);
    std::fs::create_dir_all(d).unwrap();
    let origin = bottle_tls::Ca::generate("bench origin CA").unwrap();
    origin
        .save(&d.join("origin-ca.pem"), &d.join("origin-ca.key"))
        .unwrap();
    for host in ["api.test", "other.test"] {
        let (cert, key) = origin.mint_leaf(host).unwrap();
        std::fs::write(
            d.join(format!("{host}.pem")),
            pem("CERTIFICATE", cert.as_ref()),
        )
        .unwrap();
        std::fs::write(
            d.join(format!("{host}.key")),
            pem("PRIVATE KEY", key.secret_der()),
        )
        .unwrap();
    }
    let bottle = bottle_tls::Ca::generate("bench bottle CA").unwrap();
    bottle
        .save(&d.join("bottle-ca.pem"), &d.join("bottle-ca.key"))
        .unwrap();
    let (cert, key) = bottle.mint_leaf("api.test").unwrap();
    std::fs::write(d.join("nginx-proxy.pem"), pem("CERTIFICATE", cert.as_ref())).unwrap();
    std::fs::write(
        d.join("nginx-proxy.key"),
        pem("PRIVATE KEY", key.secret_der()),
    )
    .unwrap();
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn proxy(config: &str, audit: &str) {
    let cfg: bottle_config::EgressConfig =
        serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
    // EGRESS_THREADS=N: N tokio workers (bench/egress sets 1, like nginx's one worker);
    // unset, tokio's default (one per core), as in the sidecar.
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("EGRESS_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        rt.worker_threads(n);
    }
    let rt = rt.enable_all().build().unwrap();
    rt.block_on(async move {
        let lo: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let handle = bottle_egress::EgressProxy::builder(cfg)
            .bottle("bench")
            .audit_log(audit)
            .resolve("api.test", [lo])
            .resolve("other.test", [lo])
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        eprintln!(
            "egress proxy on {} admin {}",
            handle.local_addr(),
            handle.admin_addr()
        );
        handle.wait().await;
    });
}

#[derive(Clone)]
struct LoadCfg {
    connect: SocketAddr,
    proxy: bool,
    target: String,
    sni: String,
    path: String,
    headers: Vec<(String, String)>,
    conns: usize,
    duration: Option<Duration>,
    requests: Option<u64>,
    rate: Option<f64>,
    keepalive: bool,
    tls: Arc<rustls::ClientConfig>,
}

fn load(args: &[String]) {
    let mut it = args.iter();
    let mut connect = None;
    let mut proxy = false;
    let mut target = String::new();
    let mut sni = String::new();
    let mut path = "/".to_string();
    let mut headers = Vec::new();
    let mut conns = 10;
    let mut duration = None;
    let mut requests = None;
    let mut rate = None;
    let mut keepalive = true;
    let mut cacert = String::new();
    while let Some(a) = it.next() {
        let mut v = || it.next().unwrap().clone();
        match a.as_str() {
            "--connect" => connect = Some(v().parse().unwrap()),
            "--proxy" => proxy = true,
            "--target" => target = v(),
            "--sni" => sni = v(),
            "--path" => path = v(),
            "--header" => {
                let h = v();
                let (k, val) = h.split_once(':').unwrap();
                headers.push((k.trim().to_string(), val.trim().to_string()));
            }
            "-c" => conns = v().parse().unwrap(),
            "-z" => duration = Some(Duration::from_secs_f64(v().parse().unwrap())),
            "-n" => requests = Some(v().parse().unwrap()),
            "-q" => rate = Some(v().parse().unwrap()),
            "--no-keepalive" => keepalive = false,
            "--cacert" => cacert = v(),
            other => panic!("unknown option {other}"),
        }
    }
    let mut roots = rustls::RootCertStore::empty();
    {
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_file_iter(&cacert).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(bottle_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let cfg = LoadCfg {
        connect: connect.expect("--connect"),
        proxy,
        target,
        sni,
        path,
        headers,
        conns,
        duration,
        requests,
        rate,
        keepalive,
        tls: Arc::new(tls),
    };
    // One thread: the load generator should not take more than a core from the proxy.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = rt.block_on(run(cfg));
    println!("{out}");
}

struct Stats {
    done: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
}

async fn run(cfg: LoadCfg) -> serde_json::Value {
    let stats = Arc::new(Stats {
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    });
    let budget = Arc::new(AtomicU64::new(cfg.requests.unwrap_or(u64::MAX)));
    // Keep-alive connections are opened before the clock starts, so that connection setup
    // does not pollute latency percentiles (W3 measures setup on purpose: no pre-connect).
    let barrier = Arc::new(tokio::sync::Barrier::new(cfg.conns));
    let mut tasks = Vec::new();
    for i in 0..cfg.conns {
        let cfg = cfg.clone();
        let stats = stats.clone();
        let budget = budget.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let pre = if cfg.keepalive {
                open(&cfg).await.ok()
            } else {
                None
            };
            barrier.wait().await;
            let start = Instant::now();
            let deadline = cfg.duration.map(|d| start + d);
            (
                start,
                worker(i, cfg, stats, budget, start, deadline, pre).await,
            )
        }));
    }
    let mut lat: Vec<u32> = Vec::new();
    let mut first: Option<Instant> = None;
    for t in tasks {
        let (s, l) = t.await.unwrap();
        first = Some(first.map_or(s, |f| f.min(s)));
        lat.extend(l);
    }
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[i] as f64 / 1000.0
    };
    let done = stats.done.load(Ordering::Relaxed);
    let bytes = stats.bytes.load(Ordering::Relaxed);
    serde_json::json!({
        "requests": done,
        "errors": stats.errors.load(Ordering::Relaxed),
        "secs": secs,
        "rps": done as f64 / secs,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "mbps": bytes as f64 / secs / 1e6,
    })
}

async fn open(
    cfg: &LoadCfg,
) -> Result<http1::SendRequest<Empty<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let mut tcp = TcpStream::connect(cfg.connect).await?;
    tcp.set_nodelay(true)?;
    if cfg.proxy {
        tcp.write_all(
            format!("CONNECT {t} HTTP/1.1\r\nHost: {t}\r\n\r\n", t = cfg.target).as_bytes(),
        )
        .await?;
        let mut buf = Vec::with_capacity(256);
        let mut b = [0u8; 512];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut b).await?;
            if n == 0 {
                return Err("proxy closed".into());
            }
            buf.extend_from_slice(&b[..n]);
        }
        if !buf.starts_with(b"HTTP/1.1 200") && !buf.starts_with(b"HTTP/1.0 200") {
            return Err("CONNECT refused".into());
        }
    }
    let name = rustls::pki_types::ServerName::try_from(cfg.sni.clone())?;
    let tls = tokio_rustls::TlsConnector::from(cfg.tls.clone())
        .connect(name, tcp)
        .await?;
    let (sender, conn) = http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn one(
    cfg: &LoadCfg,
    sender: &mut http1::SendRequest<Empty<Bytes>>,
    stats: &Stats,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut req = hyper::Request::builder()
        .uri(cfg.path.as_str())
        .header("host", cfg.target.as_str());
    for (k, v) in &cfg.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    if !cfg.keepalive {
        req = req.header("connection", "close");
    }
    sender.ready().await?;
    let resp = sender.send_request(req.body(Empty::new())?).await?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()).into());
    }
    let mut body = resp.into_body();
    while let Some(f) = body.frame().await {
        if let Some(d) = f?.data_ref() {
            stats.bytes.fetch_add(d.len() as u64, Ordering::Relaxed);
        }
    }
    Ok(())
}

async fn worker(
    i: usize,
    cfg: LoadCfg,
    stats: Arc<Stats>,
    budget: Arc<AtomicU64>,
    start: Instant,
    deadline: Option<Instant>,
    pre: Option<http1::SendRequest<Empty<Bytes>>>,
) -> Vec<u32> {
    let mut lat = Vec::with_capacity(4096);
    let interval = cfg
        .rate
        .map(|r| Duration::from_secs_f64(cfg.conns as f64 / r));
    let mut next = start
        + interval
            .map(|iv| iv.mul_f64(i as f64 / cfg.conns as f64))
            .unwrap_or_default();
    let mut sender = pre;
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_err()
        {
            break;
        }
        if let Some(iv) = interval {
            // Latency is taken from the actual send, not the schedule: tokio's timer wakes up to
            // 1 ms late, which would drown sub-millisecond differences; at 200 req/s, far below
            // saturation, there is no coordinated omission to correct for.
            tokio::time::sleep_until(next.into()).await;
            next += iv;
        }
        let t0 = Instant::now();
        if sender.is_none() {
            match tokio::time::timeout(Duration::from_secs(10), open(&cfg)).await {
                Ok(Ok(s)) => sender = Some(s),
                r => {
                    if stats.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("first connect error: {:?}", r.map(|_| ()));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let s = sender.as_mut().unwrap();
        match tokio::time::timeout(Duration::from_secs(30), one(&cfg, s, &stats)).await {
            Ok(Ok(())) => {
                stats.done.fetch_add(1, Ordering::Relaxed);
                lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                if !cfg.keepalive {
                    sender = None;
                }
            }
            r => {
                if stats.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("first request error: {:?}", r.map(|_| ()));
                }
                sender = None;
            }
        }
    }
    lat
}
