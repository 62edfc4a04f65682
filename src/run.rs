//! Run a command in the namespaces of a plan, on the real kernel: what
//! `nsapply run` does, as a library function other runtimes can call.
//!
//! # Process layout
//!
//! ```text
//! P0: run()                  C1: applies the plan              C2: the command
//! (host namespaces)          (host pid and time namespaces)    (every namespace of the plan)
//! ──────────────────         ─────────────────────────────     ──────────────────────────────
//! fork ───────────────────▶  dies with P0 (PDEATHSIG, checked)
//!                            apply(plan) ...unshare(user)
//!   ◀── sync id-mapping ───  waits
//! write the maps of C1
//! (pidfd, checked /proc)
//!   ─── ack ──────────────▶  not dumpable; setid, unshare(...)
//!                            fork ───────────────────────────▶  dies with C1 (PDEATHSIG, checked)
//!   ◀── started ───────────  supervises C2                      exec CMD (or, with --init:
//! signals ── signal n ───▶   pidfd_send_signal(C2, n)              init = pid 1, forks CMD)
//!   ◀── exited ────────────  reaps C2, reports
//! exits with CMD's status
//! ```
//!
//! # What it guarantees (DESIGN §8)
//!
//! * **Id maps go to C1 only**: P0 identifies C1 by a pidfd taken right
//!   after the fork (C1 is P0's unreaped child, so its pid cannot have been
//!   reused), and writes through a `/proc` checked to be a procfs root, in
//!   the directory of the pid that procfs gives the pidfd
//!   ([`crate::sync::write_id_maps`]). A `/proc` of another pid namespace
//!   shows C1 under another number, which is the one used; one that does
//!   not show C1, or is not procfs, is refused (`sync-failed`).
//! * **Nothing outlives P0**: C1 dies with P0 (its parent-death signal is
//!   armed right after the fork and kept across every credential change,
//!   [`crate::linux`]) until it forks C2. From then on C1 stays alive to
//!   kill C2 when P0 dies (P0's end of the channel closes): C2's own
//!   parent-death signal would be cleared as soon as CMD changes its
//!   credentials. C2 dies with C1. With a pid namespace, C2 is its pid 1,
//!   and its death ends every process in it. Without one, the processes
//!   CMD leaves behind are re-parented to P0 (a child subreaper), which
//!   kills them when CMD has ended.
//! * **Signals**: SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and
//!   SIGWINCH sent to P0 are forwarded to CMD (through C1, which holds a
//!   pidfd of C2); one that arrives before CMD exists is kept and sent when
//!   it does. P0 exits with CMD's status. A pid 1 without a handler for a
//!   signal does not get it (pid_namespaces(7)): use `--init`.
//! * **Clean signal state**: P0 sets SIGCHLD to its default before it
//!   forks (a caller that ignores SIGCHLD would have its children reaped by
//!   the kernel, and their pids reused), and gives the caller's state back
//!   when [`run`] returns. C1 and CMD start with every signal at its
//!   default action and none blocked.
//! * **Not dumpable**: P0 and C1, which stay in the host's pid and time
//!   namespaces, are not dumpable while the container runs (C1 from the
//!   moment its maps are written, which needs it dumpable when P0 is not
//!   root), so a container of the same uid cannot open their
//!   `/proc/<pid>/mem` through the host's `/proc`.
//! * **Mount propagation** is a step of the plan (right after
//!   `unshare(mount)`, DESIGN §4), not done here.
//! * Failures in C1 or C2 (an apply error, a trace file that cannot be
//!   written, an exec that fails) reach P0 as typed messages, so CMD's own
//!   exit status 1 is never mistaken for a failed apply.
//!
//! The caller must be single-threaded (it forks, and C1 must be for
//! `unshare(CLONE_NEWUSER)` and setns(user|mount|time)). While [`run`]
//! runs it changes the caller's process: SIGCHLD's action, the signal
//! mask, the child-subreaper flag and dumpable; each is given back.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use crate::apply::apply;
use crate::config::{Propagation, TimeOffset};
use crate::error::{Errno, SyncError};
use crate::kind::{Kind, KindSet};
use crate::plan::SyncPoint;
use crate::plan::{Plan, Step};
use crate::sync::{answer_sync, Channel, ChildSync, Failure, ToChild, ToParent};
use crate::syscall::linux::{self, Linux, Pidfd};
use crate::syscall::{Forked, Syscall, ThreadCountError};
use crate::trace::{Trace, TraceError};

