//! `nsapply exec` end to end (issue 17, DESIGN §9), as root: a container
//! made by `nsapply run`, then `nsapply exec` into its command's process,
//! checked by the namespaces the exec'd command reports, by strace (one
//! `setns` through a pidfd, or one per namespace with `--no-pidfd`), and
//! against hostile settings: a `/proc` of another pid namespace, a target
//! gone, nsapply's own pid, the container's root reaching for nsapply's
//! processes.
//!
//! No libtest harness (`harness = false`): cases that need root are listed
//! as ignored, not passed, when the test runs unprivileged.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};

type Outcome = Result<(), String>;

struct Case {
    name: &'static str,
    body: fn() -> Outcome,
    /// Needs strace on PATH.
    strace: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "exec_into_all_eight_namespaces_shows_the_targets_inodes",
        body: exec_into_all_eight_namespaces_shows_the_targets_inodes,
        strace: false,
    },
    Case {
        name: "exec_is_one_pidfd_setns_and_no_pidfd_is_one_setns_per_namespace",
        body: exec_is_one_pidfd_setns_and_no_pidfd_is_one_setns_per_namespace,
        strace: true,
    },
    Case {
        name: "exec_leaks_no_namespace_fd_into_the_command",
        body: exec_leaks_no_namespace_fd_into_the_command,
        strace: false,
    },
    Case {
        name: "exec_into_a_rootless_container_as_its_owner",
        body: exec_into_a_rootless_container_as_its_owner,
        strace: false,
    },
    Case {
        name: "exec_of_a_gone_or_own_pid_is_a_clean_error",
        body: exec_of_a_gone_or_own_pid_is_a_clean_error,
        strace: false,
    },
    Case {
        name: "exec_of_a_process_whose_namespaces_it_may_not_read_is_invalid_target",
        body: exec_of_a_process_whose_namespaces_it_may_not_read_is_invalid_target,
        strace: false,
    },
    Case {
        name: "exec_under_a_proc_of_the_parent_pid_namespace_joins_the_right_process",
        body: exec_under_a_proc_of_the_parent_pid_namespace_joins_the_right_process,
        strace: false,
    },
    Case {
        name: "exec_under_a_proc_that_cannot_show_the_target_is_invalid_target",
        body: exec_under_a_proc_that_cannot_show_the_target_is_invalid_target,
        strace: false,
    },
    Case {
        name: "the_containers_root_cannot_reach_nsapply_exec_processes",
        body: the_containers_root_cannot_reach_nsapply_exec_processes,
        strace: false,
    },
    Case {
        name: "exec_returns_the_commands_status_and_leaves_nothing_behind",
        body: exec_returns_the_commands_status_and_leaves_nothing_behind,
        strace: false,
    },
];

fn main() {
    let args = Arguments::from_args();
    let root = nix::unistd::geteuid().is_root();
    let strace = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !root {
        eprintln!("exec tests are ignored: not root (they make containers to join)");
    }
    let trials = CASES
        .iter()
        .map(|c| {
            let body = c.body;
            Trial::test(c.name, move || body().map_err(Failed::from))
                .with_ignored_flag(!root || (c.strace && !strace))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

// ---------------------------------------------------------------------------
// Helpers

fn nsapply_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nsapply"))
}

/// Waits until a fresh copy of a binary can be executed. The cases run as
/// threads of this process: a fork for another case's spawn between the
/// copy's open and close holds the copy open for writing until that child
/// execs (the fd is O_CLOEXEC), and an exec of the copy meanwhile fails
/// with ETXTBSY (seen with eight cases at once).
fn wait_until_runnable(bin: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Command::new(bin).arg("--version").output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("running the copy {}: {e}", bin.display())),
            Ok(_) => return Ok(()),
        }
    }
}

fn example(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .join("examples")
        .join(format!("{name}.json"))
}

/// A container made by `nsapply run CONFIG -- sleep 300`, killed (with its
/// whole run) when dropped; `target` is its command's pid.
struct Container {
    run: Child,
    target: i32,
}

impl Container {
    fn start(config: &Path, uid: Option<u32>) -> Result<Container, String> {
        Container::start_with(&nsapply_bin(), config, uid)
    }

