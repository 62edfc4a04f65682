//! Run a command in the namespaces of a plan, on the real kernel: what
//! `nsapply run` does, as a library function other runtimes can call.
//!
//! # Process layout
//!
//! ```text
//! P0 (caller of run)                      C1 (forked)                          C2 (forked by the plan)
//! ─────────────────                       ───────────                          ───────────────────────
//! fork ─────────────────────────────────▶ apply(plan, Linux, PipeSync)
//!                                         unshare(user)
//!        ◀── "sync id-mapping" ─────────  (blocks on the ack pipe)
//! write /proc/C1/{setgroups,uid_map,gid_map}
//!        ─── ack ──────────────────────▶  setid, unshare(pid, ..., time), offsets
//!                                         fork (when pid or time) ──────────▶ write --trace, "exec"
//!                                         wait for C2                          exec CMD
//! read reports until EOF (every write end is close-on-exec)
//! wait for C1 ◀── exit status of CMD ───  exit with C2's status
//! ```
//!
//! * The id maps are written by the parent (P0), as user_namespaces(7)
//!   requires for a useful mapping: `setgroups` is set to `deny` only when
//!   P0 is not root (an unprivileged writer must deny it before `gid_map`;
//!   root leaves `setgroups` allowed, like runc).
//! * Time offsets are written by C1 itself: they are a step of the plan.
//! * `cgroup-placed` is acknowledged at once: `run` does not manage cgroups,
//!   so the process stays in the caller's cgroup, which becomes the root of
//!   a new cgroup namespace.
//! * Failures inside C1 or C2 (an apply error, a trace file that cannot be
//!   written, an exec that fails) travel back to P0 over a close-on-exec
//!   pipe as JSON, so P0 never mistakes CMD's own exit status 1 for a
//!   failed apply.
//! * Every fd nsapply opens is close-on-exec (pipes, the trace file) or
//!   closed by the plan (namespace fds): CMD starts with only the fds the
//!   caller gave it.
//! * P0 must be single-threaded when it calls [`run`] (it forks, and C1
//!   must be single-threaded for `unshare(CLONE_NEWUSER)` and
//!   setns(user|mount|time)); the engine reports `multithreaded` otherwise.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{geteuid, pipe2, Pid};
use serde::{Deserialize, Serialize};

use crate::apply::{apply, Applied, SyncHooks, SyncRequest};
use crate::config::IdMapping;
use crate::error::{Errno, SyncPoint};
use crate::plan::Plan;
use crate::syscall::linux::{self, Linux};
use crate::syscall::{Forked, Syscall};
use crate::trace::{Trace, TraceError};

/// Options of [`run`] beyond the plan and the command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Where to write the trace document (DESIGN §6) of the apply, success
    /// or failure. Opened (created, truncated) by the caller's process, in
    /// the caller's mount namespace, before anything is applied.
    pub trace: Option<PathBuf>,
}

/// How the command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
}

impl Exit {
    /// The shell's view of the status: the exit code, or 128 + the signal
    /// number when the command was killed.
    ///
    /// ```
    /// use nsapply::run::Exit;
    /// assert_eq!(Exit::Code(7).status(), 7);
    /// assert_eq!(Exit::Signal(9).status(), 137);
    /// ```
    pub const fn status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// Why [`run`] failed. Each variant has a stable [`RunError::code`]; an
/// apply failure keeps the engine's code (DESIGN §6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The command is empty or an argument holds a NUL byte.
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
    /// execvp(3) of the command failed in the child.
    #[error("executing {program:?} failed: {errno}")]
    Exec {
        /// The program as given.
        program: String,
        /// The errno.
        errno: Errno,
    },
    /// fork(2) of the first child failed.
    #[error("fork of the child that applies the plan failed: {errno}")]
    Fork {
        /// The errno.
        errno: Errno,
    },
    /// A pipe, read or wait between the processes failed, or the child
    /// broke the protocol or died before it could run the command.
    #[error("{message}")]
    Supervision {
        /// What happened.
        message: String,
    },
}