pub use crate::syscall::linux::Exit;

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
    /// Where to write the trace document (DESIGN §6) of the apply, success
    /// or failure. Opened (created, truncated) by the caller's process, in
    /// the caller's mount namespace, before anything is applied.
    pub trace: Option<PathBuf>,
    /// Run a minimal init as pid 1 of the new pid namespace, with the
    /// command as its child: it reaps orphans and forwards the signals it
    /// gets to the command (as `docker run --init`). The plan must create a
    /// pid namespace.
    pub init: bool,
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
    /// execvp(3) of the command failed in the child.
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
    /// fork(2) of the first child failed.
    #[error("fork of the child that applies the plan failed: {errno}")]
    Fork {
        /// The errno.
        errno: Errno,
    },
    /// A step of the supervision failed: a pipe, a channel, a signal
    /// setup, a wait, or the trace file written after the apply.
    #[error("{what}: {source}")]
    Supervision {
        /// What was being done.
        what: String,
        /// What failed.
        #[source]
        source: SyncError,
    },
    /// The supervising child ended without saying how the command ended
    /// (it was killed).
    #[error("the process supervising the command ended without reporting ({})", exit_text(*.exit))]
    Died {
        /// How it ended.
        exit: Exit,
    },
}

fn exit_text(exit: Exit) -> String {
    match exit {
        Exit::Code(c) => format!("exit status {c}"),
        Exit::Signal(s) => format!("killed by signal {s}"),
    }
}

impl RunError {
    /// The stable code printed as `nsapply: <code>: <message>`.
    ///
    /// `invalid-command`, `unwritable-file`, `exec-failed`,
    /// `thread-count-failed`, `multithreaded`, `fork-failed`, `run-failed`,
    /// or the engine's code for [`RunError::Apply`].
    pub fn code(&self) -> &'static str {
        match self {
            RunError::InvalidCommand { .. } => "invalid-command",
            RunError::TraceFile { .. } => "unwritable-file",
            RunError::Apply(e) => e.code.as_str(),
            RunError::Exec { .. } => "exec-failed",
            RunError::ThreadCount { .. } => "thread-count-failed",
            RunError::Multithreaded { .. } => "multithreaded",
            RunError::Fork { .. } => "fork-failed",
            RunError::Supervision { .. } | RunError::Died { .. } => "run-failed",
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

impl From<Failure> for RunError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Apply { error } => RunError::Apply(error),
            // Opening it was checked before the fork; a write that fails
            // after the apply is a failed run, not bad input.
            Failure::TraceFile { path, errno } => RunError::Supervision {
                what: format!("writing the trace file {path:?}"),
                source: SyncError::Caller {
                    message: "write(2) failed".to_owned(),
                    errno: Some(errno),
                },
            },
            Failure::Exec {
                program,
                errno,
                message,
            } => RunError::Exec {
                program,
                errno,
                message,
            },
            Failure::Supervise { what, errno } => RunError::Supervision {
                what,
                source: SyncError::Caller {
                    message: "a system call failed".to_owned(),
                    errno: Some(errno),
                },
            },
        }
    }
}

