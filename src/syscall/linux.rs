//! The real kernel backend: [`Linux`] makes the calls of [`Syscall`] on the
//! running kernel, plus the small process helpers that `run`, `realize` and
//! the real-kernel tests need (namespace inodes, the fd table, dumpable,
//! fork with a closure, kill and reap).
//!
//! Every `unsafe` block of the crate is in this file, each with the
//! invariant it relies on. Most calls go through nix's safe wrappers; what
//! is left is `ioctl(NS_GET_NSTYPE)`, `fork(2)`, `_exit(2)`, and the pidfd
//! calls nix 0.32 does not wrap (`pidfd_open(2)`, `pidfd_send_signal(2)`).
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
//! change (`commit_creds`), which joining a user namespace and becoming
//! root in it do. A supervisor that relies on it (nsapply's own, or a
//! runtime's) would lose it in the middle of the plan. So the calls that
//! change credentials keep it: they read it before, set it again after,
//! and if the parent died in between (its signal would have been lost),
//! raise it at once.
//!
//! # fork and threads
//!
//! After fork(2) in a multithreaded process the child may only make
//! async-signal-safe calls (another thread may have held the allocator's
//! lock at the moment of the fork). The child of [`Linux::fork`] and
//! [`fork_with`] goes on running ordinary Rust code, so both refuse to fork
//! unless the process has exactly one thread. The check cannot race: only
//! a thread of this process could create a second one, and there is none.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::sched::CloneFlags;
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Gid, Pid, Uid};

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
        if r < 0 {
            Err(Errno::last())
        } else {
            Ok(r)
        }
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

    /// unshare(2); with a user namespace, the parent-death signal is kept.
    fn unshare(&mut self, kinds: KindSet) -> Result<(), Errno> {
        let unshare = || nix::sched::unshare(clone_flags(kinds.clone_flags())).map_err(nix_errno);
        if kinds.contains(Kind::User) {
            keeping_parent_death_signal(unshare)
        } else {
            unshare()
        }
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

/// fork(2) without the thread check of [`Linux::fork`] (whose read of
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
    use nix::fcntl::OFlag;
    use std::io::Read;
    let failed = |errno| ThreadCountError { errno: Some(errno) };
    let fd = nix::fcntl::open(
        "/proc/self/stat",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| failed(nix_errno(e)))?;
    let mut bytes = Vec::new();
    File::from(fd)
        .read_to_end(&mut bytes)
        .map_err(|e| ThreadCountError {
            errno: Errno::of_io(&e),
        })?;
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

/// The inode of `/proc/<pid>/ns/<name>` (`/proc/self/...` for `None`):
/// two processes are in the same namespace exactly when these are equal
/// (namespaces(7)). `name` is a `/proc/*/ns` entry such as `net` or
/// `pid_for_children` ([`Kind::proc_name`], [`Kind::proc_name_for_children`]).
///
/// Read from the link's text, like [`ProcSelf::ns_inode`].
///
/// # Errors
///
/// readlink(2) of the path failed (ENOENT for a dead process).
///
/// ```
/// use nsapply::syscall::linux::ns_inode;
/// assert_eq!(ns_inode(None, "net").unwrap(), ns_inode(Some(std::process::id() as i32), "net").unwrap());
/// ```
pub fn ns_inode(pid: Option<i32>, name: &str) -> io::Result<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/ns/{name}"),
        None => format!("/proc/self/ns/{name}"),
    };
    ns_link_inode_of(&path, fs::read_link(&path)?.as_os_str())
}

/// [`ns_link_inode`] of the link `link` read at `path`; InvalidData, naming
/// both, when it is not a namespace link.
fn ns_link_inode_of(path: &str, link: &std::ffi::OsStr) -> io::Result<u64> {
    let link = link.to_string_lossy();
    ns_link_inode(&link).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path} links to {link:?}"),
        )
    })
}

/// The inodes of `/proc/<pid|self>/ns/` for every kind, in canonical order,
/// using the `*_for_children` entries for pid and time when `for_children`.
///
/// # Errors
///
/// The first [`ns_inode`] that failed.
pub fn ns_inodes(pid: Option<i32>, for_children: bool) -> io::Result<[u64; 8]> {
    let mut out = [0; 8];
    for k in Kind::ALL {
        let name = if for_children {
            k.proc_name_for_children()
        } else {
            k.proc_name()
        };
        out[k.index()] = ns_inode(pid, name)?;
    }
    Ok(out)
}

