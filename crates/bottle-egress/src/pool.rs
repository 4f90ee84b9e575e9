//! The upstream keep-alive pool for intercepted and plain-HTTP requests.
//!
//! This module owns the reuse of upstream HTTP/1.1 connections per (scheme, host, port), the
//! way nginx's `keepalive N` does it: a request takes the most recently idled connection that
//! is still open, otherwise it opens a new one through the [`Connector`] (so every upstream
//! connection still goes through "resolve, check, connect to the checked address"); after the
//! response has been read to its end the connection goes back idle. At most `max_idle`
//! connections stay idle per key and none longer than `idle_timeout`.
//!
//! Why not hyper-util's legacy `Client`: when no idle connection is ready it opens a new one
//! *and* waits for an idle one, and whichever loses the race is finished in the background
//! (hyperium/hyper#4134, no switch to turn it off). Under the 500-connection benchmark that
//! kept ~14,000 upstream TLS handshakes in flight whose connections were mostly dropped at
//! once: most of the proxy's peak memory (~100 MiB) and of its CPU per request in that
//! workload. Here a request opens at most one connection, so upstream connections never
//! outnumber the requests in flight (which the agent connection cap bounds).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use http_body::Body;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};

use crate::policy::Refusal;
use crate::upstream::Connector;
use crate::Error;

/// Errors of a pooled request: ours (policy, connect, TLS) or hyper's.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How often idle connections of all keys are checked for expiry and upstream closes.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    tls: bool,
    host: String,
    port: u16,
}

impl Key {
    fn of(uri: &Uri) -> Result<Self, Error> {
        let tls = uri.scheme_str() == Some("https");
        let host = uri.host().ok_or(Error::Refused(Refusal::InvalidHost))?;
        Ok(Key {
            tls,
            host: host.to_owned(),
            port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        })
    }
}

struct Idle<B> {
    tx: SendRequest<B>,
    since: Instant,
}

struct State<B> {
    idle: HashMap<Key, Vec<Idle<B>>>,
    swept: Instant,
}

struct Inner<B> {
    connector: Connector,
    state: Mutex<State<B>>,
    max_idle: usize,
    idle_timeout: Duration,
}

/// Keep-alive upstream connections, shared by all agent connections; `B` is the request body
/// (the agent's `Incoming` in the proxy).
pub(crate) struct Pool<B = Incoming> {
    inner: Arc<Inner<B>>,
}

impl<B> Pool<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// A pool that opens connections with `connector`.
    pub(crate) fn new(connector: Connector, max_idle: usize, idle_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                connector,
                state: Mutex::new(State {
                    idle: HashMap::new(),
                    swept: Instant::now(),
                }),
                max_idle,
                idle_timeout,
            }),
        }
    }

    /// Sends `req` (whose URI is absolute: `https://host:port/path`) to its upstream in origin
    /// form, on an idle connection if one is ready, else on a new one. The connection stays
    /// leased until the caller has read the response body to its end and calls
    /// [`Lease::release`]; dropping the lease instead closes it.
    pub(crate) async fn send(
        &self,
        mut req: Request<B>,
    ) -> Result<(Response<Incoming>, Lease<B>), BoxError> {
        let uri = req.uri().clone();
        let key = Key::of(&uri)?;
        *req.uri_mut() = Uri::from(
            uri.path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        if let Some(mut tx) = self.inner.checkout(&key) {
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok((resp, self.lease(key, tx))),
                Err(mut e) => match e.take_message() {
                    // Never written: the idle connection was closing under us (the upstream's
                    // keep-alive timeout). Safe to send on a fresh connection.
                    Some(r) => req = r,
                    None => return Err(Box::new(e.into_error())),
                },
            }
        }
        let io = self.inner.connector.connect(&uri).await?;
        let (mut tx, conn) = http1::Builder::new().handshake(io).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let resp = tx.send_request(req).await?;
        Ok((resp, self.lease(key, tx)))
    }

    fn lease(&self, key: Key, tx: SendRequest<B>) -> Lease<B> {
        Lease {
            pool: self.inner.clone(),
            key,
            tx,
        }
    }

    /// Idle connections now held (for tests).
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.inner.lock().idle.values().map(Vec::len).sum()
    }
}

/// The upstream connection a response arrived on, until its body has been read.
pub(crate) struct Lease<B = Incoming> {
    pool: Arc<Inner<B>>,
    key: Key,
    tx: SendRequest<B>,
}

impl<B: Send + 'static> Lease<B> {
    /// The response body has ended: the connection goes back idle, at once when hyper already
    /// reports it ready (the common case, with no task and no wake-up per request), else from
    /// a small task as soon as it is.
    pub(crate) fn release(self) {
        let Lease { pool, key, mut tx } = self;
        if tx.is_ready() {
            pool.put(key, tx);
            return;
        }
        // Outside a runtime (a body dropped while the runtime shuts down) the connection is
        // simply closed.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if tx.ready().await.is_ok() {
                    pool.put(key, tx);
                }
            });
        }
    }
}

