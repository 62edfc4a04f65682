//! Run a command in the namespaces of a plan, on the real kernel: what
//! `nsapply run` does, as a library function other runtimes can call.
//!
//! # Process layout
//!
//! ```text
//! P0: run()           K: keeper             C1: applies the plan          C2: the command's process
//! (the caller)        (host namespaces,     (host pid and time            (every namespace of the plan)
//!                     a process group       namespaces, the caller's
//!                     of its own)           process group, as C2)
//! ───────────────     ──────────────────    ───────────────────────────   ─────────────────────────────
//! fork ────────────▶  subreaper
//!                     fork ──────────────▶  dies with K until it forks
//!                     leaves the group
//!   ◀── C1's pidfd ─  (SCM_RIGHTS)          apply(plan) ...unshare(user)
//!   ◀── sync id-mapping ──────────────────  waits
//! write C1's maps (pidfd, checked procfs)
//!   ─── ack ─────────────────────────────▶  not dumpable; ... fork ────▶ waits for "go"
//!   ◀── applied (the trace) ─────────────
//! write the trace file
//!   ─── start ───────────────────────────▶  go ─────────────────────────▶ "exec" report; exec CMD
//! signals ── signal n ───────────────────▶  pidfd_send_signal(C2, n)      (with --init, or in a joined
//!   ◀── exited ──────────────────────────   reaps C2, ends what CMD       pid namespace: a middle
//!                                           left, reports                 process forks CMD, leaves
//! reaps K ◀───────── ends what C1 left                                    the group, forwards, reaps,
//! returns CMD's status                                                    reports CMD's end)
//! ```
//!
//! # What it guarantees (DESIGN §8)
//!
//! * **Id maps go to C1 only**: P0 gets a pidfd of C1 from K, C1's
//!   parent, which opened it while C1 was its unreaped child (so the pid
//!   named C1), and writes through the procfs it checked before the first
//!   fork, in the directory of the pid that procfs gives the pidfd
//!   ([`crate::sync::write_id_maps`]). A `/proc` of another pid namespace
//!   shows C1 under another number, which is the one used; one that does
//!   not show C1, or is not procfs, is refused (`sync-failed`). When the
//!   caller is not root and each map is the one line of its own id (the
//!   only maps it may write), C1 writes the same files itself, the same
//!   way (a pidfd of itself, the same procfs), and no `id-mapping`
//!   message is sent ([`crate::sync::writes_its_own_id_maps`]): P0 then
//!   writes into no process at all, unless C1's write of `setgroups` or
//!   `uid_map` is refused by permission (a security module confining the
//!   namespace's creator, as Ubuntu's AppArmor does): then C1 asks P0 as
//!   above ([`crate::sync::ChildSync::id_maps_here`]).
//! * **Nothing outlives the run, and the caller's processes are left
//!   alone**: K and C1 are child subreapers at the caller's pid level, so
//!   whatever CMD leaves behind without a pid namespace comes to C1, or to
//!   K if C1 is gone; P0 never becomes one, so processes of the caller's
//!   own that lose their parent during the run go where they would have
//!   gone. K and C1 block every signal but SIGKILL, and K leaves the
//!   caller's process group (after it forked C1, which stays in it with
//!   the command: no pid namespace needs to show that group's leader), so
//!   a signal for the whole group (`kill -9 -<pgid>`, `timeout -s KILL`)
//!   leaves K to end what is left. When P0 dies (even by SIGKILL), C1 ends
//!   CMD and everything it left, K ends whatever is left after C1, so one
//!   SIGKILL of any one of P0, K and C1 leaves nothing behind. With a new
//!   pid namespace, CMD (or init) is its pid 1, and its death ends the
//!   namespace. In a joined pid namespace a middle process, a subreaper in
//!   that namespace, forks CMD (orphans there go to the nearest subreaper
//!   of their own pid namespace, never to K or C1) and then leaves the
//!   caller's process group, so a signal for the whole group leaves it to
//!   end what CMD started. C1 and the middle process find what is left
//!   through the procfs P0 checked before the first fork (an fd: a mount
//!   over `/proc` in the container hides nothing), numbered for their own
//!   pid namespace (the `NSpid` lines,
//!   [`crate::syscall::procfs::ProcRoot::children`]). What it cannot do: a
//!   process in D state, or a zombie traced by a process outside the run,
//!   is left after 5 s without progress; and the middle process killed on
//!   its own leaves CMD to the joined namespace's init (it is CMD's only
//!   ancestor there), as `runc exec` leaves its processes; the run reports
//!   `run-failed`.
//! * **Signals**: SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and
//!   SIGWINCH sent to P0 are forwarded to CMD (through C1, which holds a
//!   pidfd of C2, or writes them to a middle process, which sends them on);
//!   one that arrives before CMD started is kept and sent when it does
//!   (with `--init` too: init blocks them from its first instruction). P0
//!   exits with CMD's status. A terminal's signal (`SI_KERNEL`: Ctrl-C,
//!   Ctrl-\, a resize) went to the terminal's foreground process group: it
//!   is forwarded only when CMD is not in that group (it left it), so CMD
//!   gets it once either way; a hangup, which the terminal sends to the
//!   session leader alone, is forwarded. A signal another process sends to
//!   the whole group reaches CMD directly and once more through P0. A pid
//!   1 without a handler for a signal does not get it (pid_namespaces(7)):
//!   use `--init`.
//! * **The caller's signal state**: an ignored SIGCHLD gets its default
//!   action for the run (an ignored SIGCHLD makes the kernel reap the
//!   run's processes at once, freeing their pids for reuse), and back after
//!   it, when the children of the caller's own that ended meanwhile are
//!   reaped as the kernel would have; a SIGCHLD handler or the default stay,
//!   and SIGCHLD's place in the mask too, so the caller hears of its own
//!   children as ever (blocked only across the first fork). SIGPIPE and
//!   SIGXFSZ are blocked during the run, so a trace file that fails
//!   (a pipe without a reader, RLIMIT_FSIZE) is an error, never the
//!   caller's death; the ones the run raised are taken back. A signal
//!   already pending for the caller when the run starts stays the caller's
//!   unless [`RunOptions::forward_pending_signals`]. CMD starts with every
//!   signal at its default action and none blocked.
//! * **Not dumpable**: P0, K and C1, which stay in the host's pid and time
//!   namespaces, are not dumpable while the container runs (C1 from the
//!   moment its maps are written, which needs it dumpable when P0 is not
//!   root), so a container of the same uid cannot open their
//!   `/proc/<pid>/mem` through the host's `/proc`.
//! * **CMD runs only if the run succeeds**: the trace file is written by P0
//!   (non-blocking, so a pipe that does not drain holds up nothing but
//!   CMD's start) before CMD may exec, and C1 lets it go only while the
//!   keeper lives. A run that fails before CMD started has not run it; a
//!   run whose CMD ran reports CMD's status, or `run-failed` when nsapply's
//!   own processes were killed under it. The command's process says it is
//!   about to exec: killed before, its end is `run-failed`, not a status of
//!   CMD's. A forwarded signal that arrives while the trace waits to be
//!   written ends the run before CMD starts (`run-failed`).
//! * **Mount propagation** is a step of the plan (right after
//!   `unshare(mount)`, DESIGN §4), not done here.
//! * **An exec joins its target and no other process** ([`run_exec`]):
//!   the target's pidfd, taken when it was resolved, is held to the
//!   joins; C1 joins through a copy of it, and opens the per-namespace
//!   files in the directory the checked procfs shows for it. A target
//!   that exits meanwhile is `target-exited`, whatever process its number
//!   went to.
//! * Failures below P0 (an apply error, a fork or exec that fails) reach
//!   P0 as typed messages, so CMD's own exit status 1 is never mistaken for
//!   a failed apply. When the trace file was created, it holds a trace
//!   document whatever failed: the steps taken and the error.
//!
//! The caller must be single-threaded (it forks, and C1 must be for
//! `unshare(CLONE_NEWUSER)` and setns(user|mount|time)). While [`run`]
//! runs it changes the caller's process: SIGCHLD's action, the signal
//! mask and dumpable; each is given back.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::sys::signal::{SigSet, Signal};

