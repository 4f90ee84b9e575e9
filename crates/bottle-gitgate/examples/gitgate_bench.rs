//! Benchmark: clone and fetch through the git gate versus directly over SSH, in one run.
//!
//! Generates (once, cached under /var/tmp) a repository of ≥ 50 MB of incompressible content
//! in 2000 commits, serves it from a throwaway sshd on loopback, then alternates gate and
//! direct operations over several rounds and compares medians. The last line is
//! `RESULT clone_vs_direct=<x> fetch_vs_direct=<y>` with x = direct time / gate time.
//! Run it with `bench/gitgate` (release build).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    clippy::print_stdout,
    dead_code
)]

#[path = "../tests/suite/harness.rs"]
mod harness;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bottle_config::PushRules;
use harness::*;

const COMMITS: usize = 2000;
const FILES: usize = 200;
const BLOB: usize = 26 * 1024;
const ROUNDS: usize = 5;
const FETCH_COMMITS: usize = 20;
const CACHE: &str = "/var/tmp/bottle-gitgate-bench/seed-v1.git";

/// xorshift64*: cheap incompressible bytes, deterministic per seed.
struct Rng(u64);
impl Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Appends `n` commits to `refs/heads/main` of the bare repo with `git fast-import`.
fn add_commits(bare: &Path, n: usize, seed: u64, first: bool) {
    let mut child = plain_git(bare)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut w = std::io::BufWriter::new(child.stdin.take().unwrap());
    let mut rng = Rng(seed | 1);
    let mut blob = vec![0u8; BLOB];
    for i in 0..n {
        rng.fill(&mut blob);
        let msg = format!("bench commit {seed}-{i}\n");
        writeln!(w, "commit refs/heads/main").unwrap();
        writeln!(
            w,
            "committer Bench <bench@example.invalid> {} +0000",
            1_700_000_000 + i
        )
        .unwrap();
        writeln!(w, "data {}\n{msg}", msg.len()).unwrap();
        if i == 0 && !first {
            writeln!(w, "from refs/heads/main^0").unwrap();
        }
        writeln!(
            w,
            "M 100644 inline data/f{:03}.bin",
            (seed as usize + i) % FILES
        )
        .unwrap();
        writeln!(w, "data {BLOB}").unwrap();
        w.write_all(&blob).unwrap();
        writeln!(w).unwrap();
    }
    drop(w);
    assert!(child.wait().unwrap().success(), "fast-import failed");
}