/// `/proc/self` of the calling process, opened once, for several looks at
/// it: each look then walks one or two path components from this directory
/// instead of `/proc/self/...` from the root. The walk through procfs is
/// most of the cost of a look, and the harnesses look many times per
/// scenario (each walk is a few hundred microseconds under QEMU's TCG).
///
/// The directory is that of the process that opened it: open it again after
/// a fork. Its own fd and the fds it uses internally are left out of
/// [`ProcSelf::fd_links`].
///
/// ```
/// use nsapply::syscall::linux::{ns_inode, ProcSelf};
/// let me = ProcSelf::open().unwrap();
/// assert_eq!(me.ns_inode("net").unwrap(), ns_inode(None, "net").unwrap());
/// assert!(me.fd_links().unwrap().iter().any(|(fd, _)| *fd == 2));
/// ```
#[derive(Debug)]
pub struct ProcSelf {
    dir: OwnedFd,
}

impl ProcSelf {
    /// Opens `/proc/self` (`O_PATH`: only a starting point for lookups).
    ///
    /// # Errors
    ///
    /// open(2) failed (no procfs mounted on `/proc`).
    pub fn open() -> io::Result<ProcSelf> {
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open("/proc/self")?;
        Ok(ProcSelf { dir: dir.into() })
    }