fn supervision(what: &str) -> impl FnOnce(Errno) -> RunError + '_ {
    move |errno| RunError::Supervision {
        what: what.to_owned(),
        source: SyncError::Caller {
            message: "a system call failed".to_owned(),
            errno: Some(errno),
        },
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
///   [`RunError::Fork`] when the first child cannot be forked;
/// * [`RunError::Apply`] when a step of the plan failed (setns(2),
///   unshare(2), ...; the trace, if requested, is written first);
/// * [`RunError::Exec`] when execvp(3) failed;
/// * [`RunError::Supervision`], [`RunError::Died`] when the processes
///   could not be set up or watched. On every error after the fork, every
///   child is killed (if still running) and reaped.
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
    if options.init && !plan.steps().contains(&Step::Unshare { kind: Kind::Pid }) {
        return Err(RunError::InvalidCommand {
            reason: "--init runs as pid 1 of a new pid namespace, and the config creates none"
                .to_owned(),
        });
    }
    // Opened here, in the caller's mount namespace: the child may leave it.
    // std opens every file with O_CLOEXEC.
    let trace_file = match &options.trace {
        Some(path) => Some(File::create(path).map_err(|e| match Errno::of_io(&e) {
            Some(errno) => RunError::TraceFile {
                path: path.clone(),
                errno,
            },
            None => RunError::InvalidCommand {
                reason: format!("trace file {path:?} cannot be created: {e}"),
            },
        })?),
        None => None,
    };
    match linux::thread_count() {
        Ok(1) => {}
        Ok(threads) => return Err(RunError::Multithreaded { threads }),
        Err(source) => return Err(RunError::ThreadCount { source }),
    }
    let state = CallerState::take_over()?;
    // The caller's own children, which are none of run's business.
    let orphans = Orphans::after(linux::children());
    let signals = SignalFd::with_flags(
        &forwarded_set(),
        SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
    )
    .map_err(|e| supervision("creating the signalfd for forwarded signals")(Errno(e as i32)))?;
    let (parent_end, child_end) = Channel::pair().map_err(supervision("creating the channel"))?;
    let p0 = nix::unistd::getpid().as_raw();
    let child = match Linux.fork() {
        Err(errno) => return Err(RunError::Fork { errno }),
        Ok(Forked::Child) => {
            // The caller's signal state is P0's to give back; C1 sets its
            // own (below).
            std::mem::forget(state);
            drop((parent_end, signals));
            let c1 = C1 {
                plan,
                program,
                command,
                trace_path: options.trace.as_deref(),
                trace_file,
                init: options.init,
            };
            // A panic must not unwind into the caller's frames, which
            // belong to P0: it ends the child with Rust's panic status.
            let status =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c1.main(child_end, p0)))
                    .unwrap_or(101);
            // Never return into the caller's stack, and never run P0's
            // exit handlers or flush its buffers: they belong to P0.
            linux::exit_now(status)
        }
        Ok(Forked::Parent { child }) => child,
    };
    drop((child_end, trace_file));
    // C1 is this process's child and not reaped: its pid names it until
    // we wait for it (SIGCHLD is at its default, so the kernel does not
    // reap it for us).
    let c1 = match Pidfd::open(child) {
        Ok(p) => p,
        Err(errno) => {
            orphans.end(Some(child));
            return Err(supervision("pidfd_open of the child that applies the plan")(errno));
        }
    };
    // The maps are written into C1, never from C1 into us: nothing needs
    // this process's /proc files from here on.
    let _ = linux::set_dumpable(false);
    let result = P0 {
        plan,
        c1,
        channel: parent_end,
        signals,
        orphans,
    }
    .supervise();
    drop(state);
    result
}

/// What [`run`] changes in the caller's process, given back on drop.
struct CallerState {
    chld: Option<nix::sys::signal::SigAction>,
    mask: SigSet,
    subreaper: bool,
    dumpable: bool,
}

impl CallerState {
    fn take_over() -> Result<CallerState, RunError> {
        let mask = SigSet::thread_get_mask()
            .map_err(|e| supervision("reading the signal mask")(Errno(e as i32)))?;
        let dumpable = linux::dumpable().unwrap_or(true);
        let subreaper = nix::sys::prctl::get_child_subreaper().unwrap_or(false);
        // Default SIGCHLD: an ignored SIGCHLD (inherited from the caller)
        // makes the kernel reap our children at once, losing their status
        // and freeing their pids for reuse.
        let chld = linux::default_signal_action(Signal::SIGCHLD).ok();
        let state = CallerState {
            chld,
            mask,
            subreaper,
            dumpable,
        };
        // The forwarded signals are read from a signalfd: blocked. SIGCHLD
        // must not be blocked by whatever the caller had.
        let mut block = mask;
        for s in FORWARDED_SIGNALS {
            block.add(s);
        }
        block.remove(Signal::SIGCHLD);
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&block), None)
            .map_err(|e| supervision("blocking the forwarded signals")(Errno(e as i32)))?;
        // Processes the command leaves behind, without a pid namespace,
        // come to us when their parent dies, and are ended with the run.
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| supervision("PR_SET_CHILD_SUBREAPER")(Errno(e as i32)))?;
        Ok(state)
    }
}

impl Drop for CallerState {
    fn drop(&mut self) {
        let _ = nix::sys::prctl::set_child_subreaper(self.subreaper);
        let _ = linux::set_dumpable(self.dumpable);
        if let Some(chld) = &self.chld {
            let _ = linux::restore_signal_action(Signal::SIGCHLD, chld);
        }
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.mask), None);
    }
}

