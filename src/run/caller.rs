//! P0: the caller's process. Checks the caller, takes over (and later gives
//! back) its signal state, forks the keeper, answers C1's sync points,
//! writes the trace file, forwards signals, and waits for the run to end.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::keeper::{Keeper, KeeperReport};
use super::{applier::Applier, forwarded_set, Failed, RunError, RunOptions, FORWARDED_SIGNALS};
use crate::error::Errno;
use crate::plan::Plan;
use crate::sync::{answer_sync, Channel, Failure, ToChild, ToParent};
use crate::syscall::linux;
use crate::syscall::process::{self, Exit, Pidfd};
use crate::syscall::procfs::ProcRoot;
use crate::syscall::Forked;
use crate::trace::Trace;

fn sys(what: &str) -> impl FnOnce(Errno) -> RunError + '_ {
    move |errno| RunError::Supervision {
        what: what.to_owned(),
        errno: Some(errno),
    }
}

fn nix_sys(what: &str) -> impl FnOnce(nix::errno::Errno) -> RunError + '_ {
    move |e| sys(what)(Errno(e as i32))
}

/// The `--trace` file: created before anything runs, written by P0 alone,
/// without ever blocking (a pipe that does not drain holds up only the
/// command's start).
pub(super) struct TraceOut {
    file: Option<(File, PathBuf)>,
    doc: Vec<u8>,
    written: usize,
    /// A document was completely written, or writing gave up: nothing
    /// more is written.
    done: bool,
}

impl TraceOut {
    /// Opens `path` for writing: created (mode 0666 less the umask) or
    /// truncated, `O_NONBLOCK | O_NOCTTY | O_CLOEXEC`.
    pub(super) fn create(path: Option<&Path>) -> Result<TraceOut, RunError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = match path {
            None => None,
            Some(path) => Some((
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                    .open(path)
                    .map_err(|e| match Errno::of_io(&e) {
                        Some(errno) => RunError::TraceFile {
                            path: path.to_owned(),
                            errno,
                        },
                        None => RunError::InvalidCommand {
                            reason: format!("trace file {path:?} cannot be created: {e}"),
                        },
                    })?,
                path.to_owned(),
            )),
        };
        Ok(TraceOut {
            file,
            doc: Vec::new(),
            written: 0,
            done: false,
        })
    }

    fn wanted(&self) -> bool {
        self.file.is_some()
    }

    /// Starts writing `trace` (replacing a document not yet written).
    fn begin(&mut self, trace: &Trace) {
        let mut doc = trace.to_json_pretty();
        doc.push('\n');
        self.doc = doc.into_bytes();
        self.written = 0;
    }

    /// Writes what the file takes now: `Ok(true)` when the document is
    /// complete.
    fn write_some(&mut self) -> Result<bool, Errno> {
        let Some((file, _)) = &self.file else {
            return Ok(true);
        };
        while self.written < self.doc.len() {
            match nix::unistd::write(file, &self.doc[self.written..]) {
                Ok(n) => self.written += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return Ok(false),
                Err(e) => return Err(Errno(e as i32)),
            }
        }
        self.done = true;
        Ok(true)
    }

    fn path(&self) -> &Path {
        self.file.as_ref().map_or(Path::new(""), |(_, p)| p)
    }

    /// Writes `trace` whole, waiting for the file as long as it takes,
    /// unless a document was written already (it stays). With signals
    /// blocked (during the run) a forwarded signal gives up the wait; before
    /// and after, the caller's own signal state decides.
    pub(super) fn write_final(&mut self, trace: &Trace) -> Result<(), Errno> {
        if self.done || !self.wanted() {
            return Ok(());
        }
        self.begin(trace);
        loop {
            if self.write_some()? {
                return Ok(());
            }
            let Some((file, _)) = &self.file else {
                return Ok(());
            };
            let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLOUT)];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(Errno(e as i32)),
            }
        }
    }
}

/// What [`super::run`] changes in the caller's process, given back on drop.
struct CallerState {
    /// SIGCHLD's action, when the caller ignored it (it is the default
    /// during the run); otherwise the run leaves it alone.
    ignored_chld: Option<process::SavedAction>,
    mask: SigSet,
    /// The mask during the run.
    run_mask: SigSet,
    dumpable: bool,
    /// The signals a failed write of the trace raises (SIGPIPE, SIGXFSZ),
    /// blocked during the run, that were pending before it: the others,
    /// pending at the end, are the run's own and are taken back.
    pending_before: Vec<Signal>,
}

