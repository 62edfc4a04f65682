//! The syscall boundary: one trait, two backends.
//!
//! [`Syscall`] is every call the engine makes. [`linux::Linux`] performs them
//! on the running kernel; [`crate::model::Model`] answers them from a
//! stateful model of the kernel's rules and records each one. The engine takes the backend
//! as a parameter (`apply(&plan, &mut backend, ...)`); nothing picks it by
//! build flag.

use std::path::Path;

use crate::config::{Propagation, TimeOffset};
use crate::error::Errno;
use crate::kind::{Kind, KindSet};

pub mod linux;
pub mod process;
pub mod procfs;

/// Which side of a fork the caller is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forked {
    /// The original process; `child` is the new process's pid as seen by the caller.
    Parent {
        /// The child's pid.
        child: i32,
    },
    /// The new process, inside the pid/time namespaces meant for children.
    Child,
}

/// Why [`Syscall::thread_count`] has no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadCountError {
    /// The errno of the call that failed; `None` when the calls succeeded
    /// but what they read is not a thread count (on Linux, a `/proc` that
    /// is not procfs). No errno is made up for that case.
    pub errno: Option<Errno>,
}

impl std::error::Error for ThreadCountError {}

impl std::fmt::Display for ThreadCountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.errno {
            Some(e) => write!(f, "{e}"),
            None => f.write_str("/proc/self/stat is not a stat line (is /proc a procfs?)"),
        }
    }
}

/// The calls the engine makes, each answering like the kernel: `Ok` or an
/// [`Errno`].
///
/// Namespace fds are the backend's owned handle type [`Syscall::Fd`]
/// (`OwnedFd` on Linux): not `Copy`, borrowed for `setns` and the type
/// check, and given back by value to [`Syscall::close`], so an fd cannot be
/// used after close or closed twice.
pub trait Syscall {
    /// An owned namespace file descriptor.
    type Fd;

    /// Opens `path` as a namespace file, without side effects: the open
    /// may not block (a FIFO) or run a driver (a device), so a file that is
    /// not a namespace is opened only as a reference (`O_PATH`) and found
    /// out by [`Syscall::ns_get_nstype`]. Close-on-exec.
    ///
    /// # Errors
    ///
    /// The errno of open(2), for example ENOENT for a missing path.
    fn open_ns(&mut self, path: &Path) -> Result<Self::Fd, Errno>;

    /// `ioctl(fd, NS_GET_NSTYPE)`: the `CLONE_NEW*` value of the namespace
    /// (ioctl_nsfs(2), Linux 4.11).
    ///
    /// # Errors
    ///
    /// ENOTTY when the fd is not a namespace file (whatever kind of file it
    /// is: regular, directory, FIFO, socket, device).
    fn ns_get_nstype(&mut self, fd: &Self::Fd) -> Result<i32, Errno>;

    /// `setns(fd, kind.clone_flag())` (setns(2)); the typed `nstype` makes the
    /// kernel enforce the type too.
    ///
    /// # Errors
    ///
    /// The errno of setns(2) (EPERM, EINVAL, EUSERS, ...).
    fn setns(&mut self, fd: &Self::Fd, kind: Kind) -> Result<(), Errno>;

    /// close(2). Errors of close are not reported: the fd is gone either way.
    fn close(&mut self, fd: Self::Fd);

    /// `unshare(flags)` for exactly the kinds in `kinds` (unshare(2)).
    ///
    /// # Errors
    ///
    /// The errno of unshare(2).
    fn unshare(&mut self, kinds: KindSet) -> Result<(), Errno>;

    /// `setresgid(0, 0, 0)` then `setresuid(0, 0, 0)`: become root in the
    /// user namespace just created or joined.
    ///
    /// # Errors
    ///
    /// EINVAL when id 0 is not mapped, EPERM without CAP_SETUID/CAP_SETGID.
    fn set_root_ids(&mut self) -> Result<(), Errno>;

