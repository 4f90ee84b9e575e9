//! What goes into the agent's guest before its command runs: the bottle CA (at
//! `GUEST_CA_PATH` and in the system trust store), the provider's files, the skills folders,
//! git `insteadOf` rules, then the setup commands. Files travel as one tar through the engine
//! API with their modes and numeric owners; nothing is mounted from the host.

use std::path::{Path, PathBuf};

use bottle_plan::AgentPlan;

use crate::{Error, Result};

/// Where the CA also goes so `update-ca-certificates` adds it to the system bundle.
pub const TRUST_STORE_PATH: &str = "/usr/local/share/ca-certificates/bot-bottle.crt";

/// The agent user's numeric ids, read from the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub uid: u64,
    pub gid: u64,
}

/// Parses `id <user>` output: `uid=1000(agent) gid=1000(agent) groups=…`.
pub fn parse_id(text: &str) -> Option<Ids> {
    let field = |key: &str| -> Option<u64> {
        let rest = text.split_whitespace().find_map(|w| w.strip_prefix(key))?;
        rest.split('(').next()?.parse().ok()
    };
    Some(Ids {
        uid: field("uid=")?,
        gid: field("gid=")?,
    })
}

/// Finds a user's ids in `/etc/passwd` text, by name or by numeric uid.
pub fn ids_from_passwd(passwd: &str, user: &str) -> Option<Ids> {
    let numeric: Option<u64> = user.parse().ok();
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        let uid: u64 = f[2].parse().ok()?;
        let gid: u64 = f[3].parse().ok()?;
        (f[0] == user || numeric == Some(uid)).then_some(Ids { uid, gid })
    })
}

/// Folders the tar creates (as directory entries, so no `mkdir` exec is needed): every folder
/// strictly below the agent's home that the workdir, agent-owned files and skills need (owned
/// by the agent), and the CA's folders (owned by root). Folders elsewhere are never given
/// entries, because extracting an entry resets an existing folder's mode and owner.
pub fn tar_dirs(agent: &AgentPlan) -> Vec<(PathBuf, bool)> {
    let mut agent_dirs: Vec<PathBuf> = Vec::new();
    let mut want = |p: &Path| {
        let mut cur = Some(p);
        while let Some(d) = cur {
            if d == agent.home || !d.starts_with(&agent.home) {
                break;
            }
            agent_dirs.push(d.to_path_buf());
            cur = d.parent();
        }
    };
    want(&agent.workdir);
    for f in agent.files.iter().filter(|f| f.agent_owned) {
        if let Some(p) = f.path.parent() {
            want(p);
        }
    }
    for d in &agent.dirs {
        if let Some(p) = d.guest.parent() {
            want(p);
        }
    }
    let mut out: Vec<(PathBuf, bool)> = agent_dirs.into_iter().map(|d| (d, true)).collect();
    for p in [
        agent.ca_cert_path.parent(),
        Path::new(TRUST_STORE_PATH).parent(),
    ]
    .into_iter()
    .flatten()
    {
        out.push((p.to_path_buf(), false));
    }
    out.sort();
    out.dedup();
    out
}

/// Folders that still need `mkdir -p` (as the agent user, or root): parents outside the
/// agent's home (they may exist with modes the tar must not touch).
pub fn exec_dirs(agent: &AgentPlan) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let covered = tar_dirs(agent);
    let mut as_agent = Vec::new();
    let mut as_root = Vec::new();
    let outside = |p: &Path| !p.starts_with(&agent.home) && !covered.iter().any(|(d, _)| d == p);
    if outside(&agent.workdir) {
        as_agent.push(agent.workdir.clone());
    }
    for f in &agent.files {
        if let Some(p) = f.path.parent().filter(|p| outside(p)) {
            if f.agent_owned {
                as_agent.push(p.to_path_buf());
            } else {
                as_root.push(p.to_path_buf());
            }
        }
    }
    for v in [&mut as_agent, &mut as_root] {
        v.sort();
        v.dedup();
    }
    (as_agent, as_root)
}

/// The system CA bundle that TLS libraries read (Debian/Ubuntu layout).
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn rel(p: &Path) -> String {
    p.to_string_lossy().trim_start_matches('/').to_string()
}

fn header(size: u64, mode: u32, ids: Ids, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(ids.uid);
    h.set_gid(ids.gid);
    h.set_mtime(0);
    h.set_entry_type(kind);
    h
}

