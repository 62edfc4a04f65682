//! The real kernel backend: [`Linux`] makes the calls of [`Syscall`] on the
//! running kernel, and keeps the parent-death signal across the credential
//! changes they make. The checked procfs is in [`super::procfs`], the
//! process handling `run` needs (pidfds, fork, wait, signals) in
//! [`super::process`].
//!
//! The crate's `unsafe` blocks are in these three files, each with the
//! invariant it relies on. Most calls go through nix's safe wrappers; what
//! is left is `ioctl(NS_GET_NSTYPE)`, `fork(2)`, `_exit(2)`, `sigpending`,
//! `rt_sigaction` for the real-time signals, and the pidfd calls nix 0.32
//! does not wrap (`pidfd_open(2)`, `pidfd_send_signal(2)`).
//!
//! # Opening a namespace path
//!
//! A namespace path comes from a config, which may name any file. A plain
//! `open(O_RDONLY)` would block on a FIFO until a writer comes and would run
//! a device's driver (opening `/dev/tty`, a tape, a watchdog has effects)
//! before NS_GET_NSTYPE could say "not a namespace". So [`Linux::open_ns`]
//! first takes a reference only (`O_PATH`: no open method runs, no
//! permission on the file is needed), asks `fstatfs(2)` whether it is on
//! nsfs, and only then opens it for real, through the verified procfs
//! (`/proc/self/fd/<n>` of the reference), which reaches exactly that file.
//! Anything else stays a reference, and NS_GET_NSTYPE refuses it (ENOTTY).
//!
//! # Credentials and the parent-death signal
//!
//! The kernel clears a process's parent-death signal when its credentials
//! change (`commit_creds`), which joining a user namespace another uid
//! owns and becoming root in one do (creating one does not: see
//! [`Linux::unshare`]). A supervisor that relies on it (nsapply's own, or a
//! runtime's) would lose it in the middle of the plan. So the calls that
//! change credentials keep it: they read it before, set it again after,
//! and if the parent died in between (its signal would have been lost),
//! raise it at once.
//!
//! # fork and threads
//!
//! After fork(2) in a multithreaded process the child may only make
//! async-signal-safe calls (another thread may have held the allocator's
//! lock at the moment of the fork). The child of [`Linux::fork`] goes on
//! running ordinary Rust code, so it refuses to fork unless the process has
//! exactly one thread. The check cannot race: only
//! a thread of this process could create a second one, and there is none.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid};

use super::process::{exit_now, fork_unchecked};
use super::procfs::ProcRoot;
use crate::config::{Propagation, PropagationMode, TimeOffset};
use crate::error::Errno;
use crate::kind::{Kind, KindSet};
use crate::syscall::{Forked, Syscall, ThreadCountError};

/// The real kernel backend: each [`Syscall`] method is the system call it
/// names, with namespace fds as [`OwnedFd`] (closed when dropped).
///
/// ```no_run
/// use nsapply::{apply, plan, NoSync, NsConfig, syscall::linux::Linux};
/// let cfg = NsConfig::from_json(r#"{"linux":{"namespaces":[{"type":"uts"}]}}"#)?;
/// // Needs CAP_SYS_ADMIN: creates a new UTS namespace for this process.
/// let run = apply(&plan(&cfg), &mut Linux, &mut NoSync);
/// assert!(run.result.is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Linux;

fn nix_errno(e: nix::errno::Errno) -> Errno {
    Errno(e as i32)
}

fn clone_flags(bits: i32) -> CloneFlags {
    // from_bits_retain: CLONE_NEWTIME (0x80) has no nix constant in 0.32.
    CloneFlags::from_bits_retain(bits)
}

impl Syscall for Linux {
    type Fd = OwnedFd;

    /// [`open_ns_through`] the procfs at `/proc` ([`ProcRoot::open`]), or
    /// none when it is not one.
    fn open_ns(&mut self, path: &Path) -> Result<OwnedFd, Errno> {
        open_ns_through(ProcRoot::open().ok().as_ref(), path)
    }

    /// `ioctl(fd, NS_GET_NSTYPE)` (ioctl_nsfs(2)) on a file that is on
    /// nsfs; ENOTTY, without any ioctl, for every other file (what the
    /// ioctl answers for a regular file, and never a device driver's reply).
    fn ns_get_nstype(&mut self, fd: &OwnedFd) -> Result<i32, Errno> {
        if !on_nsfs(fd)? {
            return Err(Errno::ENOTTY);
        }
        // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd,
        // which is open for the whole call because `fd` is borrowed.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_NSTYPE) };
        nix::errno::Errno::result(r).map_err(nix_errno)
    }

