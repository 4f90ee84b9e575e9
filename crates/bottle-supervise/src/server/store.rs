//! The request queue: persisted requests, the in-memory event stream, and waiting for answers.
//!
//! Requests live in `<state_dir>/supervise/requests.json`, rewritten whole after every change
//! (temporary file, fsync, rename; mode 0600) so that a crash leaves either the old or the new
//! file, never half of one. A restarted sidecar loads it back: pending requests stay pending and
//! answerable, answered ones keep their answer. Every change is also one audit line.

use std::collections::VecDeque;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::audit::AuditLog;
use crate::error::{Error, Result};
use crate::types::{
    check_answer, now_ms, sort_for_display, Answer, AnswerBody, AnswerRejection, Event, EventKind,
    EventsPage, Request, RequestKind, RequestState,
};

/// Most requests waiting for the operator at once; more are refused so an agent in a loop cannot
/// bury the operator.
pub(crate) const MAX_PENDING: usize = 64;
/// Most answered requests and notices kept; older ones are dropped from the file (the audit log
/// keeps them).
const MAX_HISTORY: usize = 500;
/// Most events kept in memory for `GET /events`.
const MAX_EVENTS: usize = 1000;
/// Letters of request ids: no look-alikes (0/o, 1/l/i), since operators type them.
const ID_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
const ID_LEN: usize = 6;

#[derive(Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    requests: Vec<Request>,
}

struct Inner {
    requests: Vec<Request>,
    events: VecDeque<Event>,
    last_seq: u64,
}

/// How waiting for an answer ended.
#[derive(Debug)]
pub(crate) enum WaitOutcome {
    Answered(Request),
    TimedOut,
    /// The request vanished (pruned) while waiting.
    Gone,
    /// The server is shutting down.
    Cancelled,
}

/// The request queue of one bottle.
pub(crate) struct Store {
    path: PathBuf,
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
    audit: AuditLog,
    instance: String,
}

