//! The operator console (`bot-bottle supervise`): every bottle's requests in one terminal UI.
//!
//! Rendering is a pure function of a [`ConsoleState`] ([`render`]) and keys are turned into
//! state changes and [`Action`]s by a pure function too ([`ConsoleState::handle_key`]), so frames
//! are snapshot-tested with ratatui's `TestBackend`. [`run`] adds the terminal, a background
//! poller of every bottle's control API (live updates), and sends the answers.

use std::time::Duration;

use crossterm::event::{
    Event as TermEvent, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers,
};
use futures_util::StreamExt;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};
use ratatui::Frame;
use tokio::sync::mpsc;

use crate::client::ControlClient;
use crate::color::BottleColor;
use crate::endpoint::{BottleEndpoint, BottleRef};
use crate::error::{Error, Result};
use crate::ops::{self, age, Entry, Listing};
use crate::types::{now_ms, AnswerBody, Decision, RequestKind, RequestState};

/// What the console shows besides the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The list alone.
    List,
    /// The selected request in full.
    Details,
    /// Typing an answer to the selected question.
    Answering { input: String },
}

/// Everything a frame is drawn from.
#[derive(Debug, Clone)]
pub struct ConsoleState {
    /// Every request of every bottle (pending first), as last polled.
    pub entries: Vec<Entry>,
    /// Bottles that could not be polled, with why.
    pub errors: Vec<(BottleRef, String)>,
    /// How many bottles were polled.
    pub bottle_count: usize,
    /// Index into [`ConsoleState::visible`].
    pub selected: usize,
    pub mode: Mode,
    /// Show answered requests and notices below the pending ones.
    pub show_history: bool,
    /// The outcome of the last action.
    pub status: Option<String>,
    /// "Now" for ages, so a frame depends on the state alone.
    pub now_ms: u64,
    /// False under `NO_COLOR`.
    pub use_color: bool,
}

/// What a key asks the caller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Quit,
    /// Send this answer to the bottle `slug`.
    Answer {
        slug: String,
        id: String,
        body: AnswerBody,
    },
}

impl ConsoleState {
    /// An empty console.
    pub fn new(use_color: bool) -> Self {
        Self {
            entries: Vec::new(),
            errors: Vec::new(),
            bottle_count: 0,
            selected: 0,
            mode: Mode::List,
            show_history: false,
            status: None,
            now_ms: 0,
            use_color,
        }
    }

    /// The rows shown: pending ones, then (with history on) the rest.
    pub fn visible(&self) -> Vec<&Entry> {
        self.entries
            .iter()
            .filter(|e| self.show_history || e.request.is_pending())
            .collect()
    }

    /// The selected row.
    pub fn selected_entry(&self) -> Option<&Entry> {
        self.visible().get(self.selected).copied()
    }

    /// Takes a fresh poll, keeping the selection on the same request when it is still shown.
    pub fn update(&mut self, listing: Listing, bottle_count: usize, now_ms: u64) {
        let keep = self
            .selected_entry()
            .map(|e| (e.bottle.slug.clone(), e.request.id.clone()));
        let mut entries = listing.entries;
        ops::sort_entries(&mut entries);
        self.entries = entries;
        self.errors = listing
            .errors
            .into_iter()
            .map(|f| (f.bottle, f.error))
            .collect();
        self.bottle_count = bottle_count;
        self.now_ms = now_ms;
        if let Some((slug, id)) = keep {
            if let Some(i) = self
                .visible()
                .iter()
                .position(|e| e.bottle.slug == slug && e.request.id == id)
            {
                self.selected = i;
            }
        }
        self.clamp();
        // An answer typed for a request that got answered elsewhere would go nowhere.
        if matches!(self.mode, Mode::Answering { .. })
            && !self
                .selected_entry()
                .is_some_and(|e| e.request.is_pending())
        {
            self.mode = Mode::List;
        }
    }

    fn clamp(&mut self) {
        let n = self.visible().len();
        if self.selected >= n {
            self.selected = n.saturating_sub(1);
        }
    }

