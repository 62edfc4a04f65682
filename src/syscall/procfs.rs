//! The procfs at `/proc`, checked to be one, and every lookup kept inside
//! it: the id-map files of exactly one process (through a pidfd), the
//! reopen of a namespace file from its `O_PATH` reference, and the children
//! of the calling process in its own pid namespace's numbering.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

use super::process::Pidfd;
use crate::error::Errno;

fn nix_errno(e: nix::errno::Errno) -> Errno {
    Errno::from(e)
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
/// DESIGN §8 asks for a `/proc` "checked to belong to the writer's pid
/// namespace". This checks something else, on purpose: the procfs may
/// belong to any pid namespace, and a process is found in it through its
/// pidfd ([`ProcRoot::pid_of`], [`ProcRoot::process_dir`]), whose fdinfo
/// the kernel numbers in that procfs's own pid namespace. A procfs that
/// shows the process (the writer's, or an ancestor's left mounted in a
/// nested pid namespace) yields exactly its directory under whatever
/// number it has there; one that does not (a descendant's, a sibling's) is
/// refused: its `self` does not resolve for a process it does not show, or
/// the pidfd's number there is 0. Requiring the writer's own namespace
/// would refuse the second legitimate case and add nothing to the first,
/// since the number is never taken from the caller. The hostile cases
/// `id_maps_reach_our_child_and_no_other_process_through_a_foreign_proc`
/// and its rootless twin write maps through a foreign `/proc`.
///
/// ```
/// use nsapply::syscall::procfs::ProcRoot;
/// let proc = ProcRoot::open().unwrap();
/// assert!(proc.read("self/stat").unwrap().starts_with(&std::process::id().to_string()));
/// ```
#[derive(Debug)]
pub struct ProcRoot {
    dir: OwnedFd,
}

/// A reference to a directory (`O_PATH`: no read permission needed;
/// `O_DIRECTORY`: anything else fails): `/proc` itself, and the
/// directories beneath it ([`ProcRoot::open_in`] adds `O_CLOEXEC`).
const DIRECTORY_REF: nix::fcntl::OFlag =
    nix::fcntl::OFlag::O_PATH.union(nix::fcntl::OFlag::O_DIRECTORY);

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
        // This fd lives as long as the run: without O_CLOEXEC it would
        // leak into CMD (the cli tests count CMD's fds).
        let dir = nix::fcntl::open(
            "/proc",
            OFlag::O_CLOEXEC | DIRECTORY_REF,
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
        let flags = flags | OFlag::O_CLOEXEC;
        let how = OpenHow::new().flags(flags).resolve(resolve);
        match nix::fcntl::openat2(dir, path, how) {
            // Before Linux 5.6: a plain openat, from a checked procfs root.
            Err(nix::errno::Errno::ENOSYS) => {
                nix::fcntl::openat(dir, path, flags, nix::sys::stat::Mode::empty())
            }
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
        // One page up front: a procfs file is read in one read(2) (and one
        // for the end), not from 32 bytes up (issue 15).
        let mut bytes = Vec::with_capacity(4096);
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
    pub(crate) fn reopen(
        &self,
        reference: &OwnedFd,
        flags: nix::fcntl::OFlag,
    ) -> Result<OwnedFd, Errno> {
        use nix::fcntl::OFlag;
        // `self/fd` inside this procfs; then the magic link `<n>`, which
        // leaves procfs for the file itself (so no RESOLVE_NO_XDEV there,
        // and openat2's RESOLVE_BENEATH would refuse a magic link).
        let fds = Self::open_in(&self.dir, "self/fd", DIRECTORY_REF, false).map_err(nix_errno)?;
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
        let text = self.read(&format!("self/fdinfo/{}", pidfd.as_fd().as_raw_fd()))?;
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
                reason: format!("process {} has exited", pidfd.pid()),
                errno: None,
            }),
            _ => Err(ProcError {
                reason: format!(
                    "the procfs at /proc belongs to a pid namespace that does not show process {}",
                    pidfd.pid()
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
        let dir = Self::open_in(&self.dir, &n.to_string(), DIRECTORY_REF, true)
            .map_err(ProcError::sys(format!("opening /proc/{n}")))?;
        if self.pid_of(pidfd)? != n {
            return Err(ProcError {
                reason: format!(
                    "process {} changed its number while /proc/{n} was opened",
                    pidfd.pid()
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

    /// The identity of the namespace that `ns/<file>` of the directory
    /// names (`file` is a [`Kind::proc_name`](crate::Kind::proc_name) or a
    /// `*_for_children` name): the device and inode that stat(2) shows
    /// through the link, as ioctl_nsfs(2) compares namespaces.
    ///
    /// # Errors
    ///
    /// ENOENT when the process has exited (a zombie has no namespaces) or
    /// the kernel has no namespaces of that kind; EACCES/EPERM without
    /// ptrace read access to the process.
    pub fn namespace(&self, file: &str) -> Result<NsIdentity, Errno> {
        namespace_at(&self.dir, file)
    }

    /// Opens `ns/<file>` of the directory, read-only and close-on-exec:
    /// the namespace file of exactly this directory's process (a lookup in
    /// the directory of a process that has exited fails; it never reaches
    /// another process given the number since). `file` is one name, a
    /// [`Kind::proc_name`](crate::Kind::proc_name): anything with a `/`
    /// or a dot name is EINVAL.
    ///
    /// # Errors
    ///
    /// EINVAL for such a name; otherwise as [`ProcessDir::namespace`].
    pub fn open_namespace(&self, file: &str) -> Result<OwnedFd, Errno> {
        if file.is_empty() || file.contains('/') || file == "." || file == ".." {
            return Err(Errno::EINVAL);
        }
        nix::fcntl::openat(
            &self.dir,
            format!("ns/{file}").as_str(),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(nix_errno)
    }
}

/// Which namespace a `/proc/<pid>/ns/<file>` link names: its nsfs device
/// and inode (stat(2) through the link).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NsIdentity {
    /// `st_dev` of the nsfs.
    pub dev: u64,
    /// `st_ino`: the namespace's inode number, as the link's text shows it.
    pub ino: u64,
}

fn namespace_at(dir: &OwnedFd, file: &str) -> Result<NsIdentity, Errno> {
    use nix::fcntl::AtFlags;
    // The link is a magic link into nsfs: stat follows it (no flag);
    // `file` is one fixed name, so no path of a caller is looked up.
    let st = nix::sys::stat::fstatat(dir, format!("ns/{file}").as_str(), AtFlags::empty())
        .map_err(nix_errno)?;
    Ok(NsIdentity {
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

impl ProcRoot {
    /// The identity of the calling process's namespace `ns/<file>`, as
    /// [`ProcessDir::namespace`].
    ///
    /// # Errors
    ///
    /// The errno of opening `/proc/self` or of stat(2) on the link.
    pub fn own_namespace(&self, file: &str) -> Result<NsIdentity, Errno> {
        let own = Self::open_in(&self.dir, "self", DIRECTORY_REF, false).map_err(nix_errno)?;
        namespace_at(&own, file)
    }
}

impl ProcessDir {
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
                Ok(written) => return WriteError::unless_whole(written, data.len()),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(WriteError::Errno(nix_errno(e))),
            }
        }
    }
}

impl WriteError {
    /// A write of `len` bytes that took `written`: whole, or short. The
    /// proc files written here take a whole buffer or fail, so a short
    /// write cannot be made to happen; this decision is unit-tested.
    fn unless_whole(written: usize, len: usize) -> Result<(), WriteError> {
        if written == len {
            Ok(())
        } else {
            Err(WriteError::Short { written })
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

/// A child of the calling process, as [`ProcRoot::children`] finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildProcess {
    /// Its pid in the caller's own pid namespace (positive).
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
        // The list first: no children (the common case at a run's end)
        // needs no depth.
        let listed = self.read("thread-self/children")?;
        if listed.trim().is_empty() {
            return Ok(Vec::new());
        }
        let depth = nspids(&self.read("self/status")?)
            .filter(|p| !p.is_empty())
            .map(|p| p.len() - 1)
            .ok_or_else(|| ProcError {
                reason: "/proc/self/status has no NSpid line".to_owned(),
                errno: None,
            })?;
        let mut children = Vec::new();
        for n in listed.split_whitespace() {
            let status = self.read(&format!("{n}/status"))?;
            children.push(child_at(&status, depth).ok_or_else(|| ProcError {
                reason: format!("/proc/{n}/status has no positive pid at depth {depth}"),
                errno: None,
            })?);
        }
        Ok(children)
    }
}

/// The child a `status` file describes, numbered at `depth` of its
/// `NSpid:` line. `None` without a pid there, or with one that is not
/// positive: the kernel shows none, and the caller kills and waits for
/// these numbers, where 0 would name its own process group and -1 every
/// process it may signal.
fn child_at(status: &str, depth: usize) -> Option<ChildProcess> {
    let pid = nspids(status)?.get(depth).copied().filter(|p| *p > 0)?;
    let zombie = status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .is_some_and(|s| s.trim_start().starts_with('Z'));
    Some(ChildProcess { pid, zombie })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::OFlag;

    #[test]
    fn nspid_lines_list_a_pid_per_namespace_level() {
        assert_eq!(
            nspids("Name:\tsh\nNSpid:\t4242\t7\t1\n"),
            Some(vec![4242, 7, 1])
        );
        assert_eq!(nspids("NSpid:\t12\n"), Some(vec![12]));
        assert_eq!(nspids("Name:\tsh\n"), None);
        assert_eq!(nspids("NSpid:\t12\tx\n"), None);
    }

    #[test]
    fn a_child_is_numbered_at_its_depth_and_never_zero_or_negative() {
        let status = "Name:\tsleep\nState:\tS (sleeping)\nNSpid:\t4242\t7\n";
        assert_eq!(
            child_at(status, 1),
            Some(ChildProcess {
                pid: 7,
                zombie: false
            })
        );
        assert_eq!(child_at(status, 0).map(|c| c.pid), Some(4242));
        assert_eq!(child_at(status, 2), None);
        let zombie = "State:\tZ (zombie)\nNSpid:\t9\n";
        assert_eq!(child_at(zombie, 0).map(|c| c.zombie), Some(true));
        // A number the caller would kill(2) as its process group, or as
        // every process.
        for pid in ["0", "-1", "-9"] {
            assert_eq!(child_at(&format!("NSpid:\t{pid}\n"), 0), None, "{pid}");
        }
    }

    #[test]
    fn a_write_that_took_less_than_all_is_short() {
        assert_eq!(WriteError::unless_whole(12, 12), Ok(()));
        assert_eq!(
            WriteError::unless_whole(5, 12),
            Err(WriteError::Short { written: 5 })
        );
    }

    #[test]
    fn a_reaped_process_has_exited_for_its_pidfd() {
        let proc = ProcRoot::open().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pidfd = Pidfd::open(child.id() as i32).unwrap();
        assert_eq!(
            proc.pid_of(&pidfd).map_err(|e| e.reason),
            Ok(child.id() as i32)
        );
        child.wait().unwrap();
        let e = proc.pid_of(&pidfd).unwrap_err();
        assert_eq!(e.reason, format!("process {} has exited", child.id()));
        assert!(proc.process_dir(&pidfd).is_err());
    }

    /// `open_namespace` opens the directory's own process's file (the
    /// inode its `namespace` link shows), close-on-exec (cargo-mutants:
    /// the flags' `|` made `&` dropped it), refuses a name that is not one,
    /// and fails once that process has exited, the directory held from
    /// before: it never reaches whatever has the number now.
    #[test]
    fn a_process_dir_opens_its_own_processes_namespace_files_and_no_other() {
        let proc = ProcRoot::open().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pidfd = Pidfd::open(child.id() as i32).unwrap();
        let dir = proc.process_dir(&pidfd).unwrap();
        let fd = dir.open_namespace("uts").unwrap();
        let st = nix::sys::stat::fstat(&fd).unwrap();
        assert_eq!(st.st_ino, dir.namespace("uts").unwrap().ino);
        // Close-on-exec: no command exec'd meanwhile inherits it.
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        for bad in ["", ".", "..", "../self/ns/uts", "uts/x"] {
            assert_eq!(
                dir.open_namespace(bad).unwrap_err(),
                Errno::EINVAL,
                "{bad:?}"
            );
        }
        assert!(!pidfd.has_exited());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(pidfd.has_exited());
        assert!(dir.open_namespace("uts").is_err());
    }

    /// A pidfd of a process that the procfs's pid namespace does not show
    /// (fdinfo's `Pid: 0`): here the test's forked child, held by its own
    /// child G, pid 1 of a new pid namespace with its own /proc. pid_of
    /// refuses it, where G itself is 1. cargo-mutants: `p >= 0` answered
    /// 0, a pid that names no process (kill(0) signals the caller's group).
    #[test]
    fn a_process_the_procfs_does_not_show_has_no_pid_there() {
        use nix::mount::{mount, MsFlags};
        use nix::sched::CloneFlags;
        let code = crate::syscall::tests::in_child(|| {
            let Ok(outside) = Pidfd::open(std::process::id() as i32) else {
                return 2;
            };
            let mut flags = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS;
            if !nix::unistd::geteuid().is_root() {
                flags |= CloneFlags::CLONE_NEWUSER;
            }
            if nix::sched::unshare(flags).is_err() {
                return 3;
            }
            // SAFETY: in_child's forked child has one thread.
            match unsafe { crate::syscall::process::fork_unchecked() } {
                Ok(crate::syscall::Forked::Child) => {
                    let none: Option<&str> = None;
                    let private =
                        mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none);
                    let procfs = mount(Some("proc"), "/proc", Some("proc"), MsFlags::empty(), none);
                    let code = if private.is_err() || procfs.is_err() {
                        4
                    } else {
                        match (ProcRoot::open(), Pidfd::open(1)) {
                            (Ok(proc), Ok(me)) => match (proc.pid_of(&me), proc.pid_of(&outside)) {
                                (Ok(1), Err(e)) if e.reason.contains("does not show") => 0,
                                (Ok(1), _) => 5,
                                _ => 6,
                            },
                            _ => 7,
                        }
                    };
                    // SAFETY: _exit runs nothing of the parent's.
                    unsafe { libc::_exit(code) }
                }
                Ok(crate::syscall::Forked::Parent { child }) => {
                    match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None) {
                        Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => code,
                        _ => 8,
                    }
                }
                Err(_) => 9,
            }
        });
        assert_eq!(
            code, 0,
            "2: pidfd_open, 3: unshare, 4: mounting a procfs, 5: the outside process had a pid, 6: pid 1 was not 1, 7: opening the procfs or pidfd 1, 8: the child's end, 9: fork"
        );
    }

    #[test]
    fn a_path_under_the_checked_proc_stays_beneath_it_and_may_refuse_symlinks() {
        let proc = ProcRoot::open().unwrap();
        let open = |path: &str, no_symlinks: bool| {
            ProcRoot::open_in(&proc.dir, path, OFlag::O_RDONLY, no_symlinks).map(drop)
        };
        assert_eq!(open("self/status", false), Ok(()));
        // RESOLVE_BENEATH: ".." out of /proc is refused, whatever it names.
        for no_symlinks in [false, true] {
            assert_eq!(
                open("../proc/self/status", no_symlinks),
                Err(nix::errno::Errno::EXDEV),
                "no_symlinks {no_symlinks}"
            );
        }
        // RESOLVE_NO_SYMLINKS: /proc/self is a symlink (to the pid).
        assert_eq!(open("self/status", true), Err(nix::errno::Errno::ELOOP));
        let pid = std::process::id().to_string();
        assert_eq!(open(&format!("{pid}/status"), true), Ok(()));
    }
}
