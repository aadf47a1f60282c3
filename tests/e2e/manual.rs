//! What a user reads before running anything: `--help` with examples and the exit
//! codes, shell completions that the shell accepts, and man pages that `man` renders.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{stderr, stdout, Workspace};

const COMMANDS: [&str; 10] = [
    "create",
    "inspect",
    "push",
    "verify",
    "serve",
    "publish",
    "pull",
    "diff",
    "cache",
    "completions",
];

fn run(ws: &Workspace, args: &[&str]) -> Output {
    ws.pkgr().args(args).output().unwrap()
}

fn tool(name: &str, package: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "`{name}` is missing: install it with `apt-get install {package}`"
    );
    Command::new(name)
}

#[test]
fn every_command_s_help_ends_with_examples_and_the_top_level_lists_the_exit_codes() {
    let ws = Workspace::new();
    for command in COMMANDS {
        let out = run(&ws, &[command, "--help"]);
        assert!(out.status.success(), "{command}: {}", stderr(&out));
        let help = stdout(&out);
        let examples = help
            .rfind("Examples:")
            .unwrap_or_else(|| panic!("{command} --help has no examples:\n{help}"));
        let listed: Vec<&str> = help[examples..]
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(
            (2..=3).contains(&listed.len())
                && listed
                    .iter()
                    .all(|l| l.trim_start().starts_with(&format!("pkgr {command}"))),
            "{command}: {listed:?}"
        );
    }
    let help = stdout(&run(&ws, &["--help"]));
    for (code, meaning) in [
        ("0", "success"),
        ("1", "failure"),
        ("2", "usage"),
        ("130", "Ctrl-C"),
        ("143", "SIGTERM"),
    ] {
        assert!(
            help.lines().any(|l| {
                let mut words = l.split_whitespace();
                words.next() == Some(code) && l.contains(meaning)
            }),
            "exit code {code} ({meaning}) is not in --help:\n{help}"
        );
    }
}

#[test]
fn the_bash_completion_script_parses_and_completes_the_commands_and_options() {
    let ws = Workspace::new();
    let out = run(&ws, &["completions", "bash"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let script = ws.path("pkgr.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let check = tool("bash", "bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(check.status.success(), "bash -n: {}", stderr(&check));

    // What the shell offers after `pkgr ` and after `pkgr create --max-b`.
    let offered = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let probe = format!(
            "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; \
             _pkgr pkgr '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            words.len() - 1,
            line.len(),
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
        assert!(out.status.success(), "{line}: {}", stderr(&out));
        stdout(&out)
    };
    let commands = offered("pkgr ");
    for command in COMMANDS {
        assert!(commands.lines().any(|l| l == command), "{commands}");
    }
    assert_eq!(offered("pkgr create --max-b").trim(), "--max-blob-size");
}

#[test]
fn completions_come_for_zsh_fish_and_powershell_and_an_unknown_shell_is_a_usage_error() {
    let ws = Workspace::new();
    for (shell, marker) in [
        ("zsh", "#compdef pkgr"),
        ("fish", "complete -c pkgr"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = run(&ws, &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        assert!(script.contains("max-blob-size"), "{shell}: options missing");
    }
    let out = run(&ws, &["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("invalid value 'tcsh'"),
        "{}",
        stderr(&out)
    );
}

fn render(page: &Path) -> String {
    let out = tool("man", "man-db")
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C.UTF-8")
        .args(["--warnings", "-l"])
        .arg(page)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: {}", page.display(), stderr(&out));
    assert_eq!(stderr(&out), "", "man warns about {}", page.display());
    stdout(&out)
}

#[test]
fn a_man_page_for_every_command_renders_with_its_options() {
    let ws = Workspace::new();
    let dir = ws.path("man/man1");
    let out = run(&ws, &["man-pages", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut written: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    written.sort();
    let mut expected: Vec<String> = [
        "pkgr",
        "pkgr-cache",
        "pkgr-cache-ls",
        "pkgr-cache-path",
        "pkgr-cache-prune",
        "pkgr-cache-verify",
        "pkgr-completions",
        "pkgr-create",
        "pkgr-diff",
        "pkgr-inspect",
        "pkgr-publish",
        "pkgr-pull",
        "pkgr-push",
        "pkgr-serve",
        "pkgr-verify",
    ]
    .iter()
    .map(|name| dir.join(format!("{name}.1")).display().to_string())
    .collect();
    expected.sort();
    assert_eq!(written, expected);

    let create = render(&dir.join("pkgr-create.1"));
    assert!(
        create.contains("pkgr-create - Build a package from DIR/pkgr.yaml"),
        "{create}"
    );
    assert!(create.contains("--max-blob-size"), "{create}");
    assert!(
        create.contains("pkgr create examples/demo -o dist"),
        "{create}"
    );
    let top = render(&dir.join("pkgr.1"));
    assert!(top.contains("143"), "{top}");
    for page in &written {
        render(Path::new(page));
    }
}

#[test]
fn man_pages_into_a_place_that_cannot_hold_them_fail_in_one_sentence() {
    let ws = Workspace::new();
    let file = ws.path("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let out = run(&ws, &["man-pages", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: ") && err.contains("a-file"),
        "{err}"
    );
    assert_eq!(stdout(&out), "");
}