/// P0 after the fork.
struct P0<'a> {
    plan: &'a Plan,
    c1: Pidfd,
    channel: Channel,
    signals: SignalFd,
    orphans: Orphans,
}

impl P0<'_> {
    /// Answers C1's sync points, forwards signals, collects C1's reports
    /// until C1 has ended, then ends whatever is left.
    fn supervise(mut self) -> Result<Exit, RunError> {
        let mut report = Reported::default();
        let mut channel_open = true;
        loop {
            let c1_ended = self.c1.has_exited();
            // Every message C1 sent before it ended is in the socket now:
            // read them all before concluding.
            if channel_open && (self.channel.has_buffered_message() || readable_now(&self.channel))
            {
                match self.channel.recv::<ToParent>() {
                    Ok(Some(msg)) => self.handle(msg, &mut report),
                    Ok(None) => channel_open = false,
                    Err(e) => {
                        report.broken = Some(e);
                        channel_open = false;
                    }
                }
                continue;
            }
            if c1_ended {
                break;
            }
            let mut fds = vec![
                PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.c1.as_fd(), PollFlags::POLLIN),
            ];
            if channel_open {
                fds.push(PollFd::new(self.channel.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    drop(fds);
                    self.orphans.end(Some(self.c1.pid()));
                    return Err(supervision("poll")(Errno(e as i32)));
                }
            }
            drop(fds);
            while let Ok(Some(info)) = self.signals.read_signal() {
                // To C1, which sends it to the command (or keeps it until
                // the command exists). C1 gone: nothing to forward to.
                let _ = self.channel.send(&ToChild::Signal {
                    signal: info.ssi_signo as i32,
                });
            }
        }
        let c1_exit = linux::wait(self.c1.pid());
        // Whatever the command left behind (re-parented to us, a child
        // subreaper) ends with the run.
        self.orphans.end(None);
        if let Some(failure) = report.failure {
            return Err(failure.into());
        }
        if let Some(exit) = report.exit {
            return Ok(exit);
        }
        if let Some(source) = report.broken {
            return Err(RunError::Supervision {
                what: "reading the child's reports".to_owned(),
                source,
            });
        }
        match c1_exit {
            Ok(exit) => Err(RunError::Died { exit }),
            Err(errno) => Err(supervision("waiting for the child that applies the plan")(
                errno,
            )),
        }
    }

    fn handle(&mut self, msg: ToParent, report: &mut Reported) {
        match msg {
            ToParent::Sync { point } => {
                let answer = match answer_sync(point, self.plan, &self.c1) {
                    Ok(()) => ToChild::Ack,
                    Err(error) => ToChild::Refused { error },
                };
                // A child that died meanwhile shows up as its exit.
                let _ = self.channel.send(&answer);
            }
            ToParent::Exited { exit } => report.exit = Some(exit),
            ToParent::Failed { failure } => report.failure = Some(failure),
        }
    }
}

