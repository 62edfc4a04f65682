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
    end_children_giving_up_after(proc, keep, NO_PROGRESS_LIMIT);
}

/// [`end_children`], giving up once nothing has ended for `limit` (the
/// tests' shorter limit keeps them short).
fn end_children_giving_up_after(proc: &ProcRoot, keep: &[i32], limit: Duration) {
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
        } else if progress.elapsed() > limit {
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

#[cfg(test)]
mod tests {
    //! Each test runs in a forked child of the test process
    //! ([`in_child`]), which is single-threaded and so may fork again, and
    //! allocates (glibc's fork takes every malloc lock first and resets
    //! them in the child; nothing here touches stdio or the environment).
    //! Its answer is an exit code: 0, or the number of the check that
    //! failed.
    use super::*;
    use crate::syscall::tests::in_child;
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

    /// Forks a child that runs `body` (system calls only) and leaves with
    /// its answer; its pid, or -1.
    fn fork_doing(body: impl FnOnce() -> i32) -> i32 {
        // SAFETY: called by in_child's forked child, which has one thread.
        match unsafe { process::fork_unchecked() } {
            Ok(crate::syscall::Forked::Child) => {
                let code = body();
                // SAFETY: _exit runs nothing of the parent's.
                unsafe { libc::_exit(code) }
            }
            Ok(crate::syscall::Forked::Parent { child }) => child,
            Err(_) => -1,
        }
    }

    /// A child of this process that sleeps until it is killed, traced
    /// (PTRACE_SEIZE) by a second child that never collects its end and
    /// exits after `hold`: once killed, the first is a zombie this process
    /// cannot reap until then (ptrace(2): a traced zombie goes to its
    /// tracer first), as when a tracer outside the run holds it. Answers
    /// (traced, tracer) once the tracer is attached.
    fn held_child(hold: Duration) -> Option<(i32, i32)> {
        let traced = fork_doing(|| loop {
            // SAFETY: pause takes nothing; the loop only waits for SIGKILL.
            unsafe { libc::pause() };
        });
        if traced < 0 {
            return None;
        }
        let (r, w) = nix::unistd::pipe().ok()?;
        let tracer = fork_doing(move || {
            let zero = std::ptr::null_mut::<libc::c_void>();
            // SAFETY: PTRACE_SEIZE takes a pid; addr and data are 0.
            if unsafe { libc::ptrace(libc::PTRACE_SEIZE, traced, zero, zero) } != 0 {
                return 1;
            }
            let _ = nix::unistd::write(&w, b"s");
            std::thread::sleep(hold);
            0
        });
        // The write end goes with the closure: EOF if the tracer fails.
        let mut byte = [0u8];
        if tracer < 0 || nix::unistd::read(&r, &mut byte) != Ok(1) {
            let _ = kill(Pid::from_raw(traced), Signal::SIGKILL);
            return None;
        }
        Some((traced, tracer))
    }

    fn reaped(pid: i32) -> bool {
        waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) == Err(nix::errno::Errno::ECHILD)
    }

    fn end_and_reap(pids: &[i32]) {
        for &pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for &pid in pids {
            let _ = waitpid(Pid::from_raw(pid), None);
        }
    }

    /// Children that become reapable one after another, 1.2 s and 2.6 s
    /// after the start, with a no-progress limit of 2 s: each end counts
    /// as progress, so both are reaped although the whole takes longer than
    /// the limit. (cargo-mutants: `ended &=` for `|=`, which never counted
    /// an end, gave up at 2 s; the limit compared with `<`, at once.)
    #[test]
    fn end_children_goes_on_while_children_end() {
        let code = in_child(|| {
            let Ok(proc) = ProcRoot::open() else {
                return 2;
            };
            let (Some((a, ta)), Some((b, tb))) = (
                held_child(Duration::from_millis(1200)),
                held_child(Duration::from_millis(2600)),
            ) else {
                return 3;
            };
            let started = Instant::now();
            end_children_giving_up_after(&proc, &[ta, tb], Duration::from_secs(2));
            let took = started.elapsed();
            let both = reaped(a) && reaped(b);
            end_and_reap(&[a, b, ta, tb]);
            if !both {
                4
            } else if took > Duration::from_millis(4500) {
                5
            } else {
                0
            }
        });
        assert_eq!(
            code, 0,
            "2: no /proc, 3: no traced child, 4: a child was left unreaped, 5: it took more than 4.5 s"
        );
    }

    /// A child that cannot be reaped for 4 s, with a no-progress limit of
    /// 1 s: end_children gives up after about 1 s and leaves it, having
    /// waited between its rounds (under 100 ms of CPU time in that second;
    /// a loop without the waits spends all of it, or its share of a busy
    /// machine's cores). cargo-mutants: the limit compared with `==`, never
    /// true, and `reap_within` that never gave up waited the 4 s;
    /// `reap_within` that gave up at its first look (its guard `true` or
    /// turned around, its deadline in the past) and its pause halved
    /// instead of doubled (down to none) spun.
    #[test]
    fn end_children_gives_up_when_nothing_ends_for_the_limit() {
        let code = in_child(|| {
            let Ok(proc) = ProcRoot::open() else {
                return 2;
            };
            let Some((a, ta)) = held_child(Duration::from_secs(4)) else {
                return 3;
            };
            let (started, cpu) = (Instant::now(), cpu_time());
            end_children_giving_up_after(&proc, &[ta], Duration::from_secs(1));
            let (took, spent) = (started.elapsed(), cpu_time().saturating_sub(cpu));
            let left = waitpid(Pid::from_raw(a), Some(WaitPidFlag::WNOHANG));
            end_and_reap(&[ta, a]);
            if left != Ok(WaitStatus::StillAlive) {
                4
            } else if took < Duration::from_secs(1) {
                5
            } else if took > Duration::from_millis(2500) {
                6
            } else if spent > Duration::from_millis(100) {
                7
            } else {
                0
            }
        });
        assert_eq!(
            code, 0,
            "2: no /proc, 3: no traced child, 4: the held child was reaped or gone, 5: gave up before 1 s, 6: went on past 2.5 s, 7: spent more than 100 ms of CPU"
        );
    }

    /// CPU time this process has spent (CLOCK_PROCESS_CPUTIME_ID).
    fn cpu_time() -> Duration {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime fills the timespec it is given, owned here.
        if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) } != 0 {
            return Duration::ZERO;
        }
        Duration::new(t.tv_sec.unsigned_abs(), t.tv_nsec.unsigned_abs() as u32)
    }

    /// A child that ends by itself after 600 ms is reaped, and
    /// let_children_end returns then (no child left: ECHILD), having slept
    /// between its looks (under 100 ms of CPU time where a loop without the
    /// sleep spends the whole 600 ms). cargo-mutants: the function
    /// replaced by `()` and its loop bound turned (`==`, `>`) returned at
    /// once; the sleep removed spun.
    #[test]
    fn let_children_end_reaps_a_child_that_ends_within_the_grace_and_sleeps_meanwhile() {
        let code = in_child(|| {
            let child = fork_doing(|| {
                std::thread::sleep(Duration::from_millis(600));
                0
            });
            if child < 0 {
                return 2;
            }
            let (started, cpu) = (Instant::now(), cpu_time());
            let_children_end(Duration::from_secs(3));
            let (took, spent) = (started.elapsed(), cpu_time().saturating_sub(cpu));
            let was_reaped = reaped(child);
            end_and_reap(&[child]);
            if !was_reaped {
                3
            } else if took < Duration::from_millis(550) || took > Duration::from_millis(2500) {
                4
            } else if spent > Duration::from_millis(100) {
                5
            } else {
                0
            }
        });
        assert_eq!(
            code, 0,
            "2: fork failed, 3: the child was not reaped, 4: it did not return when the child ended, 5: it spent more than 100 ms of CPU"
        );
    }

    /// A child that does not end is left to the caller once the grace
    /// (300 ms) has passed.
    #[test]
    fn let_children_end_returns_after_the_grace_and_kills_nothing() {
        let code = in_child(|| {
            let child = fork_doing(|| loop {
                // SAFETY: pause takes nothing; the loop waits for SIGKILL.
                unsafe { libc::pause() };
            });
            if child < 0 {
                return 2;
            }
            let started = Instant::now();
            let_children_end(Duration::from_millis(300));
            let took = started.elapsed();
            let left = waitpid(Pid::from_raw(child), Some(WaitPidFlag::WNOHANG));
            end_and_reap(&[child]);
            if left != Ok(WaitStatus::StillAlive) {
                3
            } else if took < Duration::from_millis(300) || took > Duration::from_millis(2000) {
                4
            } else {
                0
            }
        });
        assert_eq!(
            code, 0,
            "2: fork failed, 3: the child was reaped or killed, 4: it did not return at the grace"
        );
    }
}
