//! The agent side of the gate: `url.<gate>.insteadOf` rules.
//!
//! Pure functions with no server dependency, so the planner can call them without running
//! anything: for each gate repo, the gate URL and every spelling of its upstream a user or a
//! tool might type (scp-like, `ssh://`, `https://`, with and without `.git`). Written into the
//! agent's git config, they make a plain `git clone git@github.com:acme/app.git` inside the
//! bottle go through the gate.

use bottle_config::GateRepo;

/// One rewrite: every URL starting with one of `upstream_forms` is rewritten to `gate_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsteadOf {
    /// `http://<gate>/<name>.git`.
    pub gate_url: String,
    /// The upstream spellings, longest first.
    pub upstream_forms: Vec<String>,
}

/// Why an upstream URL could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upstream URL {url:?} is not understood: {reason}")]
pub struct UrlError {
    pub url: String,
    pub reason: &'static str,
}

/// An upstream URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// `ssh`, `https` or `http`.
    pub scheme: &'static str,
    /// User for ssh (`git` when absent).
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// Repository path without leading `/` and without a trailing `.git`.
    pub path: String,
}

/// Parses `git@host:org/repo.git`, `ssh://[user@]host[:port]/org/repo.git` and
/// `http(s)://host[:port]/org/repo.git`.
pub fn parse_upstream(url: &str) -> Result<UpstreamUrl, UrlError> {
    let err = |reason| UrlError {
        url: redact_userinfo(url),
        reason,
    };
    let (scheme, rest, scp) = if let Some(r) = url.strip_prefix("ssh://") {
        ("ssh", r, false)
    } else if let Some(r) = url.strip_prefix("https://") {
        ("https", r, false)
    } else if let Some(r) = url.strip_prefix("http://") {
        ("http", r, false)
    } else if url.contains("://") {
        return Err(err(
            "only ssh://, https://, http:// and scp-like user@host:path are supported",
        ));
    } else {
        ("ssh", url, true)
    };
    let (authority, path) = if scp {
        let colon = rest
            .find(':')
            .ok_or_else(|| err("scp-like URL needs host:path"))?;
        if rest[..colon].contains('/') {
            return Err(err("a local path is not an upstream"));
        }
        (&rest[..colon], &rest[colon + 1..])
    } else {
        let slash = rest.find('/').ok_or_else(|| err("no repository path"))?;
        (&rest[..slash], &rest[slash..])
    };
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => {
            if u.contains(':') {
                return Err(err(
                    "credentials in the URL are not allowed; use the entry's credential",
                ));
            }
            (Some(u.to_owned()), h)
        }
        None => (None, authority),
    };
    let (host, port) = if scp {
        (hostport, None)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || p.chars().all(|c| c.is_ascii_digit()) => (
                h,
                Some(p.parse::<u16>().map_err(|_| err("port is not a number"))?),
            ),
            _ => (hostport, None),
        }
    };
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '?' || c == '#')
    {
        return Err(err("host is empty or has invalid characters"));
    }
    let path = path.trim_start_matches('/').trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    if path.is_empty()
        || path.contains(char::is_whitespace)
        || path.contains('?')
        || path.contains('#')
    {
        return Err(err("repository path is empty or has invalid characters"));
    }
    Ok(UpstreamUrl {
        scheme,
        user,
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

/// `url` with any `user:password@` of a `scheme://` URL replaced, so errors never echo a
/// credential someone put in a URL.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) if rest[..at].contains(':') => {
            format!("{scheme}://<redacted>@{}", &rest[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Every spelling of `upstream` to rewrite, longest first.
pub fn upstream_forms(upstream: &str) -> Result<Vec<String>, UrlError> {
    let u = parse_upstream(upstream)?;
    let ssh_user = match (&u.user, u.scheme) {
        (Some(user), "ssh") => user.clone(),
        _ => "git".to_owned(),
    };
    let host = &u.host;
    let path = &u.path;
    let mut forms = Vec::new();
    let ssh_port = if u.scheme == "ssh" { u.port } else { None };
    match ssh_port {
        // scp-like syntax cannot carry a port.
        Some(p) if p != 22 => {
            forms.push(format!("ssh://{ssh_user}@{host}:{p}/{path}"));
        }
        _ => {
            forms.push(format!("{ssh_user}@{host}:{path}"));
            forms.push(format!("ssh://{ssh_user}@{host}/{path}"));
        }
    }
    let web_port = match u.scheme {
        "https" | "http" => u.port.map(|p| format!(":{p}")).unwrap_or_default(),
        _ => String::new(),
    };
    let web_scheme = if u.scheme == "http" { "http" } else { "https" };
    forms.push(format!("{web_scheme}://{host}{web_port}/{path}"));
    let mut all: Vec<String> = forms
        .iter()
        .flat_map(|f| [format!("{f}.git"), f.clone()])
        .collect();
    // git picks the longest matching prefix; order longest first so a reader sees that too.
    all.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    all.dedup();
    Ok(all)
}

/// The gate URL of repo `name` under `gate_base_url` (`http://10.0.0.2:8080`).
pub fn gate_url(gate_base_url: &str, name: &str) -> String {
    format!("{}/{name}.git", gate_base_url.trim_end_matches('/'))
}

/// The `insteadOf` rules for all `repos`.
pub fn insteadof_rules(
    gate_base_url: &str,
    repos: &[GateRepo],
) -> Result<Vec<InsteadOf>, UrlError> {
    repos
        .iter()
        .map(|r| {
            Ok(InsteadOf {
                gate_url: gate_url(gate_base_url, &r.name),
                upstream_forms: upstream_forms(&r.upstream)?,
            })
        })
        .collect()
}

/// The rules as git config text (`[url "<gate>"]` sections), ready to append to a gitconfig.
pub fn to_gitconfig(rules: &[InsteadOf]) -> String {
    let mut out = String::new();
    for r in rules {
        out.push_str(&format!("[url \"{}\"]\n", escape_config(&r.gate_url)));
        for f in &r.upstream_forms {
            out.push_str(&format!("\tinsteadOf = \"{}\"\n", escape_config(f)));
        }
    }
    out
}

/// Quotes for a git config double-quoted string: the escapes git's parser knows (`\\`, `\"`,
/// `\n`, `\t`), so no value can end its line or section early.
fn escape_config(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .replace('\t', "\\t")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scp_like_upstream_gets_all_forms() {
        let forms = upstream_forms("git@github.com:acme/app.git").unwrap();
        for f in [
            "git@github.com:acme/app.git",
            "git@github.com:acme/app",
            "ssh://git@github.com/acme/app.git",
            "ssh://git@github.com/acme/app",
            "https://github.com/acme/app.git",
            "https://github.com/acme/app",
        ] {
            assert!(forms.contains(&f.to_owned()), "{f} missing from {forms:?}");
        }
        assert_eq!(forms.len(), 6);
        assert!(forms.windows(2).all(|w| w[0].len() >= w[1].len()));
    }

    #[test]
    fn ssh_url_with_port_and_https_with_port() {
        let forms = upstream_forms("ssh://git@example.com:2222/org/repo").unwrap();
        assert!(forms.contains(&"ssh://git@example.com:2222/org/repo.git".to_owned()));
        assert!(!forms.iter().any(|f| f.starts_with("git@")));
        let forms = upstream_forms("https://git.example.com:8443/org/sub/repo.git").unwrap();
        assert!(forms.contains(&"https://git.example.com:8443/org/sub/repo.git".to_owned()));
        assert!(forms.contains(&"git@git.example.com:org/sub/repo".to_owned()));
    }

    #[test]
    fn bad_upstreams_are_refused_with_reason() {
        let e = parse_upstream("https://user:tok@github.com/a/b").unwrap_err();
        assert!(e.reason.contains("credentials"));
        assert!(!e.to_string().contains("tok"), "{e}");
        assert!(parse_upstream("file:///srv/x.git").is_err());
        assert!(parse_upstream("/srv/x.git").is_err());
        assert!(parse_upstream("git@github.com:").is_err());
    }

    #[test]
    fn rules_render_as_gitconfig() {
        let repo = GateRepo {
            name: "app".into(),
            upstream: "git@github.com:acme/app.git".into(),
            credential: bottle_config::UpstreamCredential::HttpsToken {
                token: bottle_config::Secret::new("t"),
                username: None,
                extra_roots_pem: None,
            },
            push: Default::default(),
        };
        let rules = insteadof_rules("http://10.1.2.3:8080/", &[repo]).unwrap();
        assert_eq!(rules[0].gate_url, "http://10.1.2.3:8080/app.git");
        let text = to_gitconfig(&rules);
        assert!(text.starts_with("[url \"http://10.1.2.3:8080/app.git\"]\n"));
        assert!(text.contains("\tinsteadOf = \"git@github.com:acme/app.git\"\n"));
    }

    /// Real git reads back every value exactly, whatever it holds (quotes, backslashes,
    /// comment characters, newlines, tabs): nothing in a value can end its line early.
    #[test]
    fn git_reads_back_awkward_values() {
        let nasty = "ssh://h/a\"b\\c;d#e\nf\tg [url \"x\"]";
        let rules = vec![InsteadOf {
            gate_url: "http://gate/a\"b\\c.git".into(),
            upstream_forms: vec![nasty.into(), "plain".into()],
        }];
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config");
        std::fs::write(&file, to_gitconfig(&rules)).unwrap();
        let out = std::process::Command::new("git")
            .args(["config", "--file"])
            .arg(&file)
            .args(["-z", "--get-all", "url.http://gate/a\"b\\c.git.insteadOf"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let values: Vec<&str> = std::str::from_utf8(&out.stdout)
            .unwrap()
            .split_terminator('\0')
            .collect();
        assert_eq!(values, [nasty, "plain"]);
    }
}
