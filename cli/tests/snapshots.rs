//! Snapshots (insta, stored in the top-level `snapshots/`): the plan and
//! the simulated trace of a corpus of real-world configurations, the
//! validation error of each invalid config, the `Display` text of every
//! error variant, and the CLI's error line for every code.
//!
//! A changed snapshot is a reviewed diff: `cargo insta review`. In CI
//! (`CI=true`) a changed or missing snapshot fails and nothing is written.

use std::path::{Path, PathBuf};
use std::process::Command;

use nsapply::model::{Model, World};
use nsapply::run::RunError;
use nsapply::simulate::simulate;
use nsapply::{
    plan, ApplyError, ConfigError, Errno, ErrorCode, Kind, KindSet, MapFile, NsConfig, SyncError,
    SyncPoint, Unjoined,
};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots/corpus");

macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({
            snapshot_path => "../snapshots",
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

/// The corpus configs (not the worlds), sorted by name.
fn corpus() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(CORPUS)
        .expect("snapshots/corpus exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| !p.to_string_lossy().ends_with(".world.json"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    v.sort();
    assert!(v.len() >= 15, "the corpus lost files: {}", v.len());
    v
}

/// The worlds a config is simulated in: `NAME.world.json` and
/// `NAME.VARIANT.world.json`, or the default world (root, host namespaces).
fn worlds(name: &str) -> Vec<(String, World)> {
    let mut v: Vec<(String, World)> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let file = p.file_name()?.to_string_lossy().into_owned();
            let rest = file.strip_prefix(name)?.strip_suffix("world.json")?;
            let variant = match rest {
                "." => name.to_owned(),
                r if r.starts_with('.') => format!("{name}{}", r.trim_end_matches('.')),
                _ => return None,
            };
            let world = World::from_json(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            Some((variant, world))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    if v.is_empty() {
        v.push((name.to_owned(), World::default()));
    }
    v
}

/// Exec plans (DESIGN §9) into the process 4242 of each world of
/// `snapshots/exec/`: the target found on the model (or why not), the plan
/// with its fallback, and the simulated runs through the pidfd and per
/// namespace. A target that cannot be found is planned for the kinds it
/// has namespaces of, so the join meets it.
#[test]
fn exec_plans_and_runs() {
    use nsapply::exec::ExecTarget;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots/exec");
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".world.json"))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "the exec worlds lost files: {names:?}");
    for path in names {
        let name = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".world.json")
            .to_owned();
        let world = World::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let model = Model::new(&world).unwrap();
        let mut text = String::new();
        let target = match model.exec_target(4242, None) {
            Ok(t) => t,
            Err(e) => {
                text.push_str(&format!("target: {}: {e}\n", e.code()));
                let kinds = world.processes[0].namespaces.keys().copied().collect();
                ExecTarget::new(4242, kinds)
            }
        };
        text.push_str(&format!(
            "kinds: {}\n\nplan:\n{}",
            target.kinds,
            target.plan().unwrap()
        ));
        for (how, t) in [
            ("through the pidfd", target),
            ("per namespace", target.per_namespace()),
        ] {
            let mut m = Model::new(&world).unwrap();
            let run = simulate(&t.plan().unwrap(), &mut m);
            text.push_str(&format!("\nsimulated, {how}:\n{}", run.trace()));
        }
        snapshot!(format!("exec@{name}"), text);
    }
}

#[test]
fn corpus_plans_and_phases() {
    let youki_first: KindSet = "user,pid,time".parse().unwrap();
    for (name, json) in corpus()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("invalid-"))
    {
        let cfg = NsConfig::from_json(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
        let p = plan(&cfg);
        let text = format!(
            "full plan:\n{p}\nphase user,pid,time:\n{}\nphase rest:\n{}",
            p.only(youki_first),
            p.only(youki_first.complement())
        );
        snapshot!(format!("plan@{name}"), text);
    }
}

