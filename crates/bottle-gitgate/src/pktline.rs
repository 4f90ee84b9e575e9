//! pkt-line framing and the receive-pack command list.
//!
//! The gate parses what it must decide on itself (the ref updates of a push) and checks the
//! framing of upload-pack requests before handing them to git, so malformed input gets a clear
//! error naming the offset instead of reaching git. Nothing here panics on any input (there is
//! a proptest over arbitrary bytes) and nothing waits: callers feed bytes and get `Ok(None)`
//! ("need more") or a result.

use std::fmt;

/// Largest pkt-line length (4 hex digits of length included), per git's `LARGE_PACKET_MAX`.
pub const MAX_PKT_LEN: usize = 65520;

/// One framed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pkt<'a> {
    /// `0000`.
    Flush,
    /// `0001` (protocol v2 section delimiter).
    Delim,
    /// `0002` (protocol v2 stateless response end).
    ResponseEnd,
    /// A data packet's payload.
    Data(&'a [u8]),
}

/// A framing or content error, with the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PktError {
    #[error("malformed pkt-line at byte {offset}: length {found:?} is not 4 hex digits")]
    BadLength { offset: usize, found: String },
    #[error("malformed pkt-line at byte {offset}: length {len} is invalid (0004..={MAX_PKT_LEN} or 0000/0001/0002)")]
    InvalidLength { offset: usize, len: usize },
    #[error(
        "truncated request: the pkt-line at byte {offset} is incomplete ({missing} bytes missing)"
    )]
    Truncated { offset: usize, missing: usize },
    #[error("truncated request: the command list ended before its flush-pkt")]
    NoFlush,
    #[error("bad push command at byte {offset}: {reason}")]
    BadCommand { offset: usize, reason: String },
    #[error("the command list is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("signed pushes (push-cert) are not supported by the gate")]
    PushCert,
}

/// Parses one pkt-line at the start of `buf`: `Ok(None)` if more bytes are needed, else the
/// packet and the number of bytes it used. `offset` is only for messages.
pub fn parse_one(buf: &[u8], offset: usize) -> Result<Option<(Pkt<'_>, usize)>, PktError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let head = &buf[..4];
    let mut len = 0usize;
    for &b in head {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => {
                return Err(PktError::BadLength {
                    offset,
                    found: String::from_utf8_lossy(head).escape_debug().to_string(),
                })
            }
        };
        len = len * 16 + usize::from(d);
    }
    match len {
        0 => Ok(Some((Pkt::Flush, 4))),
        1 => Ok(Some((Pkt::Delim, 4))),
        2 => Ok(Some((Pkt::ResponseEnd, 4))),
        3 => Err(PktError::InvalidLength { offset, len }),
        l if l > MAX_PKT_LEN => Err(PktError::InvalidLength { offset, len }),
        l if buf.len() < l => Ok(None),
        l => Ok(Some((Pkt::Data(&buf[4..l]), l))),
    }
}

/// Checks that `buf` is a whole number of well-formed pkt-lines (an upload-pack request).
pub fn validate_stream(buf: &[u8]) -> Result<(), PktError> {
    let mut pos = 0;
    while pos < buf.len() {
        match parse_one(&buf[pos..], pos)? {
            Some((_, used)) => pos += used,
            None => {
                let rest = &buf[pos..];
                let missing = if rest.len() < 4 {
                    4 - rest.len()
                } else {
                    // The header parsed, so the length is known.
                    usize::from_str_radix(&String::from_utf8_lossy(&rest[..4]), 16)
                        .unwrap_or(0)
                        .saturating_sub(rest.len())
                };
                return Err(PktError::Truncated {
                    offset: pos,
                    missing,
                });
            }
        }
    }
    Ok(())
}

/// One ref update of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    pub name: String,
}

impl RefUpdate {
    /// The update deletes the ref.
    pub fn is_delete(&self) -> bool {
        is_zero(&self.new)
    }
    /// The update creates the ref.
    pub fn is_create(&self) -> bool {
        is_zero(&self.old)
    }
}

