//! The start modal: asks for the bottle's label (pre-filled; the first keystroke replaces the
//! suggestion) and then optionally a colour. The editing logic lives in the pure state
//! machines [`LabelInput`] and [`ColorPick`]; [`ask_identity`] drives them on the real
//! terminal (raw mode + alternate screen, always restored, even on error).

use std::io::{IsTerminal, Write};

use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::{cursor, queue, style, terminal};

use crate::color::Color;
use crate::identity::{colors_enabled_from, sanitize};
use crate::{Error, Result};

/// Longest label the modal accepts, in characters.
pub const MAX_LABEL_CHARS: usize = 64;

/// Whether `start` should show the modal: only with a TTY on stdin and stdout and when neither
/// `--label` nor `--color` was given.
pub fn should_prompt(label_given: bool, color_given: bool, is_tty: bool) -> bool {
    is_tty && !label_given && !color_given
}

/// Whether stdin and stdout are both terminals (the `is_tty` input of [`should_prompt`]).
pub fn stdio_is_tty() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// A key as the label editor understands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelKey {
    /// A printable character.
    Char(char),
    /// Delete before the cursor.
    Backspace,
    /// Delete at the cursor.
    Delete,
    /// Cursor left.
    Left,
    /// Cursor right.
    Right,
    /// Cursor to start.
    Home,
    /// Cursor to end.
    End,
    /// Clear the whole line (Ctrl-U).
    Clear,
    /// Accept.
    Enter,
    /// Cancel the modal (Esc, Ctrl-C).
    Cancel,
}

/// What a key did to the label editor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelOutcome {
    /// Still editing.
    Editing,
    /// Enter: the label (trimmed; may be empty, meaning "no label").
    Accepted(String),
    /// Esc / Ctrl-C.
    Cancelled,
}

/// Line editor whose pre-filled text is replaced by the first printable keystroke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelInput {
    text: Vec<char>,
    cursor: usize,
    pristine: bool,
}

impl LabelInput {
    /// Starts with `default` (sanitised, truncated) selected for replacement, cursor at the end.
    pub fn new(default: &str) -> Self {
        let text: Vec<char> = sanitize(default).chars().take(MAX_LABEL_CHARS).collect();
        LabelInput {
            cursor: text.len(),
            text,
            pristine: true,
        }
    }

    /// The current text.
    pub fn text(&self) -> String {
        self.text.iter().collect()
    }

    /// Cursor position in characters.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// True until the first key that edits or moves: the text is still the suggestion.
    pub fn is_pristine(&self) -> bool {
        self.pristine
    }

    /// Applies one key.
    pub fn handle(&mut self, key: LabelKey) -> LabelOutcome {
        let was_pristine = std::mem::replace(&mut self.pristine, false);
        match key {
            LabelKey::Enter => {
                self.pristine = was_pristine;
                return LabelOutcome::Accepted(self.text().trim().to_owned());
            }
            LabelKey::Cancel => {
                self.pristine = was_pristine;
                return LabelOutcome::Cancelled;
            }
            // The suggestion is "selected": typing or deleting replaces all of it.
            LabelKey::Char(_) | LabelKey::Backspace | LabelKey::Delete if was_pristine => {
                self.text.clear();
                self.cursor = 0;
                if let LabelKey::Char(c) = key {
                    self.insert(c);
                }
            }
            LabelKey::Char(c) => self.insert(c),
            LabelKey::Backspace => {
                if self.cursor > 0 {
                    self.cursor -= 1;
                    self.text.remove(self.cursor);
                }
            }
            LabelKey::Delete => {
                if self.cursor < self.text.len() {
                    self.text.remove(self.cursor);
                }
            }
            LabelKey::Left => self.cursor = self.cursor.saturating_sub(1),
            LabelKey::Right => self.cursor = (self.cursor + 1).min(self.text.len()),
            LabelKey::Home => self.cursor = 0,
            LabelKey::End => self.cursor = self.text.len(),
            LabelKey::Clear => {
                self.text.clear();
                self.cursor = 0;
            }
        }
        LabelOutcome::Editing
    }

    fn insert(&mut self, c: char) {
        // Control characters would let a label carry escapes; the length cap bounds the title.
        if !c.is_control() && self.text.len() < MAX_LABEL_CHARS {
            self.text.insert(self.cursor, c);
            self.cursor += 1;
        }
    }
}

