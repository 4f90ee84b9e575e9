//! The built-in providers' Dockerfiles on the real engine: each is built with the `docker
//! build` CLI (Dockerfile on stdin, tag `bot-bottle/test-agent-<name>`), the agent's own
//! `--version` runs in the image as the non-root user with no network, and the files the
//! provider writes are put into a container of the image the way a backend provisions them
//! (as the agent user, then the provider's setup commands) and read back by the real agent:
//! Claude keeps the seeded onboarding/trust and registers supervise; Codex loads config.toml,
//! sees the supervise MCP server, its title is off, and the placeholder auth.json counts as
//! a ChatGPT login; the status-line script runs with the image's own `sh`; and Claude, started
//! in tmux as a bottle attaches it, opens straight at its prompt with the bottle's status line;
//! Codex opens at its prompt with the placeholder login and leaves the host's title alone. The
//! example user provider in `examples/providers/python` is built and run the same way.
//!
//! Needs a running Docker Engine, tmux, and the local base image `debian:bookworm-slim`
//! (`.ci/base-images.sh`). Behind a TLS-intercepting proxy, set `BOT_BOTTLE_BUILD_CA_CERT` to
//! a PEM file (default: the host's `/usr/local/share/ca-certificates/*.crt`); it is passed as
//! the Dockerfiles' `BUILD_CA_CERT` build argument and not kept in the image.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use bottle_config::PLACEHOLDER;
use bottle_plan::{EnvSource, Overrides, Plan};

use super::provider_files::{files, Case};

fn docker(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new("docker");
    cmd.args(args)
        .env("DOCKER_BUILDKIT", "0")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("the `docker` CLI must be installed for the image tests");
    if let Some(data) = stdin {
        // A writer thread: large inputs must not deadlock against a full stdout pipe.
        let mut pipe = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    child.wait_with_output().unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Extra CA PEM for the build's downloads (see the module docs).
fn build_ca() -> Option<String> {
    if let Ok(path) = std::env::var("BOT_BOTTLE_BUILD_CA_CERT") {
        return Some(
            std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("BOT_BOTTLE_BUILD_CA_CERT={path} is not readable: {e}")),
        );
    }
    let mut pem = String::new();
    let mut paths: Vec<_> = std::fs::read_dir("/usr/local/share/ca-certificates")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    paths.sort();
    for p in paths {
        if let Ok(text) = std::fs::read_to_string(&p) {
            pem.push_str(&text);
            pem.push('\n');
        }
    }
    (!pem.trim().is_empty()).then_some(pem)
}

/// Builds the built-in provider's Dockerfile once per test binary and returns the tag.
fn image(provider: &str) -> String {
    static CLAUDE: OnceLock<String> = OnceLock::new();
    static CODEX: OnceLock<String> = OnceLock::new();
    let cell = match provider {
        "claude" => &CLAUDE,
        "codex" => &CODEX,
        other => panic!("no built-in provider {other}"),
    };
    cell.get_or_init(|| {
        let p = bottle_plan::provider::builtin(provider).unwrap().unwrap();
        let base = docker(&["image", "inspect", "debian:bookworm-slim"], None);
        ok(
            &base,
            "base image debian:bookworm-slim (run .ci/base-images.sh)",
        );
        let tag = format!("bot-bottle/test-agent-{provider}");
        let ca = build_ca().map(|pem| format!("BUILD_CA_CERT={pem}"));
        let mut args = vec!["build", "--quiet", "-t", tag.as_str()];
        if let Some(arg) = &ca {
            args.extend(["--build-arg", arg.as_str()]);
        }
        args.push("-");
        let out = docker(&args, Some(p.dockerfile.as_bytes()));
        ok(&out, &format!("docker build of the {provider} Dockerfile"));
        tag
    })
    .clone()
}

/// A container of `tag` kept running for `docker exec`, removed on drop.
struct Container(String);

impl Container {
    fn start(tag: &str, user: &str) -> Container {
        let name = format!(
            "bot-bottle-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let out = docker(
            &[
                "run",
                "-d",
                "--name",
                &name,
                "--network",
                "none",
                "--user",
                user,
                "--label",
                "bot-bottle.test=images",
                tag,
                "sleep",
                "600",
            ],
            None,
        );
        ok(&out, "docker run");
        Container(name)
    }

    /// `docker exec` as `user` with `env`, a `timeout` inside so nothing hangs.
    fn exec(&self, user: &str, env: &[(String, String)], argv: &[&str], stdin: &[u8]) -> Output {
        let envs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args: Vec<&str> = vec!["exec", "-i", "--user", user];
        for e in &envs {
            args.extend(["-e", e.as_str()]);
        }
        args.extend([self.0.as_str(), "timeout", "120"]);
        args.extend(argv);
        docker(&args, Some(stdin))
    }

    /// Writes the plan's files and runs its setup, as a backend would.
    fn provision(&self, plan: &Plan) -> Vec<(String, String)> {
        let env = guest_env(plan);
        for f in &plan.agent.files {
            let path = f.path.display().to_string();
            let mode = format!("{:o}", f.mode);
            let out = self.exec(
                &plan.agent.user,
                &[],
                &[
                    "sh",
                    "-c",
                    "mkdir -p \"$(dirname \"$1\")\" && cat > \"$1\" && chmod \"$2\" \"$1\"",
                    "sh",
                    &path,
                    &mode,
                ],
                f.content.as_bytes(),
            );
            ok(&out, &format!("writing {path}"));
        }
        for s in &plan.agent.setup {
            let argv: Vec<&str> = s.argv.iter().map(String::as_str).collect();
            let user = if s.as_root { "root" } else { &plan.agent.user };
            let out = self.exec(user, &env, &argv, b"");
            ok(&out, &format!("setup {}", s.argv.join(" ")));
        }
        env
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0], None);
    }
}

