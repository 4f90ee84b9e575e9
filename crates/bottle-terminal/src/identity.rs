//! A bottle's identity as the terminal shows it: `label (name)` with an optional colour, the
//! exact escape sequences that set it before attaching and reset it afterwards, and SGR
//! painting of the identity for tables (`list`).
//!
//! Wire format (BEL-terminated OSC, which every terminal that speaks OSC accepts):
//!
//! | step | bytes |
//! |---|---|
//! | push title (xterm title stack) | `ESC [ 22 ; 0 t` |
//! | icon + window title | `ESC ] 0 ; <title> BEL` |
//! | window title | `ESC ] 2 ; <title> BEL` |
//! | palette slot of the colour | `ESC ] 4 ; <index> ; rgb:rr/gg/bb BEL` |
//! | background tint | `ESC ] 11 ; rgb:rr/gg/bb BEL` |
//!
//! Reset: `ESC ] 104 ; <index> BEL`, `ESC ] 111 BEL` (only when a colour was set), then
//! `ESC [ 23 ; 0 t` (pop the title pushed above).

use std::ffi::OsStr;
use std::fmt;
use std::io::IsTerminal;

use crate::color::Color;

/// Longest title/label we emit, in characters; terminals truncate anyway and it bounds output.
pub const MAX_TITLE_CHARS: usize = 200;

/// Who a bottle is, as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Optional display label (e.g. `bob`); empty is treated as absent.
    pub label: Option<String>,
    /// The bottle's agent name (e.g. `claude-implementer`).
    pub name: String,
    /// Optional colour for tints and painting.
    pub color: Option<Color>,
}

impl Identity {
    /// Convenience constructor.
    pub fn new(label: Option<&str>, name: &str, color: Option<Color>) -> Self {
        Identity {
            label: label.map(str::to_owned),
            name: name.to_owned(),
            color,
        }
    }

    /// The sanitised title: `label (name)`, or `name` without a label.
    pub fn title(&self) -> String {
        sanitize(&self.to_string())
    }

    /// Bytes to write before attaching: title push, OSC 0 + OSC 2 title, and with a colour
    /// the OSC 4 palette slot and OSC 11 background tint.
    pub fn set_sequence(&self) -> Vec<u8> {
        let title = self.title();
        let mut s = String::from("\x1b[22;0t");
        s.push_str(&format!("\x1b]0;{title}\x07\x1b]2;{title}\x07"));
        if let Some(c) = self.color {
            s.push_str(&format!(
                "\x1b]4;{};{}\x07\x1b]11;{}\x07",
                c.index(),
                c.palette_rgb().x11_spec(),
                c.background_tint().x11_spec()
            ));
        }
        s.into_bytes()
    }

    /// Bytes that undo [`Identity::set_sequence`]: reset the palette slot (OSC 104) and the
    /// background (OSC 111) if a colour was set, then pop the saved title.
    pub fn reset_sequence(&self) -> Vec<u8> {
        let mut s = String::new();
        if let Some(c) = self.color {
            s.push_str(&format!("\x1b]104;{}\x07\x1b]111\x07", c.index()));
        }
        s.push_str("\x1b[23;0t");
        s.into_bytes()
    }

    /// `label (name)` (or `name`) painted in the colour when `enabled`; see [`paint_with`].
    pub fn painted(&self, enabled: bool) -> String {
        match self.color {
            Some(c) => paint_with(&self.to_string(), c, enabled),
            None => sanitize(&self.to_string()),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.label.as_deref().map(str::trim) {
            Some(label) if !label.is_empty() => write!(f, "{label} ({})", self.name),
            _ => f.write_str(&self.name),
        }
    }
}

/// Removes every control character (C0 incl. ESC and BEL, DEL, C1 incl. the 8-bit CSI/OSC/ST)
/// and truncates to [`MAX_TITLE_CHARS`], so user text can never start or end an escape
/// sequence of its own.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_TITLE_CHARS)
        .collect()
}

/// `text` (sanitised) wrapped in the colour's SGR foreground code when `enabled`, plain otherwise.
pub fn paint_with(text: &str, color: Color, enabled: bool) -> String {
    let text = sanitize(text);
    if enabled {
        format!("\x1b[{}m{text}\x1b[39m", color.sgr_fg())
    } else {
        text
    }
}

/// [`paint_with`] with the decision taken from the environment ([`colors_enabled`]).
pub fn paint(text: &str, color: Color) -> String {
    paint_with(text, color, colors_enabled())
}

/// Whether coloured text is wanted: `NO_COLOR` unset (or empty, per no-color.org) and stdout a TTY.
pub fn colors_enabled() -> bool {
    colors_enabled_from(
        std::env::var_os("NO_COLOR").as_deref(),
        std::io::stdout().is_terminal(),
    )
}

