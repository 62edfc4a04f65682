//! Ending and reaping the processes a run leaves behind: what comes to a
//! child subreaper (the keeper, C1, a pid-namespace middle process) when
//! its parent dies.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::Errno;
use crate::syscall::process::{self, Exit, Pidfd};
use crate::syscall::procfs::ProcRoot;

/// How long [`end_children`] goes on without any child ending before it
/// gives up (a process in D state, a zombie a tracer outside the run
/// holds).
const NO_PROGRESS_LIMIT: Duration = Duration::from_secs(5);

/// Kills and reaps every child of this process but those in `keep`, and
/// every child that comes to it meanwhile: each one killed hands its own
/// children to this process (a child subreaper) in turn, so this repeats,
/// however deep the chain, until none is left or nothing has ended for
/// [`NO_PROGRESS_LIMIT`]. A child is ours until we reap it, so its pid
/// names it in between. Children are found through `proc`
/// ([`ProcRoot::children`]); when it cannot list them, nothing is done.
pub(super) fn end_children(proc: &ProcRoot, keep: &[i32]) {
    let mut progress = Instant::now();
    loop {
        let Ok(children) = proc.children() else {
            return;
        };
        let ours: Vec<_> = children
            .into_iter()
            .filter(|c| !keep.contains(&c.pid))
            .collect();
        if ours.is_empty() {
            return;
        }
        for c in &ours {
            if !c.zombie {
                let _ = kill(Pid::from_raw(c.pid), Signal::SIGKILL);
            }
        }
        let mut ended = false;
        for c in &ours {
            ended |= reap_within(c.pid, Duration::from_millis(50)).is_some();
        }
        if ended {
            progress = Instant::now();
        } else if progress.elapsed() > NO_PROGRESS_LIMIT {
            return;
        }
    }
}

/// Reaps the children that end by themselves within `grace` (or until
/// none is left), without killing any.
pub(super) fn let_children_end(grace: Duration) {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        match nix::sys::wait::waitpid(
            Pid::from_raw(-1),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        ) {
            Err(nix::errno::Errno::ECHILD) => return,
            Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {}
        }
    }
}

/// Reaps the child `pid` if it ends within `within`: its exit, or `None`
/// (still running, or a zombie its tracer has not released). ECHILD (it
/// is no child of ours any more) counts as ended, with no exit to give.
fn reap_within(pid: i32, within: Duration) -> Option<Option<Exit>> {
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_micros(50);
    loop {
        match process::try_wait(pid) {
            Ok(Some(exit)) => return Some(Some(exit)),
            Err(_) => return Some(None),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
        }
    }
}

/// Waits for the child `pid` (its pidfd: `pidfd`) to end and reaps it.
/// A child that has ended but cannot be reaped is traced by a process that
/// has not collected its end: when that tracer is one of this process's
/// children (the command traced by its own child, re-parented here when the
/// command ended), it is killed, which releases the child. Gives up after
/// `limit`.
///
/// # Errors
///
/// The errno of waitpid(2); `None` when `limit` passed first.
pub(super) fn wait_ended(
    proc: &ProcRoot,
    pidfd: &Pidfd,
    pid: i32,
    limit: Duration,
) -> Result<Option<Exit>, Errno> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(exit) = process::try_wait(pid)? {
            return Ok(Some(exit));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        if pidfd.has_exited() {
            // Ended, not reapable: traced. Its tracer, if ours, goes.
            end_children(proc, &[pid]);
            std::thread::sleep(Duration::from_millis(2));
        } else {
            let mut fds = [nix::poll::PollFd::new(
                pidfd.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
        }
    }
}