impl RunError {
    /// The stable code printed as `nsapply: <code>: <message>`.
    ///
    /// `invalid-command`, `unwritable-file`, `exec-failed`, `fork-failed`,
    /// `run-failed`, or the engine's code for [`RunError::Apply`].
    pub fn code(&self) -> &'static str {
        match self {
            RunError::InvalidCommand { .. } => "invalid-command",
            RunError::TraceFile { .. } => "unwritable-file",
            RunError::Apply(e) => e.code.as_str(),
            RunError::Exec { .. } => "exec-failed",
            RunError::Fork { .. } => "fork-failed",
            RunError::Supervision { .. } => "run-failed",
        }
    }

    /// Whether the error is bad input, found before anything was applied
    /// (the CLI exits 2), rather than a failed run (exit 1).
    pub fn is_input_error(&self) -> bool {
        match self {
            RunError::InvalidCommand { .. } | RunError::TraceFile { .. } => true,
            RunError::Apply(e) => e.code.is_input_error(),
            _ => false,
        }
    }
}

/// Applies `plan` on the real kernel in a child process and runs `command`
/// there; returns how the command ended. See the [module docs](self) for
/// the process layout.
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
/// * [`RunError::Apply`] when a step of the plan failed (setns(2),
///   unshare(2), ...; the trace, if requested, is written first);
/// * [`RunError::Exec`] when execvp(3) failed;
/// * [`RunError::Fork`] when fork(2) failed (EBUSY: the caller has more
///   than one thread), [`RunError::Supervision`] when the processes could
///   not be set up or watched. On every error after the fork, the children
///   are killed (if still running) and reaped.
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
    let Some(program) = command.first() else {
        return Err(RunError::InvalidCommand {
            reason: "no command given to run".to_owned(),
        });
    };
    if let Some(arg) = command.iter().find(|a| a.as_bytes().contains(&0)) {
        return Err(RunError::InvalidCommand {
            reason: format!("argument {arg:?} contains a NUL byte"),
        });
    }
    // Opened here, in the caller's mount namespace: the child may leave it.
    // std opens every file with O_CLOEXEC.
    let trace_file = match &options.trace {
        Some(path) => Some(File::create(path).map_err(|e| RunError::TraceFile {
            path: path.clone(),
            errno: e.into(),
        })?),
        None => None,
    };
    let (report_r, report_w) = cloexec_pipe("report")?;
    let (ack_r, ack_w) = cloexec_pipe("ack")?;

    let mut sys = Linux;
    match sys.fork() {
        Err(errno) => Err(RunError::Fork { errno }),
        Ok(Forked::Child) => {
            drop((report_r, ack_w));
            let child = Child {
                program,
                command,
                trace_path: options.trace.as_deref(),
                trace_file,
            };
            // A panic must not unwind into the caller's frames, which
            // belong to P0: it ends the child with Rust's panic status.
            let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                child.main(plan, report_w, ack_r)
            }))
            .unwrap_or(101);
            // Never return into the caller's stack, and never run P0's
            // exit handlers or flush its buffers: they belong to P0.
            linux::exit_now(status)
        }
        Ok(Forked::Parent { child }) => {
            drop((report_w, ack_r, trace_file));
            supervise(plan, Pid::from_raw(child), report_r, ack_w)
        }
    }
}

/// One message from the children to P0, one JSON document per line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "kebab-case")]
enum Report {
    /// C1 reached a sync point and waits for the ack.
    Sync { point: SyncPoint },
    /// The process that runs the command is about to exec it.
    Exec,
    /// C1 or C2 failed; it exits right after.
    Failed { failure: Failure },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum Failure {
    Apply { error: TraceError },
    TraceFile { path: PathBuf, errno: Errno },
    Exec { program: String, errno: Errno },
}

impl From<Failure> for RunError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Apply { error } => RunError::Apply(error),
            // Opening it was checked before the fork; a write that fails
            // after the apply is a failed run, not bad input.
            Failure::TraceFile { path, errno } => RunError::Supervision {
                message: format!("writing the trace file {path:?} failed: {errno}"),
            },
            Failure::Exec { program, errno } => RunError::Exec { program, errno },
        }
    }
}

fn send(to: &mut File, report: &Report) -> std::io::Result<()> {
    let mut line = serde_json::to_string(report).map_err(std::io::Error::other)?;
    line.push('\n');
    // One write per message: a pipe write of at most PIPE_BUF is atomic,
    // and longer ones still arrive whole because only one process writes
    // at a time (C2 exists only after C1 stopped reporting).
    to.write_all(line.as_bytes())
}