impl<B> Inner<B> {
    fn lock(&self) -> MutexGuard<'_, State<B>> {
        // A panic elsewhere while holding the lock leaves only a list of idle handles behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn checkout(&self, key: &Key) -> Option<SendRequest<B>> {
        let mut st = self.lock();
        let list = st.idle.get_mut(key)?;
        // Newest first: the warmest connection, and the one least likely to be timed out by
        // the upstream. Anything not ready is closing (or closed) and is dropped.
        while let Some(idle) = list.pop() {
            if idle.since.elapsed() < self.idle_timeout && idle.tx.is_ready() {
                return Some(idle.tx);
            }
        }
        None
    }

    fn put(&self, key: Key, tx: SendRequest<B>) {
        let now = Instant::now();
        let mut st = self.lock();
        if now.duration_since(st.swept) >= SWEEP_EVERY {
            st.swept = now;
            let timeout = self.idle_timeout;
            st.idle.retain(|_, list| {
                list.retain(|i| !i.tx.is_closed() && now.duration_since(i.since) < timeout);
                !list.is_empty()
            });
        }
        let list = st.idle.entry(key).or_default();
        if list.len() >= self.max_idle {
            // Like nginx: past the idle cap the oldest idle connection is closed.
            list.remove(0);
        }
        list.push(Idle { tx, since: now });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};
    use tokio::task::JoinHandle;

    use super::*;

    /// Generous bound so that a broken pool fails instead of hanging.
    const T: Duration = Duration::from_secs(20);

    /// A plain-HTTP upstream on 127.0.0.1 that counts the connections it accepts and keeps
    /// their tasks (aborting one closes that connection). `/slow` answers after 50 ms, so that
    /// concurrent requests overlap.
    struct Upstream {
        port: u16,
        accepted: Arc<AtomicUsize>,
        conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    }

    async fn upstream() -> Upstream {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (a, c) = (accepted.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = l.accept().await else {
                    return;
                };
                a.fetch_add(1, Ordering::SeqCst);
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    if req.uri().path() == "/slow" {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"ok",
                    ))))
                });
                let task = tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                        .await;
                });
                c.lock().unwrap().push(task);
            }
        });
        Upstream {
            port,
            accepted,
            conns,
        }
    }

    fn pool(port: u16, max_idle: usize) -> Pool<Empty<Bytes>> {
        let c = crate::upstream::tests::loopback_connector(port);
        Pool::new(c, max_idle, Duration::from_secs(60))
    }

    async fn get(p: &Pool<Empty<Bytes>>, port: u16, path: &str) -> Bytes {
        let req = Request::get(format!("http://127.0.0.1:{port}{path}"))
            .body(Empty::new())
            .unwrap();
        let (resp, lease) = tokio::time::timeout(T, p.send(req)).await.unwrap().unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        lease.release();
        body
    }

    /// Waits until `cond` holds on the pool (connections go idle in a task after the body).
    async fn until(p: &Pool<Empty<Bytes>>, cond: impl Fn(&Pool<Empty<Bytes>>) -> bool) {
        tokio::time::timeout(T, async {
            while !cond(p) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn sequential_requests_reuse_one_connection() {
        let up = upstream().await;
        let p = pool(up.port, 8);
        for _ in 0..5 {
            assert_eq!(get(&p, up.port, "/").await, "ok");
            until(&p, |p| p.idle_count() == 1).await;
        }
        assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn concurrency_opens_no_more_connections_than_requests_in_flight() {
        let up = upstream().await;
        let p = pool(up.port, 4);
        for wave in 1..=3 {
            let reqs = (0..10).map(|_| get(&p, up.port, "/slow"));
            for body in futures_util::future::join_all(reqs).await {
                assert_eq!(body, "ok");
            }
            // Only max_idle stay; the rest are closed, not kept.
            until(&p, |p| p.idle_count() == 4).await;
            // Wave 1 opens 10; later waves reuse the 4 idle ones and open only the 6 missing.
            assert!(up.accepted.load(Ordering::SeqCst) <= 10 + (wave - 1) * 6);
        }
    }

    #[tokio::test]
    async fn a_connection_whose_body_was_not_read_is_not_reused() {
        let up = upstream().await;
        let p = pool(up.port, 8);
        let req = Request::get(format!("http://127.0.0.1:{}/", up.port))
            .body(Empty::new())
            .unwrap();
        let (resp, lease) = tokio::time::timeout(T, p.send(req)).await.unwrap().unwrap();
        drop(lease);
        drop(resp);
        assert_eq!(p.idle_count(), 0);
        assert_eq!(get(&p, up.port, "/").await, "ok");
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_idle_connection_closed_by_the_upstream_is_not_reused() {
        let up = upstream().await;
        let p = pool(up.port, 8);
        assert_eq!(get(&p, up.port, "/").await, "ok");
        until(&p, |p| p.idle_count() == 1).await;
        for t in up.conns.lock().unwrap().drain(..) {
            t.abort();
        }
        until(&p, |p| {
            p.inner
                .lock()
                .idle
                .values()
                .flatten()
                .all(|i| i.tx.is_closed())
        })
        .await;
        assert_eq!(get(&p, up.port, "/").await, "ok");
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    }
}
