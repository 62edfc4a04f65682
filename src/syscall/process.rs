//! What `run` needs to handle processes: pidfds, fork without the thread
//! check, waits, the signal state a command starts with, pipes and Unix
//! sockets (with fd passing).

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};

use crate::error::Errno;
use crate::syscall::Forked;

fn nix_errno(e: nix::errno::Errno) -> Errno {
    Errno::from(e)
}

/// fork(2) without the thread check of [`Linux`](crate::syscall::linux::Linux)'s `fork` (whose read of
/// `/proc/self/stat` needs a free fd, and whose failure would be blamed on
/// the fork).
///
/// # Safety
///
/// The calling process must have exactly one thread, and must not be able
/// to gain one before the call (a process forked from a single-threaded
/// one, or a caller that just counted its threads and started none since):
/// the child goes on running arbitrary Rust code, which is sound only in
/// the child of a single-threaded process.
///
/// # Errors
///
/// The errno of fork(2): EAGAIN or ENOMEM.
pub unsafe fn fork_unchecked() -> Result<Forked, Errno> {
    // SAFETY: the caller guarantees a single thread (this function's
    // contract), so the child is a complete copy of the process.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { child }) => Ok(Forked::Parent {
            child: child.as_raw(),
        }),
        Ok(ForkResult::Child) => Ok(Forked::Child),
        Err(e) => Err(nix_errno(e)),
    }
}

/// `pidfd_open(pid, 0)` (pidfd_open(2), Linux 5.3): a new fd on the
/// process, close-on-exec (every pidfd is).
///
/// # Errors
///
/// ESRCH when no such process exists, ENOSYS before Linux 5.3.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags by value and returns a new
    // fd or -1; no memory is passed.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // -1 and errno on failure; any other value is an fd (0 too, when the
    // caller's stdin is closed).
    let r = nix::errno::Errno::result(r).map_err(nix_errno)?;
    // A valid fd fits an i32; the kernel returns nothing else on success.
    let raw = i32::try_from(r).map_err(|_| Errno::EBADF)?;
    // SAFETY: pidfd_open returned a new fd that nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
}

/// A pidfd (pidfd_open(2), Linux 5.3): a handle on one process that stays
/// with it, so no pid reuse can make a signal or a lookup reach another.
#[derive(Debug)]
pub struct Pidfd {
    fd: OwnedFd,
    pid: i32,
}

impl Pidfd {
    /// `pidfd_open(pid, 0)`. For a child of the caller that it has not
    /// reaped, the pid cannot name another process in between (a pid is
    /// reused only after its process is reaped), so the pidfd is that
    /// child's.
    ///
    /// # Errors
    ///
    /// ESRCH when no such process exists, ENOSYS before Linux 5.3.
    pub fn open(pid: i32) -> Result<Pidfd, Errno> {
        pidfd_open(pid).map(|fd| Pidfd { fd, pid })
    }

    /// A pidfd received from another process (over a Unix socket), for the
    /// process it names as `pid` (for messages only).
    pub fn from_owned(fd: OwnedFd, pid: i32) -> Pidfd {
        Pidfd { fd, pid }
    }

    /// The pid given when it was opened (as the opener's pid namespace saw it).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The fd.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }

    /// `pidfd_send_signal(pidfd, sig, NULL, 0)`.
    ///
    /// # Errors
    ///
    /// ESRCH when the process has exited, EPERM without permission.
    pub fn send_signal(&self, sig: Signal) -> Result<(), Errno> {
        // SAFETY: the fd is open for the call (borrowed from self); the
        // siginfo pointer is NULL, which the call documents as "as kill(2)
        // would fill it"; flags are 0.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        nix::errno::Errno::result(r).map(drop).map_err(nix_errno)
    }