    /// setns(2). Joining a user namespace changes the credentials: the
    /// parent-death signal is kept (module docs).
    fn setns(&mut self, fd: &OwnedFd, kind: Kind) -> Result<(), Errno> {
        let join = || nix::sched::setns(fd, clone_flags(kind.clone_flag())).map_err(nix_errno);
        if kind == Kind::User {
            keeping_parent_death_signal(join)
        } else {
            join()
        }
    }

    fn close(&mut self, fd: OwnedFd) {
        drop(fd);
    }

    /// unshare(2). A new user namespace keeps the parent-death signal
    /// without help: its owner is the caller, and commit_creds clears the
    /// signal only for credentials that are not a subset of the old ones
    /// (`cred_cap_issubset`: a namespace whose parent is the old one and
    /// whose owner is the old euid is). Pinned by a test below.
    fn unshare(&mut self, kinds: KindSet) -> Result<(), Errno> {
        nix::sched::unshare(clone_flags(kinds.clone_flags())).map_err(nix_errno)
    }

    /// gid first: after setresuid to a non-root uid the process could lose
    /// CAP_SETGID. The parent-death signal is kept (module docs).
    fn set_root_ids(&mut self) -> Result<(), Errno> {
        keeping_parent_death_signal(|| {
            let g = Gid::from_raw(0);
            nix::unistd::setresgid(g, g, g).map_err(nix_errno)?;
            let u = Uid::from_raw(0);
            nix::unistd::setresuid(u, u, u).map_err(nix_errno)
        })
    }

    /// `mount(NULL, "/", NULL, MS_<type>[|MS_REC], NULL)` (mount(2)).
    fn set_root_propagation(&mut self, propagation: Propagation) -> Result<(), Errno> {
        use nix::mount::{mount, MsFlags};
        let mut flags = match propagation.mode {
            PropagationMode::Shared => MsFlags::MS_SHARED,
            PropagationMode::Slave => MsFlags::MS_SLAVE,
            PropagationMode::Private => MsFlags::MS_PRIVATE,
            PropagationMode::Unbindable => MsFlags::MS_UNBINDABLE,
        };
        if propagation.recursive {
            flags |= MsFlags::MS_REC;
        }
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>).map_err(nix_errno)
    }

    /// One write(2) of every line, so the kernel checks and applies them
    /// together (time_namespaces(7)).
    ///
    /// The process is made dumpable for the write and restored after it:
    /// once it changed its uid in a new user namespace (`set_root_ids`) it
    /// is not dumpable, its `/proc/self` files then belong to host root,
    /// and opening `timens_offsets` for writing fails with EACCES although
    /// the process holds CAP_SYS_TIME over the time namespace (youki
    /// toggles dumpable around this write for the same reason). No other
    /// process is in the new namespaces yet, so the window exposes nothing
    /// a container could reach.
    fn write_time_offsets(&mut self, offsets: &[TimeOffset]) -> Result<(), Errno> {
        let was = dumpable()?;
        if !was {
            set_dumpable(true)?;
        }
        let r = write_offsets_file(offsets);
        if !was {
            set_dumpable(false)?;
        }
        r
    }

    /// Field 20 of `/proc/self/stat` ([`thread_count`]).
    fn thread_count(&mut self) -> Result<usize, ThreadCountError> {
        read_thread_count()
    }

    /// pidfd_open(2), as [`crate::syscall::process::Pidfd::open`].
    fn pidfd_open(&mut self, pid: i32) -> Result<OwnedFd, Errno> {
        crate::syscall::process::pidfd_open(pid)
    }

    /// setns(2) on a pidfd. Joining a user namespace changes the
    /// credentials: the parent-death signal is kept (module docs).
    fn setns_pidfd(&mut self, pidfd: &OwnedFd, kinds: KindSet) -> Result<(), Errno> {
        let join = || nix::sched::setns(pidfd, clone_flags(kinds.clone_flags())).map_err(nix_errno);
        if kinds.contains(Kind::User) {
            keeping_parent_death_signal(join)
        } else {
            join()
        }
    }

    /// fork(2).
    ///
    /// Precondition: the process is single-threaded (the child runs Rust
    /// code, which is only sound in the child of a single-threaded process).
    /// When it is not, nothing is forked and the answer is EBUSY; the engine
    /// already requires one thread for every plan that creates a user
    /// namespace or joins user, mount or time.
    fn fork(&mut self) -> Result<Forked, Errno> {
        ensure_single_threaded()?;
        // SAFETY: the process has exactly one thread (checked just above, and
        // no other thread exists that could start one).
        unsafe { fork_unchecked() }
    }
}