impl fmt::Display for RefUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}→{}", self.name, self.old, self.new)
    }
}

/// An all-zero object id.
pub fn is_zero(oid: &str) -> bool {
    oid.bytes().all(|b| b == b'0')
}

/// The command list of a receive-pack request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushCommands {
    pub updates: Vec<RefUpdate>,
    /// Capabilities the client asked for on the first command.
    pub capabilities: Vec<String>,
    /// Bytes of the request used by the command list, up to and including its flush-pkt.
    pub consumed: usize,
}

impl PushCommands {
    /// The client asked for side-band multiplexing of the response.
    pub fn sideband(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| c == "side-band-64k" || c == "side-band")
    }
}

/// Parses the command list at the start of a receive-pack request body. `Ok(None)` means more
/// bytes are needed; `limit` bounds how many bytes the list may take.
pub fn parse_push_commands(buf: &[u8], limit: usize) -> Result<Option<PushCommands>, PktError> {
    let mut pos = 0;
    let mut updates = Vec::new();
    let mut capabilities = Vec::new();
    loop {
        if pos > limit {
            return Err(PktError::TooLarge { limit });
        }
        let Some((pkt, used)) = parse_one(&buf[pos..], pos)? else {
            if buf.len() > limit {
                return Err(PktError::TooLarge { limit });
            }
            return Ok(None);
        };
        let at = pos;
        pos += used;
        let payload = match pkt {
            Pkt::Flush => {
                return Ok(Some(PushCommands {
                    updates,
                    capabilities,
                    consumed: pos,
                }))
            }
            Pkt::Delim | Pkt::ResponseEnd => {
                return Err(PktError::BadCommand {
                    offset: at,
                    reason: "unexpected special packet in the command list".into(),
                })
            }
            Pkt::Data(d) => d,
        };
        let payload = payload.strip_suffix(b"\n").unwrap_or(payload);
        if payload.starts_with(b"shallow ") {
            continue;
        }
        if payload.starts_with(b"push-cert") {
            return Err(PktError::PushCert);
        }
        let (line, caps) = match payload.iter().position(|&b| b == 0) {
            Some(nul) => (&payload[..nul], Some(&payload[nul + 1..])),
            None => (payload, None),
        };
        if let Some(caps) = caps {
            if !updates.is_empty() {
                return Err(PktError::BadCommand {
                    offset: at,
                    reason: "capabilities after the first command".into(),
                });
            }
            capabilities = String::from_utf8_lossy(caps)
                .split(' ')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
        }
        updates.push(parse_command(line, at)?);
    }
}

fn parse_command(line: &[u8], offset: usize) -> Result<RefUpdate, PktError> {
    let bad = |reason: &str| PktError::BadCommand {
        offset,
        reason: reason.to_owned(),
    };
    let text = std::str::from_utf8(line).map_err(|_| bad("not UTF-8"))?;
    let mut parts = text.splitn(3, ' ');
    let (Some(old), Some(new), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("expected `<old-id> <new-id> <ref>`"));
    };
    let is_oid = |s: &str| {
        (s.len() == 40 || s.len() == 64)
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    if !is_oid(old) || !is_oid(new) || old.len() != new.len() {
        return Err(bad("object ids must be 40 or 64 lower-case hex digits"));
    }
    if !valid_refname(name) {
        return Err(bad(&format!(
            "invalid ref name {:?}",
            name.escape_debug().to_string()
        )));
    }
    Ok(RefUpdate {
        old: old.to_owned(),
        new: new.to_owned(),
        name: name.to_owned(),
    })
}

/// A conservative subset of `git check-ref-format`: under `refs/`, no `..`, no control
/// characters or the characters git forbids, no empty or dot-led segments.
pub fn valid_refname(name: &str) -> bool {
    name.starts_with("refs/")
        && name.len() <= 1024
        && !name.contains("..")
        && !name.contains("@{")
        && !name.ends_with('/')
        && !name.ends_with(".lock")
        && !name.ends_with('.')
        && name
            .bytes()
            .all(|b| b > 0x20 && b != 0x7f && !b" ~^:?*[\\".contains(&b))
        && name
            .split('/')
            .all(|seg| !seg.is_empty() && !seg.starts_with('.'))
}

