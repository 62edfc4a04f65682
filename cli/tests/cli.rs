//! The `nsapply` binary as a user runs it: `plan`, `simulate` and `run` on
//! every file in `examples/`, exit statuses, and the one-line error of every
//! bad input under `tests/data/bad/` (named after the code it must give).
//!
//! Each test runs the binary as a subprocess, a fresh single-threaded
//! process, so `run` works from a plain `#[test]`. The `run` tests need
//! root; without it they print a visible skip line and return (CI runs as
//! root, where they run).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nsapply::{ErrorCode, Kind, KindSet, NsConfig, Trace, TraceStep};

/// The repository root (this crate is one level below it).
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The examples and the namespace kinds each one names.
const EXAMPLES: [(&str, &str); 5] = [
    ("default", "pid,network,ipc,uts,mount"),
    ("user", "user,pid,network,ipc,uts,mount"),
    ("all-kinds", "user,pid,uts,ipc,network,cgroup,mount,time"),
    ("join-netns", "pid,network,ipc,uts,mount"),
    ("rootless", "user,pid,ipc,uts,mount,network"),
];

/// The network namespace `examples/join-netns.json` joins.
const EXAMPLE_NETNS: &str = "nsapply-example";

fn path(rel: &str) -> PathBuf {
    Path::new(ROOT).join(rel)
}

fn example(name: &str) -> String {
    path(&format!("examples/{name}.json")).display().to_string()
}

/// The model world a simulation of `name` needs, if any (a config that
/// joins a namespace by path needs that path in the world).
fn world_for(name: &str) -> Option<String> {
    let p = path(&format!("tests/data/worlds/{name}.json"));
    p.exists().then(|| p.display().to_string())
}

