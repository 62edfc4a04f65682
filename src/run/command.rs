//! C2: the command's process. It waits for C1's go (the trace is written),
//! then execs the command, or becomes a middle process that forks it:
//! `--init` (pid 1 of the new pid namespace) or, in a joined pid
//! namespace, a child subreaper there (the command's orphans go to the
//! nearest subreaper of their own pid namespace, so neither the keeper nor
//! C1 would ever get them).

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use serde::{Deserialize, Serialize};

use super::{forwarded_set, reap};
use crate::error::Errno;
use crate::sync::Failure;
use crate::syscall::linux;
use crate::syscall::process::{self, Exit, Pidfd};
use crate::syscall::procfs::ProcRoot;
use crate::syscall::Forked;

/// A line on the report pipe, from the command's process to C1.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "kebab-case")]
pub(super) enum Report {
    /// The command could not run: exec failed, or a middle process could
    /// not fork it.
    Failed {
        /// Why.
        failure: Failure,
    },
    /// A middle process's command ended so (the middle process's own exit
    /// status cannot say "killed by signal n").
    Ended {
        /// How.
        exit: Exit,
    },
    /// The command's process is about to exec the command: from here on,
    /// its end is the command's.
    Exec,
}

/// What C2 starts with.
pub(super) struct CommandStart<'a> {
    pub program: &'a OsString,
    pub command: &'a [OsString],
    /// Be pid 1 of the new pid namespace (`--init`).
    pub init: bool,
    /// Be a middle process (`--init`, or a joined pid namespace).
    pub middle: bool,
    /// The go pipe's read end.
    pub go: File,
    /// The report pipe's write end.
    pub report: File,
    pub proc: &'a ProcRoot,
}

/// C2's life; its exit status.
pub(super) fn main(mut start: CommandStart<'_>) -> i32 {
    // One byte: go. The end without one: C1 is gone, or the run stopped
    // before the command's start. No EINTR: C1 set every action to its
    // default before it forked this process, so no handler can interrupt
    // the read (cargo-mutants found the arm that retried it unreachable).
    let mut byte = [0u8; 1];
    if !matches!(start.go.read(&mut byte), Ok(1)) {
        return 1;
    }
    if start.middle {
        return Middle { start }.main();
    }
    exec_command(start.program, start.command, &start.report)
}

fn report(to: &File, report: &Report) {
    if let Ok(mut line) = serde_json::to_vec(report) {
        line.push(b'\n');
        // One write(2) of a short line: atomic on a pipe.
        let _ = (&*to).write_all(&line);
    }
}

/// Runs the command in this process: every signal at its default action
/// and none blocked, then exec; on failure a report and exit status 127
/// (a command that could not run).
fn exec_command(program: &OsString, command: &[OsString], to: &File) -> i32 {
    // From here on this process's end is the command's: a signal kept for
    // it (blocked until now) is delivered when the mask empties, as to the
    // command.
    report(to, &Report::Exec);
    // The mask survives execve(2): C1 blocked every signal. The actions
    // are at their default already: C1 reset them all before it forked
    // this process (or the middle process that forked it), and no process
    // between installs one (resetting them again here was 63 sigaction
    // calls per run, issue 15).
    let _ = process::unblock_all_signals();
    let err = std::process::Command::new(program)
        .args(&command[1..])
        .exec();
    // Arguments with a NUL byte were refused before anything ran, which
    // leaves exec errors with an errno only.
    report(
        to,
        &Report::Failed {
            failure: Failure::Exec {
                program: program.to_string_lossy().into_owned(),
                errno: Errno::of_io(&err),
                message: err.to_string(),
            },
        },
    );
    127
}

/// Sends `signal` to the command, unless a terminal sent it
/// (`from_terminal`) and the command is in the terminal's foreground
/// process group, which the terminal sent it to: it has it already. The
/// terminal is the one on this process's stdin, stdout or stderr (its
/// foreground group, as this pid namespace numbers it: 0 for a group whose
/// leader it does not show, as the command's own would read).
fn forward(pidfd: &Pidfd, command: i32, signal: i32, from_terminal: bool) {
    if from_terminal {
        let foreground = (0..=2).find_map(|fd| {
            // SAFETY: tcgetpgrp takes an fd number by value and only asks
            // the kernel; an fd that is not a terminal answers -1.
            let g = unsafe { libc::tcgetpgrp(fd) };
            (g >= 0).then_some(g)
        });
        let its = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(command)));
        if foreground.is_some_and(|g| its.is_ok_and(|its| its.as_raw() == g)) {
            return;
        }
    }
    if let Ok(sig) = Signal::try_from(signal) {
        // ESRCH: it has ended, and its end is being reported.
        let _ = pidfd.send_signal(sig);
    }
}

/// `--init`, or the subreaper of a joined pid namespace: forks the
/// command, forwards the forwarded signals to it, reaps its orphans, and
/// when it ends, ends what is left and reports how it ended. Ends the
/// command and its orphans when C1 is gone (the go pipe's end).
struct Middle<'a> {
    start: CommandStart<'a>,
}

