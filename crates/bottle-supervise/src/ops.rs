//! What the script-facing commands do: `requests [--json]`, `approve ID [--note]`,
//! `deny ID [--note]`, `answer ID TEXT`, over every bottle's control API.
//!
//! An id is either a bare request id (looked up among every bottle's pending requests; it must
//! be pending in exactly one) or `<slug>/<id>`.

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use crate::client::ControlClient;
use crate::color::BottleColor;
use crate::endpoint::{BottleEndpoint, BottleRef};
use crate::error::{Error, Result};
use crate::types::{check_answer, display_cmp, now_ms, AnswerBody, Request};

/// One request with the bottle it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub bottle: BottleRef,
    pub request: Request,
}

/// A bottle whose control API could not be listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BottleFailure {
    pub bottle: BottleRef,
    pub error: String,
}

/// Requests across bottles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// Pending first (oldest first), then the rest (newest first).
    pub entries: Vec<Entry>,
    pub errors: Vec<BottleFailure>,
}

/// Lists the pending (or all) requests of every bottle; unreachable bottles go to `errors`.
pub async fn list_requests(endpoints: &[BottleEndpoint], all: bool) -> Listing {
    let results = join_all(endpoints.iter().map(|endpoint| async move {
        let page = match ControlClient::new(endpoint.clone()) {
            Ok(client) => client.requests(all).await,
            Err(e) => Err(e),
        };
        (endpoint.bottle_ref(), page)
    }))
    .await;
    let mut listing = Listing::default();
    for (bottle, page) in results {
        match page {
            Ok(page) => listing
                .entries
                .extend(page.requests.into_iter().map(|request| Entry {
                    bottle: bottle.clone(),
                    request,
                })),
            Err(e) => listing.errors.push(BottleFailure {
                bottle,
                error: e.to_string(),
            }),
        }
    }
    sort_entries(&mut listing.entries);
    listing
}

/// Sorts entries in [`display_cmp`] order, across bottles.
pub fn sort_entries(entries: &mut [Entry]) {
    entries.sort_by(|a, b| {
        display_cmp(&a.request, &b.request).then_with(|| a.bottle.slug.cmp(&b.bottle.slug))
    });
}

/// Approves request `id` (approval or egress), with an optional note for the agent.
pub async fn approve(
    endpoints: &[BottleEndpoint],
    id: &str,
    note: Option<String>,
) -> Result<Entry> {
    answer_with(endpoints, id, AnswerBody::approve(note)).await
}

/// Denies request `id` (any kind but notices), with an optional note for the agent.
pub async fn deny(endpoints: &[BottleEndpoint], id: &str, note: Option<String>) -> Result<Entry> {
    answer_with(endpoints, id, AnswerBody::deny(note)).await
}

/// Answers question `id` with `text`.
pub async fn answer(endpoints: &[BottleEndpoint], id: &str, text: &str) -> Result<Entry> {
    answer_with(endpoints, id, AnswerBody::answer(text)).await
}

/// Sends any answer to request `id`, after checking locally that it fits the request.
pub async fn answer_with(
    endpoints: &[BottleEndpoint],
    id: &str,
    body: AnswerBody,
) -> Result<Entry> {
    let (endpoint, request) = resolve(endpoints, id).await?;
    check_answer(&request.kind, &body).map_err(|source| Error::Answer {
        id: request.id.clone(),
        source,
    })?;
    let client = ControlClient::new(endpoint.clone())?;
    let answered = client.answer(&request.id, &body).await?;
    Ok(Entry {
        bottle: endpoint.bottle_ref(),
        request: answered,
    })
}