    /// Whether the process has exited (the pidfd polls readable).
    pub fn has_exited(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(self.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }
}

/// Sets the action of `sig` to its default (`SIG_DFL`) and returns the one
/// it had, for [`restore_signal_action`].
///
/// # Errors
///
/// The errno of sigaction(2) (EINVAL for SIGKILL and SIGSTOP).
pub fn default_signal_action(sig: Signal) -> Result<SigAction, Errno> {
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_DFL installs no handler, so no code of ours can run in
    // signal context because of it.
    unsafe { sigaction(sig, &dfl) }.map_err(nix_errno)
}

/// A signal's action as the kernel holds it, read without changing it
/// ([`signal_action`]) and given back as it was ([`SavedAction::restore`]).
#[derive(Clone, Copy)]
pub struct SavedAction(libc::sigaction);

impl std::fmt::Debug for SavedAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedAction")
            .field("handler", &self.0.sa_sigaction)
            .field("flags", &self.0.sa_flags)
            .finish()
    }
}

impl SavedAction {
    /// Whether it is "ignore" (`SIG_IGN`).
    pub fn is_ignored(&self) -> bool {
        self.0.sa_sigaction == libc::SIG_IGN
    }

    /// Installs it again for `sig`.
    ///
    /// # Errors
    ///
    /// The errno of sigaction(2).
    pub fn restore(&self, sig: Signal) -> Result<(), Errno> {
        // SAFETY: the action is one the kernel returned for `sig` (a
        // handler this process had installed, or SIG_DFL/SIG_IGN); a null
        // old-action pointer asks for nothing back.
        if unsafe { libc::sigaction(sig as libc::c_int, &self.0, std::ptr::null_mut()) } != 0 {
            return Err(Errno::last());
        }
        Ok(())
    }
}

/// The action of `sig` now, unchanged (sigaction(2) with no new action).
///
/// # Errors
///
/// The errno of sigaction(2).
pub fn signal_action(sig: Signal) -> Result<SavedAction, Errno> {
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::uninit();
    // SAFETY: a null new action only reads the current one into `old`,
    // storage of the right type owned by this frame; nothing is installed.
    if unsafe { libc::sigaction(sig as libc::c_int, std::ptr::null(), old.as_mut_ptr()) } != 0 {
        return Err(Errno::last());
    }
    // SAFETY: sigaction returned 0, so it wrote the whole struct.
    Ok(SavedAction(unsafe { old.assume_init() }))
}

/// Takes a pending, blocked `sig` off this thread (sigtimedwait(2) with a
/// zero timeout), so it is not delivered when it is unblocked. Nothing
/// happens when it is not pending.
pub fn take_pending_signal(sig: Signal) {
    let mut set = SigSet::empty();
    set.add(sig);
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the set and the timeout are live locals; a null info pointer
    // asks for no siginfo.
    unsafe {
        libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &zero);
    }
}

/// Sets the action of `sig` to "ignore" (`SIG_IGN`).
///
/// # Errors
///
/// The errno of sigaction(2) (EINVAL for SIGKILL and SIGSTOP).
pub fn ignore_signal(sig: Signal) -> Result<(), Errno> {
    let ign = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_IGN installs no handler, so no code of ours can run in
    // signal context because of it.
    unsafe { sigaction(sig, &ign) }.map(drop).map_err(nix_errno)
}

/// Gives `sig` back the action `previous` (from [`default_signal_action`]).
///
/// # Errors
///
/// The errno of sigaction(2).
pub fn restore_signal_action(sig: Signal, previous: &SigAction) -> Result<(), Errno> {
    // SAFETY: `previous` is the action this process had installed for
    // `sig` (the kernel returned it); installing it again adds no handler
    // that was not there before.
    unsafe { sigaction(sig, previous) }
        .map(drop)
        .map_err(nix_errno)
}