    /// The text of `/proc/self/<name>`, e.g. `uid_map`.
    ///
    /// # Errors
    ///
    /// open(2) or read(2) failed.
    pub fn read(&self, name: &str) -> io::Result<String> {
        use std::io::Read;
        let fd = nix::fcntl::openat(
            &self.dir,
            name,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(io::Error::from)?;
        let mut text = String::new();
        File::from(fd).read_to_string(&mut text)?;
        Ok(text)
    }

    /// The inode of `/proc/self/ns/<name>` (see [`ns_inode`]), read from
    /// the link's text (`net:[4026531840]`, namespaces(7)) rather than by
    /// stat(2): following the link makes the kernel set up the nsfs inode,
    /// reading it only formats the number (the cheaper look, which the VM
    /// corpus does many times; vm-tests/README.md has the profile).
    ///
    /// # Errors
    ///
    /// readlink(2) failed (ENOENT for a kind this kernel lacks), or the
    /// link is not a namespace link (InvalidData).
    pub fn ns_inode(&self, name: &str) -> io::Result<u64> {
        let link = nix::fcntl::readlinkat(&self.dir, format!("ns/{name}").as_str())
            .map_err(io::Error::from)?;
        ns_link_inode_of(&format!("/proc/self/ns/{name}"), &link)
    }

    /// Every open fd of the process, sorted, with the text of its
    /// `/proc/self/fd/<n>` link (`pipe:[…]`, `net:[…]`, a path), without
    /// the fds of this `ProcSelf` and of the directory being listed.
    ///
    /// # Errors
    ///
    /// Listing `/proc/self/fd` failed.
    pub fn fd_links(&self) -> io::Result<Vec<(i32, String)>> {
        let mut dir = nix::dir::Dir::openat(
            &self.dir,
            "fd",
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(io::Error::from)?;
        let own = [self.dir.as_raw_fd(), dir.as_raw_fd()];
        let mut fds = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(io::Error::from)?;
            if let Some(fd) = entry.file_name().to_str().ok().and_then(|s| s.parse().ok()) {
                if !own.contains(&fd) {
                    fds.push(fd);
                }
            }
        }
        drop(dir);
        let mut out = Vec::with_capacity(fds.len());
        for fd in fds {
            // An fd closed since the listing has no link any more.
            if let Ok(target) = nix::fcntl::readlinkat(&self.dir, format!("fd/{fd}").as_str()) {
                out.push((fd, target.to_string_lossy().into_owned()));
            }
        }
        out.sort_unstable();
        Ok(out)
    }
}

/// The inode number in the text of a namespace link: `<kind>:[<inode>]`
/// with a `/proc/*/ns` kind name (`net:[4026531840]` gives 4026531840;
/// `pid_for_children` links read `pid:[…]`). `None` for any other text,
/// such as a pipe's `pipe:[12]`.
pub fn ns_link_inode(link: &str) -> Option<u64> {
    let (name, rest) = link.split_once(":[")?;
    if !Kind::ALL.iter().any(|k| k.proc_name() == name) {
        return None;
    }
    rest.strip_suffix(']')?.parse().ok()
}

/// Whether the text of a `/proc/self/fd/<n>` link names a namespace file
/// (`nsfs`: `net:[4026531840]`).
pub fn is_ns_link(link: &str) -> bool {
    ns_link_inode(link).is_some()
}

/// The open file descriptors of the calling process, sorted, without the
/// one used to read `/proc/self/fd` itself.
///
/// # Errors
///
/// Reading the directory failed.
///
/// ```
/// let fds = nsapply::syscall::linux::open_fds().unwrap();
/// assert!(fds.contains(&2));
/// ```
pub fn open_fds() -> io::Result<Vec<i32>> {
    let links = ProcSelf::open()?.fd_links()?;
    Ok(links.into_iter().map(|(fd, _)| fd).collect())
}

/// The open fds that refer to namespace files (`nsfs`: their
/// `/proc/self/fd/N` link reads like `net:[4026531840]`).
///
/// # Errors
///
/// Reading `/proc/self/fd` failed.
pub fn open_ns_fds() -> io::Result<Vec<(i32, String)>> {
    let mut links = ProcSelf::open()?.fd_links()?;
    links.retain(|(_, link)| is_ns_link(link));
    Ok(links)
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

/// Why `/proc` could not be used to reach a process.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}{}", errno.map(|e| format!(": {e}")).unwrap_or_default())]
pub struct ProcError {
    /// What is wrong.
    pub reason: String,
    /// The errno, when a call failed.
    pub errno: Option<Errno>,
}

impl ProcError {
    fn sys(reason: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> ProcError {
        let reason = reason.into();
        move |e| ProcError {
            reason,
            errno: Some(nix_errno(e)),
        }
    }
}

impl From<ProcError> for crate::error::SyncError {
    fn from(e: ProcError) -> Self {
        crate::error::SyncError::Proc {
            reason: e.reason,
            errno: e.errno,
        }
    }
}

/// The procfs mounted at `/proc`, checked to be the root of a procfs
/// instance, and every lookup through it kept inside it (`openat2(2)` with
/// `RESOLVE_NO_XDEV | RESOLVE_BENEATH`): a tmpfs with forged files, a bind
/// mount of one process's directory, or anything mounted over a part of
/// `/proc` is refused or not crossed.
///
/// ```
/// use nsapply::syscall::linux::ProcRoot;
/// let proc = ProcRoot::open().unwrap();
/// assert!(proc.read("self/stat").unwrap().starts_with(&std::process::id().to_string()));
/// ```
#[derive(Debug)]
pub struct ProcRoot {
    dir: OwnedFd,
}

/// `PROC_ROOT_INO`: the inode number of the root of every procfs instance.
const PROC_ROOT_INO: u64 = 1;

impl ProcRoot {
    /// Opens `/proc` and checks that it is the root of a procfs.
    ///
    /// # Errors
    ///
    /// `/proc` cannot be opened, is not procfs, or is not its root.
    pub fn open() -> Result<ProcRoot, ProcError> {
        use nix::fcntl::OFlag;
        let dir = nix::fcntl::open(
            "/proc",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(ProcError::sys("opening /proc"))?;
        let fs = nix::sys::statfs::fstatfs(&dir).map_err(ProcError::sys("fstatfs(/proc)"))?;
        if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
            return Err(ProcError {
                reason: format!(
                    "/proc is not a procfs mount (file system type {:#x})",
                    fs.filesystem_type().0
                ),
                errno: None,
            });
        }
        let st = nix::sys::stat::fstat(&dir).map_err(ProcError::sys("fstat(/proc)"))?;
        if st.st_ino != PROC_ROOT_INO {
            return Err(ProcError {
                reason: "/proc is a procfs mount, but not of its root directory".to_owned(),
                errno: None,
            });
        }
        Ok(ProcRoot { dir })
    }

    /// `openat2(dir, path, flags | O_CLOEXEC)` inside this procfs: no mount
    /// is crossed, nothing above `dir` is reached; symlinks inside procfs
    /// (`self`) are followed unless `no_symlinks`.
    fn open_in(
        dir: &OwnedFd,
        path: &str,
        flags: nix::fcntl::OFlag,
        no_symlinks: bool,
    ) -> nix::Result<OwnedFd> {
        use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
        let mut resolve = ResolveFlag::RESOLVE_NO_XDEV | ResolveFlag::RESOLVE_BENEATH;
        if no_symlinks {
            resolve |= ResolveFlag::RESOLVE_NO_SYMLINKS;
        }
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(resolve);
        match nix::fcntl::openat2(dir, path, how) {
            // Before Linux 5.6: a plain openat, from a checked procfs root.
            Err(nix::errno::Errno::ENOSYS) => nix::fcntl::openat(
                dir,
                path,
                flags | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            ),
            r => r,
        }
    }

    /// The text of `<path>` under this procfs (`self/stat`).
    ///
    /// # Errors
    ///
    /// Opening or reading it failed, or it is not UTF-8.
    pub fn read(&self, path: &str) -> Result<String, ProcError> {
        use std::io::Read;
        let fd = Self::open_in(&self.dir, path, nix::fcntl::OFlag::O_RDONLY, false)
            .map_err(ProcError::sys(format!("opening /proc/{path}")))?;
        let mut bytes = Vec::new();
        File::from(fd)
            .read_to_end(&mut bytes)
            .map_err(|e| ProcError {
                reason: format!("reading /proc/{path}"),
                errno: Errno::of_io(&e),
            })?;
        String::from_utf8(bytes).map_err(|_| ProcError {
            reason: format!("/proc/{path} is not UTF-8"),
            errno: None,
        })
    }

    /// Opens the file that this process's fd `reference` refers to, again,
    /// with `flags` (`/proc/self/fd/<n>`): the same file, whatever its path
    /// names now.
    fn reopen(&self, reference: &OwnedFd, flags: nix::fcntl::OFlag) -> Result<OwnedFd, Errno> {
        use nix::fcntl::OFlag;
        // `self/fd` inside this procfs; then the magic link `<n>`, which
        // leaves procfs for the file itself (so no RESOLVE_NO_XDEV there,
        // and openat2's RESOLVE_BENEATH would refuse a magic link).
        let fds = Self::open_in(
            &self.dir,
            "self/fd",
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            false,
        )
        .map_err(nix_errno)?;
        nix::fcntl::openat(
            &fds,
            reference.as_raw_fd().to_string().as_str(),
            flags | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(nix_errno)
    }

    /// The pid of the process `pidfd` refers to, as this procfs numbers it
    /// (the `Pid:` line of the pidfd's fdinfo, which the kernel writes in
    /// the pid namespace of the procfs instance it is read through).
    ///
    /// # Errors
    ///
    /// The fdinfo cannot be read, or the process has exited (-1) or is not
    /// visible in this procfs's pid namespace (0).
    pub fn pid_of(&self, pidfd: &Pidfd) -> Result<i32, ProcError> {
        let text = self.read(&format!("self/fdinfo/{}", pidfd.fd.as_raw_fd()))?;
        let pid = text
            .lines()
            .find_map(|l| l.strip_prefix("Pid:"))
            .and_then(|v| v.trim().parse::<i32>().ok())
            .ok_or_else(|| ProcError {
                reason: "the pidfd's fdinfo has no Pid line".to_owned(),
                errno: None,
            })?;
        match pid {
            p if p > 0 => Ok(p),
            -1 => Err(ProcError {
                reason: format!("process {} has exited", pidfd.pid),
                errno: None,
            }),
            _ => Err(ProcError {
                reason: format!(
                    "the procfs at /proc belongs to a pid namespace that does not show process {}",
                    pidfd.pid
                ),
                errno: None,
            }),
        }
    }

    /// The `/proc/<pid>` directory of exactly the process `pidfd` refers
    /// to: looked up by the number this procfs gives it, then checked to
    /// still be that number (a live process keeps its number, so the
    /// directory opened in between is its own).
    ///
    /// # Errors
    ///
    /// As [`ProcRoot::pid_of`], or the lookup failed.
    pub fn process_dir(&self, pidfd: &Pidfd) -> Result<ProcessDir, ProcError> {
        let n = self.pid_of(pidfd)?;
        let dir = Self::open_in(
            &self.dir,
            &n.to_string(),
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
            true,
        )
        .map_err(ProcError::sys(format!("opening /proc/{n}")))?;
        if self.pid_of(pidfd)? != n {
            return Err(ProcError {
                reason: format!(
                    "process {} changed its number while /proc/{n} was opened",
                    pidfd.pid
                ),
                errno: None,
            });
        }
        Ok(ProcessDir { dir, pid: n })
    }
}

/// The `/proc/<pid>` directory of one process, from [`ProcRoot::process_dir`].
#[derive(Debug)]
pub struct ProcessDir {
    dir: OwnedFd,
    pid: i32,
}

impl ProcessDir {
    /// The pid the directory is named by.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Writes `data` to the file `name` of the directory in one write(2)
    /// (`uid_map`, `gid_map`, `setgroups`: the kernel takes each in one).
    ///
    /// # Errors
    ///
    /// The errno of open(2) or write(2), or the number of bytes written
    /// when it is short of `data`.
    pub fn write_once(&self, name: &str, data: &[u8]) -> Result<(), WriteError> {
        let fd = ProcRoot::open_in(&self.dir, name, nix::fcntl::OFlag::O_WRONLY, true)
            .map_err(|e| WriteError::Errno(nix_errno(e)))?;
        loop {
            match nix::unistd::write(&fd, data) {
                Ok(n) if n == data.len() => return Ok(()),
                Ok(written) => return Err(WriteError::Short { written }),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(WriteError::Errno(nix_errno(e))),
            }
        }
    }
}

/// Why [`ProcessDir::write_once`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// open(2) or write(2) failed.
    Errno(Errno),
    /// write(2) took only this many bytes.
    Short {
        /// Bytes written.
        written: usize,
    },
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
        // SAFETY: pidfd_open takes a pid and flags by value and returns a
        // new fd or -1; no memory is passed.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if r < 0 {
            return Err(Errno::last());
        }
        let raw = i32::try_from(r).map_err(|_| Errno::EBADF)?;
        // SAFETY: pidfd_open returned a new fd that nothing else owns.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        Ok(Pidfd { fd, pid })
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
        if r < 0 {
            Err(Errno::last())
        } else {
            Ok(())
        }
    }

    /// Whether the process has exited (the pidfd polls readable).
    pub fn has_exited(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(self.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }
}

/// A child of the calling process, as [`ProcRoot::children`] finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildProcess {
    /// Its pid in the caller's own pid namespace.
    pub pid: i32,
    /// Whether it has ended and waits to be reaped.
    pub zombie: bool,
}

/// The pids of the `NSpid:` line of a `status` file (proc(5)): the
/// process's pid in the procfs's pid namespace first, then in each nested
/// one down to its own.
fn nspids(status: &str) -> Option<Vec<i32>> {
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    line.split_whitespace().map(|p| p.parse().ok()).collect()
}

impl ProcRoot {
    /// The children of the calling process (single-threaded: its one
    /// thread's `children` file, proc(5)), numbered as the caller's own pid
    /// namespace numbers them, whichever pid namespace this procfs belongs
    /// to: the caller's, or an ancestor's (a `/proc` inherited from the
    /// host). An ancestor's procfs numbers everything as the ancestor does;
    /// the `NSpid:` line of each child gives its number at the caller's
    /// depth below that namespace. A child stays the caller's until the
    /// caller reaps it, so the numbers stay right until then.
    ///
    /// Reads only through this checked procfs, which may be an fd opened
    /// long before: a process that mounts something over `/proc` since
    /// hides nothing from it.
    ///
    /// # Errors
    ///
    /// A file cannot be read, or this procfs does not show the caller (it
    /// belongs to another pid namespace than the caller's or an ancestor's).
    pub fn children(&self) -> Result<Vec<ChildProcess>, ProcError> {
        let depth = nspids(&self.read("self/status")?)
            .filter(|p| !p.is_empty())
            .map(|p| p.len() - 1)
            .ok_or_else(|| ProcError {
                reason: "/proc/self/status has no NSpid line".to_owned(),
                errno: None,
            })?;
        let listed = self.read("thread-self/children")?;
        let mut children = Vec::new();
        for n in listed.split_whitespace() {
            let status = self.read(&format!("{n}/status"))?;
            let pid = nspids(&status)
                .and_then(|p| p.get(depth).copied())
                .ok_or_else(|| ProcError {
                    reason: format!("/proc/{n}/status has no pid at depth {depth}"),
                    errno: None,
                })?;
            let zombie = status
                .lines()
                .find_map(|l| l.strip_prefix("State:"))
                .is_some_and(|s| s.trim_start().starts_with('Z'));
            children.push(ChildProcess { pid, zombie });
        }
        Ok(children)
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
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    )
    .map_err(nix_errno)
}

/// Forks and runs `child` in the new process, which then exits with the
/// value `child` returns (`_exit(2)`, so no atexit handler or buffered
/// stdio of the parent runs twice). A panic in `child` exits with 101.
/// Returns the child's pid in the parent.
///
/// # Errors
///
/// EBUSY when the process has more than one thread (see the module docs),
/// or the errno of fork(2).
pub fn fork_with(child: impl FnOnce() -> i32) -> Result<i32, Errno> {
    match Linux.fork()? {
        Forked::Parent { child } => Ok(child),
        Forked::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
            exit_now(code)
        }
    }
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
            Ok(status) => match Exit::of(status) {
                Some(ended) => return Some(ended),
                // Stopped or continued: not an end; nothing else is waiting.
                None if status != nix::sys::wait::WaitStatus::StillAlive => {}
                None => return None,
            },
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
    while !rest.is_empty() {
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

/// `setresgid(gid, gid, gid)` then `setresuid(uid, uid, uid)`, and drops
/// the supplementary groups first when allowed: become another user for
/// good (an unprivileged helper or caller in tests).
///
/// # Errors
///
/// The errno of setgroups(2), setresgid(2) or setresuid(2).
pub fn become_user(uid: u32, gid: u32) -> Result<(), Errno> {
    nix::unistd::setgroups(&[]).map_err(nix_errno)?;
    let g = Gid::from_raw(gid);
    nix::unistd::setresgid(g, g, g).map_err(nix_errno)?;
    let u = Uid::from_raw(uid);
    nix::unistd::setresuid(u, u, u).map_err(nix_errno)
}

/// The effective uid (geteuid(2)).
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// `mount(source, target, NULL, MS_BIND, NULL)`: bind-mount a file or
/// directory (mount(2)); used to give a namespace a path.
///
/// # Errors
///
/// The errno of mount(2).
pub fn bind_mount(source: &Path, target: &Path) -> Result<(), Errno> {
    use nix::mount::{mount, MsFlags};
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(nix_errno)
}

/// Makes every mount of the current mount namespace private, recursively
/// (`mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL)`), so mounts made in a
/// new mount namespace do not propagate back to the host.
///
/// # Errors
///
/// The errno of mount(2).
pub fn make_mounts_private() -> Result<(), Errno> {
    use nix::mount::{mount, MsFlags};
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(nix_errno)
}

/// `mkfifo(path, 0666)` (mkfifo(3)): a FIFO for a test world.
///
/// # Errors
///
/// The errno of mknod(2).
pub fn make_fifo(path: &Path) -> Result<(), Errno> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o666)).map_err(nix_errno)
}