/// Finds the bottle holding pending request `id` (`<slug>/<id>` or a bare id).
pub async fn resolve<'a>(
    endpoints: &'a [BottleEndpoint],
    id: &str,
) -> Result<(&'a BottleEndpoint, Request)> {
    let (slug, bare) = match id.split_once('/') {
        Some((slug, bare)) => (Some(slug), bare),
        None => (None, id),
    };
    let candidates: Vec<&BottleEndpoint> = endpoints
        .iter()
        .filter(|e| slug.is_none_or(|s| e.slug == s))
        .collect();
    let pages = join_all(candidates.iter().map(|endpoint| async move {
        let client = ControlClient::new((*endpoint).clone())?;
        client.requests(false).await
    }))
    .await;
    let mut hits = Vec::new();
    let mut first_error = None;
    for (endpoint, page) in candidates.iter().zip(pages) {
        match page {
            Ok(page) => {
                if let Some(r) = page.requests.into_iter().find(|r| r.id == bare) {
                    hits.push((*endpoint, r));
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match hits.len() {
        1 => Ok(hits.remove(0)),
        0 => match (first_error, candidates.len()) {
            // With one bottle to ask, its failure is the answer.
            (Some(e), 1) => Err(e),
            _ => Err(Error::UnknownRequest { id: id.to_owned() }),
        },
        _ => Err(Error::AmbiguousRequest {
            id: bare.to_owned(),
            slugs: hits
                .iter()
                .map(|(e, _)| e.slug.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The listing as a plain-text table for `bot-bottle requests` (bottle names coloured when
/// `color`; pass false for `NO_COLOR` or a non-terminal).
pub fn format_listing(listing: &Listing, color: bool) -> String {
    let now = now_ms();
    let mut out = String::new();
    if listing.entries.is_empty() {
        out.push_str("no requests\n");
    } else {
        let width = listing
            .entries
            .iter()
            .map(|e| e.bottle.display_name().chars().count())
            .max()
            .unwrap_or(6)
            .max(6);
        out.push_str(&format!(
            "{:<8} {:<width$} {:<9} {:<9} {:>5}  SUMMARY\n",
            "ID", "BOTTLE", "KIND", "STATE", "AGE"
        ));
        for e in &listing.entries {
            let name = e.bottle.display_name();
            let padded = format!("{name:<width$}");
            let shown = match (
                color,
                e.bottle.color.as_deref().and_then(BottleColor::parse),
            ) {
                (true, Some(c)) => c.paint(&padded),
                _ => padded,
            };
            let state = match &e.request.answer {
                Some(a) => a.decision.to_string(),
                None => format!("{:?}", e.request.state).to_lowercase(),
            };
            out.push_str(&format!(
                "{:<8} {} {:<9} {:<9} {:>5}  {}\n",
                e.request.id,
                shown,
                e.request.kind.label(),
                state,
                age(now, e.request.created_ms),
                e.request.kind.summary()
            ));
        }
    }
    for f in &listing.errors {
        out.push_str(&format!(
            "error: {}: {}\n",
            f.bottle.display_name(),
            f.error
        ));
    }
    out
}

/// A short age: `12s`, `5m`, `3h`, `2d`.
pub fn age(now_ms: u64, then_ms: u64) -> String {
    let secs = now_ms.saturating_sub(then_ms) / 1000;
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{RequestKind, RequestState};

    fn entry(slug: &str, id: &str, t: u64, pending: bool) -> Entry {
        Entry {
            bottle: BottleRef {
                slug: slug.into(),
                name: slug.into(),
                label: None,
                color: None,
            },
            request: Request {
                id: id.into(),
                created_ms: t,
                kind: RequestKind::Question {
                    question: "q".into(),
                    choices: vec![],
                },
                state: if pending {
                    RequestState::Pending
                } else {
                    RequestState::Answered
                },
                answer: None,
                delivered: false,
            },
        }
    }

    #[test]
    fn entries_sort_across_bottles() {
        let mut es = vec![
            entry("a", "x", 1, false),
            entry("b", "x", 5, true),
            entry("a", "y", 3, true),
            entry("b", "z", 9, false),
        ];
        sort_entries(&mut es);
        let got: Vec<_> = es
            .iter()
            .map(|e| format!("{}/{}", e.bottle.slug, e.request.id))
            .collect();
        assert_eq!(got, ["a/y", "b/x", "b/z", "a/x"]);
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(age(5_000, 0), "5s");
        assert_eq!(age(120_000, 0), "2m");
        assert_eq!(age(7_200_000, 0), "2h");
        assert_eq!(age(0, 10), "0s");
    }
}
