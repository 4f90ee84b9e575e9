//! What goes into the agent's guest before its command runs: the bottle CA (at
//! `GUEST_CA_PATH` and in the system trust store), the provider's files, the skills folders,
//! the git `insteadOf` rules, then the setup commands. Everything but the setup commands
//! travels as one tar through the engine's archive API into the created, not yet started,
//! container (so it needs no running process and overlaps the sidecar's start), with modes and
//! numeric owners; nothing is mounted from the host. What the tar must know about the image
//! (the user's ids, the system CA bundle, an existing `~/.gitconfig`, which outside folders
//! exist) is read through the same API first.

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

/// Folders outside the agent's home that files or the workdir need, split by who would own
/// them (the agent, or root). They may already exist in the image with modes nothing must
/// touch, so only the missing ones get tar entries (see [`missing_dirs`]).
pub fn outside_dirs(agent: &AgentPlan) -> (Vec<PathBuf>, Vec<PathBuf>) {
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

/// Every folder whose existence [`missing_dirs`] needs to know: the outside folders and all
/// their ancestors below `/`.
pub fn probe_paths(agent: &AgentPlan) -> Vec<PathBuf> {
    let (as_agent, as_root) = outside_dirs(agent);
    let mut out: Vec<PathBuf> = as_agent
        .iter()
        .chain(&as_root)
        .flat_map(|d| d.ancestors().map(Path::to_path_buf))
        .filter(|p| p.parent().is_some())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What `mkdir -p` of each outside folder would create, as tar directory entries (parents
/// first; `true` = owned by the agent): for every outside folder, its first missing ancestor
/// and everything below it, owned like the folder. Existing folders get no entry (an entry
/// would reset their mode and owner). A folder both kinds need goes to the agent, as when the
/// agent's `mkdir` ran first.
pub fn missing_dirs(agent: &AgentPlan, exists: impl Fn(&Path) -> bool) -> Vec<(PathBuf, bool)> {
    let (as_agent, as_root) = outside_dirs(agent);
    let mut out: Vec<(PathBuf, bool)> = Vec::new();
    for (dirs, agent_owned) in [(as_agent, true), (as_root, false)] {
        for d in dirs {
            let mut chain: Vec<&Path> = d.ancestors().filter(|p| p.parent().is_some()).collect();
            chain.reverse();
            let Some(first) = chain.iter().position(|p| !exists(p)) else {
                continue;
            };
            for p in &chain[first..] {
                if !out.iter().any(|(q, _)| q == p) {
                    out.push((p.to_path_buf(), agent_owned));
                }
            }
        }
    }
    out.sort();
    out
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

/// What provisioning reads from the image before it writes anything.
#[derive(Debug, Clone, Copy)]
pub struct FromImage<'a> {
    /// The agent user's ids.
    pub ids: Ids,
    /// The system CA bundle's text, when the image has one.
    pub bundle: Option<&'a str>,
    /// The agent's `~/.gitconfig`, when the image has one (read only when there are rules).
    pub gitconfig: Option<&'a str>,
    /// Outside folders to create ([`missing_dirs`]).
    pub missing_dirs: &'a [(PathBuf, bool)],
}

/// Where the git `insteadOf` rules go: the agent's global git config.
pub fn gitconfig_path(agent: &AgentPlan) -> PathBuf {
    agent.home.join(".gitconfig")
}

/// `text` with `rules` (git config sections) appended on a line of their own.
fn with_rules(text: &str, rules: &str) -> String {
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(rules);
    out
}

/// The tar (extracted at `/`, owners kept) with the folders, the CA (also appended to the
/// system bundle when the image has one), the files, the git rules (appended to the agent's
/// `~/.gitconfig`: the provider's file of that name if it writes one, else the image's) and
/// skills.
pub fn guest_tar(agent: &AgentPlan, ca_pem: &str, image: FromImage<'_>) -> Result<Vec<u8>> {
    let FromImage {
        ids,
        bundle,
        gitconfig,
        missing_dirs,
    } = image;
    let root = Ids { uid: 0, gid: 0 };
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs = tar_dirs(agent);
    dirs.extend(missing_dirs.iter().cloned());
    dirs.sort();
    dirs.dedup_by(|a, b| a.0 == b.0);
    for (dir, agent_owned) in dirs {
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
    let rules = agent.gitconfig_rules();
    let git_path = gitconfig_path(agent);
    let mut rules_written = rules.is_empty();
    for f in &agent.files {
        let owner = if f.agent_owned { ids } else { root };
        let content = if !rules_written && f.path == git_path {
            rules_written = true;
            with_rules(&f.content, &rules)
        } else {
            f.content.clone()
        };
        let mut h = header(content.len() as u64, f.mode, owner, tar::EntryType::Regular);
        tar.append_data(&mut h, rel(&f.path), content.as_bytes())
            .map_err(Error::Tar)?;
    }
    if !rules_written {
        let content = with_rules(gitconfig.unwrap_or_default(), &rules);
        let mut h = header(content.len() as u64, 0o644, ids, tar::EntryType::Regular);
        tar.append_data(&mut h, rel(&git_path), content.as_bytes())
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

    /// `path:agent_owned` for each folder entry.
    fn shown(dirs: &[(PathBuf, bool)]) -> Vec<String> {
        dirs.iter()
            .map(|(d, a)| format!("{}:{a}", d.display()))
            .collect()
    }

    #[test]
    fn tar_dirs_stay_below_home_or_are_ours() {
        assert_eq!(
            shown(&tar_dirs(&agent())),
            [
                "/etc/bot-bottle:false",
                "/home/agent/.a:true",
                "/home/agent/.a/b:true",
                "/home/agent/work:true",
                "/usr/local/share/ca-certificates:false"
            ]
        );
        let (as_agent, as_root) = outside_dirs(&agent());
        assert!(as_agent.is_empty());
        assert_eq!(as_root, [PathBuf::from("/opt/tool")]);
    }

    fn outside_agent() -> AgentPlan {
        let mut a = agent();
        a.workdir = "/srv/work/repo".into();
        a.files.push(GuestFile {
            path: "/srv/work/notes/n.txt".into(),
            mode: 0o644,
            content: "n".into(),
            agent_owned: true,
        });
        a
    }

    #[test]
    fn probes_every_ancestor_of_outside_folders() {
        let probes: Vec<String> = probe_paths(&outside_agent())
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            probes,
            [
                "/opt",
                "/opt/tool",
                "/srv",
                "/srv/work",
                "/srv/work/notes",
                "/srv/work/repo"
            ]
        );
    }

    #[test]
    fn missing_dirs_are_what_mkdir_p_would_create() {
        let a = outside_agent();
        // /srv and /opt exist (as in Debian): only what is below them is created, owned like
        // the folder that needs it; existing folders get no entry.
        let have = ["/srv", "/opt"];
        let dirs = missing_dirs(&a, |p| have.iter().any(|h| Path::new(h) == p));
        assert_eq!(
            shown(&dirs),
            [
                "/opt/tool:false",
                "/srv/work:true",
                "/srv/work/notes:true",
                "/srv/work/repo:true"
            ]
        );
        // Everything already there: nothing to create.
        assert!(missing_dirs(&a, |_| true).is_empty());
        // Nothing there: the whole chain, top first.
        let all = missing_dirs(&a, |_| false);
        assert_eq!(all.first().map(|d| d.0.as_path()), Some(Path::new("/opt")));
        assert!(all.iter().any(|(d, ag)| d == Path::new("/srv") && *ag));
    }

    fn entries(tar: &[u8]) -> Vec<(String, u64, u32, String)> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().display().to_string();
                let uid = e.header().uid().unwrap();
                let mode = e.header().mode().unwrap();
                let mut body = String::new();
                std::io::Read::read_to_string(&mut e, &mut body).unwrap();
                (path, uid, mode, body)
            })
            .collect()
    }

    fn rules_agent() -> AgentPlan {
        let mut a = agent();
        a.git_insteadof = vec![bottle_plan::InsteadOf {
            gate_url: "http://bottle-sidecar:9418/app.git".into(),
            upstream_forms: vec!["git@example.test:acme/app.git".into()],
        }];
        a
    }

    const IDS: Ids = Ids {
        uid: 1000,
        gid: 1000,
    };

    fn image<'a>(gitconfig: Option<&'a str>, dirs: &'a [(PathBuf, bool)]) -> FromImage<'a> {
        FromImage {
            ids: IDS,
            bundle: None,
            gitconfig,
            missing_dirs: dirs,
        }
    }

    /// The tar's one `~/.gitconfig` entry (uid, mode, text).
    fn only_gitconfig(tar: &[u8]) -> (u64, u32, String) {
        let e = entries(tar);
        let mut git = e.iter().filter(|x| x.0 == "home/agent/.gitconfig");
        let one = git.next().cloned().expect("a ~/.gitconfig entry");
        assert!(git.next().is_none(), "two ~/.gitconfig entries: {e:?}");
        (one.1, one.2, one.3)
    }

    #[test]
    fn git_rules_join_the_images_gitconfig() {
        let tar = guest_tar(
            &rules_agent(),
            "CA",
            image(Some("[user]\n\tname = Image"), &[]),
        )
        .unwrap();
        let git = only_gitconfig(&tar);
        assert_eq!((git.0, git.1), (1000, 0o644));
        assert_eq!(
            git.2,
            "[user]\n\tname = Image\n[url \"http://bottle-sidecar:9418/app.git\"]\n\tinsteadOf = \"git@example.test:acme/app.git\"\n"
        );
    }

    #[test]
    fn git_rules_join_the_providers_gitconfig_once() {
        let mut a = rules_agent();
        a.files.push(GuestFile {
            path: "/home/agent/.gitconfig".into(),
            mode: 0o600,
            content: "[core]\n\teditor = vi\n".into(),
            agent_owned: true,
        });
        let tar = guest_tar(&a, "CA", image(Some("ignored"), &[])).unwrap();
        let git = only_gitconfig(&tar);
        assert_eq!(git.1, 0o600);
        assert!(
            git.2.starts_with("[core]\n\teditor = vi\n[url "),
            "{}",
            git.2
        );
        assert!(!git.2.contains("ignored"));
    }

    #[test]
    fn no_rules_no_gitconfig_and_missing_dirs_are_entries() {
        let dirs = vec![(PathBuf::from("/opt/tool"), false)];
        let tar = guest_tar(&agent(), "CA", image(None, &dirs)).unwrap();
        let e = entries(&tar);
        assert!(!e.iter().any(|x| x.0.ends_with(".gitconfig")), "{e:?}");
        let opt = e
            .iter()
            .find(|x| x.0 == "opt/tool/")
            .expect("opt/tool entry");
        assert_eq!((opt.1, opt.2), (0, 0o755));
        // Parents come before what is inside them.
        let pos = |name: &str| e.iter().position(|x| x.0 == name).unwrap();
        assert!(pos("opt/tool/") < pos("opt/tool/conf"));
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
