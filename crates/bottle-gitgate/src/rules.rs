//! Push rules: which ref updates the gate relays.
//!
//! Patterns and deletions are decided here from the command list, before any pack is read.
//! Non-fast-forward updates need the pushed objects, so that check runs in the mirror's
//! `pre-receive` hook (see `mirror.rs`), with the rule name in its message too.

use bottle_config::PushRules;

use crate::pktline::RefUpdate;

/// Why an update was refused; the text names the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Short rule id for audit lines: `read_only`, `allow`, `allow_delete`.
    pub rule: &'static str,
    /// One line for the agent.
    pub reason: String,
}

/// Checks one update against the entry's rules (everything but fast-forwardness).
pub fn check(rules: &PushRules, update: &RefUpdate) -> Result<(), Refusal> {
    if rules.allow.is_empty() {
        return Err(Refusal {
            rule: "read_only",
            reason: "repository is read-only for this bottle (push rule `allow` is empty)"
                .to_owned(),
        });
    }
    if !rules.allow.iter().any(|p| pattern_matches(p, &update.name)) {
        return Err(Refusal {
            rule: "allow",
            reason: format!(
                "{} matches no push rule `allow` pattern ({})",
                update.name,
                rules.allow.join(", ")
            ),
        });
    }
    if update.is_delete() && !rules.allow_delete {
        return Err(Refusal {
            rule: "allow_delete",
            reason: format!(
                "deleting {} is refused (push rule `allow_delete` is false)",
                update.name
            ),
        });
    }
    Ok(())
}

/// The first `allow` pattern matching `name`, if any.
pub fn matching_pattern<'a>(rules: &'a PushRules, name: &str) -> Option<&'a str> {
    rules
        .allow
        .iter()
        .map(String::as_str)
        .find(|p| pattern_matches(p, name))
}

/// Checks a pattern at load time: it must name refs (`refs/…`) and hold no whitespace, so a
/// pattern that could never match (`main`, `heads/*`) is an error instead of a silent refusal.
pub fn validate_pattern(pattern: &str) -> Result<(), String> {
    if !pattern.starts_with("refs/") {
        return Err(format!(
            "push pattern {pattern:?} must start with refs/ (e.g. refs/heads/bot/*)"
        ));
    }
    if pattern.chars().any(|c| c.is_whitespace() || c.is_control()) || pattern.contains("***") {
        return Err(format!(
            "push pattern {pattern:?} has whitespace, control characters or ***"
        ));
    }
    Ok(())
}

/// Glob match of a ref name: `*` matches within one `/`-separated segment, `**` across
/// segments (and `**/` may match nothing). Everything else is literal.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    matches_from(pattern.as_bytes(), name.as_bytes())
}

fn matches_from(p: &[u8], s: &[u8]) -> bool {
    match p {
        [] => s.is_empty(),
        [b'*', b'*', rest @ ..] => {
            // `**/` can stand for zero segments.
            if let [b'/', after @ ..] = rest {
                if matches_from(after, s) {
                    return true;
                }
            }
            (0..=s.len()).any(|i| matches_from(rest, &s[i..]))
        }
        [b'*', rest @ ..] => {
            let seg_end = s.iter().position(|&b| b == b'/').unwrap_or(s.len());
            (0..=seg_end).any(|i| matches_from(rest, &s[i..]))
        }
        [c, rest @ ..] => matches!(s, [d, srest @ ..] if d == c && matches_from(rest, srest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upd(name: &str, new: &str) -> RefUpdate {
        RefUpdate {
            old: "1".repeat(40),
            new: new.to_owned(),
            name: name.to_owned(),
        }
    }

    #[test]
    fn star_stays_in_a_segment_and_double_star_crosses() {
        assert!(pattern_matches("refs/heads/bot/*", "refs/heads/bot/x"));
        assert!(!pattern_matches("refs/heads/bot/*", "refs/heads/bot/x/y"));
        assert!(!pattern_matches("refs/heads/bot/*", "refs/heads/bot"));
        assert!(pattern_matches("refs/heads/bot/**", "refs/heads/bot/x/y"));
        assert!(pattern_matches("refs/heads/**/wip", "refs/heads/wip"));
        assert!(pattern_matches("refs/heads/**/wip", "refs/heads/a/b/wip"));
        assert!(pattern_matches("refs/heads/feat-*", "refs/heads/feat-1"));
        assert!(!pattern_matches("refs/heads/main", "refs/heads/main2"));
        assert!(pattern_matches("refs/heads/main", "refs/heads/main"));
    }

    #[test]
    fn patterns_are_validated() {
        assert!(validate_pattern("refs/heads/bot/*").is_ok());
        assert!(validate_pattern("main")
            .unwrap_err()
            .contains("must start with refs/"));
        assert!(validate_pattern("refs/heads/a b").is_err());
    }

    #[test]
    fn rules_name_themselves() {
        let ro = PushRules::default();
        assert_eq!(
            check(&ro, &upd("refs/heads/x", &"2".repeat(40)))
                .unwrap_err()
                .rule,
            "read_only"
        );
        let rules = PushRules {
            allow: vec!["refs/heads/bot/*".into()],
            ..Default::default()
        };
        let r = check(&rules, &upd("refs/heads/main", &"2".repeat(40))).unwrap_err();
        assert_eq!(r.rule, "allow");
        assert!(r.reason.contains("refs/heads/bot/*"));
        assert_eq!(
            check(&rules, &upd("refs/heads/bot/x", &"0".repeat(40)))
                .unwrap_err()
                .rule,
            "allow_delete"
        );
        assert!(check(&rules, &upd("refs/heads/bot/x", &"2".repeat(40))).is_ok());
        let del = PushRules {
            allow_delete: true,
            ..rules
        };
        assert!(check(&del, &upd("refs/heads/bot/x", &"0".repeat(40))).is_ok());
    }
}