/// Every signal back to its default action and none blocked: the state a
/// command must start in, whatever its caller ignored or blocked (ignored
/// signals and the mask survive execve(2); handlers do not).
///
/// # Errors
///
/// The errno of sigprocmask(2).
pub fn reset_signals() -> Result<(), Errno> {
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // Only SIGKILL and SIGSTOP refuse a default action.
        let _ = default_signal_action(sig);
    }
    // The real-time signals, 32 to 64 in the kernel's numbering: nix's
    // Signal has none, and glibc's sigaction refuses the two it keeps for
    // itself (32, 33), which a caller may still have left ignored. The
    // system call takes them all.
    for raw in 32..=64 {
        // The kernel's struct sigaction: handler, flags, restorer, mask.
        // All zero is SIG_DFL, no flags, an empty mask.
        let act = [0u64; 4];
        // SAFETY: rt_sigaction reads `act` (a live local large enough for
        // the kernel's struct with an 8-byte mask) and writes nothing (the
        // old action is null); SIG_DFL installs no handler.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                raw,
                act.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            );
        }
    }
    unblock_all_signals()
}

/// Empties this thread's signal mask: [`reset_signals`]'s last step, on its
/// own for a process whose actions are all at their default already (a
/// child of one that reset them and installed nothing since).
///
/// # Errors
///
/// The errno of sigprocmask(2).
pub fn unblock_all_signals() -> Result<(), Errno> {
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    )
    .map_err(nix_errno)
}

/// `_exit(code)`: ends the process at once, without running destructors,
/// atexit handlers or flushing stdio buffers (which belong to the parent
/// in a forked child).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) has no preconditions; it never returns, so no Rust
    // value is used after it.
    unsafe { libc::_exit(code) }
}

/// Sends SIGKILL to `pid` and waits for it, ignoring a process that is
/// already gone (ESRCH) or already reaped (ECHILD).
pub fn kill_and_reap(pid: i32) {
    let p = Pid::from_raw(pid);
    let _ = kill(p, Signal::SIGKILL);
    while let Err(nix::errno::Errno::EINTR) = waitpid(p, None) {}
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
}

impl Exit {
    /// The shell's view of the status: the exit code, or 128 + the signal
    /// number when the process was killed.
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

    fn of(status: nix::sys::wait::WaitStatus) -> Option<(i32, Exit)> {
        use nix::sys::wait::WaitStatus;
        match status {
            WaitStatus::Exited(pid, code) => Some((pid.as_raw(), Exit::Code(code))),
            WaitStatus::Signaled(pid, sig, _) => Some((pid.as_raw(), Exit::Signal(sig as i32))),
            _ => None,
        }
    }
}

/// Waits for the child `pid` to end (waitpid(2)) and reaps it.
///
/// # Errors
///
/// The errno of waitpid(2) (ECHILD when `pid` is not a child).
pub fn wait(pid: i32) -> Result<Exit, Errno> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(status) => {
                if let Some((_, exit)) = Exit::of(status) {
                    return Ok(exit);
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(nix_errno(e)),
        }
    }
}

/// Reaps the child `pid` if it has ended (waitpid(2) with `WNOHANG`).
///
/// # Errors
///
/// The errno of waitpid(2) (ECHILD when `pid` is not a child, or was
/// reaped already).
pub fn try_wait(pid: i32) -> Result<Option<Exit>, Errno> {
    use nix::sys::wait::WaitPidFlag;
    match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(status) => Ok(Exit::of(status).map(|(_, e)| e)),
        Err(e) => Err(nix_errno(e)),
    }
}

/// Reaps one child that has ended, whichever it is (`waitpid(-1,
/// WNOHANG)`): its pid and how it ended, or `None` when no child has ended
/// (or there is none).
pub fn reap_any() -> Option<(i32, Exit)> {
    use nix::sys::wait::WaitPidFlag;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => return None,
            Ok(status) => {
                if let Some(ended) = Exit::of(status) {
                    return Some(ended);
                }
                // A tracee's stop (reported without WUNTRACED): not an
                // end; look again.
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return None,
        }
    }
}

/// A connected pair of Unix stream sockets, close-on-exec
/// (socketpair(2)).
///
/// # Errors
///
/// The errno of socketpair(2).
pub fn socket_pair() -> Result<(OwnedFd, OwnedFd), Errno> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(nix_errno)
}