/// The signals a write of the trace file raises when it fails (a pipe
/// without a reader, a file over RLIMIT_FSIZE): blocked during the run,
/// so the write fails with EPIPE or EFBIG instead of ending the caller.
const WRITE_SIGNALS: [Signal; 2] = [Signal::SIGPIPE, Signal::SIGXFSZ];

impl CallerState {
    /// Blocks the forwarded signals and the write signals; gives an
    /// ignored SIGCHLD its default action (an ignored SIGCHLD makes the
    /// kernel reap the run's processes at once, freeing their pids for
    /// reuse before a pidfd names them); a handler or the default stays,
    /// and SIGCHLD's place in the mask too, so the caller's own children
    /// are reported to it as ever. Returns the set to read from a
    /// signalfd: the forwarded signals, less those already pending unless
    /// `take_pending`.
    fn take_over(take_pending: bool) -> Result<(CallerState, SigSet), RunError> {
        let mask = SigSet::thread_get_mask().map_err(nix_sys("reading the signal mask"))?;
        let dumpable = linux::dumpable().unwrap_or(true);
        let pending = pending_signals().map_err(sys("reading the pending signals"))?;
        let chld =
            process::signal_action(Signal::SIGCHLD).map_err(sys("reading SIGCHLD's action"))?;
        let ignored_chld = if chld.is_ignored() {
            // Nothing is pending to lose: an ignored signal is never queued.
            process::default_signal_action(Signal::SIGCHLD)
                .map_err(sys("giving SIGCHLD its default action"))?;
            Some(chld)
        } else {
            None
        };
        let mut read = forwarded_set();
        if !take_pending {
            for s in FORWARDED_SIGNALS {
                if pending.contains(s) {
                    // Left pending, blocked: the caller's when run returns.
                    read.remove(s);
                }
            }
        }
        let mut run_mask = mask;
        for s in FORWARDED_SIGNALS.into_iter().chain(WRITE_SIGNALS) {
            run_mask.add(s);
        }
        let state = CallerState {
            ignored_chld,
            mask,
            run_mask,
            dumpable,
            pending_before: WRITE_SIGNALS
                .into_iter()
                .filter(|s| pending.contains(*s))
                .collect(),
        };
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&run_mask), None)
            .map_err(nix_sys("blocking the forwarded signals"))?;
        Ok((state, read))
    }
}

impl Drop for CallerState {
    fn drop(&mut self) {
        let _ = linux::set_dumpable(self.dumpable);
        if let Some(chld) = &self.ignored_chld {
            let _ = chld.restore(Signal::SIGCHLD);
            // The kernel would have reaped whatever of the caller's ended
            // meanwhile: nobody else will.
            while process::reap_any().is_some() {}
        }
        // A write signal the run raised itself (the trace's EPIPE, EFBIG)
        // is taken back; one the caller had pending stays.
        if let Ok(pending) = pending_signals() {
            for s in WRITE_SIGNALS {
                if pending.contains(s) && !self.pending_before.contains(&s) {
                    process::take_pending_signal(s);
                }
            }
        }
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.mask), None);
    }
}

/// The signals pending for this thread or process now (sigpending(2)).
fn pending_signals() -> Result<SigSet, Errno> {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigpending writes a whole sigset_t into the pointer, which
    // points at uninitialized storage of that type owned by this frame.
    if unsafe { libc::sigpending(set.as_mut_ptr()) } != 0 {
        return Err(Errno::last());
    }
    let mut out = SigSet::empty();
    // SAFETY: sigpending returned 0, so it initialized the set.
    let set = unsafe { set.assume_init() };
    for s in Signal::iterator() {
        // SAFETY: sigismember reads the initialized set; the signal number
        // is valid.
        if unsafe { libc::sigismember(&set, s as libc::c_int) } == 1 {
            out.add(s);
        }
    }
    Ok(out)
}

