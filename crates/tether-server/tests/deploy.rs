//! `deploy/`: the systemd unit and the example config are what the binary
//! accepts. The unit's `ExecStart=` command line runs against the built
//! binary's own argument parser (with `--check`: settings read and checked,
//! nothing served), its `--config` being the example file, so the example
//! parses with the binary's own settings loader; and when `systemd-analyze`
//! is installed, it verifies the unit too (without it that part says it was
//! skipped; the rest always runs).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

mod common;
use common::*;

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(deploy().join(name)).unwrap_or_else(|e| panic!("deploy/{name}: {e}"))
}

/// `key=value` lines of each section of a unit file (comments skipped).
fn unit_sections(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut sections = BTreeMap::<String, Vec<(String, String)>>::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_owned();
            sections.entry(current.clone()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value in the unit: {line:?}"));
        assert!(!current.is_empty(), "{line:?} outside a section");
        assert!(
            !line.ends_with('\\'),
            "continued lines are not read here: {line:?}"
        );
        sections
            .entry(current.clone())
            .or_default()
            .push((key.trim().to_owned(), value.trim().to_owned()));
    }
    sections
}

fn one<'a>(
    sections: &'a BTreeMap<String, Vec<(String, String)>>,
    section: &str,
    key: &str,
) -> &'a str {
    let values: Vec<&str> = sections
        .get(section)
        .unwrap_or_else(|| panic!("no [{section}] in deploy/tether.service"))
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(values.len(), 1, "one {key}= in [{section}]: {values:?}");
    values[0]
}

/// ExecStart's words (systemd's prefixes taken off; quotes, `$` and `%`
/// specifiers refused: plain words only, so this split is systemd's).
fn exec_start(sections: &BTreeMap<String, Vec<(String, String)>>) -> Vec<String> {
    let line = one(sections, "Service", "ExecStart");
    let line = line.trim_start_matches(['-', '@', ':', '+', '!']);
    assert!(
        !line.contains(['"', '\'', '$', '%', '\\', ';']),
        "ExecStart with quotes, variables or specifiers: {line:?}"
    );
    line.split_whitespace().map(str::to_owned).collect()
}

