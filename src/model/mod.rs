//! The recorded-syscall kernel model (DESIGN §5): a [`Syscall`] backend that
//! answers each call from state, by the kernel's rules, and records it.
//!
//! The model is the reference other runtimes are checked against, and its
//! answers are compared errno for errno with real kernels. It is therefore
//! not a call logger with canned answers: it holds the objects the kernel
//! decides with (namespaces and their owners, the caller's credentials and
//! namespaces, the fd table, a small file system) and derives every answer
//! from them, checking in the order the kernel checks (Linux 6.x):
//!
//! * capabilities: `cap_capable()` in `security/commoncap.c`;
//! * setns(2): `userns_install`, `mntns_install`, `pidns_install`,
//!   `timens_install` and the net/uts/ipc/cgroup install hooks;
//! * unshare(2): `check_unshare_flags`, `create_user_ns`,
//!   `unshare_nsproxy_namespaces`, `copy_pid_ns`, `create_pid_namespace`;
//! * `/proc/<pid>/{uid_map,gid_map,setgroups}`: `map_write`,
//!   `new_idmap_permitted`, `proc_setgroups_write` (user_namespaces(7));
//! * `/proc/self/timens_offsets`: `proc_timens_set_offset` (time_namespaces(7)).
//!
//! * mount(2) changing the propagation of `/`: `may_mount`, `do_change_type`.
//!
//! A [`World`] (JSON or builder) says what exists before the run; a
//! [`FaultScript`] forces chosen calls to fail, so every error path of the
//! engine can be reached without privilege. The runs of whole plans on the
//! model are [`crate::simulate`]'s.
//!
//! The files, by job: `world` (what exists before a run, and making a
//! model of it), `kernel` (namespace objects, credentials, the rules of
//! each call), `fs` (paths and `/proc/self/ns`), `faults` (the call record
//! and fault scripts), `views` (what the model shows of its fds and
//! namespaces), and this file (the model itself and its [`Syscall`]
//! answers).
//!
//! What the model leaves out, on purpose: LSMs, `ENOMEM` (and with it the
//! exit of a pid namespace's init, after which the kernel refuses a fork
//! into it), capabilities one by one (a caller has all of them in its user
//! namespace or none), and ptrace access checks (a world marks a path the
//! caller may not look up as [`FileSpec::Forbidden`]). The clocks' current
//! values, the namespace limits and nesting depths, chroot and a shared
//! fs_struct are in the [`World`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::config::{IdMapping, Propagation, TimeOffset};
use crate::error::{Errno, MapFile};
use crate::kind::{Kind, KindSet};
use crate::syscall::{Forked, Syscall, ThreadCountError};
use crate::trace::Outcome;

mod faults;
mod fs;
mod kernel;
mod kernel_version;
mod process;
#[cfg(test)]
pub(crate) mod tests;
mod views;
mod world;

pub use faults::{Call, CallOp, Fault, FaultAt, FaultScript};
pub use kernel_version::KernelVersion;
pub use process::{ProcessSpec, ProcessState};
pub use views::{ModelFd, NsView, OpenFdView};
pub use world::{CallerSpec, ClockValue, Clocks, FileSpec, Limits, NsSpec, World, WorldError};

use fs::{Node, Nodes};
use kernel::{Cred, Ids, Kernel};
use views::{FdTarget, OpenFile, NEXT_SERIAL};

/// serde's `skip_serializing_if` for a flag whose default is `false`
/// (the world's and the fault script's files leave it out).
fn is_false(b: &bool) -> bool {
    !*b
}

/// The first fd the model hands out (0, 1, 2 are stdio).
const FIRST_FD: u32 = 3;
/// Where the time offsets are written (recorded as the call's path).
const TIMENS_OFFSETS: &str = "/proc/self/timens_offsets";