#[test]
fn corpus_simulated_traces() {
    for (name, json) in corpus()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("invalid-"))
    {
        let p = plan(&NsConfig::from_json(&json).unwrap());
        for (variant, world) in worlds(&name) {
            let mut model = Model::new(&world).unwrap_or_else(|e| panic!("{variant}: {e}"));
            let run = simulate(&p, &mut model);
            assert_eq!(model.open_fd_count(), 0, "{variant}: fds left open");
            assert_eq!(model.bad_closes(), 0, "{variant}: fd closed twice");
            snapshot!(format!("simulate@{variant}"), run.trace().to_json_pretty());
        }
    }
}

#[test]
fn each_invalid_config_has_its_code() {
    for (name, json) in corpus()
        .into_iter()
        .filter(|(n, _)| n.starts_with("invalid-"))
    {
        let err = NsConfig::from_json(&json).expect_err(&name);
        let code = err.code().as_str();
        assert!(
            name == code || name.strip_prefix("invalid-") == Some(code),
            "the file name {name} states the code {code}"
        );
        let text = format!(
            "code: {}\nindex: {:?}\ntype: {:?}\nmessage: {err}",
            err.code(),
            err.index(),
            err.kind()
        );
        snapshot!(format!("validation@{name}"), text);
    }
}