use crate::error::{Errno, ErrorCode};
use crate::kind::Kind;
use crate::plan::{Plan, Step};
use crate::sync::Failure;
use crate::syscall::process::Pidfd;
use crate::syscall::ThreadCountError;
use crate::trace::{Trace, TraceError};

mod applier;
mod caller;
mod command;
mod keeper;
mod reap;

pub use crate::syscall::process::Exit;

/// The signals P0 forwards to the command.
pub const FORWARDED_SIGNALS: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

fn forwarded_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED_SIGNALS {
        set.add(s);
    }
    set
}

/// Options of [`run`] beyond the plan and the command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Where to write the trace document (DESIGN §6) of the run, success
    /// or failure. Opened (created, truncated; `O_NONBLOCK`, so a FIFO
    /// without a reader is refused with ENXIO instead of waiting for one)
    /// by the caller's process, in the caller's mount namespace, before
    /// anything is applied; written before the command starts.
    pub trace: Option<PathBuf>,
    /// Run a minimal init as pid 1 of the new pid namespace, with the
    /// command as its child: it reaps orphans and forwards the signals it
    /// gets to the command (as `docker run --init`). The plan must create a
    /// pid namespace.
    pub init: bool,
    /// Forward the forwarded signals that are already pending for the
    /// caller (blocked) when the run starts, as if they came during the run:
    /// what `nsapply run` does, whose signals belong to the command from
    /// its first instruction. A library caller's pending signals are its
    /// own (false): they stay pending when [`run`] returns.
    pub forward_pending_signals: bool,
}