/// The kernel model: a [`Syscall`] backend for one process that answers
/// from state by the kernel's rules and records every call (DESIGN §5).
///
/// ```
/// use std::path::Path;
/// use nsapply::{Errno, Kind, KindSet, Syscall};
/// use nsapply::model::{CallerSpec, Model, NsSpec, World};
///
/// // A rootless caller and a network namespace owned by a user namespace
/// // it created: joining the network namespace needs the user one first.
/// let world = World::new()
///     .caller(CallerSpec::unprivileged(1000, 1000))
///     .namespace(NsSpec::new("u", Kind::User).created_by(1000).at("/run/u"))
///     .namespace(NsSpec::new("n", Kind::Network).owned_by("u").at("/run/n"));
/// let mut m = Model::new(&world).expect("a valid world");
/// let net = m.open_ns(Path::new("/run/n"))?;
/// let user = m.open_ns(Path::new("/run/u"))?;
/// assert_eq!(m.setns(&net, Kind::Network), Err(Errno::EPERM));
/// m.setns(&user, Kind::User)?;
/// m.setns(&net, Kind::Network)?;
/// assert_eq!(m.current(Kind::Network), "n");
/// assert_eq!(m.unshare(KindSet::one(Kind::Uts)), Ok(()));
/// assert_eq!(m.current(Kind::Uts), "new:uts:1");
/// m.close(net);
/// m.close(user);
/// assert_eq!(m.open_fd_count(), 0);
/// assert_eq!(m.calls().len(), 8);
/// # Ok::<(), Errno>(())
/// ```
#[derive(Debug)]
pub struct Model {
    kernel: Kernel,
    /// The runtime parent that writes the id maps: the caller as it started.
    parent: Cred,
    /// What each path of the world names, by its normal form (see
    /// [`normalize`]): its files and namespaces, and the directories their
    /// paths imply. One hash lookup per component: ordered maps of
    /// `PathBuf` compared component by component made `Model::new` grow
    /// as n log n with a large constant.
    nodes: Nodes,
    fds: BTreeMap<u32, OpenFile>,
    calls: Vec<Call>,
    faults: FaultScript,
    fallible_calls: usize,
    bad_closes: usize,
}

impl Model {
    /// A model of a world just loaded ([`Model::new`]): the caller as it
    /// starts is also the runtime parent that writes the id maps.
    fn start(kernel: Kernel, nodes: Nodes) -> Model {
        let parent = kernel.caller.cred();
        Model {
            kernel,
            parent,
            nodes,
            fds: BTreeMap::new(),
            calls: Vec::new(),
            faults: FaultScript::default(),
            fallible_calls: 0,
            bad_closes: 0,
        }
    }

    /// Replaces the fault script. Positions count every fallible call since
    /// the model was made, so set it before the run.
    pub fn set_faults(&mut self, faults: FaultScript) {
        self.faults = faults;
    }

    /// Makes room for `n` more calls in the record (a run of `n` calls then
    /// allocates once).
    pub(crate) fn expect_calls(&mut self, n: usize) {
        self.calls.reserve(n);
    }

    /// Every call answered so far, in order (close and thread count included).
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// Number of fds open now.
    pub fn open_fd_count(&self) -> usize {
        self.fds.len()
    }

    /// Closes of fds that were not open (EBADF), such as an fd of another model.
    pub fn bad_closes(&self) -> usize {
        self.bad_closes
    }

    /// The name of the caller's namespace of `kind` (for pid: the active one).
    pub fn current(&self, kind: Kind) -> &str {
        &self.kernel.spaces[self.kernel.caller.ns[kind.index()]].name
    }

    /// The namespace a new child would get: `pid_for_children` and
    /// `time_for_children`; for the other kinds the same as [`Model::current`].
    pub fn for_children(&self, kind: Kind) -> &str {
        let c = &self.kernel.caller;
        let id = match kind {
            Kind::Pid => c.pid_for_children,
            Kind::Time => c.time_for_children,
            _ => c.ns[kind.index()],
        };
        &self.kernel.spaces[id].name
    }

    /// The caller's effective uid in host terms (the kuid).
    pub fn euid(&self) -> u32 {
        self.kernel.caller.euid
    }

    /// The caller's effective gid in host terms (the kgid).
    pub fn egid(&self) -> u32 {
        self.kernel.caller.egid
    }

    /// Whether the caller has capabilities over the user namespace
    /// `user_ns` (`cap_capable`); false for an unknown name or another kind.
    pub fn capable_in(&self, user_ns: &str) -> bool {
        self.find(user_ns)
            .filter(|&id| self.kernel.spaces[id].kind == Kind::User)
            .is_some_and(|id| self.kernel.capable(&self.kernel.caller.cred(), id))
    }