/// The settings `tether serve ARGS --check` prints (`key = value` lines).
fn checked(dir: &TempDir, args: &[String]) -> BTreeMap<String, String> {
    let mut full: Vec<&str> = args.iter().map(String::as_str).collect();
    full.push("--check");
    let out = run(&mut tether(dir.path(), &full, &[]), EXIT_BUDGET).expect("--check ends");
    assert!(
        out.status.success(),
        "tether {full:?} refused:\n{}",
        out.stderr
    );
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("settings ok"), "{}", out.stdout);
    lines
        .map(|l| {
            let (k, v) = l.split_once(" = ").unwrap_or_else(|| panic!("{l:?}"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn the_unit_command_line_and_the_example_config_are_accepted() {
    let sections = unit_sections(&read("tether.service"));
    let words = exec_start(&sections);
    let (program, args) = words.split_first().expect("ExecStart names a program");
    assert!(
        program.starts_with('/') && program.ends_with("/tether"),
        "ExecStart runs the tether binary by its absolute path: {program:?}"
    );
    assert_eq!(args.first().map(String::as_str), Some("serve"), "{words:?}");

    // --config names where the example is installed; run with the example.
    let at = args
        .iter()
        .position(|a| a == "--config")
        .unwrap_or_else(|| panic!("ExecStart has no --config: {words:?}"));
    let installed = args.get(at + 1).expect("a path after --config");
    assert_eq!(installed, "/etc/tether/tether.toml", "{words:?}");
    let mut args = args.to_vec();
    args[at + 1] = deploy().join("tether.toml").display().to_string();

    let dir = TempDir::new("deploy");
    let settings = checked(&dir, &args);

    // The store is in the unit's state directory, its working directory.
    let state = format!("/var/lib/{}", one(&sections, "Service", "StateDirectory"));
    assert_eq!(one(&sections, "Service", "WorkingDirectory"), state);
    let store = settings["store"].trim_matches('"');
    assert!(
        store.starts_with(&format!("{state}/")),
        "the example's store {store} is in StateDirectory= {state}"
    );
    // The unit stops the server with a signal it handles gracefully.
    assert!(
        matches!(
            one(&sections, "Service", "KillSignal"),
            "SIGTERM" | "SIGINT"
        ),
        "KillSignal"
    );
    assert_eq!(one(&sections, "Install", "WantedBy"), "multi-user.target");

    // A bad argument in that command line would be refused: the check is real.
    let mut bad = args.clone();
    bad.push("--no-such-flag".into());
    let mut full: Vec<&str> = bad.iter().map(String::as_str).collect();
    full.push("--check");
    let out = run(&mut tether(dir.path(), &full, &[]), EXIT_BUDGET).unwrap();
    assert!(!out.status.success(), "{out:?}");
}

/// The example names every setting (set, or commented out with its default
/// or an example), and what it shows commented out is accepted too.
#[test]
fn the_example_config_names_every_setting_and_its_examples_are_valid() {
    let dir = TempDir::new("deploy-keys");
    let defaults = checked(&dir, &["serve".to_owned()]);
    let example = read("tether.toml");
    let assignment = |line: &str| -> Option<(String, String)> {
        let (key, value) = line.split_once(" = ")?;
        let key = key.trim();
        defaults
            .contains_key(key)
            .then(|| (key.to_owned(), value.trim().to_owned()))
    };
    let set: Vec<(String, String)> = example.lines().filter_map(assignment).collect();
    let commented: Vec<(String, String)> = example
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter_map(assignment)
        .collect();
    for key in defaults.keys() {
        assert!(
            set.iter().chain(&commented).any(|(k, _)| k == key),
            "deploy/tether.toml does not mention `{key}`"
        );
    }
    // Every commented-out line, uncommented, is accepted (the TLS files
    // pointing at a real certificate and key).
    let (_, cert, key) = self_signed(&dir);
    let files = [
        ("tls_cert", format!("{:?}", cert.display().to_string())),
        ("tls_key", format!("{:?}", key.display().to_string())),
    ];
    let commented: Vec<(String, String)> = commented
        .into_iter()
        .map(|(k, v)| match files.iter().find(|(name, _)| *name == k) {
            Some((_, path)) => (k, path.clone()),
            None => (k, v),
        })
        .collect();
    let uncommented = dir.write(
        "all.toml",
        &example
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) => match assignment(rest) {
                    Some((k, _)) => match files.iter().find(|(name, _)| *name == k) {
                        Some((name, path)) => format!("{name} = {path}"),
                        None => rest.to_owned(),
                    },
                    None => l.to_owned(),
                },
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let all = checked(
        &dir,
        &[
            "serve".into(),
            "--config".into(),
            uncommented.display().to_string(),
        ],
    );
    for (key, value) in set.iter().chain(&commented) {
        assert_eq!(&all[key], value, "`{key}` as the example writes it");
    }
    // A commented-out line that says `default` shows the default.
    for (key, value) in &commented {
        if !["stream_retention", "cors_origins", "tls_cert", "tls_key"].contains(&key.as_str()) {
            assert_eq!(&defaults[key], value, "`# {key} = ` shows the default");
        }
    }
}

/// `systemd-analyze verify` on the unit (its ExecStart pointed at the built
/// binary), when systemd-analyze is installed: no warning at all.
#[test]
fn systemd_analyze_verifies_the_unit_when_installed() {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        println!("skipped: systemd-analyze is not installed (the unit's command line is still checked by the other test)");
        return;
    }
    let dir = TempDir::new("deploy-unit");
    let unit = read("tether.service").replace("/usr/local/bin/tether", BIN);
    let path = dir.write("tether.service", &unit);
    let out = run(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path)
            .env("SYSTEMD_LOG_COLOR", "0"),
        Duration::from_secs(60),
    )
    .expect("systemd-analyze verify ends");
    assert!(
        out.status.success() && out.stderr.trim().is_empty(),
        "systemd-analyze verify deploy/tether.service: {out:?}"
    );
}