/// Everything between the checks of the command and the end of the run.
pub(super) fn run_as_caller(
    plan: &Plan,
    target: Option<&Pidfd>,
    command: &[OsString],
    options: &RunOptions,
    trace: &mut TraceOut,
) -> Result<Exit, Box<Failed>> {
    match linux::thread_count() {
        Ok(1) => {}
        Ok(threads) => return Err(RunError::Multithreaded { threads }.into()),
        Err(source) => return Err(RunError::ThreadCount { source }.into()),
    }
    // Checked once, here, in the caller's mount namespace: every process
    // of the run uses this fd, whatever is mounted at /proc later.
    let proc = ProcRoot::open().map_err(|e| RunError::Supervision {
        what: format!("/proc cannot be used: {}", e.reason),
        errno: e.errno,
    })?;
    let (state, read) = CallerState::take_over(options.forward_pending_signals)?;
    let result = fork_and_supervise(
        plan,
        target,
        command,
        options,
        trace,
        &proc,
        read,
        state.run_mask,
    );
    drop(state);
    result
}

#[allow(clippy::too_many_arguments)] // (the run's state, handed down once)
fn fork_and_supervise(
    plan: &Plan,
    target: Option<&Pidfd>,
    command: &[OsString],
    options: &RunOptions,
    trace: &mut TraceOut,
    proc: &ProcRoot,
    read: SigSet,
    run_mask: SigSet,
) -> Result<Exit, Box<Failed>> {
    let signals = SignalFd::with_flags(&read, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(nix_sys("creating the signalfd for forwarded signals"))?;
    let (parent_end, child_end) = Channel::pair().map_err(sys("creating the channel"))?;
    let (from_keeper, keeper_end) =
        process::socket_pair().map_err(sys("creating the keeper's socket"))?;
    let p0 = nix::unistd::getpid().as_raw();
    // Until the keeper's pidfd is taken, no SIGCHLD handler of the caller's
    // may run (one that reaps any child would free the keeper's pid).
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&chld), None)
        .map_err(nix_sys("blocking SIGCHLD for the fork"))?;
    // SAFETY: one thread: counted above, and nothing since starts one.
    let keeper = match unsafe { process::fork_unchecked() } {
        Err(errno) => return Err(RunError::Fork { errno }.into()),
        Ok(Forked::Child) => {
            // Nothing of P0's but what the keeper and C1 need.
            drop((parent_end, from_keeper, signals));
            trace.file = None;
            let keeper = Keeper {
                p0,
                proc,
                report: keeper_end,
                channel: child_end,
                applier: Applier {
                    plan,
                    program: &command[0],
                    command,
                    init: options.init,
                    proc,
                    target,
                },
            };
            // A panic must not unwind into the caller's frames, which
            // belong to P0: it ends the child with Rust's panic status.
            let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| keeper.main()))
                .unwrap_or(101);
            // Never return into the caller's stack, and never run P0's
            // exit handlers or flush its buffers: they belong to P0.
            process::exit_now(status)
        }
        Ok(Forked::Parent { child }) => child,
    };
    drop((child_end, keeper_end));
    // Our unreaped child: its pid names it.
    let opened = Pidfd::open(keeper);
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&run_mask), None);
    let keeper = match opened {
        Ok(p) => p,
        Err(errno) => {
            process::kill_and_reap(keeper);
            return Err(sys("pidfd_open of the keeper")(errno).into());
        }
    };
    // The maps are written into C1, never from C1 into us: nothing needs
    // this process's /proc files from here on.
    let _ = linux::set_dumpable(false);
    let applier = match receive_applier(&from_keeper) {
        Ok(applier) => applier,
        Err(error) => {
            // The keeper ends by itself (it failed, or it died).
            let _ = process::wait(keeper.pid());
            return Err(error.into());
        }
    };
    drop(from_keeper);
    Supervisor {
        plan,
        proc,
        keeper,
        keeper_ended: false,
        applier,
        channel: Some(parent_end),
        signals,
        trace,
        phase: Phase::Applying,
        report: Reported::default(),
    }
    .supervise()
}