    /// The caller's thread count.
    pub fn threads(&self) -> usize {
        self.kernel.caller.threads
    }

    /// Starts one more thread in the caller (as a runtime's helper thread would).
    pub fn spawn_thread(&mut self) -> Result<(), Errno> {
        let c = &self.kernel.caller;
        if c.pid_for_children != c.ns[Kind::Pid.index()] {
            return Err(Errno::EINVAL);
        }
        self.kernel.caller.threads += 1;
        self.kernel.caller.fs_shared = true;
        Ok(())
    }

    /// Whether the model has forked (it then models the child).
    pub fn has_forked(&self) -> bool {
        self.kernel.caller.forked
    }

    /// The runtime parent (the caller as it started) writes `setgroups`
    /// ("deny" when it lacks capabilities over the parent of the caller's
    /// user namespace), `uid_map`, then `gid_map` of the caller's current
    /// user namespace, stopping at the first error (user_namespaces(7)).
    ///
    /// # Errors
    ///
    /// EPERM for the host user namespace, a second write, an unprivileged
    /// writer mapping anything but its own single id, or host ids not
    /// mapped in the parent; EINVAL for empty or overlapping lines or a
    /// size of 0; EACCES when the writer may not write `setgroups`.
    pub fn parent_write_id_maps(
        &mut self,
        uid: &[IdMapping],
        gid: &[IdMapping],
    ) -> Result<(), Errno> {
        self.write_id_maps_as_parent(uid, gid).map_err(|(_, e)| e)
    }

    pub(crate) fn write_id_maps_as_parent(
        &mut self,
        uid: &[IdMapping],
        gid: &[IdMapping],
    ) -> Result<(), (MapFile, Errno)> {
        let ns = self.kernel.caller.ns[Kind::User.index()];
        let writer = self.parent;
        let Some(parent) = self.kernel.spaces[ns].owner else {
            return Err((MapFile::UidMap, Errno::EPERM));
        };
        if !self.kernel.capable(&writer, parent) {
            self.kernel
                .write_setgroups_deny(&writer, ns)
                .map_err(|e| (MapFile::Setgroups, e))?;
        }
        self.kernel
            .write_map(&writer, ns, Ids::Uid, uid)
            .map_err(|e| (MapFile::UidMap, e))?;
        self.kernel
            .write_map(&writer, ns, Ids::Gid, gid)
            .map_err(|e| (MapFile::GidMap, e))
    }

    /// The runtime parent writes `uid_map` of the caller's current user
    /// namespace (one `map_write`).
    ///
    /// # Errors
    ///
    /// As [`Model::parent_write_id_maps`] for `uid_map`.
    pub fn write_uid_map(&mut self, lines: &[IdMapping]) -> Result<(), Errno> {
        let ns = self.kernel.caller.ns[Kind::User.index()];
        let writer = self.parent;
        self.kernel.write_map(&writer, ns, Ids::Uid, lines)
    }

    /// The runtime parent writes `gid_map` of the caller's current user
    /// namespace; unprivileged, it must have written `setgroups` "deny" first.
    ///
    /// # Errors
    ///
    /// As [`Model::parent_write_id_maps`] for `gid_map`.
    pub fn write_gid_map(&mut self, lines: &[IdMapping]) -> Result<(), Errno> {
        let ns = self.kernel.caller.ns[Kind::User.index()];
        let writer = self.parent;
        self.kernel.write_map(&writer, ns, Ids::Gid, lines)
    }

    /// The runtime parent writes "deny" to `setgroups` of the caller's
    /// current user namespace.
    ///
    /// # Errors
    ///
    /// EACCES without capabilities over that namespace; EPERM once its
    /// `gid_map` is written (always for the host user namespace).
    pub fn write_setgroups_deny(&mut self) -> Result<(), Errno> {
        let ns = self.kernel.caller.ns[Kind::User.index()];
        let writer = self.parent;
        self.kernel.write_setgroups_deny(&writer, ns)
    }

    /// The clocks' values at the start of the run (the world's).
    pub fn clocks(&self) -> Clocks {
        let value = |(secs, nanosecs): (i64, u32)| ClockValue { secs, nanosecs };
        Clocks {
            monotonic: value(self.kernel.clocks[0]),
            boottime: value(self.kernel.clocks[1]),
        }
    }

