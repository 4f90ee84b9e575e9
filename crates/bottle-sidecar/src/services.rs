//! Builds the three services from the config and watches them.
//!
//! Files each service owns: `egress.jsonl`, `git.jsonl`, `supervise.jsonl` in the audit folder;
//! `gitgate/` and `supervise/` under the state folder.

use std::future::Future;
use std::pin::Pin;

use bottle_config::SidecarConfig;
use bottle_egress::EgressProxy;
use bottle_gitgate::GitGate;
use bottle_supervise::server::Supervise;

use crate::log::Log;
use crate::{Error, Result};

type Watch = Pin<Box<dyn Future<Output = (&'static str, Result<()>)> + Send>>;

/// The running services. Dropping it stops nothing by itself; the process exits instead.
pub struct Running {
    watches: Vec<Watch>,
    // Handles kept alive for the process's life (dropping some of them stops their service).
    _gate: bottle_gitgate::GateHandle,
    _supervise: bottle_supervise::server::SuperviseHandle,
}

impl Running {
    /// Waits until any service stops; that is always an error (they run for the bottle's life).
    pub async fn wait_any(self) -> Result<()> {
        let Running {
            watches,
            _gate,
            _supervise,
        } = self;
        if watches.is_empty() {
            std::future::pending::<()>().await;
        }
        let ((service, r), _, _) = futures_select_all(watches).await;
        match r {
            Err(e) => Err(e),
            Ok(()) => Err(Error::ServiceStopped {
                service,
                message: "exited".into(),
            }),
        }
    }
}

async fn futures_select_all(
    watches: Vec<Watch>,
) -> ((&'static str, Result<()>), usize, Vec<Watch>) {
    let mut watches = watches;
    std::future::poll_fn(move |cx| {
        for (i, w) in watches.iter_mut().enumerate() {
            if let std::task::Poll::Ready(v) = w.as_mut().poll(cx) {
                return std::task::Poll::Ready((v, i, Vec::new()));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

fn start_err(service: &'static str) -> impl FnOnce(String) -> Error {
    move |message| Error::ServiceStart { service, message }
}

/// Starts every service; returns once each is listening.
pub async fn start(config: &SidecarConfig, log: &Log) -> Result<Running> {
    let audit = &config.audit_dir;
    let slug = config.bottle.slug.clone();

    let egress = EgressProxy::builder(config.egress.clone())
        .audit_log(audit.join("egress.jsonl"))
        .bottle(slug.clone())
        .build()
        .map_err(|e| start_err("egress")(e.to_string()))?
        .start()
        .await
        .map_err(|e| start_err("egress")(e.to_string()))?;
    log.event("egress listening", &egress.local_addr().to_string());

    let gate = GitGate::builder(config.git.clone())
        .work_dir(config.state_dir.join("gitgate"))
        .audit_log(audit.join("git.jsonl"))
        .bottle(slug.clone())
        .build()
        .map_err(|e| start_err("git gate")(e.to_string()))?
        .spawn()
        .await
        .map_err(|e| start_err("git gate")(e.to_string()))?;
    log.event("git gate listening", &gate.local_addr().to_string());

    let supervise = Supervise::builder(
        config.supervise.clone(),
        config.state_dir.clone(),
        audit.join("supervise.jsonl"),
        config.bottle.clone(),
    )
    .build()
    .map_err(|e| start_err("supervise")(e.to_string()))?
    .run()
    .map_err(|e| start_err("supervise")(e.to_string()))?;
    log.event("supervise listening", &supervise.mcp_addr().to_string());

    let egress_watch: Watch = Box::pin(async move {
        egress.wait().await;
        ("egress", Ok(()))
    });
    Ok(Running {
        watches: vec![egress_watch],
        _gate: gate,
        _supervise: supervise,
    })
}