/// Encodes one data pkt-line.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{:04x}", payload.len() + 4).into_bytes();
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const Z: &str = "0000000000000000000000000000000000000000";

    fn cmds(lines: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        for l in lines {
            out.extend(encode(l.as_bytes()));
        }
        out.extend_from_slice(b"0000PACK....");
        out
    }

    #[test]
    fn parses_commands_and_capabilities() {
        let body = cmds(&[
            format!("{A} {B} refs/heads/bot/x\0report-status side-band-64k agent=git/2"),
            format!("{A} {Z} refs/heads/old\n"),
        ]);
        let p = parse_push_commands(&body, 1 << 20).unwrap().unwrap();
        assert_eq!(p.updates.len(), 2);
        assert_eq!(p.updates[0].name, "refs/heads/bot/x");
        assert!(p.updates[1].is_delete());
        assert!(p.sideband());
        assert_eq!(&body[p.consumed..], b"PACK....");
    }

    #[test]
    fn needs_more_until_flush() {
        let body = cmds(&[format!("{A} {B} refs/heads/x")]);
        let cut = body.len() - 12;
        assert_eq!(parse_push_commands(&body[..cut], 1 << 20).unwrap(), None);
        assert_eq!(parse_push_commands(&body[..10], 1 << 20).unwrap(), None);
    }

    #[test]
    fn malformed_input_is_named() {
        assert!(matches!(
            parse_push_commands(b"zzzz", 100),
            Err(PktError::BadLength { offset: 0, .. })
        ));
        assert!(matches!(
            parse_push_commands(b"0003", 100),
            Err(PktError::InvalidLength { .. })
        ));
        let e = parse_push_commands(&encode(b"nonsense"), 100).unwrap_err();
        assert!(e.to_string().contains("bad push command at byte 0"), "{e}");
        let e = parse_push_commands(&encode(format!("{A} {B} refs/heads/../x").as_bytes()), 100)
            .unwrap_err();
        assert!(e.to_string().contains("invalid ref name"));
        assert!(matches!(
            validate_stream(b"0009abc"),
            Err(PktError::Truncated {
                offset: 0,
                missing: 2
            })
        ));
        assert!(validate_stream(b"0008abcd0000").is_ok());
    }

    #[test]
    fn refnames() {
        assert!(valid_refname("refs/heads/bot/feature-1"));
        for bad in [
            "HEAD",
            "refs/heads/a..b",
            "refs/heads/.x",
            "refs/heads/x.lock",
            "refs/heads/a b",
            "refs//x",
            "refs/heads/x/",
        ] {
            assert!(!valid_refname(bad), "{bad}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
        #[test]
        fn parser_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_push_commands(&bytes, 256);
            let _ = validate_stream(&bytes);
        }

        #[test]
        fn well_formed_commands_round_trip(names in proptest::collection::vec("[a-z][a-z0-9_-]{0,12}(/[a-z0-9_-]{1,8}){0,3}", 1..6), split in 0usize..400) {
            let lines: Vec<String> = names.iter().enumerate().map(|(i, n)| {
                if i == 0 { format!("{A} {B} refs/heads/{n}\0report-status") } else { format!("{Z} {B} refs/heads/{n}\n") }
            }).collect();
            let body = cmds(&lines);
            let parsed = parse_push_commands(&body, 1 << 20).unwrap().unwrap();
            prop_assert_eq!(parsed.updates.len(), names.len());
            // Any prefix that stops before the flush asks for more, never errors.
            let cut = split.min(parsed.consumed - 1);
            prop_assert_eq!(parse_push_commands(&body[..cut], 1 << 20).unwrap(), None);
        }
    }
}
