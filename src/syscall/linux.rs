//! The real kernel backend: [`Linux`] makes the calls of [`Syscall`] on the
//! running kernel, plus the small process helpers that `run`, `realize` and
//! the real-kernel tests need (namespace inodes, the fd table, dumpable,
//! fork with a closure, kill and reap).
//!
//! Every `unsafe` block of the crate is in this file, each with the
//! invariant it relies on. Most calls go through nix's safe wrappers; what
//! is left is `ioctl(NS_GET_NSTYPE)`, `fork(2)`, `_exit(2)` and `prctl(2)`.
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
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Gid, Pid, Uid};

use crate::config::TimeOffset;
use crate::error::Errno;
use crate::kind::{Kind, KindSet};
use crate::syscall::{Forked, Syscall};

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

    /// `open(path, O_RDONLY | O_CLOEXEC)` (open(2)); std adds `O_CLOEXEC`
    /// to every open, and it is also asked for explicitly here.
    fn open_ns(&mut self, path: &Path) -> Result<OwnedFd, Errno> {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map(OwnedFd::from)
            .map_err(Errno::from)
    }

    /// `ioctl(fd, NS_GET_NSTYPE)` (ioctl_nsfs(2)).
    fn ns_get_nstype(&mut self, fd: &OwnedFd) -> Result<i32, Errno> {
        // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd,
        // which is open for the whole call because `fd` is borrowed.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_NSTYPE) };
        if r < 0 {
            Err(Errno::last())
        } else {
            Ok(r)
        }
    }

    fn setns(&mut self, fd: &OwnedFd, kind: Kind) -> Result<(), Errno> {
        nix::sched::setns(fd, clone_flags(kind.clone_flag())).map_err(nix_errno)
    }

    fn close(&mut self, fd: OwnedFd) {
        drop(fd);
    }

    fn unshare(&mut self, kinds: KindSet) -> Result<(), Errno> {
        nix::sched::unshare(clone_flags(kinds.clone_flags())).map_err(nix_errno)
    }

    /// gid first: after setresuid to a non-root uid the process could lose
    /// CAP_SETGID.
    fn set_root_ids(&mut self) -> Result<(), Errno> {
        let g = Gid::from_raw(0);
        nix::unistd::setresgid(g, g, g).map_err(nix_errno)?;
        let u = Uid::from_raw(0);
        nix::unistd::setresuid(u, u, u).map_err(nix_errno)
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

    fn thread_count(&mut self) -> Result<usize, Errno> {
        thread_count().map_err(Errno::from)
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
        // no other thread exists that could start one), so the child is a
        // complete copy of a single-threaded process and may run any code.
        match unsafe { nix::unistd::fork() } {
            Ok(ForkResult::Parent { child }) => Ok(Forked::Parent {
                child: child.as_raw(),
            }),
            Ok(ForkResult::Child) => Ok(Forked::Child),
            Err(e) => Err(nix_errno(e)),
        }
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
    let text = time_offsets_text(offsets);
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/proc/self/timens_offsets")
        .map_err(Errno::from)?;
    let n = f.write(text.as_bytes()).map_err(Errno::from)?;
    if n == text.len() {
        Ok(())
    } else {
        // The kernel takes the whole buffer or fails; a short write
        // would mean some clocks were not set.
        Err(Errno::EIO)
    }
}

fn ensure_single_threaded() -> Result<(), Errno> {
    match thread_count() {
        Ok(1) => Ok(()),
        Ok(_) => Err(Errno::EBUSY),
        Err(e) => Err(Errno::from(e)),
    }
}

/// The number of threads of the calling process: field 20 of
/// `/proc/self/stat` (proc(5)), counted after the last `)` because the
/// command name in field 2 may itself hold spaces and parentheses.
///
/// # Errors
///
/// Reading `/proc/self/stat` failed, or its format was not understood
/// (`InvalidData`).
pub fn thread_count() -> io::Result<usize> {
    let stat = fs::read_to_string("/proc/self/stat")?;
    parse_thread_count(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc/self/stat"))
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
    /// reading it only formats the number (a third of the cost of a look
    /// at a namespace in a profile of the VM corpus).
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
/// open its `/proc/<pid>/ns/*` after it changed credentials.
///
/// # Errors
///
/// The errno of prctl(2).
pub fn set_dumpable(on: bool) -> Result<(), Errno> {
    let arg: libc::c_ulong = on.into();
    // SAFETY: PR_SET_DUMPABLE takes one integer argument (0 or 1) and no
    // pointers; the unused arguments are ignored by the kernel.
    let r = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, arg, 0, 0, 0) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `prctl(PR_SET_PDEATHSIG, SIGKILL)` (prctl(2)): the kernel kills this
/// process when the thread that forked it exits, so helpers never outlive
/// the test that made them. Cleared by fork and by credential changes, so
/// it is set again after each.
///
/// # Errors
///
/// The errno of prctl(2).
pub fn set_parent_death_signal() -> Result<(), Errno> {
    let sig = libc::c_ulong::try_from(libc::SIGKILL).unwrap_or(9);
    // SAFETY: PR_SET_PDEATHSIG takes one integer argument (a signal number)
    // and no pointers; the unused arguments are ignored by the kernel.
    let r = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig, 0, 0, 0) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `prctl(PR_GET_DUMPABLE)` (prctl(2)): whether the process is dumpable.
///
/// # Errors
///
/// The errno of prctl(2).
pub fn dumpable() -> Result<bool, Errno> {
    // SAFETY: PR_GET_DUMPABLE takes no argument and returns the flag; the
    // unused arguments are ignored by the kernel.
    let r = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r == 1)
    }
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

/// Waits for the child `pid` and returns its exit code (128 + signal when
/// it was killed).
///
/// # Errors
///
/// The errno of waitpid(2) (ECHILD when `pid` is not a child).
pub fn wait_exit(pid: i32) -> Result<i32, Errno> {
    use nix::sys::wait::WaitStatus;
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(nix_errno(e)),
        }
    }
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
        if thread_count().unwrap() > 1 {
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