fn nsapply(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nsapply"))
        .args(args)
        .current_dir(ROOT)
        .output()
        .expect("the nsapply binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn status(o: &Output) -> i32 {
    o.status.code().expect("nsapply exits, it is not killed")
}

/// Asserts the exit status and that stderr is exactly one line starting
/// with `nsapply: <code>: `, without a panic or backtrace.
#[track_caller]
fn assert_error(o: &Output, want_status: i32, code: &str) {
    let err = stderr(o);
    assert_eq!(
        status(o),
        want_status,
        "exit status (stderr: {err}, stdout: {})",
        stdout(o)
    );
    assert_eq!(
        err.lines().count(),
        1,
        "exactly one stderr line, got {err:?}"
    );
    let prefix = format!("nsapply: {code}: ");
    assert!(
        err.starts_with(&prefix),
        "{err:?} should start with {prefix:?}"
    );
    assert!(
        err.len() > prefix.len() + 1,
        "the message is not empty: {err:?}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

#[track_caller]
fn assert_ok(o: &Output) {
    assert_eq!(status(o), 0, "stderr: {}\nstdout: {}", stderr(o), stdout(o));
    assert!(stderr(o).is_empty(), "no stderr on success: {}", stderr(o));
}

fn parse_trace(o: &Output) -> Trace {
    Trace::from_json(&stdout(o))
        .unwrap_or_else(|e| panic!("stdout is a trace document ({e}):\n{}", stdout(o)))
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Prints a line straight to stderr: the harness captures `eprintln!` of a
/// passing test, and a skip must be seen.
fn skip_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Prints the skip line and returns true when the test cannot run here.
fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    skip_line(&format!(
        "SKIP {test}: `nsapply run` needs root (CI runs as root)"
    ));
    true
}

/// [`skip_unless_root`], and prints the skip line and returns true when
/// strace is missing too.
fn skip_unless_root_and_strace(test: &str) -> bool {
    if skip_unless_root(test) {
        return true;
    }
    if Command::new("strace").arg("-V").output().is_err() {
        skip_line(&format!(
            "SKIP {test}: strace is not installed; .ci/install-deps installs it"
        ));
        return true;
    }
    false
}

// ---------------------------------------------------------------------------
// examples/
// ---------------------------------------------------------------------------

#[test]
fn examples_directory_holds_exactly_the_documented_examples() {
    let found: BTreeSet<String> = std::fs::read_dir(path("examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let want: BTreeSet<String> = EXAMPLES.iter().map(|(n, _)| format!("{n}.json")).collect();
    assert_eq!(found, want);
}

#[test]
fn examples_are_full_oci_configs_that_validate() {
    for (name, kinds) in EXAMPLES {
        let text = std::fs::read_to_string(example(name)).unwrap();
        let spec: oci_spec::runtime::Spec = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{name}: oci-spec rejects it: {e}"));
        assert!(spec.process().is_some() && spec.root().is_some(), "{name}");
        let cfg = NsConfig::from_json(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(cfg.kinds(), kinds.parse::<KindSet>().unwrap(), "{name}");
        assert_eq!(NsConfig::from_spec(&spec).unwrap(), cfg, "{name}");
    }
}

#[test]
fn join_netns_example_joins_the_documented_path() {
    let cfg =
        NsConfig::from_json(&std::fs::read_to_string(example("join-netns")).unwrap()).unwrap();
    let p = cfg.join_path(Kind::Network).expect("joins network");
    assert_eq!(
        p.as_path(),
        Path::new("/run/netns").join(EXAMPLE_NETNS).as_path()
    );
}

// ---------------------------------------------------------------------------
// plan
// ---------------------------------------------------------------------------

#[test]
fn plan_prints_a_table_and_the_expected_trace_for_every_example() {
    for (name, _) in EXAMPLES {
        let text = nsapply(&["plan", &example(name)]);
        assert_ok(&text);
        let table = stdout(&text);
        assert!(table.lines().count() >= 2, "{name}: {table}");
        assert!(table.trim_start().starts_with("1  "), "{name}: {table}");

        let json = nsapply(&["plan", &example(name), "--format", "json"]);
        assert_ok(&json);
        let trace = parse_trace(&json);
        assert!(!trace.steps.is_empty(), "{name}");
        assert!(trace.error.is_none(), "{name}");
        assert!(trace.steps.iter().all(|s| s.outcome().is_ok()), "{name}");
        assert_eq!(
            table.lines().count(),
            trace.steps.len(),
            "{name}: one row per step"
        );
    }
}

#[test]
fn plan_only_prints_the_phase_and_its_complement() {
    let full = parse_trace(&nsapply(&[
        "plan",
        &example("all-kinds"),
        "--format",
        "json",
    ]));
    let first = nsapply(&[
        "plan",
        &example("all-kinds"),
        "--format",
        "json",
        "--only",
        "user,pid,time",
    ]);
    assert_ok(&first);
    let first = parse_trace(&first);
    let rest = nsapply(&[
        "plan",
        &example("all-kinds"),
        "--format",
        "json",
        "--only",
        "uts,ipc,network,cgroup,mount",
    ]);
    assert_ok(&rest);
    let rest = parse_trace(&rest);

    let phase: KindSet = "user,pid,time".parse().unwrap();
    assert!(first
        .steps
        .iter()
        .all(|s| !matches!(s.kind(), Some(k) if !phase.contains(k))));
    assert_eq!(
        first.steps.last(),
        Some(&TraceStep::Fork {
            result: nsapply::Outcome::Ok
        })
    );
    assert!(!rest
        .steps
        .iter()
        .any(|s| matches!(s, TraceStep::Fork { .. })));
    // Together they are the full plan's steps, fork aside.
    let key = |s: &TraceStep| serde_json::to_string(s).unwrap();
    let mut both: Vec<String> = first
        .steps
        .iter()
        .chain(&rest.steps)
        .filter(|s| !matches!(s, TraceStep::Fork { .. }))
        .map(key)
        .collect();
    let mut all: Vec<String> = full
        .steps
        .iter()
        .filter(|s| !matches!(s, TraceStep::Fork { .. }))
        .map(key)
        .collect();
    both.sort();
    all.sort();
    assert_eq!(both, all);
}

#[test]
fn plan_only_with_an_unknown_kind_is_invalid_input() {
    for bad in ["user,net", "bogus", ",", ""] {
        let o = nsapply(&["plan", &example("default"), "--only", bad]);
        assert_error(&o, 2, "invalid-kinds");
        assert!(stdout(&o).is_empty(), "{bad:?}");
    }
}

// ---------------------------------------------------------------------------
// simulate
// ---------------------------------------------------------------------------

#[test]
fn simulate_succeeds_on_every_example() {
    for (name, _) in EXAMPLES {
        let mut args = vec!["simulate".to_owned(), example(name)];
        if let Some(w) = world_for(name) {
            args.extend(["--world".to_owned(), w]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let text = nsapply(&args);
        assert_ok(&text);
        assert_eq!(stdout(&text).lines().last(), Some("ok"), "{name}");

        let mut json_args = args.clone();
        json_args.extend(["--format", "json"]);
        let json = nsapply(&json_args);
        assert_ok(&json);
        let trace = parse_trace(&json);
        assert!(!trace.steps.is_empty() && trace.error.is_none(), "{name}");
        // On a world where everything succeeds, the model does what the plan says.
        let plan = parse_trace(&nsapply(&["plan", &example(name), "--format", "json"]));
        assert_eq!(trace, plan, "{name}");
    }
}

#[test]
fn simulate_without_the_namespace_in_the_world_fails_with_path_not_found() {
    let o = nsapply(&["simulate", &example("join-netns"), "--format", "json"]);
    assert_error(&o, 1, "path-not-found");
    let trace = parse_trace(&o);
    assert_eq!(trace.error.unwrap().code, ErrorCode::PathNotFound);
}

#[test]
fn simulate_with_a_fault_prints_the_trace_and_exits_1() {
    let o = nsapply(&[
        "simulate",
        &example("all-kinds"),
        "--fail",
        "unshare:network=EPERM",
        "--format",
        "json",
    ]);
    assert_error(&o, 1, "unshare-failed");
    let err = stderr(&o);
    assert!(err.contains("network") && err.contains("EPERM"), "{err}");
    let trace = parse_trace(&o);
    let e = trace.error.expect("the trace carries the error");
    assert_eq!(e.code, ErrorCode::UnshareFailed);
    assert_eq!(e.kind, Some(Kind::Network));

    let text = nsapply(&[
        "simulate",
        &example("default"),
        "--fail",
        "1=ENOMEM",
        "--fail",
        "2=EPERM",
    ]);
    assert_error(&text, 1, "unshare-failed");
    assert!(
        stdout(&text).contains("error: unshare-failed: "),
        "{}",
        stdout(&text)
    );
}

#[test]
fn simulate_with_a_bad_fault_rule_is_invalid_input() {
    for rule in ["nope", "0=EPERM", "setns:net=EPERM", "close=EIO", "3=EWHAT"] {
        let o = nsapply(&["simulate", &example("default"), "--fail", rule]);
        assert_error(&o, 2, "invalid-fault");
        assert!(stdout(&o).is_empty(), "{rule}");
    }
}

#[test]
fn simulate_with_a_bad_world_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("malformed.json", "{\"caller\": "),
        ("unknown-field.json", "{\"callers\": {}}"),
        (
            "proc-path.json",
            r#"{"namespaces":[{"name":"x","type":"ipc","paths":["/proc/self/ns/ipc"]}]}"#,
        ),
    ];
    for (file, text) in cases {
        let p = dir.path().join(file);
        std::fs::write(&p, text).unwrap();
        let o = nsapply(&[
            "simulate",
            &example("default"),
            "--world",
            p.to_str().unwrap(),
        ]);
        assert_error(&o, 2, "invalid-world");
    }
    let o = nsapply(&[
        "simulate",
        &example("default"),
        "--world",
        "/nonexistent/world.json",
    ]);
    assert_error(&o, 2, "unreadable-file");
}

// ---------------------------------------------------------------------------
// Bad inputs: tests/data/bad/<code>.json gives <code>.
// ---------------------------------------------------------------------------

fn bad_inputs() -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(path("tests/data/bad"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    v.sort();
    v
}

fn code_named(name: &str) -> ErrorCode {
    ErrorCode::ALL
        .into_iter()
        .find(|c| c.as_str() == name)
        .unwrap_or_else(|| panic!("tests/data/bad/{name}.json is not named after an error code"))
}

#[test]
fn every_validation_code_has_a_bad_input() {
    let have: BTreeSet<String> = bad_inputs().into_iter().map(|(n, _)| n).collect();
    for code in ErrorCode::ALL.into_iter().filter(|c| c.is_input_error()) {
        assert!(
            have.contains(code.as_str()),
            "no tests/data/bad/{code}.json"
        );
    }
    for needed in ["path-not-found", "not-a-namespace", "wrong-namespace-type"] {
        assert!(have.contains(needed), "no tests/data/bad/{needed}.json");
    }
}

#[test]
fn bad_inputs_give_their_code_and_exit_status_in_plan_and_simulate() {
    for (name, file) in bad_inputs() {
        let code = code_named(&name);
        let file = file.to_str().unwrap();
        let plan = nsapply(&["plan", file]);
        let mut sim_args = vec!["simulate", file];
        let world = world_for(&name);
        if let Some(w) = &world {
            sim_args.extend(["--world", w.as_str()]);
        }
        let sim = nsapply(&sim_args);
        if code.is_input_error() {
            assert_error(&plan, 2, &name);
            assert!(stdout(&plan).is_empty(), "{name}: nothing on stdout");
            assert_error(&sim, 2, &name);
            // JSON output still gets a trace document with the error.
            sim_args.extend(["--format", "json"]);
            let json = nsapply(&sim_args);
            assert_error(&json, 2, &name);
            let t = parse_trace(&json);
            assert!(t.steps.is_empty(), "{name}: nothing is applied");
            assert_eq!(t.error.unwrap().code, code, "{name}");
        } else {
            // The plan does not touch the files: only apply finds them bad.
            assert_ok(&plan);
            assert_error(&sim, 1, &name);
            let err = stderr(&sim);
            assert!(
                err.contains("network") && err.contains("\"/"),
                "{name}: names type and path: {err}"
            );
        }
    }
}

#[test]
fn error_messages_name_the_entry_type_path_and_errno() {
    let o = nsapply(&["plan", "tests/data/bad/relative-path.json"]);
    let err = stderr(&o);
    assert!(
        err.contains("[1]") && err.contains("network") && err.contains("run/netns/a"),
        "{err}"
    );
    let o = nsapply(&["plan", "tests/data/bad/invalid-config.json"]);
    let err = stderr(&o);
    assert!(
        err.contains("line 6, column 5"),
        "names the line and column: {err}"
    );
    let o = nsapply(&["simulate", "tests/data/bad/path-not-found.json"]);
    let err = stderr(&o);
    assert!(err.contains("ENOENT"), "names the errno: {err}");
}

#[test]
fn unreadable_config_is_invalid_input_in_every_command() {
    for args in [
        vec!["plan", "/nonexistent/config.json"],
        vec!["simulate", "/nonexistent/config.json"],
        vec!["run", "/nonexistent/config.json", "--", "true"],
        vec!["plan", "/"],
    ] {
        let o = nsapply(&args);
        assert_error(&o, 2, "unreadable-file");
    }
}

/// A config or world that is a FIFO nobody writes to: nsapply does not wait
/// for a writer (its open is O_NONBLOCK, where a plain open waited for
/// ever); the FIFO reads as empty and is refused at once. A pipe with a
/// writer (`nsapply plan /dev/stdin`, `<(...)`) is read to its end.
#[test]
fn a_fifo_without_a_writer_is_refused_at_once_and_a_pipe_is_read() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("config.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let fifo = fifo.to_str().unwrap();
    for args in [
        vec!["plan", fifo],
        vec!["simulate", "examples/default.json", "--world", fifo],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nsapply"))
            .args(&args)
            .current_dir(ROOT)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nsapply {args:?} waited for a writer of the FIFO");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let o = child.wait_with_output().unwrap();
        let code = if args[0] == "plan" {
            "invalid-config"
        } else {
            "invalid-world"
        };
        assert_error(&o, 2, code);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_nsapply"))
        .args(["plan", "/dev/stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let config = std::fs::read(Path::new(ROOT).join("examples/default.json")).unwrap();
    child.stdin.take().unwrap().write_all(&config).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_ok(&o);
    assert_eq!(
        stdout(&o),
        stdout(&nsapply(&["plan", "examples/default.json"]))
    );
}

#[test]
fn usage_errors_are_one_line_with_exit_2() {
    for args in [
        vec![],
        vec!["bogus"],
        vec!["plan"],
        vec!["plan", "examples/default.json", "--format", "yaml"],
        vec!["run", "examples/default.json"],
    ] {
        let o = nsapply(&args);
        assert_error(&o, 2, "usage");
    }
    let help = nsapply(&["--help"]);
    assert_ok(&help);
    assert!(stdout(&help).contains("simulate"));
}

// ---------------------------------------------------------------------------
// run (root)
// ---------------------------------------------------------------------------

/// `readlink /proc/self/ns/<name>` of this test process.
fn own_ns(name: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{name}"))
        .unwrap()
        .display()
        .to_string()
}

/// The shell command a `run` test executes: the namespaces, maps and
/// offsets it sees, one `key=value` line each.
const PROBE: &str = r#"for n in /proc/self/ns/*; do echo "ns.${n##*/}=$(readlink "$n")"; done
echo "uid_map=$(tr -s ' ' < /proc/self/uid_map | sed 's/^ //')"
echo "gid_map=$(tr -s ' ' < /proc/self/gid_map | sed 's/^ //')"
while read -r clock secs nsecs; do echo "offset.$clock=$secs $nsecs"; done < /proc/self/timens_offsets
echo "pid=$$""#;

fn probe(o: &Output) -> BTreeMap<String, String> {
    stdout(o)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn run_creates_every_namespace_of_each_example_and_shows_maps_and_offsets() {
    if skip_unless_root("run_creates_every_namespace_of_each_example_and_shows_maps_and_offsets") {
        return;
    }
    for (name, kinds) in EXAMPLES.into_iter().filter(|(n, _)| *n != "join-netns") {
        let dir = tempfile::tempdir().unwrap();
        let trace_file = dir.path().join("trace.json");
        let o = nsapply(&[
            "run",
            "--trace",
            trace_file.to_str().unwrap(),
            &example(name),
            "--",
            "sh",
            "-c",
            PROBE,
        ]);
        assert_ok(&o);
        let seen = probe(&o);
        let kinds: KindSet = kinds.parse().unwrap();
        for kind in Kind::ALL {
            let ns = kind.proc_name();
            let inside = seen
                .get(&format!("ns.{ns}"))
                .unwrap_or_else(|| panic!("{name}: no ns.{ns} in {seen:?}"));
            if kinds.contains(kind) {
                assert_ne!(inside, &own_ns(ns), "{name}: {kind} must be new");
            } else {
                assert_eq!(inside, &own_ns(ns), "{name}: {kind} must be the caller's");
            }
        }
        if kinds.contains(Kind::Pid) {
            assert_eq!(
                seen["pid"], "1",
                "{name}: the command is pid 1 of its pid namespace"
            );
        }
        let map = match name {
            "rootless" => "0 1000 1",
            _ if kinds.contains(Kind::User) => "0 100000 65536",
            _ => "0 0 4294967295",
        };
        assert_eq!(seen["uid_map"], map, "{name}");
        assert_eq!(seen["gid_map"], map, "{name}");
        let (mono, boot) = if kinds.contains(Kind::Time) {
            ("86400 0", "172800 500000000")
        } else {
            ("0 0", "0 0")
        };
        assert_eq!(seen["offset.monotonic"], mono, "{name}");
        assert_eq!(seen["offset.boottime"], boot, "{name}");

        // The trace of the real run is the plan's, every call ok.
        let trace = Trace::from_json(&std::fs::read_to_string(&trace_file).unwrap()).unwrap();
        let plan = parse_trace(&nsapply(&["plan", &example(name), "--format", "json"]));
        assert_eq!(trace, plan, "{name}");
    }
}

/// Removes the example's network namespace when dropped.
struct Netns;

impl Netns {
    fn create() -> Option<Netns> {
        let ip = Command::new("ip").arg("-V").output();
        if ip.is_err() {
            return None;
        }
        // A leftover of an interrupted run would make `add` fail.
        let _ = Command::new("ip")
            .args(["netns", "delete", EXAMPLE_NETNS])
            .output();
        let o = Command::new("ip")
            .args(["netns", "add", EXAMPLE_NETNS])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "ip netns add: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Some(Netns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", EXAMPLE_NETNS])
            .output();
    }
}

#[test]
fn run_joins_the_example_network_namespace_by_path() {
    if skip_unless_root("run_joins_the_example_network_namespace_by_path") {
        return;
    }
    let Some(_netns) = Netns::create() else {
        skip_line("SKIP run_joins_the_example_network_namespace_by_path: `ip` (iproute2) is not installed; .ci/install-deps installs it");
        return;
    };
    let target = std::fs::metadata(format!("/run/netns/{EXAMPLE_NETNS}"))
        .unwrap()
        .ino();
    let o = nsapply(&["run", &example("join-netns"), "--", "sh", "-c", PROBE]);
    assert_ok(&o);
    let seen = probe(&o);
    assert_eq!(
        seen["ns.net"],
        format!("net:[{target}]"),
        "joined the namespace at the path"
    );
    for kind in [Kind::Pid, Kind::Ipc, Kind::Uts, Kind::Mount] {
        assert_ne!(
            seen[&format!("ns.{}", kind.proc_name())],
            own_ns(kind.proc_name()),
            "{kind}"
        );
    }
}

#[test]
fn run_propagates_the_command_exit_status() {
    if skip_unless_root("run_propagates_the_command_exit_status") {
        return;
    }
    // default.json forks (pid); no-fork.json execs in the applying process.
    for config in [
        example("default"),
        path("tests/data/ok/no-fork.json").display().to_string(),
    ] {
        for code in [0, 1, 7, 255] {
            let o = nsapply(&["run", &config, "--", "sh", "-c", &format!("exit {code}")]);
            assert_eq!(status(&o), code, "{config}: {}", stderr(&o));
            // The command's own failure is not an nsapply error.
            assert!(stderr(&o).is_empty(), "{config}: {}", stderr(&o));
        }
    }
}

#[test]
fn run_reports_a_command_killed_by_a_signal_as_128_plus_the_signal() {
    if skip_unless_root("run_reports_a_command_killed_by_a_signal_as_128_plus_the_signal") {
        return;
    }
    // Not in a new pid namespace: its init ignores signals it has no
    // handler for. time-only.json forks (time) without a pid namespace.
    for config in ["tests/data/ok/no-fork.json", "tests/data/ok/time-only.json"] {
        for (sig, n) in [("KILL", 9), ("TERM", 15)] {
            let o = nsapply(&["run", config, "--", "sh", "-c", &format!("kill -{sig} $$")]);
            assert_eq!(status(&o), 128 + n, "{config}: {}", stderr(&o));
            assert!(stderr(&o).is_empty(), "{config}: {}", stderr(&o));
        }
    }
}

#[test]
fn run_leaves_no_nsapply_fd_open_in_the_command() {
    if skip_unless_root("run_leaves_no_nsapply_fd_open_in_the_command") {
        return;
    }
    // The fds the command gets without nsapply: 0, 1, 2, the fd of the
    // directory the shell lists, and whatever this test process inherited
    // without close-on-exec.
    let list = r#"for f in /proc/self/fd/*; do echo "${f##*/} $(readlink "$f")"; done"#;
    let fds = |o: &Output| -> BTreeSet<String> {
        stdout(o)
            .lines()
            .map(|l| l.split(' ').next().unwrap_or_default().to_owned())
            .collect()
    };
    let baseline = fds(&Command::new("sh").args(["-c", list]).output().unwrap());
    assert!(["0", "1", "2"].iter().all(|fd| baseline.contains(*fd)));
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.json");
    // A fork, no fork, and a joined namespace (an fd the plan must close).
    for config in [
        example("all-kinds"),
        path("tests/data/ok/no-fork.json").display().to_string(),
        path("tests/data/ok/joins-own-netns.json")
            .display()
            .to_string(),
    ] {
        let o = nsapply(&[
            "run",
            "--trace",
            trace.to_str().unwrap(),
            &config,
            "--",
            "sh",
            "-c",
            list,
        ]);
        assert_ok(&o);
        assert_eq!(
            fds(&o),
            baseline,
            "{config}: the command sees only the caller's fds:\n{}",
            stdout(&o)
        );
        for kind in Kind::ALL {
            let ns = format!(" {}:[", kind.proc_name());
            assert!(
                !stdout(&o).contains(&ns),
                "{config}: a namespace fd leaked:\n{}",
                stdout(&o)
            );
        }
    }
}

#[test]
fn run_asks_the_parent_only_at_id_mapping_and_reads_the_thread_count_once() {
    if skip_unless_root_and_strace(
        "run_asks_the_parent_only_at_id_mapping_and_reads_the_thread_count_once",
    ) {
        return;
    }
    // Issue 15: P0 answers nothing at cgroup-placed, so C1 acknowledges it
    // itself (ChildSync::answered_here), and C1, a forked child of a
    // single-threaded process, counts no threads; P0 counts its own once.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("strace.txt");
    let o = Command::new("strace")
        .args(["-f", "-qq", "-s", "256", "-e", "trace=sendto,openat", "-o"])
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_nsapply"))
        .args(["run", &example("all-kinds"), "--", "true"])
        .output()
        .unwrap();
    assert_ok(&o);
    let text = std::fs::read_to_string(&log).unwrap();
    let syncs: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(r#"\"msg\":\"sync\""#))
        .collect();
    assert_eq!(
        syncs.len(),
        1,
        "one sync message (id-mapping):\n{}",
        syncs.join("\n")
    );
    assert!(syncs[0].contains("id-mapping"), "{}", syncs[0]);
    let stats = text
        .lines()
        .filter(|l| l.contains("/proc/self/stat\""))
        .count();
    assert_eq!(stats, 1, "/proc/self/stat read once (by P0):\n{text}");
}

#[test]
fn run_makes_one_namespace_per_unshare_in_the_plans_order() {
    if skip_unless_root_and_strace("run_makes_one_namespace_per_unshare_in_the_plans_order") {
        return;
    }
    // DESIGN §4.3: unshare(CLONE_NEWUSER) alone, then one unshare per
    // kind. The trace is the engine's own account; strace is the kernel's.
    let flag = |kind: &str| match kind {
        "user" => "CLONE_NEWUSER",
        "pid" => "CLONE_NEWPID",
        "uts" => "CLONE_NEWUTS",
        "ipc" => "CLONE_NEWIPC",
        "network" => "CLONE_NEWNET",
        "cgroup" => "CLONE_NEWCGROUP",
        "mount" => "CLONE_NEWNS",
        "time" => "CLONE_NEWTIME",
        other => panic!("a kind the plan should not name: {other}"),
    };
    let dir = tempfile::tempdir().unwrap();
    for name in ["all-kinds", "default", "user"] {
        let plan: serde_json::Value = serde_json::from_str(&stdout(&nsapply(&[
            "plan",
            &example(name),
            "--format",
            "json",
        ])))
        .unwrap();
        let want: Vec<String> = plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["op"] == "unshare")
            .map(|s| format!("unshare({}) = 0", flag(s["type"].as_str().unwrap())))
            .collect();
        assert!(!want.is_empty(), "{name}: the plan creates namespaces");
        let log = dir.path().join(format!("{name}.strace"));
        let o = Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=unshare", "-o"])
            .arg(&log)
            .arg(env!("CARGO_BIN_EXE_nsapply"))
            .args(["run", &example(name), "--", "true"])
            .output()
            .unwrap();
        assert_ok(&o);
        let text = std::fs::read_to_string(&log).unwrap();
        // "PID unshare(FLAGS) = 0": strace pads the pid and the call with
        // spaces, squeezed here.
        let got: Vec<String> = text
            .lines()
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .filter(|call| call.starts_with("unshare("))
            .collect();
        assert_eq!(got, want, "{name}: every unshare(2), in order:\n{text}");
    }
}

/// A test's own cgroup, removed when dropped (empty by then: the processes
/// put in it have been waited for).
struct TestCgroup(PathBuf);

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The cgroup v2 hierarchy's mount point, else the v1 `pids` hierarchy's,
/// with the prefix of its line in `/proc/self/cgroup`.
fn cgroup_hierarchy() -> (PathBuf, &'static str) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut pids = None;
    for line in mountinfo.lines() {
        // "ID PARENT MAJ:MIN ROOT MOUNT OPTIONS... - FSTYPE SOURCE SUPER"
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mount = left.split(' ').nth(4).map(PathBuf::from);
        let mut right = right.split(' ');
        let (fstype, super_opts) = (right.next(), right.nth(1).unwrap_or(""));
        match (fstype, mount) {
            (Some("cgroup2"), Some(m)) => return (m, "0::"),
            (Some("cgroup"), Some(m)) if super_opts.split(',').any(|o| o == "pids") => {
                pids = Some(m)
            }
            _ => {}
        }
    }
    let m = pids.expect("a cgroup v2 hierarchy or a v1 pids hierarchy is mounted");
    (m, ":pids:")
}

#[test]
fn run_roots_a_new_cgroup_namespace_at_the_cgroup_it_ran_in() {
    if skip_unless_root("run_roots_a_new_cgroup_namespace_at_the_cgroup_it_ran_in") {
        return;
    }
    // DESIGN §2: a new cgroup namespace's root is the cgroup the process
    // was in when it unshared. nsapply is started in a cgroup made for
    // this test: with a cgroup namespace, CMD sees that cgroup as `/`;
    // without one, CMD sees what its starter sees.
    let (mount, key) = cgroup_hierarchy();
    let name = format!("nsapply-cli-test-{}", std::process::id());
    let cgroup = TestCgroup(mount.join(&name));
    std::fs::create_dir(&cgroup.0).unwrap();
    let show = |config: &str| {
        let script = r#"echo $$ > "$1/cgroup.procs" && grep -F "$2" /proc/self/cgroup &&
            exec "$3" run "$4" -- grep -F "$2" /proc/self/cgroup"#;
        let o = Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(&cgroup.0)
            .arg(key)
            .arg(env!("CARGO_BIN_EXE_nsapply"))
            .arg(example(config))
            .output()
            .unwrap();
        assert_ok(&o);
        let out = stdout(&o);
        // The path after the hierarchy's prefix ("0::" or "N:pids:").
        let paths: Vec<String> = out
            .lines()
            .filter_map(|l| l.split_once(key).map(|(_, path)| path.to_owned()))
            .collect();
        assert_eq!(
            paths.len(),
            2,
            "{config}: the starter's line and CMD's:\n{out}"
        );
        (paths[0].clone(), paths[1].clone())
    };
    let (starter, cmd) = show("all-kinds");
    assert!(
        starter.ends_with(&format!("/{name}")),
        "the starter is in the test's cgroup: {starter}"
    );
    assert_eq!(cmd, "/", "CMD's cgroup namespace is rooted there");
    let (starter, cmd) = show("default");
    assert_eq!(
        cmd, starter,
        "without a cgroup namespace CMD sees the starter's cgroup"
    );
}

#[test]
fn run_writes_the_trace_of_a_failed_apply_and_exits_1() {
    if skip_unless_root("run_writes_the_trace_of_a_failed_apply_and_exits_1") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, file) in bad_inputs() {
        let code = code_named(&name);
        let trace = dir.path().join(format!("{name}.json"));
        let o = nsapply(&[
            "run",
            "--trace",
            trace.to_str().unwrap(),
            file.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "echo the command ran",
        ]);
        assert!(!stdout(&o).contains("the command ran"), "{name}");
        if code.is_input_error() {
            assert_error(&o, 2, &name);
            continue;
        }
        assert_error(&o, 1, &name);
        let t = Trace::from_json(&std::fs::read_to_string(&trace).unwrap()).unwrap();
        assert_eq!(t.error.map(|e| e.code), Some(code), "{name}");
    }
}

#[test]
fn run_as_an_unprivileged_user_denies_setgroups_and_maps_only_its_own_id() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if skip_unless_root("run_as_an_unprivileged_user_denies_setgroups_and_maps_only_its_own_id") {
        return;
    }
    // rootless.json with the mapping of uid/gid 65534 (nobody), run as nobody.
    const NOBODY: u32 = 65534;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example("rootless")).unwrap()).unwrap();
    for maps in ["uidMappings", "gidMappings"] {
        doc["linux"][maps][0]["hostID"] = NOBODY.into();
    }
    let config = dir.path().join("rootless-nobody.json");
    std::fs::write(&config, doc.to_string()).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    // nobody runs the binary and reads the configs from the 0755 temporary
    // directory: the checkout may sit where nobody cannot reach (a 0700
    // directory from mktemp, a home directory).
    // Copied by install(1), in a process of its own: a copy written from
    // this process would leave its write fd, for a moment, in the children
    // other test threads fork (until they exec), and executing the copy
    // then fails with ETXTBSY.
    let copy = |from: &Path, name: &str, mode: u32| {
        let to = dir.path().join(name);
        let status = Command::new("install")
            .arg(format!("-m{mode:o}"))
            .arg(from)
            .arg(&to)
            .status()
            .unwrap();
        assert!(status.success(), "install {from:?} {to:?}: {status}");
        to.display().to_string()
    };
    let bin = copy(Path::new(env!("CARGO_BIN_EXE_nsapply")), "nsapply", 0o755);
    let default = copy(Path::new(&example("default")), "default.json", 0o644);
    let rootless = copy(Path::new(&example("rootless")), "rootless.json", 0o644);
    let run = |cfg: &str| {
        Command::new(&bin)
            .args(["run", cfg, "--", "sh", "-c"])
            .arg("id -u; cat /proc/self/setgroups; tr -s ' ' < /proc/self/uid_map")
            .current_dir("/")
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .unwrap()
    };
    let o = run(config.to_str().unwrap());
    assert_ok(&o);
    let lines: Vec<String> = stdout(&o).lines().map(|l| l.trim().to_owned()).collect();
    assert_eq!(
        lines,
        ["0", "deny", "0 65534 1"],
        "root inside, setgroups denied, one id mapped"
    );
    // Issue 15: those maps are the caller's own ids, one line each, so C1
    // writes them itself (sync::writes_its_own_id_maps): no sync message
    // goes to P0, and the same three files get the same text. (strace runs
    // as root and nsapply as nobody, `-u`.)
    if Command::new("strace").arg("-V").output().is_ok() {
        let log = dir.path().join("strace.txt");
        let o = Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-s",
                "256",
                "-e",
                "trace=sendto,openat,write",
                "-u",
                "nobody",
                "-o",
            ])
            .arg(&log)
            .arg(&bin)
            .args(["run", config.to_str().unwrap(), "--", "sh", "-c"])
            .arg("cat /proc/self/setgroups; tr -s ' ' < /proc/self/gid_map")
            .current_dir("/")
            .output()
            .unwrap();
        assert_ok(&o);
        assert_eq!(
            stdout(&o).lines().map(str::trim).collect::<Vec<_>>(),
            ["deny", "0 65534 1"]
        );
        let text = std::fs::read_to_string(&log).unwrap();
        let syncs: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(r#"\"msg\":\"sync\""#))
            .collect();
        assert!(syncs.is_empty(), "no sync message:\n{}", syncs.join("\n"));
        // The writes, in DESIGN §4's order, by one process: C1, the one
        // that sends `applied`.
        let calls: Vec<(&str, String)> = text
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(pid, call)| (pid, call.split_whitespace().collect::<Vec<_>>().join(" ")))
            .collect();
        let writes: Vec<&(&str, String)> = calls
            .iter()
            .filter(|(_, c)| {
                c.starts_with("write(")
                    && [r#""deny""#, r#""0 65534 1\n""#]
                        .iter()
                        .any(|t| c.contains(t))
            })
            .collect();
        let texts: Vec<&str> = writes
            .iter()
            .map(|(_, c)| c.split_once(", ").map_or(c.as_str(), |(_, t)| t))
            .collect();
        assert_eq!(
            texts,
            [
                r#""deny", 4) = 4"#,
                r#""0 65534 1\n", 10) = 10"#,
                r#""0 65534 1\n", 10) = 10"#
            ],
            "{text}"
        );
        let applier = calls
            .iter()
            .find(|(_, c)| c.contains(r#"\"msg\":\"applied\""#))
            .map(|(pid, _)| *pid);
        assert!(
            writes.iter().all(|(pid, _)| Some(*pid) == applier),
            "written by C1 ({applier:?}): {writes:?}"
        );
    } else {
        skip_line("SKIP the no-round-trip part of run_as_an_unprivileged_user_denies_setgroups_and_maps_only_its_own_id: strace is not installed; .ci/install-deps installs it");
    }
    // Without a user namespace, an unprivileged caller cannot create the rest.
    let o = run(&default);
    assert_error(&o, 1, "unshare-failed");
    // And it may not map ids it does not own: the parent's write fails.
    let o = run(&rootless);
    assert_error(&o, 1, "sync-failed");
    assert!(
        stderr(&o).contains("uid_map") && stderr(&o).contains("EPERM"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn run_reports_a_command_that_cannot_be_executed() {
    if skip_unless_root("run_reports_a_command_that_cannot_be_executed") {
        return;
    }
    for config in [
        example("default"),
        path("tests/data/ok/no-fork.json").display().to_string(),
    ] {
        let o = nsapply(&["run", &config, "--", "/nonexistent/command"]);
        assert_error(&o, 1, "exec-failed");
        assert!(stderr(&o).contains("ENOENT"), "{}", stderr(&o));
    }
}

#[test]
fn run_rejects_an_unwritable_trace_file_before_applying() {
    let o = nsapply(&[
        "run",
        "--trace",
        "/nonexistent/dir/trace.json",
        &example("default"),
        "--",
        "true",
    ]);
    assert_error(&o, 2, "unwritable-file");
}

// ---------------------------------------------------------------------------
// README
// ---------------------------------------------------------------------------

/// The README's library example, run as written there.
#[test]
fn readme_library_example_runs() -> Result<(), Box<dyn std::error::Error>> {
    // The README's paths are relative to the repository, as under `cargo test`.
    std::env::set_current_dir(ROOT)?;
    // README-EXAMPLE-START
    use nsapply::model::{FaultScript, Model, World};
    use nsapply::simulate::simulate;
    use nsapply::{plan, ErrorCode, Kind, NsConfig};

    let cfg = NsConfig::from_json(&std::fs::read_to_string("examples/all-kinds.json")?)?;
    let plan = plan(&cfg);

    // The model: root in the host namespaces, every call answered by the kernel's rules.
    let mut model = Model::new(&World::default())?;
    let run = simulate(&plan, &mut model);
    assert!(run.error().is_none());
    assert_eq!(model.open_fd_count(), 0);

    // Every error path is reachable: make unshare(CLONE_NEWNET) fail with EPERM.
    let mut model = Model::new(&World::default())?;
    let mut faults = FaultScript::new();
    faults.push(FaultScript::parse_rule("unshare:network=EPERM")?);
    model.set_faults(faults);
    let run = simulate(&plan, &mut model);
    let error = run.error().expect("the run failed");
    assert_eq!(error.code, ErrorCode::UnshareFailed);
    assert_eq!(error.kind, Some(Kind::Network));
    println!("{}", run.trace());
    // README-EXAMPLE-END
    Ok(())
}

fn readme() -> String {
    std::fs::read_to_string(path("README.md")).unwrap()
}

#[test]
fn readme_prints_the_library_example_that_is_tested() {
    let src = std::fs::read_to_string(path("cli/tests/cli.rs")).unwrap();
    let start = src.find("// README-EXAMPLE-START\n").unwrap() + "// README-EXAMPLE-START\n".len();
    let end = src.find("    // README-EXAMPLE-END").unwrap();
    let code: String = src[start..end]
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        readme().contains(&format!("```rust\n{code}```")),
        "README.md must show the example of tests/cli.rs verbatim:\n{code}"
    );
}

#[test]
fn readme_starts_with_the_main_command_and_the_test_command() {
    let readme = readme();
    let first_block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block");
    let lines: Vec<&str> = first_block.lines().collect();
    assert_eq!(lines.len(), 2, "two commands: {lines:?}");
    assert!(lines[0].starts_with("cargo run --release -- run examples/all-kinds.json -- "));
    assert_eq!(lines[1], "cargo test");
    assert!(
        readme.find("```sh").unwrap() < readme.find("## ").unwrap(),
        "before any section"
    );
}

/// The world shown under "Worlds (model input)" is one the model takes.
#[test]
fn readme_world_example_is_a_world() {
    let readme = readme();
    let at = readme
        .find("### Worlds (model input)")
        .expect("the section");
    let rest = &readme[at..];
    let start = rest.find("```json\n").expect("its example") + "```json\n".len();
    let end = start + rest[start..].find("```").unwrap();
    let world = nsapply::model::World::from_json(&rest[start..end])
        .unwrap_or_else(|e| panic!("README world example: {e}"));
    assert_eq!(world.processes.len(), 1);
    nsapply::model::Model::new(&world).expect("a world that can exist");
}

#[test]
fn readme_documents_every_error_code() {
    let readme = readme();
    let cli_only = [
        "unreadable-file",
        "invalid-world",
        "invalid-fault",
        "invalid-kinds",
        "usage",
        "internal-error",
    ];
    let codes = ErrorCode::ALL.iter().map(|c| c.as_str()).chain(cli_only);
    for code in codes {
        assert!(
            readme.contains(&format!("| `{code}` |")),
            "README.md lacks a row for {code}"
        );
    }
    for code in ErrorCode::ALL {
        // `run`'s and `exec`'s own bad input (not validation's) exits 2 as well.
        let run_input = matches!(
            code,
            ErrorCode::InvalidCommand | ErrorCode::UnwritableFile | ErrorCode::InvalidTarget
        );
        let want = if code.is_input_error() || run_input {
            2
        } else {
            1
        };
        assert!(
            readme.contains(&format!("| `{code}` | {want} |")),
            "README.md gives the wrong exit status for {code}"
        );
    }
}

/// A namespace file bind-mounted on a path is a regular file to lstat(2),
/// but on nsfs: `simulate` does not take it for a regular file from the
/// host (which the model would refuse as `not-a-namespace`); only a world
/// file can say which namespace it is, so without one the model has no
/// file there (`path-not-found`, as for a path it never saw).
#[test]
fn simulate_leaves_a_namespace_bind_mount_to_a_world_file() {
    if skip_unless_root("simulate_leaves_a_namespace_bind_mount_to_a_world_file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("net");
    let cfg = dir.path().join("join.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"ociVersion":"1.0.2","linux":{{"namespaces":[{{"type":"network","path":"{}"}}]}}}}"#,
            file.display()
        ),
    )
    .unwrap();
    let o = simulate_on_the_host_after(
        &format!(
            "touch {f} && mount --bind /proc/self/ns/net {f}",
            f = file.display()
        ),
        &cfg,
    );
    assert_error(&o, 1, "path-not-found");
}

/// `nsapply simulate --world host CFG` after the shell command `setup`, in
/// a mount namespace of its own (private: util-linux's default), so what
/// `setup` mounts goes with it.
fn simulate_on_the_host_after(setup: &str, cfg: &Path) -> Output {
    let script = format!(
        "{setup} && exec {bin} simulate --world host {cfg}",
        bin = env!("CARGO_BIN_EXE_nsapply"),
        cfg = cfg.display()
    );
    Command::new("unshare")
        .args(["--mount", "sh", "-c", &script])
        .output()
        .unwrap()
}

/// `--world host` reads the `user.max_*_namespaces` limits; a kernel
/// without one of those files (a kind it does not have) leaves that kind
/// unlimited instead of failing. Here every file is hidden (a tmpfs over
/// `/proc/sys/user`, in a mount namespace of its own): simulate runs. A
/// limit of 0 bind-mounted over one file is then read and applied.
#[test]
fn simulate_on_the_host_reads_the_limits_and_a_missing_one_is_unlimited() {
    if skip_unless_root("simulate_on_the_host_reads_the_limits_and_a_missing_one_is_unlimited") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("uts.json");
    let zero = dir.path().join("zero");
    std::fs::write(
        &cfg,
        r#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"uts"}]}}"#,
    )
    .unwrap();
    std::fs::write(&zero, "0\n").unwrap();
    let run = |setup: &str| simulate_on_the_host_after(setup, &cfg);
    let hidden = run("mount -t tmpfs none /proc/sys/user");
    assert!(
        hidden.status.success(),
        "without the limit files: {hidden:?}"
    );
    let limited = run(&format!(
        "mount --bind {} /proc/sys/user/max_uts_namespaces",
        zero.display()
    ));
    assert_error(&limited, 1, "unshare-failed");
    assert!(stderr(&limited).contains("ENOSPC"), "{}", stderr(&limited));
}

/// Under `--init`, a signal sent to the container's pid 1 from inside (as
/// to any init: `kill -TERM 1`) goes to the command too; init's own
/// SIGCHLD does not. cargo-mutants found the test that skips SIGCHLD could
/// be turned around unnoticed: the command then never got the TERM.
#[test]
fn under_init_a_signal_to_pid_1_from_inside_reaches_the_command() {
    if skip_unless_root("under_init_a_signal_to_pid_1_from_inside_reaches_the_command") {
        return;
    }
    let o = nsapply(&[
        "run",
        "--init",
        &example("default"),
        "--",
        "sh",
        "-c",
        "trap 'echo got TERM; exit 5' TERM; kill -TERM 1; sleep 10 & wait",
    ]);
    assert_eq!(o.status.code(), Some(5), "{o:?}");
    assert_eq!(stdout(&o).trim(), "got TERM");
}

/// 64-bit FNV-1a, as harness/benches/link-order computes it.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// cli/link-order.txt names the functions a run executes by the mangled
/// names one rustc gives them with these locked dependencies and this
/// release profile: made for another lockfile or profile, the release link
/// finds few of them and `nsapply run`'s peak RSS grows back by 1.5 MiB
/// without a word (cli/build.rs). Regenerate it with
/// harness/benches/link-order. (Another rustc is the machine's, not the
/// change's: cli/build.rs warns of it in the release build.)
#[test]
fn the_link_order_was_made_for_this_lockfile_and_release_profile() {
    let order = std::fs::read_to_string(path("cli/link-order.txt")).unwrap();
    let made_for = order
        .lines()
        .find_map(|l| l.strip_prefix("# made for: "))
        .expect("cli/link-order.txt has a `# made for:` line");
    let lock = std::fs::read(path("Cargo.lock")).unwrap();
    let manifest = std::fs::read_to_string(path("Cargo.toml")).unwrap();
    let mut inside = false;
    let mut profile = Vec::new();
    for line in manifest.lines() {
        if line.starts_with('[') {
            inside = line.trim().starts_with("[profile.release");
        }
        if inside {
            profile.push(line);
        }
    }
    let this = format!(
        "Cargo.lock {:016x}; [profile.release] {:016x}",
        fnv1a(&lock),
        fnv1a(profile.join("\n").as_bytes())
    );
    let (_rustc, made) = made_for
        .split_once("; ")
        .expect("`# made for: RUSTC; Cargo.lock ...; [profile.release] ...`");
    assert_eq!(
        made, this,
        "cli/link-order.txt was made for another Cargo.lock or release profile: \
         regenerate it (as root) with harness/benches/link-order"
    );
}