/// Sends `data` and the fd `fd` over the Unix socket `socket` in one
/// sendmsg(2) (`SCM_RIGHTS`, unix(7)), with `MSG_NOSIGNAL`.
///
/// # Errors
///
/// The errno of sendmsg(2).
pub fn send_fd(
    socket: std::os::fd::BorrowedFd<'_>,
    data: &[u8],
    fd: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<(), Errno> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [std::io::IoSlice::new(data)];
    let raw = fd.map(|f| [f.as_raw_fd()]);
    let cmsg: Vec<ControlMessage<'_>> = raw.iter().map(|r| ControlMessage::ScmRights(r)).collect();
    let sent = loop {
        match sendmsg::<()>(
            socket.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(n) => break n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(nix_errno(e)),
        }
    };
    // The fd went with the first byte; the rest, if the socket took only
    // part (it never does with a short message), follows.
    let mut rest = &data[sent..];
    while let [_, ..] = rest {
        match nix::sys::socket::send(socket.as_raw_fd(), rest, MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => rest = &rest[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(nix_errno(e)),
        }
    }
    Ok(())
}

/// Receives one message of at most `buf.len()` bytes and at most one fd
/// sent by [`send_fd`] (recvmsg(2) with `MSG_CMSG_CLOEXEC`): the bytes read
/// (0 at the end of the stream) and the fd, owned.
///
/// # Errors
///
/// The errno of recvmsg(2).
pub fn recv_fd(
    socket: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<(usize, Option<OwnedFd>), Errno> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    loop {
        let mut iov = [std::io::IoSliceMut::new(buf)];
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fd = None;
                for c in msg.cmsgs().map_err(nix_errno)? {
                    if let ControlMessageOwned::ScmRights(fds) = c {
                        for raw in fds {
                            // SAFETY: the kernel installed `raw` in this
                            // process for this message; nothing else owns it.
                            let owned =
                                unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
                            // More than one: the rest are closed here.
                            if fd.is_none() {
                                fd = Some(owned);
                            }
                        }
                    }
                }
                return Ok((msg.bytes, fd));
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(nix_errno(e)),
        }
    }
}

/// Blocks every signal that can be blocked (sigprocmask(2)): a process of
/// nsapply's own is ended by nothing but SIGKILL, and reads the signals it
/// wants from a signalfd.
///
/// # Errors
///
/// The errno of sigprocmask(2).
pub fn block_all_signals() -> Result<(), Errno> {
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        None,
    )
    .map_err(nix_errno)
}

