//! Measures supervise on loopback: `notify` calls per second through a real rmcp client, and the
//! time from an operator's answer (control API) to the agent's tool result.
//! `cargo run --release -p bottle-supervise --example roundtrip`

// A measuring tool: its output is the point.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use bottle_config::{AdminEndpoint, BottleIdent, Secret, SuperviseConfig};
use bottle_supervise::client::ControlClient;
use bottle_supervise::types::AnswerBody;
use bottle_supervise::{BottleEndpoint, Supervise};
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};

const NOTIFIES: usize = 300;
const ROUNDS: usize = 50;

fn args(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let token = Secret::new("roundtrip-token");
    let config = SuperviseConfig {
        listen: "127.0.0.1:0".parse()?,
        control_listen: "127.0.0.1:0".parse()?,
        control_token: token.clone(),
        timeout_secs: 60,
        egress_admin: AdminEndpoint {
            url: "http://127.0.0.1:9".into(),
            token: Secret::new("unused"),
        },
    };
    let ident = BottleIdent {
        slug: "bench".into(),
        name: "bench".into(),
        label: None,
    };
    let handle = Supervise::builder(
        config,
        dir.path().join("state"),
        dir.path().join("a.jsonl"),
        ident,
    )
    .build()?
    .run()?;
    let client = ()
        .serve(StreamableHttpClientTransport::from_uri(format!(
            "http://{}/mcp",
            handle.mcp_addr()
        )))
        .await?;
    let control = ControlClient::new(BottleEndpoint {
        slug: "bench".into(),
        name: "bench".into(),
        label: None,
        color: None,
        control_url: format!("http://{}", handle.control_addr()),
        control_token: token,
    })?;

    let start = Instant::now();
    for i in 0..NOTIFIES {
        client
            .call_tool(
                CallToolRequestParams::new("notify")
                    .with_arguments(args(json!({"message": format!("n{i}")}))),
            )
            .await?;
    }
    let elapsed = start.elapsed();
    println!(
        "notify: {NOTIFIES} calls in {:.2?} = {:.0} calls/s ({:.2?} each; each persists + audits)",
        elapsed,
        NOTIFIES as f64 / elapsed.as_secs_f64(),
        elapsed / NOTIFIES as u32
    );

    let mut latencies = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS {
        let peer = client.peer().clone();
        let call = tokio::spawn(async move {
            let r = peer
                .call_tool(
                    CallToolRequestParams::new("ask_operator")
                        .with_arguments(args(json!({"question": format!("q{i}")}))),
                )
                .await;
            (r, Instant::now())
        });
        let id = loop {
            let page = control.requests(false).await?;
            if let Some(r) = page.requests.first() {
                break r.id.clone();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let sent = Instant::now();
        control.answer(&id, &AnswerBody::answer("a")).await?;
        let (result, got) = call.await?;
        result?;
        latencies.push(got - sent);
    }
    latencies.sort();
    println!(
        "answer → tool result: median {:.2?}, p90 {:.2?}, max {:.2?} over {ROUNDS} rounds",
        latencies[ROUNDS / 2],
        latencies[ROUNDS * 9 / 10],
        latencies[ROUNDS - 1]
    );
    client.cancel().await?;
    handle.shutdown().await;
    Ok(())
}