/// One value of every error variant; the match on the code makes a new
/// code without a sample a test failure.
fn samples() -> Vec<(ErrorCode, String)> {
    let p = |s: &str| PathBuf::from(s);
    let config = [
        ConfigError::InvalidConfig {
            line: 3,
            column: 17,
            message: "expected value".into(),
        },
        ConfigError::DuplicateNamespace {
            index: 2,
            kind: Kind::Pid,
            first_index: 0,
        },
        ConfigError::RelativePath {
            index: 1,
            kind: Kind::Network,
            path: p("run/netns/a"),
        },
        ConfigError::UnknownType {
            index: 1,
            type_name: "net".into(),
        },
        ConfigError::MappingsWithoutNewUserNamespace {
            which: nsapply::config::MapKind::Both,
        },
        ConfigError::UserNamespacePathWithMappings {
            index: 0,
            path: p("/proc/4242/ns/user"),
            which: nsapply::config::MapKind::Uid,
        },
        ConfigError::MissingMappings {
            index: 0,
            which: nsapply::config::MapKind::Gid,
        },
        ConfigError::TimeOffsetsWithoutNewTimeNamespace {
            index: Some(1),
            path: Some(p("/proc/4242/ns/time")),
        },
        ConfigError::TimeOffsetsWithoutNewTimeNamespace {
            index: None,
            path: None,
        },
        ConfigError::InvalidTimeOffset {
            clock: "realtime".into(),
            reason: "unknown clock".into(),
        },
        ConfigError::InvalidPath {
            index: 1,
            kind: Kind::Network,
            path: p("/run/netns/a\0b"),
        },
        ConfigError::InvalidRootfsPropagation {
            value: "sideways".into(),
        },
        ConfigError::RootfsPropagationWithoutNewMountNamespace {
            value: "shared".into(),
            index: None,
            path: None,
        },
        ConfigError::RootfsPropagationWithoutNewMountNamespace {
            value: "slave".into(),
            index: Some(2),
            path: Some(p("/proc/4242/ns/mnt")),
        },
    ];
    let apply = [
        ApplyError::NotANamespace {
            kind: Kind::Ipc,
            path: p("/etc/hostname"),
            errno: Errno::ENOTTY,
        },
        ApplyError::WrongNamespaceType {
            kind: Kind::Ipc,
            path: p("/proc/self/ns/net"),
            found: Some(Kind::Network),
            raw: Kind::Network.clone_flag(),
        },
        ApplyError::PathNotFound {
            kind: Kind::Network,
            path: p("/run/netns/gone"),
            errno: Errno::ENOENT,
        },
        ApplyError::OpenFailed {
            kind: Kind::Network,
            path: p("/run/netns/x"),
            errno: Errno::EACCES,
        },
        ApplyError::Multithreaded {
            kind: Kind::User,
            op: "unshare",
            threads: 4,
        },
        ApplyError::ThreadCount {
            kind: Kind::Pid,
            op: "fork",
            errno: Some(Errno::ENOENT),
        },
        ApplyError::ThreadCount {
            kind: Kind::User,
            op: "setns",
            errno: None,
        },
        ApplyError::Join {
            kind: Kind::Network,
            path: p("/proc/4242/ns/net"),
            errno: Errno::EPERM,
            unjoined: vec![
                Unjoined {
                    kind: Kind::Network,
                    path: p("/proc/4242/ns/net"),
                },
                Unjoined {
                    kind: Kind::Ipc,
                    path: p("/proc/4242/ns/ipc"),
                },
            ],
        },
        ApplyError::Unshare {
            kind: Kind::Time,
            errno: Errno::EINVAL,
        },
        ApplyError::Setid {
            errno: Errno::EINVAL,
        },
        ApplyError::TimeOffsets {
            errno: Errno::EACCES,
        },
        ApplyError::Propagation {
            propagation: nsapply::config::Propagation::DEFAULT,
            errno: Errno::EPERM,
        },
        ApplyError::Sync {
            point: SyncPoint::IdMapping,
            source: SyncError::MapWrite {
                file: MapFile::UidMap,
                errno: Errno::EPERM,
            },
        },
        ApplyError::Sync {
            point: SyncPoint::IdMapping,
            source: SyncError::ShortWrite {
                file: MapFile::GidMap,
                written: 3,
                len: 9,
            },
        },
        ApplyError::Sync {
            point: SyncPoint::IdMapping,
            source: SyncError::Proc {
                reason: "/proc is not a procfs mount (file system type 0x1021994)".into(),
                errno: None,
            },
        },
        ApplyError::Sync {
            point: SyncPoint::CgroupPlaced,
            source: SyncError::Channel {
                what: "waiting for the parent's answer".into(),
                errno: None,
            },
        },
        ApplyError::Sync {
            point: SyncPoint::CgroupPlaced,
            source: SyncError::Protocol {
                message: "expected value at line 1 column 1".into(),
            },
        },
        ApplyError::Sync {
            point: SyncPoint::CgroupPlaced,
            source: SyncError::Caller {
                message: "placing the process in its cgroup".into(),
                errno: Some(Errno::EACCES),
            },
        },
        ApplyError::Fork {
            errno: Errno::EAGAIN,
        },
        ApplyError::TargetExited {
            pid: 4242,
            kind: None,
            path: None,
            errno: Errno::ESRCH,
        },
        ApplyError::TargetExited {
            pid: 4242,
            kind: Some(Kind::Ipc),
            path: Some(p("/proc/4242/ns/ipc")),
            errno: Errno::ENOENT,
        },
    ];
    // `nsapply exec`'s target, found before the plan.
    let exec = [
        nsapply::exec::ExecError::InvalidTarget {
            pid: 1,
            reason: "reading its user namespace \"/proc/1/ns/user\"".into(),
            errno: Some(Errno::EACCES),
        },
        nsapply::exec::ExecError::TargetExited {
            pid: 4242,
            errno: Some(Errno::ESRCH),
        },
    ];
    // `nsapply run`'s own errors (the apply's come from ApplyError above).
    let run = [
        RunError::InvalidCommand {
            reason: "argument \"a\\0b\" contains a NUL byte".into(),
        },
        RunError::TraceFile {
            path: p("/nonexistent/trace.json"),
            errno: Errno::ENOENT,
        },
        RunError::Exec {
            program: "/nonexistent".into(),
            errno: Some(Errno::ENOENT),
            message: "No such file or directory (os error 2)".into(),
        },
        RunError::ThreadCount {
            source: nsapply::syscall::ThreadCountError {
                errno: Some(Errno::EMFILE),
            },
        },
        RunError::Multithreaded { threads: 3 },
        RunError::Fork {
            errno: Errno::EAGAIN,
        },
        RunError::Supervision {
            what: "writing the trace file \"/tmp/trace.fifo\"".into(),
            errno: Some(Errno::EPIPE),
        },
        RunError::Supervision {
            what: "the keeper process died".into(),
            errno: None,
        },
        RunError::Interrupted { signal: 15 },
        RunError::Unreported,
    ];
    let mut v: Vec<(ErrorCode, String)> =
        config.iter().map(|e| (e.code(), e.to_string())).collect();
    v.extend(apply.iter().map(|e| (e.code(), e.to_string())));
    v.extend(run.iter().map(|e| (e.code(), e.to_string())));
    v.extend(exec.iter().map(|e| (e.code(), e.to_string())));
    for code in ErrorCode::ALL {
        assert!(
            v.iter().any(|(c, _)| *c == code),
            "no Display sample for {code}"
        );
    }
    v
}