/// Whether the channel has something to read (or its end) right now.
fn readable_now(channel: &Channel) -> bool {
    let mut fds = [PollFd::new(channel.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// What P0 learned from C1.
#[derive(Default)]
struct Reported {
    exit: Option<Exit>,
    failure: Option<Failure>,
    broken: Option<SyncError>,
}

/// The child that applies the plan (C1), and after the plan's fork the
/// command's process (C2).
struct C1<'a> {
    plan: &'a Plan,
    program: &'a OsString,
    command: &'a [OsString],
    trace_path: Option<&'a Path>,
    trace_file: Option<File>,
    init: bool,
}

impl C1<'_> {
    /// C1's whole life (and C2's, which comes out of it); the exit status.
    fn main(self, mut channel: Channel, p0: i32) -> i32 {
        // First: die with P0, or end now if it is already gone.
        if linux::die_with_parent(p0).is_err() {
            return 1;
        }
        // C1 and the command start from a clean signal state, whatever
        // the caller ignored or blocked (P0 blocked the forwarded ones).
        // C1 itself ignores SIGPIPE (a trace written to a pipe whose reader
        // is gone is an error to report, not a death); the command gets
        // SIGPIPE's default back at exec (std's exec resets it).
        let _ = linux::reset_signals();
        let _ = linux::ignore_signal(Signal::SIGPIPE);
        let maps = self.plan.steps().contains(&Step::Sync {
            point: SyncPoint::IdMapping,
        });
        // An unprivileged P0 writes our maps through our /proc files, which
        // needs us dumpable until then; otherwise nothing does.
        if !maps {
            let _ = linux::set_dumpable(false);
        }
        let mut backend = Supervised::new(p0);
        let mut hooks =
            ChildSync::new(&mut channel).after_id_mapping(|| linux::set_dumpable(false));
        let applied = apply(self.plan, &mut backend, &mut hooks);
        let pending = std::mem::take(&mut hooks.signals);
        drop(hooks);
        let trace = applied.trace();
        let command = match applied.result {
            Ok(Some(Forked::Child)) => {
                // C2: the plan's fork put us in the new pid/time namespaces.
                drop(channel);
                return self.command_main(&mut backend);
            }
            Err(e) => {
                // The trace is written even when the run failed: it says
                // which step did. Its own failure is secondary here.
                let _ = self.write_trace(&trace);
                let _ = channel.send(&ToParent::Failed {
                    failure: Failure::Apply {
                        error: TraceError::from(&e),
                    },
                });
                return 1;
            }
            Ok(Some(Forked::Parent { child })) => child,
            // No pid or time namespace: the plan does not fork, but the
            // command still runs in a child of ours, so C1 can end it when
            // P0 dies, whatever credentials it took on.
            Ok(None) => match backend.fork() {
                Ok(Forked::Child) => {
                    drop(channel);
                    return self.command_main(&mut backend);
                }
                Ok(Forked::Parent { child }) => child,
                Err(errno) => {
                    let _ = channel.send(&ToParent::Failed {
                        failure: Failure::Supervise {
                            what: "fork of the command's process".to_owned(),
                            errno,
                        },
                    });
                    return 1;
                }
            },
        };
        if let Err(failure) = self.write_trace(&trace) {
            linux::kill_and_reap(command);
            let _ = channel.send(&ToParent::Failed { failure });
            return 1;
        }
        drop(self.trace_file);
        supervise_command(channel, command, backend.exec_report.take(), pending)
    }

    /// C2: the command (or, with `--init`, its init). Keeps nothing of
    /// C1's but the exec report.
    fn command_main(self, backend: &mut Supervised) -> i32 {
        drop(self.trace_file);
        let report = backend.exec_report.take();
        if self.init {
            return init_main(self.program, self.command, report);
        }
        exec_command(self.program, self.command, report)
    }

    fn write_trace(&self, trace: &Trace) -> Result<(), Failure> {
        let (Some(file), Some(path)) = (self.trace_file.as_ref(), self.trace_path) else {
            return Ok(());
        };
        let mut doc = trace.to_json_pretty();
        doc.push('\n');
        linux::write_all(file.as_fd(), doc.as_bytes()).map_err(|errno| Failure::TraceFile {
            path: path.to_owned(),
            errno,
        })
    }
}

/// C1 after the command's process exists: forwards signals to it, ends it
/// when P0 is gone, and reports how it ended (or that it could not exec).
fn supervise_command(
    mut channel: Channel,
    command: i32,
    exec_report: Option<File>,
    pending: Vec<i32>,
) -> i32 {
    // What the command leaves behind when its parent dies comes to us, so
    // it can be ended with the command (without a pid namespace nothing
    // else would end it). P0 is one too, for when C1 itself is killed.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    // Our unreaped child: its pid names it.
    let pidfd = match Pidfd::open(command) {
        Ok(p) => p,
        Err(errno) => {
            linux::kill_and_reap(command);
            let _ = channel.send(&ToParent::Failed {
                failure: Failure::Supervise {
                    what: "pidfd_open of the command's process".to_owned(),
                    errno,
                },
            });
            return 1;
        }
    };
    for signal in pending {
        forward(&pidfd, signal);
    }
    let mut exec_report = exec_report;
    let mut exec_failure = None;
    loop {
        if channel.has_buffered_message() {
            match channel.recv::<ToChild>() {
                Ok(Some(ToChild::Signal { signal })) => forward(&pidfd, signal),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return p0_is_gone(command),
            }
            continue;
        }
        let mut fds = vec![
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(channel.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(r) = &exec_report {
            fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
        }
        if let Err(e) = poll(&mut fds, PollTimeout::NONE) {
            if e != nix::errno::Errno::EINTR {
                linux::kill_and_reap(command);
                return 1;
            }
            continue;
        }
        let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
        let (cmd_done, from_p0) = (ready(&fds[0]), ready(&fds[1]));
        let exec_ready = fds.get(2).is_some_and(ready);
        drop(fds);
        if exec_ready {
            // EOF: exec succeeded (close-on-exec) or the process ended.
            let mut text = String::new();
            if let Some(mut r) = exec_report.take() {
                let _ = r.read_to_string(&mut text);
            }
            exec_failure = serde_json::from_str::<Failure>(&text).ok();
        }
        if from_p0 {
            match channel.recv::<ToChild>() {
                Ok(Some(ToChild::Signal { signal })) => forward(&pidfd, signal),
                Ok(Some(_)) => {}
                // P0 died (SIGKILL or otherwise): nobody supervises the
                // command any more, so it ends now.
                Ok(None) | Err(_) => return p0_is_gone(command),
            }
        }
        if cmd_done {
            let exit = linux::wait(command);
            // The command's run is over: so is that of what it left behind.
            end_children(&[]);
            if let Some(mut r) = exec_report.take() {
                let mut text = String::new();
                let _ = r.read_to_string(&mut text);
                exec_failure = exec_failure.or_else(|| serde_json::from_str(&text).ok());
            }
            let msg = match (exec_failure, exit) {
                (Some(failure), _) => ToParent::Failed { failure },
                (None, Ok(exit)) => ToParent::Exited { exit },
                (None, Err(errno)) => ToParent::Failed {
                    failure: Failure::Supervise {
                        what: "waiting for the command".to_owned(),
                        errno,
                    },
                },
            };
            return i32::from(channel.send(&msg).is_err());
        }
    }
}

fn forward(pidfd: &Pidfd, signal: i32) {
    if let Ok(sig) = Signal::try_from(signal) {
        // ESRCH: it has ended, and its end will be reported.
        let _ = pidfd.send_signal(sig);
    }
}

fn p0_is_gone(command: i32) -> i32 {
    linux::kill_and_reap(command);
    end_children(&[]);
    1
}

/// Runs the command in this process: exec, or on failure a report on
/// `exec_report` and exit status 127 (a command that could not run).
fn exec_command(program: &OsString, command: &[OsString], exec_report: Option<File>) -> i32 {
    // std's exec also empties the signal mask and resets SIGPIPE.
    let err = std::process::Command::new(program)
        .args(&command[1..])
        .exec();
    // Arguments with a NUL byte were refused before anything ran, which
    // leaves exec errors with an errno only.
    let failure = Failure::Exec {
        program: program.to_string_lossy().into_owned(),
        errno: Errno::of_io(&err),
        message: err.to_string(),
    };
    if let (Some(mut w), Ok(text)) = (exec_report, serde_json::to_string(&failure)) {
        let _ = w.write_all(text.as_bytes());
    }
    127
}

/// `--init`: pid 1 of the new pid namespace. Forks the command, forwards
/// the forwarded signals to it, reaps every child (orphans in the
/// namespace are re-parented here), and exits with the command's status
/// (128 + n when a signal n killed it), which ends the namespace.
fn init_main(program: &OsString, command: &[OsString], exec_report: Option<File>) -> i32 {
    let mut waited = forwarded_set();
    waited.add(Signal::SIGCHLD);
    // Blocked, so they queue for sigwait (a pid 1 is not sent signals it
    // has no handler for, but blocked ones are never ignored).
    if nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&waited), None).is_err() {
        return 1;
    }
    let child = match Linux.fork() {
        Ok(Forked::Child) => {
            // Our parent is this init, pid 1 here; the namespace ends with it.
            let _ = linux::die_with_parent(1);
            return exec_command(program, command, exec_report);
        }
        Ok(Forked::Parent { child }) => child,
        Err(_) => return 1,
    };
    // Only the command holds the exec report now: its exec closes it.
    drop(exec_report);
    loop {
        let Ok(sig) = waited.wait() else { continue };
        if sig != Signal::SIGCHLD {
            let _ = nix::sys::signal::kill(Pid::from_raw(child), sig);
            continue;
        }
        while let Some((pid, exit)) = linux::reap_any() {
            if pid == child {
                return exit.status();
            }
        }
    }
}

/// The Linux backend as C1 uses it: every call is [`Linux`]'s, but a fork
/// (the plan's, or the one for the command when the plan has none) is made
/// so that the command's process cannot outlive C1 and C1 can end it when
/// P0 dies:
///
/// * C1 drops its own parent-death signal before the fork: from then on it
///   must live to kill the command when P0 goes (it notices by the end of
///   P0's channel);
/// * the child arms its parent-death signal and checks that C1 is still
///   there (a pipe only C1 keeps open: all write ends closed means C1 is
///   gone; `getppid` cannot tell, it is 0 in a new pid namespace);
/// * a close-on-exec pipe carries an exec failure back to C1.
struct Supervised {
    p0: i32,
    /// C1: the write end the command's process watches.
    alive: Option<OwnedFd>,
    /// C1: the read end; C2: the write end.
    exec_report: Option<File>,
}

impl Supervised {
    fn new(p0: i32) -> Supervised {
        Supervised {
            p0,
            alive: None,
            exec_report: None,
        }
    }
}

impl Syscall for Supervised {
    type Fd = OwnedFd;

    fn open_ns(&mut self, path: &Path) -> Result<OwnedFd, Errno> {
        Linux.open_ns(path)
    }
    fn ns_get_nstype(&mut self, fd: &OwnedFd) -> Result<i32, Errno> {
        Linux.ns_get_nstype(fd)
    }
    fn setns(&mut self, fd: &OwnedFd, kind: Kind) -> Result<(), Errno> {
        Linux.setns(fd, kind)
    }
    fn close(&mut self, fd: OwnedFd) {
        Linux.close(fd);
    }
    fn unshare(&mut self, kinds: KindSet) -> Result<(), Errno> {
        Linux.unshare(kinds)
    }
    fn set_root_ids(&mut self) -> Result<(), Errno> {
        Linux.set_root_ids()
    }
    fn set_root_propagation(&mut self, propagation: Propagation) -> Result<(), Errno> {
        Linux.set_root_propagation(propagation)
    }
    fn write_time_offsets(&mut self, offsets: &[TimeOffset]) -> Result<(), Errno> {
        Linux.write_time_offsets(offsets)
    }
    fn thread_count(&mut self) -> Result<usize, ThreadCountError> {
        Linux.thread_count()
    }
    fn fork(&mut self) -> Result<Forked, Errno> {
        let (alive_r, alive_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Errno(e as i32))?;
        let (report_r, report_w) = linux::pipe()?;
        nix::sys::prctl::set_pdeathsig(None).map_err(|e| Errno(e as i32))?;
        match Linux.fork() {
            Err(errno) => {
                // Not forked: C1 goes back to dying with P0.
                let _ = linux::die_with_parent(self.p0);
                Err(errno)
            }
            Ok(Forked::Parent { child }) => {
                drop((alive_r, report_w));
                self.alive = Some(alive_w);
                self.exec_report = Some(report_r);
                Ok(Forked::Parent { child })
            }
            Ok(Forked::Child) => {
                drop((alive_w, report_r));
                let _ = linux::set_parent_death_signal();
                // Every write end closed (POLLHUP): C1 died before the
                // signal was armed, and nobody will send it.
                let mut fds = [PollFd::new(alive_r.as_fd(), PollFlags::POLLIN)];
                if matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
                    linux::exit_now(128 + libc::SIGKILL);
                }
                self.exec_report = Some(report_w);
                Ok(Forked::Child)
            }
        }
    }
}

/// The children P0 gets during the run besides C1: processes the command
/// left behind, re-parented to P0 (a child subreaper) when their parent
/// died. The caller's own children, there before, are left alone.
struct Orphans {
    callers: Vec<i32>,
}

impl Orphans {
    fn after(callers: Vec<i32>) -> Orphans {
        Orphans { callers }
    }

    /// Kills and reaps `first` (if given), then every child that was not
    /// the caller's before the run (see [`end_children`]).
    fn end(&self, first: Option<i32>) {
        if let Some(pid) = first {
            linux::kill_and_reap(pid);
        }
        end_children(&self.callers);
    }
}

/// Kills and reaps every child of this process but those in `keep`: what a
/// command left behind comes to a child subreaper when its parent dies.
/// Each one killed hands its own children to us in turn, so this repeats
/// until none is left (a process killed with SIGKILL forks no more). A
/// child is ours until we reap it, so its pid names it in between.
fn end_children(keep: &[i32]) {
    for _ in 0..64 {
        let adopted: Vec<i32> = linux::children()
            .into_iter()
            .filter(|p| !keep.contains(p))
            .collect();
        if adopted.is_empty() {
            return;
        }
        for pid in adopted {
            linux::kill_and_reap(pid);
        }
    }
}