    fn start_with(bin: &Path, config: &Path, uid: Option<u32>) -> Result<Container, String> {
        let mut cmd = Command::new(bin);
        cmd.arg("run")
            .arg(config)
            .args(["--", "sleep", "300"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(uid) = uid {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(uid);
        }
        let mut run = cmd.spawn().map_err(|e| format!("nsapply run: {e}"))?;
        let pid = i32::try_from(run.id()).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(target) = descendants(pid)
                .into_iter()
                .find(|p| comm(*p).as_deref() == Some("sleep"))
            {
                return Ok(Container { run, target });
            }
            if let Ok(Some(status)) = run.try_wait() {
                let mut err = String::new();
                let _ = run.stderr.take().map(|mut e| e.read_to_string(&mut err));
                return Err(format!(
                    "nsapply run ended ({status}) before its command: {err}"
                ));
            }
            if Instant::now() > deadline {
                return Err("the container's command did not start in 20 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Container {
    /// SIGKILL of `nsapply run` ends its container (DESIGN §8): the
    /// command is pid 1 of its pid namespace, which ignores SIGTERM.
    fn drop(&mut self) {
        let _ = self.run.kill();
        let _ = self.run.wait();
    }
}

fn comm(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

fn ppid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Every process below `pid`, as this /proc shows them.
fn descendants(pid: i32) -> Vec<i32> {
    let all: Vec<i32> = fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for c in all.iter().copied().filter(|c| ppid(*c) == Some(p)) {
            out.push(c);
            frontier.push(c);
        }
    }
    out
}

/// `readlink /proc/PID/ns/*`: name → `type:[inode]`.
fn ns_links(pid: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for e in fs::read_dir(format!("/proc/{pid}/ns"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(l) = fs::read_link(e.path()) {
            m.insert(
                e.file_name().to_string_lossy().into_owned(),
                l.to_string_lossy().into_owned(),
            );
        }
    }
    m
}

/// Parses `readlink /proc/self/ns/*` output lines (`type:[inode]`, in the
/// order of the sorted names) back to name → link.
fn parse_links(names: &[&str], out: &str) -> BTreeMap<String, String> {
    names
        .iter()
        .zip(out.lines())
        .map(|(n, l)| ((*n).to_owned(), l.trim().to_owned()))
        .collect()
}

const NS_NAMES: [&str; 10] = [
    "cgroup",
    "ipc",
    "mnt",
    "net",
    "pid",
    "pid_for_children",
    "time",
    "time_for_children",
    "user",
    "uts",
];

/// The shell command that prints the links of [`NS_NAMES`], one a line.
fn readlinks() -> String {
    let paths: Vec<String> = NS_NAMES
        .iter()
        .map(|n| format!("/proc/self/ns/{n}"))
        .collect();
    format!("readlink {}", paths.join(" "))
}

fn run_bounded(mut cmd: Command, within: Duration) -> Result<Output, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {cmd:?}: {e}"))?;
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().map_err(|e| e.to_string());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            return Err(format!(
                "{cmd:?} did not end within {within:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn exec(args: &[&str]) -> Result<Output, String> {
    let mut c = Command::new(nsapply_bin());
    c.arg("exec").args(args);
    run_bounded(c, Duration::from_secs(30))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Outcome {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

fn expect_ok(o: &Output, what: &str) -> Outcome {
    ensure(o.status.success(), || {
        format!("{what}: {} stderr: {}", o.status, text(&o.stderr))
    })
}

fn expect_error(o: &Output, status: i32, code: &str) -> Outcome {
    let err = text(&o.stderr);
    ensure(
        o.status.code() == Some(status)
            && err.starts_with(&format!("nsapply: {code}: "))
            && err.lines().count() == 1,
        || {
            format!(
                "expected exit {status} and one `nsapply: {code}:` line, got {}: {err:?}",
                o.status
            )
        },
    )
}

// ---------------------------------------------------------------------------
// Cases

/// The first check: a process with all eight namespaces new, and
/// `nsapply exec PID -- readlink /proc/self/ns/*` printing its inodes for
/// all eight (and for children: pid and time apply to them).
fn exec_into_all_eight_namespaces_shows_the_targets_inodes() -> Outcome {
    let c = Container::start(&example("all-kinds"), None)?;
    let want = ns_links(&c.target.to_string());
    let host = ns_links("self");
    for n in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        ensure(want.get(n) != host.get(n), || {
            format!("the container's {n} namespace is the host's: {want:?}")
        })?;
    }
    for extra in [&[][..], &["--no-pidfd"][..]] {
        let pid = c.target.to_string();
        let mut args: Vec<&str> = extra.to_vec();
        let cmd = readlinks();
        args.extend([pid.as_str(), "--", "sh", "-c", cmd.as_str()]);
        let o = exec(&args)?;
        expect_ok(&o, &format!("nsapply exec {args:?}"))?;
        let got = parse_links(&NS_NAMES, &text(&o.stdout));
        let mut expected = want.clone();
        // The target's children would be where it is.
        expected.insert("pid_for_children".into(), want["pid"].clone());
        expected.insert("time_for_children".into(), want["time"].clone());
        ensure(got == expected, || {
            format!("exec {extra:?}: the command is in {got:#?}\nthe target is in {expected:#?}")
        })?;
    }
    Ok(())
}

/// Under strace: one setns through a pidfd (its fd shown by `-y` as a
/// pidfd) on this kernel; with `--no-pidfd`, one setns per namespace on a
/// namespace fd and none on a pidfd; either way one pidfd_open of the
/// target.
fn exec_is_one_pidfd_setns_and_no_pidfd_is_one_setns_per_namespace() -> Outcome {
    let c = Container::start(&example("all-kinds"), None)?;
    for (extra, pidfd_calls, ns_calls) in [(&[][..], 1, 0), (&["--no-pidfd"][..], 0, 8)] {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let log = dir.path().join("strace.txt");
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-y", "-e", "trace=setns,pidfd_open", "-o"])
            .arg(&log)
            .arg(nsapply_bin())
            .arg("exec")
            .args(extra)
            .arg(c.target.to_string())
            .args(["--", "true"]);
        let o = run_bounded(cmd, Duration::from_secs(60))?;
        expect_ok(&o, "strace nsapply exec")?;
        let trace = fs::read_to_string(&log).map_err(|e| e.to_string())?;
        let setns: Vec<&str> = trace.lines().filter(|l| l.contains(" setns(")).collect();
        let through_pidfd = setns.iter().filter(|l| l.contains("pidfd")).count();
        let per_namespace = setns.len() - through_pidfd;
        ensure(
            through_pidfd == pidfd_calls && per_namespace == ns_calls,
            || {
                format!("exec {extra:?}: expected {pidfd_calls} setns on a pidfd and {ns_calls} on namespace fds, strace shows:\n{}", setns.join("\n"))
            },
        )?;
        // The target's number is opened once, when it is resolved: the
        // apply uses that pidfd (or checks it after each per-namespace
        // open), never the number again (`run_exec`: it may be another
        // process's by then).
        let opened = format!(" pidfd_open({},", c.target);
        let opens: Vec<&str> = trace.lines().filter(|l| l.contains(&opened)).collect();
        ensure(opens.len() == 1, || {
            format!(
                "exec {extra:?}: expected one pidfd_open of the target, strace shows:\n{}",
                opens.join("\n")
            )
        })?;
        if pidfd_calls == 1 {
            let all = "CLONE_NEWTIME|CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET";
            ensure(setns[0].contains(all), || {
                format!("the pidfd setns does not name all eight: {}", setns[0])
            })?;
        }
    }
    Ok(())
}

/// The command has exactly the fds a command started here without nsapply
/// has (0, 1, 2, whatever this test inherited, and `ls`'s own directory):
/// no namespace fd, pidfd or pipe of nsapply's reaches it, either way.
/// (`/proc/self`, not `/proc/$$`: the container's `/proc` is the host's
/// procfs, which numbers it otherwise.)
fn exec_leaks_no_namespace_fd_into_the_command() -> Outcome {
    let c = Container::start(&example("all-kinds"), None)?;
    let fds = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.contains(" -> "))
            .filter_map(|l| {
                l.split(" -> ")
                    .next()?
                    .split_whitespace()
                    .last()
                    .map(str::to_owned)
            })
            .collect()
    };
    let mut plain = Command::new("ls");
    plain.args(["-l", "/proc/self/fd/"]);
    let baseline = run_bounded(plain, Duration::from_secs(10))?;
    let want = fds(&text(&baseline.stdout));
    for extra in [&[][..], &["--no-pidfd"][..]] {
        let pid = c.target.to_string();
        let mut args: Vec<&str> = extra.to_vec();
        args.extend([pid.as_str(), "--", "ls", "-l", "/proc/self/fd/"]);
        let o = exec(&args)?;
        expect_ok(&o, "nsapply exec")?;
        let out = text(&o.stdout);
        let ns = [
            "cgroup:[", "ipc:[", "mnt:[", "net:[", "pid:[", "time:[", "user:[", "uts:[",
        ];
        ensure(
            fds(&out) == want && !out.contains("pidfd") && !ns.iter().any(|n| out.contains(n)),
            || {
                format!("exec {extra:?}: the command has fds {:?}, a command started here has {want:?}:\n{out}", fds(&out))
            },
        )?;
    }
    Ok(())
}

/// A rootless container (its user namespace made by uid 1000, mapping 0
/// to it) joined by its owner, uid 1000, without privilege: through the
/// pidfd, and per namespace (open all five files first, then joins that
/// wait for the user namespace: the crun bug SEMANTICS.md cites).
fn exec_into_a_rootless_container_as_its_owner() -> Outcome {
    // uid 1000 may not reach the checkout (a fresh clone in a 0700
    // temporary directory): copies of the binary and the config it can.
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let public = |from: &Path, name: &str, mode: u32| -> Result<PathBuf, String> {
        use std::os::unix::fs::PermissionsExt;
        let to = dir.path().join(name);
        fs::copy(from, &to).map_err(|e| format!("copy {}: {e}", from.display()))?;
        fs::set_permissions(&to, fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())?;
        Ok(to)
    };
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    let bin = public(&nsapply_bin(), "nsapply", 0o755)?;
    wait_until_runnable(&bin)?;
    let config = public(&example("rootless"), "rootless.json", 0o644)?;
    let c = Container::start_with(&bin, &config, Some(1000))?;
    let want = ns_links(&c.target.to_string());
    for extra in [&[][..], &["--no-pidfd"][..]] {
        let mut cmd = Command::new(&bin);
        {
            use std::os::unix::process::CommandExt;
            cmd.uid(1000).gid(1000);
        }
        let rl = readlinks();
        cmd.arg("exec")
            .args(extra)
            .arg(c.target.to_string())
            .args(["--", "sh", "-c", rl.as_str()]);
        let o = run_bounded(cmd, Duration::from_secs(30))?;
        expect_ok(&o, &format!("uid 1000: nsapply exec {extra:?}"))?;
        let got = parse_links(&NS_NAMES, &text(&o.stdout));
        for n in ["ipc", "mnt", "net", "pid", "user", "uts"] {
            ensure(got.get(n) == want.get(n), || {
                format!(
                    "exec {extra:?} as uid 1000: {n} is {:?}, the target's {:?}",
                    got.get(n),
                    want.get(n)
                )
            })?;
        }
    }
    Ok(())
}

/// A pid that names nothing is target-exited (exit 1); nsapply's own pid
/// and a pid that is not positive are invalid-target (exit 2); each one
/// line, and no process left.
fn exec_of_a_gone_or_own_pid_is_a_clean_error() -> Outcome {
    // A child reaped: its pid names nothing (until reused, which a
    // second-long window makes unlikely).
    let mut child = Command::new("true").spawn().map_err(|e| e.to_string())?;
    let gone = child.id().to_string();
    child.wait().map_err(|e| e.to_string())?;
    expect_error(&exec(&[&gone, "--", "true"])?, 1, "target-exited")?;
    // A zombie: exited, not reaped.
    let zombie = Command::new("true").spawn().map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(200));
    let z = zombie.id().to_string();
    expect_error(&exec(&[&z, "--", "true"])?, 1, "target-exited")?;
    expect_error(
        &exec(&["--no-pidfd", "--kinds", "network", &z, "--", "true"])?,
        1,
        "target-exited",
    )?;
    drop(zombie);
    expect_error(&exec(&["0", "--", "true"])?, 2, "invalid-target")?;
    expect_error(&exec(&["-5", "--", "true"])?, 2, "invalid-target")?;
    // Its own pid: the shell execs nsapply with its own pid.
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(format!("exec {} exec $$ -- true", nsapply_bin().display()));
    expect_error(
        &run_bounded(sh, Duration::from_secs(30))?,
        2,
        "invalid-target",
    )?;
    Ok(())
}

/// uid 1000 may not read the namespaces of root's process (no ptrace read
/// access: EACCES): invalid-target (exit 2) naming the file it could not
/// read, before any join; neither target-exited nor a join attempted.
fn exec_of_a_process_whose_namespaces_it_may_not_read_is_invalid_target() -> Outcome {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bin = dir.path().join("nsapply");
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        fs::copy(nsapply_bin(), &bin).map_err(|e| e.to_string())?;
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    }
    wait_until_runnable(&bin)?;
    let mut target = Command::new("sleep")
        .arg("30")
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = target.id().to_string();
    let mut outcomes = Vec::new();
    for extra in [&[][..], &["--kinds", "network"][..]] {
        let mut cmd = Command::new(&bin);
        {
            use std::os::unix::process::CommandExt;
            cmd.uid(1000).gid(1000);
        }
        cmd.arg("exec").args(extra).args([&pid, "--", "true"]);
        outcomes.push((extra, run_bounded(cmd, Duration::from_secs(30))));
    }
    let _ = target.kill();
    let _ = target.wait();
    for (extra, o) in outcomes {
        let o = o?;
        expect_error(&o, 2, "invalid-target")?;
        let err = text(&o.stderr);
        ensure(
            err.contains(&format!(
                "reading its user namespace \"/proc/{pid}/ns/user\""
            )) && err.contains("EACCES"),
            || format!("uid 1000, exec {extra:?} of root's {pid}: {err:?}"),
        )?;
    }
    Ok(())
}

/// nsapply in a pid namespace of its own, under the host's `/proc` (which
/// numbers every process by the host's pid namespace): the target's pid
/// as nsapply knows it is another number in `/proc`. The exec joins the
/// target, not whatever `/proc/<its pid>` names there, both ways.
fn exec_under_a_proc_of_the_parent_pid_namespace_joins_the_right_process() -> Outcome {
    let bin = nsapply_bin();
    for extra in ["", "--no-pidfd"] {
        // In the new pid namespace: a target with a network namespace of
        // its own ($! is its pid there), then the exec into it.
        let script = format!(
            "unshare --net sleep 30 >/dev/null 2>&1 & t=$!; sleep 0.3; {bin} exec {extra} $t -- readlink /proc/self/ns/net; kill $t",
            bin = bin.display()
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "sh", "-c", &script]);
        let o = run_bounded(cmd, Duration::from_secs(40))?;
        let out = text(&o.stdout);
        let first = out.lines().next().unwrap_or_default().to_owned();
        ensure(first.starts_with("net:["), || {
            format!(
                "exec {extra}: no net link printed: {out} {}",
                text(&o.stderr)
            )
        })?;
        let host = fs::read_link("/proc/self/ns/net").map_err(|e| e.to_string())?;
        ensure(first != host.to_string_lossy(), || {
            // /proc/<its pid> there is a host process (pid 2, kthreadd,
            // for the first child of the new pid namespace's init).
            format!("exec {extra}: the command is in the host's network namespace ({first}): it joined the process /proc numbers like the target")
        })?;
    }
    Ok(())
}

/// A `/proc` of a pid namespace below nsapply's cannot show the target (a
/// process of nsapply's pid namespace): invalid-target, before any join.
fn exec_under_a_proc_that_cannot_show_the_target_is_invalid_target() -> Outcome {
    let mut target = Command::new("unshare")
        .args(["--net", "sleep", "30"])
        .spawn()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(300));
    let t = target.id();
    // A private mount namespace where /proc is the procfs of a new pid
    // namespace (made by a child that mounts it, then stays); nsapply
    // runs in the mount namespace, in the original pid namespace.
    let script = format!(
        "unshare --pid --fork --kill-child --mount-proc sleep 30 >/dev/null 2>&1 & sleep 0.5; \
         nsenter --mount --target $! -- {} exec {t} -- true; echo status $?; kill $!",
        nsapply_bin().display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
    let o = run_bounded(cmd, Duration::from_secs(40));
    let _ = target.kill();
    let _ = target.wait();
    let o = o?;
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    ensure(
        out.contains("status 2") && err.contains("nsapply: invalid-target: "),
        || format!("expected invalid-target (exit 2): stdout {out:?} stderr {err:?}"),
    )
}

/// While `nsapply exec` runs a command in a container, the container's
/// root (uid 0 of its user namespace, with every capability there) can
/// neither open the fds nor the memory of any nsapply process it can see:
/// they are not dumpable (CVE-2016-9962 was runc's exec process reachable
/// this way).
fn the_containers_root_cannot_reach_nsapply_exec_processes() -> Outcome {
    let c = Container::start(&example("all-kinds"), None)?;
    let mut held = Command::new(nsapply_bin())
        .args(["exec", &c.target.to_string(), "--", "sleep", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let held_pid = i32::try_from(held.id()).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let nsapply_procs = loop {
        let below = descendants(held_pid);
        if below.iter().any(|p| comm(*p).as_deref() == Some("sleep")) {
            let mut v: Vec<i32> = below
                .into_iter()
                .filter(|p| comm(*p).as_deref() == Some("nsapply"))
                .collect();
            v.push(held_pid);
            break v;
        }
        if Instant::now() > deadline {
            let _ = held.kill();
            return Err("nsapply exec's command did not start".to_owned());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The container's root: another exec, whose command looks at every
    // process of the container's pid namespace that is an nsapply.
    let probe = "for d in /proc/[0-9]*; do \
                   [ \"$(cat $d/comm 2>/dev/null)\" = nsapply ] || continue; \
                   ls $d/fd >/dev/null 2>&1 && echo \"fds of $d readable\"; \
                   head -c1 $d/mem >/dev/null 2>&1 && echo \"mem of $d readable\"; \
                   echo \"seen $d\"; \
                 done; true";
    let o = exec(&[&c.target.to_string(), "--", "sh", "-c", probe]);
    let _ = held.kill();
    let _ = held.wait();
    for &p in &nsapply_procs {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let o = o?;
    expect_ok(&o, "the probe exec")?;
    let out = text(&o.stdout);
    // Only this exec's processes count: the container's /proc is the
    // test's, so the probe also sees the nsapply processes of the tests
    // that run beside this one, and a run's C1 is dumpable while its maps
    // are written and around its time offsets, with the uid that every
    // container of all-kinds.json's map has (two containers mapped to the
    // same host ids are one trust domain; DESIGN §8 is about this one).
    let ours = |line: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("/proc/"))
            .and_then(|pid| pid.parse::<i32>().ok())
            .is_some_and(|pid| nsapply_procs.contains(&pid))
    };
    ensure(
        out.lines().any(|l| l.starts_with("seen ") && ours(l)),
        || {
            format!("the container saw none of this exec's nsapply processes {nsapply_procs:?} (the middle of the first exec must be in its pid namespace): {out}")
        },
    )?;
    let reached: Vec<&str> = out
        .lines()
        .filter(|l| l.ends_with(" readable") && ours(l))
        .collect();
    ensure(reached.is_empty(), || {
        format!("the container's root reached this exec's nsapply processes {nsapply_procs:?}:\n{reached:?}\n{out}")
    })
}

/// The command's exit status is nsapply's; after the exec nothing of it is
/// left (no process below the container's, no process of nsapply's).
fn exec_returns_the_commands_status_and_leaves_nothing_behind() -> Outcome {
    let c = Container::start(&example("all-kinds"), None)?;
    let before = descendants(c.target);
    // The command line names this test process, so that the search below
    // for its strays finds this run's only, not those of another run of
    // this suite beside it (two mutant lanes, a developer's run).
    let command = format!("sleep 0.1 & exit 7 # exec test {}", std::process::id());
    let o = exec(&[&c.target.to_string(), "--", "sh", "-c", &command])?;
    ensure(o.status.code() == Some(7), || {
        format!(
            "exit status {:?}, expected 7: {}",
            o.status,
            text(&o.stderr)
        )
    })?;
    std::thread::sleep(Duration::from_millis(300));
    let after = descendants(c.target);
    ensure(before == after, || {
        format!("processes left below the target: before {before:?}, after {after:?}")
    })?;
    let strays: Vec<i32> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|p: &i32| {
            fs::read_to_string(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.contains(&command))
        })
        .collect();
    ensure(strays.is_empty(), || {
        format!("the command's processes live on: {strays:?}")
    })
}