/// `open(path, O_PATH | O_CLOEXEC)`, then `fstatfs(2)`: a file on nsfs is
/// opened for real (`O_RDONLY | O_CLOEXEC`) through `proc`, the file the
/// reference holds whatever `path` names by then ([`ProcRoot`]); any other
/// file stays an `O_PATH` reference that [`Linux::ns_get_nstype`] refuses.
/// No open blocks (a FIFO) or runs a driver (a device): see the module docs.
///
/// Without a procfs (`proc` is `None`) nothing reopens the reference
/// safely (opening `path` again could open whatever it was swapped for), so
/// the `O_PATH` reference is returned as it is: `NS_GET_NSTYPE` on it
/// fails with the kernel's own EBADF, and nothing is joined.
///
/// # Errors
///
/// The errno of open(2), fstatfs(2) or the reopen.
pub fn open_ns_through(proc: Option<&ProcRoot>, path: &Path) -> Result<OwnedFd, Errno> {
    use nix::fcntl::OFlag;
    let reference = nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(nix_errno)?;
    match proc {
        Some(proc) if on_nsfs(&reference)? => proc.reopen(&reference, OFlag::O_RDONLY),
        _ => Ok(reference),
    }
}

/// The text written to `/proc/self/timens_offsets`: one
/// `"<clock> <secs> <nanosecs>\n"` line per offset (time_namespaces(7)).
///
/// ```
/// use nsapply::{Clock, TimeOffset, syscall::linux::time_offsets_text};
/// let o = [TimeOffset { clock: Clock::Monotonic, secs: -5, nanosecs: 7 }];
/// assert_eq!(time_offsets_text(&o), "monotonic -5 7\n");
/// ```
pub fn time_offsets_text(offsets: &[TimeOffset]) -> String {
    offsets
        .iter()
        .map(|o| format!("{} {} {}\n", o.clock.name(), o.secs, o.nanosecs))
        .collect()
}

fn write_offsets_file(offsets: &[TimeOffset]) -> Result<(), Errno> {
    use nix::fcntl::OFlag;
    let text = time_offsets_text(offsets);
    let fd = nix::fcntl::open(
        "/proc/self/timens_offsets",
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(nix_errno)?;
    write_all(fd.as_fd(), text.as_bytes())
}

/// Writes all of `data` to `fd`, as write(2) allows a caller to: a short write is
/// followed by a write of the rest, so whatever the kernel refuses comes
/// back as its own errno. The proc files written here take a whole buffer
/// or fail (`timens_offsets_write`, `map_write`), so in practice this is
/// one write; a write that takes nothing is repeated the same way, since
/// write(2) returns 0 only for an empty buffer and the kernel then answers
/// the next call.
pub fn write_all(fd: std::os::fd::BorrowedFd<'_>, data: &[u8]) -> Result<(), Errno> {
    let mut rest = data;
    while !rest.is_empty() {
        match nix::unistd::write(fd, rest) {
            Ok(n) => rest = &rest[n.min(rest.len())..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(nix_errno(e)),
        }
    }
    Ok(())
}

/// Refuses to go on (fork) unless the process has exactly one thread:
/// EBUSY with more, and the errno of the read when the count cannot be
/// read. A stat text that is not a stat line (a forged `/proc`) answers
/// EBUSY: one thread is not established, and forking is refused.
fn ensure_single_threaded() -> Result<(), Errno> {
    match read_thread_count() {
        Ok(1) => Ok(()),
        Ok(_) | Err(ThreadCountError { errno: None }) => Err(Errno::EBUSY),
        Err(ThreadCountError { errno: Some(e) }) => Err(e),
    }
}

/// The thread count; the errno of the open or read when one failed, none
/// when the text read is not a stat line.
fn read_thread_count() -> Result<usize, ThreadCountError> {
    use std::io::Read;
    let failed = |e: std::io::Error| ThreadCountError {
        errno: Errno::of_io(&e),
    };
    // std opens it close-on-exec. A stat line is a few hundred bytes: one
    // read(2), and one for the end.
    let mut bytes = Vec::with_capacity(1024);
    File::open("/proc/self/stat")
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(failed)?;
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(parse_thread_count)
        .ok_or(ThreadCountError { errno: None })
}

/// The number of threads of the calling process: field 20 of
/// `/proc/self/stat` (proc(5)), counted after the last `)` because the
/// command name in field 2 may itself hold spaces and parentheses.
///
/// # Errors
///
/// The errno of opening or reading `/proc/self/stat`, or none when the
/// text is not a stat line.
pub fn thread_count() -> Result<usize, ThreadCountError> {
    read_thread_count()
}

/// The number of threads in the text of `/proc/<pid>/stat` (field 20,
/// proc(5)), or `None` if the text is not a stat line.
pub fn parse_thread_count(stat: &str) -> Option<usize> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields after the name start at field 3 (state); field 20 is num_threads.
    rest.split_whitespace().nth(20 - 3)?.parse().ok()
}

/// `prctl(PR_SET_DUMPABLE, on)` (prctl(2)). A process must be dumpable for
/// another process of the same uid to write its `/proc/<pid>/uid_map` or
/// open its `/proc/<pid>/ns/*` after it changed credentials; and must not
/// be, once nothing needs that, so a container of the same uid cannot
/// open its `/proc/<pid>/mem`.
///
/// # Errors
///
/// The errno of prctl(2).
pub fn set_dumpable(on: bool) -> Result<(), Errno> {
    nix::sys::prctl::set_dumpable(on).map_err(nix_errno)
}

/// `prctl(PR_SET_PDEATHSIG, SIGKILL)` (prctl(2)): the kernel kills this
/// process when the thread that forked it exits, so helpers never outlive
/// the process that made them. Cleared by fork and by credential changes
/// (see the module docs).
///
/// # Errors
///
/// The errno of prctl(2).
pub fn set_parent_death_signal() -> Result<(), Errno> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(nix_errno)
}

