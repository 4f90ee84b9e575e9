//! The ANSI colour names a manifest (`color:`) or `--color` accepts, and what each one becomes:
//! the SGR foreground code for coloured text, the RGB written into its palette slot (OSC 4), and
//! the dark background tint (OSC 11).

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// Every accepted colour name, in palette order (index 0–15).
pub const COLOR_NAMES: [&str; 16] = [
    "black",
    "red",
    "green",
    "yellow",
    "blue",
    "magenta",
    "cyan",
    "white",
    "bright-black",
    "bright-red",
    "bright-green",
    "bright-yellow",
    "bright-blue",
    "bright-magenta",
    "bright-cyan",
    "bright-white",
];

/// One of the 16 ANSI colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Color {
    /// ANSI 0.
    Black,
    /// ANSI 1.
    Red,
    /// ANSI 2.
    Green,
    /// ANSI 3.
    Yellow,
    /// ANSI 4.
    Blue,
    /// ANSI 5.
    Magenta,
    /// ANSI 6.
    Cyan,
    /// ANSI 7.
    White,
    /// ANSI 8.
    BrightBlack,
    /// ANSI 9.
    BrightRed,
    /// ANSI 10.
    BrightGreen,
    /// ANSI 11.
    BrightYellow,
    /// ANSI 12.
    BrightBlue,
    /// ANSI 13.
    BrightMagenta,
    /// ANSI 14.
    BrightCyan,
    /// ANSI 15.
    BrightWhite,
}

/// An 8-bit-per-channel RGB value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// X11 colour spec as used by OSC 4/11: `rgb:rr/gg/bb` (lower-case hex).
    pub fn x11_spec(self) -> String {
        format!("rgb:{:02x}/{:02x}/{:02x}", self.0, self.1, self.2)
    }
}

/// The near-black base the background tint is mixed over.
pub const TINT_BASE: Rgb = Rgb(0x10, 0x10, 0x10);
/// How much of the colour goes into the background tint, in percent.
pub const TINT_PERCENT: u16 = 12;

impl Color {
    /// All colours in palette order (same order as [`COLOR_NAMES`]).
    pub const ALL: [Color; 16] = [
        Color::Black,
        Color::Red,
        Color::Green,
        Color::Yellow,
        Color::Blue,
        Color::Magenta,
        Color::Cyan,
        Color::White,
        Color::BrightBlack,
        Color::BrightRed,
        Color::BrightGreen,
        Color::BrightYellow,
        Color::BrightBlue,
        Color::BrightMagenta,
        Color::BrightCyan,
        Color::BrightWhite,
    ];

    /// The ANSI palette index, 0–15.
    pub fn index(self) -> u8 {
        self as u8
    }