/// A key as the colour list understands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickKey {
    /// Previous entry (wraps).
    Up,
    /// Next entry (wraps).
    Down,
    /// First entry.
    Home,
    /// Last entry.
    End,
    /// Choose the highlighted colour.
    Enter,
    /// No colour (`s`, Esc).
    Skip,
    /// Cancel the whole modal (Ctrl-C).
    Cancel,
}

/// What a key did to the colour list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickOutcome {
    /// Still choosing.
    Picking,
    /// Enter (`Some`) or skip (`None`).
    Chosen(Option<Color>),
    /// Ctrl-C.
    Cancelled,
}

/// Selection over [`Color::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColorPick {
    selected: usize,
}

impl ColorPick {
    /// Starts on `preset`, or on the first colour.
    pub fn new(preset: Option<Color>) -> Self {
        ColorPick {
            selected: preset.map_or(0, |c| usize::from(c.index())),
        }
    }

    /// The highlighted colour.
    pub fn selected(&self) -> Color {
        Color::ALL[self.selected]
    }

    /// Applies one key.
    pub fn handle(&mut self, key: PickKey) -> PickOutcome {
        let n = Color::ALL.len();
        match key {
            PickKey::Up => self.selected = (self.selected + n - 1) % n,
            PickKey::Down => self.selected = (self.selected + 1) % n,
            PickKey::Home => self.selected = 0,
            PickKey::End => self.selected = n - 1,
            PickKey::Enter => return PickOutcome::Chosen(Some(self.selected())),
            PickKey::Skip => return PickOutcome::Chosen(None),
            PickKey::Cancel => return PickOutcome::Cancelled,
        }
        PickOutcome::Picking
    }
}

fn is_ctrl_c(k: &KeyEvent) -> bool {
    k.modifiers.contains(KeyModifiers::CONTROL) && matches!(k.code, KeyCode::Char('c' | 'C'))
}

fn label_key(k: &KeyEvent) -> Option<LabelKey> {
    if is_ctrl_c(k) {
        return Some(LabelKey::Cancel);
    }
    if k.modifiers.contains(KeyModifiers::CONTROL) {
        return matches!(k.code, KeyCode::Char('u' | 'U')).then_some(LabelKey::Clear);
    }
    Some(match k.code {
        KeyCode::Char(c) => LabelKey::Char(c),
        KeyCode::Backspace => LabelKey::Backspace,
        KeyCode::Delete => LabelKey::Delete,
        KeyCode::Left => LabelKey::Left,
        KeyCode::Right => LabelKey::Right,
        KeyCode::Home => LabelKey::Home,
        KeyCode::End => LabelKey::End,
        KeyCode::Enter => LabelKey::Enter,
        KeyCode::Esc => LabelKey::Cancel,
        _ => return None,
    })
}

fn pick_key(k: &KeyEvent) -> Option<PickKey> {
    if is_ctrl_c(k) {
        return Some(PickKey::Cancel);
    }
    Some(match k.code {
        KeyCode::Up | KeyCode::Char('k') => PickKey::Up,
        KeyCode::Down | KeyCode::Char('j') => PickKey::Down,
        KeyCode::Home => PickKey::Home,
        KeyCode::End => PickKey::End,
        KeyCode::Enter => PickKey::Enter,
        KeyCode::Esc | KeyCode::Char('s' | 'S') => PickKey::Skip,
        _ => return None,
    })
}

/// Raw mode + alternate screen for the modal's lifetime; restored on drop (error paths too).
struct Screen<W: Write> {
    out: W,
}

impl<W: Write> Screen<W> {
    fn enter(out: W) -> Result<Self> {
        terminal::enable_raw_mode().map_err(Error::Terminal)?;
        // From here on, drop restores whatever was set up, even if the next call fails.
        let mut screen = Screen { out };
        queue!(screen.out, terminal::EnterAlternateScreen).map_err(Error::Terminal)?;
        screen.out.flush().map_err(Error::Terminal)?;
        Ok(screen)
    }
}

impl<W: Write> Drop for Screen<W> {
    fn drop(&mut self) {
        // Best effort on the way out; each step independent so one failure does not skip others.
        let _ = queue!(self.out, cursor::Show, terminal::LeaveAlternateScreen);
        let _ = self.out.flush();
        let _ = terminal::disable_raw_mode();
    }
}

