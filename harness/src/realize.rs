//! Realize a model [`World`] on the real kernel, so one scenario runs on
//! both backends and their traces can be compared (DESIGN §1).
//!
//! [`Realized::new`] builds what a world describes:
//!
//! * each namespace of `world.namespaces` is held by a helper process
//!   (forked, then `unshare` of that kind, after joining its owner user
//!   namespace or pid parent), reachable at `/proc/<helper>/ns/<name>`
//!   ([`Realized::proc_path`]); [`Realized::world`] is the input world with
//!   those paths added, for the model;
//! * each path a namespace lists is a file bind-mounted from
//!   `/proc/<helper>/ns/<name>`, inside a private mount namespace of the
//!   calling process, so nothing is left mounted on the host. A missing
//!   path under the temp directory is created (and removed later);
//!   elsewhere (`/run/netns/...`) its deepest existing directory is covered
//!   with a tmpfs in that private mount namespace, so the host's file
//!   system is not touched;
//! * each file of `world.files` is created when missing (and removed later);
//! * dropping the [`Realized`] kills and reaps every helper, unmounts the
//!   bind mounts and removes what it created. Helpers also die with the
//!   process that made them (`PR_SET_PDEATHSIG`).
//!
//! [`apply_as_caller`] then runs a plan on the [`Linux`] backend the way
//! the model's caller runs it: a runtime process with the caller's uid and
//! gid forks the applying process, serves its sync points with the code
//! `nsapply run` uses ([`nsapply::sync`]: one channel, [`ChildSync`] in the
//! applying process, [`answer_sync`] in the parent, which writes
//! `setgroups`, `uid_map` and `gid_map` through a pidfd, as
//! [`ModelParent`](nsapply::simulate::ModelParent) does in the model) and
//! reports its trace and what the applying process saw in `/proc/self`
//! before and after ([`Observation`]).
//!
//! The caller of this module must be single-threaded and root: helpers are
//! forked, and namespaces of other users are made.
//!
//! What is not realized: a caller that starts outside the host namespaces
//! (`caller.namespaces`), a root caller without capabilities, nested user
//! namespaces with id maps, and unreadable files for a root caller (root
//! reads everything). Those give [`RealizeError::Unsupported`].

use crate::host;
use nsapply::syscall::process;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::host::ProcSelf;
use nsapply::apply::apply;
use nsapply::config::IdMapping;
use nsapply::error::{Errno, SyncError};
use nsapply::kind::{Kind, KindSet};
use nsapply::model::{CallerSpec, FileSpec, NsSpec, ProcessSpec, ProcessState, World};
use nsapply::plan::Plan;
use nsapply::sync::{answer_sync, Channel, ChildSync, ToChild, ToParent};
use nsapply::syscall::linux::{self, Linux};
use nsapply::syscall::process::Pidfd;
use nsapply::syscall::procfs::ProcRoot;
use nsapply::syscall::{Forked, Syscall};
use nsapply::trace::Trace;

/// Why a world could not be realized or a plan not run.
#[derive(Debug, thiserror::Error)]
pub enum RealizeError {
    /// A system call of the setup failed.
    #[error("{what}: {errno}")]
    Sys {
        /// What was being done.
        what: String,
        /// The errno.
        errno: Errno,
    },
    /// A file operation of the setup failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A sync point of the applying process could not be served.
    #[error("{what}: {source}")]
    Sync {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: SyncError,
    },
    /// A helper process could not make its namespace.
    #[error("helper for namespace {name:?}: {message}")]
    Helper {
        /// The namespace name.
        name: String,
        /// What the helper reported.
        message: String,
    },
    /// The world asks for something this module does not build.
    #[error("cannot realize: {0}")]
    Unsupported(String),
    /// The applying process did not report as expected.
    #[error("applying process: {0}")]
    Child(String),
}