fn cloexec_pipe(what: &str) -> Result<(OwnedFd, OwnedFd), RunError> {
    pipe2(OFlag::O_CLOEXEC).map_err(|e| RunError::Supervision {
        message: format!("creating the {what} pipe failed: {}", Errno(e as i32)),
    })
}

/// The child side of the sync points: report to P0, wait for its ack.
struct PipeSync {
    report: File,
    ack: BufReader<File>,
}

impl<S: Syscall + ?Sized> SyncHooks<S> for PipeSync {
    fn sync(&mut self, request: SyncRequest<'_>, _: &mut S) -> Result<(), String> {
        let point = request.point();
        send(&mut self.report, &Report::Sync { point })
            .map_err(|e| format!("telling the parent failed: {}", Errno::from(e)))?;
        let mut line = String::new();
        match self.ack.read_line(&mut line) {
            Ok(0) => Err("the parent closed the sync pipe without an answer".to_owned()),
            Ok(_) => serde_json::from_str::<Result<(), String>>(&line)
                .map_err(|e| format!("malformed answer from the parent: {e}"))?,
            Err(e) => Err(format!(
                "reading the parent's answer failed: {}",
                Errno::from(e)
            )),
        }
    }
}

/// What C1 (and after the plan's fork, C2) needs to finish the job.
struct Child<'a> {
    program: &'a OsString,
    command: &'a [OsString],
    trace_path: Option<&'a Path>,
    trace_file: Option<File>,
}

impl Child<'_> {
    /// C1's (and C2's) whole life; returns the exit status.
    fn main(self, plan: &Plan, report: OwnedFd, ack: OwnedFd) -> i32 {
        let mut hooks = PipeSync {
            report: File::from(report),
            ack: BufReader::new(File::from(ack)),
        };
        let Applied { trace, result } = apply(plan, &mut Linux, &mut hooks);
        let PipeSync { mut report, ack } = hooks;
        drop(ack);
        if result.is_ok() {
            // Die with the parent (P0 for C1, C1 for C2), so a supervisor
            // killed on an error path takes the command with it. Set after
            // apply: a change of credentials (setid) clears it.
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
        }
        match result {
            Err(_) => {
                // The trace is written even when the run failed: it says
                // which step did. Its own failure is secondary here.
                let _ = self.write_trace(&trace);
                let error = trace
                    .error
                    .clone()
                    .unwrap_or_else(|| unreachable_trace_error(&trace));
                let failure = Failure::Apply { error };
                let _ = send(&mut report, &Report::Failed { failure });
                1
            }
            Ok(Some(Forked::Parent { child })) => {
                // C2 runs the command; C1 only waits. Closing the report
                // pipe here lets P0 see EOF as soon as C2 has exec'd.
                drop((report, self.trace_file));
                wait_for(Pid::from_raw(child)).map_or(1, Exit::status)
            }
            Ok(Some(Forked::Child) | None) => {
                if let Err(failure) = self.write_trace(&trace) {
                    let _ = send(&mut report, &Report::Failed { failure });
                    return 1;
                }
                if send(&mut report, &Report::Exec).is_err() {
                    // P0 is gone: nobody would wait for the command.
                    return 1;
                }
                let program = self.program.to_string_lossy().into_owned();
                let err = std::process::Command::new(self.program)
                    .args(&self.command[1..])
                    .exec();
                let failure = Failure::Exec {
                    program,
                    errno: err.into(),
                };
                let _ = send(&mut report, &Report::Failed { failure });
                // The conventional status of a command that could not run;
                // P0 reports the failure from the pipe, not from this.
                127
            }
        }
    }

    fn write_trace(&self, trace: &Trace) -> Result<(), Failure> {
        let (Some(mut file), Some(path)) = (self.trace_file.as_ref(), self.trace_path) else {
            return Ok(());
        };
        let mut doc = trace.to_json_pretty();
        doc.push('\n');
        file.write_all(doc.as_bytes())
            .map_err(|e| Failure::TraceFile {
                path: path.to_owned(),
                errno: e.into(),
            })
    }
}