/// Arms the parent-death signal `SIGKILL` in a process just forked by the
/// process whose pid (as this process sees it) is `parent`, and closes the
/// race with that parent's death: if it died before the signal was armed,
/// nobody will send it, so this process ends itself now.
///
/// # Errors
///
/// The errno of prctl(2).
pub fn die_with_parent(parent: i32) -> Result<(), Errno> {
    set_parent_death_signal()?;
    if nix::unistd::getppid().as_raw() != parent {
        exit_now(128 + libc::SIGKILL);
    }
    Ok(())
}

/// Runs `change` (a call that changes this process's credentials) and keeps
/// the parent-death signal across it; see the module docs.
fn keeping_parent_death_signal<T>(change: impl FnOnce() -> Result<T, Errno>) -> Result<T, Errno> {
    let signal = nix::sys::prctl::get_pdeathsig().ok().flatten();
    let parent = nix::unistd::getppid();
    let r = change();
    if let Some(sig) = signal {
        // Only a credential change clears it; set it back either way.
        let _ = nix::sys::prctl::set_pdeathsig(sig);
        if nix::unistd::getppid() != parent {
            // The parent died while the signal was cleared: it was lost.
            let _ = nix::sys::signal::raise(sig);
        }
    }
    r
}

/// `prctl(PR_GET_DUMPABLE)` (prctl(2)): whether the process is dumpable.
///
/// # Errors
///
/// The errno of prctl(2).
pub fn dumpable() -> Result<bool, Errno> {
    nix::sys::prctl::get_dumpable().map_err(nix_errno)
}