/// The injectable form of [`colors_enabled`]. Titles and tints ignore `NO_COLOR` (they are not
/// text colouring); only SGR painting honours it.
pub fn colors_enabled_from(no_color: Option<&OsStr>, stdout_is_tty: bool) -> bool {
    let no_color = no_color.is_some_and(|v| !v.is_empty());
    stdout_is_tty && !no_color
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bob() -> Identity {
        Identity::new(Some("bob"), "claude-implementer", Some(Color::Red))
    }

    #[test]
    fn display_with_and_without_label() {
        assert_eq!(bob().to_string(), "bob (claude-implementer)");
        assert_eq!(Identity::new(None, "x", None).to_string(), "x");
        assert_eq!(Identity::new(Some("  "), "x", None).to_string(), "x");
    }

    #[test]
    fn set_sequence_exact_with_colour() {
        assert_eq!(
            bob().set_sequence(),
            b"\x1b[22;0t\
              \x1b]0;bob (claude-implementer)\x07\
              \x1b]2;bob (claude-implementer)\x07\
              \x1b]4;1;rgb:cd/00/00\x07\
              \x1b]11;rgb:27/0e/0e\x07"
                .to_vec()
        );
        assert_eq!(
            bob().reset_sequence(),
            b"\x1b]104;1\x07\x1b]111\x07\x1b[23;0t".to_vec()
        );
    }

    #[test]
    fn set_sequence_exact_without_colour() {
        let id = Identity::new(None, "codex-1", None);
        assert_eq!(
            id.set_sequence(),
            b"\x1b[22;0t\x1b]0;codex-1\x07\x1b]2;codex-1\x07".to_vec()
        );
        assert_eq!(id.reset_sequence(), b"\x1b[23;0t".to_vec());
    }

    #[test]
    fn bright_colour_uses_its_own_slot() {
        let id = Identity::new(Some("a"), "b", Some(Color::BrightCyan));
        let set = String::from_utf8(id.set_sequence()).unwrap();
        assert!(set.ends_with("\x1b]4;14;rgb:00/ff/ff\x07\x1b]11;rgb:0e/2d/2d\x07"));
        assert_eq!(
            id.reset_sequence(),
            b"\x1b]104;14\x07\x1b]111\x07\x1b[23;0t".to_vec()
        );
    }

    #[test]
    fn labels_cannot_inject_escapes() {
        let evil = "x\x1b]11;rgb:ff/00/00\x07\x1b[2J\u{9b}31m\u{9d}0;pwn\u{9c}\r\ny\u{7f}";
        let id = Identity::new(Some(evil), "n\x07", Some(Color::Blue));
        let title = id.title();
        assert_eq!(title, "x]11;rgb:ff/00/00[2J31m0;pwny (n)");
        let set = id.set_sequence();
        // Exactly our own escapes: 1 CSI push + 4 OSC introducers, and 4 BELs terminating them.
        assert_eq!(set.iter().filter(|b| **b == 0x1b).count(), 5);
        assert_eq!(set.iter().filter(|b| **b == 0x07).count(), 4);
        assert!(!String::from_utf8(set)
            .unwrap()
            .chars()
            .any(|c| ('\u{80}'..='\u{9f}').contains(&c)));
    }

    #[test]
    fn long_titles_are_truncated() {
        let id = Identity::new(Some(&"é".repeat(500)), "n", None);
        assert_eq!(id.title().chars().count(), MAX_TITLE_CHARS);
    }

    #[test]
    fn paint_honours_the_decision() {
        assert_eq!(
            paint_with("bob (x)", Color::Magenta, true),
            "\x1b[35mbob (x)\x1b[39m"
        );
        assert_eq!(paint_with("bob (x)", Color::Magenta, false), "bob (x)");
        assert_eq!(
            paint_with("a\x1bb", Color::BrightRed, true),
            "\x1b[91mab\x1b[39m"
        );
        assert_eq!(
            bob().painted(true),
            "\x1b[31mbob (claude-implementer)\x1b[39m"
        );
        assert_eq!(bob().painted(false), "bob (claude-implementer)");
        assert_eq!(Identity::new(None, "n", None).painted(true), "n");
    }

    #[test]
    fn no_color_and_tty_decide() {
        assert!(colors_enabled_from(None, true));
        assert!(!colors_enabled_from(None, false));
        assert!(!colors_enabled_from(Some(OsStr::new("1")), true));
        // no-color.org: an empty NO_COLOR does not disable colour.
        assert!(colors_enabled_from(Some(OsStr::new("")), true));
    }
}