fn draw_label<W: Write>(out: &mut W, input: &LabelInput) -> std::io::Result<()> {
    let hint = if input.is_pristine() {
        "type to replace the suggestion · Enter accept · Esc cancel"
    } else {
        "Enter accept · Esc cancel · Ctrl-U clear"
    };
    let prompt = "  Label: ";
    queue!(
        out,
        terminal::Clear(terminal::ClearType::All),
        cursor::MoveTo(0, 1),
        style::Print("  bot-bottle · name this bottle"),
        cursor::MoveTo(0, 3),
        style::Print(prompt),
        style::Print(input.text()),
        cursor::MoveTo(0, 5),
        style::Print(format!("  ({hint})")),
        cursor::MoveTo(
            u16::try_from(prompt.len() + input.cursor()).unwrap_or(u16::MAX),
            3
        ),
        cursor::Show,
    )?;
    out.flush()
}

fn draw_pick<W: Write>(
    out: &mut W,
    label: &str,
    pick: &ColorPick,
    colored: bool,
) -> std::io::Result<()> {
    let shown = if label.is_empty() {
        "this bottle"
    } else {
        label
    };
    queue!(
        out,
        cursor::Hide,
        terminal::Clear(terminal::ClearType::All),
        cursor::MoveTo(0, 1),
        style::Print(format!("  Colour for {shown}")),
        cursor::MoveTo(0, 2),
        style::Print("  (Up/Down move · Enter choose · s or Esc: no colour)"),
    )?;
    for (row, c) in Color::ALL.iter().enumerate() {
        let marker = if *c == pick.selected() { "> " } else { "  " };
        let name = if colored {
            format!("\x1b[{}m{}\x1b[39m", c.sgr_fg(), c.name())
        } else {
            c.name().to_owned()
        };
        queue!(
            out,
            cursor::MoveTo(0, u16::try_from(4 + row).unwrap_or(u16::MAX)),
            style::Print(format!("  {marker}{name}")),
        )?;
    }
    out.flush()
}

fn next_key() -> Result<KeyEvent> {
    loop {
        if let Event::Key(k) = event::read().map_err(Error::Terminal)? {
            if k.kind != KeyEventKind::Release {
                return Ok(k);
            }
        }
    }
}