    /// fork(2) of a child that exits at once, the caller going on as the
    /// parent (what a test of the kernel does to enter `pid_for_children`
    /// and `time_for_children` once): the new pid namespace had its init,
    /// the new time namespace was entered (its offsets are frozen). The
    /// engine's own fork ([`Syscall::fork`]) continues as the child. The
    /// model does not follow the init's exit: a later fork into that pid
    /// namespace, which the kernel refuses with ENOMEM, is not modelled.
    ///
    /// # Errors
    ///
    /// A fault of the fault script.
    pub fn fork_child_exits(&mut self) -> Result<(), Errno> {
        self.call(CallOp::Fork, None, None, None, |m| {
            m.kernel.fork_child_exits();
            Ok(())
        })
    }

    /// The caller itself (as it is now, not the runtime parent) writes
    /// `file` of the user namespace named `ns` (`uid_map`, `gid_map`, or
    /// `setgroups` "deny"), as a process does through `/proc/<pid>/` of a
    /// process in that namespace; `"self"` is the caller's own. For
    /// `setgroups` the lines are ignored; [`Model::caller_allow_setgroups`]
    /// writes "allow".
    ///
    /// # Errors
    ///
    /// ENOENT for a name that is not a user namespace; otherwise as
    /// [`Model::parent_write_id_maps`] for that file.
    pub fn caller_write_map(
        &mut self,
        ns: &str,
        file: MapFile,
        lines: &[IdMapping],
    ) -> Result<(), Errno> {
        let ns = self.user_ns_named(ns)?;
        let writer = self.kernel.caller.cred();
        match file {
            MapFile::UidMap => self.kernel.write_map(&writer, ns, Ids::Uid, lines),
            MapFile::GidMap => self.kernel.write_map(&writer, ns, Ids::Gid, lines),
            MapFile::Setgroups => self.kernel.write_setgroups(&writer, ns, false),
        }
    }

    /// The caller writes "allow" to `setgroups` of the user namespace `ns`
    /// (`"self"`: its own).
    ///
    /// # Errors
    ///
    /// ENOENT for a name that is not a user namespace; EACCES without
    /// capabilities over it; EPERM once "deny" was written.
    pub fn caller_allow_setgroups(&mut self, ns: &str) -> Result<(), Errno> {
        let ns = self.user_ns_named(ns)?;
        let writer = self.kernel.caller.cred();
        self.kernel.write_setgroups(&writer, ns, true)
    }

    fn user_ns_named(&self, name: &str) -> Result<kernel::NsId, Errno> {
        if name == "self" {
            return Ok(self.kernel.caller.ns[Kind::User.index()]);
        }
        self.find(name)
            .filter(|&id| self.kernel.spaces[id].kind == Kind::User)
            .ok_or(Errno::ENOENT)
    }

    fn entry(&self, fd: &ModelFd) -> Option<&OpenFile> {
        self.fds.get(&fd.num).filter(|o| o.serial == fd.serial)
    }

    fn target_kind(&self, target: FdTarget) -> Option<Kind> {
        match target {
            FdTarget::Ns(id) => Some(self.kernel.spaces[id].kind),
            FdTarget::File | FdTarget::Process(_) => None,
        }
    }

    /// Counts the call and returns the errno of the first fault that hits it.
    fn fault(&mut self, op: CallOp, kind: Option<Kind>, kinds: KindSet) -> Option<Errno> {
        if op.is_fallible() {
            self.fallible_calls += 1;
        }
        let position = self.fallible_calls;
        self.faults
            .faults
            .iter()
            .find(|f| f.at.matches(op, kind, kinds, position))
            .map(|f| f.errno)
    }

    /// Runs `rule` unless a fault hits the call, and records it.
    fn call<T>(
        &mut self,
        op: CallOp,
        kind: Option<Kind>,
        path: Option<PathBuf>,
        fd: Option<u32>,
        rule: impl FnOnce(&mut Self) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        let injected = self.fault(op, kind, KindSet::EMPTY);
        let result = match injected {
            Some(errno) => Err(errno),
            None => rule(self),
        };
        self.calls.push(Call {
            op,
            kind,
            kinds: KindSet::EMPTY,
            path,
            fd,
            result: Outcome::of(&result),
            injected: injected.is_some(),
        });
        result
    }

