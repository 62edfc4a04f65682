//! The process layer of `nsapply run` against a hostile caller, path,
//! signal or race (DESIGN §8). One trial per scenario; each was written to
//! fail on the code before the hardening (issue 12) and names what it holds.
//!
//! Every trial drives the `nsapply` binary as a user would and looks at the
//! machine from outside: which process got an id map, which mounts appeared,
//! which processes are left, what status and error line came back. The
//! trials that make namespaces, mounts or other users' processes need root;
//! without it they are reported as ignored with the reason printed, never
//! as passed. CI runs as root.
//!
//! Like `tests/kernel.rs`, this target has no libtest harness: a case may
//! change its own process (a private mount namespace, a child subreaper),
//! so each trial re-executes this binary with `NSAPPLY_HOSTILE_CASE=<name>`
//! and the case runs alone in that process. The same binary doubles as a
//! probe that runs as `CMD` inside a container (`NSAPPLY_HOSTILE_PROBE`).
//!
//! Leftovers are found exactly rather than by comparing the whole machine
//! (other work on the host starts and ends namespaces too): a case process
//! that runs nsapply is a child subreaper, so any process nsapply leaves
//! behind is re-parented to it and shows as its child; namespaces are
//! found by the inodes the runs themselves printed; mounts by the case's
//! own (private) mount table.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;
use nsapply_harness::host;

const CASE_ENV: &str = "NSAPPLY_HOSTILE_CASE";
const PROBE_ENV: &str = "NSAPPLY_HOSTILE_PROBE";

type Outcome = Result<(), String>;

/// A scenario: its name, whether it needs root, and the case body.
struct Case {
    name: &'static str,
    root: bool,
    body: fn() -> Outcome,
}

const CASES: &[Case] = &[
    Case {
        name: "id_maps_reach_our_child_and_no_other_process_through_a_foreign_proc",
        root: true,
        body: id_maps_reach_our_child_and_no_other_process_through_a_foreign_proc,
    },
    Case {
        name: "a_rootless_run_maps_itself_through_a_foreign_proc_and_no_other_process",
        root: true,
        body: a_rootless_run_maps_itself_through_a_foreign_proc_and_no_other_process,
    },
    Case {
        name: "a_fake_proc_is_refused_before_anything_is_written",
        root: true,
        body: a_fake_proc_is_refused_before_anything_is_written,
    },
    Case {
        name: "mounts_made_in_the_container_do_not_propagate_to_the_host",
        root: true,
        body: mounts_made_in_the_container_do_not_propagate_to_the_host,
    },
    Case {
        name: "a_rootless_container_cannot_open_the_memory_of_any_nsapply_process",
        root: true,
        body: a_rootless_container_cannot_open_the_memory_of_any_nsapply_process,
    },
    Case {
        name: "sigkill_of_nsapply_ends_a_container_that_changed_its_credentials",
        root: true,
        body: sigkill_of_nsapply_ends_a_container_that_changed_its_credentials,
    },
    Case {
        name: "sigkill_of_the_supervising_child_ends_the_container_too",
        root: true,
        body: sigkill_of_the_supervising_child_ends_the_container_too,
    },
    Case {
        name: "a_supervising_child_stopped_when_nsapply_dies_is_killed_after_its_grace",
        root: true,
        body: a_supervising_child_stopped_when_nsapply_dies_is_killed_after_its_grace,
    },
    Case {
        name: "sigkill_of_the_supervising_child_ends_the_run_at_once_when_its_command_died_with_it",
        root: true,
        body: sigkill_of_the_supervising_child_ends_the_run_at_once_when_its_command_died_with_it,
    },
    Case {
        name: "a_failing_poll_in_the_supervising_child_ends_the_run_with_its_error",
        root: true,
        body: a_failing_poll_in_the_supervising_child_ends_the_run_with_its_error,
    },
    Case {
        name: "a_sigint_sent_to_nsapply_on_a_terminal_reaches_cmd",
        root: true,
        body: a_sigint_sent_to_nsapply_on_a_terminal_reaches_cmd,
    },
    Case {
        name: "a_signal_while_the_keeper_ends_what_c1_left_is_not_nsapplys_death",
        root: true,
        body: a_signal_while_the_keeper_ends_what_c1_left_is_not_nsapplys_death,
    },
    Case {
        name: "sigkill_of_every_nsapply_process_at_once_ends_cmd",
        root: true,
        body: sigkill_of_every_nsapply_process_at_once_ends_cmd,
    },
    Case {
        name: "a_burst_of_signals_is_forwarded_and_the_run_goes_on",
        root: true,
        body: a_burst_of_signals_is_forwarded_and_the_run_goes_on,
    },
    Case {
        name: "what_cmd_leaves_behind_runs_while_cmd_runs",
        root: true,
        body: what_cmd_leaves_behind_runs_while_cmd_runs,
    },
    Case {
        name: "nsapplys_processes_wait_without_spinning_while_cmd_runs",
        root: true,
        body: nsapplys_processes_wait_without_spinning_while_cmd_runs,
    },
    Case {
        name: "a_caller_with_almost_no_free_fds_fails_cleanly",
        root: true,
        body: a_caller_with_almost_no_free_fds_fails_cleanly,
    },
    Case {
        name: "sigkill_of_nsapply_at_any_moment_leaves_nothing_behind",
        root: true,
        body: sigkill_of_nsapply_at_any_moment_leaves_nothing_behind,
    },
    Case {
        name: "fifo_socket_device_and_directory_paths_are_refused_at_once",
        root: true,
        body: fifo_socket_device_and_directory_paths_are_refused_at_once,
    },
    Case {
        name: "forwarded_signals_reach_cmd_and_its_status_comes_back",
        root: true,
        body: forwarded_signals_reach_cmd_and_its_status_comes_back,
    },
    Case {
        name: "a_caller_that_ignores_sigchld_and_blocks_signals_changes_nothing",
        root: true,
        body: a_caller_that_ignores_sigchld_and_blocks_signals_changes_nothing,
    },
    Case {
        name: "init_reaps_orphans_and_forwards_signals",
        root: true,
        body: init_reaps_orphans_and_forwards_signals,
    },
    Case {
        name: "under_init_the_orphans_cmd_leaves_end_with_it_at_once",
        root: true,
        body: under_init_the_orphans_cmd_leaves_end_with_it_at_once,
    },
    Case {
        name: "an_unreadable_thread_count_has_its_own_code",
        root: true,
        body: an_unreadable_thread_count_has_its_own_code,
    },
    Case {
        name: "two_hundred_runs_in_a_row_and_twenty_in_parallel_leave_nothing_behind",
        root: true,
        body: two_hundred_runs_in_a_row_and_twenty_in_parallel_leave_nothing_behind,
    },
    Case {
        name: "an_endless_config_is_refused_with_bounded_memory",
        root: false,
        body: an_endless_config_is_refused_with_bounded_memory,
    },
    Case {
        name: "a_nul_byte_in_a_path_is_refused_at_validation",
        root: false,
        body: a_nul_byte_in_a_path_is_refused_at_validation,
    },
    Case {
        name: "a_config_that_is_not_utf8_is_invalid_config_without_an_errno",
        root: false,
        body: a_config_that_is_not_utf8_is_invalid_config_without_an_errno,
    },
    Case {
        name: "control_characters_in_paths_are_escaped_in_text_output",
        root: false,
        body: control_characters_in_paths_are_escaped_in_text_output,
    },
    Case {
        name: "control_characters_quoted_by_an_error_line_are_escaped",
        root: false,
        body: control_characters_quoted_by_an_error_line_are_escaped,
    },
    Case {
        name: "a_signal_to_nsapplys_process_group_reaches_cmd_and_its_status_comes_back",
        root: true,
        body: a_signal_to_nsapplys_process_group_reaches_cmd_and_its_status_comes_back,
    },
    Case {
        name: "sigkill_of_nsapplys_process_group_leaves_no_daemon_behind",
        root: true,
        body: sigkill_of_nsapplys_process_group_leaves_no_daemon_behind,
    },
    Case {
        name: "a_cmd_traced_by_its_own_child_neither_hangs_nsapply_nor_outlives_it",
        root: true,
        body: a_cmd_traced_by_its_own_child_neither_hangs_nsapply_nor_outlives_it,
    },
    Case {
        name: "a_deep_chain_of_orphans_does_not_outlive_nsapply",
        root: true,
        body: a_deep_chain_of_orphans_does_not_outlive_nsapply,
    },
    Case {
        name: "orphans_hidden_by_a_mount_over_proc_do_not_outlive_nsapply",
        root: true,
        body: orphans_hidden_by_a_mount_over_proc_do_not_outlive_nsapply,
    },
    Case {
        name: "under_a_foreign_proc_orphans_end_and_no_other_process_is_killed",
        root: true,
        body: under_a_foreign_proc_orphans_end_and_no_other_process_is_killed,
    },
    Case {
        name: "a_trace_file_that_blocks_leaves_no_cmd_unsupervised",
        root: true,
        body: a_trace_file_that_blocks_leaves_no_cmd_unsupervised,
    },
    Case {
        name: "under_init_a_signal_sent_before_cmd_exists_reaches_it",
        root: true,
        body: under_init_a_signal_sent_before_cmd_exists_reaches_it,
    },
    Case {
        name: "under_init_a_failed_fork_is_an_error_not_cmds_status",
        root: true,
        body: under_init_a_failed_fork_is_an_error_not_cmds_status,
    },
    Case {
        name: "a_library_caller_keeps_the_processes_it_adopts_during_a_run",
        root: true,
        body: a_library_caller_keeps_the_processes_it_adopts_during_a_run,
    },
    Case {
        name: "without_procfs_a_path_swapped_after_its_check_is_never_opened",
        root: true,
        body: without_procfs_a_path_swapped_after_its_check_is_never_opened,
    },
    Case {
        name: "orphans_in_a_joined_pid_namespace_do_not_outlive_nsapply",
        root: true,
        body: orphans_in_a_joined_pid_namespace_do_not_outlive_nsapply,
    },
    Case {
        name: "a_failed_open_or_pipe_is_never_reported_as_a_failed_fork",
        root: true,
        body: a_failed_open_or_pipe_is_never_reported_as_a_failed_fork,
    },
    Case {
        name: "a_library_callers_pending_signal_stays_its_own",
        root: true,
        body: a_library_callers_pending_signal_stays_its_own,
    },
    Case {
        name: "a_trace_file_nsapply_created_holds_a_trace_whatever_failed",
        root: true,
        body: a_trace_file_nsapply_created_holds_a_trace_whatever_failed,
    },
    Case {
        name: "under_init_cmd_starts_with_no_signal_blocked_and_sigterm_ends_it",
        root: true,
        body: under_init_cmd_starts_with_no_signal_blocked_and_sigterm_ends_it,
    },
    Case {
        name: "a_run_reported_failed_did_not_run_cmd",
        root: true,
        body: a_run_reported_failed_did_not_run_cmd,
    },
    Case {
        name: "a_terminals_ctrl_c_reaches_cmd_once",
        root: true,
        body: a_terminals_ctrl_c_reaches_cmd_once,
    },
    Case {
        name: "a_terminals_ctrl_c_is_not_forwarded_to_cmd_that_has_it",
        root: true,
        body: a_terminals_ctrl_c_is_not_forwarded_to_cmd_that_has_it,
    },
    Case {
        name: "an_exec_failure_with_a_long_program_name_is_exec_failed_not_status_127",
        root: true,
        body: an_exec_failure_with_a_long_program_name_is_exec_failed_not_status_127,
    },
    Case {
        name: "a_terminal_hangup_reaches_cmd_when_nsapply_leads_the_session",
        root: true,
        body: a_terminal_hangup_reaches_cmd_when_nsapply_leads_the_session,
    },
    Case {
        name: "a_terminals_ctrl_c_reaches_a_cmd_that_left_the_foreground_group",
        root: true,
        body: a_terminals_ctrl_c_reaches_a_cmd_that_left_the_foreground_group,
    },
    Case {
        name: "in_a_pid_namespace_without_its_group_leader_cmd_joins_the_callers_group",
        root: true,
        body: in_a_pid_namespace_without_its_group_leader_cmd_joins_the_callers_group,
    },
    Case {
        name: "sigkill_of_nsapplys_process_group_in_a_joined_pid_namespace_leaves_no_daemon",
        root: true,
        body: sigkill_of_nsapplys_process_group_in_a_joined_pid_namespace_leaves_no_daemon,
    },
    Case {
        name: "sigkill_of_the_middle_process_is_not_reported_as_cmds_status",
        root: true,
        body: sigkill_of_the_middle_process_is_not_reported_as_cmds_status,
    },
    Case {
        name: "a_run_whose_keeper_died_before_cmd_started_never_runs_cmd",
        root: true,
        body: a_run_whose_keeper_died_before_cmd_started_never_runs_cmd,
    },
    Case {
        name: "a_library_callers_sigchld_for_its_own_children_is_not_lost",
        root: true,
        body: a_library_callers_sigchld_for_its_own_children_is_not_lost,
    },
    Case {
        name: "a_library_caller_with_the_default_sigpipe_survives_a_trace_pipe_that_closes",
        root: true,
        body: a_library_caller_with_the_default_sigpipe_survives_a_trace_pipe_that_closes,
    },
    Case {
        name: "a_terminals_ctrl_c_ends_a_run_whose_trace_waits",
        root: true,
        body: a_terminals_ctrl_c_ends_a_run_whose_trace_waits,
    },
    Case {
        name: "sigkill_of_cmds_process_before_it_started_is_not_cmds_status",
        root: true,
        body: sigkill_of_cmds_process_before_it_started_is_not_cmds_status,
    },
    Case {
        name: "a_library_caller_that_ignores_sigchld_is_left_no_zombie",
        root: true,
        body: a_library_caller_that_ignores_sigchld_is_left_no_zombie,
    },
    Case {
        name: "a_file_size_limit_below_the_trace_is_an_error_line_not_a_signal",
        root: true,
        body: a_file_size_limit_below_the_trace_is_an_error_line_not_a_signal,
    },
    Case {
        name: "exec_never_joins_a_process_that_took_its_targets_number",
        root: true,
        body: exec_never_joins_a_process_that_took_its_targets_number,
    },
];

fn main() {
    if let Ok(probe) = std::env::var(PROBE_ENV) {
        std::process::exit(probe_main(&probe));
    }
    if let Ok(name) = std::env::var(CASE_ENV) {
        let Some(case) = CASES.iter().find(|c| c.name == name) else {
            eprintln!("no case {name:?}");
            std::process::exit(2);
        };
        match (case.body)() {
            Ok(()) => std::process::exit(0),
            Err(why) => {
                eprintln!("{why}");
                std::process::exit(1);
            }
        }
    }
    let mut args = Arguments::from_args();
    args.test_threads = args.test_threads.or_else(default_threads);
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!(
            "hostile tests that need root are ignored: not root (euid {}); they make namespaces, mounts and other users' processes",
            nix::unistd::geteuid()
        );
    }
    let trials = CASES
        .iter()
        .map(|c| Trial::test(c.name, move || reexec(c.name)).with_ignored_flag(c.root && !root))
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// Cases at once when `--test-threads` is not given: `RUST_TEST_THREADS`
/// (which libtest honours and libtest-mimic does not), else at least four.
/// A case spends most of its time waiting (for a signal, a grace period, a
/// process to end), not on a core: on 2 cores the suite took 48.7 s two at
/// a time (libtest's default there) and 24.2-24.7 s four at a time, and
/// passed six runs at four, six and eight (2026-12-04); `.ci/mutants` has
/// run it eight at a time for every mutant since issue 18. Each case is
/// its own subreaper and counts only what it made.
fn default_threads() -> Option<usize> {
    if let Ok(n) = std::env::var("RUST_TEST_THREADS") {
        // As libtest: anything but a positive count is an error.
        let Some(n) = n.parse().ok().filter(|&n: &usize| n > 0) else {
            eprintln!("RUST_TEST_THREADS is {n:?}, not a positive integer");
            std::process::exit(2);
        };
        return Some(n);
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    Some(cores.max(4))
}

/// Runs one case in a fresh process; its stderr is the failure message.
fn reexec(name: &str) -> Result<(), Failed> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .env(CASE_ENV, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("re-executing the test binary: {e}"))?;
    let out = read_all_in_background(child.stdout.take());
    let err = read_all_in_background(child.stderr.take());
    let status = wait_deadline(&mut child, Duration::from_secs(240));
    let (out, err) = (
        out.recv().unwrap_or_default(),
        err.recv().unwrap_or_default(),
    );
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(format!("case failed ({s}):\n{err}\nstdout:\n{out}").into()),
        None => Err(format!("case timed out after 240 s:\n{err}\nstdout:\n{out}").into()),
    }
}

// ---------------------------------------------------------------------------
// Helpers

fn nsapply_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nsapply"))
}

fn example(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .join("examples")
        .join(format!("{name}.json"))
}

fn nsapply(args: &[&str]) -> Command {
    let mut c = Command::new(nsapply_bin());
    c.args(args).stdin(Stdio::null());
    c
}

/// A scratch directory every user can enter (the checkout may not be).
struct Scratch(tempfile::TempDir);

impl Drop for Scratch {
    /// Unmounts what a case mounted under the directory (deepest first),
    /// so that removing it does not fail with EBUSY and leave it in /tmp.
    fn drop(&mut self) {
        let root = self.0.path().to_string_lossy().into_owned();
        let mut under: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
            .filter(|m| m == &root || m.starts_with(&format!("{root}/")))
            .collect();
        under.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in under {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

impl Scratch {
    fn new() -> Scratch {
        let d = tempfile::Builder::new()
            .prefix("nsapply-hostile-")
            .tempdir()
            .expect("a temporary directory");
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        Scratch(d)
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    fn join(&self, p: &str) -> PathBuf {
        self.0.path().join(p)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.join(name);
        fs::write(&p, text).expect("write scratch file");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
        p
    }
}

/// `-- CMD` for a command that first changes its credentials (uid and gid
/// 1, no supplementary groups: the change clears its parent-death signal)
/// and then runs `sh -c SCRIPT`.
fn as_uid_1(script: &str) -> [&str; 8] {
    [
        "--",
        "setpriv",
        "--reuid=1",
        "--regid=1",
        "--clear-groups",
        "sh",
        "-c",
        script,
    ]
}

fn config(namespaces: &str, extra: &str) -> String {
    format!(r#"{{"ociVersion":"1.2.0","linux":{{"namespaces":[{namespaces}]{extra}}}}}"#)
}

fn read_all_in_background(r: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let _ = r.read_to_string(&mut s);
        }
        let _ = tx.send(s);
    });
    rx
}

/// Lines of a pipe, as they come.
fn lines_in_background(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `nsapply run [--init] CFG -- sh -c SCRIPT`.
fn run_sh(init: bool, cfg: &Path, script: &str) -> Command {
    let mut c = nsapply(if init { &["run", "--init"] } else { &["run"] });
    c.arg(cfg).args(["--", "sh", "-c", script]);
    c
}

/// A command started with its stdout read line by line and its stderr read
/// whole, each in the background: a leftover that holds either open
/// blocks nothing but a `recv` of `err`.
struct Started {
    child: Child,
    lines: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
}

fn start_piped(cmd: &mut Command) -> Result<Started, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning {cmd:?}: {e}"))?;
    let lines = lines_in_background(child.stdout.take().expect("stdout"));
    let err = read_all_in_background(child.stderr.take());
    Ok(Started { child, lines, err })
}

fn wait_line(rx: &mpsc::Receiver<String>, want: &str, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.trim() == want => return Ok(()),
            Ok(l) => seen.push(l),
            Err(_) => return Err(format!("no line {want:?} within {within:?}; saw {seen:?}")),
        }
    }
}

/// Waits for `child` until `within` has passed; kills and reaps it then.
fn wait_deadline(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Runs `cmd` to completion within `within`: (status, stdout, stderr), or
/// an error naming the command when it had to be killed.
fn run_bounded(
    cmd: &mut Command,
    within: Duration,
) -> Result<(ExitStatus, String, String), String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning {cmd:?}: {e}"))?;
    let out = read_all_in_background(child.stdout.take());
    let err = read_all_in_background(child.stderr.take());
    let status = wait_deadline(&mut child, within);
    let (out, err) = (
        out.recv().unwrap_or_default(),
        err.recv().unwrap_or_default(),
    );
    match status {
        Some(s) => Ok((s, out, err)),
        None => Err(format!(
            "{cmd:?} did not end within {within:?} (killed)\nstdout: {out}\nstderr: {err}"
        )),
    }
}

/// `cmd`'s standard output when it ends within `within` and succeeds; else
/// an error naming `what`, its status and both outputs.
fn succeeded(cmd: &mut Command, within: Duration, what: &str) -> Result<String, String> {
    let (status, out, err) = run_bounded(cmd, within)?;
    if !status.success() {
        return Err(format!("{what} failed ({status}): {err}\n{out}"));
    }
    Ok(out)
}

fn status_code(s: ExitStatus) -> i32 {
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

/// The error line's code, `nsapply: <code>: ...`.
fn error_code(stderr: &str) -> Option<String> {
    let line = stderr.lines().find(|l| l.starts_with("nsapply: "))?;
    Some(line["nsapply: ".len()..].split(':').next()?.to_owned())
}

fn expect_error(what: &str, r: &(ExitStatus, String, String), status: i32, code: &str) -> Outcome {
    let (s, out, err) = r;
    if status_code(*s) != status || error_code(err).as_deref() != Some(code) {
        return Err(format!(
            "{what}: wanted exit {status} with code {code:?}, got exit {} and\nstderr: {err}\nstdout: {out}",
            status_code(*s)
        ));
    }
    if err.lines().count() != 1 {
        return Err(format!("{what}: the error is not one line:\n{err}"));
    }
    Ok(())
}

/// A process identified by pid and start time, so a reused pid is not
/// mistaken for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Proc {
    pid: i32,
    start: u64,
}

fn stat_fields(pid: i32) -> Option<(String, Vec<String>)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    let rest = text[close + 1..]
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    Some((comm, rest))
}

impl Proc {
    fn of(pid: i32) -> Option<Proc> {
        let (_, rest) = stat_fields(pid)?;
        // Field 22 (starttime); `rest` starts at field 3.
        Some(Proc {
            pid,
            start: rest.get(22 - 3)?.parse().ok()?,
        })
    }
    /// Running (not gone, not a zombie), and still the same process.
    fn alive(&self) -> bool {
        match stat_fields(self.pid) {
            Some((_, rest)) => {
                rest.first().map(String::as_str) != Some("Z")
                    && rest.get(22 - 3).and_then(|s| s.parse().ok()) == Some(self.start)
            }
            None => false,
        }
    }
    fn comm(&self) -> String {
        stat_fields(self.pid).map(|(c, _)| c).unwrap_or_default()
    }
}

/// Every descendant of `pid` now (children lists of all its threads).
fn descendants(pid: i32) -> Vec<Proc> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let children = fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                if let Some(proc) = Proc::of(c) {
                    out.push(proc);
                    todo.push(c);
                }
            }
        }
    }
    out
}

/// Makes this (case) process a child subreaper: whatever nsapply leaves
/// behind is re-parented here and found by [`leftovers`].
fn become_subreaper() -> Outcome {
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))
}

/// Reaps what has ended among this process's children, waits up to
/// `within` for the rest to end, and returns those still running (killed
/// then, so one failing case leaves nothing either).
fn leftovers(within: Duration) -> Vec<(Proc, String)> {
    leftovers_but(&[], within)
}

/// [`leftovers`], but for the processes `keep` (a pid namespace's holder
/// and init that a case keeps for all its runs).
fn leftovers_but(keep: &[i32], within: Duration) -> Vec<(Proc, String)> {
    let me = std::process::id() as i32;
    let deadline = Instant::now() + within;
    loop {
        while let Ok(status) = nix::sys::wait::waitpid(
            Pid::from_raw(-1),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        ) {
            if status == nix::sys::wait::WaitStatus::StillAlive {
                break;
            }
        }
        let running: Vec<Proc> = descendants(me)
            .into_iter()
            .filter(|p| p.alive() && !keep.contains(&p.pid))
            .collect();
        if running.is_empty() {
            return Vec::new();
        }
        if Instant::now() >= deadline {
            let out = running.iter().map(|p| (*p, p.comm())).collect();
            for p in &running {
                let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(50));
            while nix::sys::wait::waitpid(
                Pid::from_raw(-1),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            )
            .is_ok_and(|s| s != nix::sys::wait::WaitStatus::StillAlive)
            {}
            return out;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn expect_no_leftovers(what: &str) -> Outcome {
    let left = leftovers(Duration::from_secs(3));
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{what}: processes left behind (killed now): {left:?}"
        ))
    }
}

/// A private mount namespace for this case process: mounts it makes stay
/// here, and nothing it does reaches the host's mount table.
fn private_mount_namespace() -> Outcome {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    host::make_mounts_private().map_err(|e| format!("making / private: {e}"))
}

fn mount_tmpfs(at: &Path) -> Outcome {
    host::mount_tmpfs(at).map_err(|e| format!("mounting a tmpfs on {}: {e}", at.display()))
}

fn mount_points() -> BTreeSet<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .collect()
}