/// `mknod(path, S_IFCHR | 0666, makedev(major, minor))` (mknod(2)): a
/// character device node for a test world (needs CAP_MKNOD).
///
/// # Errors
///
/// The errno of mknod(2).
pub fn make_char_device(path: &Path, major: u64, minor: u64) -> Result<(), Errno> {
    nix::sys::stat::mknod(
        path,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(major, minor),
    )
    .map_err(nix_errno)
}

/// Mounts an empty tmpfs on `target` (mount(2)); in a private mount
/// namespace this gives a scratch copy of a directory without touching
/// the host's.
///
/// # Errors
///
/// The errno of mount(2).
pub fn mount_tmpfs(target: &Path) -> Result<(), Errno> {
    use nix::mount::{mount, MsFlags};
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(nix_errno)
}

/// `umount2(target, MNT_DETACH)` (umount(2)).
///
/// # Errors
///
/// The errno of umount2(2).
pub fn unmount(target: &Path) -> Result<(), Errno> {
    nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH).map_err(nix_errno)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

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
            let Ok(fd) = Linux.open_ns(Path::new(&path)) else {
                continue; // a kernel built without this namespace kind
            };
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
    fn fork_refuses_in_a_multithreaded_process() {
        // The test harness runs this on one of its threads.
        if thread_count().unwrap_or(0) > 1 {
            assert_eq!(Linux.fork(), Err(Errno::EBUSY));
            assert_eq!(fork_with(|| 0), Err(Errno::EBUSY));
        }
    }

    #[test]
    fn open_fds_lists_a_new_fd_and_not_a_closed_one() {
        let fd = Linux.open_ns(Path::new("/proc/self/ns/uts")).unwrap();
        let raw = fd.as_raw_fd();
        assert!(open_fds().unwrap().contains(&raw));
        assert!(open_ns_fds().unwrap().iter().any(|(n, _)| *n == raw));
        drop(fd);
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

    #[test]
    fn link_text_gives_the_same_inodes_as_stat() {
        let me = ProcSelf::open().unwrap();
        let mut compared = 0;
        for k in Kind::ALL {
            for name in [k.proc_name(), k.proc_name_for_children()] {
                let path = format!("/proc/self/ns/{name}");
                let Ok(by_stat) = fs::metadata(&path).map(|m| m.ino()) else {
                    continue; // a kernel built without this namespace kind
                };
                assert_eq!(ns_inode(None, name).unwrap(), by_stat, "{name}");
                assert_eq!(me.ns_inode(name).unwrap(), by_stat, "{name}");
                compared += 1;
            }
        }
        assert!(compared >= 7, "only {compared} namespace entries compared");
        assert!(me.ns_inode("no-such-kind").is_err());
    }

    #[test]
    fn ns_link_text_gives_the_inode_and_nothing_else_does() {
        assert_eq!(ns_link_inode("net:[4026531840]"), Some(4_026_531_840));
        assert_eq!(ns_link_inode("pid:[1]"), Some(1));
        for text in [
            "pipe:[12]",
            "socket:[4026531840]",
            "net:[12]x",
            "net:[]",
            "net:[-1]",
            "/tmp/x",
            "net:4026531840",
        ] {
            assert_eq!(ns_link_inode(text), None, "{text}");
        }
        assert!(is_ns_link("time:[4026531834]"));
        assert!(is_ns_link("mnt:[4026531841]"));
        assert!(!is_ns_link("pipe:[4055474]"));
        assert!(!is_ns_link("socket:[1]"));
        assert!(!is_ns_link("/proc/self/ns/net"));
    }

    #[test]
    fn fd_links_leave_out_the_lookups_own_fds() {
        let me = ProcSelf::open().unwrap();
        let links = me.fd_links().unwrap();
        assert!(links.iter().all(|(fd, _)| *fd != me.dir.as_raw_fd()));
        assert!(links.iter().any(|(fd, _)| *fd == 2));
        assert!(
            links.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted: {links:?}"
        );
        let fd = Linux.open_ns(Path::new("/proc/self/ns/ipc")).unwrap();
        let links = me.fd_links().unwrap();
        let (_, link) = links.iter().find(|(n, _)| *n == fd.as_raw_fd()).unwrap();
        assert_eq!(ns_link_inode(link), ns_inode(None, "ipc").ok(), "{link}");
    }

    #[test]
    fn own_namespace_inode_matches_proc_self() {
        let me = i32::try_from(std::process::id()).unwrap();
        assert_eq!(
            ns_inodes(None, false).unwrap(),
            ns_inodes(Some(me), false).unwrap()
        );
    }
}