impl Store {
    /// Opens the queue under `state_dir`, loading what a previous run left.
    pub(crate) fn open(state_dir: &Path, audit: AuditLog) -> Result<Self> {
        let dir = state_dir.join("supervise");
        fs::create_dir_all(&dir).map_err(|source| Error::Write {
            path: dir.clone(),
            source,
        })?;
        // The queue holds what the agent asked and the operator answered: owner only.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(|source| {
            Error::Write {
                path: dir.clone(),
                source,
            }
        })?;
        let path = dir.join("requests.json");
        let requests = match fs::read(&path) {
            Ok(bytes) => {
                let file: StoreFile =
                    serde_json::from_slice(&bytes).map_err(|source| Error::Parse {
                        path: path.clone(),
                        source,
                    })?;
                file.requests
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(Error::Read { path, source }),
        };
        let (changed, _) = watch::channel(0);
        Ok(Self {
            path,
            inner: Mutex::new(Inner {
                requests,
                events: VecDeque::new(),
                last_seq: 0,
            }),
            changed,
            audit,
            instance: random_id(12)?,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a new request from the agent, or returns the open one with the same content (an
    /// agent calling again after a timeout or a restart keeps waiting on the same request, and
    /// gets an answer given meanwhile at once). The bool is true when an existing one was reused.
    pub(crate) fn submit(&self, kind: RequestKind) -> Result<(Request, bool)> {
        let mut inner = self.lock();
        if let Some(open) = inner
            .requests
            .iter()
            .find(|r| r.kind == kind && r.state != RequestState::Notice && !r.delivered)
        {
            return Ok((open.clone(), true));
        }
        let pending = inner.requests.iter().filter(|r| r.is_pending()).count();
        if pending >= MAX_PENDING {
            return Err(Error::TooManyPending { limit: MAX_PENDING });
        }
        let request = self.new_request(&inner, kind, RequestState::Pending)?;
        self.commit_new(&mut inner, request)
            .map(|request| (request, false))
    }

    /// Records a notice (never pending).
    pub(crate) fn notice(&self, kind: RequestKind) -> Result<Request> {
        let mut inner = self.lock();
        let request = self.new_request(&inner, kind, RequestState::Notice)?;
        self.commit_new(&mut inner, request)
    }

    fn new_request(
        &self,
        inner: &Inner,
        kind: RequestKind,
        state: RequestState,
    ) -> Result<Request> {
        let id = loop {
            let id = random_id(ID_LEN)?;
            if !inner.requests.iter().any(|r| r.id == id) {
                break id;
            }
        };
        Ok(Request {
            id,
            created_ms: now_ms(),
            kind,
            state,
            answer: None,
            delivered: false,
        })
    }

    fn commit_new(&self, inner: &mut Inner, request: Request) -> Result<Request> {
        let before = inner.requests.clone();
        inner.requests.push(request.clone());
        prune(&mut inner.requests);
        if let Err(e) = self.persist(&inner.requests) {
            inner.requests = before;
            return Err(e);
        }
        let event = if request.state == RequestState::Notice {
            "notice"
        } else {
            "request"
        };
        self.audit
            .record(event, json!({ "id": request.id, "request": request }))?;
        self.push_event(inner, EventKind::Request, request.clone());
        Ok(request)
    }

    /// One request by id.
    pub(crate) fn get(&self, id: &str) -> Option<Request> {
        self.lock().requests.iter().find(|r| r.id == id).cloned()
    }

    /// Pending requests, or all, in display order.
    pub(crate) fn list(&self, all: bool) -> Vec<Request> {
        let mut out: Vec<Request> = self
            .lock()
            .requests
            .iter()
            .filter(|r| all || r.is_pending())
            .cloned()
            .collect();
        sort_for_display(&mut out);
        out
    }

    /// Checks that `body` may answer request `id` now, without recording anything.
    pub(crate) fn check(&self, id: &str, body: &AnswerBody) -> Result<Request> {
        let request = self
            .get(id)
            .ok_or_else(|| Error::UnknownRequest { id: id.into() })?;
        validate(&request, body)?;
        Ok(request)
    }

    /// Records the operator's answer.
    pub(crate) fn answer(&self, id: &str, body: &AnswerBody) -> Result<Request> {
        let mut inner = self.lock();
        let before = inner.requests.clone();
        let Some(request) = inner.requests.iter_mut().find(|r| r.id == id) else {
            return Err(Error::UnknownRequest { id: id.into() });
        };
        validate(request, body)?;
        request.state = RequestState::Answered;
        request.answer = Some(Answer {
            decision: body.decision,
            text: body.text.clone(),
            note: body.note.clone(),
            answered_ms: now_ms(),
        });
        let answered = request.clone();
        if let Err(e) = self.persist(&inner.requests) {
            inner.requests = before;
            return Err(e);
        }
        self.audit.record(
            "answer",
            json!({ "id": answered.id, "kind": answered.kind.label(), "answer": answered.answer }),
        )?;
        self.push_event(&mut inner, EventKind::Answer, answered.clone());
        Ok(answered)
    }

    /// Notes that the agent received the answer to `id`.
    pub(crate) fn mark_delivered(&self, id: &str) -> Result<()> {
        let mut inner = self.lock();
        let Some(request) = inner.requests.iter_mut().find(|r| r.id == id) else {
            return Ok(());
        };
        if request.delivered {
            return Ok(());
        }
        request.delivered = true;
        self.persist(&inner.requests)?;
        self.audit.record("delivered", json!({ "id": id }))
    }

    /// Writes an audit line about request `id` (timeouts, egress route outcomes).
    pub(crate) fn audit(&self, event: &str, fields: serde_json::Value) -> Result<()> {
        self.audit.record(event, fields)
    }

    fn push_event(&self, inner: &mut Inner, event: EventKind, request: Request) {
        inner.last_seq += 1;
        inner.events.push_back(Event {
            seq: inner.last_seq,
            event,
            request,
        });
        while inner.events.len() > MAX_EVENTS {
            inner.events.pop_front();
        }
        self.changed.send_replace(inner.last_seq);
    }

    /// Events after `since` (all kept ones when `since` is from another run).
    pub(crate) fn events_since(&self, since: u64) -> EventsPage {
        let inner = self.lock();
        let since = if since > inner.last_seq { 0 } else { since };
        EventsPage {
            instance: self.instance.clone(),
            next: inner.last_seq,
            events: inner
                .events
                .iter()
                .filter(|e| e.seq > since)
                .cloned()
                .collect(),
        }
    }

    /// Waits up to `wait` for events after `since`.
    pub(crate) async fn wait_events(
        &self,
        since: u64,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> EventsPage {
        let mut rx = self.changed.subscribe();
        rx.borrow_and_update();
        let page = self.events_since(since);
        if !page.events.is_empty() || wait.is_zero() {
            return page;
        }
        tokio::select! {
            _ = rx.changed() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = cancel.cancelled() => {}
        }
        self.events_since(since)
    }

    /// Waits up to `timeout` for the operator to answer request `id`.
    pub(crate) async fn wait_answer(
        &self,
        id: &str,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> WaitOutcome {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.changed.subscribe();
        loop {
            // Mark the current version seen before looking, so no change is missed in between.
            rx.borrow_and_update();
            match self.get(id) {
                None => return WaitOutcome::Gone,
                Some(r) if r.state == RequestState::Answered => return WaitOutcome::Answered(r),
                Some(_) => {}
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return WaitOutcome::Cancelled;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return WaitOutcome::TimedOut,
                _ = cancel.cancelled() => return WaitOutcome::Cancelled,
            }
        }
    }

    fn persist(&self, requests: &[Request]) -> Result<()> {
        let write_err = |source| Error::Write {
            path: self.path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(&StoreFile {
            version: 1,
            requests: requests.to_vec(),
        })
        .map_err(|source| Error::Parse {
            path: self.path.clone(),
            source,
        })?;
        let tmp = self.path.with_extension("json.tmp");
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(write_err)?;
        file.write_all(&bytes).map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(write_err)
    }
}

fn validate(request: &Request, body: &AnswerBody) -> Result<()> {
    let rejection = if request.state != RequestState::Pending {
        Some(AnswerRejection::NotPending {
            id: request.id.clone(),
            state: request.state,
        })
    } else {
        check_answer(&request.kind, body).err()
    };
    match rejection {
        Some(source) => Err(Error::Answer {
            id: request.id.clone(),
            source,
        }),
        None => Ok(()),
    }
}

/// Drops the oldest answered requests and notices beyond [`MAX_HISTORY`]; pending ones stay.
fn prune(requests: &mut Vec<Request>) {
    let done = requests.iter().filter(|r| !r.is_pending()).count();
    if done <= MAX_HISTORY {
        return;
    }
    let mut drop_n = done - MAX_HISTORY;
    // Requests are appended in creation order, so the first non-pending ones are the oldest.
    requests.retain(|r| {
        if drop_n > 0 && !r.is_pending() {
            drop_n -= 1;
            false
        } else {
            true
        }
    });
}

/// A random id of `len` letters from [`ID_ALPHABET`].
pub(crate) fn random_id(len: usize) -> Result<String> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(Error::Random)?;
    // 256 % 31 skews a few letters by under 1%: harmless for ids.
    Ok(bytes
        .iter()
        .map(|b| char::from(ID_ALPHABET[usize::from(*b) % ID_ALPHABET.len()]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Decision, Level};

    fn open(dir: &Path) -> Store {
        let audit = AuditLog::open(&dir.join("audit/supervise.jsonl"), "slug-1").unwrap();
        Store::open(&dir.join("state"), audit).unwrap()
    }

    fn question(q: &str) -> RequestKind {
        RequestKind::Question {
            question: q.into(),
            choices: vec![],
        }
    }

    #[test]
    fn requests_persist_across_reopen_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let (pending, reused) = store.submit(question("which branch?")).unwrap();
        assert!(!reused);
        let (approval, _) = store
            .submit(RequestKind::Approval {
                action: "delete build cache".into(),
                details: "rm -rf target".into(),
            })
            .unwrap();
        store
            .answer(&approval.id, &AnswerBody::approve(Some("fine".into())))
            .unwrap();
        drop(store);

        let file = dir.path().join("state/supervise/requests.json");
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(dir.path().join("state/supervise"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert!(!dir
            .path()
            .join("state/supervise/requests.json.tmp")
            .exists());

        let store = open(dir.path());
        let again = store.get(&pending.id).unwrap();
        assert!(again.is_pending());
        let answered = store.get(&approval.id).unwrap();
        assert_eq!(answered.state, RequestState::Answered);
        let answer = answered.answer.unwrap();
        assert_eq!(answer.decision, Decision::Approve);
        assert_eq!(answer.note.as_deref(), Some("fine"));
        // Still answerable after the reopen.
        store
            .answer(&pending.id, &AnswerBody::answer("main"))
            .unwrap();
    }

    #[test]
    fn identical_open_request_is_reused_until_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let (a, _) = store.submit(question("q")).unwrap();
        let (b, reused) = store.submit(question("q")).unwrap();
        assert!(reused);
        assert_eq!(a.id, b.id);
        store.answer(&a.id, &AnswerBody::answer("x")).unwrap();
        let (c, reused) = store.submit(question("q")).unwrap();
        assert!(
            reused,
            "an undelivered answer is handed to the next identical call"
        );
        assert_eq!(c.answer.unwrap().text.as_deref(), Some("x"));
        store.mark_delivered(&a.id).unwrap();
        let (d, reused) = store.submit(question("q")).unwrap();
        assert!(!reused);
        assert_ne!(d.id, a.id);
    }

    #[test]
    fn answers_are_checked_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let (q, _) = store.submit(question("q")).unwrap();
        let err = store.answer(&q.id, &AnswerBody::approve(None)).unwrap_err();
        assert!(err.to_string().contains("takes answer or deny"), "{err}");
        store.answer(&q.id, &AnswerBody::deny(None)).unwrap();
        let err = store.answer(&q.id, &AnswerBody::deny(None)).unwrap_err();
        assert!(err.to_string().contains("is not pending"), "{err}");
        let err = store.answer("nope00", &AnswerBody::deny(None)).unwrap_err();
        assert!(matches!(err, Error::UnknownRequest { .. }));
        let n = store
            .notice(RequestKind::Notice {
                message: "build done".into(),
                level: Level::Info,
            })
            .unwrap();
        assert!(store.answer(&n.id, &AnswerBody::approve(None)).is_err());
    }

    #[test]
    fn every_request_and_answer_is_an_audit_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let (q, _) = store.submit(question("q?")).unwrap();
        store.answer(&q.id, &AnswerBody::answer("yes")).unwrap();
        let text = fs::read_to_string(dir.path().join("audit/supervise.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "request");
        assert_eq!(lines[0]["bottle"], "slug-1");
        assert_eq!(lines[0]["request"]["question"], "q?");
        assert_eq!(lines[1]["event"], "answer");
        assert_eq!(lines[1]["answer"]["text"], "yes");
    }

    #[test]
    fn corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state/supervise");
        fs::create_dir_all(&state).unwrap();
        fs::write(state.join("requests.json"), b"{not json").unwrap();
        let audit = AuditLog::open(&dir.path().join("a.jsonl"), "s").unwrap();
        let err = Store::open(&dir.path().join("state"), audit)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("requests.json is not valid"), "{err}");
    }

    #[test]
    fn pending_requests_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        for i in 0..MAX_PENDING {
            store.submit(question(&format!("q{i}"))).unwrap();
        }
        assert!(matches!(
            store.submit(question("one more")),
            Err(Error::TooManyPending { .. })
        ));
    }

    #[test]
    fn history_is_pruned_but_pending_kept() {
        let mut rs = Vec::new();
        for i in 0..(MAX_HISTORY + 10) {
            rs.push(Request {
                id: format!("{i}"),
                created_ms: i as u64,
                kind: question("q"),
                state: if i == 0 {
                    RequestState::Pending
                } else {
                    RequestState::Answered
                },
                answer: None,
                delivered: true,
            });
        }
        prune(&mut rs);
        assert_eq!(rs.len(), MAX_HISTORY + 1);
        assert_eq!(rs[0].id, "0");
        assert_eq!(rs[1].id, "10");
    }

    #[tokio::test]
    async fn waiting_sees_an_answer_and_times_out_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(open(dir.path()));
        let cancel = CancellationToken::new();
        let (q, _) = store.submit(question("q")).unwrap();
        let outcome = store
            .wait_answer(&q.id, Duration::from_millis(50), &cancel)
            .await;
        assert!(matches!(outcome, WaitOutcome::TimedOut));

        let waiter = {
            let store = store.clone();
            let cancel = cancel.clone();
            let id = q.id.clone();
            tokio::spawn(async move {
                store
                    .wait_answer(&id, Duration::from_secs(60), &cancel)
                    .await
            })
        };
        tokio::task::yield_now().await;
        store.answer(&q.id, &AnswerBody::answer("42")).unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .unwrap()
            .unwrap();
        match outcome {
            WaitOutcome::Answered(r) => {
                assert_eq!(r.answer.unwrap().text.as_deref(), Some("42"))
            }
            other => panic!("unexpected {other:?}"),
        }
        let page = store.events_since(0);
        assert_eq!(page.events.len(), 2);
        assert_eq!(page.events[1].event, EventKind::Answer);
        assert!(store.events_since(page.next).events.is_empty());
        // A `since` from another run gets everything kept.
        assert_eq!(store.events_since(page.next + 100).events.len(), 2);
    }

    #[test]
    fn ids_use_the_unambiguous_alphabet() {
        for _ in 0..50 {
            let id = random_id(ID_LEN).unwrap();
            assert_eq!(id.len(), ID_LEN);
            assert!(id.bytes().all(|b| ID_ALPHABET.contains(&b)));
        }
    }
}