fn du(path: &Path) -> u64 {
    let out = run(Command::new("du").args(["-sb"]).arg(path));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn seed_repo() -> PathBuf {
    let cache = PathBuf::from(CACHE);
    if cache.join("DONE").exists() {
        eprintln!("using cached repository {CACHE}");
        return cache;
    }
    let _ = std::fs::remove_dir_all(&cache);
    std::fs::create_dir_all(&cache).unwrap();
    eprintln!("generating {COMMITS} commits of {BLOB} random bytes into {CACHE} ...");
    run(plain_git(&cache).args(["init", "--bare", "-q", "-b", "main", "."]));
    add_commits(&cache, COMMITS, 7, true);
    run(plain_git(&cache).args(["repack", "-adq"]));
    std::fs::write(cache.join("DONE"), "").unwrap();
    cache
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A `git` for the direct side: same SSH hardening as the gate's, no multiplexing.
fn direct_git(dir: &Path, key: &Path, kh: &Path) -> Command {
    let mut cmd = plain_git(dir);
    cmd.env(
        "GIT_SSH_COMMAND",
        format!(
            "ssh -i {} -o IdentitiesOnly=yes -F /dev/null -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes",
            key.display(),
            kh.display()
        ),
    );
    cmd
}

fn timed(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    run(cmd);
    t.elapsed()
}

#[tokio::main]
async fn main() {
    let seed = seed_repo();
    let size = du(&seed);
    eprintln!(
        "repository: {COMMITS} commits, {:.1} MB on disk",
        size as f64 / 1e6
    );
    assert!(size >= 50_000_000, "seed repository is smaller than 50 MB");

    let sshd = Sshd::start();
    let upstream = sshd.repo_path("bench");
    run(Command::new("cp").arg("-a").arg(&seed).arg(&upstream));
    let _ = std::fs::remove_file(upstream.join("DONE"));
    let gate = start_gate(vec![entry(&sshd, "bench", PushRules::default())]).await;
    let gate_url = gate.url("bench");
    let direct_url = sshd.url("bench");

    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("id");
    let kh = tmp.path().join("known_hosts");
    std::fs::write(&key, &sshd.client_key).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(&kh, sshd.known_hosts()).unwrap();
    let work = tmp.path();

    // Blocking git runs off the runtime so the gate keeps serving.
    let bg = |f: Box<dyn FnOnce() -> Duration + Send>| tokio::task::spawn_blocking(f);

    // Warm-up: the gate's first clone fills its mirror from the upstream (reported apart).
    let (u, d) = (gate_url.clone(), work.to_owned());
    let cold = bg(Box::new(move || {
        timed(plain_git(&d).args(["clone", "-q", "--no-checkout", &u, "warm-gate"]))
    }))
    .await
    .unwrap();
    let (u, d, k, h) = (direct_url.clone(), work.to_owned(), key.clone(), kh.clone());
    bg(Box::new(move || {
        timed(direct_git(&d, &k, &h).args(["clone", "-q", "--no-checkout", &u, "warm-direct"]))
    }))
    .await
    .unwrap();
    eprintln!("cold gate clone (mirror empty): {:.3}s", cold.as_secs_f64());

    let mut gate_clone = Vec::new();
    let mut direct_clone = Vec::new();
    for round in 0..ROUNDS {
        for side in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
            let dest = format!("clone-{round}-{side}");
            let d = work.to_owned();
            let t = if side == 0 {
                let u = gate_url.clone();
                bg(Box::new(move || {
                    timed(plain_git(&d).args(["clone", "-q", "--no-checkout", &u, &dest]))
                }))
                .await
                .unwrap()
            } else {
                let (u, k, h) = (direct_url.clone(), key.clone(), kh.clone());
                bg(Box::new(move || {
                    timed(direct_git(&d, &k, &h).args(["clone", "-q", "--no-checkout", &u, &dest]))
                }))
                .await
                .unwrap()
            };
            if side == 0 {
                gate_clone.push(t)
            } else {
                direct_clone.push(t)
            }
            let _ = std::fs::remove_dir_all(work.join(format!("clone-{round}-{side}")));
        }
        eprintln!(
            "clone round {round}: gate {:.3}s direct {:.3}s",
            gate_clone[round].as_secs_f64(),
            direct_clone[round].as_secs_f64()
        );
    }

    let mut gate_fetch = Vec::new();
    let mut direct_fetch = Vec::new();
    for round in 0..ROUNDS {
        add_commits(&upstream, FETCH_COMMITS, 1000 + round as u64, false);
        for side in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
            let t = if side == 0 {
                let d = work.join("warm-gate");
                bg(Box::new(move || {
                    timed(plain_git(&d).args(["fetch", "-q", "origin"]))
                }))
                .await
                .unwrap()
            } else {
                let (d, k, h) = (work.join("warm-direct"), key.clone(), kh.clone());
                bg(Box::new(move || {
                    timed(direct_git(&d, &k, &h).args(["fetch", "-q", "origin"]))
                }))
                .await
                .unwrap()
            };
            if side == 0 {
                gate_fetch.push(t)
            } else {
                direct_fetch.push(t)
            }
        }
        eprintln!(
            "fetch round {round} (+{FETCH_COMMITS} commits): gate {:.3}s direct {:.3}s",
            gate_fetch[round].as_secs_f64(),
            direct_fetch[round].as_secs_f64()
        );
    }
    let head = rev(&upstream, "refs/heads/main");
    assert_eq!(
        rev(&work.join("warm-gate"), "refs/remotes/origin/main"),
        head,
        "gate clone did not follow"
    );
    assert_eq!(
        rev(&work.join("warm-direct"), "refs/remotes/origin/main"),
        head,
        "direct clone did not follow"
    );

    let (gc, dc, gf, df) = (
        median(gate_clone),
        median(direct_clone),
        median(gate_fetch),
        median(direct_fetch),
    );
    println!(
        "clone median: gate {:.3}s direct {:.3}s (cold gate clone {:.3}s)",
        gc.as_secs_f64(),
        dc.as_secs_f64(),
        cold.as_secs_f64()
    );
    println!(
        "fetch median: gate {:.3}s direct {:.3}s",
        gf.as_secs_f64(),
        df.as_secs_f64()
    );
    gate.handle.shutdown().await;
    println!(
        "RESULT clone_vs_direct={:.2} fetch_vs_direct={:.2}",
        dc.as_secs_f64() / gc.as_secs_f64(),
        df.as_secs_f64() / gf.as_secs_f64()
    );
}