    /// `mount(NULL, "/", NULL, MS_<type>[|MS_REC], NULL)`: the propagation
    /// of `/` in the caller's mount namespace (mount(2),
    /// mount_namespaces(7)).
    ///
    /// # Errors
    ///
    /// EPERM without CAP_SYS_ADMIN over the mount namespace's owner, EINVAL
    /// when `/` is not a mount point (a chroot).
    fn set_root_propagation(&mut self, propagation: Propagation) -> Result<(), Errno>;

    /// One write of `offsets` to `/proc/self/timens_offsets` (time_namespaces(7)).
    ///
    /// # Errors
    ///
    /// EACCES once a process entered the namespace, EINVAL for a bad clock
    /// or nanoseconds, EPERM without CAP_SYS_TIME.
    fn write_time_offsets(&mut self, offsets: &[TimeOffset]) -> Result<(), Errno>;

    /// The number of threads of the calling process.
    ///
    /// # Errors
    ///
    /// Reading it failed (`/proc/self/stat` on Linux: no procfs at `/proc`,
    /// no free fd), or what was read is not a thread count.
    fn thread_count(&mut self) -> Result<usize, ThreadCountError>;

    /// fork(2).
    ///
    /// # Errors
    ///
    /// EAGAIN or ENOMEM.
    fn fork(&mut self) -> Result<Forked, Errno>;

    /// `pidfd_open(pid, 0)` (pidfd_open(2), Linux 5.3): a handle on the
    /// process `pid` that stays with it (a pid reused later names another
    /// process, the handle does not). Close-on-exec; closed with
    /// [`Syscall::close`].
    ///
    /// # Errors
    ///
    /// ESRCH when no such process exists (one reaped already); ENOSYS
    /// before Linux 5.3.
    fn pidfd_open(&mut self, pid: i32) -> Result<Self::Fd, Errno>;

    /// `setns(pidfd, flags)` with the `CLONE_NEW*` flags of `kinds`
    /// (setns(2), Linux 5.8): the caller joins the namespaces of those
    /// kinds that the process has (its active pid and time namespaces),
    /// all at once or none (`validate_nsset`, then `commit_nsset`).
    ///
    /// # Errors
    ///
    /// ESRCH when the process has exited (a zombie has no namespaces);
    /// EPERM without ptrace access to it or without the capabilities the
    /// kinds need; EINVAL for no kinds, a user namespace that is the
    /// caller's own, a shared fs_struct or threads where the kind forbids
    /// them, and when the kernel does not take a pidfd in setns (before
    /// 5.8: not a namespace file); EUSERS for time with threads.
    fn setns_pidfd(&mut self, pidfd: &Self::Fd, kinds: KindSet) -> Result<(), Errno>;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs `body` in a forked child and answers its exit code, `body`'s
    /// answer (a child killed by a signal is 128 + the signal).
    pub(crate) fn in_child(body: impl FnOnce() -> i32) -> i32 {
        use nix::sys::wait::{waitpid, WaitStatus};
        // SAFETY: the test process has other threads, so the child makes
        // only system calls (prctl, getppid, unshare or setns through nix:
        // no allocation, no lock) and leaves with _exit.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                let code = body();
                // SAFETY: _exit ends the child at once, running nothing of
                // the parent's (no atexit handler, no stdio flush).
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => code,
                Ok(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
                other => panic!("the child ended as {other:?}"),
            },
        }
    }

    #[test]
    fn a_thread_count_error_names_its_errno_or_the_proc_that_is_not_procfs() {
        let failed = ThreadCountError {
            errno: Some(Errno::EACCES),
        };
        assert_eq!(failed.to_string(), "EACCES (Permission denied)");
        let not_stat = ThreadCountError { errno: None };
        assert_eq!(
            not_stat.to_string(),
            "/proc/self/stat is not a stat line (is /proc a procfs?)"
        );
    }
}