/// The keeper's one message: C1's pidfd, or why there is no C1.
fn receive_applier(socket: &OwnedFd) -> Result<Pidfd, RunError> {
    let mut buf = [0u8; 4096];
    let (n, fd) = process::recv_fd(socket.as_fd(), &mut buf).map_err(sys(
        "receiving the pidfd of the child that applies the plan",
    ))?;
    if n == 0 {
        return Err(RunError::Supervision {
            what: "the keeper ended before it reported the child that applies the plan".to_owned(),
            errno: None,
        });
    }
    let report: KeeperReport =
        serde_json::from_slice(&buf[..n]).map_err(|e| RunError::Supervision {
            what: format!("the keeper's report is not a report: {e}"),
            errno: None,
        })?;
    match (report, fd) {
        (KeeperReport::Applier { pid }, Some(fd)) => Ok(Pidfd::from_owned(fd, pid)),
        (KeeperReport::Applier { .. }, None) => Err(RunError::Supervision {
            what: "the keeper's report came without the pidfd".to_owned(),
            errno: None,
        }),
        (KeeperReport::Failed { failure }, _) => Err(failure.into()),
    }
}

/// Where the run is, as P0 sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// C1 applies the plan.
    Applying,
    /// The plan is applied; the trace file is being written; the command
    /// waits.
    WritingTrace,
    /// The command may run.
    Started,
    /// P0 closed the channel: the run ends before the command starts.
    Stopping,
}

/// What P0 learned from C1.
#[derive(Default)]
struct Reported {
    exit: Option<Exit>,
    failure: Option<Failure>,
    steps: Option<Box<Trace>>,
    broken: Option<RunError>,
    stopped: Option<RunError>,
}

/// P0 after the forks.
struct Supervisor<'a> {
    plan: &'a Plan,
    proc: &'a ProcRoot,
    keeper: Pidfd,
    keeper_ended: bool,
    applier: Pidfd,
    channel: Option<Channel>,
    signals: SignalFd,
    trace: &'a mut TraceOut,
    phase: Phase,
    report: Reported,
}