    fn allocate_fd(&mut self, path: &Path, target: FdTarget) -> ModelFd {
        // open(2) returns the lowest free number.
        let num = (FIRST_FD..)
            .find(|n| !self.fds.contains_key(n))
            .unwrap_or(u32::MAX);
        let serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
        self.fds.insert(
            num,
            OpenFile {
                serial,
                path: path.to_owned(),
                target,
                // open_ns is O_CLOEXEC.
                cloexec: true,
            },
        );
        ModelFd {
            num,
            serial,
            path: path.to_owned(),
        }
    }
}

impl Syscall for Model {
    type Fd = ModelFd;

    /// The open of a namespace path (`O_PATH` first, see
    /// [`Syscall::open_ns`]): ENOENT when missing, ENOTDIR when a component
    /// before the last is not a directory; any existing file opens (no
    /// permission on it is needed, nothing blocks). `/proc/self/ns/<name>`
    /// names the caller's namespace at the time of the call.
    fn open_ns(&mut self, path: &Path) -> Result<ModelFd, Errno> {
        let resolved = self.resolve(path);
        let kind = match resolved {
            Ok(Node::Ns(id)) => Some(self.kernel.spaces[id].kind),
            _ => None,
        };
        let r = self.call(
            CallOp::Open,
            kind,
            Some(path.to_owned()),
            None,
            |m| match resolved? {
                Node::Ns(id) => Ok(m.allocate_fd(path, FdTarget::Ns(id))),
                Node::Dir | Node::File => Ok(m.allocate_fd(path, FdTarget::File)),
                // resolve refuses it (EACCES).
                Node::Forbidden => Err(Errno::EACCES),
            },
        );
        if let (Ok(fd), Some(call)) = (&r, self.calls.last_mut()) {
            call.fd = Some(fd.num);
        }
        r
    }

    /// `NS_GET_NSTYPE`: EBADF for an fd not open, ENOTTY for a file that is
    /// not a namespace.
    fn ns_get_nstype(&mut self, fd: &ModelFd) -> Result<i32, Errno> {
        let target = self.entry(fd).map(|o| o.target);
        let kind = target.and_then(|t| self.target_kind(t));
        self.call(
            CallOp::Nstype,
            kind,
            Some(fd.path.clone()),
            Some(fd.num),
            |_| match (target, kind) {
                (None, _) => Err(Errno::EBADF),
                (Some(_), Some(k)) => Ok(k.clone_flag()),
                (Some(_), None) => Err(Errno::ENOTTY),
            },
        )
    }

    /// setns(2): EBADF for an fd not open or not a namespace (an `O_PATH`
    /// reference), EINVAL for a type mismatch, then the install hook of
    /// `kind` (see the module docs).
    fn setns(&mut self, fd: &ModelFd, kind: Kind) -> Result<(), Errno> {
        let target = self.entry(fd).map(|o| o.target);
        self.call(
            CallOp::Setns,
            Some(kind),
            Some(fd.path.clone()),
            Some(fd.num),
            |m| match target {
                // A file that is not a namespace is only an O_PATH
                // reference (see open_ns), which setns(2) does not take
                // (`fdget` refuses O_PATH files): EBADF, where an fd opened
                // for reading would get EINVAL.
                None | Some(FdTarget::File) => Err(Errno::EBADF),
                // A pidfd with one kind: setns through a pidfd (or EINVAL
                // where the kernel does not take one).
                Some(FdTarget::Process(p)) => m.setns_process(p, KindSet::one(kind)),
                Some(FdTarget::Ns(id)) if m.kernel.spaces[id].kind != kind => Err(Errno::EINVAL),
                Some(FdTarget::Ns(id)) => m.kernel.setns(id, kind),
            },
        )
    }

    /// close(2); closing an fd that is not open counts in
    /// [`Model::bad_closes`] and is recorded as EBADF.
    fn close(&mut self, fd: ModelFd) {
        let open = self.entry(&fd).map(|o| o.target);
        let kind = open.and_then(|t| self.target_kind(t));
        let result = if open.is_some() {
            self.fds.remove(&fd.num);
            Outcome::Ok
        } else {
            self.bad_closes += 1;
            Outcome::Err(Errno::EBADF)
        };
        self.calls.push(Call {
            op: CallOp::Close,
            kind,
            kinds: KindSet::EMPTY,
            path: Some(fd.path),
            fd: Some(fd.num),
            result,
            injected: false,
        });
    }