/// Copies a binary where every user can run it.
fn public_copy(from: &Path, dir: &Scratch, name: &str) -> PathBuf {
    let to = dir.join(name);
    fs::copy(from, &to).expect("copy binary");
    fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).expect("chmod");
    to
}

// ---------------------------------------------------------------------------
// Probes: this binary run as CMD inside a container, or as a caller that
// changes its signal state before it execs nsapply.

fn probe_main(probe: &str) -> i32 {
    match probe {
        "mem" => probe_mem(),
        "exec-blocked" => probe_exec_blocked(),
        "seize" => probe_seize(),
        "chain" => probe_chain(),
        "exec-pending-term" => probe_exec_pending_term(),
        "count-int" => probe_count_int(false),
        "count-int-until-usr1" => probe_count_int(true),
        "library-sigpipe" => probe_library_sigpipe(),
        "exec-reuse" => probe_exec_reuse(),
        other => {
            eprintln!("unknown probe {other:?}");
            2
        }
    }
}

static INTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn count_int(_: libc::c_int) {
    // An atomic add is async-signal-safe.
    INTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

static USR1: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn note_usr1(_: libc::c_int) {
    // An atomic store is async-signal-safe.
    USR1.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// CMD that counts the SIGINTs it gets (a handler, which runs as each one
/// arrives, so two are two): prints `ready`, then `got <n>` each time the
/// count grows, and `count <n>` at its end. `count-int` ends once 2 s have
/// passed since `ready` and since the last SIGINT; `count-int-until-usr1`
/// ends at a SIGUSR1 instead (after 30 s without one it prints `count <n>
/// (no SIGUSR1)`, which no case takes for a count). It waits running, not
/// sleeping: a second SIGINT that came while the first was still pending
/// would merge with it (a standard signal is pending once), and a
/// sleeping process takes longer to run its handler than nsapply takes to
/// forward the same signal. (On a loaded machine it may still not be
/// running when both come: see
/// [`a_terminals_ctrl_c_is_not_forwarded_to_cmd_that_has_it`].)
fn probe_count_int(until_usr1: bool) -> i32 {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler};
    let on = |signal, handler| {
        let act = SigAction::new(
            SigHandler::Handler(handler),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        // SAFETY: each handler only changes an atomic, which is
        // async-signal-safe.
        unsafe { sigaction(signal, &act) }.map(drop)
    };
    let set = on(Signal::SIGINT, count_int as extern "C" fn(libc::c_int)).and_then(|()| {
        if until_usr1 {
            on(Signal::SIGUSR1, note_usr1)
        } else {
            Ok(())
        }
    });
    if let Err(e) = set {
        eprintln!("sigaction: {e}");
        return 1;
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    let (window, started) = (Duration::from_secs(2), Instant::now());
    let (mut seen, mut last) = (0, started);
    let mut unended = "";
    loop {
        // The count is read after the SIGUSR1 flag: a SIGINT forwarded
        // before the SIGUSR1 has had its handler run by the time the flag
        // shows.
        let usr1 = USR1.load(std::sync::atomic::Ordering::SeqCst);
        let now = INTS.load(std::sync::atomic::Ordering::SeqCst);
        if now != seen {
            seen = now;
            last = Instant::now();
            println!("got {now}");
            let _ = std::io::stdout().flush();
        }
        if until_usr1 && usr1 {
            break;
        }
        if until_usr1 && started.elapsed() > Duration::from_secs(30) {
            unended = " (no SIGUSR1)";
            break;
        }
        if !until_usr1 && last.elapsed() >= window {
            break;
        }
        std::hint::spin_loop();
    }
    println!(
        "count {}{unended}",
        INTS.load(std::sync::atomic::Ordering::SeqCst)
    );
    0
}

/// CMD in a rootless container: walks its ancestors through the host's
/// /proc (the container shares the host's /proc mount) and tries to open
/// each one's memory for writing. Prints `<pid> <comm> <open result>`.
fn probe_mem() -> i32 {
    // /proc/self names the reader in the namespace of the /proc mount (the
    // host's); our own entry is the parent of a process we read it from,
    // so read our stat directly.
    let Some(me) = fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse::<i32>().ok()))
    else {
        println!("no /proc/self");
        return 1;
    };
    // The control first: a dumpable process with our credentials, in our
    // namespaces (a child `sleep`, found by the number that /proc gives
    // it), must be reachable, or a refusal below proves nothing.
    let Ok(mut control) = Command::new("sleep").arg("30").spawn() else {
        println!("no control");
        return 1;
    };
    let children = fs::read_to_string(format!("/proc/{me}/task/{me}/children")).unwrap_or_default();
    match children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse::<i32>().ok())
    {
        Some(pid) => println!("{pid} control {}", reach(pid)),
        None => println!("no control in /proc"),
    }
    let _ = control.kill();
    let _ = control.wait();
    let mut pid = me;
    for _ in 0..8 {
        let Some((_, rest)) = stat_fields(pid) else {
            break;
        };
        let Some(ppid) = rest.get(1).and_then(|p| p.parse::<i32>().ok()) else {
            break;
        };
        if ppid <= 1 {
            break;
        }
        pid = ppid;
        let comm = stat_fields(pid).map(|(c, _)| c).unwrap_or_default();
        println!("{pid} {comm} {}", reach(pid));
        if comm != "nsapply" {
            break;
        }
    }
    0
}

/// What this process can reach of process `pid` through /proc: its memory
/// (opened for writing: a ptrace attach check, which Yama's ptrace_scope 1
/// also refuses for any process not a descendant), its environment and
/// its descriptors (read checks, which Yama leaves alone: only dumpable
/// stands between them and a process of the same uid). Each as
/// `what=reached` or `what=refused:ERRNO`.
fn reach(pid: i32) -> String {
    let word = |r: std::io::Result<()>| match r {
        Ok(()) => "reached".to_owned(),
        Err(e) => format!("refused:{}", e.raw_os_error().unwrap_or(0)),
    };
    let mem = OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .map(drop);
    let environ = fs::read(format!("/proc/{pid}/environ")).map(drop);
    let fd = fs::read_dir(format!("/proc/{pid}/fd")).and_then(|d| {
        for e in d {
            e?;
        }
        Ok(())
    });
    format!(
        "mem={} environ={} fd={}",
        word(mem),
        word(environ),
        word(fd)
    )
}

/// A caller that blocks SIGUSR1 and SIGTERM, then execs the rest of its
/// arguments (the shell that runs it has ignored SIGCHLD and SIGINT): what
/// nsapply inherits from a careless parent.
fn probe_exec_blocked() -> i32 {
    let mut set = SigSet::empty();
    set.add(Signal::SIGUSR1);
    set.add(Signal::SIGTERM);
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None) {
        eprintln!("sigprocmask: {e}");
        return 1;
    }
    let args: Vec<CString> = std::env::args()
        .skip(1)
        .map(|a| CString::new(a).expect("no NUL in arguments"))
        .collect();
    let Some(prog) = args.first() else {
        eprintln!("exec-blocked: nothing to exec");
        return 2;
    };
    let err = nix::unistd::execv(prog, &args);
    eprintln!("execv: {err:?}");
    127
}

/// A caller that sends SIGTERM to itself with SIGTERM blocked, then execs
/// the rest of its arguments: nsapply starts with a SIGTERM already sent to
/// it (pending and blocked survive execve), as when a signal arrives
/// before CMD exists, but at a known moment.
fn probe_exec_pending_term() -> i32 {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None) {
        eprintln!("sigprocmask: {e}");
        return 1;
    }
    if let Err(e) = nix::sys::signal::raise(Signal::SIGTERM) {
        eprintln!("raise: {e}");
        return 1;
    }
    let args: Vec<CString> = std::env::args()
        .skip(1)
        .map(|a| CString::new(a).expect("no NUL in arguments"))
        .collect();
    let Some(prog) = args.first() else {
        eprintln!("exec-pending-term: nothing to exec");
        return 2;
    };
    let err = nix::unistd::execv(prog, &args);
    eprintln!("execv: {err:?}");
    127
}

/// CMD's helper that traces the process given as its first argument
/// (PTRACE_SEIZE) and keeps it running (each stop is continued with its
/// signal) but never collects its exit (it waits for stops only): the zombie
/// of a traced process can be reaped by its parent only once its tracer
/// has waited for it or is gone (ptrace(2)). Writes `seized` to the file
/// given as second argument once attached.
fn probe_seize() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    let (Some(pid), Some(report)) = (
        args.get(1).and_then(|p| p.parse::<libc::pid_t>().ok()),
        args.get(2),
    ) else {
        eprintln!("seize: usage: PID REPORT-FILE");
        return 2;
    };
    let zero: libc::c_long = 0;
    // SAFETY: PTRACE_SEIZE takes a pid and no memory (addr and data are 0).
    if unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, zero, zero) } != 0 {
        let e = std::io::Error::last_os_error();
        let _ = fs::write(report, format!("failed: {e}"));
        return 1;
    }
    let _ = fs::write(report, "seized");
    loop {
        // SAFETY: siginfo_t is plain old data; all zeroes is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes into `info`, a live local of the right type.
        let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WSTOPPED) };
        if r != 0 {
            // Not ours to wait for any more: stay, without reaping.
            std::thread::sleep(Duration::from_secs(3600));
            return 0;
        }
        // SAFETY: waitid filled `info` for a child event (CLD_TRAPPED),
        // for which si_status is the stop signal.
        let sig = unsafe { info.si_status() };
        let deliver: libc::c_long = if sig == libc::SIGTRAP || sig == libc::SIGSTOP {
            0
        } else {
            libc::c_long::from(sig)
        };
        // SAFETY: PTRACE_CONT takes a pid and a signal number; no memory.
        unsafe { libc::ptrace(libc::PTRACE_CONT, pid, zero, deliver) };
    }
}