/// A close-on-exec pipe, `(read end, write end)` (pipe2(2)).
///
/// # Errors
///
/// The errno of pipe2(2).
pub fn pipe() -> Result<(File, File), Errno> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(nix_errno)?;
    Ok((File::from(r), File::from(w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pidfd_signals_its_process_and_says_esrch_once_it_is_reaped() {
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pidfd = Pidfd::open(sleeper.id() as i32).unwrap();
        assert!(!pidfd.has_exited());
        assert_eq!(pidfd.send_signal(Signal::SIGTERM), Ok(()));
        let status = sleeper.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGTERM)
        );
        assert!(pidfd.has_exited());
        assert_eq!(pidfd.send_signal(Signal::SIGTERM), Err(Errno::ESRCH));
    }

    #[test]
    fn signal_actions_are_read_ignored_defaulted_and_given_back() {
        // In a child: the actions and the mask are the whole process's.
        let code = crate::syscall::tests::in_child(|| {
            let sig = Signal::SIGUSR2;
            let steps = || -> Result<bool, Errno> {
                let before = signal_action(sig)?;
                ignore_signal(sig)?;
                let ignored = signal_action(sig)?.is_ignored();
                before.restore(sig)?;
                let back = !signal_action(sig)?.is_ignored();
                ignore_signal(sig)?;
                let previous = default_signal_action(sig)?;
                let defaulted = !signal_action(sig)?.is_ignored();
                restore_signal_action(sig, &previous)?;
                let given_back = signal_action(sig)?.is_ignored();
                Ok(!before.is_ignored() && ignored && back && defaulted && given_back)
            };
            match steps() {
                Ok(true) => 0,
                Ok(false) => 1,
                Err(_) => 2,
            }
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn block_all_signals_blocks_every_one_it_can() {
        let code = crate::syscall::tests::in_child(|| {
            if block_all_signals().is_err() {
                return 2;
            }
            let Ok(now) = SigSet::thread_get_mask() else {
                return 3;
            };
            // The kernel never blocks SIGKILL and SIGSTOP.
            let all = Signal::iterator()
                .filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP))
                .all(|s| now.contains(s));
            i32::from(!all)
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn a_pending_blocked_signal_is_taken_back() {
        let code = crate::syscall::tests::in_child(|| {
            let mut set = SigSet::empty();
            set.add(Signal::SIGUSR2);
            if set.thread_block().is_err() || nix::sys::signal::raise(Signal::SIGUSR2).is_err() {
                return 3;
            }
            let pending = || {
                let mut now = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
                // SAFETY: sigpending fills the set it is given, storage of
                // the right type owned by this frame.
                unsafe {
                    libc::sigpending(now.as_mut_ptr()) == 0
                        && libc::sigismember(now.as_ptr(), libc::SIGUSR2) == 1
                }
            };
            if !pending() {
                return 2;
            }
            take_pending_signal(Signal::SIGUSR2);
            i32::from(pending())
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn reap_any_reaps_what_ended_and_returns_at_once_while_children_live() {
        // In a child, whose children are its own; an alarm ends it (as
        // signal 14) if reap_any does not return.
        let code = crate::syscall::tests::in_child(|| {
            // SAFETY: alarm only arms a timer.
            unsafe { libc::alarm(5) };
            // SAFETY: the grandchildren make only system calls.
            let live = match unsafe { nix::unistd::fork() } {
                Ok(nix::unistd::ForkResult::Child) => {
                    // Ends with its parent, whatever ends that.
                    let _ = crate::syscall::linux::set_parent_death_signal();
                    loop {
                        // SAFETY: pause waits for a signal (SIGKILL).
                        unsafe { libc::pause() };
                    }
                }
                Ok(nix::unistd::ForkResult::Parent { child }) => child,
                Err(_) => return 10,
            };
            if reap_any().is_some() {
                return 1;
            }
            // SAFETY: as above.
            let ended = match unsafe { nix::unistd::fork() } {
                // SAFETY: _exit ends the grandchild at once.
                Ok(nix::unistd::ForkResult::Child) => unsafe { libc::_exit(7) },
                Ok(nix::unistd::ForkResult::Parent { child }) => child,
                Err(_) => return 10,
            };
            // Until it has ended (a zombie), then reaped with its status.
            let mut got = None;
            while got.is_none() {
                got = reap_any();
            }
            let _ = kill(live, Signal::SIGKILL);
            let _ = waitpid(live, None);
            if got != Some((ended.as_raw(), Exit::Code(7))) {
                return 2;
            }
            i32::from(reap_any().is_some()) * 3
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn kill_and_reap_leaves_no_process_and_no_zombie() {
        // Reaped by kill_and_reap, the function under test, not by std.
        #[allow(clippy::zombie_processes)]
        let sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = sleeper.id() as i32;
        kill_and_reap(pid);
        // Reaped: the pid names nothing (a zombie would still answer 0).
        assert_eq!(
            kill(Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        );
        // Gone already: nothing to do, no error.
        kill_and_reap(pid);
    }

    #[test]
    fn a_saved_action_shows_its_handler_and_flags() {
        let saved = signal_action(Signal::SIGUSR2).unwrap();
        let text = format!("{saved:?}");
        assert!(text.starts_with("SavedAction { handler: "), "{text}");
        assert!(text.contains("flags: "), "{text}");
    }
}