    /// unshare(2), all or nothing: EINVAL for user while multithreaded;
    /// ENOSPC past 32 nested user namespaces; EPERM when the caller's
    /// ids are unmapped in its user namespace, or (other kinds) without
    /// CAP_SYS_ADMIN there; for pid, EINVAL when `pid_for_children` is not
    /// the active pid namespace and ENOSPC past level 32.
    fn unshare(&mut self, kinds: KindSet) -> Result<(), Errno> {
        let one = (kinds.len() == 1)
            .then(|| {
                Kind::ALL
                    .get(kinds.bits().trailing_zeros() as usize)
                    .copied()
            })
            .flatten();
        let injected = self.fault(CallOp::Unshare, one, kinds);
        let result = match injected {
            Some(errno) => Err(errno),
            None => self.kernel.unshare(kinds),
        };
        self.calls.push(Call {
            op: CallOp::Unshare,
            kind: one,
            kinds,
            path: None,
            fd: None,
            result: Outcome::of(&result),
            injected: injected.is_some(),
        });
        result
    }

    /// setresgid(0,0,0) then setresuid(0,0,0) in the caller's user
    /// namespace: EINVAL when 0 is not mapped, EPERM without capabilities
    /// when the id changes.
    fn set_root_ids(&mut self) -> Result<(), Errno> {
        self.call(CallOp::Setid, Some(Kind::User), None, None, |m| {
            m.kernel.set_root_ids()
        })
    }

    /// The propagation of `/` in the caller's mount namespace
    /// (`do_change_type` behind mount(2)): EPERM without CAP_SYS_ADMIN over
    /// the mount namespace's owner (`may_mount`). The model's `/` is always
    /// a mount point (it has no chroot), so EINVAL does not arise.
    fn set_root_propagation(&mut self, _: Propagation) -> Result<(), Errno> {
        self.call(CallOp::Propagation, Some(Kind::Mount), None, None, |m| {
            m.kernel.set_root_propagation()
        })
    }

    /// A write of `/proc/self/timens_offsets` into `time_for_children`:
    /// EINVAL for nanoseconds > 999999999, EPERM without CAP_SYS_TIME over
    /// the namespace's owner, ERANGE for seconds beyond `KTIME_SEC_MAX / 2`,
    /// EACCES once a process entered it (so always for a namespace that was
    /// not just unshared). The kernel also refuses (ERANGE) an offset that
    /// would make a clock negative; that depends on uptime and is not modelled.
    fn write_time_offsets(&mut self, offsets: &[TimeOffset]) -> Result<(), Errno> {
        self.call(
            CallOp::TimeOffsets,
            Some(Kind::Time),
            Some(PathBuf::from(TIMENS_OFFSETS)),
            None,
            |m| m.kernel.write_time_offsets(offsets),
        )
    }

    /// The caller's thread count (fault it with the `threads` op).
    fn thread_count(&mut self) -> Result<usize, ThreadCountError> {
        let injected = self.fault(CallOp::Threads, None, KindSet::EMPTY);
        let result = injected.map_or(Ok(self.kernel.caller.threads), Err);
        self.calls.push(Call {
            op: CallOp::Threads,
            kind: None,
            kinds: KindSet::EMPTY,
            path: None,
            fd: None,
            result: Outcome::of(&result),
            injected: injected.is_some(),
        });
        result.map_err(|errno| ThreadCountError { errno: Some(errno) })
    }

    /// fork(2); the model continues as the child, which is in
    /// `pid_for_children` (its init when it is the first process there) and
    /// `time_for_children` (now entered), single-threaded.
    fn fork(&mut self) -> Result<Forked, Errno> {
        self.call(CallOp::Fork, None, None, None, |m| {
            m.kernel.fork();
            Ok(Forked::Child)
        })
    }