impl Middle<'_> {
    fn fail(&self, what: &str, errno: Errno) -> i32 {
        report(
            &self.start.report,
            &Report::Failed {
                failure: Failure::Supervise {
                    what: what.to_owned(),
                    errno: Some(errno),
                },
            },
        );
        1
    }

    fn main(self) -> i32 {
        let s = &self.start;
        let mut waited = forwarded_set();
        waited.add(Signal::SIGCHLD);
        // Every signal stays blocked (as C1 left them, from this process's
        // first instruction): a pid 1 is not sent a signal it has no
        // handler for, but a blocked one is never dropped. The waited ones
        // are read from a signalfd.
        let signals =
            match SignalFd::with_flags(&waited, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
                Ok(fd) => fd,
                Err(e) => return self.fail("creating the init's signalfd", Errno(e as i32)),
            };
        if !s.init {
            if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
                return self.fail(
                    "PR_SET_CHILD_SUBREAPER in the joined pid namespace",
                    Errno(e as i32),
                );
            }
        }
        let me = nix::unistd::getpid().as_raw();
        // SAFETY: this process is a forked child of single-threaded C1 and
        // started no thread.
        let command = match unsafe { process::fork_unchecked() } {
            Err(errno) => return self.fail("fork of the command", errno),
            Ok(Forked::Child) => {
                drop(signals);
                // Our parent is this process (pid 1 here, with --init).
                let _ = linux::die_with_parent(me);
                return exec_command(s.program, s.command, &s.report);
            }
            Ok(Forked::Parent { child }) => child,
        };
        let pidfd = match Pidfd::open(command) {
            Ok(p) => p,
            Err(errno) => {
                process::kill_and_reap(command);
                return self.fail("pidfd_open of the command", errno);
            }
        };
        // The command is in the caller's process group (inherited: a
        // joined pid namespace need not show that group's leader); this
        // process leaves it, so a signal for the whole group (`kill -9
        // -<pgid>`) leaves it here to end what the command started.
        let _ = nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0));
        let mut go = &s.go;
        let mut exit = None;
        let mut ended = false;
        while exit.is_none() {
            let mut fds = vec![
                PollFd::new(signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(s.go.as_fd(), PollFlags::POLLIN),
            ];
            if !ended {
                fds.push(PollFd::new(pidfd.as_fd(), PollFlags::POLLIN));
            }
            let timeout = if ended {
                PollTimeout::from(20u8)
            } else {
                PollTimeout::NONE
            };
            if matches!(poll(&mut fds, timeout), Err(e) if e != nix::errno::Errno::EINTR) {
                drop(fds);
                self.end_all(&[]);
                return 1;
            }
            let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
            let from_c1 = ready(&fds[1]);
            let command_ready = fds.get(2).is_some_and(ready);
            drop(fds);
            // C1 forwards what P0 got as messages on the go pipe (a signal,
            // and whether a terminal sent it); its end is C1 gone.
            let mut c1_gone = false;
            if from_c1 {
                let mut msg = [0u8; 2];
                match go.read(&mut msg) {
                    Ok(2) => forward(&pidfd, command, i32::from(msg[0]), msg[1] == 1),
                    Ok(_) | Err(_) => c1_gone = true,
                }
            }
            // Signals sent to this process itself (from inside the
            // namespace, as to any init) go to the command too.
            while let Ok(Some(info)) = signals.read_signal() {
                let signal = info.ssi_signo as i32;
                if signal != libc::SIGCHLD {
                    forward(&pidfd, command, signal, false);
                }
            }
            // Every child that ended (orphans included), the command's
            // status kept.
            while let Some((pid, e)) = process::reap_any() {
                if pid == command {
                    exit = Some(e);
                }
            }
            if exit.is_some() {
                break;
            }
            if c1_gone {
                // Nobody to report to: the command and its orphans end.
                let _ = pidfd.send_signal(Signal::SIGKILL);
                self.end_all(&[]);
                return 1;
            }
            if command_ready || ended {
                // Ended but not reaped: traced by a process that has not
                // collected its end. It goes (and with it the hold).
                ended = true;
                self.end_all(&[command]);
            }
        }
        let exit = exit.unwrap_or(Exit::Code(1));
        self.end_all(&[]);
        report(&s.report, &Report::Ended { exit });
        exit.status()
    }

    /// Kills and reaps every process left but `keep`: as pid 1, every
    /// process of the namespace (`kill(-1)` spares only the caller);
    /// otherwise every child (orphans come here, a subreaper).
    fn end_all(&self, keep: &[i32]) {
        // kill(-1) only where it means "every process of this namespace":
        // as its pid 1. run() refuses --init without a new pid namespace,
        // and this check does not trust that one: with it removed (a
        // mutant of check_command), an --init run in the host's pid
        // namespace killed every process of the machine.
        if self.start.init && nix::unistd::getpid().as_raw() == 1 {
            if keep.is_empty() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(-1), Signal::SIGKILL);
                reap::let_children_end(std::time::Duration::from_secs(2));
            } else {
                reap::end_children(self.start.proc, keep);
            }
        } else {
            reap::end_children(self.start.proc, keep);
        }
    }
}