/// Whether `fd` is a file of nsfs, the namespace file system
/// (`fstatfs(2)`, `NSFS_MAGIC`).
fn on_nsfs(fd: &OwnedFd) -> Result<bool, Errno> {
    let fs = nix::sys::statfs::fstatfs(fd).map_err(nix_errno)?;
    Ok(fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::tests::in_child;

    #[test]
    fn nstype_of_a_regular_file_is_enotty() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let fd = Linux.open_ns(f.path()).unwrap();
        assert_eq!(Linux.ns_get_nstype(&fd), Err(Errno::ENOTTY));
        Linux.close(fd);
    }

    #[test]
    fn open_of_a_missing_path_is_enoent() {
        let r = Linux.open_ns(Path::new("/nonexistent/nsapply/net"));
        assert_eq!(r.err(), Some(Errno::ENOENT));
    }

    #[test]
    fn nstype_of_every_own_namespace_is_its_clone_flag() {
        for k in Kind::ALL {
            let path = format!("/proc/self/ns/{}", k.proc_name());
            // Every kind: nsapply's CI kernels have all eight, and a kind
            // missing here is a failure, not a skip.
            let fd = Linux
                .open_ns(Path::new(&path))
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(Linux.ns_get_nstype(&fd), Ok(k.clone_flag()), "{path}");
        }
        let fd = Linux.open_ns(Path::new("/proc/self/ns/net")).unwrap();
        assert_eq!(Linux.ns_get_nstype(&fd), Ok(libc::CLONE_NEWNET));
    }

    #[test]
    fn ns_fds_are_close_on_exec() {
        let fd = Linux.open_ns(Path::new("/proc/self/ns/net")).unwrap();
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }

    /// Sets SIGKILL as the parent-death signal in a forked child, runs
    /// `change` there and answers the child's exit code: 0 when the signal
    /// was still set afterwards, 1 when it was gone, 2 when `change`
    /// failed, 3 when it could not be set.
    fn pdeathsig_after(change: impl FnOnce() -> Result<(), Errno>) -> i32 {
        use nix::sys::prctl::get_pdeathsig;
        in_child(|| {
            if set_parent_death_signal().is_err() {
                3
            } else if change().is_err() {
                2
            } else if get_pdeathsig() == Ok(Some(Signal::SIGKILL)) {
                0
            } else {
                1
            }
        })
    }

    #[test]
    fn the_parent_death_signal_is_sigkill_and_a_late_child_ends_itself() {
        use nix::sys::prctl::get_pdeathsig;
        assert_eq!(pdeathsig_after(|| Ok(())), 0, "set_parent_death_signal");
        // die_with_parent of the pid that forked it: armed, and it goes on.
        let armed = in_child(|| {
            let parent = nix::unistd::getppid().as_raw();
            match (die_with_parent(parent), get_pdeathsig()) {
                (Ok(()), Ok(Some(Signal::SIGKILL))) => 0,
                _ => 1,
            }
        });
        assert_eq!(armed, 0);
        // A parent that is not the one it names (it died and the child
        // was adopted): the child ends itself as SIGKILL would (137).
        let orphan = in_child(
            || match die_with_parent(nix::unistd::getppid().as_raw() + 1) {
                Ok(()) => 1,
                Err(_) => 2,
            },
        );
        assert_eq!(orphan, 137);
    }

    #[test]
    fn dumpable_reads_what_set_dumpable_wrote() {
        assert_eq!(dumpable(), Ok(true), "a test process is dumpable");
        let code = in_child(|| match (set_dumpable(false), dumpable()) {
            (Ok(()), Ok(false)) => 0,
            _ => 1,
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn creating_or_joining_a_user_namespace_keeps_the_parent_death_signal() {
        // The kernel keeps it across unshare(user) (see Linux::unshare).
        assert_eq!(
            pdeathsig_after(|| Linux.unshare(KindSet::one(Kind::User))),
            0,
            "unshare(user)"
        );
        // It clears it when joining a user namespace that another uid owns
        // (module docs): made here by uid 65534 when this is root (only
        // root can make one for another uid; otherwise one of this uid's,
        // where the kernel keeps the signal anyway). The owner's parent
        // namespace is ours, so root may join it.
        let root = nix::unistd::geteuid().is_root();
        let mut holder = std::process::Command::new(if root { "setpriv" } else { "unshare" })
            .args(if root {
                &[
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "unshare",
                    "--user",
                    "sleep",
                    "30",
                ][..]
            } else {
                &["--user", "sleep", "30"][..]
            })
            .spawn()
            .expect("setpriv(1) or unshare(1)");
        let own = std::fs::read_link("/proc/self/ns/user").unwrap();
        let path = format!("/proc/{}/ns/user", holder.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_link(&path).map_or(true, |l| l == own) {
            assert!(std::time::Instant::now() < deadline, "{path} never changed");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let fd = Linux.open_ns(Path::new(&path)).unwrap();
        let pidfd = crate::syscall::process::pidfd_open(holder.id() as i32).unwrap();
        let joined = pdeathsig_after(|| Linux.setns(&fd, Kind::User));
        let joined_by_pidfd =
            pdeathsig_after(|| Linux.setns_pidfd(&pidfd, KindSet::one(Kind::User)));
        let _ = holder.kill();
        let _ = holder.wait();
        assert_eq!(joined, 0, "setns(user)");
        assert_eq!(joined_by_pidfd, 0, "setns(pidfd, user)");
    }

    #[test]
    fn thread_count_is_at_least_one() {
        assert!(Linux.thread_count().unwrap() >= 1);
    }

    #[test]
    fn thread_count_parses_names_with_parentheses_and_spaces() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 7 0 1 0";
        assert_eq!(parse_thread_count(stat), Some(7));
        assert_eq!(parse_thread_count("garbage"), None);
    }

    #[test]
    fn time_offsets_are_one_line_each() {
        use crate::config::Clock;
        let o = [
            TimeOffset {
                clock: Clock::Monotonic,
                secs: 86400,
                nanosecs: 0,
            },
            TimeOffset {
                clock: Clock::Boottime,
                secs: -1,
                nanosecs: 500,
            },
        ];
        assert_eq!(
            time_offsets_text(&o),
            "monotonic 86400 0\nboottime -1 500\n"
        );
    }
}
