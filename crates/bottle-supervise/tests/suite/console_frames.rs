//! Console frames, drawn with ratatui's `TestBackend` from a `ConsoleState` and snapshotted.

use bottle_supervise::console::{render, Action, ConsoleState, Mode};
use bottle_supervise::ops::{Entry, Listing};
use bottle_supervise::types::{
    Answer, AnswerBody, Decision, Level, Request, RequestKind, RequestState,
};
use bottle_supervise::BottleRef;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::style::Color;
use ratatui::Terminal;

const NOW: u64 = 1_800_000_000_000;

fn bottle(slug: &str, name: &str, label: Option<&str>, color: Option<&str>) -> BottleRef {
    BottleRef {
        slug: slug.into(),
        name: name.into(),
        label: label.map(Into::into),
        color: color.map(Into::into),
    }
}

fn entry(b: &BottleRef, id: &str, ago_s: u64, kind: RequestKind, answer: Option<Answer>) -> Entry {
    let state = match (&kind, &answer) {
        (RequestKind::Notice { .. }, _) => RequestState::Notice,
        (_, Some(_)) => RequestState::Answered,
        _ => RequestState::Pending,
    };
    Entry {
        bottle: b.clone(),
        request: Request {
            id: id.into(),
            created_ms: NOW - ago_s * 1000,
            kind,
            state,
            answer,
            delivered: false,
        },
    }
}

fn busy_state() -> ConsoleState {
    let fixer = bottle("impl-3f9k2a", "implementer", Some("Fixer"), Some("cyan"));
    let reviewer = bottle("review-8x2m1q", "reviewer", None, Some("bright-magenta"));
    let docs = bottle("docs-p4n7t2", "writer", Some("Docs"), Some("#ff8700"));
    let entries = vec![
        entry(
            &fixer,
            "k3m9x2",
            125,
            RequestKind::Approval {
                action: "force-push bot/fix to origin".into(),
                details: "git push --force origin bot/fix (rewrites 2 commits)".into(),
            },
            None,
        ),
        entry(
            &reviewer,
            "p7q2w8",
            40,
            RequestKind::Question {
                question: "Should I follow the old naming scheme?".into(),
                choices: vec!["yes".into(), "no".into()],
            },
            None,
        ),
        entry(
            &docs,
            "h4j6n3",
            5,
            RequestKind::Egress {
                host: "pypi.org".into(),
                port: 443,
                reason: "install mkdocs".into(),
            },
            None,
        ),
        entry(
            &fixer,
            "c8v5b2",
            3600,
            RequestKind::Question {
                question: "Which branch?".into(),
                choices: vec![],
            },
            Some(Answer {
                decision: Decision::Answer,
                text: Some("dev".into()),
                note: None,
                answered_ms: NOW - 3500 * 1000,
            }),
        ),
        entry(
            &docs,
            "n2m8r4",
            7200,
            RequestKind::Notice {
                message: "site builds".into(),
                level: Level::Info,
            },
            None,
        ),
    ];
    let mut state = ConsoleState::new(true);
    state.update(
        Listing {
            entries,
            errors: vec![],
        },
        3,
        NOW,
    );
    state
}

fn draw(state: &ConsoleState) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(100, 18)).unwrap();
    terminal.draw(|f| render(state, f)).unwrap();
    terminal
}

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

#[test]
fn frame_empty() {
    let state = ConsoleState::new(true);
    insta::assert_snapshot!("empty", draw(&state).backend());
}