/// The agent's environment as the guest sees it: literals as they are, placeholders as the
/// placeholder (host references are not needed by these tests and are left out).
fn guest_env(plan: &Plan) -> Vec<(String, String)> {
    plan.agent
        .env
        .iter()
        .filter_map(|e| match &e.value {
            EnvSource::Literal { value } => Some((e.name.clone(), value.clone())),
            EnvSource::Placeholder => Some((e.name.clone(), PLACEHOLDER.to_string())),
            _ => None,
        })
        .collect()
}

#[test]
fn claude_image_runs_claude_as_the_non_root_user() {
    let tag = image("claude");
    let out = docker(
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            "node",
            &tag,
            "claude",
            "--version",
        ],
        None,
    );
    let v = ok(&out, "claude --version");
    let v = v.trim();
    let (num, rest) = v.split_once(' ').unwrap_or((v, ""));
    assert_eq!(rest, "(Claude Code)", "unexpected version line {v:?}");
    assert!(
        num.split('.').count() == 3 && num.split('.').all(|p| p.parse::<u32>().is_ok()),
        "not a version: {v:?}"
    );
    // The image's default user is the provider's non-root user.
    let out = docker(
        &["run", "--rm", "--network", "none", &tag, "id", "-un"],
        None,
    );
    assert_eq!(ok(&out, "id").trim(), "node");
}

#[test]
fn codex_image_runs_codex_as_the_non_root_user() {
    let tag = image("codex");
    let out = docker(
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            "node",
            &tag,
            "codex",
            "--version",
        ],
        None,
    );
    let v = ok(&out, "codex --version");
    let num = v
        .trim()
        .strip_prefix("codex-cli ")
        .unwrap_or_else(|| panic!("unexpected version line {v:?}"));
    assert!(
        num.split('.').count() == 3 && num.split('.').all(|p| p.parse::<u32>().is_ok()),
        "not a version: {v:?}"
    );
    let out = docker(
        &["run", "--rm", "--network", "none", &tag, "id", "-un"],
        None,
    );
    assert_eq!(ok(&out, "id").trim(), "node");
}

#[test]
fn claude_files_and_setup_work_in_the_image() {
    let tag = image("claude");
    let case = Case::new(
        "claude-implementer",
        "label: bob\ncolor: magenta\n",
        "  provider: claude\n  auth_token: CLAUDE_OAUTH\n",
    );
    let plan = case.plan(Overrides::default());
    let c = Container::start(&tag, &plan.agent.user);
    let env = c.provision(&plan);

    // `claude mcp add --scope user` rewrote ~/.claude.json: the seed survives beside it.
    let out = c.exec("node", &[], &["cat", "/home/node/.claude.json"], b"");
    let global: serde_json::Value = serde_json::from_str(&ok(&out, "cat .claude.json")).unwrap();
    assert_eq!(global["hasCompletedOnboarding"], true);
    assert_eq!(
        global["projects"]["/home/node/work"]["hasTrustDialogAccepted"],
        true
    );
    assert_eq!(global["mcpServers"]["supervise"]["type"], "http");
    assert_eq!(
        global["mcpServers"]["supervise"]["url"],
        plan.agent.mcp_url.as_str()
    );

    // Claude itself lists the server from the user scope.
    let out = c.exec("node", &env, &["claude", "mcp", "get", "supervise"], b"");
    let text = ok(&out, "claude mcp get");
    assert!(text.contains(&plan.agent.mcp_url), "{text}");

    // The status line with the image's sh, tr and sed.
    let script = files(&plan)["/home/node/.claude/statusline.sh"]
        .path
        .clone();
    let out = c.exec(
        "node",
        &[],
        &[script.to_str().unwrap()],
        br#"{"model":{"id":"claude-opus-4-1","display_name":"Opus"},"cwd":"/home/node/work"}"#,
    );
    assert_eq!(
        ok(&out, "statusline.sh"),
        "\x1b[35mbob (claude-implementer)\x1b[39m · Opus\n"
    );
}