/// The tar (extracted at `/`, owners kept) with the folders, the CA (also appended to the
/// system bundle when the image has one: `bundle` is its current text), the files and skills.
pub fn guest_tar(
    agent: &AgentPlan,
    ca_pem: &str,
    bundle: Option<&str>,
    ids: Ids,
) -> Result<Vec<u8>> {
    let root = Ids { uid: 0, gid: 0 };
    let mut tar = tar::Builder::new(Vec::new());
    for (dir, agent_owned) in tar_dirs(agent) {
        let owner = if agent_owned { ids } else { root };
        let mut h = header(0, 0o755, owner, tar::EntryType::Directory);
        tar.append_data(&mut h, format!("{}/", rel(&dir)), std::io::empty())
            .map_err(Error::Tar)?;
    }
    // The system roots plus the bottle CA: passthrough routes show real certificates,
    // intercepted ones the bottle's. Written to the plan's own bundle path always (so the
    // variables pointing at it work in any image) and over the system bundle when there is one.
    let mut text = bundle.unwrap_or_default().to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(ca_pem);
    let mut bundle_paths = vec![agent.ca_bundle_path.as_path()];
    if bundle.is_some() {
        // Appending directly is what update-ca-certificates would produce for the bundle file,
        // without its second-long rehash of every certificate.
        bundle_paths.push(Path::new(SYSTEM_BUNDLE));
    }
    for path in bundle_paths {
        let mut h = header(text.len() as u64, 0o644, root, tar::EntryType::Regular);
        tar.append_data(&mut h, rel(path), text.as_bytes())
            .map_err(Error::Tar)?;
    }
    for path in [agent.ca_cert_path.as_path(), Path::new(TRUST_STORE_PATH)] {
        let mut h = header(ca_pem.len() as u64, 0o644, root, tar::EntryType::Regular);
        tar.append_data(&mut h, rel(path), ca_pem.as_bytes())
            .map_err(Error::Tar)?;
    }
    for f in &agent.files {
        let owner = if f.agent_owned { ids } else { root };
        let mut h = header(
            f.content.len() as u64,
            f.mode,
            owner,
            tar::EntryType::Regular,
        );
        tar.append_data(&mut h, rel(&f.path), f.content.as_bytes())
            .map_err(Error::Tar)?;
    }
    for d in &agent.dirs {
        append_tree(&mut tar, &d.host, &d.guest, ids)?;
    }
    tar.into_inner().map_err(Error::Tar)
}

/// Adds a host folder (files and folders only; symlinks and specials are skipped so nothing
/// outside the folder is ever read) under `guest`, owned by the agent.
fn append_tree(tar: &mut tar::Builder<Vec<u8>>, host: &Path, guest: &Path, ids: Ids) -> Result<()> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Read { path, source }
    };
    let mut h = header(0, 0o755, ids, tar::EntryType::Directory);
    tar.append_data(&mut h, format!("{}/", rel(guest)), std::io::empty())
        .map_err(Error::Tar)?;
    let mut entries: Vec<_> = std::fs::read_dir(host)
        .map_err(read_err(host))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(read_err(host))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let meta = std::fs::symlink_metadata(&path).map_err(read_err(&path))?;
        let target = guest.join(e.file_name());
        if meta.is_dir() {
            append_tree(tar, &path, &target, ids)?;
        } else if meta.is_file() {
            let data = std::fs::read(&path).map_err(read_err(&path))?;
            use std::os::unix::fs::PermissionsExt;
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            let mut h = header(data.len() as u64, mode, ids, tar::EntryType::Regular);
            tar.append_data(&mut h, rel(&target), data.as_slice())
                .map_err(Error::Tar)?;
        }
    }
    Ok(())
}

/// `sh -c` script adding git config pairs given as positional arguments (no interpolation of
/// any value into the script).
pub const GIT_CONFIG_SCRIPT: &str =
    "while [ $# -gt 1 ]; do git config --global --add \"$1\" \"$2\" || exit $?; shift 2; done";

/// Arguments for [`GIT_CONFIG_SCRIPT`]: `url.<gate>.insteadOf <form>` pairs.
pub fn git_config_args(agent: &AgentPlan) -> Vec<String> {
    let mut args = Vec::new();
    for rule in &agent.git_insteadof {
        for form in &rule.upstream_forms {
            args.push(format!("url.{}.insteadOf", rule.gate_url));
            args.push(form.clone());
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use bottle_plan::GuestFile;

    fn agent() -> AgentPlan {
        AgentPlan {
            user: "agent".into(),
            home: "/home/agent".into(),
            workdir: "/home/agent/work".into(),
            command: vec![],
            env: vec![],
            files: vec![
                GuestFile {
                    path: "/home/agent/.a/b/c.json".into(),
                    mode: 0o600,
                    content: "{}".into(),
                    agent_owned: true,
                },
                GuestFile {
                    path: "/opt/tool/conf".into(),
                    mode: 0o644,
                    content: "x".into(),
                    agent_owned: false,
                },
            ],
            dirs: vec![],
            setup: vec![],
            mcp_url: String::new(),
            proxy_url: String::new(),
            no_proxy: String::new(),
            ca_cert_path: "/etc/bot-bottle/ca.crt".into(),
            ca_bundle_path: "/etc/bot-bottle/ca-bundle.crt".into(),
            git_insteadof: vec![],
        }
    }

    #[test]
    fn tar_dirs_stay_below_home_or_are_ours() {
        let dirs = tar_dirs(&agent());
        let names: Vec<String> = dirs
            .iter()
            .map(|(d, a)| format!("{}:{a}", d.display()))
            .collect();
        assert_eq!(
            names,
            [
                "/etc/bot-bottle:false",
                "/home/agent/.a:true",
                "/home/agent/.a/b:true",
                "/home/agent/work:true",
                "/usr/local/share/ca-certificates:false"
            ]
        );
        let (as_agent, as_root) = exec_dirs(&agent());
        assert!(as_agent.is_empty());
        assert_eq!(as_root, [PathBuf::from("/opt/tool")]);
    }

    #[test]
    fn finds_ids_in_passwd() {
        let p = "root:x:0:0:root:/root:/bin/bash\nagent:x:1000:1001::/home/agent:/bin/bash\n";
        assert_eq!(
            ids_from_passwd(p, "agent"),
            Some(Ids {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(
            ids_from_passwd(p, "1000"),
            Some(Ids {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(ids_from_passwd(p, "nobody"), None);
    }

    #[test]
    fn parses_id_output() {
        let ids = parse_id("uid=1000(agent) gid=1001(staff) groups=1001(staff)\n").unwrap();
        assert_eq!(
            ids,
            Ids {
                uid: 1000,
                gid: 1001
            }
        );
        assert_eq!(parse_id("nonsense"), None);
    }
}