fn sys(what: impl Into<String>) -> impl FnOnce(Errno) -> RealizeError {
    let what = what.into();
    move |errno| RealizeError::Sys { what, errno }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> RealizeError {
    let what = what.into();
    move |source| RealizeError::Io { what, source }
}

/// A world built on the real kernel. Dropping it tears it down.
#[derive(Debug)]
pub struct Realized {
    world: World,
    /// Per namespace name: the pid whose `/proc/<pid>/ns/*` holds it, and the entry.
    holders: BTreeMap<String, (i32, &'static str)>,
    /// Every process forked for the world, holders first (killed in this order).
    pids: Vec<i32>,
    /// The helpers that are children of this process (reaped).
    children: Vec<i32>,
    mounts: Vec<PathBuf>,
    /// Files and directories created, in creation order (removed in reverse).
    created: Vec<PathBuf>,
    /// Per world process (by its pid in the world): its real pid.
    process_pids: BTreeMap<i32, i32>,
}

/// A fresh, empty directory under the system temp directory, removed with
/// everything in it when dropped. Put a scenario's paths here.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates `<tmp>/nsapply-<pid>-<n>`.
    ///
    /// # Errors
    ///
    /// The directory could not be created.
    pub fn new() -> io::Result<ScratchDir> {
        let base = std::env::temp_dir();
        for n in 0..1000 {
            let p = base.join(format!("nsapply-{}-{n}", std::process::id()));
            match fs::create_dir(&p) {
                Ok(()) => return Ok(ScratchDir(p)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free scratch directory name",
        ))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `self.path().join(name)`.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What one helper must do, decided by the process that forks it.
struct HelperPlan {
    kind: Kind,
    /// Become this uid (and gid) first, when not root.
    run_as: Option<u32>,
    /// Join this user namespace (the owner) before unshare.
    owner: Option<PathBuf>,
    /// Join this pid namespace (the parent) before unshare.
    pid_parent: Option<PathBuf>,
    /// Fork after unshare, so a process is inside (pid; time when entered).
    enter: bool,
}

impl Realized {
    /// Builds `world` on the kernel (see the module docs).
    ///
    /// # Errors
    ///
    /// A helper or setup call failed, or the world asks for something that
    /// is not realized ([`RealizeError::Unsupported`]). What was built so
    /// far is torn down.
    pub fn new(world: &World) -> Result<Realized, RealizeError> {
        let mut r = Realized {
            world: world.clone(),
            holders: BTreeMap::new(),
            pids: Vec::new(),
            children: Vec::new(),
            mounts: Vec::new(),
            created: Vec::new(),
            process_pids: BTreeMap::new(),
        };
        check_caller(&world.caller)?;
        // The host's limits and clocks are what they are: a world that
        // sets them describes another host.
        if !world.limits.is_empty() || world.namespaces.iter().any(|n| !n.limits.is_empty()) {
            return Err(RealizeError::Unsupported(
                "namespace limits (the host's are read, never changed)".to_owned(),
            ));
        }
        for spec in &world.namespaces {
            if spec.name.starts_with("host:") {
                r.holders
                    .insert(spec.name.clone(), (host_holder(), spec.kind.proc_name()));
            } else {
                r.spawn(spec)?;
            }
        }
        for spec in &world.processes {
            r.spawn_process(spec)?;
        }
        // Helpers are made before this process leaves the host mount
        // namespace: a mount namespace file can only be bind-mounted into
        // a newer mount namespace (the kernel's `mnt_ns_loop` check).
        let binds: Vec<(PathBuf, PathBuf)> = world
            .namespaces
            .iter()
            .flat_map(|s| {
                let src = r.proc_path(&s.name).unwrap_or_default();
                s.paths.iter().map(move |p| (src.clone(), p.clone()))
            })
            .collect();
        if !binds.is_empty() {
            Linux
                .unshare(KindSet::one(Kind::Mount))
                .map_err(sys("unshare(CLONE_NEWNS) for the bind mounts"))?;
            host::make_mounts_private().map_err(sys("making mounts private"))?;
        }
        for (src, dst) in &binds {
            if !dst.exists() {
                r.make_mount_point(dst)?;
            }
            host::bind_mount(src, dst).map_err(sys(format!(
                "bind-mounting {} on {}",
                src.display(),
                dst.display()
            )))?;
            r.mounts.push(dst.clone());
        }
        for (path, spec) in &world.files {
            r.make_file(path, *spec)?;
        }
        Ok(r)
    }

    /// The world as the model must see it: the input world with each
    /// namespace's `/proc/<helper>/ns/<name>` path added in front of its paths.
    ///
    /// Its clocks and limits are this host's, read now
    /// ([`nsapply::simulate::host_clocks`], [`nsapply::simulate::host_limits`]):
    /// the kernel judges time offsets and namespace counts by them.
    pub fn world(&self) -> World {
        let mut w = self.world.clone();
        if let Ok(clocks) = nsapply::simulate::host_clocks() {
            w.clocks = clocks;
        }
        if let Ok(limits) = nsapply::simulate::host_limits() {
            w.limits = limits;
        }
        for p in &mut w.processes {
            if let Some(real) = self.process_pids.get(&p.pid) {
                p.pid = *real;
            }
        }
        for ns in &mut w.namespaces {
            if ns.name.starts_with("host:") {
                continue;
            }
            if let Some(p) = self.proc_path(&ns.name) {
                ns.paths.insert(0, p);
            }
        }
        w
    }

    /// `/proc/<helper>/ns/<name>` of the namespace named `name`
    /// (`time_for_children` for a time namespace nobody entered).
    pub fn proc_path(&self, name: &str) -> Option<PathBuf> {
        self.holders
            .get(name)
            .map(|(pid, entry)| PathBuf::from(format!("/proc/{pid}/ns/{entry}")))
    }

    /// The inode of the namespace named `name` (what `/proc/self/ns/*` of a
    /// process inside it shows).
    ///
    /// # Errors
    ///
    /// stat(2) of its proc path failed, or the name is unknown (ENOENT).
    pub fn inode(&self, name: &str) -> io::Result<u64> {
        let p = self
            .proc_path(name)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        fs::metadata(p).map(|m| m.ino())
    }

    /// The real pid of the world's process `pid` (the targets of an exec:
    /// a world names them by a pid of its own choosing).
    pub fn process_pid(&self, pid: i32) -> Option<i32> {
        self.process_pids.get(&pid).copied()
    }

    /// Starts the world's process `spec`: a child that joins its
    /// namespaces from their holders (every kind but user first, as root;
    /// user last), becomes `spec.uid` (root of the joined user namespace
    /// when it maps 0 to it, dumpable again as a container's init is made),
    /// forks into a joined pid namespace, and reports; an exited process
    /// then exits and stays a zombie, a reaped one is reaped here.
    fn spawn_process(&mut self, spec: &ProcessSpec) -> Result<(), RealizeError> {
        let mut joins = Vec::new();
        for (kind, name) in &spec.namespaces {
            if name.starts_with("host:") {
                continue;
            }
            let path = self.proc_path(name).ok_or_else(|| {
                RealizeError::Unsupported(format!(
                    "process {}: namespace {name:?} is not in the world",
                    spec.pid
                ))
            })?;
            joins.push((*kind, path));
        }
        if spec.time_for_children.is_some() {
            return Err(RealizeError::Unsupported(format!(
                "process {}: a time_for_children of its own",
                spec.pid
            )));
        }
        // User last: after it, root has capabilities only inside it.
        joins.sort_by_key(|(k, _)| (*k == Kind::User, k.index()));
        let uid = spec.uid;
        let state = spec.state;
        let (ready_r, ready_w) = process::pipe().map_err(sys("pipe"))?;
        let child = host::fork_with(move || process_main(&joins, uid, state, ready_w))
            .map_err(sys(format!("fork of world process {}", spec.pid)))?;
        self.pids.push(child);
        self.children.push(child);
        let mut line = String::new();
        BufReader::new(ready_r)
            .read_line(&mut line)
            .map_err(io_err("reading the world process's report"))?;
        let line = line.trim();
        let real: i32 = line
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| RealizeError::Helper {
                name: format!("process {}", spec.pid),
                message: if line.is_empty() {
                    "exited without a report".to_owned()
                } else {
                    line.to_owned()
                },
            })?;
        if real != child {
            self.pids.insert(0, real);
        }
        match state {
            ProcessState::Running => {}
            // It exits after its report: wait until it is a zombie (its
            // namespaces gone), which its parent does not reap.
            ProcessState::Exited => wait_zombie(real)?,
            ProcessState::Reaped => {
                if real != child {
                    return Err(RealizeError::Unsupported(format!(
                        "process {}: reaped, in a joined pid namespace",
                        spec.pid
                    )));
                }
                process::wait(child).map_err(sys("reaping the world process"))?;
                self.children.retain(|c| *c != child);
                self.pids.retain(|c| *c != child);
            }
        }
        self.process_pids.insert(spec.pid, real);
        Ok(())
    }

    fn spawn(&mut self, spec: &NsSpec) -> Result<(), RealizeError> {
        let owner = spec.owner.as_deref().filter(|o| *o != "host:user");
        let owner_spec = owner.and_then(|o| self.world.namespaces.iter().find(|s| s.name == o));
        let unsupported = |why: &str| {
            Err(RealizeError::Unsupported(format!(
                "namespace {:?}: {why}",
                spec.name
            )))
        };
        if owner.is_some() && owner_spec.is_none() {
            return unsupported("its owner must be listed before it");
        }
        let owner_creator = owner_spec.and_then(|s| s.creator_uid).unwrap_or(0);
        let run_as = if spec.kind == Kind::User {
            if owner.is_some() {
                return unsupported("nested user namespaces are not realized");
            }
            spec.creator_uid.filter(|u| *u != 0)
        } else {
            // A rootless runtime made the namespaces its user namespace owns.
            (owner_creator != 0).then_some(owner_creator)
        };
        let pid_parent = spec.parent.as_deref().filter(|p| *p != "host:pid");
        let path_of = |n: Option<&str>| -> Result<Option<PathBuf>, RealizeError> {
            n.map(|n| {
                self.proc_path(n).ok_or_else(|| {
                    RealizeError::Unsupported(format!(
                        "namespace {:?} refers to {n:?}, which must be listed before it",
                        spec.name
                    ))
                })
            })
            .transpose()
        };
        let plan = HelperPlan {
            kind: spec.kind,
            run_as,
            owner: path_of(owner)?,
            pid_parent: path_of(pid_parent)?,
            enter: spec.kind == Kind::Pid
                || (spec.kind == Kind::Time && spec.entered != Some(false)),
        };
        let entry = if spec.kind == Kind::Time && !plan.enter {
            "time_for_children"
        } else {
            spec.kind.proc_name()
        };
        let (ready_r, ready_w) = process::pipe().map_err(sys("pipe"))?;
        let child = host::fork_with(move || helper_main(&plan, ready_w))
            .map_err(sys(format!("fork of the helper for {:?}", spec.name)))?;
        self.pids.push(child);
        self.children.push(child);
        let mut line = String::new();
        BufReader::new(ready_r)
            .read_line(&mut line)
            .map_err(io_err("reading the helper's report"))?;
        let line = line.trim();
        let holder: i32 = match line.strip_prefix("ready ") {
            Some(pid) => pid.parse().map_err(|_| RealizeError::Helper {
                name: spec.name.clone(),
                message: format!("bad report {line:?}"),
            })?,
            None => {
                return Err(RealizeError::Helper {
                    name: spec.name.clone(),
                    message: if line.is_empty() {
                        "exited without a report".to_owned()
                    } else {
                        line.to_owned()
                    },
                })
            }
        };
        if holder != child {
            self.pids.insert(0, holder);
        }
        self.holders.insert(spec.name.clone(), (holder, entry));
        if spec.kind == Kind::User {
            if let (Some(u), Some(g)) = (&spec.uid_map, &spec.gid_map) {
                write_id_maps(holder, u, g, false).map_err(|e| RealizeError::Helper {
                    name: spec.name.clone(),
                    message: e.to_string(),
                })?;
            } else if spec.uid_map.is_some() || spec.gid_map.is_some() {
                return unsupported("give both uid_map and gid_map, or neither");
            }
        }
        Ok(())
    }

    /// Creates an empty file at `path` to bind-mount on, without changing
    /// the host's file system outside the temp directory: elsewhere the
    /// deepest existing ancestor gets a tmpfs in this process's private
    /// mount namespace, and the file is made in there.
    fn make_mount_point(&mut self, path: &Path) -> Result<(), RealizeError> {
        let ancestor = path
            .ancestors()
            .skip(1)
            .find(|a| a.exists())
            .unwrap_or_else(|| Path::new("/"));
        let tmp = std::env::temp_dir();
        let covered = !ancestor.starts_with(&tmp) || ancestor == tmp;
        if covered {
            if ancestor == Path::new("/") {
                return Err(RealizeError::Unsupported(format!(
                    "{}: no directory to cover with a tmpfs",
                    path.display()
                )));
            }
            host::mount_tmpfs(ancestor)
                .map_err(sys(format!("mounting a tmpfs on {}", ancestor.display())))?;
            self.mounts.push(ancestor.to_owned());
        }
        let mut made = create_parents(path)?;
        File::create(path).map_err(io_err(format!("creating {}", path.display())))?;
        made.push(path.to_owned());
        // What is made in the tmpfs goes with it; removing those paths
        // after the unmount would remove the host's files of that name.
        if !covered {
            self.created.extend(made);
        }
        Ok(())
    }

    fn make_file(&mut self, path: &Path, spec: FileSpec) -> Result<(), RealizeError> {
        let meta = fs::symlink_metadata(path);
        match (spec, &meta) {
            (FileSpec::Regular, Ok(m)) if m.is_file() => return Ok(()),
            (FileSpec::Directory, Ok(m)) if m.is_dir() => return Ok(()),
            (_, Ok(_)) => {
                return Err(RealizeError::Unsupported(format!(
                    "{} exists and is not a {spec:?} file",
                    path.display()
                )))
            }
            (_, Err(_)) => {}
        }

        if spec == FileSpec::Forbidden {
            // Its parent directory's permissions would be the host's too.
            return Err(RealizeError::Unsupported(format!(
                "{}: a path the caller may not look up",
                path.display()
            )));
        }
        let made = create_parents(path)?;
        self.created.extend(made);
        let what = || format!("creating {}", path.display());
        match spec {
            FileSpec::Directory => fs::create_dir(path).map_err(io_err(what()))?,
            FileSpec::Regular | FileSpec::Unreadable => {
                File::create(path).map_err(io_err(what()))?;
            }
            FileSpec::Fifo => host::make_fifo(path).map_err(sys(what()))?,
            // The socket file stays after its listener is closed.
            FileSpec::Socket => {
                drop(std::os::unix::net::UnixListener::bind(path).map_err(io_err(what()))?)
            }
            // A node of the null device (1, 3): opening it would run a
            // driver, which nsapply must never do for a namespace path.
            FileSpec::Device => host::make_char_device(path, 1, 3).map_err(sys(what()))?,
            FileSpec::Forbidden => unreachable!("refused above"),
        }
        self.created.push(path.to_owned());
        if spec == FileSpec::Unreadable {
            fs::set_permissions(path, fs::Permissions::from_mode(0o000)).map_err(io_err(what()))?;
        }
        Ok(())
    }
}

impl Drop for Realized {
    fn drop(&mut self) {
        for pid in &self.pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        for pid in &self.children {
            process::kill_and_reap(*pid);
        }
        for m in self.mounts.iter().rev() {
            let _ = host::unmount(m);
        }
        for p in self.created.iter().rev() {
            let _ = fs::remove_file(p).or_else(|_| fs::remove_dir(p));
        }
    }
}

/// Creates the missing directories above `path`, returning them outermost first.
fn create_parents(path: &Path) -> Result<Vec<PathBuf>, RealizeError> {
    let mut missing = Vec::new();
    let mut p = path.parent();
    while let Some(dir) = p {
        if dir.exists() {
            break;
        }
        missing.push(dir.to_owned());
        p = dir.parent();
    }
    missing.reverse();
    for dir in &missing {
        fs::create_dir(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    }
    Ok(missing)
}

/// The pid whose `/proc/<pid>/ns` shows the host namespaces: this process.
fn host_holder() -> i32 {
    i32::try_from(std::process::id()).unwrap_or(i32::MAX)
}

fn check_caller(c: &CallerSpec) -> Result<(), RealizeError> {
    if c.fs_shared || c.chroot {
        return Err(RealizeError::Unsupported(
            "a caller that shares its file-system state or is chrooted".to_owned(),
        ));
    }
    if !c.namespaces.is_empty() {
        return Err(RealizeError::Unsupported(
            "a caller that starts outside the host namespaces".to_owned(),
        ));
    }
    if c.uid == 0 && c.caps == Some(false) {
        return Err(RealizeError::Unsupported(
            "a root caller without capabilities".to_owned(),
        ));
    }
    if c.uid != 0 && c.caps == Some(true) {
        return Err(RealizeError::Unsupported(
            "an unprivileged caller with capabilities".to_owned(),
        ));
    }
    Ok(())
}

/// Runs in the forked helper: makes the namespace, reports
/// `ready <pid>` (the pid holding it, as this process's `/proc` shows it)
/// or `error <message>`, then sleeps until killed.
fn helper_main(plan: &HelperPlan, ready: File) -> i32 {
    let mut ready = Some(ready);
    let result = make_namespace(plan, &mut ready);
    if let Some(mut w) = ready {
        let line = match result {
            Ok(()) => format!("ready {}\n", self_pid_in_proc()),
            Err(m) => format!("error {m}\n"),
        };
        let _ = w.write_all(line.as_bytes());
    }
    sleep_forever()
}

fn make_namespace(plan: &HelperPlan, ready: &mut Option<File>) -> Result<(), String> {
    let die_with_parent =
        || linux::set_parent_death_signal().map_err(|e| format!("prctl(PR_SET_PDEATHSIG): {e}"));
    die_with_parent()?;
    if let Some(uid) = plan.run_as {
        host::become_user(uid, uid).map_err(|e| format!("becoming uid {uid}: {e}"))?;
        // A process that changed credentials is not dumpable: others of the
        // same uid could then not open its /proc/<pid>/ns files.
        linux::set_dumpable(true).map_err(|e| format!("PR_SET_DUMPABLE: {e}"))?;
        die_with_parent()?;
    }
    let join = |path: &Path, kind: Kind| -> Result<(), String> {
        let fd = Linux
            .open_ns(path)
            .map_err(|e| format!("open {}: {e}", path.display()))?;
        Linux
            .setns(&fd, kind)
            .map_err(|e| format!("setns({kind}) {}: {e}", path.display()))
    };
    if let Some(p) = &plan.owner {
        join(p, Kind::User)?;
        die_with_parent()?;
    }
    if let Some(p) = &plan.pid_parent {
        join(p, Kind::Pid)?;
        // unshare(CLONE_NEWPID) needs pid_for_children to be the active
        // pid namespace: continue in a child, which is in the parent.
        fork_and_continue(ready)?;
    }
    Linux
        .unshare(KindSet::one(plan.kind))
        .map_err(|e| format!("unshare({}): {e}", plan.kind))?;
    die_with_parent()?;
    if plan.enter {
        fork_and_continue(ready)?;
    }
    Ok(())
}

/// Runs in a forked world process: see [`Realized::spawn_process`].
fn process_main(joins: &[(Kind, PathBuf)], uid: u32, state: ProcessState, ready: File) -> i32 {
    let mut ready = Some(ready);
    let result = enter_world_process(joins, uid, &mut ready);
    if let Some(mut w) = ready {
        let line = match result {
            Ok(()) => format!("ready {}\n", self_pid_in_proc()),
            Err(m) => format!("error {m}\n"),
        };
        let _ = w.write_all(line.as_bytes());
    }
    if state != ProcessState::Running {
        return 0;
    }
    sleep_forever()
}

/// The process's uid comes from the joined user namespace's map of 0 when
/// it joins one (a rootless container's init), else it becomes `uid`.
fn enter_world_process(
    joins: &[(Kind, PathBuf)],
    uid: u32,
    ready: &mut Option<File>,
) -> Result<(), String> {
    let die_with_parent =
        || linux::set_parent_death_signal().map_err(|e| format!("prctl(PR_SET_PDEATHSIG): {e}"));
    die_with_parent()?;
    for (kind, path) in joins {
        let fd = Linux
            .open_ns(path)
            .map_err(|e| format!("open {}: {e}", path.display()))?;
        Linux
            .setns(&fd, *kind)
            .map_err(|e| format!("setns({kind}) {}: {e}", path.display()))?;
    }
    let in_user = joins.iter().any(|(k, _)| *k == Kind::User);
    if in_user {
        // Root of the joined user namespace: the uid its map gives 0.
        Linux
            .set_root_ids()
            .map_err(|e| format!("becoming 0 in the joined user namespace: {e}"))?;
    } else if uid != 0 {
        host::become_user(uid, uid).map_err(|e| format!("becoming uid {uid}: {e}"))?;
    }
    // Changing credentials cleared dumpable and the parent-death signal.
    linux::set_dumpable(true).map_err(|e| format!("PR_SET_DUMPABLE: {e}"))?;
    die_with_parent()?;
    if joins.iter().any(|(k, _)| *k == Kind::Pid) {
        fork_and_continue(ready)?;
    }
    Ok(())
}

/// Waits (up to 10 s) until process `pid` is a zombie.
fn wait_zombie(pid: i32) -> Result<(), RealizeError> {
    for _ in 0..1000 {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next());
        if state == Some("Z") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(RealizeError::Child(format!(
        "world process {pid} did not become a zombie"
    )))
}

/// Forks; the parent gives up its copy of the report pipe (so the report
/// reader sees EOF if the child dies) and sleeps, the child goes on. In a
/// new pid namespace the parent is outside it (getppid is 0), so
/// die_with_parent's check cannot be made; the group kill ends it in any
/// case. (Also the external corpus's world builder's.)
pub(crate) fn fork_and_continue(ready: &mut Option<File>) -> Result<(), String> {
    match Linux.fork().map_err(|e| format!("fork: {e}"))? {
        Forked::Parent { .. } => {
            drop(ready.take());
            sleep_forever()
        }
        Forked::Child => {
            linux::set_parent_death_signal().map_err(|e| format!("PR_SET_PDEATHSIG: {e}"))
        }
    }
}

pub(crate) fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// This process's pid as the mounted `/proc` shows it: `getpid()` would
/// give the pid in a new pid namespace instead.
pub(crate) fn self_pid_in_proc() -> i32 {
    fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

/// Writes the id maps of the user namespace of process `pid` the way the
/// runtime parent does ([`nsapply::sync::write_id_maps`], through a pidfd and
/// the checked procfs) and [`ModelParent`](nsapply::simulate::ModelParent)
/// models it: `setgroups` `deny` first when `deny_setgroups`, then
/// `uid_map`, then `gid_map`.
///
/// `pid` need not be a child of the caller (a helper's holder is a
/// grandchild): these are test processes that live until the world is
/// dropped, so their pid is not reused meanwhile.
///
/// # Errors
///
/// pidfd_open(2) failed, or as [`nsapply::sync::write_id_maps`].
pub fn write_id_maps(
    pid: i32,
    uid: &[IdMapping],
    gid: &[IdMapping],
    deny_setgroups: bool,
) -> Result<(), SyncError> {
    let pidfd = Pidfd::open(pid).map_err(|errno| SyncError::Proc {
        reason: format!("pidfd_open of process {pid}"),
        errno: Some(errno),
    })?;
    nsapply::sync::write_id_maps(&ProcRoot::open()?, &pidfd, uid, gid, deny_setgroups)
}

/// What a process sees of itself in `/proc/self`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// `/proc/self/ns/<name>` inode per kind.
    pub ns: BTreeMap<Kind, u64>,
    /// `pid_for_children` and `time_for_children` inodes.
    pub for_children: BTreeMap<Kind, u64>,
    /// The inode of the user namespace owning `/proc/self/ns/<name>`, per
    /// kind but user, and for pid and time the owner of the namespace for
    /// children instead (`NS_GET_USERNS`); left out when it does not open
    /// or this process may not see the owner (EPERM).
    #[serde(default)]
    pub owners: BTreeMap<Kind, u64>,
    /// `/proc/self/uid_map`.
    pub uid_map: String,
    /// `/proc/self/gid_map`.
    pub gid_map: String,
    /// `/proc/self/setgroups`.
    pub setgroups: String,
    /// `/proc/self/timens_offsets`.
    pub timens_offsets: String,
    /// Every open fd.
    pub fds: Vec<i32>,
    /// The open fds that are namespace files, with their link text.
    pub ns_fds: Vec<(i32, String)>,
    /// The effective uid, as this process's user namespace shows it.
    pub euid: u32,
    /// The pid, as the mounted `/proc` shows it.
    pub pid: i32,
    /// Number of threads.
    pub threads: usize,
    /// The optional fields of `/` in `/proc/self/mountinfo` (its
    /// propagation: `shared:N`, `master:N`, `unbindable`, or empty for a
    /// private mount).
    pub root_propagation: String,
}

impl Observation {
    /// Looks at `/proc/self` now. Values that cannot be read are left empty.
    /// One [`ProcSelf`] serves every look (one path walk instead of one per
    /// value: this runs twice per real-kernel scenario, on every kernel of
    /// the VM tests, where procfs walks are slow under TCG).
    pub fn now() -> Observation {
        let Ok(me) = ProcSelf::open() else {
            return Observation {
                euid: host::euid(),
                ..Observation::default()
            };
        };
        let read = |name: &str| me.read(name).unwrap_or_default();
        let links = me.fd_links().unwrap_or_default();
        let mut o = Observation {
            uid_map: read("uid_map"),
            gid_map: read("gid_map"),
            setgroups: read("setgroups"),
            timens_offsets: read("timens_offsets"),
            fds: links.iter().map(|(fd, _)| *fd).collect(),
            ns_fds: links
                .into_iter()
                .filter(|(_, link)| host::is_ns_link(link))
                .collect(),
            euid: host::euid(),
            pid: self_pid_in_proc(),
            threads: linux::parse_thread_count(&read("stat")).unwrap_or(0),
            root_propagation: root_propagation(&read("mountinfo")),
            ..Observation::default()
        };
        for k in Kind::ALL {
            if let Ok(ino) = me.ns_inode(k.proc_name()) {
                o.ns.insert(k, ino);
            }
            let own = if k.applies_to_children() {
                k.proc_name_for_children()
            } else {
                k.proc_name()
            };
            if k != Kind::User {
                if let Ok(ino) = me.ns_owner_inode(own) {
                    o.owners.insert(k, ino);
                }
            }
            if k.applies_to_children() {
                if let Ok(ino) = me.ns_inode(k.proc_name_for_children()) {
                    o.for_children.insert(k, ino);
                }
            }
        }
        o
    }

    /// The kinds whose namespace (or, for pid and time, the one for
    /// children) differs between `self` and `other`.
    pub fn changed(&self, other: &Observation) -> KindSet {
        Kind::ALL
            .into_iter()
            .filter(|k| {
                self.ns.get(k) != other.ns.get(k)
                    || self.for_children.get(k) != other.for_children.get(k)
            })
            .collect()
    }
}

/// The optional fields of the topmost mount on `/` in the text of
/// `/proc/<pid>/mountinfo`: the fields between the mount options (6th) and
/// the `-` separator (proc(5)).
fn root_propagation(mountinfo: &str) -> String {
    mountinfo
        .lines()
        .rev()
        .find_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            (fields.get(4) == Some(&"/")).then(|| {
                fields[6..]
                    .iter()
                    .take_while(|f| **f != "-")
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        })
        .unwrap_or_default()
}

/// Which process reported a [`KernelRun`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    /// The applying process; the plan did not fork (or failed before).
    Applier,
    /// The child forked by the plan (the container process).
    Child,
}

/// The outcome of [`apply_as_caller`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelRun {
    /// The trace of the run (the child's copy when the plan forked).
    pub trace: Trace,
    /// Who reported.
    pub side: Side,
    /// The applying process right before apply.
    pub before: Observation,
    /// The reporting process right after apply.
    pub after: Observation,
}

/// Runs `plan` on the [`Linux`] backend as the model's caller would:
///
/// ```text
/// this process ─fork─▶ R: becomes caller.uid/gid, dumpable ─fork─▶ C: threads, apply(plan, Linux, ChildSync) ─fork─▶ C2
///                      R serves C's sync points (answer_sync)       C (or C2 after the plan's fork) reports
/// ```
///
/// `caller.threads - 1` extra threads are started in C before apply.
/// This process must be single-threaded.
///
/// When the caller is root (uid and gid 0), this process plays R itself:
/// R's part (fork C, write C's maps, read C's report, reap it) leaves R as
/// it was, and R only needs a process of its own to change credentials.
/// That is one fork and one report round trip fewer per run, which the VM
/// tests feel (a fork and exit is slow under TCG; vm-tests/README.md has
/// the figures).
///
/// # Errors
///
/// A fork or pipe failed, or a process died without reporting.
pub fn apply_as_caller(plan: &Plan, caller: &CallerSpec) -> Result<KernelRun, RealizeError> {
    if caller.uid == 0 && caller.gid == 0 {
        return run_runtime(plan, caller);
    }
    let (result_r, result_w) = process::pipe().map_err(sys("pipe"))?;
    let plan = plan.clone();
    let caller = caller.clone();
    let runtime = host::fork_with(move || {
        let r = run_runtime(&plan, &caller);
        let mut w = result_w;
        let line = serde_json::to_string(&r.map_err(|e| e.to_string())).unwrap_or_default();
        i32::from(w.write_all(format!("{line}\n").as_bytes()).is_err())
    })
    .map_err(sys("fork of the runtime process"))?;
    let mut text = String::new();
    let read = BufReader::new(result_r).read_to_string(&mut text);
    let status = process::wait(runtime).map(process::Exit::status);
    read.map_err(io_err("reading the runtime's report"))?;
    let r: Result<KernelRun, String> = serde_json::from_str(text.trim()).map_err(|e| {
        RealizeError::Child(format!(
            "runtime process (exit {status:?}) gave no report ({e}): {text:?}"
        ))
    })?;
    r.map_err(RealizeError::Child)
}

fn run_runtime(plan: &Plan, caller: &CallerSpec) -> Result<KernelRun, RealizeError> {
    if caller.uid != 0 || caller.gid != 0 {
        host::become_user(caller.uid, caller.gid).map_err(sys(format!(
            "becoming uid {} gid {}",
            caller.uid, caller.gid
        )))?;
        // Non-dumpable after the credential change; the applying process
        // inherits that, and this process could then not write its maps.
        linux::set_dumpable(true).map_err(sys("PR_SET_DUMPABLE"))?;
    }
    let (parent_end, child_end) = Channel::pair().map_err(sys("socketpair"))?;
    let (mut parent_end, mut child_end) = (Some(parent_end), Some(child_end));
    let (rep_r, rep_w) = process::pipe().map_err(sys("pipe"))?;
    let threads = caller.threads;
    let child_plan = plan.clone();
    // The closure owns what only the child keeps (the report's write end,
    // closed in this process when the closure is dropped); the channel's
    // ends are taken from options, so this process keeps its own.
    let (parent_slot, child_slot) = (&mut parent_end, &mut child_end);
    let applier = host::fork_with(move || {
        drop(parent_slot.take());
        let mut rep_w = rep_w;
        let Some(mut channel) = child_slot.take() else {
            return 1;
        };
        for _ in 1..threads {
            std::thread::spawn(sleep_forever);
        }
        let before = Observation::now();
        let mut hooks = ChildSync::new(&mut channel);
        let run = apply(&child_plan, &mut Linux, &mut hooks);
        // Seen before the channel closes, so `fds` compares with `before`.
        let after = Observation::now();
        // Closed before reporting, so the parent's serve loop ends.
        drop(hooks);
        drop(channel);
        let side = match run.result {
            Ok(Some(Forked::Parent { child })) => {
                drop(rep_w);
                return process::wait(child).map(process::Exit::status).unwrap_or(1);
            }
            Ok(Some(Forked::Child)) => Side::Child,
            _ => Side::Applier,
        };
        let report = KernelRun {
            trace: run.into_trace(),
            side,
            before,
            after,
        };
        let line = serde_json::to_string(&report).unwrap_or_default();
        i32::from(rep_w.write_all(format!("{line}\n").as_bytes()).is_err())
    })
    .map_err(sys("fork of the applying process"))?;
    drop(child_end);
    let mut parent_end = parent_end.ok_or_else(|| RealizeError::Child("no channel".to_owned()))?;
    // The applying process is our unreaped child: its pid names it.
    let served = Pidfd::open(applier)
        .map_err(|errno| SyncError::Proc {
            reason: format!("pidfd_open of the applying process {applier}"),
            errno: Some(errno),
        })
        .and_then(|pidfd| serve_sync_points(&mut parent_end, plan, &pidfd));
    drop(parent_end);
    let mut text = String::new();
    let read = BufReader::new(rep_r).read_to_string(&mut text);
    let status = process::wait(applier).map(process::Exit::status);
    served.map_err(|source| RealizeError::Sync {
        what: "serving the sync points".to_owned(),
        source,
    })?;
    read.map_err(io_err("reading the report"))?;
    serde_json::from_str(text.trim()).map_err(|e| {
        RealizeError::Child(format!("no report (exit status {status:?}; {e}): {text:?}"))
    })
}

/// The runtime parent's loop (as `nsapply run`'s P0 answers): every sync
/// point the child reports is answered with [`answer_sync`], until the
/// child closes the channel.
fn serve_sync_points(channel: &mut Channel, plan: &Plan, child: &Pidfd) -> Result<(), SyncError> {
    let proc = ProcRoot::open()?;
    while let Some(msg) = channel.recv::<ToParent>()? {
        let ToParent::Sync { point } = msg else {
            return Err(SyncError::Protocol {
                message: format!(
                    "the applying process sent {msg:?}, which only nsapply run's children send"
                ),
            });
        };
        let answer = match answer_sync(point, plan, &proc, child) {
            Ok(()) => ToChild::Ack,
            Err(error) => ToChild::Refused { error },
        };
        // A child that died meanwhile shows as the end of the channel.
        let _ = channel.send(&answer);
    }
    Ok(())
}