#[test]
fn display_of_every_error_variant() {
    let text: String = samples()
        .into_iter()
        .map(|(c, m)| format!("{c}: {m}\n"))
        .collect();
    snapshot!("error-display", text);
}

fn nsapply(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nsapply"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_temp(dir: &Path, name: &str, contents: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p.to_string_lossy().into_owned()
}

/// The CLI's one stderr line for every code, with its exit status: input
/// errors exit 2 (`plan`), apply errors exit 1 (`simulate` with a world or
/// a fault script that reaches that error path).
#[test]
fn cli_error_line_for_each_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    let mut seen = Vec::new();
    for (name, json) in corpus()
        .into_iter()
        .filter(|(n, _)| n.starts_with("invalid-"))
    {
        let path = format!("{CORPUS}/{name}.json");
        let (status, err) = nsapply(&["plan", &path]);
        lines.push_str(&format!("plan {name}.json => exit {status}\n{err}"));
        seen.push(
            NsConfig::from_json(&json)
                .unwrap_err()
                .code()
                .as_str()
                .to_owned(),
        );
    }
    let (status, err) = nsapply(&[
        "plan",
        &write_temp(dir.path(), "bad.json", "{\"linux\": [,]}"),
    ]);
    lines.push_str(&format!("plan malformed.json => exit {status}\n{err}"));

    let net = write_temp(
        dir.path(),
        "net.json",
        r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"network","path":"/run/netns/a"},{"type":"pid"}]}}"#,
    );
    let user = write_temp(
        dir.path(),
        "user.json",
        r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"user"},{"type":"cgroup"},{"type":"time"}],
            "uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],
            "gidMappings":[{"containerID":0,"hostID":100000,"size":65536}],
            "timeOffsets":{"monotonic":{"secs":86400}}}}"#,
    );
    let world_net = write_temp(
        dir.path(),
        "world-net.json",
        r#"{"namespaces":[{"name":"a","type":"network","paths":["/run/netns/a"]}]}"#,
    );
    let world_ipc = write_temp(
        dir.path(),
        "world-ipc.json",
        r#"{"namespaces":[{"name":"a","type":"ipc","paths":["/run/netns/a"]}]}"#,
    );
    let world_file = write_temp(
        dir.path(),
        "world-file.json",
        r#"{"files":{"/run/netns/a":"regular"}}"#,
    );
    let world_threads = write_temp(
        dir.path(),
        "world-threads.json",
        r#"{"caller":{"threads":3}}"#,
    );
    let world_rootless = write_temp(
        dir.path(),
        "world-rootless.json",
        r#"{"caller":{"uid":1000,"gid":1000}}"#,
    );
    let mount = write_temp(
        dir.path(),
        "mount.json",
        r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"mount"}],"rootfsPropagation":"rprivate"}}"#,
    );
    let cases: [(&str, &str, &str, &[&str]); 12] = [
        ("path-not-found", &net, "", &[]),
        ("not-a-namespace", &net, &world_file, &[]),
        ("wrong-namespace-type", &net, &world_ipc, &[]),
        ("open-failed", &net, &world_net, &["open:network=EACCES"]),
        ("multithreaded", &user, &world_threads, &[]),
        ("thread-count-failed", &user, "", &["threads=EMFILE"]),
        ("propagation-failed", &mount, "", &["propagation=EPERM"]),
        ("join-failed", &net, &world_net, &["setns:network=EINVAL"]),
        ("unshare-failed", &user, "", &["unshare:time=ENOSPC"]),
        ("setid-failed", &user, "", &["setid=EINVAL"]),
        ("time-offsets-failed", &user, "", &["time-offsets=EACCES"]),
        ("sync-failed", &user, &world_rootless, &[]),
    ];
    for (code, config, world, faults) in cases {
        let mut args = vec!["simulate", config];
        if !world.is_empty() {
            args.extend(["--world", world]);
        }
        for f in faults {
            args.extend(["--fail", f]);
        }
        let (status, err) = nsapply(&args);
        lines.push_str(&format!("simulate {code} => exit {status}\n{err}"));
        seen.push(code.to_owned());
    }
    let (status, err) = nsapply(&[
        "simulate",
        &net,
        "--world",
        &world_net,
        "--fail",
        "fork=EAGAIN",
    ]);
    lines.push_str(&format!("simulate fork-failed => exit {status}\n{err}"));
    seen.extend(["fork-failed".to_owned(), "invalid-config".to_owned()]);
    // `run`'s input errors, found before anything runs (no root needed).
    let uts = write_temp(
        dir.path(),
        "uts.json",
        r#"{"linux":{"namespaces":[{"type":"uts"}]}}"#,
    );
    let (status, err) = nsapply(&["run", "--init", &uts, "--", "true"]);
    lines.push_str(&format!(
        "run --init without a pid namespace => exit {status}\n{err}"
    ));
    let (status, err) = nsapply(&[
        "run",
        "--trace",
        "/nonexistent/trace.json",
        &net,
        "--",
        "true",
    ]);
    lines.push_str(&format!(
        "run --trace /nonexistent/... => exit {status}\n{err}"
    ));
    seen.extend(["invalid-command".to_owned(), "unwritable-file".to_owned()]);
    // `exec`'s target errors, on the model: a zombie, a process of another
    // uid for a caller without capabilities, a pid that is not one; and a
    // target that exits between the plan and the join (a fault).
    let world_exec = write_temp(
        dir.path(),
        "world-exec.json",
        r#"{"caller":{"uid":1000,"gid":1000},
            "processes":[{"pid":40,"uid":1000},{"pid":41,"state":"exited","uid":1000},{"pid":42,"uid":0}]}"#,
    );
    for (what, pid, faults) in [
        ("a zombie", "41", &[][..]),
        ("another uid's process", "42", &[][..]),
        ("pid 0", "0", &[][..]),
        (
            "a target gone at the join",
            "40",
            &["--kinds", "network", "--fail", "setns-pidfd=ESRCH"][..],
        ),
    ] {
        let mut args = vec!["simulate", "--world", &world_exec, "--exec", pid];
        args.extend(faults);
        let (status, err) = nsapply(&args);
        lines.push_str(&format!("simulate --exec {what} => exit {status}\n{err}"));
    }
    seen.extend(["target-exited".to_owned(), "invalid-target".to_owned()]);
    // exec-failed and run-failed need a run that applies (root): their
    // lines are checked by tests/cli.rs and tests/hostile.rs.
    for code in ErrorCode::ALL
        .into_iter()
        .filter(|c| !matches!(c, ErrorCode::ExecFailed | ErrorCode::RunFailed))
    {
        assert!(
            seen.iter().any(|s| s == code.as_str()),
            "no CLI line for {code}"
        );
        let prefix = format!("nsapply: {code}: ");
        assert!(
            lines.contains(&prefix),
            "the CLI never printed {prefix:?}:\n{lines}"
        );
    }
    let lines = lines
        .replace(dir.path().to_str().unwrap(), "$TMP")
        .replace(CORPUS, "$CORPUS");
    snapshot!("cli-error-lines", lines);
}