#[test]
fn codex_files_work_in_the_image() {
    let tag = image("codex");
    let case = Case::new(
        "codex-reviewer",
        "label: rev\ncolor: bright-cyan\n",
        "  provider: codex\n  forward_host_credentials: true\n",
    );
    let plan = case.plan(Overrides::default());
    let c = Container::start(&tag, &plan.agent.user);
    let env = c.provision(&plan);

    // Codex loads config.toml and sees the supervise server at the sidecar's URL.
    let out = c.exec(
        "node",
        &env,
        &["codex", "mcp", "get", "supervise", "--json"],
        b"",
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&out, "codex mcp get")).unwrap();
    assert_eq!(v["enabled"], true);
    assert_eq!(v["transport"]["type"], "streamable_http");
    assert_eq!(v["transport"]["url"], plan.agent.mcp_url.as_str());

    // The placeholder auth.json is a ChatGPT login as far as Codex can tell.
    let out = c.exec("node", &env, &["codex", "login", "status"], b"");
    let text = ok(&out, "codex login status");
    let all = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("Logged in using ChatGPT"), "{all}");

    // Codex's own diagnosis: the config parses and its title is off (the host's title, the
    // bottle's `label (name)`, stays).
    let out = c.exec("node", &env, &["codex", "doctor", "--all"], b"");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = |key: &str| {
        report
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .map(|l| l.trim_start()[key.len()..].trim().to_string())
            .unwrap_or_else(|| panic!("no `{key}` in codex doctor:\n{report}"))
    };
    assert_eq!(line("config.toml parse"), "ok");
    assert_eq!(line("title source"), "disabled");
}