/// Why [`run`] failed. Each variant has a stable [`RunError::code`]; an
/// apply failure keeps the engine's code (DESIGN §6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The command is empty, an argument holds a NUL byte, or an option
    /// does not fit the plan.
    #[error("{reason}")]
    InvalidCommand {
        /// What is wrong with it.
        reason: String,
    },
    /// The trace file could not be created.
    #[error("trace file {path:?} cannot be written: {errno}")]
    TraceFile {
        /// The path given.
        path: PathBuf,
        /// The errno.
        errno: Errno,
    },
    /// The plan failed in the child; the trace error says which step.
    #[error("{}", .0.message)]
    Apply(TraceError),
    /// execvp(3) of the command failed.
    #[error("executing {program:?} failed: {}", errno.map_or_else(|| message.clone(), |e| e.to_string()))]
    Exec {
        /// The program as given.
        program: String,
        /// The errno.
        errno: Option<Errno>,
        /// The error as the standard library put it.
        message: String,
    },
    /// The caller's thread count could not be read (it must be one to
    /// fork).
    #[error("run must fork from a single-threaded process, but the thread count could not be read: {source}")]
    ThreadCount {
        /// Why.
        #[source]
        source: ThreadCountError,
    },
    /// The caller has more than one thread.
    #[error("run must fork from a single-threaded process, but the caller has {threads} threads")]
    Multithreaded {
        /// The thread count.
        threads: usize,
    },
    /// fork(2) of the keeper or of the child that applies the plan failed.
    #[error("fork of the child that applies the plan failed: {errno}")]
    Fork {
        /// The errno.
        errno: Errno,
    },
    /// A step of the supervision failed: a pipe, a socket, a signal setup,
    /// a wait, the trace file written after the apply, or a process of the
    /// run that ended before its time.
    #[error("{what}{}", errno.map(|e| format!(": {e}")).unwrap_or_default())]
    Supervision {
        /// What was being done, or what happened.
        what: String,
        /// The errno, when a call failed.
        errno: Option<Errno>,
    },
    /// A forwarded signal arrived while the trace file waited to be
    /// written: the run ended before the command started.
    #[error("signal {signal} arrived before the command started (the trace file was still being written); the command did not run")]
    Interrupted {
        /// The signal number.
        signal: i32,
    },
    /// The processes of the run ended without saying how the command
    /// ended (they were killed).
    #[error("the processes supervising the command ended without reporting how it ended")]
    Unreported,
}

impl RunError {
    /// The stable code printed as `nsapply: <code>: <message>`.
    ///
    /// `invalid-command`, `unwritable-file`, `exec-failed`,
    /// `thread-count-failed`, `multithreaded`, `fork-failed`, `run-failed`,
    /// or the engine's code for [`RunError::Apply`].
    pub fn code(&self) -> ErrorCode {
        match self {
            RunError::InvalidCommand { .. } => ErrorCode::InvalidCommand,
            RunError::TraceFile { .. } => ErrorCode::UnwritableFile,
            RunError::Apply(e) => e.code,
            RunError::Exec { .. } => ErrorCode::ExecFailed,
            RunError::ThreadCount { .. } => ErrorCode::ThreadCountFailed,
            RunError::Multithreaded { .. } => ErrorCode::Multithreaded,
            RunError::Fork { .. } => ErrorCode::ForkFailed,
            RunError::Supervision { .. } | RunError::Interrupted { .. } | RunError::Unreported => {
                ErrorCode::RunFailed
            }
        }
    }