impl Supervisor<'_> {
    /// Answers C1's sync points, writes the trace, forwards signals,
    /// collects C1's reports until the keeper has ended and the channel is
    /// closed (every message read).
    fn supervise(mut self) -> Result<Exit, Box<Failed>> {
        loop {
            // A message already read into the channel's buffer first,
            // without a system call.
            if self
                .channel
                .as_ref()
                .is_some_and(Channel::has_buffered_message)
            {
                self.receive();
                continue;
            }
            // The channel's end comes after C1's last message, so a keeper
            // seen ended never leaves a message unread.
            if self.keeper_ended && self.channel.is_none() {
                break;
            }
            let writing = self.phase == Phase::WritingTrace;
            let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
            let keeper_at = (!self.keeper_ended).then(|| {
                fds.push(PollFd::new(self.keeper.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            let channel_at = self.channel.as_ref().map(|c| {
                fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            let trace_fd = self.trace.file.as_ref().map(|(f, _)| f.as_fd());
            if let (true, Some(fd)) = (writing, trace_fd) {
                fds.push(PollFd::new(fd, PollFlags::POLLOUT));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    drop(fds);
                    self.stop(nix_sys("poll")(e));
                    continue;
                }
            }
            // What woke us, from poll's answer alone (issue 15: no second
            // poll of the channel or the keeper, no read of an empty
            // signalfd): any event, a hangup or an error included, is
            // looked at.
            let woke = |at: Option<usize>| {
                at.and_then(|i| fds[i].revents())
                    .is_some_and(|r| !r.is_empty())
            };
            let (signals, keeper, channel) = (woke(Some(0)), woke(keeper_at), woke(channel_at));
            drop(fds);
            // A keeper that died early is C1's to notice: it does not start
            // the command without one (and says so).
            if keeper {
                self.keeper_ended = true;
            }
            if channel {
                self.receive();
            }
            // Still writing (a trace that began in this round was tried once
            // already, by `handle`: another try finds the file as full).
            if self.phase == Phase::WritingTrace {
                self.write_trace();
            }
            if signals {
                self.forward_signals();
            }
        }
        let _ = process::wait(self.keeper.pid());
        self.conclude()
    }

    /// Reads and handles one message of C1; the channel is dropped at its
    /// end or when it fails.
    fn receive(&mut self) {
        let Some(channel) = &mut self.channel else {
            return;
        };
        match channel.recv::<ToParent>() {
            Ok(Some(msg)) => self.handle(msg),
            Ok(None) => self.channel = None,
            Err(e) => {
                self.report.broken = Some(RunError::Supervision {
                    what: format!("reading the reports of the child: {e}"),
                    errno: e.errno(),
                });
                self.channel = None;
            }
        }
    }

    fn handle(&mut self, msg: ToParent) {
        match msg {
            ToParent::Sync { point } => {
                let answer = match answer_sync(point, self.plan, self.proc, &self.applier) {
                    Ok(()) => ToChild::Ack,
                    Err(error) => ToChild::Refused { error },
                };
                // A child that died meanwhile shows up as the channel's end.
                self.send(&answer);
            }
            ToParent::Applied { trace } => {
                if self.phase != Phase::Applying {
                    return;
                }
                self.report.steps = Some(Box::new(trace.clone()));
                if self.trace.wanted() {
                    self.trace.begin(&trace);
                    self.phase = Phase::WritingTrace;
                    self.write_trace();
                } else {
                    self.start();
                }
            }
            ToParent::Exited { exit } => self.report.exit = Some(exit),
            ToParent::Failed { failure, trace } => {
                self.report.failure = Some(failure);
                if let Some(t) = trace {
                    self.report.steps = Some(Box::new(t));
                }
            }
        }
    }

    fn send(&mut self, msg: &ToChild) {
        if let Some(c) = &mut self.channel {
            let _ = c.send(msg);
        }
    }

    fn start(&mut self) {
        self.phase = Phase::Started;
        self.send(&ToChild::Start);
    }

    /// Ends the run before the command starts (or, after, gives up
    /// supervising it): closing the channel tells C1 that P0 is gone, and
    /// C1 ends the command's process and what it left.
    fn stop(&mut self, why: RunError) {
        if self.report.stopped.is_none() {
            self.report.stopped = Some(why);
        }
        self.channel = None;
        self.phase = Phase::Stopping;
    }

    fn write_trace(&mut self) {
        match self.trace.write_some() {
            Ok(true) => self.start(),
            Ok(false) => {}
            Err(errno) => {
                self.trace.done = true;
                let what = format!("writing the trace file {:?}", self.trace.path());
                self.stop(RunError::Supervision {
                    what,
                    errno: Some(errno),
                });
            }
        }
    }

    fn forward_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            let signal = info.ssi_signo as i32;
            if self.phase == Phase::WritingTrace {
                // The file did not take the trace: it is not waited for again.
                self.trace.done = true;
                self.stop(RunError::Interrupted { signal });
                continue;
            }
            // A terminal's signal (the kernel's, but a hangup, which goes to
            // the session leader alone) went to the terminal's foreground
            // process group: C1 skips it when the command is in that group.
            let terminal_group = (info.ssi_code == libc::SI_KERNEL && signal != libc::SIGHUP)
                .then(foreground_group)
                .flatten();
            // To C1, which sends it to the command (or keeps it until the
            // command has started). C1 gone: nothing to forward to.
            self.send(&ToChild::Signal {
                signal,
                terminal_group,
            });
        }
    }

    fn conclude(self) -> Result<Exit, Box<Failed>> {
        let r = self.report;
        let steps = r.steps;
        if let Some(error) = r.stopped {
            return Err(Box::new(Failed { error, steps }));
        }
        if let Some(failure) = r.failure {
            return Err(Box::new(Failed {
                error: failure.into(),
                steps,
            }));
        }
        if let Some(exit) = r.exit {
            return Ok(exit);
        }
        Err(Box::new(Failed {
            error: r.broken.unwrap_or(RunError::Unreported),
            steps,
        }))
    }
}

/// The foreground process group of this process's controlling terminal
/// (tcgetpgrp(3) on `/dev/tty`), if it has one.
fn foreground_group() -> Option<i32> {
    use std::os::unix::fs::OpenOptionsExt;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open("/dev/tty")
        .ok()?;
    // SAFETY: tcgetpgrp takes the fd by value; `tty` keeps it open for the
    // call.
    let group = unsafe { libc::tcgetpgrp(std::os::fd::AsRawFd::as_raw_fd(&tty)) };
    // 0: a group whose leader this pid namespace does not show.
    (group >= 0).then_some(group)
}