#[test]
fn frame_several_bottles_with_pending_requests() {
    let mut state = busy_state();
    // Pending first, oldest first; the answered one and the notice are hidden.
    let ids: Vec<_> = state
        .visible()
        .iter()
        .map(|e| e.request.id.clone())
        .collect();
    assert_eq!(ids, ["k3m9x2", "p7q2w8", "h4j6n3"]);
    assert_eq!(state.handle_key(key(KeyCode::Down)), None);
    let terminal = draw(&state);
    insta::assert_snapshot!("several_bottles_pending", terminal.backend());

    // Each bottle's tag is drawn in its colour.
    let buffer = terminal.backend().buffer();
    let row_of = |needle: &str| {
        (0..buffer.area.height)
            .find(|y| {
                let line: String = (0..buffer.area.width)
                    .map(|x| buffer[(x, *y)].symbol().to_string())
                    .collect();
                line.contains(needle)
            })
            .unwrap()
    };
    let y = row_of("k3m9x2");
    assert_eq!(
        buffer[(3, y)].fg,
        Color::Cyan,
        "Fixer (implementer) in cyan"
    );
    let y = row_of("p7q2w8");
    assert_eq!(buffer[(3, y)].fg, Color::LightMagenta);
    let y = row_of("h4j6n3");
    assert_eq!(buffer[(3, y)].fg, Color::Rgb(0xff, 0x87, 0x00));
}

#[test]
fn frame_answering_a_question() {
    let mut state = busy_state();
    state.handle_key(key(KeyCode::Down));
    assert_eq!(state.handle_key(key(KeyCode::Char('r'))), None);
    for c in "no, use the new one".chars() {
        state.handle_key(key(KeyCode::Char(c)));
    }
    state.handle_key(key(KeyCode::Backspace));
    state.handle_key(key(KeyCode::Char('e')));
    assert_eq!(
        state.mode,
        Mode::Answering {
            input: "no, use the new one".into()
        }
    );
    insta::assert_snapshot!("answering", draw(&state).backend());
    assert_eq!(
        state.handle_key(key(KeyCode::Enter)),
        Some(Action::Answer {
            slug: "review-8x2m1q".into(),
            id: "p7q2w8".into(),
            body: AnswerBody::answer("no, use the new one"),
        })
    );
    assert_eq!(state.mode, Mode::List);
}

#[test]
fn frame_history() {
    let mut state = busy_state();
    state.handle_key(key(KeyCode::Char('h')));
    assert_eq!(state.visible().len(), 5);
    insta::assert_snapshot!("history", draw(&state).backend());
}

#[test]
fn frame_details() {
    let mut state = busy_state();
    state.handle_key(key(KeyCode::Enter));
    assert_eq!(state.mode, Mode::Details);
    insta::assert_snapshot!("details", draw(&state).backend());
}

#[test]
fn keys_fit_the_request_kind() {
    let mut state = busy_state();
    // An approval: `a` approves, `r` explains.
    assert_eq!(
        state.handle_key(key(KeyCode::Char('a'))),
        Some(Action::Answer {
            slug: "impl-3f9k2a".into(),
            id: "k3m9x2".into(),
            body: AnswerBody::approve(None),
        })
    );
    assert_eq!(state.handle_key(key(KeyCode::Char('r'))), None);
    assert!(state.status.as_deref().unwrap().contains("a approves"));
    // A question: `a` is refused with a hint, `d` declines.
    state.handle_key(key(KeyCode::Down));
    assert_eq!(state.handle_key(key(KeyCode::Char('a'))), None);
    assert!(state.status.as_deref().unwrap().contains("r answers it"));
    assert!(matches!(
        state.handle_key(key(KeyCode::Char('d'))),
        Some(Action::Answer { body, .. }) if body == AnswerBody::deny(None)
    ));
    // The selection follows its request across a poll that reorders rows.
    let mut listing_entries = state.entries.clone();
    listing_entries.remove(0);
    state.update(
        Listing {
            entries: listing_entries,
            errors: vec![],
        },
        3,
        NOW,
    );
    assert_eq!(state.selected_entry().unwrap().request.id, "p7q2w8");
    assert_eq!(
        state.handle_key(key(KeyCode::Char('q'))),
        Some(Action::Quit)
    );
}

#[test]
fn no_color_draws_no_colours() {
    let mut state = busy_state();
    state.use_color = false;
    let terminal = draw(&state);
    let buffer = terminal.backend().buffer();
    assert!(buffer
        .content()
        .iter()
        .all(|c| c.fg == Color::Reset && c.bg == Color::Reset));
}