    /// Applies a key; returns what the caller must do, if anything.
    pub fn handle_key(&mut self, key: KeyEvent) -> Option<Action> {
        if key.kind != KeyEventKind::Press {
            return None;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Some(Action::Quit);
        }
        if let Mode::Answering { input } = &mut self.mode {
            match key.code {
                KeyCode::Esc => self.mode = Mode::List,
                KeyCode::Backspace => {
                    input.pop();
                }
                KeyCode::Enter => {
                    let text = input.trim().to_owned();
                    if text.is_empty() {
                        self.status = Some("type an answer, or Esc to cancel".into());
                        return None;
                    }
                    let action = self.answer_action(AnswerBody::answer(text));
                    self.mode = Mode::List;
                    return action;
                }
                KeyCode::Char(c) => input.push(c),
                _ => {}
            }
            return None;
        }
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc if self.mode == Mode::List => {
                return Some(Action::Quit)
            }
            KeyCode::Char('q') | KeyCode::Esc => self.mode = Mode::List,
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected += 1;
                self.clamp();
            }
            KeyCode::Enter => {
                self.mode = if self.mode == Mode::Details {
                    Mode::List
                } else {
                    Mode::Details
                }
            }
            KeyCode::Char('h') => {
                self.show_history = !self.show_history;
                self.clamp();
            }
            KeyCode::Char('a') => return self.decide(Decision::Approve),
            KeyCode::Char('d') => return self.decide(Decision::Deny),
            KeyCode::Char('r') => {
                let entry = self.selected_entry()?;
                if !entry.request.is_pending() {
                    self.status = Some(format!("{} is not pending", entry.request.id));
                } else if entry
                    .request
                    .kind
                    .allowed_decisions()
                    .contains(&Decision::Answer)
                {
                    self.mode = Mode::Answering {
                        input: String::new(),
                    };
                } else {
                    self.status = Some(format!(
                        "{} is an {} request: a approves, d denies",
                        entry.request.id,
                        entry.request.kind.label()
                    ));
                }
            }
            _ => {}
        }
        None
    }

    fn decide(&mut self, decision: Decision) -> Option<Action> {
        let entry = self.selected_entry()?;
        if !entry.request.is_pending() {
            self.status = Some(format!("{} is not pending", entry.request.id));
            return None;
        }
        if !entry.request.kind.allowed_decisions().contains(&decision) {
            self.status = Some(format!(
                "{} is a question: r answers it, d declines",
                entry.request.id
            ));
            return None;
        }
        let body = match decision {
            Decision::Approve => AnswerBody::approve(None),
            _ => AnswerBody::deny(None),
        };
        self.answer_action(body)
    }

    fn answer_action(&self, body: AnswerBody) -> Option<Action> {
        let entry = self.selected_entry()?;
        Some(Action::Answer {
            slug: entry.bottle.slug.clone(),
            id: entry.request.id.clone(),
            body,
        })
    }
}

const HELP: &str = "↑/↓ select  a approve  d deny  r answer  enter details  h history  q quit";

/// Draws one frame of the console.
pub fn render(state: &ConsoleState, frame: &mut Frame) {
    let area = frame.area();
    let bottom = match state.mode {
        Mode::Details => Constraint::Length(9),
        Mode::Answering { .. } => Constraint::Length(3),
        Mode::List => Constraint::Length(0),
    };
    let [header, list, extra, status, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        bottom,
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);

    let pending = state
        .entries
        .iter()
        .filter(|e| e.request.is_pending())
        .count();
    let mut title = format!(
        " bot-bottle supervise — {pending} pending · {} bottle{}",
        state.bottle_count,
        if state.bottle_count == 1 { "" } else { "s" }
    );
    if state.show_history {
        title.push_str(" · history");
    }
    frame.render_widget(
        Paragraph::new(title).style(Style::new().add_modifier(Modifier::BOLD)),
        header,
    );

    render_list(state, frame, list);
    match &state.mode {
        Mode::Details => render_details(state, frame, extra),
        Mode::Answering { input } => {
            let id = state
                .selected_entry()
                .map(|e| e.request.id.clone())
                .unwrap_or_default();
            let block =
                Block::bordered().title(format!(" answer {id} (enter sends, esc cancels) "));
            frame.render_widget(Paragraph::new(format!("> {input}█")).block(block), extra);
        }
        Mode::List => {}
    }

    let status_line = match (&state.status, state.errors.first()) {
        (Some(s), _) => Line::from(s.clone()),
        (None, Some((bottle, error))) => Line::from(Span::styled(
            format!("{}: {error}", bottle.display_name()),
            paint(state, Style::new().fg(Color::Red)),
        )),
        (None, None) => Line::from(""),
    };
    frame.render_widget(Paragraph::new(status_line), status);
    frame.render_widget(
        Paragraph::new(HELP).style(paint(state, Style::new().fg(Color::DarkGray))),
        help,
    );
}