/// Runs the modal on the real terminal. `Ok(None)` means the user cancelled (Esc in the label
/// step, Ctrl-C anywhere); otherwise the label (trimmed, possibly empty = no label) and the
/// colour (`None` = skipped). The terminal is restored before this returns, on every path.
pub fn ask_identity(
    default_label: &str,
    preset_color: Option<Color>,
) -> Result<Option<(String, Option<Color>)>> {
    let colored = colors_enabled_from(std::env::var_os("NO_COLOR").as_deref(), true);
    let mut screen = Screen::enter(std::io::stdout())?;
    let mut input = LabelInput::new(default_label);
    let label = loop {
        draw_label(&mut screen.out, &input).map_err(Error::Terminal)?;
        let Some(key) = label_key(&next_key()?) else {
            continue;
        };
        match input.handle(key) {
            LabelOutcome::Editing => {}
            LabelOutcome::Accepted(label) => break label,
            LabelOutcome::Cancelled => return Ok(None),
        }
    };
    let mut pick = ColorPick::new(preset_color);
    loop {
        draw_pick(&mut screen.out, &label, &pick, colored).map_err(Error::Terminal)?;
        let Some(key) = pick_key(&next_key()?) else {
            continue;
        };
        match pick.handle(key) {
            PickOutcome::Picking => {}
            PickOutcome::Chosen(color) => return Ok(Some((label, color))),
            PickOutcome::Cancelled => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(input: &mut LabelInput, s: &str) {
        for c in s.chars() {
            assert_eq!(input.handle(LabelKey::Char(c)), LabelOutcome::Editing);
        }
    }

    #[test]
    fn first_printable_key_replaces_the_suggestion() {
        let mut i = LabelInput::new("claude-implementer");
        assert!(i.is_pristine());
        typed(&mut i, "bob");
        assert_eq!(i.text(), "bob");
        assert_eq!(i.cursor(), 3);
        assert_eq!(
            i.handle(LabelKey::Enter),
            LabelOutcome::Accepted("bob".into())
        );
    }

    #[test]
    fn later_keys_edit_normally() {
        let mut i = LabelInput::new("x");
        typed(&mut i, "bobby");
        i.handle(LabelKey::Backspace);
        i.handle(LabelKey::Home);
        i.handle(LabelKey::Delete);
        typed(&mut i, "R");
        i.handle(LabelKey::End);
        i.handle(LabelKey::Left);
        typed(&mut i, "-");
        assert_eq!(i.text(), "Rob-b");
        i.handle(LabelKey::Clear);
        assert_eq!(i.text(), "");
    }

    #[test]
    fn enter_first_accepts_the_default() {
        let mut i = LabelInput::new("  alice ");
        assert_eq!(
            i.handle(LabelKey::Enter),
            LabelOutcome::Accepted("alice".into())
        );
    }

    #[test]
    fn backspace_first_clears() {
        let mut i = LabelInput::new("alice");
        i.handle(LabelKey::Backspace);
        assert_eq!(i.text(), "");
        assert!(!i.is_pristine());
        typed(&mut i, "z");
        assert_eq!(
            i.handle(LabelKey::Enter),
            LabelOutcome::Accepted("z".into())
        );
    }

    #[test]
    fn moving_first_keeps_the_suggestion_for_editing() {
        let mut i = LabelInput::new("alice");
        i.handle(LabelKey::Left);
        typed(&mut i, "X");
        assert_eq!(i.text(), "alicXe");
    }

    #[test]
    fn esc_cancels_at_any_time() {
        let mut i = LabelInput::new("alice");
        assert_eq!(i.handle(LabelKey::Cancel), LabelOutcome::Cancelled);
        typed(&mut i, "b");
        assert_eq!(i.handle(LabelKey::Cancel), LabelOutcome::Cancelled);
    }

    #[test]
    fn control_chars_and_overlong_labels_are_refused() {
        let mut i = LabelInput::new("a\x1b[31mb");
        assert_eq!(i.text(), "a[31mb");
        typed(&mut i, "\x07\x1b");
        assert_eq!(i.text(), "");
        typed(&mut i, &"y".repeat(MAX_LABEL_CHARS + 10));
        assert_eq!(i.text().chars().count(), MAX_LABEL_CHARS);
    }

    #[test]
    fn colour_pick_moves_wraps_and_chooses() {
        let mut p = ColorPick::new(None);
        assert_eq!(p.selected(), Color::Black);
        assert_eq!(p.handle(PickKey::Up), PickOutcome::Picking);
        assert_eq!(p.selected(), Color::BrightWhite);
        p.handle(PickKey::Down);
        p.handle(PickKey::Down);
        assert_eq!(
            p.handle(PickKey::Enter),
            PickOutcome::Chosen(Some(Color::Red))
        );
        p.handle(PickKey::End);
        assert_eq!(p.selected(), Color::BrightWhite);
        p.handle(PickKey::Home);
        assert_eq!(p.selected(), Color::Black);
    }

    #[test]
    fn colour_pick_starts_on_preset_and_can_skip_or_cancel() {
        let mut p = ColorPick::new(Some(Color::Cyan));
        assert_eq!(p.selected(), Color::Cyan);
        assert_eq!(p.handle(PickKey::Skip), PickOutcome::Chosen(None));
        assert_eq!(p.handle(PickKey::Cancel), PickOutcome::Cancelled);
    }

    #[test]
    fn key_mapping() {
        let k = |code, m| KeyEvent::new(code, m);
        assert_eq!(
            label_key(&k(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(LabelKey::Cancel)
        );
        assert_eq!(
            label_key(&k(KeyCode::Char('u'), KeyModifiers::CONTROL)),
            Some(LabelKey::Clear)
        );
        assert_eq!(
            label_key(&k(KeyCode::Char('a'), KeyModifiers::CONTROL)),
            None
        );
        assert_eq!(
            label_key(&k(KeyCode::Char('B'), KeyModifiers::SHIFT)),
            Some(LabelKey::Char('B'))
        );
        assert_eq!(
            label_key(&k(KeyCode::Esc, KeyModifiers::NONE)),
            Some(LabelKey::Cancel)
        );
        assert_eq!(
            pick_key(&k(KeyCode::Char('s'), KeyModifiers::NONE)),
            Some(PickKey::Skip)
        );
        assert_eq!(
            pick_key(&k(KeyCode::Esc, KeyModifiers::NONE)),
            Some(PickKey::Skip)
        );
        assert_eq!(
            pick_key(&k(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(PickKey::Cancel)
        );
        assert_eq!(
            pick_key(&k(KeyCode::Down, KeyModifiers::NONE)),
            Some(PickKey::Down)
        );
    }

    #[test]
    fn prompt_only_on_a_tty_without_flags() {
        assert!(should_prompt(false, false, true));
        assert!(!should_prompt(true, false, true));
        assert!(!should_prompt(false, true, true));
        assert!(!should_prompt(false, false, false));
    }
}