    /// pidfd_open(2) of a world process: ESRCH for a pid no process has
    /// (or one reaped); an exited, unreaped one has a pidfd. The kernel
    /// looks the pid up in the caller's active pid namespace
    /// (`find_get_pid` in `pidfd_open`, kernel/pid.c): once the caller is
    /// in another one than the world numbers its processes in (it forked
    /// into a pid namespace it made or joined), those numbers name no
    /// process there, ESRCH. (The model
    /// takes it that they name no other process either: a new pid
    /// namespace numbers from 1.) Measured on Linux 6.18 by property 6
    /// (proptests/model_machine.rs), where the model answered with a pidfd.
    fn pidfd_open(&mut self, pid: i32) -> Result<ModelFd, Errno> {
        let path = PathBuf::from(format!("pidfd:{pid}"));
        let r = self.call(
            CallOp::PidfdOpen,
            None,
            Some(path.clone()),
            None,
            |m| match m.kernel.process(pid) {
                Some(p)
                    if m.kernel.processes[p].state != ProcessState::Reaped
                        && m.kernel.caller.ns[Kind::Pid.index()] == m.kernel.pids_from =>
                {
                    Ok(m.allocate_fd(&path, FdTarget::Process(p)))
                }
                _ => Err(Errno::ESRCH),
            },
        );
        if let (Ok(fd), Some(call)) = (&r, self.calls.last_mut()) {
            call.fd = Some(fd.num);
        }
        r
    }

    /// setns(2) through a pidfd ([`Syscall::setns_pidfd`]): EBADF for an
    /// fd not open; EINVAL where the world's kernel does not take a pidfd,
    /// or no kinds; then ESRCH, EPERM and the install hooks of each kind,
    /// all or nothing (see `Kernel::setns_process`). Given another fd, the
    /// kernel's setns(2) answers as for that fd (`SYSCALL_DEFINE2(setns)`
    /// in kernel/nsproxy.c: `proc_ns_file` first, then `pidfd_pid`): a
    /// namespace file with flags 0 or exactly its own type is joined, with
    /// other flags EINVAL; a file that is not a namespace is EBADF (an
    /// `O_PATH` reference, which `fdget` refuses). Measured on Linux 6.18
    /// by property 6 (proptests/model_machine.rs), where the model
    /// answered EINVAL for a namespace file.
    fn setns_pidfd(&mut self, pidfd: &ModelFd, kinds: KindSet) -> Result<(), Errno> {
        let target = self.entry(pidfd).map(|o| o.target);
        let injected = self.fault(CallOp::SetnsPidfd, None, kinds);
        let result = match injected {
            Some(errno) => Err(errno),
            None => match target {
                None | Some(FdTarget::File) => Err(Errno::EBADF),
                Some(FdTarget::Process(p)) => self.setns_process(p, kinds),
                // `proc_ns_file`: flags 0 or the file's own type.
                Some(FdTarget::Ns(id)) => {
                    let kind = self.kernel.spaces[id].kind;
                    if kinds.iter().all(|k| k == kind) {
                        self.kernel.setns(id, kind)
                    } else {
                        Err(Errno::EINVAL)
                    }
                }
            },
        };
        self.calls.push(Call {
            op: CallOp::SetnsPidfd,
            kind: None,
            kinds,
            path: Some(pidfd.path.clone()),
            fd: Some(pidfd.num),
            result: Outcome::of(&result),
            injected: injected.is_some(),
        });
        result
    }
}

impl Model {
    /// setns(2) with a pidfd of the world's process `p`: `check_setns_flags`
    /// (EINVAL for no kinds, and where the kernel does not take a pidfd),
    /// then `validate_nsset` in its order: ESRCH for a reaped process (no
    /// task), EPERM without ptrace access, ESRCH for an exited one (a
    /// zombie has no nsproxy), then each kind's install hook. A zombie of
    /// another user is EPERM, not ESRCH: measured on Linux 6.18, and what
    /// the order of the checks in kernel/nsproxy.c gives.
    fn setns_process(&mut self, p: usize, kinds: KindSet) -> Result<(), Errno> {
        if !self.kernel.pidfd_setns || kinds.is_empty() {
            return Err(Errno::EINVAL);
        }
        let proc = self.kernel.processes[p];
        if proc.state == ProcessState::Reaped {
            return Err(Errno::ESRCH);
        }
        if !self.kernel.may_ptrace(p) {
            return Err(Errno::EPERM);
        }
        if proc.state == ProcessState::Exited {
            return Err(Errno::ESRCH);
        }
        self.kernel.setns_process(proc.ns, kinds)
    }
}
