//! What goes into the agent's guest before its command runs: the bottle CA (at
//! `GUEST_CA_PATH` and in the system trust store), the provider's files, the skills folders,
//! git `insteadOf` rules, then the setup commands. Files travel as one tar through the engine
//! API with their modes and numeric owners; nothing is mounted from the host.

use std::path::{Path, PathBuf};

use bottle_plan::AgentPlan;

use super::image::append_bytes;
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

/// Folders to create as the agent user before the upload (`mkdir -p`), so every folder under
/// the agent's home that a file needs is the agent's: the workdir, and the parents of
/// agent-owned files and skills.
pub fn agent_dirs(agent: &AgentPlan) -> Vec<PathBuf> {
    let mut dirs = vec![agent.workdir.clone()];
    for f in agent.files.iter().filter(|f| f.agent_owned) {
        if let Some(p) = f.path.parent() {
            dirs.push(p.to_path_buf());
        }
    }
    for d in &agent.dirs {
        if let Some(p) = d.guest.parent() {
            dirs.push(p.to_path_buf());
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Folders to create as root: the parents of root-owned files.
pub fn root_dirs(agent: &AgentPlan) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = agent
        .files
        .iter()
        .filter(|f| !f.agent_owned)
        .filter_map(|f| f.path.parent().map(Path::to_path_buf))
        .collect();
    if let Some(p) = agent.ca_cert_path.parent() {
        dirs.push(p.to_path_buf());
    }
    if let Some(p) = Path::new(TRUST_STORE_PATH).parent() {
        dirs.push(p.to_path_buf());
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

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

/// The tar (extracted at `/`, owners kept) with the CA, the files and the skills.
pub fn guest_tar(agent: &AgentPlan, ca_pem: &str, ids: Ids) -> Result<Vec<u8>> {
    let root = Ids { uid: 0, gid: 0 };
    let mut tar = tar::Builder::new(Vec::new());
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

/// Root script installing the CA into the trust store where the image has the tool.
pub const TRUST_SCRIPT: &str =
    "if command -v update-ca-certificates >/dev/null 2>&1; then update-ca-certificates >/dev/null 2>&1 || exit 1; fi";

/// Unused helper kept tiny: appends raw bytes (re-exported for tests).
pub fn single_file_tar(path: &str, data: &[u8], mode: u32) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    append_bytes(&mut tar, path, data, mode)?;
    tar.into_inner().map_err(Error::Tar)
}

#[cfg(test)]
mod tests {
    use super::*;

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