/// A tmux server on its own socket (so parallel tests never share one), killed on drop.
struct Tmux(String);

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.0)
            .args(args)
            .output()
            .expect("tmux must be installed for the interactive image test")
    }

    fn pane(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", "agent"];
        if escapes {
            args.push("-e");
        }
        String::from_utf8_lossy(&self.cmd(&args).stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// Claude, started in the provisioned image the way a bottle attaches it, goes straight to its
/// prompt — no onboarding, theme, trust, bypass-mode or auto-mode dialogs — in bypass mode,
/// with the bottle's status line `label (name) · model` in the bottle's colour.
#[test]
fn claude_starts_at_the_prompt_with_the_bottle_status_line() {
    claude_starts_at_the_prompt("CLAUDE_OAUTH");
}

/// With an API key, the placeholder in `ANTHROPIC_API_KEY` is pre-approved, so Claude does not
/// ask whether to use the key it found.
#[test]
fn claude_with_an_api_key_starts_at_the_prompt() {
    claude_starts_at_the_prompt("CLAUDE_API_KEY");
}

fn claude_starts_at_the_prompt(auth_var: &str) {
    let tag = image("claude");
    let case = Case::new(
        "claude-implementer",
        "label: bob\ncolor: magenta\n",
        &format!("  provider: claude\n  auth_token: {auth_var}\n"),
    );
    let plan = case.plan(Overrides::default());
    let c = Container::start(&tag, &plan.agent.user);
    let env = c.provision(&plan);

    let tmux = attach_in_tmux(&c, &plan, &env);

    // Wait for the status line (generous: the first start of a 400 MB binary on a busy CI box).
    let want = "bob (claude-implementer) · ";
    let mut screen = String::new();
    for _ in 0..240 {
        screen = tmux.pane(false);
        if screen.contains(want) && screen.contains("bypass permissions on") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(screen.contains(want), "no status line:\n{screen}");
    assert!(screen.contains("bypass permissions on"), "{screen}");
    for dialog in [
        "Choose the text style",
        "trust the files",
        "Bypass Permissions mode",
        "Make auto mode your default",
        "Select login method",
        "Detected a custom API key",
        "Do you want to use this API key",
    ] {
        assert!(
            !screen.contains(dialog),
            "dialog `{dialog}` shown:\n{screen}"
        );
    }
    assert!(
        tmux.pane(true).contains("\x1b[35mbob (claude-implementer)"),
        "the label is not in the bottle's colour"
    );
}

/// Runs the plan's command in the container inside a fresh tmux server, the way a bottle
/// attaches it: the host first sets the terminal title to the bottle's display name.
fn attach_in_tmux(c: &Container, plan: &Plan, env: &[(String, String)]) -> Tmux {
    let display = match &plan.label {
        Some(l) => format!("{l} ({})", plan.name),
        None => plan.name.clone(),
    };
    let mut line = format!(
        "printf '\\033]2;%s\\007' {}; docker exec -it --user {} -w {}",
        bottle_plan::provider::sh_quote(&display),
        plan.agent.user,
        plan.agent.workdir.display()
    );
    for (k, v) in env
        .iter()
        .chain([&("TERM".to_string(), "xterm-256color".to_string())])
    {
        line.push_str(" -e ");
        line.push_str(&bottle_plan::provider::sh_quote(&format!("{k}={v}")));
    }
    line.push(' ');
    line.push_str(&c.0);
    for w in &plan.agent.command {
        line.push(' ');
        line.push_str(&bottle_plan::provider::sh_quote(w));
    }
    let tmux = Tmux(format!("bbt-{}", c.0));
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "agent",
        "-x",
        "120",
        "-y",
        "35",
        &line,
    ]);
    ok(&out, "tmux new-session");
    tmux
}

/// Codex, started in the provisioned image with the forwarded-credentials auth.json, opens
/// at its prompt (the placeholder login is accepted, the workdir is trusted) and leaves the
/// terminal title — the bottle's `label (name)` — alone.
#[test]
fn codex_starts_at_the_prompt_and_keeps_the_title() {
    let tag = image("codex");
    let case = Case::new(
        "codex-reviewer",
        "label: rev\ncolor: bright-cyan\n",
        "  provider: codex\n  forward_host_credentials: true\n",
    );
    let plan = case.plan(Overrides::default());
    let c = Container::start(&tag, &plan.agent.user);
    let env = c.provision(&plan);
    let tmux = attach_in_tmux(&c, &plan, &env);

    let want = "Ask Codex to do anything";
    let mut screen = String::new();
    for _ in 0..240 {
        screen = tmux.pane(false);
        if screen.contains(want) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(
        screen.contains(want),
        "Codex is not at its prompt:\n{screen}"
    );
    for dialog in [
        "Sign in with ChatGPT",
        "Provide your own API key",
        "trust the contents",
    ] {
        assert!(
            !screen.contains(dialog),
            "dialog `{dialog}` shown:\n{screen}"
        );
    }
    let title = tmux.cmd(&["display-message", "-p", "-t", "agent", "#{pane_title}"]);
    assert_eq!(ok(&title, "pane title").trim(), "rev (codex-reviewer)");
}

/// The example user provider (`examples/providers/python`), installed into a temp
/// `BOT_BOTTLE_HOME`, builds from its own folder, provisions, and its startup file runs.
#[test]
fn example_python_provider_builds_and_runs() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/providers/python");
    let case = Case::new(
        "py-worker",
        "label: pat\ncolor: yellow\n",
        "  provider: python\n",
    );
    let home = case.dir.path().join("bot-home");
    let dest = home.join("providers/python");
    std::fs::create_dir_all(&dest).unwrap();
    for entry in std::fs::read_dir(&example).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
    }
    let plan = case.plan_with(&home, Overrides::default());
    let context = plan
        .image
        .context_dir
        .clone()
        .expect("user providers build in their folder");
    let tag = "bot-bottle/test-agent-python";
    let out = docker(
        &["build", "--quiet", "-t", tag, context.to_str().unwrap()],
        None,
    );
    ok(&out, "docker build of the example python provider");

    let c = Container::start(tag, &plan.agent.user);
    let env = c.provision(&plan);
    let out = c.exec(
        &plan.agent.user,
        &env,
        &[
            "sh",
            "-c",
            "cd && git config --global user.name && python3 -i",
        ],
        b"print(BOTTLE == 'pat (py-worker)')\n",
    );
    let stdout = ok(&out, "python3 -i");
    assert!(stdout.starts_with("pat (py-worker)\n"), "{stdout}");
    assert!(
        stdout.contains("bot-bottle: pat (py-worker) (supervise: http://bottle-sidecar:8765/mcp)"),
        "{stdout}"
    );
    assert!(stdout.contains("True"), "{stdout}");
}
