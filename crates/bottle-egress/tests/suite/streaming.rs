//! Streaming through intercepted routes: SSE event by event, WebSocket echo.

use super::*;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

#[tokio::test]
async fn sse_events_arrive_one_by_one() {
    // The upstream sends event 1, then waits until the client has it before sending event 2:
    // a proxy that buffers the response would deadlock here (and the timeout fails the test).
    let (got_first_tx, got_first_rx) = oneshot::channel::<()>();
    let got_first = Arc::new(Mutex::new(Some(got_first_rx)));
    let seen = SeenLog::default();
    let sn = seen.clone();
    let up = upstream(
        true,
        Arc::new(move |req| {
            let rx = got_first.lock().unwrap().take();
            record(&sn, &req);
            Box::pin(async move {
                let (tx, body_rx) = mpsc::channel::<Bytes>(4);
                tokio::spawn(async move {
                    let _ = tx.send(Bytes::from_static(b"data: one\n\n")).await;
                    if let Some(rx) = rx {
                        let _ = rx.await;
                    }
                    let _ = tx.send(Bytes::from_static(b"data: two\n\n")).await;
                });
                let stream = futures_util::stream::unfold(body_rx, |mut rx| async move {
                    rx.recv()
                        .await
                        .map(|b| (Ok::<_, Infallible>(hyper::body::Frame::data(b)), rx))
                });
                let mut r = Response::new(BodyExt::boxed(http_body_util::StreamBody::new(stream)));
                r.headers_mut()
                    .insert("content-type", "text/event-stream".parse().unwrap());
                r
            })
        }),
    )
    .await;
    let env = proxy(vec![bearer(route("sse.test", up.port()))]).await;
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&env.bottle_ca).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(env.proxy_url()).unwrap())
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let resp = tokio::time::timeout(
        T,
        client
            .get(format!("https://sse.test:{}/stream", up.port()))
            .bearer_auth(PLACEHOLDER)
            .send(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut text = String::new();
    while !text.contains("data: one") {
        let chunk = tokio::time::timeout(T, stream.next())
            .await
            .expect("first event streamed")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!text.contains("two"));
    got_first_tx.send(()).unwrap();
    while !text.contains("data: two") {
        let chunk = tokio::time::timeout(T, stream.next())
            .await
            .expect("second event")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(
        seen.lock().unwrap()[0].headers["authorization"],
        format!("Bearer {REAL}")
    );
}

#[tokio::test]
async fn websocket_echo_through_an_intercepted_route() {
    // A wss echo upstream that records the upgrade request's Authorization header.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (auth_tx, mut auth_rx) = mpsc::channel::<String>(1);
    tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(origin_server_config());
        while let Ok((tcp, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            let auth_tx = auth_tx.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let cb = move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                               resp| {
                    let a = req
                        .headers()
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    let _ = auth_tx.try_send(a);
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tls, cb).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        let _ = ws.send(msg).await;
                    }
                }
            });
        }
    });
    let env = proxy(vec![bearer(route("ws.test", port))]).await;
    let tcp = connect_tunnel(env.proxy.local_addr(), &format!("ws.test:{port}"))
        .await
        .unwrap();
    let ca = std::fs::read_to_string(&env.bottle_ca).unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_tls(&ca))
        .connect(
            rustls::pki_types::ServerName::try_from("ws.test").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("wss://ws.test:{port}/echo"),
    )
    .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {PLACEHOLDER}").parse().unwrap(),
    );
    let (mut ws, resp) = tokio::time::timeout(T, tokio_tungstenite::client_async(req, tls))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 101);
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        "ping over the bottle",
    ))
    .await
    .unwrap();
    let echo = tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "ping over the bottle");
    let auth = tokio::time::timeout(T, auth_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(auth, format!("Bearer {REAL}"));
}
