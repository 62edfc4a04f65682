//! K: the keeper. P0's child and C1's parent, in the caller's namespaces,
//! in a process group of its own (C1 and the command stay in the caller's),
//! blocking every signal but SIGKILL. It
//! is a child subreaper above C1, so when C1 dies (even by SIGKILL) what
//! C1 had (the command's process, the orphans it adopted) comes here and
//! is ended; and when P0 dies, it gives C1 time to end the command, then
//! ends C1 and what is left.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::applier::Applier;
use super::reap;
use crate::error::Errno;
use crate::sync::{Channel, Failure};
use crate::syscall::linux;
use crate::syscall::process::{self, Exit, Pidfd};
use crate::syscall::procfs::ProcRoot;
use crate::syscall::Forked;

/// How long C1 may take to end the command and what it left once P0 is
/// gone, before the keeper kills it.
const APPLIER_GRACE: Duration = Duration::from_secs(10);

/// How long the children C1 left may take to end by themselves when C1
/// was killed (a pid-namespace middle process ends its command and its
/// orphans when it sees C1 gone), before the keeper kills them.
const ORPHAN_GRACE: Duration = Duration::from_secs(2);

/// The keeper's one message to P0 (with C1's pidfd attached to
/// [`KeeperReport::Applier`]).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "kebab-case")]
pub(super) enum KeeperReport {
    /// C1 exists; its pidfd comes with this message.
    Applier {
        /// C1's pid (for messages).
        pid: i32,
    },
    /// The keeper could not make C1.
    Failed {
        /// Why.
        failure: Failure,
    },
}

/// What the keeper starts with.
pub(super) struct Keeper<'a> {
    /// P0's pid.
    pub p0: i32,
    /// The procfs P0 checked.
    pub proc: &'a ProcRoot,
    /// The socket to P0 for the [`KeeperReport`].
    pub report: OwnedFd,
    /// C1's end of the channel to P0.
    pub channel: Channel,
    /// C1.
    pub applier: Applier<'a>,
}

impl Keeper<'_> {
    /// The keeper's whole life; its exit status (nobody reads it).
    pub(super) fn main(self) -> i32 {
        let fail = |report: &OwnedFd, what: &str, errno: Option<Errno>| {
            let failure = Failure::Supervise {
                what: what.to_owned(),
                errno,
            };
            send(report, &KeeperReport::Failed { failure }, None);
            1
        };
        if let Err(errno) = process::block_all_signals() {
            return fail(&self.report, "blocking the keeper's signals", Some(errno));
        }
        let _ = linux::set_dumpable(false);
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            return fail(
                &self.report,
                "PR_SET_CHILD_SUBREAPER in the keeper",
                Some(Errno(e as i32)),
            );
        }
        let p0 = match Pidfd::open(self.p0) {
            Ok(p) => p,
            Err(errno) => return fail(&self.report, "pidfd_open of the caller", Some(errno)),
        };
        if nix::unistd::getppid().as_raw() != self.p0 {
            // P0 died before its pidfd was taken: nothing to run for.
            return 1;
        }
        let (alive_r, alive_w) = match process::pipe() {
            Ok(p) => p,
            Err(errno) => return fail(&self.report, "creating the keeper's pipe", Some(errno)),
        };
        let me = nix::unistd::getpid().as_raw();
        // SAFETY: the keeper is a forked child of a single-threaded
        // process and started no thread.
        let applier = match unsafe { process::fork_unchecked() } {
            Err(errno) => {
                send(
                    &self.report,
                    &KeeperReport::Failed {
                        failure: Failure::Fork { errno },
                    },
                    None,
                );
                return 1;
            }
            Ok(Forked::Child) => {
                drop((self.report, p0, alive_w));
                return self.applier.main(self.channel, alive_r, me);
            }
            Ok(Forked::Parent { child }) => child,
        };
        // C1 stays in the caller's process group, and the command's process
        // with it (no pid namespace has to show that group's leader for
        // that). The keeper leaves it: a signal for the whole group
        // (`kill -9 -<pgid>`) does not reach it, so it is there to end what
        // is left.
        if let Err(e) =
            nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0))
        {
            process::kill_and_reap(applier);
            return fail(&self.report, "setpgid of the keeper", Some(Errno(e as i32)));
        }
        drop((self.channel, alive_r));
        // Our unreaped child: its pid names it.
        let c1 = match Pidfd::open(applier) {
            Ok(p) => p,
            Err(errno) => {
                process::kill_and_reap(applier);
                return fail(
                    &self.report,
                    "pidfd_open of the child that applies the plan",
                    Some(errno),
                );
            }
        };
        // P0 gone: its pidfd shows it below.
        send(
            &self.report,
            &KeeperReport::Applier { pid: applier },
            Some(&c1),
        );
        drop(self.report);
        watch(&p0, &c1);
        let exit = process::wait(applier);
        if matches!(exit, Ok(Exit::Signal(_))) {
            reap::let_children_end(ORPHAN_GRACE);
        }
        // C1 is gone: what it had came here.
        reap::end_children(self.proc, &[]);
        // C1 watched this end for the keeper's death until now.
        drop(alive_w);
        0
    }
}

/// Waits until C1 has ended; when P0 ends first, gives C1 its grace (it
/// sees the end of P0's channel and ends the command), then kills it.
fn watch(p0: &Pidfd, c1: &Pidfd) {
    loop {
        let mut fds = [
            PollFd::new(p0.as_fd(), PollFlags::POLLIN),
            PollFd::new(c1.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            // Nothing to wait with: C1 is ended now rather than never.
            Err(_) => {
                let _ = c1.send_signal(Signal::SIGKILL);
                return;
            }
        }
        let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
        if ready(&fds[1]) {
            return;
        }
        if ready(&fds[0]) {
            let mut fds = [PollFd::new(c1.as_fd(), PollFlags::POLLIN)];
            let grace = PollTimeout::try_from(APPLIER_GRACE).unwrap_or(PollTimeout::MAX);
            if !matches!(poll(&mut fds, grace), Ok(n) if n > 0) {
                let _ = c1.send_signal(Signal::SIGKILL);
            }
            return;
        }
    }
}

fn send(socket: &OwnedFd, report: &KeeperReport, pidfd: Option<&Pidfd>) {
    // Serializing a plain enum cannot fail; P0 gone is seen elsewhere.
    if let Ok(bytes) = serde_json::to_vec(report) {
        let _ = process::send_fd(socket.as_fd(), &bytes, pidfd.map(Pidfd::as_fd));
    }
}