fn paint(state: &ConsoleState, style: Style) -> Style {
    if state.use_color {
        style
    } else {
        Style::new().add_modifier(style.add_modifier)
    }
}

fn bottle_style(state: &ConsoleState, bottle: &BottleRef) -> Style {
    match bottle.color.as_deref().and_then(BottleColor::parse) {
        Some(c) if state.use_color => Style::new().fg(c.to_ratatui()).add_modifier(Modifier::BOLD),
        _ => Style::new().add_modifier(Modifier::BOLD),
    }
}

fn render_list(state: &ConsoleState, frame: &mut Frame, area: Rect) {
    let visible = state.visible();
    let title = if state.show_history {
        " requests (pending first, then history) "
    } else {
        " pending requests "
    };
    let block = Block::bordered().title(title);
    let inner_height = usize::from(area.height.saturating_sub(2));
    if visible.is_empty() {
        let text = if state.show_history {
            "No requests yet."
        } else {
            "No pending requests. Agents' questions and approvals appear here."
        };
        frame.render_widget(Paragraph::new(text).block(block), area);
        return;
    }
    let name_width = visible
        .iter()
        .map(|e| e.bottle.display_name().chars().count())
        .max()
        .unwrap_or(0);
    // Scroll so the selection stays in view.
    let offset = if inner_height == 0 {
        0
    } else {
        state.selected.saturating_sub(inner_height - 1)
    };
    let lines: Vec<Line> = visible
        .iter()
        .enumerate()
        .skip(offset)
        .take(inner_height)
        .map(|(i, e)| {
            let selected = i == state.selected;
            let marker = if selected { "▶ " } else { "  " };
            let state_word = match (&e.request.state, &e.request.answer) {
                (RequestState::Pending, _) => "pending".to_owned(),
                (RequestState::Notice, _) => "notice".to_owned(),
                (_, Some(a)) => match a.decision {
                    Decision::Approve => "approved".to_owned(),
                    Decision::Deny => "denied".to_owned(),
                    Decision::Answer => "answered".to_owned(),
                },
                (_, None) => "answered".to_owned(),
            };
            let name = format!("{:<name_width$}", e.bottle.display_name());
            let mut row = Style::new();
            if selected {
                row = row.add_modifier(Modifier::REVERSED);
            }
            if !e.request.is_pending() {
                row = row.add_modifier(Modifier::DIM);
            }
            Line::from(vec![
                Span::raw(marker),
                Span::styled(name, bottle_style(state, &e.bottle)),
                Span::raw(format!(
                    "  {:<8} {:<8} {:<9} {:>4}  {}",
                    e.request.id,
                    e.request.kind.label(),
                    state_word,
                    age(state.now_ms, e.request.created_ms),
                    e.request.kind.summary()
                )),
            ])
            .style(row)
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn render_details(state: &ConsoleState, frame: &mut Frame, area: Rect) {
    let Some(e) = state.selected_entry() else {
        frame.render_widget(
            Paragraph::new("nothing selected").block(Block::bordered().title(" details ")),
            area,
        );
        return;
    };
    let r = &e.request;
    let mut lines = vec![Line::from(vec![
        Span::styled(e.bottle.display_name(), bottle_style(state, &e.bottle)),
        Span::raw(format!(
            "  [{}]  {}  {} ago",
            e.bottle.slug,
            r.id,
            age(state.now_ms, r.created_ms)
        )),
    ])];
    match &r.kind {
        RequestKind::Question { question, choices } => {
            lines.push(Line::from(format!("question: {question}")));
            if !choices.is_empty() {
                lines.push(Line::from(format!("choices: {}", choices.join(" | "))));
            }
        }
        RequestKind::Approval { action, details } => {
            lines.push(Line::from(format!("action: {action}")));
            lines.push(Line::from(format!("details: {details}")));
        }
        RequestKind::Egress { host, port, reason } => {
            lines.push(Line::from(format!(
                "egress: {host}:{port} (passthrough, no credential)"
            )));
            lines.push(Line::from(format!("reason: {reason}")));
        }
        RequestKind::Notice { message, level } => {
            lines.push(Line::from(format!("{level}: {message}")));
        }
    }
    if let Some(a) = &r.answer {
        let mut s = format!("operator: {}", a.decision);
        if let Some(t) = &a.text {
            s.push_str(&format!(" — {t}"));
        }
        if let Some(n) = &a.note {
            s.push_str(&format!(" (note: {n})"));
        }
        lines.push(Line::from(s));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(format!(" {} {} ", r.kind.label(), r.id))),
        area,
    );
}

/// How often every bottle is polled.
const POLL: Duration = Duration::from_secs(1);
/// Re-read the bottle list every this many polls (bottles come and go).
const REDISCOVER_EVERY: u32 = 5;

/// Runs the console until `q`: `endpoints` is called now and then to (re)discover bottles, e.g.
/// `move || endpoints_from_home(&home).endpoints`. Honours `NO_COLOR`.
pub async fn run<P>(endpoints: P) -> Result<()>
where
    P: FnMut() -> Vec<BottleEndpoint> + Send + 'static,
{
    let use_color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut terminal = ratatui::try_init().map_err(Error::Terminal)?;
    let outcome = event_loop(&mut terminal, endpoints, use_color).await;
    let restored = ratatui::try_restore().map_err(Error::Terminal);
    outcome.and(restored)
}

struct Poll {
    listing: Listing,
    endpoints: Vec<BottleEndpoint>,
}

async fn event_loop<P>(
    terminal: &mut ratatui::DefaultTerminal,
    mut provider: P,
    use_color: bool,
) -> Result<()>
where
    P: FnMut() -> Vec<BottleEndpoint> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Poll>(1);
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    // Polling runs beside the UI so a slow bottle never freezes the keys.
    let poller = tokio::spawn({
        let wake = wake.clone();
        async move {
            let mut endpoints = provider();
            let mut n = 0u32;
            loop {
                if n > 0 && n.is_multiple_of(REDISCOVER_EVERY) {
                    endpoints = provider();
                }
                n = n.wrapping_add(1);
                let listing = ops::list_requests(&endpoints, true).await;
                let poll = Poll {
                    listing,
                    endpoints: endpoints.clone(),
                };
                if tx.send(poll).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = wake.notified() => {}
                }
            }
        }
    });
    let mut state = ConsoleState::new(use_color);
    let mut endpoints: Vec<BottleEndpoint> = Vec::new();
    let mut keys = EventStream::new();
    let result = loop {
        state.now_ms = now_ms();
        if let Err(e) = terminal.draw(|f| render(&state, f)) {
            break Err(Error::Terminal(e));
        }
        tokio::select! {
            poll = rx.recv() => {
                let Some(poll) = poll else { break Ok(()) };
                endpoints = poll.endpoints;
                state.update(poll.listing, endpoints.len(), now_ms());
            }
            key = keys.next() => match key {
                None => break Ok(()),
                Some(Err(e)) => break Err(Error::Terminal(e)),
                Some(Ok(TermEvent::Key(key))) => match state.handle_key(key) {
                    Some(Action::Quit) => break Ok(()),
                    Some(Action::Answer { slug, id, body }) => {
                        state.status = Some(send_answer(&endpoints, &slug, &id, &body).await);
                        wake.notify_one();
                    }
                    None => {}
                },
                Some(Ok(_)) => {}
            },
        }
    };
    poller.abort();
    result
}

async fn send_answer(
    endpoints: &[BottleEndpoint],
    slug: &str,
    id: &str,
    body: &AnswerBody,
) -> String {
    let Some(endpoint) = endpoints.iter().find(|e| e.slug == slug) else {
        return format!("bottle {slug} is gone");
    };
    let outcome = match ControlClient::new(endpoint.clone()) {
        Ok(client) => client.answer(id, body).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(_) => format!(
            "{id}: {} sent to {}",
            body.decision,
            endpoint.display_name()
        ),
        Err(e) => format!("{id}: {e}"),
    }
}
