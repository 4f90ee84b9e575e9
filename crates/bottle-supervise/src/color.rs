//! Bottle colours: ANSI colour names (`red`, `bright-blue`, `bright_blue`, `brightblue`) or
//! `#rrggbb`, for the console (ratatui) and for plain terminal output (SGR escapes).

use ratatui::style::Color;

/// A parsed bottle colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BottleColor {
    /// One of the 16 ANSI colours (0–15).
    Ansi(u8),
    Rgb(u8, u8, u8),
}

const NAMES: [&str; 8] = [
    "black", "red", "green", "yellow", "blue", "magenta", "cyan", "white",
];

impl BottleColor {
    /// Parses a colour; `None` for an unknown one (shown uncoloured).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        if let Some(hex) = s.strip_prefix('#') {
            if hex.len() != 6 {
                return None;
            }
            let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
            return Some(BottleColor::Rgb(byte(0)?, byte(2)?, byte(4)?));
        }
        let compact: String = s.chars().filter(|c| *c != '-' && *c != '_').collect();
        let (bright, base) = match compact.strip_prefix("bright") {
            Some(rest) => (true, rest.to_owned()),
            None => (false, compact),
        };
        let base = match base.as_str() {
            "grey" | "gray" => return Some(BottleColor::Ansi(if bright { 7 } else { 8 })),
            "purple" => "magenta",
            "orange" => return Some(BottleColor::Rgb(0xff, 0x87, 0x00)),
            other => other,
        };
        let index = NAMES.iter().position(|n| *n == base)?;
        let index = u8::try_from(index).ok()?;
        Some(BottleColor::Ansi(if bright { index + 8 } else { index }))
    }

    /// The ratatui colour.
    pub fn to_ratatui(self) -> Color {
        match self {
            BottleColor::Ansi(i) => match i {
                0 => Color::Black,
                1 => Color::Red,
                2 => Color::Green,
                3 => Color::Yellow,
                4 => Color::Blue,
                5 => Color::Magenta,
                6 => Color::Cyan,
                7 => Color::Gray,
                8 => Color::DarkGray,
                9 => Color::LightRed,
                10 => Color::LightGreen,
                11 => Color::LightYellow,
                12 => Color::LightBlue,
                13 => Color::LightMagenta,
                14 => Color::LightCyan,
                _ => Color::White,
            },
            BottleColor::Rgb(r, g, b) => Color::Rgb(r, g, b),
        }
    }

    /// `text` wrapped in the SGR escape for this colour (foreground) and a reset.
    pub fn paint(self, text: &str) -> String {
        let code = match self {
            BottleColor::Ansi(i) if i < 8 => format!("{}", 30 + u16::from(i)),
            BottleColor::Ansi(i) => format!("{}", 90 + u16::from(i - 8)),
            BottleColor::Rgb(r, g, b) => format!("38;2;{r};{g};{b}"),
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_hex() {
        assert_eq!(BottleColor::parse("red"), Some(BottleColor::Ansi(1)));
        assert_eq!(
            BottleColor::parse("Bright-Blue"),
            Some(BottleColor::Ansi(12))
        );
        assert_eq!(
            BottleColor::parse("bright_cyan"),
            Some(BottleColor::Ansi(14))
        );
        assert_eq!(
            BottleColor::parse("#0a0B0c"),
            Some(BottleColor::Rgb(10, 11, 12))
        );
        assert_eq!(BottleColor::parse("#0a0B0"), None);
        assert_eq!(BottleColor::parse("chartreuse"), None);
        assert_eq!(BottleColor::Ansi(1).paint("x"), "\x1b[31mx\x1b[0m");
        assert_eq!(BottleColor::Ansi(12).paint("x"), "\x1b[94mx\x1b[0m");
    }
}
