//! Test-only process helpers: namespace inodes and the fd table read from
//! `/proc`, bind mounts, tmpfs mounts, FIFOs and device nodes for test
//! worlds, becoming another user, and fork with a closure. The engine never
//! needs them; the realizer, the real-kernel tests, the conformance tool and
//! the VM guest do.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::unistd::{Gid, Uid};
use nsapply::model::KernelVersion;
use nsapply::syscall::linux::Linux;
use nsapply::syscall::process::exit_now;
use nsapply::{Errno, Forked, Kind, Syscall};

fn nix_errno(e: nix::errno::Errno) -> Errno {
    Errno::from(e)
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
/// use nsapply_harness::host::ns_inode;
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
/// use nsapply_harness::host::{ns_inode, ProcSelf};
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

    /// The inode of the user namespace that owns `/proc/self/ns/<name>`
    /// (`ioctl(NS_GET_USERNS)`, ioctl_nsfs(2)).
    ///
    /// # Errors
    ///
    /// open(2), the ioctl (EPERM when the owner is outside this process's
    /// user namespace) or fstat(2) failed.
    pub fn ns_owner_inode(&self, name: &str) -> io::Result<u64> {
        use std::os::fd::FromRawFd;
        let ns = nix::fcntl::openat(
            &self.dir,
            format!("ns/{name}").as_str(),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(io::Error::from)?;
        // SAFETY: NS_GET_USERNS takes no argument and only reads the open
        // nsfs file `ns`; on success it returns a new fd (close-on-exec)
        // that nothing else owns.
        let owner = unsafe { libc::ioctl(ns.as_raw_fd(), libc::NS_GET_USERNS) };
        if owner < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `owner` was just returned by the ioctl and is owned here only.
        let owner = unsafe { OwnedFd::from_raw_fd(owner) };
        Ok(nix::sys::stat::fstat(&owner)
            .map_err(io::Error::from)?
            .st_ino)
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
/// let fds = nsapply_harness::host::open_fds().unwrap();
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

/// The version of the running kernel, from `/proc/sys/kernel/osrelease`
/// and `/proc/sys/kernel/version` ([`KernelVersion::from_uname`]): what a
/// model world that is compared with this kernel takes
/// ([`World::on_kernel`](nsapply::model::World::on_kernel)).
///
/// # Errors
///
/// A file could not be read, or names no version.
pub fn running_kernel() -> io::Result<KernelVersion> {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let version = fs::read_to_string("/proc/sys/kernel/version")?;
    KernelVersion::from_uname(&release, &version).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "no kernel version in {:?} / {:?}",
                release.trim(),
                version.trim()
            ),
        )
    })
}

/// The inode of the initial pid namespace: `PROC_PID_INIT_INO`
/// (include/linux/proc_ns.h), fixed since Linux 3.8.
pub const INITIAL_PID_NS_INODE: u64 = 0xEFFF_FFFC;

/// The inode of the initial user namespace: `PROC_USER_INIT_INO`.
pub const INITIAL_USER_NS_INODE: u64 = 0xEFFF_FFFD;

/// Whether this process is in the initial user namespace (by the inode of
/// `/proc/self/ns/user`): as [`in_initial_pid_ns`], for the user
/// namespace levels (the kernel's limit of 32 too).
///
/// # Errors
///
/// `/proc/self/ns/user` could not be read.
pub fn in_initial_user_ns() -> io::Result<bool> {
    Ok(ns_inode(None, "user")? == INITIAL_USER_NS_INODE)
}

/// Whether this process is in the initial pid namespace (by the inode of
/// `/proc/self/ns/pid`). A nested one cannot tell how deep it is: its
/// parent is outside its scope (`NS_GET_PARENT` is EPERM, ioctl_ns(2)),
/// and its own `/proc` shows no ancestor. Tests that count pid namespace
/// levels from the initial one (the kernel's limit of 32) need it.
///
/// # Errors
///
/// `/proc/self/ns/pid` could not be read.
pub fn in_initial_pid_ns() -> io::Result<bool> {
    Ok(ns_inode(None, "pid")? == INITIAL_PID_NS_INODE)
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
    fn fork_refuses_in_a_multithreaded_process() {
        // The test harness runs this on one of its threads.
        if nsapply::linux::thread_count().unwrap_or(0) > 1 {
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
    fn the_owner_of_each_own_namespace_is_the_own_user_namespace() {
        let me = ProcSelf::open().unwrap();
        let user = me.ns_inode("user").unwrap();
        for k in Kind::ALL.into_iter().filter(|k| *k != Kind::User) {
            assert_eq!(me.ns_owner_inode(k.proc_name()).unwrap(), user, "{k}");
        }
        assert!(me.ns_owner_inode("no-such-kind").is_err());
        // A user namespace's owner is its parent: the initial one has none
        // (EPERM, ioctl_nsfs(2)).
        if user == INITIAL_USER_NS_INODE {
            assert!(me.ns_owner_inode("user").is_err());
        }
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