    /// The manifest name, e.g. `bright-red`.
    pub fn name(self) -> &'static str {
        COLOR_NAMES[self.index() as usize]
    }

    /// SGR foreground code: 30–37 for the normal colours, 90–97 for the bright ones.
    pub fn sgr_fg(self) -> u8 {
        let i = self.index();
        if i < 8 {
            30 + i
        } else {
            90 + (i - 8)
        }
    }

    /// The RGB written into this colour's palette slot with OSC 4: xterm's default palette, so
    /// the label's colour looks the same whatever theme the user's terminal has.
    pub fn palette_rgb(self) -> Rgb {
        match self {
            Color::Black => Rgb(0x00, 0x00, 0x00),
            Color::Red => Rgb(0xcd, 0x00, 0x00),
            Color::Green => Rgb(0x00, 0xcd, 0x00),
            Color::Yellow => Rgb(0xcd, 0xcd, 0x00),
            Color::Blue => Rgb(0x00, 0x00, 0xee),
            Color::Magenta => Rgb(0xcd, 0x00, 0xcd),
            Color::Cyan => Rgb(0x00, 0xcd, 0xcd),
            Color::White => Rgb(0xe5, 0xe5, 0xe5),
            Color::BrightBlack => Rgb(0x7f, 0x7f, 0x7f),
            Color::BrightRed => Rgb(0xff, 0x00, 0x00),
            Color::BrightGreen => Rgb(0x00, 0xff, 0x00),
            Color::BrightYellow => Rgb(0xff, 0xff, 0x00),
            Color::BrightBlue => Rgb(0x5c, 0x5c, 0xff),
            Color::BrightMagenta => Rgb(0xff, 0x00, 0xff),
            Color::BrightCyan => Rgb(0x00, 0xff, 0xff),
            Color::BrightWhite => Rgb(0xff, 0xff, 0xff),
        }
    }

    /// The terminal background tint (OSC 11): [`TINT_PERCENT`] % of the palette colour over
    /// [`TINT_BASE`], rounded — dark enough that any theme's text stays readable.
    pub fn background_tint(self) -> Rgb {
        let Rgb(r, g, b) = self.palette_rgb();
        let mix = |c: u8, base: u8| -> u8 {
            let v =
                (u16::from(c) * TINT_PERCENT + u16::from(base) * (100 - TINT_PERCENT) + 50) / 100;
            // v <= 255 because it is a convex mix of two u8 values.
            u8::try_from(v).unwrap_or(u8::MAX)
        };
        Rgb(
            mix(r, TINT_BASE.0),
            mix(g, TINT_BASE.1),
            mix(b, TINT_BASE.2),
        )
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Color {
    type Err = Error;

    /// Case-insensitive; surrounding whitespace ignored; `_` accepted for `-`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        COLOR_NAMES
            .iter()
            .position(|n| *n == wanted)
            .map(|i| Color::ALL[i])
            .ok_or_else(|| Error::UnknownColor {
                given: s.chars().take(40).collect(),
                valid: COLOR_NAMES.join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_palette_order() {
        for (i, name) in COLOR_NAMES.iter().enumerate() {
            let c: Color = name.parse().unwrap();
            assert_eq!(c.index() as usize, i);
            assert_eq!(c.name(), *name);
            assert_eq!(c.to_string(), *name);
            assert_eq!(Color::ALL[i], c);
        }
    }

    #[test]
    fn parsing_is_lenient_about_case_and_underscores() {
        assert_eq!(" Bright_Red ".parse::<Color>().unwrap(), Color::BrightRed);
        assert_eq!("MAGENTA".parse::<Color>().unwrap(), Color::Magenta);
    }

    #[test]
    fn unknown_colour_error_lists_valid_names() {
        let err = "purple".parse::<Color>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown colour \"purple\": valid colours are black, red, green, yellow, blue, \
             magenta, cyan, white, bright-black, bright-red, bright-green, bright-yellow, \
             bright-blue, bright-magenta, bright-cyan, bright-white"
        );
    }

    #[test]
    fn sgr_codes() {
        assert_eq!(Color::Black.sgr_fg(), 30);
        assert_eq!(Color::White.sgr_fg(), 37);
        assert_eq!(Color::BrightBlack.sgr_fg(), 90);
        assert_eq!(Color::BrightWhite.sgr_fg(), 97);
    }

    #[test]
    fn tints_are_dark_mixes_over_near_black() {
        // 0x10 * 0.88 + 0xcd * 0.12 = 38.68 -> 0x27; 0x10 * 0.88 = 14.08 -> 0x0e
        assert_eq!(Color::Red.background_tint(), Rgb(0x27, 0x0e, 0x0e));
        assert_eq!(Color::Black.background_tint(), Rgb(0x0e, 0x0e, 0x0e));
        assert_eq!(Color::BrightWhite.background_tint(), Rgb(0x2d, 0x2d, 0x2d));
        assert_eq!(Color::Red.background_tint().x11_spec(), "rgb:27/0e/0e");
        for c in Color::ALL {
            let Rgb(r, g, b) = c.background_tint();
            assert!(r <= 0x2d && g <= 0x2d && b <= 0x2d, "{c} tint too bright");
        }
    }
}