    /// The errno of the call that failed, when one did.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            RunError::TraceFile { errno, .. } | RunError::Fork { errno } => Some(*errno),
            RunError::Apply(e) => e.errno,
            RunError::Exec { errno, .. } | RunError::Supervision { errno, .. } => *errno,
            RunError::ThreadCount { source } => source.errno,
            RunError::InvalidCommand { .. }
            | RunError::Multithreaded { .. }
            | RunError::Interrupted { .. }
            | RunError::Unreported => None,
        }
    }

    /// Whether the error is bad input, found before anything was applied
    /// (the CLI exits 2), rather than a failed run (exit 1).
    pub fn is_input_error(&self) -> bool {
        match self {
            RunError::InvalidCommand { .. } | RunError::TraceFile { .. } => true,
            other => other.code().is_input_error(),
        }
    }

    /// The error as a trace records it (DESIGN §6): an apply error as the
    /// engine made it, any other with its code, errno and message.
    pub fn trace_error(&self) -> TraceError {
        match self {
            RunError::Apply(e) => e.clone(),
            other => TraceError {
                code: other.code(),
                kind: None,
                path: None,
                errno: other.errno(),
                message: other.to_string(),
                index: None,
                unjoined: Vec::new(),
            },
        }
    }
}

impl From<Failure> for RunError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Apply { error } => RunError::Apply(error),
            Failure::Exec {
                program,
                errno,
                message,
            } => RunError::Exec {
                program,
                errno,
                message,
            },
            Failure::Fork { errno } => RunError::Fork { errno },
            Failure::Supervise { what, errno } => RunError::Supervision { what, errno },
        }
    }
}

/// A failed run and the trace to record for it: the steps taken (when the
/// failure came after some) and the error.
struct Failed {
    error: RunError,
    steps: Option<Box<Trace>>,
}

impl From<RunError> for Box<Failed> {
    fn from(error: RunError) -> Self {
        Box::new(Failed { error, steps: None })
    }
}

/// Applies `plan` on the real kernel in a child process and runs `command`
/// there; returns how the command ended. See the [module docs](self) for
/// the process layout and what it guarantees.
///
/// The caller must be single-threaded, and privileged enough for the plan
/// (root, or an unprivileged user whose plan creates a user namespace
/// first that maps only its own ids). The process stays in the caller's
/// cgroup: `run` does not manage cgroups.
///
/// # Errors
///
/// * [`RunError::InvalidCommand`], [`RunError::TraceFile`] before anything
///   is applied;
/// * [`RunError::ThreadCount`], [`RunError::Multithreaded`],
///   [`RunError::Fork`] when the first children cannot be forked;
/// * [`RunError::Apply`] when a step of the plan failed (setns(2),
///   unshare(2), ...);
/// * [`RunError::Exec`] when execvp(3) failed;
/// * [`RunError::Supervision`], [`RunError::Interrupted`],
///   [`RunError::Unreported`] when the processes could not be set up or
///   watched, or the run was stopped before the command started. On every
///   error after the first fork, every process of the run is killed (if
///   still running) and reaped, and the command never ran unless the error
///   is [`RunError::Exec`] or says the command's supervision failed after
///   it started.
///
/// When a trace file was asked for and created, it holds a trace document
/// whatever happened: the steps taken, and the error.
///
/// ```no_run
/// use std::ffi::OsString;
/// use nsapply::{plan, NsConfig, run::{run, RunOptions}};
/// let cfg = NsConfig::from_json(r#"{"linux":{"namespaces":[{"type":"uts"},{"type":"pid"}]}}"#)?;
/// let command: Vec<OsString> = vec!["hostname".into()];
/// let exit = run(&plan(&cfg), &command, &RunOptions::default())?;
/// std::process::exit(exit.status());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run(plan: &Plan, command: &[OsString], options: &RunOptions) -> Result<Exit, RunError> {
    run_with(plan, None, command, options)
}

/// [`run`] for an exec plan ([`crate::exec::ExecTarget::plan`]), with the
/// target held by `target`, the pidfd it was resolved through
/// ([`crate::exec::open_target`]): the plan's pidfd join uses a copy of
/// it, not a new `pidfd_open` of the number, and the per-namespace joins
/// open `ns/<name>` in the directory that the checked procfs shows for it,
/// not the path's `/proc/<n>`. Joining by number instead, a target that
/// exits between the resolve and the apply, its number given to another
/// process, has that process's namespaces joined: here it is
/// `target-exited`.
///
/// # Errors
///
/// As [`run`]; `invalid-command` when the plan is not an exec plan of
/// `target`'s process.
pub fn run_exec(
    plan: &Plan,
    target: &Pidfd,
    command: &[OsString],
    options: &RunOptions,
) -> Result<Exit, RunError> {
    if plan.exec_target() != Some(target.pid()) {
        let joins = plan.exec_target().map_or_else(
            || "is not an exec plan".to_owned(),
            |pid| format!("joins process {pid}"),
        );
        return Err(RunError::InvalidCommand {
            reason: format!(
                "the plan {joins}, and the target held is process {}",
                target.pid()
            ),
        });
    }
    run_with(plan, Some(target), command, options)
}