/// `apply` always fills `trace.error` when it returns an error; this keeps
/// the child from panicking if that invariant were ever broken.
fn unreachable_trace_error(trace: &Trace) -> TraceError {
    TraceError {
        code: crate::error::ErrorCode::SyncFailed,
        kind: None,
        path: None,
        errno: None,
        message: format!(
            "the apply failed after {} steps without recording an error",
            trace.steps.len()
        ),
        index: None,
        unjoined: Vec::new(),
    }
}

/// P0: answer the sync points, collect the children's reports until every
/// write end is closed (by exec or exit), then wait for C1.
fn supervise(plan: &Plan, child: Pid, report: OwnedFd, ack: OwnedFd) -> Result<Exit, RunError> {
    let mut reports = BufReader::new(File::from(report));
    let mut ack = File::from(ack);
    let mut failure = None;
    let mut execed = false;
    let mut line = String::new();
    loop {
        line.clear();
        match reports.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                kill_and_reap(child);
                return Err(RunError::Supervision {
                    message: format!("reading the child's reports failed: {}", Errno::from(e)),
                });
            }
        }
        let msg = match serde_json::from_str::<Report>(&line) {
            Ok(msg) => msg,
            Err(e) => {
                kill_and_reap(child);
                return Err(RunError::Supervision {
                    message: format!(
                        "malformed report from the child ({e}): {:?}",
                        line.trim_end()
                    ),
                });
            }
        };
        match msg {
            Report::Sync { point } => {
                let answer = match point {
                    SyncPoint::IdMapping => {
                        write_id_maps(child, plan.uid_mappings(), plan.gid_mappings())
                    }
                    // `run` does not manage cgroups: the child stays in ours.
                    SyncPoint::CgroupPlaced => Ok(()),
                };
                let mut doc = serde_json::to_string(&answer).unwrap_or_default();
                doc.push('\n');
                // A child that died meanwhile shows up as EOF and its status.
                let _ = ack.write_all(doc.as_bytes());
            }
            Report::Exec => execed = true,
            Report::Failed { failure: f } => failure = Some(f),
        }
    }
    drop(ack);
    let status = match wait_for(child) {
        Ok(s) => s,
        Err(errno) => {
            kill_and_reap(child);
            return Err(RunError::Supervision {
                message: format!("waiting for the child failed: {errno}"),
            });
        }
    };
    if let Some(f) = failure {
        return Err(f.into());
    }
    if !execed {
        return Err(RunError::Supervision {
            message: format!(
                "the child ended before running the command ({})",
                match status {
                    Exit::Code(c) => format!("exit status {c}"),
                    Exit::Signal(s) => format!("killed by signal {s}"),
                }
            ),
        });
    }
    Ok(status)
}

/// Writes `setgroups`, `uid_map`, `gid_map` of `child`, in that order
/// (user_namespaces(7)): each map in one write(2), as the kernel requires.
fn write_id_maps(child: Pid, uid: &[IdMapping], gid: &[IdMapping]) -> Result<(), String> {
    let proc = format!("/proc/{child}");
    // An unprivileged writer must deny setgroups before gid_map; root keeps
    // it allowed so the container can drop supplementary groups.
    if !geteuid().is_root() {
        write_proc(&format!("{proc}/setgroups"), b"deny")?;
    }
    write_proc(&format!("{proc}/uid_map"), map_text(uid).as_bytes())?;
    write_proc(&format!("{proc}/gid_map"), map_text(gid).as_bytes())
}

fn map_text(maps: &[IdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect()
}

fn write_proc(path: &str, data: &[u8]) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| format!("opening {path} failed: {}", Errno::from(e)))?;
    match f.write(data) {
        Ok(n) if n == data.len() => Ok(()),
        Ok(n) => Err(format!(
            "short write to {path}: {n} of {} bytes",
            data.len()
        )),
        Err(e) => Err(format!("writing {path} failed: {}", Errno::from(e))),
    }
}

fn wait_for(pid: Pid) -> Result<Exit, Errno> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Exit::Code(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Exit::Signal(sig as i32)),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Errno(e as i32)),
        }
    }
}

fn kill_and_reap(pid: Pid) {
    // The child may have exited already; either way it must be reaped.
    let _ = kill(pid, Signal::SIGKILL);
    let _ = wait_for(pid);
}