/// CMD that leaves behind a chain of N processes (its first argument), each
/// the parent of the next and waiting for it, the last one sleeping; it
/// prints `started` once the whole chain exists, then exits 0. When a
/// process of the chain is killed, its child comes to the nearest child
/// subreaper: the supervisors meet the chain one level at a time.
fn probe_chain() -> i32 {
    let Some(depth) = std::env::args().nth(1).and_then(|d| d.parse::<u32>().ok()) else {
        eprintln!("chain: usage: DEPTH");
        return 2;
    };
    let Ok((ready_r, ready_w)) = nix::unistd::pipe() else {
        eprintln!("chain: pipe");
        return 1;
    };
    let mut level = 0;
    loop {
        if level == depth {
            let _ = nix::unistd::write(&ready_w, b"r");
            std::thread::sleep(Duration::from_secs(120));
            return 0;
        }
        // SAFETY: a probe runs alone in a freshly executed process (CMD),
        // with one thread, so the child may run any code.
        match unsafe { nix::unistd::fork() } {
            Err(e) => {
                eprintln!("chain: fork at level {level}: {e}");
                return 1;
            }
            Ok(nix::unistd::ForkResult::Child) => {
                level += 1;
                // Not nsapply's stdout and stderr: whoever reads them would
                // wait for the chain's end.
                if let Ok(null) = File::options().write(true).open("/dev/null") {
                    let null = std::os::fd::AsRawFd::as_raw_fd(&null);
                    // SAFETY: dup2 only changes this process's fd table;
                    // `null` is open for the call, 1 and 2 are not owned
                    // by any Rust value that would close them.
                    unsafe {
                        libc::dup2(null, 1);
                        libc::dup2(null, 2);
                    }
                }
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => {
                if level == 0 {
                    drop(ready_w);
                    let mut b = [0u8; 1];
                    let _ = File::from(ready_r).read(&mut b);
                    println!("started");
                    return 0;
                }
                let _ = nix::sys::wait::waitpid(child, None);
                return 0;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 1. Id maps go only to our own child.

/// nsapply runs in a new pid namespace that still sees the host's /proc,
/// and its child's pid number there is made to equal the pid (on the host)
/// of a victim in a fresh user namespace. The map must reach nsapply's
/// child (the run succeeds) and never the victim.
fn id_maps_reach_our_child_and_no_other_process_through_a_foreign_proc() -> Outcome {
    become_subreaper()?;
    let mut victim = Command::new("unshare")
        .args(["--user", "sleep", "60"])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the victim (unshare --user sleep): {e}"))?;
    let v = victim_in_a_user_namespace(&mut victim)?;
    // nsapply is pid 1 of the new pid namespace (sh execs it); it forks the
    // keeper, which forks its child (C1, whose maps are written): with
    // ns_last_pid set to v - 2 they take v - 1 and v, and C1's number in
    // its pid namespace is the victim's in the host's /proc it still sees.
    let result = run_bounded(
        Command::new("unshare")
            .args(["--pid", "--fork", "sh", "-c"])
            .arg(r#"echo "$0" > /proc/sys/kernel/ns_last_pid && exec "$@""#)
            .arg((v - 2).to_string())
            .arg(nsapply_bin())
            .arg("run")
            .arg(example("all-kinds"))
            .args(["--", "cat", "/proc/self/uid_map"])
            .stdin(Stdio::null()),
        Duration::from_secs(30),
    );
    let victim_map = fs::read_to_string(format!("/proc/{v}/uid_map")).unwrap_or_default();
    let _ = victim.kill();
    let _ = victim.wait();
    let (status, out, err) = result?;
    if !victim_map.trim().is_empty() {
        return Err(format!(
            "the victim (pid {v}, not nsapply's child) got the id map {victim_map:?}; nsapply said: {err}"
        ));
    }
    if !status.success() || !out.split_whitespace().eq(["0", "100000", "65536"]) {
        return Err(format!(
            "the run did not map its own child: exit {}\nstdout: {out}\nstderr: {err}",
            status_code(status)
        ));
    }
    expect_no_leftovers("after the run")
}

/// The pid of `victim`, a process started to enter a user namespace of its
/// own, once it is there (a process whose id maps a bug could write); it is
/// killed when it does not get there in time.
fn victim_in_a_user_namespace(victim: &mut Child) -> Result<i32, String> {
    let v = victim.id() as i32;
    let ours = fs::read_link("/proc/self/ns/user").map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while fs::read_link(format!("/proc/{v}/ns/user")).ok().as_ref() == Some(&ours) {
        if Instant::now() > deadline {
            let _ = victim.kill();
            let _ = victim.wait();
            return Err("the victim never entered its own user namespace".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(v)
}

/// The same trap for a rootless run whose maps are the caller's own ids,
/// which the child that applies the plan (C1) writes itself (issue 15;
/// `sync::writes_its_own_id_maps`): run as nobody in a new pid namespace
/// that still sees the host's /proc, C1 finds its own directory there
/// through its pidfd, not by the number it has in its pid namespace, which
/// is made to equal a victim's: a process of nobody's in a user namespace
/// of its own, unmapped. The run maps itself; the victim's map stays empty.
/// (Here the kernel guards too: a process in a user namespace beside the
/// victim's may not open its `setgroups` for writing, EACCES, nor write
/// its maps; a C1 that picked the directory by number fails the run.)
fn a_rootless_run_maps_itself_through_a_foreign_proc_and_no_other_process() -> Outcome {
    const NOBODY: &str = "65534";
    become_subreaper()?;
    let scratch = Scratch::new();
    let bin = public_copy(&nsapply_bin(), &scratch, "nsapply");
    let map = format!(r#"[{{"containerID":0,"hostID":{NOBODY},"size":1}}]"#);
    let cfg = scratch.write(
        "rootless.json",
        &config(
            r#"{"type":"user"},{"type":"uts"},{"type":"mount"}"#,
            &format!(r#","uidMappings":{map},"gidMappings":{map}"#),
        ),
    );
    let as_nobody = ["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"];
    let mut victim = Command::new("setpriv")
        .args(as_nobody)
        .args(["unshare", "--user", "sleep", "60"])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the victim (setpriv ... unshare --user sleep): {e}"))?;
    let v = victim_in_a_user_namespace(&mut victim)?;
    // As above: the keeper takes v - 1 and C1, which writes its own maps,
    // the victim's number v.
    let result = run_bounded(
        Command::new("unshare")
            .args(["--pid", "--fork", "sh", "-c"])
            .arg(r#"echo "$0" > /proc/sys/kernel/ns_last_pid && exec setpriv "$@""#)
            .arg((v - 2).to_string())
            .args(as_nobody)
            .arg(&bin)
            .arg("run")
            .arg(&cfg)
            .args(["--", "cat", "/proc/self/uid_map", "/proc/self/setgroups"])
            .current_dir("/")
            .stdin(Stdio::null()),
        Duration::from_secs(30),
    );
    let victim_map = fs::read_to_string(format!("/proc/{v}/uid_map")).unwrap_or_default();
    let _ = victim.kill();
    let _ = victim.wait();
    let (status, out, err) = result?;
    if !victim_map.trim().is_empty() {
        return Err(format!(
            "the victim (pid {v}, not nsapply's child) got the id map {victim_map:?}; nsapply said: {err}"
        ));
    }
    if !status.success() || !out.split_whitespace().eq(["0", NOBODY, "1", "deny"]) {
        return Err(format!(
            "the rootless run did not map itself: exit {}\nstdout: {out}\nstderr: {err}",
            status_code(status)
        ));
    }
    expect_no_leftovers("after the rootless run")
}

/// A /proc that is not procfs (a tmpfs with a forged `self/stat` and forged
/// per-pid files) must not be trusted: nothing is written there, and the
/// run fails with a clear error (`sync-failed` at the id maps).
fn a_fake_proc_is_refused_before_anything_is_written() -> Outcome {
    private_mount_namespace()?;
    become_subreaper()?;
    let scratch = Scratch::new();
    // What a real /proc/self/stat of a one-threaded process says.
    let stat = "1 (nsapply) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0\n";
    let cfg = scratch.write(
        "user.json",
        &config(
            r#"{"type":"user"},{"type":"uts"}"#,
            r#","uidMappings":[{"containerID":0,"hostID":100000,"size":1}],"gidMappings":[{"containerID":0,"hostID":100000,"size":1}]"#,
        ),
    );
    // The pids the next processes will get: nsapply's child is among them.
    let last: i32 = fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .map_err(|e| e.to_string())?
        .trim()
        .parse()
        .map_err(|e| format!("ns_last_pid: {e}"))?;
    mount_tmpfs(Path::new("/proc"))?;
    let mut forged = Vec::new();
    for pid in (1..=8).chain(last + 1..=last + 200) {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        for f in ["uid_map", "gid_map", "setgroups"] {
            fs::write(dir.join(f), "").map_err(|e| e.to_string())?;
            forged.push(dir.join(f));
        }
        fs::write(dir.join("stat"), stat).map_err(|e| e.to_string())?;
    }
    fs::create_dir_all("/proc/self").map_err(|e| e.to_string())?;
    fs::write("/proc/self/stat", stat).map_err(|e| e.to_string())?;
    let r = run_bounded(
        nsapply(&["run"]).arg(&cfg).args(["--", "true"]),
        Duration::from_secs(20),
    );
    let written: Vec<String> = forged
        .iter()
        .filter(|p| fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
        .map(|p| p.display().to_string())
        .collect();
    let _ = nix::mount::umount2("/proc", nix::mount::MntFlags::MNT_DETACH);
    let r = r?;
    if !written.is_empty() {
        return Err(format!(
            "nsapply wrote into the forged /proc: {written:?}; stderr: {}",
            r.2
        ));
    }
    // The forged stat says one thread, which is true of nsapply; but the
    // run needs /proc for the maps and to find what CMD leaves behind, and
    // checks it once, before the first fork: refused before anything runs.
    expect_error("a run under a forged /proc", &r, 1, "run-failed")?;
    if !r.2.contains("/proc is not a procfs mount") {
        return Err(format!(
            "the error does not say what is wrong with /proc: {}",
            r.2
        ));
    }
    expect_no_leftovers("after the refused run")
}

// ---------------------------------------------------------------------------
// 2. Mount propagation.

/// A shared mount point on the "host" (this case's mount namespace); CMD
/// mounts a tmpfs below it. With the default (rslave) and with `rprivate`
/// nothing appears on the host; with `rshared` it does, which shows the
/// setting is honoured. A mount made on the host while the container runs
/// reaches an rslave container, not an rprivate one.
fn mounts_made_in_the_container_do_not_propagate_to_the_host() -> Outcome {
    private_mount_namespace()?;
    become_subreaper()?;
    let scratch = Scratch::new();
    let shared = scratch.join("shared");
    fs::create_dir(&shared).map_err(|e| e.to_string())?;
    mount_tmpfs(&shared)?;
    mount(
        None::<&str>,
        &shared,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    )
    .map_err(|e| format!("make-shared: {e}"))?;
    for d in ["from-container", "from-host"] {
        fs::create_dir(shared.join(d)).map_err(|e| e.to_string())?;
    }
    let inner = shared.join("from-container");
    let host_side = shared.join("from-host");
    // A non-recursive value changes `/` only: the shared mount below it
    // still shares both ways (mount_namespaces(7)), which `private` shows.
    for (propagation, leaks_out, reaches_in) in [
        (None, false, true),
        (Some("rslave"), false, true),
        (Some("rprivate"), false, false),
        (Some("private"), true, true),
        (Some("rshared"), true, true),
    ] {
        let extra = propagation
            .map(|p| format!(r#","rootfsPropagation":"{p}""#))
            .unwrap_or_default();
        let cfg = scratch.write(
            "mount.json",
            &config(r#"{"type":"mount"},{"type":"pid"}"#, &extra),
        );
        // CMD mounts below the shared mount point, says so, waits for the
        // host's mount, reports whether it sees it.
        let script = format!(
            "mount -t tmpfs container {inner} && echo mounted && read _ && \
             if grep -q ' {host} ' /proc/self/mountinfo; then echo sees-host; else echo no-host; fi",
            inner = inner.display(),
            host = host_side.display()
        );
        let Started {
            mut child,
            lines,
            err,
        } = start_piped(run_sh(false, &cfg, &script).stdin(Stdio::piped()))?;
        let what = format!("rootfsPropagation {propagation:?}");
        let step = wait_line(&lines, "mounted", Duration::from_secs(20));
        let leaked = mount_points().contains(&inner.display().to_string());
        let host_mount = mount(
            Some("tmpfs"),
            &host_side,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        );
        let _ = child.stdin.take().map(|mut i| i.write_all(b"go\n"));
        let seen = if step.is_ok() {
            let deadline = Duration::from_secs(20);
            match (wait_line(&lines, "sees-host", deadline), reaches_in) {
                (Ok(()), _) => Some(true),
                (Err(_), false) => Some(false),
                (Err(e), true) => return Err(format!("{what}: {e}")),
            }
        } else {
            None
        };
        let status = wait_deadline(&mut child, Duration::from_secs(20));
        let err = err.recv().unwrap_or_default();
        let _ = nix::mount::umount2(&inner, nix::mount::MntFlags::MNT_DETACH);
        let _ = nix::mount::umount2(&host_side, nix::mount::MntFlags::MNT_DETACH);
        step.map_err(|e| format!("{what}: {e}; stderr: {err}"))?;
        host_mount.map_err(|e| format!("mounting on the host side: {e}"))?;
        if leaked != leaks_out {
            return Err(format!(
                "{what}: the container's mount {} on the host: wanted {leaks_out}, got {leaked}",
                if leaked { "appeared" } else { "did not appear" },
            ));
        }
        if seen != Some(reaches_in) {
            return Err(format!(
                "{what}: the host's later mount reached the container: wanted {reaches_in}, got {seen:?}"
            ));
        }
        if status.map(|s| s.success()) != Some(true) {
            return Err(format!("{what}: the run failed ({status:?}): {err}"));
        }
    }
    // Refused: a propagation value that does not exist, and one without a
    // new mount namespace (it would change the host's).
    let bad = scratch.write(
        "bad.json",
        &config(r#"{"type":"mount"}"#, r#","rootfsPropagation":"sideways""#),
    );
    let r = run_bounded(nsapply(&["plan"]).arg(&bad), Duration::from_secs(10))?;
    expect_error(
        "an unknown rootfsPropagation",
        &r,
        2,
        "invalid-rootfs-propagation",
    )?;
    let bad = scratch.write(
        "bad2.json",
        &config(r#"{"type":"uts"}"#, r#","rootfsPropagation":"shared""#),
    );
    let r = run_bounded(
        nsapply(&["run"]).arg(&bad).args(["--", "true"]),
        Duration::from_secs(10),
    )?;
    expect_error(
        "rootfsPropagation without a new mount namespace",
        &r,
        2,
        "rootfs-propagation-without-new-mount-namespace",
    )?;
    expect_no_leftovers("after the propagation runs")
}

// ---------------------------------------------------------------------------
// 3. Not dumpable.

/// Run as uid 65534 with a config that maps only that uid: CMD (the same
/// uid on the host) walks up to every nsapply process outside the
/// container and must not be able to open its memory, read its
/// environment or list its descriptors. The processes in the host's user
/// namespace (P0, the keeper) are out of reach whatever they do (a user
/// namespace's process has no capability over its parent's); C1 is in
/// the container's user namespace, as root there like CMD, and only its
/// not being dumpable keeps CMD out. The environment and the descriptors
/// are read checks, which Yama does not gate; its ptrace_scope 1 (Ubuntu's
/// default) refuses the memory of any ancestor, dumpable or not. A control,
/// a dumpable child of CMD's, must be reachable all three ways (the memory
/// but where Yama's scope is 2 or more: attach is then the admin's only).
fn a_rootless_container_cannot_open_the_memory_of_any_nsapply_process() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let out = reach_from_a_rootless_container(&scratch)?;
    let yama_admin_only = fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .map(|s| s.trim().parse::<u32>().unwrap_or(0) >= 2)
        .unwrap_or(false);
    let Some(line) = out.lines().find(|l| l.contains(" control ")) else {
        return Err(format!("the probe did not reach the control:\n{out}"));
    };
    let want = ["environ=reached", "fd=reached"];
    if want.iter().any(|w| !line.contains(w)) || (!yama_admin_only && !line.contains("mem=reached"))
    {
        return Err(format!(
            "CMD could not reach a dumpable process of its own uid (the control), so the refusals prove nothing: {line}"
        ));
    }
    let nsapply_lines: Vec<&str> = out.lines().filter(|l| l.contains(" nsapply ")).collect();
    if nsapply_lines.is_empty() {
        return Err(format!(
            "the probe found no nsapply process above it:\n{out}"
        ));
    }
    let reached: Vec<&&str> = nsapply_lines
        .iter()
        .filter(|l| l.contains("=reached"))
        .collect();
    if !reached.is_empty() {
        return Err(format!(
            "CMD reached nsapply processes outside the container through /proc: {reached:?}"
        ));
    }
    expect_no_leftovers("after the rootless run")
}

/// The rootless run of [`a_rootless_container_cannot_open_the_memory_of_any_nsapply_process`]:
/// its probe's lines.
fn reach_from_a_rootless_container(scratch: &Scratch) -> Result<String, String> {
    const NOBODY: u32 = 65_534;
    let bin = public_copy(&nsapply_bin(), scratch, "nsapply");
    let probe = public_copy(
        &std::env::current_exe().map_err(|e| e.to_string())?,
        scratch,
        "probe",
    );
    let map = format!(r#"[{{"containerID":0,"hostID":{NOBODY},"size":1}}]"#);
    let cfg = scratch.write(
        "rootless.json",
        &config(
            r#"{"type":"user"},{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"network"},{"type":"mount"},{"type":"cgroup"},{"type":"time"}"#,
            // With offsets: C1 writes them dumpable for the write, after
            // its maps (Linux::write_time_offsets), and must not stay so.
            &format!(
                r#","uidMappings":{map},"gidMappings":{map},"timeOffsets":{{"monotonic":{{"secs":86400,"nanosecs":0}}}}"#
            ),
        ),
    );
    succeeded(
        Command::new(&bin)
            .arg("run")
            .arg(&cfg)
            .arg("--")
            .arg(&probe)
            .env(PROBE_ENV, "mem")
            .current_dir(scratch.path())
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(Stdio::null()),
        Duration::from_secs(30),
        "the rootless run",
    )
}

// ---------------------------------------------------------------------------
// 4. Nothing outlives the supervisor.

/// CMD changes its credentials (which clears a parent-death signal), then
/// nsapply is killed with SIGKILL: every process of the container must end,
/// with a pid namespace and without one.
fn sigkill_of_nsapply_ends_a_container_that_changed_its_credentials() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    for (what, cfg) in [
        ("all eight kinds", example("all-kinds")),
        ("no pid or time namespace", no_pid),
    ] {
        let Started {
            mut child,
            lines,
            err,
        } = start_piped(
            nsapply(&["run"])
                .arg(&cfg)
                .args(as_uid_1("sleep 60 & echo started; wait")),
        )?;
        if let Err(e) = wait_line(&lines, "started", Duration::from_secs(20)) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{what}: {e}; stderr: {}",
                err.recv().unwrap_or_default()
            ));
        }
        let before = descendants(child.id() as i32);
        let _ = child.kill();
        let _ = child.wait();
        let left = leftovers(Duration::from_secs(3));
        if !left.is_empty() {
            return Err(format!(
                "{what}: after SIGKILL of nsapply, these container processes were still running (of {before:?}): {left:?}"
            ));
        }
    }
    Ok(())
}

/// Every nsapply process of a run killed with SIGKILL at once (nsapply,
/// the keeper, the applying child, and an init or middle process when
/// there is one), as an OOM killer or `kill -9` of them all would: none is
/// left to end CMD, which must die by its parent-death signal (armed by
/// the child at the fork, and kept while CMD keeps its credentials:
/// prctl(2) clears it when they change). With the signal not armed, CMD
/// and what it started ran on, re-parented. Run with CMD as pid 1 of a new
/// pid namespace (its death ends the namespace), with --init (the init is
/// one of nsapply's processes), and without a pid namespace: there CMD
/// dies, but what it started is out of every process's reach once none of
/// nsapply's is left (README: a cgroup is the tool for that), so only CMD
/// itself (`sh`) must be gone. And with --init after CMD changed its
/// credentials (README: the init keeps its own, and its parent-death
/// signal with them; without --init nothing is left that could end such a
/// CMD, the limit README states).
fn sigkill_of_every_nsapply_process_at_once_ends_cmd() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let all = example("all-kinds");
    let script = "sleep 60 & echo started; wait";
    let mut changed = nsapply(&["run", "--init"]);
    changed.arg(&all).args(as_uid_1(script));
    for (what, mut cmd, only_cmd) in [
        ("all eight kinds", run_sh(false, &all, script), false),
        ("all eight kinds, --init", run_sh(true, &all, script), false),
        ("all eight kinds, --init, CMD as uid 1", changed, false),
        ("no pid namespace", run_sh(false, &no_pid, script), true),
    ] {
        let Started {
            mut child, lines, ..
        } = start_piped(&mut cmd)?;
        let started = wait_line(&lines, "started", Duration::from_secs(20));
        let p0 = child.id() as i32;
        let ours: Vec<i32> = std::iter::once(p0)
            .chain(
                descendants(p0)
                    .into_iter()
                    .filter(|p| p.comm() == "nsapply")
                    .map(|p| p.pid),
            )
            .collect();
        for pid in &ours {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        let _ = child.wait();
        started.map_err(|e| format!("{what}: {e}"))?;
        if ours.len() < 3 {
            return Err(format!(
                "{what}: expected nsapply, its keeper and its applying child, found {ours:?}"
            ));
        }
        let left = leftovers(Duration::from_secs(3));
        let wrong: Vec<_> = left
            .iter()
            .filter(|(_, comm)| !only_cmd || comm == "sh")
            .collect();
        if !wrong.is_empty() {
            return Err(format!(
                "{what}: after SIGKILL of every nsapply process ({ours:?}), still running: {wrong:?}"
            ));
        }
    }
    Ok(())
}

/// The processes between nsapply and CMD (the keeper, nsapply's child, and
/// the child that applied the plan and supervises CMD, the keeper's child)
/// are each killed with SIGKILL after CMD changed its credentials: the
/// other one notices, ends what is left (it comes to it, a child
/// subreaper), and nsapply reports `run-failed`. With `--init` too: its
/// init, between the applying child and CMD, must die with that child.
fn sigkill_of_the_supervising_child_ends_the_container_too() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    for (what, cfg, init) in [
        ("all eight kinds", example("all-kinds"), false),
        ("all eight kinds, --init", example("all-kinds"), true),
        ("no pid or time namespace", no_pid, false),
    ] {
        for victim in ["the keeper", "the applying child"] {
            let what = format!("{what}, SIGKILL of {victim}");
            let Started {
                mut child,
                lines,
                err,
            } = start_piped(
                nsapply(if init { &["run", "--init"] } else { &["run"] })
                    .arg(&cfg)
                    .args(as_uid_1("sleep 60 & echo started; wait")),
            )?;
            let started = wait_line(&lines, "started", Duration::from_secs(20));
            let p0 = child.id() as i32;
            let keeper = first_child_of(p0);
            let target = if victim == "the keeper" {
                keeper
            } else {
                keeper.and_then(first_child_of)
            };
            if let Some(pid) = target {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let status = wait_deadline(&mut child, Duration::from_secs(10));
            // Before stderr is read to its end: a leftover would hold it open.
            let left = leftovers(Duration::from_secs(3));
            let err = err.recv().unwrap_or_default();
            started.map_err(|e| format!("{what}: {e}; stderr: {err}"))?;
            if target.is_none() {
                return Err(format!("{what}: nsapply had no such process to kill"));
            }
            if !left.is_empty() {
                return Err(format!("{what}: still running: {left:?}"));
            }
            let r = (
                status.ok_or_else(|| format!("{what}: nsapply did not end"))?,
                String::new(),
                err,
            );
            expect_error(&what, &r, 1, "run-failed")?;
        }
    }
    Ok(())
}

/// A run without a pid namespace whose CMD (its credentials unchanged)
/// prints `started` and sleeps: nsapply's process, its stderr, whether CMD
/// started, and the supervising child (`c1`, `None` unless CMD started).
struct SleepingRun {
    child: Child,
    err: mpsc::Receiver<String>,
    started: Result<(), String>,
    c1: Option<i32>,
}

impl SleepingRun {
    fn start() -> Result<SleepingRun, String> {
        let scratch = Scratch::new();
        let no_pid = no_pid_namespace(&scratch);
        let Started { child, lines, err } =
            start_piped(&mut run_sh(false, &no_pid, "echo started; exec sleep 60"))?;
        let started = wait_line(&lines, "started", Duration::from_secs(20));
        let c1 = started
            .is_ok()
            .then(|| first_child_of(child.id() as i32).and_then(first_child_of))
            .flatten();
        Ok(SleepingRun {
            child,
            err,
            started,
            c1,
        })
    }

    /// nsapply's stderr (read to its end: call it once nothing of the run
    /// is left), or why the run never got to its sleeping command.
    fn stderr(&self) -> Result<String, String> {
        let err = self.err.recv().unwrap_or_default();
        self.started
            .clone()
            .map_err(|e| format!("{e}; stderr: {err}"))?;
        if self.c1.is_none() {
            return Err(format!("nsapply had no supervising child; stderr: {err}"));
        }
        Ok(err)
    }
}

/// The supervising child is killed while CMD (no pid namespace, its
/// credentials unchanged) sleeps: CMD dies with it (its parent-death
/// signal), so the keeper has nothing left to wait for and the run ends at
/// once, `run-failed`, well within the 2 s grace the keeper gives
/// processes that outlive the child. cargo-mutants found the keeper's wait
/// could go on for the whole grace with no child left unnoticed.
fn sigkill_of_the_supervising_child_ends_the_run_at_once_when_its_command_died_with_it() -> Outcome
{
    become_subreaper()?;
    let mut run = SleepingRun::start()?;
    let killed = Instant::now();
    if let Some(pid) = run.c1 {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let status = wait_deadline(&mut run.child, Duration::from_secs(10));
    let took = killed.elapsed();
    let left = leftovers(Duration::from_secs(3));
    let err = run.stderr()?;
    if !left.is_empty() {
        return Err(format!("still running: {left:?}"));
    }
    if took > Duration::from_millis(1200) {
        return Err(format!(
            "nsapply took {took:?} to end after its supervising child and CMD were killed (nothing was left to wait for)"
        ));
    }
    let r = (status.ok_or("nsapply did not end")?, String::new(), err);
    expect_error("SIGKILL of the supervising child", &r, 1, "run-failed")
}

/// The supervising child's poll(2) fails while CMD runs: ended is the run,
/// CMD with it, and the error says so, rather than a child that polls on
/// for ever and a run that never ends. The failure is made by lowering the
/// child's open-file limit below the descriptors it polls (prlimit(2), as
/// root: poll(2) fails with EINVAL when nfds exceeds RLIMIT_NOFILE), then
/// waking it with a forwarded SIGWINCH. cargo-mutants: the EINTR check
/// turned around made every other failure a `continue`, a busy loop.
fn a_failing_poll_in_the_supervising_child_ends_the_run_with_its_error() -> Outcome {
    become_subreaper()?;
    let mut run = SleepingRun::start()?;
    if let Some(pid) = run.c1 {
        let one = libc::rlimit {
            rlim_cur: 1,
            rlim_max: 1,
        };
        // SAFETY: `one` is a valid rlimit for the call to read; the old
        // limit is not asked for (null).
        let r = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &one, std::ptr::null_mut()) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            let _ = kill(Pid::from_raw(run.child.id() as i32), Signal::SIGKILL);
            return Err(format!("prlimit of the supervising child {pid}: {e}"));
        }
        let _ = kill(Pid::from_raw(run.child.id() as i32), Signal::SIGWINCH);
    }
    let status = wait_deadline(&mut run.child, Duration::from_secs(10));
    if status.is_none() {
        let _ = kill(Pid::from_raw(run.child.id() as i32), Signal::SIGKILL);
    }
    let left = leftovers(Duration::from_secs(3));
    let err = run.stderr()?;
    if !left.is_empty() {
        return Err(format!("still running: {left:?}"));
    }
    let status = status.ok_or("nsapply did not end within 10 s of its child's poll failing")?;
    if !err.contains("poll in the supervising child failed") {
        return Err(format!("the error does not name the failed poll: {err}"));
    }
    expect_error(
        "a failing poll",
        &(status, String::new(), err),
        1,
        "run-failed",
    )
}

/// The supervising child is stopped (SIGSTOP, which the caller may send
/// it: same user, same process group) and then nsapply is killed with
/// SIGKILL: the child cannot see nsapply gone and end CMD. The keeper gives
/// it its grace (10 s) and then kills it, and CMD (without a pid namespace,
/// its credentials unchanged) dies by its parent-death signal: nothing is
/// left after 15 s. cargo-mutants: the keeper's watch removed, or its grace
/// check turned around, left the keeper waiting for the stopped child for
/// ever, and CMD running.
fn a_supervising_child_stopped_when_nsapply_dies_is_killed_after_its_grace() -> Outcome {
    become_subreaper()?;
    let mut run = SleepingRun::start()?;
    if let Some(pid) = run.c1 {
        let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
        let _ = kill(Pid::from_raw(run.child.id() as i32), Signal::SIGKILL);
    }
    let _ = wait_deadline(&mut run.child, Duration::from_secs(5));
    let killed = Instant::now();
    let left = leftovers(Duration::from_secs(15));
    let took = killed.elapsed();
    run.stderr()?;
    if !left.is_empty() {
        return Err(format!(
            "15 s after nsapply was killed with its supervising child stopped, still running: {left:?}"
        ));
    }
    // Not at once: the child has its grace (a stopped child that was
    // killed at once would pass, and so would a keeper that never waited).
    if took < Duration::from_secs(8) {
        return Err(format!(
            "the stopped supervising child was gone {took:?} after nsapply, before its 10 s grace"
        ));
    }
    Ok(())
}

/// Once the supervising child is killed, the keeper gives what it left 2 s
/// to end (`ORPHAN_GRACE`: a command that changed its credentials lost its
/// parent-death signal and does not end by itself) and then ends it. A
/// SIGTERM to nsapply in those 2 s has no command to go to; nsapply still
/// reads it and reports the run failed (exit 1, `run-failed`) rather than
/// die by it (143) once it gives the signal mask back. cargo-mutants found
/// the supervisor's loop could stop at the first of "keeper gone" and
/// "channel closed" unnoticed: it then waited for the keeper without
/// reading its signals.
fn a_signal_while_the_keeper_ends_what_c1_left_is_not_nsapplys_death() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let Started {
        mut child,
        lines,
        err,
    } = start_piped(
        nsapply(&["run"])
            .arg(&no_pid)
            .args(as_uid_1("sleep 60 & echo started; wait")),
    )?;
    let started = wait_line(&lines, "started", Duration::from_secs(20));
    let p0 = child.id() as i32;
    let c1 = first_child_of(p0).and_then(first_child_of);
    if let (Ok(()), Some(pid)) = (&started, c1) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        std::thread::sleep(Duration::from_millis(500));
        let _ = kill(Pid::from_raw(p0), Signal::SIGTERM);
    }
    let status = wait_deadline(&mut child, Duration::from_secs(10));
    let left = leftovers(Duration::from_secs(3));
    let err = err.recv().unwrap_or_default();
    started.map_err(|e| format!("{e}; stderr: {err}"))?;
    if c1.is_none() {
        return Err("nsapply had no supervising child to kill".into());
    }
    if !left.is_empty() {
        return Err(format!("still running: {left:?}"));
    }
    let r = (status.ok_or("nsapply did not end")?, String::new(), err);
    expect_error(
        "SIGTERM while the keeper ends what C1 left",
        &r,
        1,
        "run-failed",
    )
}

/// Started with room for only a few more fds (RLIMIT_NOFILE 6: stdio and
/// three more): whatever nsapply cannot open, it says so with the errno
/// and leaves nothing behind.
fn a_caller_with_almost_no_free_fds_fails_cleanly() -> Outcome {
    become_subreaper()?;
    // One to six fds free above what nsapply inherits (0, 1, 2, and what
    // the runner of this test leaves open: cargo-mutants leaves one more,
    // and with none free the loader itself fails, before nsapply runs).
    let inherited = inherited_fd_count()?;
    for limit in inherited + 1..=inherited + 6 {
        let r = run_bounded(
            Command::new("prlimit")
                .arg(format!("--nofile={limit}"))
                .arg(nsapply_bin())
                .arg("run")
                .arg(example("all-kinds"))
                .args(["--", "true"])
                .stdin(Stdio::null()),
            Duration::from_secs(20),
        )?;
        let (status, out, err) = &r;
        if !status.success() {
            let one_line = err.lines().count() == 1 && err.starts_with("nsapply: ");
            if !one_line || !err.contains("EMFILE") || status_code(*status) != 1 {
                return Err(format!(
                    "RLIMIT_NOFILE {limit}: wanted success or one error line naming EMFILE with exit 1, got exit {}:\n{err}{out}",
                    status_code(*status)
                ));
            }
        }
        expect_no_leftovers(&format!("RLIMIT_NOFILE {limit}"))?;
    }
    Ok(())
}

/// How many fds a child of this process starts with: the open ones
/// without close-on-exec.
fn inherited_fd_count() -> Result<u64, String> {
    let mut n = 0;
    for entry in fs::read_dir("/proc/self/fd").map_err(|e| format!("/proc/self/fd: {e}"))? {
        let name = entry
            .map_err(|e| format!("/proc/self/fd: {e}"))?
            .file_name();
        let Ok(fd) = name.to_string_lossy().parse::<i32>() else {
            continue;
        };
        // SAFETY: F_GETFD reads a flag of an fd number; one that is closed
        // meanwhile (read_dir's own) answers EBADF, not counted.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            n += 1;
        }
    }
    Ok(n)
}

/// nsapply killed with SIGKILL at moments spread over a whole run (before
/// the fork, during the apply, at the sync point, after CMD started): no
/// process, namespace or mount may be left.
fn sigkill_of_nsapply_at_any_moment_leaves_nothing_behind() -> Outcome {
    private_mount_namespace()?;
    become_subreaper()?;
    let mounts = mount_points();
    // How long one run takes here, to spread the kills over it.
    let t = Instant::now();
    succeeded(
        nsapply(&["run"])
            .arg(example("all-kinds"))
            .args(["--", "true"]),
        Duration::from_secs(20),
        "a plain run",
    )?;
    let span = t.elapsed().max(Duration::from_millis(2));
    for i in 0..240u32 {
        let delay = span * (i % 120) / 100;
        let mut child = nsapply(&["run"])
            .arg(example("all-kinds"))
            .args(["--", "sleep", "30"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let left = leftovers(Duration::from_secs(3));
        if !left.is_empty() {
            return Err(format!(
                "SIGKILL {delay:?} into a run (run takes {span:?}) left processes: {left:?}"
            ));
        }
    }
    if mount_points() != mounts {
        return Err("the mount table changed".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 5. Hostile paths.

/// A FIFO (which blocks an open until a writer comes), a socket, character
/// devices (whose open runs a driver: /dev/tty without a controlling
/// terminal answers ENXIO) and a directory, given as a namespace path: each
/// is refused at once with `not-a-namespace`, and nothing is left behind.
fn fifo_socket_device_and_directory_paths_are_refused_at_once() -> Outcome {
    become_subreaper()?;
    // No controlling terminal, so /dev/tty's driver answers an open ENXIO.
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    let scratch = Scratch::new();
    let fifo = scratch.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666))
        .map_err(|e| format!("mkfifo: {e}"))?;
    let sock = scratch.join("sock");
    let _listener = UnixListener::bind(&sock).map_err(|e| format!("bind: {e}"))?;
    let mut paths = vec![("fifo", fifo), ("socket", sock)];
    for (name, major, minor) in [("tty", 5, 0), ("null", 1, 3)] {
        let p = scratch.join(name);
        nix::sys::stat::mknod(
            &p,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(major, minor),
        )
        .map_err(|e| format!("mknod {name}: {e}"))?;
        paths.push((name, p));
    }
    let dir = scratch.join("dir");
    fs::create_dir(&dir).map_err(|e| e.to_string())?;
    paths.push(("directory", dir));
    paths.push(("regular file", scratch.write("file", "")));
    for (what, path) in paths {
        let cfg = scratch.write(
            "cfg.json",
            &config(
                &format!(
                    r#"{{"type":"network","path":"{}"}},{{"type":"uts"}}"#,
                    path.display()
                ),
                "",
            ),
        );
        let started = Instant::now();
        let r = run_bounded(
            nsapply(&["run"]).arg(&cfg).args(["--", "true"]),
            Duration::from_secs(10),
        )
        .map_err(|e| format!("{what}: {e}"))?;
        expect_error(what, &r, 1, "not-a-namespace")?;
        if started.elapsed() > Duration::from_secs(5) {
            return Err(format!("{what}: refusing took {:?}", started.elapsed()));
        }
        expect_no_leftovers(what)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 6. Signals.

const FORWARDED: [(Signal, &str); 7] = [
    (Signal::SIGINT, "INT"),
    (Signal::SIGHUP, "HUP"),
    (Signal::SIGQUIT, "QUIT"),
    (Signal::SIGUSR1, "USR1"),
    (Signal::SIGUSR2, "USR2"),
    (Signal::SIGWINCH, "WINCH"),
    (Signal::SIGTERM, "TERM"),
];

/// Sends each forwarded signal to nsapply; CMD (a shell with a trap for
/// each) must see every one, and its exit status (42, from the TERM trap)
/// must be nsapply's. As pid 1 of a new pid namespace, without a pid
/// namespace, under `--init`, and through the middle process that forks
/// CMD into a pid namespace joined (by a config's path, and by `nsapply
/// exec`): the middle process forwards as the init does.
fn forwarded_signals_reach_cmd_and_its_status_comes_back() -> Outcome {
    become_subreaper()?;
    let (holder, init) = pid_namespace_to_join()?;
    let r = forwarded_signals_through_every_layout(&[holder.id() as i32, init], init);
    end_pid_namespace(holder, init);
    r
}

/// The runs of [`forwarded_signals_reach_cmd_and_its_status_comes_back`];
/// `init`: the init of a pid namespace to join, which with its holder
/// (`keep`) outlives the runs.
fn forwarded_signals_through_every_layout(keep: &[i32], init: i32) -> Outcome {
    let scratch = Scratch::new();
    let no_pid = scratch.write("uts.json", &config(r#"{"type":"uts"},{"type":"ipc"}"#, ""));
    let join_pid = scratch.write(
        "join-pid.json",
        &config(
            &format!(r#"{{"type":"pid","path":"/proc/{init}/ns/pid"}},{{"type":"uts"}}"#),
            "",
        ),
    );
    let mut traps = String::new();
    for (_, name) in &FORWARDED[..6] {
        traps.push_str(&format!("trap 'echo got {name}' {name}; "));
    }
    let script = format!(
        "{traps} trap 'echo got TERM; exit 42' TERM; echo ready; while :; do sleep 0.02; done"
    );
    for (what, args) in [
        (
            "CMD as pid 1",
            vec!["run".to_owned(), example("default").display().to_string()],
        ),
        (
            "no pid namespace",
            vec!["run".to_owned(), no_pid.display().to_string()],
        ),
        (
            "--init",
            vec![
                "run".to_owned(),
                "--init".to_owned(),
                example("default").display().to_string(),
            ],
        ),
        (
            "a pid namespace joined by path",
            vec!["run".to_owned(), join_pid.display().to_string()],
        ),
        (
            "exec into a pid namespace",
            vec![
                "exec".to_owned(),
                init.to_string(),
                "--kinds".to_owned(),
                "pid".to_owned(),
            ],
        ),
    ] {
        let Started {
            mut child,
            lines,
            err,
        } = start_piped(
            Command::new(nsapply_bin())
                .args(&args)
                .args(["--", "sh", "-c", &script])
                .stdin(Stdio::null()),
        )?;
        let mut result = wait_line(&lines, "ready", Duration::from_secs(20));
        for (sig, name) in FORWARDED {
            if result.is_err() {
                break;
            }
            let _ = kill(Pid::from_raw(child.id() as i32), sig);
            result = wait_line(&lines, &format!("got {name}"), Duration::from_secs(10))
                .map_err(|e| format!("SIG{name}: {e}"));
        }
        let status = wait_deadline(&mut child, Duration::from_secs(10));
        let err = err.recv().unwrap_or_default();
        result.map_err(|e| format!("{what}: {e}; stderr: {err}"))?;
        match status {
            Some(s) if s.code() == Some(42) => {}
            other => {
                return Err(format!(
                    "{what}: nsapply should exit with CMD's status 42, got {other:?}; stderr: {err}"
                ))
            }
        }
        let left = leftovers_but(keep, Duration::from_secs(3));
        if !left.is_empty() {
            return Err(format!(
                "{what}: processes left behind (killed now): {left:?}"
            ));
        }
    }
    Ok(())
}

/// The caller ignores SIGCHLD and SIGINT and blocks SIGUSR1 and SIGTERM
/// before it execs nsapply (all inherited). The run still works, its
/// status is CMD's, an apply error keeps its own code, and CMD starts with
/// every signal at its default and none blocked.
fn a_caller_that_ignores_sigchld_and_blocks_signals_changes_nothing() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let probe = std::env::current_exe().map_err(|e| e.to_string())?;
    let missing = scratch.write(
        "missing.json",
        &config(
            r#"{"type":"network","path":"/nonexistent/nsapply/net"},{"type":"pid"}"#,
            "",
        ),
    );
    let careless = |args: &[&str]| {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(r#"trap '' CHLD INT; exec "$@""#)
            .arg("sh")
            .arg(&probe)
            .arg(nsapply_bin())
            .args(args)
            .env(PROBE_ENV, "exec-blocked")
            .stdin(Stdio::null());
        c
    };
    let r = run_bounded(
        &mut careless(&[
            "run",
            &example("default").display().to_string(),
            "--",
            "sh",
            "-c",
            "grep -E '^Sig(Blk|Ign):' /proc/self/status; exit 3",
        ]),
        Duration::from_secs(20),
    )?;
    if r.0.code() != Some(3) {
        return Err(format!(
            "CMD's status 3 should come back, got exit {}: {}",
            status_code(r.0),
            r.2
        ));
    }
    for line in r.1.lines() {
        let mask = line.split_whitespace().nth(1).unwrap_or("");
        if mask.chars().any(|c| c != '0') {
            return Err(format!(
                "CMD did not start with a clean signal state: {}",
                r.1
            ));
        }
    }
    if r.1.lines().count() != 2 {
        return Err(format!("CMD printed no signal state: {:?}", r.1));
    }
    let r = run_bounded(
        &mut careless(&["run", &missing.display().to_string(), "--", "true"]),
        Duration::from_secs(20),
    )?;
    expect_error(
        "a failed apply under an ignored SIGCHLD",
        &r,
        1,
        "path-not-found",
    )?;
    expect_no_leftovers("after the careless caller")
}

/// `--init`: nsapply's init is pid 1 of the new pid namespace, CMD is
/// pid 2, an orphan is reaped (no zombie stays), and a signal sent to
/// nsapply reaches CMD through init.
/// Signals sent to nsapply faster than the supervising child reads them
/// (each a message on the channel: several arrive in one read, and the
/// later ones wait in its buffer) are each forwarded, and the run goes on:
/// CMD answers after the burst and ends with its own status when it is
/// asked to. With CMD as pid 1 and with --init.
fn a_burst_of_signals_is_forwarded_and_the_run_goes_on() -> Outcome {
    become_subreaper()?;
    let script = "trap 'echo usr1' USR1; trap 'echo usr2' USR2; trap 'exit 7' TERM; \
        echo ready; while :; do sleep 0.02; done";
    for init in [false, true] {
        let what = if init { "--init" } else { "CMD as pid 1" };
        let Started {
            mut child,
            lines,
            err,
        } = start_piped(&mut run_sh(init, &example("default"), script))?;
        let p0 = Pid::from_raw(child.id() as i32);
        let result = (|| {
            wait_line(&lines, "ready", Duration::from_secs(20))?;
            for _ in 0..20 {
                let _ = kill(p0, Signal::SIGUSR1);
                let _ = kill(p0, Signal::SIGUSR2);
            }
            wait_line(&lines, "usr1", Duration::from_secs(10))?;
            wait_line(&lines, "usr2", Duration::from_secs(10))?;
            // The run is still on: one more, answered.
            std::thread::sleep(Duration::from_millis(300));
            while lines.try_recv().is_ok() {}
            let _ = kill(p0, Signal::SIGUSR1);
            wait_line(&lines, "usr1", Duration::from_secs(10))
                .map_err(|e| format!("after the burst: {e}"))?;
            let _ = kill(p0, Signal::SIGTERM);
            Ok::<(), String>(())
        })();
        let status = wait_deadline(&mut child, Duration::from_secs(10));
        let err = err.recv().unwrap_or_default();
        result.map_err(|e| format!("{what}: {e}; stderr: {err}"))?;
        if status.and_then(|s| s.code()) != Some(7) {
            return Err(format!(
                "{what}: nsapply should exit with CMD's 7, got {status:?}; stderr: {err}"
            ));
        }
        expect_no_leftovers(what)?;
    }
    Ok(())
}

/// While CMD runs, nsapply's processes (nsapply, the keeper, the
/// supervising child, an init) sleep in poll(2): two seconds of CMD cost
/// them a few clock ticks, not the seconds a loop around a ready fd would
/// (the report pipe stays readable until what it holds is read).
fn nsapplys_processes_wait_without_spinning_while_cmd_runs() -> Outcome {
    become_subreaper()?;
    for init in [false, true] {
        let what = if init { "--init" } else { "CMD as pid 1" };
        let Started {
            mut child, lines, ..
        } = start_piped(&mut run_sh(
            init,
            &example("default"),
            "sleep 2; echo done; sleep 1",
        ))?;
        let done = wait_line(&lines, "done", Duration::from_secs(20));
        let p0 = child.id() as i32;
        let ticks: Vec<(i32, u64)> = std::iter::once(p0)
            .chain(
                descendants(p0)
                    .into_iter()
                    .filter(|p| p.comm() == "nsapply")
                    .map(|p| p.pid),
            )
            .map(|pid| {
                let cpu = stat_fields(pid).map_or(0, |(_, f)| {
                    f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0)
                });
                (pid, cpu)
            })
            .collect();
        let status = wait_deadline(&mut child, Duration::from_secs(10));
        done.map_err(|e| format!("{what}: {e}"))?;
        if status.is_none_or(|s| !s.success()) {
            return Err(format!("{what}: the run failed: {status:?}"));
        }
        let total: u64 = ticks.iter().map(|(_, t)| t).sum();
        // USER_HZ is 100: 50 ticks are half a second of CPU in two.
        if ticks.len() < 3 || total > 50 {
            return Err(format!(
                "{what}: nsapply's processes used {total} clock ticks of CPU while CMD slept 2 s: {ticks:?}"
            ));
        }
        expect_no_leftovers(what)?;
    }
    Ok(())
}

/// Without a new pid namespace, a process that CMD leaves behind (its
/// parent exits: a daemon's double fork) comes to the supervising child, a
/// subreaper; it is ended when CMD ends, never while CMD still runs.
fn what_cmd_leaves_behind_runs_while_cmd_runs() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let cfg = no_pid_namespace(&scratch);
    let script = "(sleep 30 >/dev/null 2>&1 & echo $! > \"$0\"); sleep 1; \
        if kill -0 \"$(cat \"$0\")\"; then echo alive; else echo gone; fi";
    let pidfile = scratch.join("orphan.pid");
    let r = run_bounded(
        nsapply(&["run"])
            .arg(&cfg)
            .args(["--", "sh", "-c", script])
            .arg(&pidfile),
        Duration::from_secs(20),
    )?;
    let (status, out, err) = r;
    if !status.success() || out.trim() != "alive" {
        return Err(format!(
            "CMD's orphan, one second later, while CMD runs: {:?} (exit {}); stderr: {err}",
            out.trim(),
            status_code(status)
        ));
    }
    expect_no_leftovers("after the run")
}

fn init_reaps_orphans_and_forwards_signals() -> Outcome {
    private_mount_namespace()?;
    become_subreaper()?;
    let script = "mount -t proc proc /proc || exit 9; \
        echo \"me $$ init $(cat /proc/1/comm)\"; \
        (sleep 0.1 &); sleep 0.5; \
        zombies=$(grep -l '^[0-9]* ([^)]*) Z' /proc/[0-9]*/stat | wc -l); echo \"zombies $zombies\"; \
        trap 'exit 7' TERM; echo ready; while :; do sleep 0.02; done";
    let Started {
        mut child,
        lines,
        err,
    } = start_piped(&mut run_sh(true, &example("default"), script))?;
    let result = (|| {
        wait_line(&lines, "me 2 init nsapply", Duration::from_secs(20))?;
        wait_line(&lines, "zombies 0", Duration::from_secs(10))?;
        wait_line(&lines, "ready", Duration::from_secs(10))?;
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        Ok::<(), String>(())
    })();
    let status = wait_deadline(&mut child, Duration::from_secs(10));
    let err = err.recv().unwrap_or_default();
    result.map_err(|e| format!("{e}; stderr: {err}"))?;
    if status.and_then(|s| s.code()) != Some(7) {
        return Err(format!(
            "nsapply should exit with CMD's 7, got {status:?}; stderr: {err}"
        ));
    }
    // Without a new pid namespace there is no pid 1 to be: refused.
    let scratch = Scratch::new();
    let cfg = scratch.write("uts.json", &config(r#"{"type":"uts"}"#, ""));
    let r = run_bounded(
        nsapply(&["run", "--init"]).arg(&cfg).args(["--", "true"]),
        Duration::from_secs(10),
    )?;
    expect_error(
        "--init without a new pid namespace",
        &r,
        2,
        "invalid-command",
    )?;
    expect_no_leftovers("after --init")
}

/// Under `--init`, CMD exits and leaves a process behind (`sleep 60 &`):
/// init, pid 1 of the namespace, kills every process of it (`kill(-1)`)
/// and reaps them, and the run ends at once with CMD's status, not after
/// the 2 s that init gives orphans to end by themselves. cargo-mutants:
/// `kill(-1)` as `kill(1)` (pid 1's own signal, which the kernel drops)
/// killed nothing, and the run waited the 2 s out (the namespace ended
/// with init then).
fn under_init_the_orphans_cmd_leaves_end_with_it_at_once() -> Outcome {
    become_subreaper()?;
    let Started {
        mut child,
        lines,
        err,
    } = start_piped(&mut run_sh(
        true,
        &example("all-kinds"),
        "sleep 60 & echo started; exit 3",
    ))?;
    let started = wait_line(&lines, "started", Duration::from_secs(20));
    let since = Instant::now();
    let status = wait_deadline(&mut child, Duration::from_secs(10));
    let took = since.elapsed();
    let left = leftovers(Duration::from_secs(3));
    let err = err.recv().unwrap_or_default();
    started.map_err(|e| format!("{e}; stderr: {err}"))?;
    if !left.is_empty() {
        return Err(format!("still running: {left:?}"));
    }
    if status.and_then(|s| s.code()) != Some(3) {
        return Err(format!(
            "nsapply should exit with CMD's 3, got {status:?}; stderr: {err}"
        ));
    }
    if took > Duration::from_millis(1500) {
        return Err(format!(
            "the run ended {took:?} after CMD's last line: init did not end CMD's orphan at once"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 7. Bad input and environments.

/// No /proc at all (an empty tmpfs over it): the thread count cannot be
/// read, which has its own code (not `fork-failed`), and the trace says so
/// with the errno of the read (ENOENT: no `/proc/self/stat`), as the
/// library's `RunError::errno` gives it.
fn an_unreadable_thread_count_has_its_own_code() -> Outcome {
    private_mount_namespace()?;
    become_subreaper()?;
    let scratch = Scratch::new();
    let trace = scratch.join("trace.json");
    mount_tmpfs(Path::new("/proc"))?;
    let r = run_bounded(
        nsapply(&["run", "--trace"])
            .arg(&trace)
            .arg(example("default"))
            .args(["--", "true"]),
        Duration::from_secs(20),
    );
    let _ = nix::mount::umount2("/proc", nix::mount::MntFlags::MNT_DETACH);
    expect_error("a run without /proc", &r?, 1, "thread-count-failed")?;
    let text = fs::read_to_string(&trace).map_err(|e| format!("reading the trace: {e}"))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("the trace {text:?}: {e}"))?;
    let (code, errno) = (&doc["error"]["code"], &doc["error"]["errno"]);
    if code != "thread-count-failed" || errno != "ENOENT" {
        return Err(format!(
            "the trace's error is {code} with errno {errno}, not thread-count-failed with ENOENT: {text}"
        ));
    }
    expect_no_leftovers("after the run without /proc")
}

/// The namespace files this process holds open or has mounted (nsfs),
/// by link text (`net:[4026532301]`).
fn namespaces_held_here() -> BTreeSet<String> {
    let mut held: BTreeSet<String> = fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .filter(|l| l.contains(":[") && !l.starts_with("pipe:") && !l.starts_with("socket:"))
        .collect();
    for line in fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
    {
        if line.contains(" - nsfs ") {
            held.insert(line.to_owned());
        }
    }
    held
}

/// 200 runs in a row and 20 at once, alternating `all-kinds` (eight new
/// namespaces) and `default` (five, as root), each printing the namespaces
/// it got; the `default` runs also mount a tmpfs, on a host whose `/` is
/// shared (as systemd makes it). Then: no process left (this case is the
/// subreaper of whatever nsapply leaves), no namespace file held open or
/// mounted here, the mount table and this process's fds unchanged.
///
/// Namespaces are not compared machine-wide by inode: the kernel reuses a
/// freed namespace's inode number, and other work on the host makes
/// namespaces too. A namespace outlives its last process only through an
/// open fd or a mount, which is what is checked.
fn two_hundred_runs_in_a_row_and_twenty_in_parallel_leave_nothing_behind() -> Outcome {
    private_mount_namespace()?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SHARED,
        None::<&str>,
    )
    .map_err(|e| format!("making / shared: {e}"))?;
    become_subreaper()?;
    let scratch = Scratch::new();
    let target = scratch.join("mnt");
    fs::create_dir(&target).map_err(|e| e.to_string())?;
    let mounts = mount_points();
    let held = namespaces_held_here();
    let fds: Vec<_> = fs::read_dir("/proc/self/fd")
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let own: BTreeSet<String> = fs::read_dir("/proc/self/ns")
        .map_err(|e| e.to_string())?
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect();
    // The namespace kinds (net, pid, ...) that are new in a run's output
    // (pid_for_children and time_for_children repeat pid and time).
    let new_kinds = |out: &str| -> BTreeSet<String> {
        out.lines()
            .filter(|l| !own.contains(*l))
            .filter_map(|l| l.split(':').next().map(str::to_owned))
            .collect()
    };
    let kinds =
        |list: &[&str]| -> BTreeSet<String> { list.iter().map(|s| (*s).to_owned()).collect() };
    let all = kinds(&["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"]);
    let default = kinds(&["ipc", "mnt", "net", "pid", "uts"]);
    let mount_cmd = format!(
        "readlink /proc/self/ns/*; mount -t tmpfs run {}",
        target.display()
    );
    let run = |i: usize| {
        let mut c = nsapply(&["run"]);
        if i % 2 == 0 {
            c.arg(example("all-kinds"))
                .args(["--", "sh", "-c", "readlink /proc/self/ns/*"]);
        } else {
            c.arg(example("default"))
                .args(["--", "sh", "-c", &mount_cmd]);
        }
        (c, if i % 2 == 0 { &all } else { &default })
    };
    for i in 0..200 {
        let (mut c, want) = run(i);
        let out = succeeded(&mut c, Duration::from_secs(20), &format!("run {i}"))?;
        if new_kinds(&out) != *want {
            return Err(format!(
                "run {i} did not show its new namespaces {want:?}:\n{out}"
            ));
        }
    }
    let mut children = Vec::new();
    for i in 0..20 {
        let (mut c, want) = run(i);
        let child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        children.push((child, want));
    }
    for (i, (c, want)) in children.into_iter().enumerate() {
        let out = c.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "parallel run {i} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let out = String::from_utf8_lossy(&out.stdout);
        if new_kinds(&out) != *want {
            return Err(format!(
                "parallel run {i} did not show its new namespaces:\n{out}"
            ));
        }
    }
    expect_no_leftovers("after 220 runs")?;
    if namespaces_held_here() != held {
        return Err(format!(
            "namespace files held here changed: {held:?} -> {:?}",
            namespaces_held_here()
        ));
    }
    let now = mount_points();
    if now != mounts {
        let added: Vec<_> = now.difference(&mounts).collect();
        return Err(format!("the mount table changed: {added:?} appeared"));
    }
    let after: Vec<_> = fs::read_dir("/proc/self/fd")
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    if after != fds {
        return Err(format!("this process's fds changed: {fds:?} -> {after:?}"));
    }
    Ok(())
}

/// `nsapply plan /dev/zero` (a config that never ends) and the same for a
/// world: refused as too large, in bounded memory (256 MiB of address
/// space is plenty for the limit), quickly.
fn an_endless_config_is_refused_with_bounded_memory() -> Outcome {
    for (what, args) in [
        ("plan /dev/zero", vec!["plan", "/dev/zero"]),
        ("simulate /dev/zero", vec!["simulate", "/dev/zero"]),
        (
            "simulate --world /dev/zero",
            vec!["simulate", "--world", "/dev/zero", "/dev/null"],
        ),
    ] {
        let r = run_bounded(
            Command::new("prlimit")
                .arg("--as=268435456")
                .arg(nsapply_bin())
                .args(&args)
                .stdin(Stdio::null()),
            Duration::from_secs(30),
        )?;
        let code = if what.contains("--world") {
            "invalid-world"
        } else {
            "invalid-config"
        };
        expect_error(what, &r, 2, code)?;
        if !r.2.contains("MiB") {
            return Err(format!(
                "{what}: the error does not state the limit: {}",
                r.2
            ));
        }
    }
    Ok(())
}

/// A NUL byte inside a namespace path is refused by validation, naming the
/// entry, before anything is opened (the kernel would never see that path).
fn a_nul_byte_in_a_path_is_refused_at_validation() -> Outcome {
    let scratch = Scratch::new();
    let cfg = scratch.write(
        "nul.json",
        &config(
            r#"{"type":"uts"},{"type":"network","path":"/run/netns/a\u0000b"}"#,
            "",
        ),
    );
    for cmd in ["plan", "simulate"] {
        let r = run_bounded(nsapply(&[cmd]).arg(&cfg), Duration::from_secs(10))?;
        expect_error(cmd, &r, 2, "invalid-path")?;
        if !r.2.contains("linux.namespaces[1]") {
            return Err(format!("{cmd}: the error does not name the entry: {}", r.2));
        }
    }
    Ok(())
}

/// A config that is not UTF-8 is `invalid-config` saying so, with no errno
/// in the message (reading it did not fail).
fn a_config_that_is_not_utf8_is_invalid_config_without_an_errno() -> Outcome {
    let scratch = Scratch::new();
    let p = scratch.join("latin1.json");
    let mut f = File::create(&p).map_err(|e| e.to_string())?;
    f.write_all(b"{\"linux\":{\"namespaces\":[{\"type\":\"uts\",\"path\":\"/tmp/\xe9\"}]}}")
        .map_err(|e| e.to_string())?;
    let r = run_bounded(nsapply(&["plan"]).arg(&p), Duration::from_secs(10))?;
    expect_error("a Latin-1 config", &r, 2, "invalid-config")?;
    if r.2.contains("EIO") || !r.2.contains("UTF-8") {
        return Err(format!("the error should say UTF-8 and no errno: {}", r.2));
    }
    Ok(())
}

/// Paths with a newline and a terminal escape sequence: `plan` and
/// `simulate` print them escaped, never raw.
fn control_characters_in_paths_are_escaped_in_text_output() -> Outcome {
    let scratch = Scratch::new();
    let cfg = scratch.write(
        "ctl.json",
        &config(
            r#"{"type":"network","path":"/run/netns/a\nb\u001b[31mred"},{"type":"uts"}"#,
            "",
        ),
    );
    let world = scratch.write(
        "world.json",
        r#"{"namespaces":[{"name":"n","type":"network","paths":["/run/netns/a\nb\u001b[31mred"]}]}"#,
    );
    let mut outputs = BTreeMap::new();
    let r = run_bounded(nsapply(&["plan"]).arg(&cfg), Duration::from_secs(10))?;
    outputs.insert("plan", r);
    let r = run_bounded(
        nsapply(&["simulate"]).arg(&cfg).arg("--world").arg(&world),
        Duration::from_secs(10),
    )?;
    outputs.insert("simulate", r);
    for (cmd, (status, out, err)) in outputs {
        if !status.success() {
            return Err(format!("{cmd} failed: {err}"));
        }
        if out.contains('\u{1b}') || out.lines().any(|l| l.starts_with("b")) {
            return Err(format!("{cmd} printed a control character raw:\n{out}"));
        }
        if !out.contains(r"a\nb\u{1b}[31mred") {
            return Err(format!("{cmd} did not print the path escaped:\n{out}"));
        }
    }
    Ok(())
}

/// DESIGN §8: text output escapes control characters, the error line
/// included. What a config or a world holds reaches the error line through
/// other parsers' messages too: serde's unknown variant quotes the value
/// as it is (an OCI field nsapply does not read, a world's namespace
/// type), and clap quotes an unknown subcommand. ESC, BEL, DEL and the
/// 8-bit CSI (U+009B) there would reach the terminal raw: a title set, the
/// screen cleared, a line rewritten.
fn control_characters_quoted_by_an_error_line_are_escaped() -> Outcome {
    let scratch = Scratch::new();
    let seccomp = scratch.write(
        "seccomp.json",
        &config(
            r#"{"type":"uts"}"#,
            r#","seccomp":{"defaultAction":"\u001b]0;owned\u0007\u009b2J\u007f"}"#,
        ),
    );
    let cfg = scratch.write("ok.json", &config(r#"{"type":"uts"}"#, ""));
    let world = scratch.write(
        "world.json",
        r#"{"namespaces":[{"name":"n","type":"\u001b[31mnet","paths":["/run/netns/a"]}]}"#,
    );
    let mut plan = nsapply(&["plan"]);
    plan.arg(&seccomp);
    let mut simulate = nsapply(&["simulate"]);
    simulate.arg(&cfg).arg("--world").arg(&world);
    // (clap strips C0 controls and ANSI sequences from its own message, not
    // the 8-bit CSI.)
    let cases = [
        ("an OCI field's unknown value", plan, r"\u{1b}"),
        ("a world's unknown namespace type", simulate, r"\u{1b}"),
        (
            "an unknown subcommand",
            nsapply(&["\u{9b}2Jplan"]),
            r"\u{9b}",
        ),
    ];
    for (what, mut cmd, escaped) in cases {
        let (status, _, err) = run_bounded(&mut cmd, Duration::from_secs(10))?;
        if status.success() {
            return Err(format!("{what}: accepted"));
        }
        let Some(line) = err.strip_suffix('\n').filter(|l| !l.contains('\n')) else {
            return Err(format!("{what}: not one error line: {err:?}"));
        };
        if let Some(c) = line.chars().find(|c| c.is_control()) {
            return Err(format!("{what}: {c:?} in the error line, raw: {line:?}"));
        }
        if !line.starts_with("nsapply: ") || !line.contains(escaped) {
            return Err(format!(
                "{what}: the error line does not show {escaped}: {line:?}"
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 8. Attacks on the hardened process layer (branch attack-12): each case
// failed on c397d0c.

/// A configuration without a pid namespace (CMD is not a pid 1, and what it
/// leaves behind is found through the supervisors).
fn no_pid_namespace(scratch: &Scratch) -> PathBuf {
    scratch.write(
        "no-pid.json",
        &config(r#"{"type":"uts"},{"type":"ipc"},{"type":"mount"}"#, ""),
    )
}

/// Ctrl-C, Ctrl-\ and a terminal hangup send their signal to the whole
/// foreground process group, and so does `timeout` (it signals its own
/// group unless `--foreground`): nsapply, the child that applied the plan
/// and CMD are all in that group (nothing calls setsid or setpgid). The
/// signal must reach CMD (its trap runs) and nsapply must exit with CMD's
/// status; on c397d0c it kills the supervising child (default action),
/// which turns every such run into `run-failed` and, with a pid namespace,
/// takes CMD down with SIGKILL.
fn a_signal_to_nsapplys_process_group_reaches_cmd_and_its_status_comes_back() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let default = example("default");
    for (what, init, cfg) in [
        ("CMD as pid 1", false, &default),
        ("no pid namespace", false, &no_pid),
        ("--init", true, &default),
    ] {
        for (sig, name) in [
            (Signal::SIGINT, "INT"),
            (Signal::SIGTERM, "TERM"),
            (Signal::SIGHUP, "HUP"),
        ] {
            let script = format!(
                "trap 'echo got {name}; exit 42' {name}; echo ready; while :; do sleep 0.02; done"
            );
            let mut c = nsapply(&["run"]);
            if init {
                c.arg("--init");
            }
            let Started {
                mut child,
                lines,
                err,
            } = start_piped(
                c.arg(cfg)
                    .args(["--", "sh", "-c", &script])
                    .process_group(0),
            )?;
            let ready = wait_line(&lines, "ready", Duration::from_secs(20));
            if ready.is_ok() {
                // The group nsapply leads (process_group(0)): kill(-pgid).
                let _ = kill(Pid::from_raw(-(child.id() as i32)), sig);
            }
            let status = wait_deadline(&mut child, Duration::from_secs(10));
            let left = leftovers(Duration::from_secs(3));
            let err = err.recv().unwrap_or_default();
            ready.map_err(|e| format!("{what}, SIG{name}: {e}; stderr: {err}"))?;
            if status.and_then(|s| s.code()) != Some(42) {
                return Err(format!(
                    "{what}: SIG{name} sent to nsapply's process group (Ctrl-C, a hangup, timeout): \
                     nsapply should exit with CMD's status 42 (its trap ran), got {status:?}; stderr: {err}"
                ));
            }
            if !left.is_empty() {
                return Err(format!("{what}, SIG{name}: left behind: {left:?}"));
            }
        }
    }
    Ok(())
}

/// `kill -KILL -<pgid>` (`kill -9 %1` in a shell, `timeout -s KILL`) kills
/// nsapply and its supervising child at the same moment. Without a pid
/// namespace, a daemon CMD started (setsid: it is not in the group) must
/// not survive them; on c397d0c nobody is left to end it.
fn sigkill_of_nsapplys_process_group_leaves_no_daemon_behind() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let Started {
        mut child,
        lines,
        err,
    } = start_piped(
        run_sh(
            false,
            &no_pid,
            "setsid sleep 60 & sleep 0.2; echo started; wait",
        )
        .process_group(0),
    )?;
    let started = wait_line(&lines, "started", Duration::from_secs(20));
    let _ = kill(Pid::from_raw(-(child.id() as i32)), Signal::SIGKILL);
    let _ = child.wait();
    let left = leftovers(Duration::from_secs(3));
    started.map_err(|e| format!("{e}; stderr: {}", err.recv().unwrap_or_default()))?;
    if !left.is_empty() {
        return Err(format!(
            "after SIGKILL of nsapply's process group, the container's daemon survived: {left:?}"
        ));
    }
    Ok(())
}

/// CMD (no pid namespace, and under `--init`) starts a helper that traces
/// CMD's own process (PTRACE_SEIZE, allowed to root, and to container root
/// over its own processes) and never collects its exit, then exits 3. The supervising
/// child's `waitpid` for CMD cannot return while the tracer lives: on
/// c397d0c nsapply hangs for ever after CMD ended, and a SIGKILL of nsapply
/// then leaves the supervising child and the tracer running (the child is
/// stuck in that wait and never ends the rest). nsapply must exit with 3
/// and leave nothing.
fn a_cmd_traced_by_its_own_child_neither_hangs_nsapply_nor_outlives_it() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let probe = std::env::current_exe().map_err(|e| e.to_string())?;
    let report = scratch.join("seized");
    let errfile = scratch.join("stderr");
    let mut problems = Vec::new();
    // Under --init the same hold is on init's wait: it must see CMD's end
    // through CMD's pidfd, not wait for a SIGCHLD that the tracer gets.
    for (what, cfg, init) in [
        ("no pid namespace", no_pid, false),
        ("--init", example("default"), true),
    ] {
        let _ = fs::remove_file(&report);
        let mut child = nsapply(if init { &["run", "--init"] } else { &["run"] })
            .arg(&cfg)
            .args(["--", "sh", "-c", r#""$0" $$ "$1" & sleep 1; exit 3"#])
            .arg(&probe)
            .arg(&report)
            .env(PROBE_ENV, "seize")
            .stdout(Stdio::null())
            .stderr(File::create(&errfile).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| e.to_string())?;
        // Killed with SIGKILL when it does not end in time.
        let status = wait_deadline(&mut child, Duration::from_secs(15));
        let left = leftovers(Duration::from_secs(3));
        let err = fs::read_to_string(&errfile).unwrap_or_default();
        let seized = fs::read_to_string(&report).unwrap_or_default();
        if seized != "seized" {
            return Err(format!(
                "{what}: setup: the tracer did not attach ({seized:?}); stderr: {err}"
            ));
        }
        match status {
            Some(s) if s.code() == Some(3) => {}
            Some(s) => problems.push(format!(
                "{what}: nsapply should exit with CMD's status 3, got {}; stderr: {err}",
                status_code(s)
            )),
            None => problems.push(format!(
                "{what}: nsapply did not end within 15 s of a CMD that exits after 1 s (then killed with SIGKILL)"
            )),
        }
        if !left.is_empty() {
            problems.push(format!("{what}: left behind: {left:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// CMD (no pid namespace) leaves a chain of orphans behind, each the parent
/// of the next, and exits. Each one killed hands its child to the nearest
/// subreaper, so the supervisors meet the chain one level per round, and on
/// c397d0c each gives up after 64 rounds: a chain of 200 outlives a run
/// that ended normally (73 processes left), and one of 100 outlives a
/// SIGKILL of nsapply. Nothing may be left.
fn a_deep_chain_of_orphans_does_not_outlive_nsapply() -> Outcome {
    private_mount_namespace()?;
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let probe = std::env::current_exe().map_err(|e| e.to_string())?;
    // CMD exits by itself (status 0) once the chain exists.
    let r = run_bounded(
        nsapply(&["run"])
            .arg(&no_pid)
            .arg("--")
            .arg(&probe)
            .arg("200")
            .env(PROBE_ENV, "chain"),
        Duration::from_secs(60),
    )?;
    let left = leftovers(Duration::from_secs(3));
    if !r.0.success() || r.1.trim() != "started" {
        return Err(format!(
            "the run with a chain of 200 failed: exit {}\nstdout: {}\nstderr: {}",
            status_code(r.0),
            r.1,
            r.2
        ));
    }
    if !left.is_empty() {
        return Err(format!(
            "after a normal run, {} processes of a chain of 200 orphans were left, e.g. {:?}",
            left.len(),
            &left[..left.len().min(3)]
        ));
    }
    // nsapply killed with SIGKILL while CMD (which keeps the chain) runs.
    let Started {
        mut child, lines, ..
    } = start_piped(
        run_sh(false, &no_pid, r#""$0" 100; echo chained; sleep 60"#)
            .arg(&probe)
            .env(PROBE_ENV, "chain"),
    )?;
    let started = wait_line(&lines, "chained", Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    let left = leftovers(Duration::from_secs(3));
    started?;
    if !left.is_empty() {
        return Err(format!(
            "after SIGKILL of nsapply, {} processes of a chain of 100 orphans were left, e.g. {:?}",
            left.len(),
            &left[..left.len().min(3)]
        ));
    }
    Ok(())
}

/// The supervising child finds what CMD left behind through `/proc` of the
/// container's mount namespace, which CMD (root in it) may cover: here CMD
/// mounts a tmpfs over `/proc` (as a container mounts its own `/proc`),
/// starts a background process, and nsapply is killed with SIGKILL. On
/// c397d0c the supervising child kills CMD, lists no other child (its
/// `/proc` shows nothing), and the background process survives.
fn orphans_hidden_by_a_mount_over_proc_do_not_outlive_nsapply() -> Outcome {
    private_mount_namespace()?;
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let Started {
        mut child,
        lines,
        err,
    } = start_piped(&mut run_sh(
        false,
        &no_pid,
        "mount -t tmpfs hidden /proc || exit 9; sleep 60 & echo started; wait",
    ))?;
    let started = wait_line(&lines, "started", Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    let left = leftovers(Duration::from_secs(3));
    started.map_err(|e| format!("{e}; stderr: {}", err.recv().unwrap_or_default()))?;
    if !left.is_empty() {
        return Err(format!(
            "after SIGKILL of nsapply, what CMD started after covering /proc survived: {left:?}"
        ));
    }
    Ok(())
}

/// nsapply runs in a new pid namespace that still sees the host's `/proc`
/// (as in the id-map case above, which README says is handled). The
/// supervisors read their children from `/proc/thread-self/children`,
/// which numbers them as that procfs's pid namespace (the host's) does,
/// and then kill and wait for those numbers in their own pid namespace.
/// CMD (no pid namespace of its own) leaves a process behind whose host
/// pid is H; a process outside nsapply (a "victim", started by the shell
/// that runs nsapply) is given the number H in nsapply's pid namespace.
/// On c397d0c the victim is killed and the orphan survives nsapply.
fn under_a_foreign_proc_orphans_end_and_no_other_process_is_killed() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let script = scratch.write(
        "foreign.sh",
        r#"# pid 1 of a new pid namespace that sees the host's /proc
d=$1; nsapply=$2; cfg=$3
# CMD: a background process that writes its host pid (the procfs at /proc
# numbers it as the host does), then waits for "go" and exits 0.
"$nsapply" run "$cfg" -- sh -c '(exec sh -c "read p rest < /proc/self/stat; echo \$p > $0/orphan; exec sleep 60") & while [ ! -e "$0/go" ]; do sleep 0.02; done' "$d" &
nsa=$!
while [ ! -s "$d/orphan" ]; do
    kill -0 $nsa 2>/dev/null || { wait $nsa; echo "nsapply ended early: status $?"; exit 0; }
    sleep 0.02
done
h=$(cat "$d/orphan")
# The victim: not nsapply's, numbered h here.
echo $((h - 1)) > /proc/sys/kernel/ns_last_pid
sh -c 'read p rest < /proc/self/stat; echo $p > "$0/victim"; exec sleep 60' "$d" & victim=$!
while [ ! -s "$d/victim" ]; do sleep 0.02; done
v=$(cat "$d/victim")
echo "orphan host $h victim here $victim victim host $v"
touch "$d/go"
wait $nsa; echo "nsapply status $?"
sleep 0.3
echo "state of victim $(cut -d' ' -f3 /proc/$v/stat 2>/dev/null || echo gone)"
echo "state of orphan $(cut -d' ' -f3 /proc/$h/stat 2>/dev/null || echo gone)"
"#,
    );
    for attempt in 1..=3 {
        for f in ["orphan", "victim", "go"] {
            let _ = fs::remove_file(scratch.join(f));
        }
        let r = run_bounded(
            Command::new("unshare")
                .args(["--pid", "--fork", "sh"])
                .arg(&script)
                .arg(scratch.path())
                .arg(nsapply_bin())
                .arg(&no_pid)
                .stdin(Stdio::null()),
            Duration::from_secs(30),
        )?;
        let (_, out, err) = &r;
        let field = |key: &str| -> Option<String> {
            out.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().to_owned())
        };
        if out.contains("nsapply ended early") {
            return Err(format!(
                "nsapply did not run CMD under a foreign /proc: {out}{err}"
            ));
        }
        let Some(setup) = field("orphan host ") else {
            return Err(format!("the scenario did not run:\n{out}{err}"));
        };
        let nums: Vec<&str> = setup.split_whitespace().collect();
        // "H victim here N victim host V": the victim must have got H.
        // (Another process may take H first, rarely: then try again.)
        if nums.len() != 7 || nums[0] != nums[3] {
            if attempt == 3 {
                return Err(format!(
                    "setup: the victim never got the orphan's number: {setup}"
                ));
            }
            continue;
        }
        let victim = field("state of victim ").unwrap_or_default();
        let orphan = field("state of orphan ").unwrap_or_default();
        let status = field("nsapply status ").unwrap_or_default();
        let mut problems = Vec::new();
        if status != "0" {
            problems.push(format!("the run failed (status {status}): {err}"));
        }
        if victim != "S" {
            problems.push(format!(
                "a process that is not nsapply's (pid {} in nsapply's pid namespace) was killed: state {victim:?}",
                nums[0]
            ));
        }
        if orphan != "gone" && orphan != "Z" {
            problems.push(format!(
                "the process CMD left behind (host pid {}) outlived nsapply: state {orphan:?}",
                nums[0]
            ));
        }
        return if problems.is_empty() {
            expect_no_leftovers("after the foreign-/proc run")
        } else {
            Err(problems.join("\n"))
        };
    }
    Ok(())
}

/// `--trace` names a pipe whose reader does not read (a FIFO here, full;
/// `--trace /dev/stdout | slow-reader` or a terminal stopped with Ctrl-S
/// are the same). On c397d0c the trace is written by the supervising child
/// after CMD's process was forked and before it supervises anything: it
/// blocks in write(2) while CMD runs, SIGTERM sent to nsapply is not
/// forwarded, and after SIGKILL of nsapply CMD and the supervising child
/// keep running. Whatever the trace does, no signal may be held back from a
/// running CMD and nothing may outlive nsapply.
fn a_trace_file_that_blocks_leaves_no_cmd_unsupervised() -> Outcome {
    use std::os::unix::fs::OpenOptionsExt;
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let fifo = scratch.join("trace.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| format!("mkfifo: {e}"))?;
    // A reader that never reads (O_RDWR does not wait for a writer), its
    // pipe made as small as the kernel allows and filled.
    let mut keep = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .map_err(|e| format!("opening the FIFO: {e}"))?;
    nix::fcntl::fcntl(&keep, nix::fcntl::FcntlArg::F_SETPIPE_SZ(4096))
        .map_err(|e| format!("F_SETPIPE_SZ: {e}"))?;
    while keep.write(&[b'x'; 512]).is_ok() {}
    let Started {
        mut child, lines, ..
    } = start_piped(nsapply(&["run", "--trace"]).arg(&fifo).arg(&no_pid).args([
        "--",
        "sh",
        "-c",
        "echo started; exec sleep 60",
    ]))?;
    // Whether CMD runs at all while the trace cannot be written is
    // nsapply's choice; a CMD that runs must be supervised.
    let cmd_runs = wait_line(&lines, "started", Duration::from_secs(5)).is_ok();
    std::thread::sleep(Duration::from_millis(300));
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    // SIGKILL when it does not end in time.
    let status = wait_deadline(&mut child, Duration::from_secs(5));
    let left = leftovers(Duration::from_secs(3));
    drop(keep);
    let mut problems = Vec::new();
    let ended = status.map(status_code);
    if cmd_runs && ended != Some(143) {
        problems.push(format!(
            "CMD (sleep) ran, but SIGTERM sent to nsapply did not end it with status 143 within 5 s (nsapply: {ended:?}; None: killed with SIGKILL)"
        ));
    }
    if !left.is_empty() {
        problems.push(format!("after SIGKILL of nsapply, still running: {left:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// `--init`, and a SIGTERM sent to nsapply before CMD exists (here: already
/// pending when nsapply starts). README: "one sent before CMD exists is
/// kept and forwarded when it does", and `--init` is the answer to a pid 1
/// that ignores signals. On c397d0c the supervising child forwards it as
/// soon as init's process exists, before init has blocked the signals it
/// waits for: init is a pid 1 without a handler, the kernel drops the
/// signal, and CMD (sleep 12) runs to its end, exit 0. It must end CMD
/// (status 143) at once.
fn under_init_a_signal_sent_before_cmd_exists_reaches_it() -> Outcome {
    become_subreaper()?;
    let probe = std::env::current_exe().map_err(|e| e.to_string())?;
    for attempt in 1..=3 {
        let started = Instant::now();
        let r = run_bounded(
            Command::new(&probe)
                .env(PROBE_ENV, "exec-pending-term")
                .arg(nsapply_bin())
                .args(["run", "--init"])
                .arg(example("default"))
                .args(["--", "sleep", "12"])
                .stdin(Stdio::null()),
            Duration::from_secs(30),
        )?;
        let took = started.elapsed();
        if status_code(r.0) != 143 || took > Duration::from_secs(8) {
            return Err(format!(
                "run {attempt}: a SIGTERM sent before CMD existed should end CMD (exit 143) at once; \
                 nsapply exited {} after {took:?} (CMD sleeps 12 s)\nstderr: {}",
                status_code(r.0),
                r.2
            ));
        }
    }
    expect_no_leftovers("after the runs")
}

/// `--init` with a tiny RLIMIT_NPROC (counted, in the new user namespace of
/// `all-kinds`, for the container's root): some fork fails, at whichever
/// step. Each run must either succeed (CMD is `true`) or fail with exactly
/// one error line (README: "CMD's own exit status 1 is never mistaken for
/// a failed apply"; "Every error is exactly one line on stderr"). On
/// c397d0c, when init's own fork of CMD fails, init exits 1 without a
/// word, and nsapply exits 1 silently, as if CMD had exited 1. The line
/// names the fork and EAGAIN (cargo-mutants: init could fail without its
/// report, and only the line's count was checked).
fn under_init_a_failed_fork_is_an_error_not_cmds_status() -> Outcome {
    become_subreaper()?;
    for limit in 1..=4 {
        let r = run_bounded(
            Command::new("prlimit")
                .arg(format!("--nproc={limit}"))
                .arg(nsapply_bin())
                .args(["run", "--init"])
                .arg(example("all-kinds"))
                .args(["--", "true"])
                .stdin(Stdio::null()),
            Duration::from_secs(20),
        )?;
        let (status, _, err) = &r;
        if status.success() {
            continue;
        }
        let lines: Vec<&str> = err.lines().collect();
        if lines.len() != 1 || !lines[0].starts_with("nsapply: ") {
            return Err(format!(
                "RLIMIT_NPROC {limit}: nsapply exited {} with {} error lines (CMD is `true`, so this is not CMD's status): {err:?}",
                status_code(*status),
                lines.len()
            ));
        }
        // The line names the fork that failed and its errno (init reports
        // its own failed fork of CMD before it exits).
        if !lines[0].contains("fork") || !lines[0].contains("EAGAIN") {
            return Err(format!(
                "RLIMIT_NPROC {limit}: the error should name the failed fork and EAGAIN: {err:?}"
            ));
        }
        expect_no_leftovers(&format!("RLIMIT_NPROC {limit}"))?;
    }
    expect_no_leftovers("after the runs")
}

/// `nsapply::run::run` called by a program that has children of its own:
/// here a child A that started B and exits while the run goes on, so B is
/// re-parented to the caller (to its nearest child subreaper: `run` makes
/// the caller one for its duration, and a service manager is one anyway).
/// B is the caller's business, not the container's: it must still run
/// when `run` returns, and A's status must still be the caller's to
/// collect. On c397d0c `run` kills every child it did not see before the
/// run, B included, both when the caller was not a subreaper and when it
/// was.
///
/// This case process is the library caller: single-threaded (no helper
/// thread is started before `run`).
fn a_library_caller_keeps_the_processes_it_adopts_during_a_run() -> Outcome {
    use nsapply::run::{run, Exit, RunOptions};
    let scratch = Scratch::new();
    let cfg = nsapply::NsConfig::from_json(r#"{"linux":{"namespaces":[{"type":"uts"}]}}"#)
        .map_err(|e| e.to_string())?;
    let plan = nsapply::plan(&cfg);
    for subreaper in [false, true] {
        nix::sys::prctl::set_child_subreaper(subreaper)
            .map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
        let what = if subreaper {
            "a caller that is a child subreaper"
        } else {
            "a caller that is not a child subreaper"
        };
        let bfile = scratch.join(&format!("b-{subreaper}"));
        // A: starts B, writes B's pid, exits 0.5 s later (during the run).
        let mut a = Command::new("sh")
            .arg("-c")
            .arg(r#"sleep 60 & echo $! > "$0"; sleep 0.5"#)
            .arg(&bfile)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting A: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let b = loop {
            if let Some(p) = fs::read_to_string(&bfile)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
                .and_then(Proc::of)
            {
                break p;
            }
            if Instant::now() > deadline {
                let _ = a.kill();
                let _ = a.wait();
                return Err(format!("{what}: A never reported B"));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let threads = nsapply::linux::thread_count().map_err(|e| e.to_string())?;
        if threads != 1 {
            return Err(format!("setup: the caller has {threads} threads"));
        }
        let result = run(
            &plan,
            &["sleep".into(), "1.5".into()],
            &RunOptions::default(),
        );
        let b_alive = b.alive();
        let a_status = a.try_wait();
        let _ = kill(Pid::from_raw(b.pid), Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(Pid::from_raw(b.pid), None);
        let _ = a.wait();
        if result != Ok(Exit::Code(0)) {
            return Err(format!("{what}: the run failed: {result:?}"));
        }
        if !b_alive {
            return Err(format!(
                "{what}: run killed B (pid {}), a process of the caller's that came to it during the run",
                b.pid
            ));
        }
        match a_status {
            Ok(Some(s)) if s.success() => {}
            other => {
                return Err(format!(
                    "{what}: A's exit status was not left to the caller: {other:?}"
                ))
            }
        }
    }
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| e.to_string())?;
    expect_no_leftovers("after the library runs")
}

/// Without a procfs at `/proc` (a tmpfs with just enough for the thread
/// count, as in the forged-/proc case), `open_ns` checks the path `O_PATH`
/// and then opens it again *by path* (`O_RDONLY | O_NONBLOCK`) before it
/// checks the second file: a path whose owner swaps it between the two
/// (a symlink renamed between a real namespace file and a FIFO here) has
/// the FIFO opened for reading, which wakes a writer blocked in its open;
/// a device in its place would have its driver's open run. DESIGN §8:
/// "FIFOs, sockets, devices and regular files are refused with
/// `not-a-namespace`, with no side effect"; README: "no open blocks or runs
/// a driver". On c397d0c the FIFO is opened within a few runs.
fn without_procfs_a_path_swapped_after_its_check_is_never_opened() -> Outcome {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    private_mount_namespace()?;
    become_subreaper()?;
    let scratch = Scratch::new();
    // A real namespace file at a path of ours: this process's network
    // namespace, bind-mounted (before /proc goes away).
    let nsfile = scratch.write("netns", "");
    mount(
        Some("/proc/self/ns/net"),
        &nsfile,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| format!("bind-mounting a namespace file: {e}"))?;
    let fifo = scratch.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| format!("mkfifo: {e}"))?;
    let link = scratch.join("ns");
    std::os::unix::fs::symlink(&nsfile, &link).map_err(|e| e.to_string())?;
    let cfg = scratch.write(
        "swap.json",
        &config(
            &format!(
                r#"{{"type":"uts"}},{{"type":"network","path":"{}"}}"#,
                link.display()
            ),
            "",
        ),
    );
    // The witness: blocks in open(O_WRONLY) until someone opens the FIFO
    // for reading (an O_PATH reference does not count).
    let (opened_tx, opened_rx) = mpsc::channel();
    let witness_fifo = fifo.clone();
    std::thread::spawn(move || {
        let r = OpenOptions::new().write(true).open(&witness_fifo);
        let _ = opened_tx.send(r.is_ok());
    });
    // The racer: the symlink's target flips between the two, atomically.
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let (stop, nsfile, fifo, link) = (stop.clone(), nsfile.clone(), fifo.clone(), link.clone());
        let tmp = scratch.join("ns.tmp");
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let target = if i % 2 == 0 { &fifo } else { &nsfile };
                let _ = fs::remove_file(&tmp);
                if std::os::unix::fs::symlink(target, &tmp).is_ok() {
                    let _ = fs::rename(&tmp, &link);
                }
                i += 1;
            }
        })
    };
    // No procfs: a tmpfs whose self/stat says one thread.
    let stat = "1 (nsapply) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0\n";
    mount_tmpfs(Path::new("/proc"))?;
    let setup = fs::create_dir_all("/proc/self").and_then(|()| fs::write("/proc/self/stat", stat));
    let mut touched = None;
    let mut codes = BTreeMap::new();
    if setup.is_ok() {
        for i in 0..400 {
            let r = run_bounded(
                nsapply(&["run"]).arg(&cfg).args(["--", "true"]),
                Duration::from_secs(10),
            );
            let code = match &r {
                Ok((s, _, _)) if s.success() => "ok".to_owned(),
                Ok((_, _, err)) => error_code(err).unwrap_or_else(|| err.clone()),
                Err(e) => e.clone(),
            };
            *codes.entry(code.clone()).or_insert(0) += 1;
            if opened_rx.try_recv().is_ok() {
                touched = Some((i, code));
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = racer.join();
    let _ = nix::mount::umount2("/proc", nix::mount::MntFlags::MNT_DETACH);
    // Release the witness if nobody did.
    let _ = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo);
    let _ = nix::mount::umount2(&nsfile, nix::mount::MntFlags::MNT_DETACH);
    setup.map_err(|e| format!("setting up the tmpfs /proc: {e}"))?;
    if let Some((i, code)) = touched {
        return Err(format!(
            "by run {i}: nsapply opened the FIFO the namespace path was swapped to after its check (a blocked writer woke up; run {i} ended with {code:?}); all runs: {codes:?}"
        ));
    }
    expect_no_leftovers("after the swapped-path runs")
}

/// The config joins an existing pid namespace by path (`linux.namespaces`
/// `{"type":"pid","path":...}`): CMD is not its pid 1, and a process it
/// leaves behind is re-parented to that namespace's init, not to nsapply's
/// subreapers (a subreaper must be in the same pid namespace). README:
/// "Nothing outlives nsapply"; it names two cases, a new pid namespace and
/// none, and this third one is neither. On c397d0c the orphan outlives a
/// run that ended normally, and one that ended by SIGKILL of nsapply. The
/// same for `nsapply exec` into the namespace's init through a pidfd (a
/// plan whose pid join is a `pidfd-join` step, not a `setns` by path).
fn orphans_in_a_joined_pid_namespace_do_not_outlive_nsapply() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    // The namespace to join: its init is `sleep` (it reaps nothing).
    let mut holder = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "sleep", "infinity"])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("unshare: {e}"))?;
    let h = holder.id() as i32;
    let ours = fs::read_link("/proc/self/ns/pid").map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let init = loop {
        let init = fs::read_to_string(format!("/proc/{h}/task/{h}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .and_then(|p| p.parse::<i32>().ok());
        if let Some(i) = init {
            if fs::read_link(format!("/proc/{i}/ns/pid")).is_ok_and(|l| l != ours) {
                break i;
            }
        }
        if Instant::now() > deadline {
            let _ = holder.kill();
            let _ = holder.wait();
            return Err("setup: the pid namespace to join never appeared".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let cfg = scratch.write(
        "join-pid.json",
        &config(
            &format!(r#"{{"type":"pid","path":"/proc/{init}/ns/pid"}},{{"type":"uts"}}"#),
            "",
        ),
    );
    let mut problems = Vec::new();
    // `run` with the config, and `exec` into the namespace's init (its pid
    // namespace only, through a pidfd: one setns(pidfd, CLONE_NEWPID)).
    let target = init.to_string();
    let nsapply_with = |how: &str, script: &str| {
        let mut cmd = match how {
            "run" => {
                let mut c = nsapply(&["run"]);
                c.arg(&cfg);
                c
            }
            _ => nsapply(&["exec", &target, "--kinds", "pid"]),
        };
        cmd.args(["--", "sh", "-c", script]);
        cmd
    };
    let orphans = || -> Vec<Proc> {
        std::thread::sleep(Duration::from_millis(300));
        descendants(init).into_iter().filter(Proc::alive).collect()
    };
    for how in ["run", "exec"] {
        let r = run_bounded(
            &mut nsapply_with(how, "sleep 60 >/dev/null 2>&1 & exit 0"),
            Duration::from_secs(20),
        );
        match r {
            Ok((s, _, _)) if s.success() => {
                let left = orphans();
                if !left.is_empty() {
                    problems.push(format!(
                        "{how}: after a normal run, what CMD left behind is still running in the joined pid namespace: {:?}",
                        left.iter().map(|p| (p.pid, p.comm())).collect::<Vec<_>>()
                    ));
                }
            }
            Ok((s, out, err)) => problems.push(format!(
                "{how}: the run failed: exit {}\n{out}{err}",
                status_code(s)
            )),
            Err(e) => problems.push(format!("{how}: {e}")),
        }
        for p in descendants(init) {
            let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
        }
        // nsapply killed with SIGKILL while CMD runs.
        let Started {
            mut child, lines, ..
        } = start_piped(&mut nsapply_with(
            how,
            "sleep 60 >/dev/null 2>&1 & echo started; wait",
        ))?;
        let started = wait_line(&lines, "started", Duration::from_secs(20));
        let _ = child.kill();
        let _ = child.wait();
        match started {
            Ok(()) => {
                let left = orphans();
                if !left.is_empty() {
                    problems.push(format!(
                        "{how}: after SIGKILL of nsapply, what CMD started is still running in the joined pid namespace: {:?}",
                        left.iter().map(|p| (p.pid, p.comm())).collect::<Vec<_>>()
                    ));
                }
            }
            Err(e) => problems.push(format!("{how}: {e}")),
        }
        for p in descendants(init) {
            let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
        }
    }
    let _ = holder.kill();
    let _ = kill(Pid::from_raw(init), Signal::SIGKILL);
    let _ = holder.wait();
    let _ = leftovers(Duration::from_secs(3));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// With few free fds (RLIMIT_NOFILE 4 to 12) something fails at each step
/// of a run; the error must name the call that failed. fork(2) can fail
/// with EAGAIN or ENOMEM only (it opens no file), yet on c397d0c the
/// thread count read inside `Linux::fork` (`/proc/self/stat`) and the
/// pipes made for CMD's process fail with EMFILE and are reported as
/// `fork-failed: fork of the child that applies the plan failed: EMFILE`,
/// `fork-failed: fork into the new pid/time namespaces failed: EMFILE`
/// and `run-failed: fork of the command's process: ... EMFILE`: the
/// failure issue 12 asked to give its own code (`thread-count-failed`),
/// and an errno fork never returns.
fn a_failed_open_or_pipe_is_never_reported_as_a_failed_fork() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let configs = [
        ("no pid namespace", no_pid, false),
        ("default", example("default"), false),
        ("default --init", example("default"), true),
        ("all-kinds", example("all-kinds"), false),
    ];
    let mut wrong = Vec::new();
    for (what, cfg, init) in &configs {
        for limit in 4..=12 {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={limit}"))
                .arg(nsapply_bin())
                .arg("run");
            if *init {
                c.arg("--init");
            }
            let r = run_bounded(
                c.arg(cfg).args(["--", "true"]).stdin(Stdio::null()),
                Duration::from_secs(20),
            )?;
            let (status, _, err) = &r;
            if status.success() {
                continue;
            }
            let line = err.lines().next().unwrap_or_default();
            let code = error_code(err).unwrap_or_default();
            // The errno printed last on the line: "... failed: EMFILE (...)".
            let errno = line
                .split(|c: char| !c.is_ascii_alphanumeric())
                .rfind(|w| {
                    w.len() > 1
                        && w.starts_with('E')
                        && w.chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                })
                .unwrap_or("");
            let blames_fork =
                code == "fork-failed" || line.contains("fork of the command's process:");
            if blames_fork && !matches!(errno, "EAGAIN" | "ENOMEM") {
                wrong.push(format!("{what}, RLIMIT_NOFILE {limit}: {line}"));
            }
        }
        expect_no_leftovers(what)?;
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "errors that blame fork(2) for an errno it never returns (the failing call was another):\n{}",
            wrong.join("\n")
        ))
    }
}

/// A library caller that handles its signals synchronously (blocked, then
/// read with sigwait or a signalfd, as daemons do) has a SIGUSR1 pending
/// when it calls `nsapply::run::run`. That signal was sent to the caller
/// before any container existed: it must still be pending when `run`
/// returns ("A library caller of run gets its signal state back"), and the
/// container must not get it. On c397d0c `run`'s signalfd takes it at once
/// and forwards it to CMD, which it kills (`sleep` ends by SIGUSR1) and the
/// caller never sees it. A pending SIGPIPE (one of the signals `run`
/// takes back when its own trace write raised them) stays too.
fn a_library_callers_pending_signal_stays_its_own() -> Outcome {
    use nsapply::run::{run, Exit, RunOptions};
    let cfg = nsapply::NsConfig::from_json(r#"{"linux":{"namespaces":[{"type":"uts"}]}}"#)
        .map_err(|e| e.to_string())?;
    let plan = nsapply::plan(&cfg);
    let mut pending = SigSet::empty();
    pending.add(Signal::SIGUSR1);
    pending.add(Signal::SIGPIPE);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&pending), None).map_err(|e| e.to_string())?;
    nix::sys::signal::raise(Signal::SIGUSR1).map_err(|e| e.to_string())?;
    nix::sys::signal::raise(Signal::SIGPIPE).map_err(|e| e.to_string())?;
    let result = run(
        &plan,
        &["sleep".into(), "0.5".into()],
        &RunOptions::default(),
    );
    let mut set: libc::sigset_t = {
        // SAFETY: sigset_t is plain old data; sigemptyset below sets it.
        let mut s = unsafe { std::mem::zeroed() };
        // SAFETY: `s` is a live sigset_t.
        unsafe { libc::sigemptyset(&mut s) };
        s
    };
    // SAFETY: sigpending writes into `set`, a live sigset_t.
    let r = unsafe { libc::sigpending(&mut set) };
    // SAFETY: `set` was filled by sigpending.
    let still_pending = |sig| r == 0 && unsafe { libc::sigismember(&set, sig) } == 1;
    if result != Ok(Exit::Code(0)) {
        return Err(format!(
            "CMD (sleep 0.5) should have run to its end; run returned {result:?} (Signal(10): the caller's SIGUSR1 was sent to it)"
        ));
    }
    for (sig, name) in [(libc::SIGUSR1, "SIGUSR1"), (libc::SIGPIPE, "SIGPIPE")] {
        if !still_pending(sig) {
            return Err(format!("the caller's pending {name} is gone after run"));
        }
    }
    Ok(())
}

/// `--trace FILE` is created (truncated) before anything runs, and README
/// says the trace is written "success or failure". With few free fds
/// (RLIMIT_NOFILE 4 to 12) and without a procfs, runs fail at every step;
/// whenever the file was created it must hold a trace document (JSON), at
/// the least one that carries the error. On c397d0c it is left empty when
/// the failure is P0's (thread count, channel, fork) and when the command's
/// process cannot be forked after an apply that succeeded (no pid
/// namespace): the caller's file is destroyed and nothing replaces it.
fn a_trace_file_nsapply_created_holds_a_trace_whatever_failed() -> Outcome {
    private_mount_namespace()?;
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let trace = scratch.join("trace.json");
    let mut empty = Vec::new();
    let mut check = |what: String, r: (ExitStatus, String, String)| {
        let text = fs::read_to_string(&trace).unwrap_or_default();
        if !r.0.success()
            && fs::metadata(&trace).is_ok()
            && serde_json::from_str::<serde_json::Value>(&text).is_err()
        {
            empty.push(format!("{what}: {} -> trace file {text:?}", r.2.trim_end()));
        }
        let _ = fs::remove_file(&trace);
    };
    for (name, cfg) in [
        ("no pid namespace", &no_pid),
        ("default", &example("default")),
    ] {
        for limit in 4..=12 {
            let r = run_bounded(
                Command::new("prlimit")
                    .arg(format!("--nofile={limit}"))
                    .arg(nsapply_bin())
                    .args(["run", "--trace"])
                    .arg(&trace)
                    .arg(cfg)
                    .args(["--", "true"])
                    .stdin(Stdio::null()),
                Duration::from_secs(20),
            )?;
            check(format!("{name}, RLIMIT_NOFILE {limit}"), r);
        }
    }
    // No procfs at all: the thread count cannot be read.
    mount_tmpfs(Path::new("/proc"))?;
    let r = run_bounded(
        nsapply(&["run", "--trace"])
            .arg(&trace)
            .arg(&no_pid)
            .args(["--", "true"]),
        Duration::from_secs(20),
    );
    let _ = nix::mount::umount2("/proc", nix::mount::MntFlags::MNT_DETACH);
    check("no procfs".to_owned(), r?);
    expect_no_leftovers("after the runs")?;
    if empty.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "runs that failed left the --trace file without a trace document:\n{}",
            empty.join("\n")
        ))
    }
}

/// `--init`: init blocks the signals it waits for (the forwarded ones and
/// SIGCHLD), then forks CMD, which inherits that mask: std's `exec` does
/// not empty it (the comment in `exec_command` says it does). README: "C1
/// and CMD start with every signal at its default action and none
/// blocked". On c397d0c CMD starts with SIGHUP, SIGINT, SIGQUIT, SIGUSR1,
/// SIGUSR2, SIGTERM, SIGCHLD and SIGWINCH blocked, so `nsapply run --init
/// ... -- sleep 20` ignores a SIGTERM sent to nsapply (init forwards it to
/// a CMD that has it blocked) and runs its 20 s. A shell hides this (it
/// empties its own mask at start), which is why the forwarding case with
/// `sh -c` passes.
fn under_init_cmd_starts_with_no_signal_blocked_and_sigterm_ends_it() -> Outcome {
    become_subreaper()?;
    let r = run_bounded(
        nsapply(&["run", "--init"]).arg(example("default")).args([
            "--",
            "grep",
            "-E",
            "^Sig(Blk|Ign):",
            "/proc/self/status",
        ]),
        Duration::from_secs(20),
    )?;
    let masks: Vec<&str> = r.1.lines().collect();
    if !r.0.success()
        || masks.len() != 2
        || masks.iter().any(|l| {
            l.split_whitespace()
                .nth(1)
                .unwrap_or("x")
                .chars()
                .any(|c| c != '0')
        })
    {
        return Err(format!(
            "under --init CMD should start with no signal blocked or ignored, got {masks:?} (exit {}; stderr: {})",
            status_code(r.0),
            r.2
        ));
    }
    let mut child = nsapply(&["run", "--init"])
        .arg(example("default"))
        .args(["--", "sleep", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let err = read_all_in_background(child.stderr.take());
    let p0 = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !descendants(p0).iter().any(|p| p.comm() == "sleep") {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "CMD never started; stderr: {}",
                err.recv().unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = kill(Pid::from_raw(p0), Signal::SIGTERM);
    let status = wait_deadline(&mut child, Duration::from_secs(5));
    let left = leftovers(Duration::from_secs(3));
    let err = err.recv().unwrap_or_default();
    if status.map(status_code) != Some(143) {
        return Err(format!(
            "SIGTERM sent to nsapply --init should end CMD (sleep 20) at once (exit 143); got {:?} within 5 s (None: still running, killed)\nstderr: {err}",
            status.map(status_code)
        ));
    }
    if !left.is_empty() {
        return Err(format!("left behind: {left:?}"));
    }
    Ok(())
}

/// `--trace` names a pipe whose write fails late (its reader, slow, goes
/// away: EPIPE; a full disk or `/dev/full` fail the same way, at once,
/// which makes the outcome a race). On c397d0c the trace is written after
/// CMD's process was forked, so CMD runs (here it appends to a file), then
/// the write fails, CMD is killed with SIGKILL, and nsapply reports
/// `run-failed`: a caller that retries a failed run runs CMD twice. Either
/// the run fails before CMD runs, or CMD's run is the run's result.
fn a_run_reported_failed_did_not_run_cmd() -> Outcome {
    use std::os::unix::fs::OpenOptionsExt;
    become_subreaper()?;
    let scratch = Scratch::new();
    let marker = scratch.join("ran");
    let fifo = scratch.join("trace.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| format!("mkfifo: {e}"))?;
    for (what, cfg) in [
        ("no pid namespace", no_pid_namespace(&scratch)),
        ("all-kinds", example("all-kinds")),
    ] {
        let _ = fs::remove_file(&marker);
        // The slow reader: holds the FIFO, full, until CMD ran (or 5 s).
        let mut reader = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .map_err(|e| format!("opening the FIFO: {e}"))?;
        nix::fcntl::fcntl(&reader, nix::fcntl::FcntlArg::F_SETPIPE_SZ(4096))
            .map_err(|e| format!("F_SETPIPE_SZ: {e}"))?;
        while reader.write(&[b'x'; 512]).is_ok() {}
        let mut child = nsapply(&["run", "--trace"])
            .arg(&fifo)
            .arg(&cfg)
            .args(["--", "sh", "-c", r#"echo ran >> "$0"; sleep 0.5"#])
            .arg(&marker)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let err = read_all_in_background(child.stderr.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while fs::metadata(&marker).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // The reader goes away: the trace write fails with EPIPE.
        drop(reader);
        let status = wait_deadline(&mut child, Duration::from_secs(10));
        let err = err.recv().unwrap_or_default();
        let ran = fs::read_to_string(&marker).unwrap_or_default();
        let Some(status) = status else {
            return Err(format!("{what}: nsapply did not end; stderr: {err}"));
        };
        if !status.success() && !ran.is_empty() {
            return Err(format!(
                "{what}: nsapply reported a failed run (exit {}: {}) but CMD ran",
                status_code(status),
                err.trim_end()
            ));
        }
        if status.success() && ran.is_empty() {
            return Err(format!("{what}: a successful run whose CMD never ran"));
        }
        expect_no_leftovers(what)?;
    }
    Ok(())
}

/// What CMD printed after a Ctrl-C on its terminal.
struct CtrlC {
    /// The number the `count-int` probe printed (`count N`), if it did.
    count: Option<String>,
    status: Option<std::process::ExitStatus>,
    out: Vec<String>,
    err: String,
}

/// The terminal of a run under script(1) once CMD is ready, as
/// [`ctrl_c_on_a_terminal`] hands it to its caller.
struct Terminal<'a> {
    /// script(1)'s pid (nsapply is its first child).
    script: i32,
    stdin: &'a mut std::process::ChildStdin,
    lines: &'a mpsc::Receiver<String>,
    /// CMD's output so far.
    out: &'a mut Vec<String>,
}

impl Terminal<'_> {
    /// ^C, typed on the terminal.
    fn type_ctrl_c(&mut self) -> Outcome {
        self.stdin
            .write_all(b"\x03")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("typing ^C: {e}"))
    }

    /// Waits until CMD prints a line that ends with `want` (the terminal
    /// echoes a ^C before it).
    fn wait_for(&mut self, want: &str, within: Duration) -> Outcome {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = self
                .lines
                .recv_timeout(left)
                .map_err(|_| format!("no line {want:?} within {within:?}; saw {:?}", self.out))?;
            let done = l.ends_with(want);
            self.out.push(l);
            if done {
                return Ok(());
            }
        }
    }
}

/// Runs the shell line under script(1) (a pty, whose session the line
/// leads) with the `count-int` probe as CMD, waits until the probe is
/// ready, hands the terminal to `drive` (which types ^C, or not) and
/// collects what the probe counted.
fn ctrl_c_on_a_terminal(
    what: &str,
    line: &str,
    drive: impl FnOnce(&mut Terminal) -> Outcome,
) -> Result<CtrlC, String> {
    counted_on_a_terminal(what, line, "count-int", drive)
}

/// [`ctrl_c_on_a_terminal`] with another `count-int` probe as CMD
/// (`probe`: `count-int-until-usr1`).
fn counted_on_a_terminal(
    what: &str,
    line: &str,
    probe: &str,
    drive: impl FnOnce(&mut Terminal) -> Outcome,
) -> Result<CtrlC, String> {
    let mut child = Command::new("script")
        .args(["-qfec", line, "/dev/null"])
        .env(PROBE_ENV, probe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("script: {e}"))?;
    let lines = lines_in_background(child.stdout.take().expect("stdout"));
    let err = read_all_in_background(child.stderr.take());
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = Vec::new();
    let driven = wait_line(&lines, "ready", Duration::from_secs(20)).and_then(|()| {
        drive(&mut Terminal {
            script: child.id() as i32,
            stdin: &mut stdin,
            lines: &lines,
            out: &mut out,
        })
    });
    let status = wait_deadline(&mut child, Duration::from_secs(20));
    drop(stdin);
    while let Ok(l) = lines.recv_timeout(Duration::from_millis(200)) {
        out.push(l);
    }
    let err = err.recv().unwrap_or_default();
    driven.map_err(|e| format!("{what}: {e}; stderr: {err}"))?;
    // The terminal echoes the ^C before CMD's line.
    let count = out
        .iter()
        .find_map(|l| l.split("count ").nth(1))
        .map(|c| c.trim().to_owned());
    Ok(CtrlC {
        count,
        status,
        out,
        err,
    })
}

/// Ctrl-C on a terminal: the kernel sends SIGINT (`SI_KERNEL`) to the
/// terminal's whole foreground process group, which holds nsapply and CMD
/// (the keeper and the applying child have a group of their own). CMD must
/// get it once: nsapply does not forward a signal the terminal already
/// sent to CMD (a program that counts Ctrl-C, "press twice to quit",
/// would otherwise see two). The terminal is a pty from script(1), whose
/// session nsapply leads.
fn a_terminals_ctrl_c_reaches_cmd_once() -> Outcome {
    become_subreaper()?;
    for (what, init) in [("CMD as pid 1", false), ("--init", true)] {
        sigint_reaches_cmd_once(what, init, "Ctrl-C on the terminal", |t| t.type_ctrl_c())?;
    }
    Ok(())
}

/// Runs the `count-int` probe under `nsapply run [--init]` of the default
/// config on a terminal (as [`ctrl_c_on_a_terminal`], `drive` typing ^C
/// or not) and requires that `CMD` counted one SIGINT (`how`
/// says where it came from) and that nothing is left.
fn sigint_reaches_cmd_once(
    what: &str,
    init: bool,
    how: &str,
    drive: impl FnOnce(&mut Terminal) -> Outcome,
) -> Outcome {
    sigint_counted_once(what, init, how, "count-int", drive)
}

/// [`sigint_reaches_cmd_once`] with another `count-int` probe as CMD.
fn sigint_counted_once(
    what: &str,
    init: bool,
    how: &str,
    probe_kind: &str,
    drive: impl FnOnce(&mut Terminal) -> Outcome,
) -> Outcome {
    let probe = std::env::current_exe().map_err(|e| e.to_string())?;
    let CtrlC {
        count,
        status,
        out,
        err,
    } = counted_on_a_terminal(
        what,
        &exec_run_line(init, &example("default"), &probe),
        probe_kind,
        drive,
    )?;
    if count.as_deref() != Some("1") {
        return Err(format!(
            "{what}: {how} should reach CMD once, it counted {count:?} (status {status:?}); output {out:?}; stderr: {err}"
        ));
    }
    expect_no_leftovers(what)
}

/// Ctrl-C on a terminal while nsapply (P0) is held in a ptrace stop: CMD
/// counts the terminal's SIGINT (`got 1`) before P0 can read its own, then
/// P0 goes on. A forward of the same signal now comes while CMD has none
/// pending, so it cannot merge with the terminal's, and CMD would count 2.
/// cargo-mutants (issue 18, shard 10 of the full run) found that P0's
/// foreground group replaced by 0, 1 or -1 (C1 then forwards a terminal's
/// signal to a CMD that has it) passed a_terminals_ctrl_c_reaches_cmd_once
/// on a loaded machine: the forward came while the terminal's SIGINT was
/// still pending at CMD, which was not running. A ptrace stop, not
/// SIGSTOP: script(1) answers its child's SIGSTOP by stopping itself and
/// continuing the child (util-linux `callback_child_sigstop`).
fn a_terminals_ctrl_c_is_not_forwarded_to_cmd_that_has_it() -> Outcome {
    become_subreaper()?;
    for (what, init) in [("CMD as pid 1", false), ("--init", true)] {
        let how = "a Ctrl-C CMD had counted before nsapply read it";
        sigint_counted_once(what, init, how, "count-int-until-usr1", |t| {
            let p0 = first_child_of(t.script).ok_or("no nsapply under script(1) to hold")?;
            let held = Held::seize(p0)?;
            t.type_ctrl_c()?;
            t.wait_for("got 1", Duration::from_secs(20))?;
            drop(held);
            // Ends CMD's count, however long P0 and C1 take: P0 forwards
            // a SIGUSR1 (SI_USER) after a SIGINT it forwards (its signalfd
            // gives the lower number first), every hop keeps the order,
            // and CMD runs the SIGINT's handler before it sees the flag.
            kill(Pid::from_raw(p0), Signal::SIGUSR1).map_err(|e| format!("SIGUSR1 to nsapply: {e}"))
        })?;
    }
    Ok(())
}

/// A process held in a ptrace stop (`PTRACE_SEIZE`, `PTRACE_INTERRUPT`)
/// until this is dropped (`PTRACE_DETACH`): it runs no code, and what is
/// sent to it meanwhile stays pending. (Should it not be in the stop when
/// dropped, only if `seize` failed half way, the detach fails; the kernel
/// detaches it when this case's process, its tracer, exits.)
struct Held(libc::pid_t);

impl Held {
    fn seize(pid: libc::pid_t) -> Result<Held, String> {
        let zero: libc::c_long = 0;
        // SAFETY: PTRACE_SEIZE and PTRACE_INTERRUPT take a pid and no
        // memory (addr and data are 0).
        if unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, zero, zero) } != 0 {
            return Err(format!(
                "PTRACE_SEIZE of {pid}: {}",
                std::io::Error::last_os_error()
            ));
        }
        let held = Held(pid);
        // SAFETY: as above.
        if unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, pid, zero, zero) } != 0 {
            return Err(format!(
                "PTRACE_INTERRUPT of {pid}: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: siginfo_t is plain old data; all zeroes is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // A stop, or an end (then a stop would never come), which is left
        // for its parent (WNOWAIT).
        let how = libc::WSTOPPED | libc::WEXITED | libc::WNOWAIT;
        // SAFETY: waitid writes into `info`, a live local of the right
        // type; a tracer may wait for its tracee (not its child).
        if unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, how) } != 0 {
            return Err(format!(
                "waiting for {pid} to stop: {}",
                std::io::Error::last_os_error()
            ));
        }
        if info.si_code != libc::CLD_TRAPPED {
            return Err(format!(
                "{pid} ended before it stopped (si_code {})",
                info.si_code
            ));
        }
        Ok(held)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let zero: libc::c_long = 0;
        // SAFETY: PTRACE_DETACH takes a pid and a signal to deliver (none).
        unsafe { libc::ptrace(libc::PTRACE_DETACH, self.0, zero, zero) };
    }
}

/// `exec nsapply run [--init] CFG -- CMD`, a shell line for script(1).
fn exec_run_line(init: bool, cfg: &Path, cmd: &Path) -> String {
    format!(
        "exec {} run {}{} -- {}",
        nsapply_bin().display(),
        if init { "--init " } else { "" },
        cfg.display(),
        cmd.display()
    )
}

/// A SIGINT sent to nsapply alone (`kill -INT <pid>`: `SI_USER`) while it
/// runs on a terminal with CMD in the terminal's foreground group: no
/// terminal sent it and CMD has not got it, so nsapply forwards it, and CMD
/// counts one. cargo-mutants found that "a signal the kernel sent" could be
/// widened to every signal unnoticed: nsapply then took it for the
/// terminal's and CMD never got it.
fn a_sigint_sent_to_nsapply_on_a_terminal_reaches_cmd() -> Outcome {
    become_subreaper()?;
    for (what, init) in [("CMD as pid 1", false), ("--init", true)] {
        let mut sent = false;
        let result = sigint_reaches_cmd_once(what, init, "a SIGINT sent to nsapply", |t| {
            if let Some(p0) = first_child_of(t.script) {
                sent = kill(Pid::from_raw(p0), Signal::SIGINT).is_ok();
            }
            Ok(())
        });
        if !sent {
            // (`result` says why: CMD never ready, for one.)
            return Err(format!(
                "{what}: no nsapply under script(1) to send SIGINT to: {result:?}"
            ));
        }
        result?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 9. Attacks on the process layer (branch attack-13): each case fails on
// 079862e.

/// CMD's program cannot be executed, and its name is long (4,200 bytes: a
/// path of 2,100 components, ENAMETOOLONG; the CLI takes an argument of up
/// to 128 KiB). README: "1 ... or CMD could not be executed", and
/// "Failures below P0 (an apply error, a fork or exec that fails) reach
/// P0 as typed messages, so CMD's own exit status 1 is never mistaken for
/// a failed apply". The command's process reports the failure to C1 as one
/// JSON line that carries the program name; C1 reads the report pipe 4096
/// bytes at a time and parses each read on its own, so a longer line is
/// cut in two, neither half parses, and the report is lost: on 079862e
/// nsapply exits 127 without a word, as if CMD had run and exited 127
/// (with a short name: `exec-failed`, exit 1). The run must say
/// `exec-failed`, exit 1, whatever the name's length.
fn an_exec_failure_with_a_long_program_name_is_exec_failed_not_status_127() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let program = format!("/nonexistent-nsapply-{}", "x/".repeat(2100));
    let mut wrong = Vec::new();
    for (what, init, cfg) in [
        ("no pid namespace", false, &no_pid),
        ("CMD as pid 1", false, &example("default")),
        ("--init", true, &example("default")),
    ] {
        let mut c = nsapply(&["run"]);
        if init {
            c.arg("--init");
        }
        let r = run_bounded(c.arg(cfg).arg("--").arg(&program), Duration::from_secs(20))?;
        if let Err(e) = expect_error(what, &r, 1, "exec-failed") {
            wrong.push(e.chars().take(300).collect::<String>());
        }
        expect_no_leftovers(what)?;
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "a program of {} bytes that cannot be executed was not reported as exec-failed:\n{}",
            program.len(),
            wrong.join("\n")
        ))
    }
}

/// Waits up to `within` for `pid`, a child of this process (a process
/// re-parented here counts), to end: its status, or `None`.
fn wait_pid_deadline(pid: i32, within: Duration) -> Option<nix::sys::wait::WaitStatus> {
    let deadline = Instant::now() + within;
    loop {
        match nix::sys::wait::waitpid(
            Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        ) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(_) => return None,
            Ok(s) => return Some(s),
        }
    }
}

/// The first child of `pid` (its main thread's `children` file).
fn first_child_of(pid: i32) -> Option<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
}

/// nsapply leads the session of its terminal (`ssh -t host nsapply run
/// ...`, `script -c`, `setsid -c`: the shell execs the one command) and
/// the terminal hangs up (the connection drops; here script(1), which holds
/// the pty's master, is killed). The kernel sends the hangup's SIGHUP to the
/// session leader alone (`tty_signal_session_leader`), with `SI_KERNEL`;
/// the foreground group gets nothing until the leader exits. nsapply
/// skips every `SI_KERNEL` signal ("the terminal sent it to the whole
/// foreground process group, CMD included"), so on 079862e CMD never
/// learns of the hangup and nsapply and CMD run on for ever on a dead
/// terminal (here until the case kills them). README: "SIGHUP ... sent to
/// nsapply are forwarded to CMD"; "A signal the kernel sent (a terminal's
/// Ctrl-C, Ctrl-\ or hangup) is not forwarded: the terminal sent it to the
/// whole foreground process group, CMD included, which gets it once". CMD
/// must get SIGHUP once (its trap exits 42) and nsapply exit with 42.
fn a_terminal_hangup_reaches_cmd_when_nsapply_leads_the_session() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let marker = scratch.join("hup");
    for (what, cfg, init) in [
        ("CMD as pid 1", example("default"), false),
        ("no pid namespace", no_pid, false),
        ("--init", example("default"), true),
    ] {
        let _ = fs::remove_file(&marker);
        let script = format!(
            "trap 'echo HUP >> {}; exit 42' HUP; echo ready; while :; do sleep 0.05; done",
            marker.display()
        );
        let line = format!(
            "exec {} run {}{} -- sh -c \"{script}\"",
            nsapply_bin().display(),
            if init { "--init " } else { "" },
            cfg.display(),
        );
        let mut child = Command::new("script")
            .args(["-qfec", &line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("script: {e}"))?;
        let lines = lines_in_background(child.stdout.take().expect("stdout"));
        let ready = wait_line(&lines, "ready", Duration::from_secs(20));
        let p0 = first_child_of(child.id() as i32);
        let is_nsapply = p0.and_then(Proc::of).map(|p| p.comm()) == Some("nsapply".to_owned());
        // The terminal hangs up: its master side goes away.
        let _ = child.kill();
        let _ = child.wait();
        // nsapply comes to this process (a child subreaper).
        let status = match (&ready, p0) {
            (Ok(()), Some(p0)) if is_nsapply => wait_pid_deadline(p0, Duration::from_secs(5)),
            _ => None,
        };
        let left = leftovers(Duration::from_secs(1));
        ready.map_err(|e| format!("{what}: {e}"))?;
        if !is_nsapply {
            return Err(format!(
                "{what}: setup: script's child {p0:?} is not nsapply"
            ));
        }
        let hups = fs::read_to_string(&marker)
            .unwrap_or_default()
            .lines()
            .count();
        if status
            != Some(nix::sys::wait::WaitStatus::Exited(
                Pid::from_raw(p0.unwrap_or(0)),
                42,
            ))
            || hups != 1
        {
            return Err(format!(
                "{what}: the terminal of nsapply's session hung up: CMD should get SIGHUP once (its trap \
                 exits 42) and nsapply exit 42 within 5 s; CMD got it {hups} times, nsapply: {status:?} \
                 (None: still running; killed now with what was left: {left:?})"
            ));
        }
        if !left.is_empty() {
            return Err(format!("{what}: left behind: {left:?}"));
        }
    }
    Ok(())
}

/// Ctrl-C on nsapply's terminal when CMD has left the terminal's foreground
/// process group (it called setsid(2): `setsid(1)`, a daemon-style wrapper,
/// a program that starts its own session). The kernel sends SIGINT
/// (`SI_KERNEL`) to the foreground group, which now holds nsapply alone;
/// nsapply skips it ("the terminal sent it to the whole foreground process
/// group, CMD included"), so on 079862e CMD never gets it and the run goes
/// on as if Ctrl-C had not been pressed (CMD counts 0). README: "SIGINT
/// ... sent to nsapply are forwarded to CMD". CMD must get it once.
fn a_terminals_ctrl_c_reaches_a_cmd_that_left_the_foreground_group() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let probe = std::env::current_exe().map_err(|e| e.to_string())?;
    for (what, cfg, init) in [
        ("CMD as pid 1", example("default"), false),
        ("no pid namespace", no_pid, false),
        ("--init", example("default"), true),
    ] {
        let line = format!(
            "exec {} run {}{} -- setsid -w {}",
            nsapply_bin().display(),
            if init { "--init " } else { "" },
            cfg.display(),
            probe.display()
        );
        let CtrlC {
            count,
            status,
            out,
            err,
        } = ctrl_c_on_a_terminal(what, &line, |t| t.type_ctrl_c())?;
        if count.as_deref() != Some("1") {
            return Err(format!(
                "{what}: Ctrl-C on nsapply's terminal should reach CMD (which called setsid) once, \
                 it counted {count:?} (status {status:?}); output {out:?}; stderr: {err}"
            ));
        }
        expect_no_leftovers(what)?;
    }
    Ok(())
}

/// The process group (stat field 5) of `pid`, as this process's /proc
/// numbers it.
fn pgrp_of(pid: i32) -> Option<i32> {
    stat_fields(pid)?.1.get(5 - 3)?.parse().ok()
}

/// nsapply started on a terminal in a new pid namespace that still sees
/// the host's /proc (`unshare --pid --fork nsapply run ...`, as the brief
/// of the foreign-/proc cases has it): its process group's leader
/// (`unshare`) is outside that namespace, so getpgrp(2) returns 0 there,
/// and C1's `setpgid(C2, 0)` makes CMD the leader of a new group instead of
/// moving it into nsapply's. Module docs: C2 runs in "the caller's process
/// group", "a terminal's job". On 079862e CMD is in a background group of
/// its own: Ctrl-C reaches nsapply alone, which drops it (`SI_KERNEL`), and
/// CMD runs on (counts 0); a CMD that reads the terminal would be stopped
/// by SIGTTIN. CMD must be in nsapply's process group and count 1.
fn in_a_pid_namespace_without_its_group_leader_cmd_joins_the_callers_group() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let probe = std::env::current_exe().map_err(|e| e.to_string())?;
    let probe_comm: String = probe
        .file_name()
        .map(|n| n.to_string_lossy().chars().take(15).collect())
        .unwrap_or_default();
    for (what, cfg, init) in [
        ("CMD as pid 1", example("default"), false),
        ("no pid namespace", no_pid, false),
        ("--init", example("default"), true),
    ] {
        let line = format!(
            "unshare --pid --fork {} run {}{} -- {}",
            nsapply_bin().display(),
            if init { "--init " } else { "" },
            cfg.display(),
            probe.display()
        );
        let mut groups: Vec<(i32, String, Option<i32>)> = Vec::new();
        let CtrlC {
            count, status, err, ..
        } = ctrl_c_on_a_terminal(what, &line, |t| {
            // Who is in which group: nsapply's processes and CMD.
            groups = descendants(t.script)
                .into_iter()
                .map(|p| (p.pid, p.comm(), pgrp_of(p.pid)))
                .collect();
            t.type_ctrl_c()
        })?;
        let p0_group = groups.iter().find(|g| g.1 == "nsapply").and_then(|g| g.2);
        let cmd_group = groups.iter().find(|g| g.1 == probe_comm).and_then(|g| g.2);
        if p0_group.is_none() || cmd_group != p0_group || count.as_deref() != Some("1") {
            return Err(format!(
                "{what}: under `unshare --pid --fork`, CMD should be in nsapply's process group \
                 ({p0_group:?}), it is in {cmd_group:?}; Ctrl-C should reach it once, it counted \
                 {count:?} (status {status:?}); processes (pid, comm, group): {groups:?}; stderr: {err}"
            ));
        }
        expect_no_leftovers(what)?;
    }
    Ok(())
}

/// A pid namespace to join: `unshare --pid --fork --mount-proc sleep infinity`
/// (its init is `sleep`, which reaps nothing). Returns the holder (kill and
/// wait it when done) and the init's pid.
fn pid_namespace_to_join() -> Result<(Child, i32), String> {
    let mut holder = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "sleep", "infinity"])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("unshare: {e}"))?;
    let h = holder.id() as i32;
    let ours = fs::read_link("/proc/self/ns/pid").map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(i) = first_child_of(h) {
            if fs::read_link(format!("/proc/{i}/ns/pid")).is_ok_and(|l| l != ours) {
                return Ok((holder, i));
            }
        }
        if Instant::now() > deadline {
            let _ = holder.kill();
            let _ = holder.wait();
            return Err("setup: the pid namespace to join never appeared".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Ends the namespace of [`pid_namespace_to_join`] and everything in it.
fn end_pid_namespace(mut holder: Child, init: i32) {
    for p in descendants(init) {
        let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
    }
    let _ = kill(Pid::from_raw(init), Signal::SIGKILL);
    let _ = holder.kill();
    let _ = holder.wait();
    let _ = leftovers(Duration::from_secs(3));
}

/// `kill -KILL -<pgid>` (`kill -9 %1`, `timeout -s KILL`) of a run whose
/// config joins a pid namespace by path. The middle process that forks CMD
/// there (the namespace's subreaper for CMD's orphans) was moved into the
/// caller's process group with CMD, so it dies with nsapply; a daemon CMD
/// started (setsid: not in the group) is re-parented to the namespace's own
/// init, where neither the keeper nor the applying child can find it. The
/// same signal with no pid namespace is
/// `sigkill_of_nsapplys_process_group_leaves_no_daemon_behind`; README: "a
/// signal to the terminal's job (Ctrl-C, `kill -9 -<pgid>`, `timeout`)
/// reaches nsapply and CMD but never them", "Nothing outlives nsapply". On
/// 079862e the daemon survives. Nothing CMD started may survive.
fn sigkill_of_nsapplys_process_group_in_a_joined_pid_namespace_leaves_no_daemon() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let (holder, init) = pid_namespace_to_join()?;
    let cfg = scratch.write(
        "join-pid.json",
        &config(
            &format!(r#"{{"type":"pid","path":"/proc/{init}/ns/pid"}},{{"type":"uts"}}"#),
            "",
        ),
    );
    let Started {
        mut child, lines, ..
    } = match start_piped(
        run_sh(
            false,
            &cfg,
            "setsid sleep 60 >/dev/null 2>&1 & sleep 0.2; echo started; wait",
        )
        .process_group(0),
    ) {
        Ok(started) => started,
        Err(e) => {
            end_pid_namespace(holder, init);
            return Err(e);
        }
    };
    let started = wait_line(&lines, "started", Duration::from_secs(20));
    let _ = kill(Pid::from_raw(-(child.id() as i32)), Signal::SIGKILL);
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(500));
    let left: Vec<(i32, String)> = descendants(init)
        .into_iter()
        .filter(Proc::alive)
        .map(|p| (p.pid, p.comm()))
        .collect();
    end_pid_namespace(holder, init);
    started?;
    if !left.is_empty() {
        return Err(format!(
            "after SIGKILL of nsapply's process group, what CMD started is still running in the joined pid namespace: {left:?}"
        ));
    }
    expect_no_leftovers("after the run")
}

/// A config that joins a pid namespace by path: CMD runs under a middle
/// process (nsapply's, in that namespace). CMD changes its credentials
/// (which clears the parent-death signal the middle process armed in it),
/// then the middle process is killed with SIGKILL (by anyone who may: it is
/// in the caller's process group, and CMD, root in that pid namespace,
/// sees it as its parent). On 079862e the applying child reports the
/// middle process's own death as CMD's end: nsapply exits 137 at once while
/// CMD and its child run on in the joined namespace (re-parented to its
/// init), unsupervised. Module docs: "P0 exits with CMD's status"; README:
/// "Nothing outlives nsapply"; "When K or C1 is killed, the other one ends
/// the container" and nsapply reports `run-failed`. The run must be
/// `run-failed`, as when the keeper or the applying child is killed.
///
/// What the middle process had stays in the joined namespace, a limit the
/// module docs and README state: it is CMD's parent there (the only
/// process that can be a subreaper for CMD's orphans in that namespace),
/// and once it is killed on its own, CMD belongs to that namespace's init,
/// like the processes `runc exec` leaves. So this case checks that no
/// process of nsapply's is left, and that the run says it failed.
fn sigkill_of_the_middle_process_is_not_reported_as_cmds_status() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let (holder, init) = pid_namespace_to_join()?;
    let cfg = scratch.write(
        "join-pid.json",
        &config(
            &format!(r#"{{"type":"pid","path":"/proc/{init}/ns/pid"}},{{"type":"uts"}}"#),
            "",
        ),
    );
    let Started {
        mut child,
        lines,
        err,
    } = match start_piped(
        nsapply(&["run"])
            .arg(&cfg)
            .args(as_uid_1("sleep 60 >/dev/null 2>&1 & echo started; wait")),
    ) {
        Ok(started) => started,
        Err(e) => {
            end_pid_namespace(holder, init);
            return Err(e);
        }
    };
    let started = wait_line(&lines, "started", Duration::from_secs(20));
    // nsapply -> keeper -> applying child -> middle process -> CMD.
    let middle = first_child_of(child.id() as i32)
        .and_then(first_child_of)
        .and_then(first_child_of);
    let middle_comm = middle.and_then(Proc::of).map(|p| p.comm());
    if let (Ok(()), Some(m), Some("nsapply")) = (&started, middle, middle_comm.as_deref()) {
        let _ = kill(Pid::from_raw(m), Signal::SIGKILL);
    }
    let status = wait_deadline(&mut child, Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(300));
    let left: Vec<(i32, String)> = descendants(init)
        .into_iter()
        .filter(Proc::alive)
        .map(|p| (p.pid, p.comm()))
        .collect();
    end_pid_namespace(holder, init);
    let err = err.recv().unwrap_or_default();
    started.map_err(|e| format!("{e}; stderr: {err}"))?;
    if middle_comm.as_deref() != Some("nsapply") {
        return Err(format!(
            "setup: no middle process found ({middle:?}, {middle_comm:?})"
        ));
    }
    let code = status.map(status_code);
    let run_failed = code == Some(1) && error_code(&err).as_deref() == Some("run-failed");
    let mut problems = Vec::new();
    if !run_failed {
        problems.push(format!(
            "nsapply exited {code:?} (stderr {err:?}) while CMD was still running, so not with CMD's \
             status; the run should be run-failed, as when the keeper or the applying child is killed"
        ));
    }
    // CMD and its child stay in the joined namespace (see above); nothing
    // of nsapply's may.
    if left.iter().any(|(_, comm)| comm == "nsapply") {
        problems.push(format!(
            "a process of nsapply's outlived it in the joined pid namespace: {left:?}"
        ));
    }
    if problems.is_empty() {
        expect_no_leftovers("after the run")
    } else {
        Err(problems.join("\n"))
    }
}

/// The keeper is killed with SIGKILL after the plan was applied, while the
/// trace waits to be written (a `--trace` pipe that does not drain yet);
/// then the pipe drains. nsapply sees the keeper gone, yet sends "start"
/// once the trace is written, and the applying child, which looks at the
/// keeper only once it supervises a started CMD, writes the go byte, then
/// sees the keeper gone and kills CMD: `run-failed: the keeper process
/// died`. CMD (here: it appends a line to a file) gets to run first in
/// about one run in three on 079862e with the run on one CPU (one in
/// twenty on two). Module docs: "CMD runs only if the
/// run succeeds ... A run that fails has not run CMD"; a caller that
/// retries a failed run runs CMD twice. Whenever nsapply reports a failed
/// run, CMD must not have run. (A race: up to 60 runs, each a fresh one,
/// pinned to one CPU with taskset(1).)
fn a_run_whose_keeper_died_before_cmd_started_never_runs_cmd() -> Outcome {
    use std::os::unix::fs::OpenOptionsExt;
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let marker = scratch.join("ran");
    let fifo = scratch.join("trace.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| format!("mkfifo: {e}"))?;
    let configs = [
        ("CMD as pid 1", example("default")),
        ("no pid namespace", no_pid),
    ];
    let allowed = nix::sched::sched_getaffinity(Pid::from_raw(0))
        .map_err(|e| format!("sched_getaffinity: {e}"))?;
    let cpu = (0..nix::sched::CpuSet::count())
        .find(|&c| allowed.is_set(c).unwrap_or(false))
        .ok_or("setup: no CPU to run on")?;
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for attempt in 0..60 {
        let (what, cfg) = &configs[attempt % 2];
        let _ = fs::remove_file(&marker);
        // A reader that does not read yet: the pipe made small and filled.
        let mut keep = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .map_err(|e| format!("opening the FIFO: {e}"))?;
        nix::fcntl::fcntl(&keep, nix::fcntl::FcntlArg::F_SETPIPE_SZ(4096))
            .map_err(|e| format!("F_SETPIPE_SZ: {e}"))?;
        while keep.write(&[b'x'; 512]).is_ok() {}
        // All on one CPU: the go byte's wakeup lets CMD's process run
        // before the applying child looks at the keeper (the race is the
        // same on any number of CPUs, only rarer).
        let mut child = Command::new("taskset")
            .arg("-c")
            .arg(cpu.to_string())
            .arg(nsapply_bin())
            .args(["run", "--trace"])
            .arg(&fifo)
            .arg(cfg)
            .args(["--", "sh", "-c", r#"echo ran >> "$0""#])
            .stdin(Stdio::null())
            .arg(&marker)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let err = read_all_in_background(child.stderr.take());
        // nsapply -> keeper -> applying child -> CMD's process (applied).
        let p0 = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(10);
        let keeper = loop {
            let k = first_child_of(p0);
            if k.and_then(first_child_of)
                .and_then(first_child_of)
                .is_some()
            {
                break k;
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        std::thread::sleep(Duration::from_millis(30));
        if let Some(k) = keeper {
            let _ = kill(Pid::from_raw(k), Signal::SIGKILL);
            // Dead, not only sent SIGKILL: on a loaded machine a keeper
            // not yet scheduled lives on after kill(2) returned, the trace
            // could then be written and CMD started, and its death would
            // come while CMD runs: `run-failed` after CMD ran, which the
            // module docs allow ("killed under it"), not this case's race.
            let deadline = Instant::now() + Duration::from_secs(5);
            while stat_fields(k).is_some_and(|(_, rest)| {
                !matches!(rest.first().map(String::as_str), Some("Z" | "X"))
            }) && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        std::thread::sleep(Duration::from_millis(30));
        // The pipe drains: the trace is written.
        let mut buf = [0u8; 8192];
        while matches!(keep.read(&mut buf), Ok(n) if n > 0) {}
        let status = wait_deadline(&mut child, Duration::from_secs(15));
        let left = leftovers(Duration::from_secs(3));
        drop(keep);
        let err = err.recv().unwrap_or_default();
        let ran = fs::read_to_string(&marker).unwrap_or_default();
        if keeper.is_none() {
            return Err(format!(
                "{what}: setup: the run never got to its trace; stderr: {err}"
            ));
        }
        let Some(status) = status else {
            return Err(format!("{what}: nsapply did not end; stderr: {err}"));
        };
        if !left.is_empty() {
            return Err(format!("{what}: left behind: {left:?}"));
        }
        if !status.success() && !ran.is_empty() {
            return Err(format!(
                "{what}, run {attempt}: nsapply reported a failed run (exit {}: {}) but CMD ran \
                 (outcomes before: {outcomes:?})",
                status_code(status),
                err.trim_end()
            ));
        }
        *outcomes
            .entry(format!("{} {}", status_code(status), err.trim_end()))
            .or_insert(0) += 1;
    }
    Ok(())
}

/// Whether `sig` is pending for this process (sigpending(2)).
fn signal_pending(sig: Signal) -> bool {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigpending writes a whole sigset_t into the pointer, which
    // points at storage of that type owned by this frame.
    if unsafe { libc::sigpending(set.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: sigpending returned 0, so it initialized the set; sigismember
    // reads it.
    unsafe { libc::sigismember(set.as_ptr(), sig as libc::c_int) == 1 }
}

/// Takes `sig` if it is pending (and blocked), without waiting.
fn take_pending(sig: Signal) {
    let mut set = SigSet::empty();
    set.add(sig);
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: sigtimedwait reads the set and the timeout, both live locals,
    // and writes no siginfo (null).
    while unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &zero) } > 0 {}
}

static CHLDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn count_chld(_: libc::c_int) {
    // An atomic add is async-signal-safe.
    CHLDS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// `nsapply::run::run` called by a program that watches its own children
/// through SIGCHLD, the usual way: blocked and read with a signalfd or
/// sigwaitinfo (event loops), or a handler (the self-pipe trick). Its
/// SIGCHLD tells it that a child of its own ended; `run` sets SIGCHLD to
/// its default and unblocks it for the run's length, which discards a
/// pending SIGCHLD at once (POSIX: "Setting a signal action to SIG_DFL for
/// a signal that is pending, and whose default action is to ignore the
/// signal, shall cause the pending signal to be discarded") and every one
/// that comes during the run. Module docs: "a signal already pending for
/// the caller when the run starts stays the caller's", "gives the caller's
/// state back when run returns". On 079862e, all three are lost: a SIGCHLD
/// pending when `run` starts, one for a child that ends during the run
/// (SIGCHLD blocked), and the handler's call for a child that ends during
/// the run: an event loop that waits for that SIGCHLD waits for ever (the
/// child's status is still there to collect, but nothing says so). After
/// `run` returns, the caller must have a SIGCHLD for each case (pending, or
/// its handler called).
///
/// This case process is the library caller: single-threaded (no helper
/// thread is started before `run`).
fn a_library_callers_sigchld_for_its_own_children_is_not_lost() -> Outcome {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler};
    use nsapply::run::{run, Exit, RunOptions};
    let cfg = nsapply::NsConfig::from_json(r#"{"linux":{"namespaces":[{"type":"uts"}]}}"#)
        .map_err(|e| e.to_string())?;
    let plan = nsapply::plan(&cfg);
    let spawn = |secs: &str| {
        Command::new("sleep")
            .arg(secs)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting a child of the caller's: {e}"))
    };
    let mut problems = Vec::new();
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&chld), Some(&mut old)).map_err(|e| e.to_string())?;

    // 1. A child ended before the run: its SIGCHLD is pending (blocked).
    take_pending(Signal::SIGCHLD);
    let mut a = spawn("0")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !signal_pending(Signal::SIGCHLD) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if !signal_pending(Signal::SIGCHLD) {
        let _ = a.wait();
        return Err("setup: no SIGCHLD pending after the caller's child ended".into());
    }
    let result = run(&plan, &["true".into()], &RunOptions::default());
    if result != Ok(Exit::Code(0)) {
        problems.push(format!("run 1 failed: {result:?}"));
    }
    if !signal_pending(Signal::SIGCHLD) {
        problems.push(
            "the SIGCHLD pending for the caller when run started (its own child had ended) is gone after run"
                .to_owned(),
        );
    }
    let _ = a.wait();

    // 2. A child ends during the run, SIGCHLD blocked.
    take_pending(Signal::SIGCHLD);
    let mut b = spawn("0.3")?;
    let result = run(&plan, &["sleep".into(), "1".into()], &RunOptions::default());
    if result != Ok(Exit::Code(0)) {
        problems.push(format!("run 2 failed: {result:?}"));
    }
    if !signal_pending(Signal::SIGCHLD) {
        problems.push(
            "the caller's child ended during run (SIGCHLD blocked, read with sigwaitinfo or a signalfd): \
             no SIGCHLD is pending for it after run"
                .to_owned(),
        );
    }
    let _ = b.wait();
    take_pending(Signal::SIGCHLD);
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None).map_err(|e| e.to_string())?;

    // 3. A child ends during the run; the caller has a SIGCHLD handler.
    let act = SigAction::new(
        SigHandler::Handler(count_chld),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only adds to an atomic, which is
    // async-signal-safe.
    let previous = unsafe { sigaction(Signal::SIGCHLD, &act) }.map_err(|e| e.to_string())?;
    // Control: without a run, the handler is called for a child's end.
    let mut control = spawn("0")?;
    let _ = control.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    while CHLDS.load(std::sync::atomic::Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if CHLDS.swap(0, std::sync::atomic::Ordering::SeqCst) == 0 {
        problems
            .push("setup: the handler was not called for a child that ended outside run".into());
    }
    let mut c = spawn("0.3")?;
    let result = run(&plan, &["sleep".into(), "1".into()], &RunOptions::default());
    // Anything pending is delivered on the way back from a system call.
    std::thread::sleep(Duration::from_millis(50));
    let calls = CHLDS.load(std::sync::atomic::Ordering::SeqCst);
    // SAFETY: `previous` is the action the kernel returned for SIGCHLD.
    let _ = unsafe { sigaction(Signal::SIGCHLD, &previous) };
    let c_status = c.try_wait();
    let _ = c.wait();
    if result != Ok(Exit::Code(0)) {
        problems.push(format!("run 3 failed: {result:?}"));
    }
    if !matches!(c_status, Ok(Some(_))) {
        problems.push(format!(
            "setup: the child did not end during run 3: {c_status:?}"
        ));
    }
    if calls == 0 {
        problems.push(
            "the caller's child ended during run; the caller's SIGCHLD handler was never called, \
             during or after run"
                .to_owned(),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// A library caller with SIGPIPE at its default action (as every C program
/// and a Rust one built with `-Zon-broken-pipe=kill` starts): calls
/// `nsapply::run::run` with the trace file given as first argument and a
/// CMD that appends to the file given as second; prints `returned <result>`.
fn probe_library_sigpipe() -> i32 {
    use nsapply::run::{run, RunOptions};
    let args: Vec<String> = std::env::args().collect();
    let (Some(trace), Some(marker)) = (args.get(1), args.get(2)) else {
        eprintln!("library-sigpipe: usage: TRACE MARKER");
        return 2;
    };
    let dfl = nix::sys::signal::SigHandler::SigDfl;
    // SAFETY: SIG_DFL installs no handler.
    let set = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, dfl) };
    if let Err(e) = set {
        eprintln!("signal: {e}");
        return 1;
    }
    let cfg = match nsapply::NsConfig::from_json(r#"{"linux":{"namespaces":[{"type":"uts"}]}}"#) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let options = RunOptions {
        trace: Some(PathBuf::from(trace)),
        ..RunOptions::default()
    };
    let result = run(
        &nsapply::plan(&cfg),
        &[
            "sh".into(),
            "-c".into(),
            r#"echo ran >> "$0""#.into(),
            marker.into(),
        ],
        &options,
    );
    println!("returned {result:?}");
    0
}

/// A library caller (SIGPIPE at its default action, as in any C program)
/// asks for the trace in a pipe whose reader goes away before the trace is
/// written (a FIFO, full, whose reader exits: `--trace` into a log reader
/// that crashed). P0 is the caller's own process, and it writes the trace
/// with write(2) on a pipe without readers: EPIPE, and SIGPIPE, whose
/// default action kills the caller. The channel to the child avoids exactly
/// this (`MSG_NOSIGNAL`: "a peer that died is an EPIPE, never a SIGPIPE in
/// the caller"), and `run` documents the trace write's failure as its own
/// error (`RunError::Supervision`, "the trace file written after the
/// apply"). On 079862e the caller is killed by SIGPIPE. `run` must return
/// its error (CMD not run), and the caller live on.
fn a_library_caller_with_the_default_sigpipe_survives_a_trace_pipe_that_closes() -> Outcome {
    use std::os::unix::fs::OpenOptionsExt;
    become_subreaper()?;
    let scratch = Scratch::new();
    let marker = scratch.join("ran");
    let fifo = scratch.join("trace.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| format!("mkfifo: {e}"))?;
    // The reader: holds the FIFO, full, then goes away.
    let mut reader = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .map_err(|e| format!("opening the FIFO: {e}"))?;
    nix::fcntl::fcntl(&reader, nix::fcntl::FcntlArg::F_SETPIPE_SZ(4096))
        .map_err(|e| format!("F_SETPIPE_SZ: {e}"))?;
    while reader.write(&[b'x'; 512]).is_ok() {}
    let mut caller = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .env(PROBE_ENV, "library-sigpipe")
        .arg(&fifo)
        .arg(&marker)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = read_all_in_background(caller.stdout.take());
    let err = read_all_in_background(caller.stderr.take());
    // The run has begun (the trace file is open) once the keeper exists;
    // then the apply, then the trace waits for the pipe.
    let deadline = Instant::now() + Duration::from_secs(10);
    while first_child_of(caller.id() as i32).is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(200));
    drop(reader);
    let status = wait_deadline(&mut caller, Duration::from_secs(15));
    let left = leftovers(Duration::from_secs(3));
    let (out, err) = (
        out.recv().unwrap_or_default(),
        err.recv().unwrap_or_default(),
    );
    let ran = fs::read_to_string(&marker).unwrap_or_default();
    let mut problems = Vec::new();
    match status {
        Some(s) if s.code() == Some(0) => {}
        Some(s) => problems.push(format!(
            "the library caller died: {s} (signal {:?}; 13 is SIGPIPE); stdout {out:?}, stderr {err:?}",
            s.signal()
        )),
        None => problems.push(format!(
            "the library caller did not return within 15 s; stdout {out:?}, stderr {err:?}"
        )),
    }
    if status.is_some_and(|s| s.code() == Some(0)) && !out.contains("EPIPE") {
        problems.push(format!(
            "run should return the EPIPE of the trace write: {out}"
        ));
    }
    if !ran.is_empty() {
        problems.push("CMD ran although the trace was never written".to_owned());
    }
    if !left.is_empty() {
        problems.push(format!("left behind: {left:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// `--trace` names a pipe that does not drain (a FIFO whose reader stalls;
/// `--trace /dev/stdout | slow`), and the user, seeing nsapply wait, types
/// Ctrl-C on its terminal. The kernel sends SIGINT (`SI_KERNEL`) to the
/// foreground group: nsapply, and CMD's process, which waits for "go" with
/// every signal blocked. nsapply skips it ("the terminal sent it to ...
/// CMD"), but CMD has not started and holds it blocked: on 079862e nothing
/// happens, and the run waits for the pipe for ever (here: until the case
/// gives up after 5 s). README: "A forwarded signal that arrives while the
/// trace waits to be written ends the run before CMD starts (`run-failed`,
/// CMD never ran)"; the same SIGINT sent with kill(1) does. Ctrl-C must end
/// the run, and CMD must not run.
fn a_terminals_ctrl_c_ends_a_run_whose_trace_waits() -> Outcome {
    use std::os::unix::fs::OpenOptionsExt;
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let fifo = scratch.join("trace.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| format!("mkfifo: {e}"))?;
    for (what, cfg) in [
        ("CMD as pid 1", example("default")),
        ("no pid namespace", no_pid),
    ] {
        // A reader that never reads: the pipe made small and filled.
        let mut keep = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .map_err(|e| format!("opening the FIFO: {e}"))?;
        nix::fcntl::fcntl(&keep, nix::fcntl::FcntlArg::F_SETPIPE_SZ(4096))
            .map_err(|e| format!("F_SETPIPE_SZ: {e}"))?;
        while keep.write(&[b'x'; 512]).is_ok() {}
        let line = format!(
            "exec {} run --trace {} {} -- sh -c 'echo CMD-started'",
            nsapply_bin().display(),
            fifo.display(),
            cfg.display(),
        );
        let mut child = Command::new("script")
            .args(["-qfec", &line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("script: {e}"))?;
        let out = read_all_in_background(child.stdout.take());
        // The plan is applied and the trace waits once CMD's process
        // exists: script -> nsapply -> keeper -> applying child -> it.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut waiting = false;
        while !waiting && Instant::now() < deadline {
            waiting = first_child_of(child.id() as i32)
                .and_then(first_child_of)
                .and_then(first_child_of)
                .and_then(first_child_of)
                .is_some();
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut stdin = child.stdin.take().expect("stdin");
        // ^C, typed on the terminal.
        let _ = stdin.write_all(b"\x03");
        let _ = stdin.flush();
        let status = wait_deadline(&mut child, Duration::from_secs(5));
        drop(stdin);
        // Whatever is left ends now: the pipe's reader goes away.
        drop(keep);
        let left = leftovers(Duration::from_secs(5));
        let out = out.recv().unwrap_or_default();
        if !waiting {
            return Err(format!(
                "{what}: setup: the run never got to its trace: {out:?}"
            ));
        }
        if status.is_none() {
            return Err(format!(
                "{what}: Ctrl-C typed while the trace waited for its pipe did not end the run within 5 s \
                 (killed then; output {out:?}; left {left:?})"
            ));
        }
        if out.contains("CMD-started") || !out.contains("nsapply: run-failed") {
            return Err(format!(
                "{what}: after Ctrl-C the run should be run-failed and CMD not run; output {out:?}"
            ));
        }
        if !left.is_empty() {
            return Err(format!("{what}: left behind: {left:?}"));
        }
    }
    Ok(())
}

/// CMD's process exists from the end of the apply, and waits for "go"
/// until the trace is written; here the trace waits for a pipe that drains
/// later (a slow reader), and that process is killed with SIGKILL
/// meanwhile (the OOM killer, `kill -9` of the wrong pid): CMD never runs.
/// The applying child does not watch it while it waits for "start"; once
/// the trace is written it lets it "go", finds it dead, and reports its
/// death as CMD's end: on 079862e nsapply exits 137 without a word, "CMD
/// was killed by SIGKILL", for a CMD that never ran (here it would have
/// written a file). README: "a run whose CMD ran reports CMD's status";
/// "Failures below P0 ... reach P0 as typed messages, so CMD's own exit
/// status ... is never mistaken"; a SIGKILL of any other process of the run
/// is `run-failed`. The run must be `run-failed` (exit 1, one error line).
fn sigkill_of_cmds_process_before_it_started_is_not_cmds_status() -> Outcome {
    use std::os::unix::fs::OpenOptionsExt;
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let marker = scratch.join("ran");
    let fifo = scratch.join("trace.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| format!("mkfifo: {e}"))?;
    for (what, cfg) in [
        ("CMD as pid 1", example("default")),
        ("no pid namespace", no_pid),
    ] {
        let _ = fs::remove_file(&marker);
        // The slow reader: holds the pipe, full, reads it later.
        let mut keep = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .map_err(|e| format!("opening the FIFO: {e}"))?;
        nix::fcntl::fcntl(&keep, nix::fcntl::FcntlArg::F_SETPIPE_SZ(4096))
            .map_err(|e| format!("F_SETPIPE_SZ: {e}"))?;
        while keep.write(&[b'x'; 512]).is_ok() {}
        let mut child = nsapply(&["run", "--trace"])
            .arg(&fifo)
            .arg(&cfg)
            .args(["--", "sh", "-c", r#"echo ran >> "$0""#])
            .arg(&marker)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let err = read_all_in_background(child.stderr.take());
        // nsapply -> keeper -> applying child -> CMD's process.
        let p0 = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(10);
        let cmd_process = loop {
            let c2 = first_child_of(p0)
                .and_then(first_child_of)
                .and_then(first_child_of);
            if c2.is_some() || Instant::now() > deadline {
                break c2;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        std::thread::sleep(Duration::from_millis(100));
        if let Some(c2) = cmd_process {
            let _ = kill(Pid::from_raw(c2), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(100));
        // The reader drains the pipe: the trace is written.
        let mut buf = [0u8; 8192];
        let drain_until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < drain_until {
            if !matches!(keep.read(&mut buf), Ok(n) if n > 0) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let status = wait_deadline(&mut child, Duration::from_secs(10));
        drop(keep);
        let left = leftovers(Duration::from_secs(3));
        let err = err.recv().unwrap_or_default();
        let ran = fs::read_to_string(&marker).unwrap_or_default();
        if cmd_process.is_none() {
            return Err(format!(
                "{what}: setup: CMD's process never appeared; stderr: {err}"
            ));
        }
        let Some(status) = status else {
            return Err(format!("{what}: nsapply did not end; stderr: {err}"));
        };
        if !ran.is_empty() {
            return Err(format!(
                "{what}: setup: CMD ran although its process was killed"
            ));
        }
        let r = (status, String::new(), err);
        expect_error(what, &r, 1, "run-failed").map_err(|e| {
            format!("{e}\n(CMD never ran: its process was killed with SIGKILL before \"go\")")
        })?;
        // The message says how that process ended.
        if !r.2.contains("(killed by signal 9)") {
            return Err(format!(
                "{what}: the message does not say the process was killed by signal 9: {}",
                r.2
            ));
        }
        if !left.is_empty() {
            return Err(format!("{what}: left behind: {left:?}"));
        }
    }
    Ok(())
}

/// `nsapply::run::run` called by a program that ignores SIGCHLD (SIG_IGN:
/// "the kernel reaps my children", the usual way for a daemon that never
/// waits for them) while a child of its own ends during the run. `run` sets
/// SIGCHLD to its default for the run's length (so its own children are not
/// reaped behind its back) and sets SIG_IGN back when it returns, but
/// setting SIG_IGN does not reap a zombie that is already there
/// (sigaction(2), wait(2)): the caller's child stays a zombie for ever, as
/// the caller will never wait for it. Module docs: "gives the caller's
/// state back when run returns". On 079862e the zombie stays. After `run`,
/// the caller must have no zombie it would not have had without `run`.
///
/// This case process is the library caller: single-threaded (no helper
/// thread is started before `run`).
fn a_library_caller_that_ignores_sigchld_is_left_no_zombie() -> Outcome {
    use nsapply::run::{run, Exit, RunOptions};
    let cfg = nsapply::NsConfig::from_json(r#"{"linux":{"namespaces":[{"type":"uts"}]}}"#)
        .map_err(|e| e.to_string())?;
    let plan = nsapply::plan(&cfg);
    nsapply::syscall::process::ignore_signal(Signal::SIGCHLD).map_err(|e| e.to_string())?;
    // Control: outside a run, a child that ends leaves no zombie.
    let control = Command::new("true")
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let control = control.id() as i32;
    std::thread::sleep(Duration::from_millis(300));
    if Proc::of(control).is_some() {
        return Err(format!(
            "setup: with SIGCHLD ignored, child {control} was not reaped"
        ));
    }
    let child = Command::new("sleep")
        .arg("0.3")
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id() as i32;
    let result = run(&plan, &["sleep".into(), "1".into()], &RunOptions::default());
    std::thread::sleep(Duration::from_millis(300));
    let state = stat_fields(pid).and_then(|(_, rest)| rest.first().cloned());
    // Reaped here, whatever happened (this process is about to exit).
    let _ = nix::sys::wait::waitpid(
        Pid::from_raw(pid),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    );
    if result != Ok(Exit::Code(0)) {
        return Err(format!("the run failed: {result:?}"));
    }
    if state.is_some() {
        return Err(format!(
            "the caller ignores SIGCHLD; its child {pid}, which ended during run, is still there \
             (state {state:?}) after run gave SIG_IGN back: a zombie nobody will reap"
        ));
    }
    Ok(())
}

/// nsapply started with RLIMIT_FSIZE below the size of the trace document
/// (`ulimit -f`, a batch system's file size limit): writing the trace past
/// the limit fails with EFBIG and raises SIGXFSZ, whose default action
/// kills the process. On 079862e nsapply dies by SIGXFSZ (exit 153), with
/// no error line and a trace file cut at the limit; a library caller of
/// `run` would die the same way. README: "Every error is exactly one line
/// on stderr", exit 1 for a failed run; a trace that cannot be written is
/// `run-failed: writing the trace file ...` (as on a full disk or
/// `/dev/full`). The run must fail so, and CMD must not run.
fn a_file_size_limit_below_the_trace_is_an_error_line_not_a_signal() -> Outcome {
    become_subreaper()?;
    let scratch = Scratch::new();
    let no_pid = no_pid_namespace(&scratch);
    let trace = scratch.join("trace.json");
    let marker = scratch.join("ran");
    let r = run_bounded(
        Command::new("prlimit")
            .arg("--fsize=100")
            .arg(nsapply_bin())
            .args(["run", "--trace"])
            .arg(&trace)
            .arg(&no_pid)
            .args(["--", "sh", "-c", r#"echo ran >> "$0""#])
            .arg(&marker)
            .stdin(Stdio::null()),
        Duration::from_secs(20),
    )?;
    let ran = fs::read_to_string(&marker).unwrap_or_default();
    let size = fs::metadata(&trace).map(|m| m.len()).ok();
    expect_error("RLIMIT_FSIZE 100 bytes", &r, 1, "run-failed").map_err(|e| {
        format!(
            "{e}\n(killed by signal {:?}; 25 is SIGXFSZ; the trace file has {size:?} bytes)",
            r.0.signal()
        )
    })?;
    if !ran.is_empty() {
        return Err("CMD ran although the trace was not written".into());
    }
    expect_no_leftovers("after the run")
}

// ---------------------------------------------------------------------------
// 9. exec: the target's number taken by another process.

/// `nsapply exec PID` finds its target through a pidfd, then applies the
/// plan in a forked child. If the target exits in between and another
/// process is given its number, a join by number (a new `pidfd_open(PID)`,
/// or `/proc/PID/ns/*` for the per-namespace joins) would join that other
/// process's namespaces. Forced here with ns_last_pid, in a pid namespace
/// of the case's own: the target (`sleep`) is resolved, ended and reaped,
/// and a decoy with a uts namespace of its own (hostname `decoy`) takes its
/// number; then the run (`run_exec`, what `nsapply exec` calls, with the
/// target's pidfd held since the resolve), through a pidfd and per
/// namespace. Each must refuse with `target-exited`, CMD never run in the
/// decoy's namespace. (With `run`, which joins by number, both joined the
/// decoy's.) And a per-namespace plan whose paths name a live decoy joins
/// the held target: what a `/proc` remounted in between would show under
/// the number does not count.
fn exec_never_joins_a_process_that_took_its_targets_number() -> Outcome {
    become_subreaper()?;
    let probe = std::env::current_exe().map_err(|e| e.to_string())?;
    let (status, out, err) = run_bounded(
        Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child"])
            .arg(probe)
            .env(PROBE_ENV, "exec-reuse")
            .stdin(Stdio::null()),
        Duration::from_secs(30),
    )?;
    if !status.success() {
        return Err(format!("the probe failed ({status}): {err}\n{out}"));
    }
    expect_no_leftovers("after the probe")?;
    for how in ["pidfd", "per-namespace"] {
        let want = format!("{how}: target-exited");
        if !out.lines().any(|l| l == want) {
            return Err(format!(
                "{how}: expected {want:?}; the probe said:\n{out}{err}"
            ));
        }
    }
    let joined: Vec<&str> = out.lines().filter(|l| l.starts_with("joined ")).collect();
    if joined != ["joined target"] || !out.lines().any(|l| l == "path-number: ran, Code(0)") {
        return Err(format!(
            "path-number: expected the held target joined, not the process the paths name; the probe said:\n{out}{err}"
        ));
    }
    Ok(())
}

/// The probe of [`exec_never_joins_a_process_that_took_its_targets_number`]:
/// pid 1 of a new pid namespace, with a /proc of its own.
fn probe_exec_reuse() -> i32 {
    match exec_reuse() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("exec-reuse: {e}");
            1
        }
    }
}

fn exec_reuse() -> Outcome {
    use nsapply::exec::{open_target, resolve_pidfd, ExecTarget};
    use nsapply::kind::{Kind, KindSet};
    use nsapply::run::{run_exec, RunOptions};
    private_mount_namespace()?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("mounting /proc: {e}"))?;
    let our_uts = fs::read_link("/proc/self/ns/uts").map_err(|e| e.to_string())?;
    let hostname = || -> Vec<std::ffi::OsString> {
        vec![
            "sh".into(),
            "-c".into(),
            r#"echo "joined $(hostname)""#.into(),
        ]
    };
    for how in ["pidfd", "per-namespace"] {
        let mut target = Command::new("sleep")
            .arg("60")
            .spawn()
            .map_err(|e| format!("{how}: the target: {e}"))?;
        let pid = target.id() as i32;
        let pidfd = open_target(pid).map_err(|e| format!("{how}: pidfd_open: {e}"))?;
        let mut exec = resolve_pidfd(&pidfd, Some(KindSet::one(Kind::Uts)))
            .map_err(|e| format!("{how}: resolve: {e}"))?;
        if how == "per-namespace" {
            exec = exec.per_namespace();
        }
        let plan = exec.plan().map_err(|e| format!("{how}: plan: {e}"))?;
        let _ = target.kill();
        let _ = target.wait();
        fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
            .map_err(|e| format!("{how}: ns_last_pid: {e}"))?;
        let mut decoy = in_a_uts_namespace("decoy")?;
        let took = decoy.id() as i32 == pid
            && fs::read_link(format!("/proc/{pid}/ns/uts")).is_ok_and(|l| l != our_uts);
        let result = took.then(|| run_exec(&plan, &pidfd, &hostname(), &RunOptions::default()));
        let _ = decoy.kill();
        let _ = decoy.wait();
        match result {
            Some(Err(e)) => println!("{how}: {}", e.code().as_str()),
            Some(Ok(exit)) => println!("{how}: ran, {exit:?}"),
            None => {
                return Err(format!(
                    "{how}: the decoy did not take pid {pid} in a uts namespace of its own"
                ))
            }
        }
    }
    // The per-namespace joins open the held target's files whatever number
    // their paths give (as a /proc remounted between the resolve and the
    // run could show another process under the target's number): a plan
    // whose paths name a live decoy joins the target all the same.
    let target = in_a_uts_namespace("target")?;
    let decoy = in_a_uts_namespace("decoy")?;
    let r = open_target(target.id() as i32)
        .map_err(|e| format!("path-number: pidfd_open: {e}"))
        .and_then(|pidfd| {
            let plan = ExecTarget {
                pid: pidfd.pid(),
                proc_pid: decoy.id() as i32,
                kinds: KindSet::one(Kind::Uts),
                pidfd: false,
            }
            .plan()
            .map_err(|e| format!("path-number: plan: {e}"))?;
            Ok(run_exec(&plan, &pidfd, &hostname(), &RunOptions::default()))
        });
    for mut c in [target, decoy] {
        let _ = c.kill();
        let _ = c.wait();
    }
    match r? {
        Err(e) => println!("path-number: {}", e.code().as_str()),
        Ok(exit) => println!("path-number: ran, {exit:?}"),
    }
    Ok(())
}

/// `sleep 60` in a uts namespace of its own whose hostname is `name`, once
/// it runs (exec'd: the hostname is set). No reader thread: `run` refuses
/// a multithreaded caller.
fn in_a_uts_namespace(name: &str) -> Result<Child, String> {
    let mut child = Command::new("unshare")
        .args(["--uts", "sh", "-c"])
        .arg(format!("hostname {name} && exec sleep 60"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("{name}: {e}"))?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.starts_with(b"sleep\0") {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{name}: pid {pid} never became its sleep"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