fn run_with(
    plan: &Plan,
    target: Option<&Pidfd>,
    command: &[OsString],
    options: &RunOptions,
) -> Result<Exit, RunError> {
    check_command(plan, command, options)?;
    let mut trace = caller::TraceOut::create(options.trace.as_deref())?;
    match caller::run_as_caller(plan, target, command, options, &mut trace) {
        Ok(exit) => Ok(exit),
        Err(failed) => {
            let Failed { error, steps } = *failed;
            let mut doc = steps.map(|t| *t).unwrap_or_default();
            doc.error = Some(error.trace_error());
            // Its own failure is secondary to the run's.
            let _ = trace.write_final(&doc);
            Err(error)
        }
    }
}

fn check_command(plan: &Plan, command: &[OsString], options: &RunOptions) -> Result<(), RunError> {
    if command.is_empty() {
        return Err(RunError::InvalidCommand {
            reason: "no command given to run".to_owned(),
        });
    }
    if let Some(arg) = command.iter().find(|a| a.as_bytes().contains(&0)) {
        return Err(RunError::InvalidCommand {
            reason: format!("argument {arg:?} contains a NUL byte"),
        });
    }
    if options.init && !plan.steps().contains(&Step::Unshare { kind: Kind::Pid }) {
        return Err(RunError::InvalidCommand {
            reason: "--init runs as pid 1 of a new pid namespace, and the config creates none"
                .to_owned(),
        });
    }
    Ok(())
}

/// Whether the plan joins a pid namespace: the command's process is then
/// in a pid namespace where no process of the run is pid 1. An exec plan's
/// `pidfd-join` step is always followed by its per-namespace fallback
/// (exec.rs), whose `setns` of the pid namespace says it (a separate arm
/// for the pidfd step could not change the answer: cargo-mutants found it
/// deleted unnoticed; the test below holds the plan's shape instead).
fn joins_pid_namespace(plan: &Plan) -> bool {
    plan.steps().iter().any(|s| {
        matches!(
            s,
            Step::Setns {
                kind: Kind::Pid,
                ..
            }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::ExecTarget;
    use crate::kind::KindSet;

    /// `run_exec` holds one process: a plan that joins another through a
    /// pidfd is refused before anything runs (nothing forked: this is a
    /// test thread).
    #[test]
    fn run_exec_refuses_a_plan_for_another_process_than_the_one_held() {
        let me = Pidfd::open(std::process::id() as i32).unwrap();
        let other = ExecTarget::new(me.pid() + 1, KindSet::one(Kind::Uts));
        let not_exec = crate::plan::plan(
            &crate::NsConfig::from_json(r#"{"linux":{"namespaces":[{"type":"uts"}]}}"#).unwrap(),
        );
        for plan in [
            other.plan().unwrap(),
            other.per_namespace().plan().unwrap(),
            not_exec,
        ] {
            let r = run_exec(&plan, &me, &["true".into()], &RunOptions::default());
            match r {
                Err(RunError::InvalidCommand { reason }) => {
                    assert!(reason.contains("target held"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn an_exec_plan_joins_a_pid_namespace_exactly_when_its_kinds_have_pid() {
        for kinds in [
            KindSet::ALL,
            KindSet::one(Kind::Pid),
            "pid,network".parse().unwrap(),
        ] {
            let target = ExecTarget::new(7, kinds);
            assert!(joins_pid_namespace(&target.plan().unwrap()), "{kinds}");
            assert!(
                joins_pid_namespace(&target.per_namespace().plan().unwrap()),
                "{kinds}"
            );
        }
        for kinds in [
            KindSet::one(Kind::Network),
            "user,mount,time".parse().unwrap(),
        ] {
            let target = ExecTarget::new(7, kinds);
            assert!(!joins_pid_namespace(&target.plan().unwrap()), "{kinds}");
        }
    }

    #[test]
    fn a_config_joins_a_pid_namespace_by_path_only() {
        let join = crate::NsConfig::from_json(
            r#"{"linux":{"namespaces":[{"type":"pid","path":"/proc/1/ns/pid"}]}}"#,
        )
        .unwrap();
        assert!(joins_pid_namespace(&crate::plan(&join)));
        let new =
            crate::NsConfig::from_json(r#"{"linux":{"namespaces":[{"type":"pid"}]}}"#).unwrap();
        assert!(!joins_pid_namespace(&crate::plan(&new)));
    }
}
