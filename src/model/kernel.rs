//! The kernel's state and rules: namespace objects, the caller's
//! credentials and namespaces, and what each call does to them, in the
//! order the kernel checks (see the [module docs](super) for the sources).

use std::borrow::Cow;
use std::path::PathBuf;

use crate::config::{id_map_text, Clock, IdMapping, TimeOffset, MAX_NANOSECS};
use crate::error::Errno;
use crate::kind::{Kind, KindSet};

/// `create_user_ns`: a user namespace whose level is above this cannot get
/// a child (ENOSPC since Linux 4.9, EUSERS before): 32 nested below the host.
pub(super) const MAX_USER_NS_PARENT_LEVEL: u32 = 32;
/// The order in which `create_new_namespaces` (kernel/nsproxy.c) makes the
/// namespaces of one unshare (the user namespace comes before, in
/// `unshare_userns`): the first that fails decides the errno.
pub(super) const CREATE_ORDER: [Kind; 7] = [
    Kind::Mount,
    Kind::Uts,
    Kind::Ipc,
    Kind::Pid,
    Kind::Cgroup,
    Kind::Network,
    Kind::Time,
];

/// The order in which `validate_nsset` (kernel/nsproxy.c) installs the
/// namespaces of a setns(2) through a pidfd: the first refusal decides the
/// errno.
pub(super) const NSSET_ORDER: [Kind; 8] = [
    Kind::User,
    Kind::Mount,
    Kind::Uts,
    Kind::Ipc,
    Kind::Pid,
    Kind::Cgroup,
    Kind::Network,
    Kind::Time,
];

/// `MAX_PID_NS_LEVEL` of `create_pid_namespace`.
pub(super) const MAX_PID_NS_LEVEL: u32 = 32;
/// `UID_GID_MAP_MAX_EXTENTS`: lines an id map may hold (Linux 4.15).
pub(super) const MAX_MAP_LINES: usize = 340;
/// `KTIME_SEC_MAX`: the seconds range of a time offset.
pub(super) const KTIME_SEC_MAX: i64 = i64::MAX / 1_000_000_000;
/// `PAGE_SIZE` on x86-64: an id map's text must be shorter (`map_write`).
pub(super) const PAGE_SIZE: usize = 4096;

/// Index of a namespace object in [`Kernel::spaces`]. The host namespace of
/// kind `k` has index `k.index()`.
pub(super) type NsId = usize;

pub(super) const HOST_USER: NsId = Kind::User.index();

/// Whether `id` is one of the eight host namespaces (they come first).
pub(super) const fn is_host(id: NsId) -> bool {
    id < Kind::ALL.len()
}

/// Which id map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ids {
    Uid,
    Gid,
}

impl Ids {
    pub(super) const fn file(self) -> &'static str {
        match self {
            Ids::Uid => "uid_map",
            Ids::Gid => "gid_map",
        }
    }
}

/// The identity map of the initial user namespace ("0 0 4294967295").
pub(super) const IDENTITY_MAP: &[IdMapping] = &[IdMapping {
    container_id: 0,
    host_id: 0,
    size: u32::MAX,
}];

/// The names of the host namespaces (`host:user`, ...) and of the first
/// namespace of each kind a run creates (`new:user:1`, ...), by
/// [`Kind::index`]: borrowed for every model, so a default run formats and
/// allocates no name. Constants, so that reading one checks no lazy
/// initialization (a model test holds them to [`Kind::spec_name`]).
pub(super) const NAMES: [[&str; 8]; 2] = [
    [
        "host:user",
        "host:pid",
        "host:uts",
        "host:ipc",
        "host:network",
        "host:cgroup",
        "host:mount",
        "host:time",
    ],
    [
        "new:user:1",
        "new:pid:1",
        "new:uts:1",
        "new:ipc:1",
        "new:network:1",
        "new:cgroup:1",
        "new:mount:1",
        "new:time:1",
    ],
];

/// The name of the host namespace of `kind` (`host:network`).
pub(super) fn host_name(kind: Kind) -> &'static str {
    NAMES[0][kind.index()]
}

/// The name of the `n`-th namespace of `kind` a run creates
/// (`new:network:1`).
pub(super) fn created_name(kind: Kind, n: u32) -> Cow<'static, str> {
    if n == 1 {
        Cow::Borrowed(NAMES[1][kind.index()])
    } else {
        Cow::Owned(format!("new:{}:{n}", kind.spec_name()))
    }
}

/// One namespace object. Fields that do not apply to its kind keep their
/// initial value and are never read.
#[derive(Clone, Debug)]
pub(super) struct Space {
    /// Borrowed for the host namespaces and the first created ones, so a
    /// default model allocates no names.
    pub(super) name: Cow<'static, str>,
    pub(super) kind: Kind,
    /// The owning user namespace; for a user namespace its parent
    /// (`None` only for `host:user`).
    pub(super) owner: Option<NsId>,
    /// Pid: the parent pid namespace (`None` only for `host:pid`).
    pub(super) parent: Option<NsId>,
    /// User and pid: depth below the host namespace.
    pub(super) level: u32,
    /// User: the creator's euid (the namespace's `owner` in kernel terms).
    pub(super) creator: u32,
    /// User: the maps as written, host ids in the parent's terms
    /// (borrowed for the host's identity map).
    pub(super) uid_map: Option<Cow<'static, [IdMapping]>>,
    pub(super) gid_map: Option<Cow<'static, [IdMapping]>>,
    /// User: `USERNS_SETGROUPS_ALLOWED`, inherited from the parent.
    pub(super) setgroups_allowed: bool,
    /// User: `parent_could_setfcap`: its creator had CAP_SETFCAP in the
    /// parent when it was made, which lets a process in it map host root
    /// in its own `uid_map` (`verify_root_map`).
    pub(super) parent_could_setfcap: bool,
    /// Pid: whether a process is its init.
    pub(super) has_init: bool,
    /// Time: a process entered it, so its offsets are frozen.
    pub(super) entered: bool,
    /// Time: the offsets written.
    pub(super) offsets: Vec<TimeOffset>,
    /// Where the world made it reachable.
    pub(super) paths: Vec<PathBuf>,
    /// User: `max_<kind>_namespaces`, by [`Kind::index`]. Held as `u32`,
    /// a larger limit saturated: a count never comes near it either way,
    /// and the smaller object is cheaper to make, move and drop.
    pub(super) limits: [u32; 8],
    /// User: the namespaces of each kind that exist in it and below it
    /// (its ucounts; the kernel keeps them per user namespace *and* uid,
    /// the model per user namespace: a world has one caller).
    pub(super) counts: [u32; 8],
}

impl Space {
    /// The host namespace of `kind`, owned by `host:user`; the initial user
    /// namespace maps every id to itself, so its maps count as written
    /// (another write fails EPERM).
    const fn host(kind: Kind) -> Space {
        let name = Cow::Borrowed(NAMES[0][kind.index()]);
        match kind {
            Kind::User => Space::with_maps(
                name,
                kind,
                None,
                Some(Cow::Borrowed(IDENTITY_MAP)),
                Some(Cow::Borrowed(IDENTITY_MAP)),
            ),
            _ => Space::new(name, kind, Some(HOST_USER)),
        }
    }

    pub(super) const fn new(name: Cow<'static, str>, kind: Kind, owner: Option<NsId>) -> Space {
        Space::with_maps(name, kind, owner, None, None)
    }

    const fn with_maps(
        name: Cow<'static, str>,
        kind: Kind,
        owner: Option<NsId>,
        uid_map: Option<Cow<'static, [IdMapping]>>,
        gid_map: Option<Cow<'static, [IdMapping]>>,
    ) -> Space {
        Space {
            name,
            kind,
            owner,
            parent: None,
            level: 0,
            creator: 0,
            uid_map,
            gid_map,
            setgroups_allowed: true,
            parent_could_setfcap: true,
            has_init: true,
            entered: true,
            offsets: Vec::new(),
            paths: Vec::new(),
            limits: [u32::MAX; 8],
            counts: [0; 8],
        }
    }

    pub(super) fn map(&self, ids: Ids) -> Option<&[IdMapping]> {
        match ids {
            Ids::Uid => self.uid_map.as_deref(),
            Ids::Gid => self.gid_map.as_deref(),
        }
    }
}

/// The credentials that capability checks look at.
#[derive(Clone, Copy, Debug)]
pub(super) struct Cred {
    pub(super) user_ns: NsId,
    pub(super) euid: u32,
    pub(super) egid: u32,
    /// Capabilities effective in `user_ns`.
    pub(super) caps: bool,
}

/// The calling process.
#[derive(Clone, Copy, Debug)]
pub(super) struct Caller {
    /// Current namespace per kind (pid: the active pid namespace).
    pub(super) ns: [NsId; 8],
    pub(super) pid_for_children: NsId,
    pub(super) time_for_children: NsId,
    pub(super) euid: u32,
    pub(super) egid: u32,
    pub(super) caps: bool,
    pub(super) threads: usize,
    pub(super) forked: bool,
    pub(super) fs_shared: bool,
    pub(super) chroot: bool,
}

impl Caller {
    pub(super) fn cred(&self) -> Cred {
        Cred {
            user_ns: self.ns[Kind::User.index()],
            euid: self.euid,
            egid: self.egid,
            caps: self.caps,
        }
    }
}

/// Everything a namespace call can change.
#[derive(Clone, Debug)]
pub(super) struct Kernel {
    pub(super) spaces: Vec<Space>,
    pub(super) caller: Caller,
    /// Namespaces created so far per kind, for the `new:<kind>:<n>` names.
    pub(super) created: [u32; 8],
    /// `CLOCK_MONOTONIC` and `CLOCK_BOOTTIME` now, as (secs, nanosecs).
    pub(super) clocks: [(i64, u32); 2],
    /// The world's processes besides the caller (exec targets).
    pub(super) processes: Vec<super::process::Proc>,
    /// setns(2) takes a pidfd (Linux 5.8 and later).
    pub(super) pidfd_setns: bool,
    /// `mntns_install` tests `current->fs`, not the nsset's copy (Linux
    /// 6.12.117 and later 6.12; see [`super::World::mntns_checks_caller_fs`]).
    pub(super) mntns_checks_caller_fs: bool,
    /// The pid namespace whose numbers the world gives its processes: the
    /// caller's active one at the start (pidfd_open looks a number up in
    /// the caller's active pid namespace).
    pub(super) pids_from: NsId,
}

pub(super) fn ranges_overlap(a: u32, a_len: u32, b: u32, b_len: u32) -> bool {
    let (a, a_end) = (u64::from(a), u64::from(a) + u64::from(a_len));
    let (b, b_end) = (u64::from(b), u64::from(b) + u64::from(b_len));
    a < b_end && b < a_end
}

/// The parse checks of `map_write` (each EINVAL in the kernel).
pub(super) fn check_map_lines(lines: &[IdMapping]) -> Result<(), &'static str> {
    if lines.is_empty() {
        return Err("a map needs at least one line");
    }
    if lines.len() > MAX_MAP_LINES {
        return Err("a map holds at most 340 lines");
    }
    for (i, l) in lines.iter().enumerate() {
        if l.container_id == u32::MAX || l.host_id == u32::MAX {
            return Err("id 4294967295 cannot be mapped");
        }
        if l.container_id.wrapping_add(l.size) <= l.container_id
            || l.host_id.wrapping_add(l.size) <= l.host_id
        {
            return Err("a line has size 0 or its range wraps past 4294967295");
        }
        let overlap = lines[..i].iter().any(|p| {
            ranges_overlap(p.container_id, p.size, l.container_id, l.size)
                || ranges_overlap(p.host_id, p.size, l.host_id, l.size)
        });
        if overlap {
            return Err("lines overlap");
        }
    }
    Ok(())
}

impl Kernel {
    /// The host namespaces, with room for `more` namespaces besides them.
    pub(super) fn host(more: usize) -> Kernel {
        let mut spaces = Vec::with_capacity(Kind::ALL.len() + more);
        spaces.extend(Kind::ALL.into_iter().map(Space::host));
        let host: [NsId; 8] = std::array::from_fn(|i| i);
        Kernel {
            spaces,
            caller: Caller {
                ns: host,
                pid_for_children: Kind::Pid.index(),
                time_for_children: Kind::Time.index(),
                euid: 0,
                egid: 0,
                caps: true,
                threads: 1,
                forked: false,
                chroot: false,
                fs_shared: false,
            },
            created: [0; 8],
            clocks: [(86_400, 0); 2],
            processes: Vec::new(),
            pidfd_setns: true,
            mntns_checks_caller_fs: false,
            pids_from: Kind::Pid.index(),
        }
    }

    /// The owning user namespace of a non-user namespace.
    pub(super) fn owner_of(&self, ns: NsId) -> NsId {
        self.spaces[ns].owner.unwrap_or(HOST_USER)
    }

    /// `cap_capable()`: whether `cred` has the capabilities of a full
    /// member in the user namespace `target` (the model does not split
    /// capabilities: a process has all of them in a namespace or none).
    pub(super) fn capable(&self, cred: &Cred, target: NsId) -> bool {
        let own_level = self.spaces[cred.user_ns].level;
        let mut ns = target;
        loop {
            if ns == cred.user_ns {
                return cred.caps;
            }
            // Not an ancestor of the caller's namespace and not below it.
            if self.spaces[ns].level <= own_level {
                return false;
            }
            let Some(parent) = self.spaces[ns].owner else {
                return false;
            };
            // The creator of a child of the caller's namespace has every
            // capability in it (user_namespaces(7)).
            if parent == cred.user_ns && self.spaces[ns].creator == cred.euid {
                return true;
            }
            ns = parent;
        }
    }

    /// `in_userns(ancestor, child)`: `ancestor` is `child` or above it.
    pub(super) fn in_userns(&self, ancestor: NsId, child: NsId) -> bool {
        let mut ns = Some(child);
        while let Some(n) = ns {
            if n == ancestor {
                return true;
            }
            ns = self.spaces[n].owner;
        }
        false
    }

    /// `make_kuid`/`make_kgid`: the kernel id of `id` in `ns`.
    pub(super) fn id_down(&self, ns: NsId, ids: Ids, id: u32) -> Option<u32> {
        let s = &self.spaces[ns];
        let Some(parent) = s.owner else {
            return (id != u32::MAX).then_some(id);
        };
        let line = s.map(ids)?.iter().find(|l| l.maps_container_id(id))?;
        self.id_down(parent, ids, line.host_id + (id - line.container_id))
    }

    /// `from_kuid`: the id of kernel id `kid` in `ns`, if mapped.
    pub(super) fn id_up(&self, ns: NsId, ids: Ids, kid: u32) -> Option<u32> {
        let s = &self.spaces[ns];
        let Some(parent) = s.owner else {
            return (kid != u32::MAX).then_some(kid);
        };
        let id = self.id_up(parent, ids, kid)?;
        let line = s.map(ids)?.iter().find(|l| {
            id >= l.host_id && u64::from(id) < u64::from(l.host_id) + u64::from(l.size)
        })?;
        Some(line.container_id + (id - line.host_id))
    }

    /// `map_id_range_down`: whether `[first, first + count)` of `ns` lies in
    /// one line of its map (and so maps to kernel ids).
    pub(super) fn range_mapped(&self, ns: NsId, ids: Ids, first: u32, count: u32) -> bool {
        let s = &self.spaces[ns];
        if s.owner.is_none() {
            return u64::from(first) + u64::from(count) <= u64::from(u32::MAX);
        }
        let end = u64::from(first) + u64::from(count);
        s.map(ids).is_some_and(|lines| {
            lines.iter().any(|l| {
                first >= l.container_id
                    && end <= u64::from(l.container_id) + u64::from(l.size)
                    && self.id_down(ns, ids, first).is_some()
            })
        })
    }

    pub(super) fn add_space(&mut self, kind: Kind, owner: NsId) -> NsId {
        let n = &mut self.created[kind.index()];
        *n += 1;
        let name = created_name(kind, *n);
        self.spaces.push(Space::new(name, kind, Some(owner)));
        self.spaces.len() - 1
    }

    /// setns(2) with an fd of the namespace `target`, of `kind`.
    pub(super) fn setns(&mut self, target: NsId, kind: Kind) -> Result<(), Errno> {
        let cred = self.caller.cred();
        self.install(target, kind, &cred, cred.user_ns, self.caller.fs_shared)?;
        self.commit(target, kind);
        Ok(())
    }

    /// The install hook of `kind` for `target` (`userns_install`,
    /// `mntns_install`, ...): whether the caller, with credentials `cred`,
    /// may join it. `nsset_user` is the user namespace the caller will be
    /// in (its own, or the one a pidfd setns joins first); `fs_shared`
    /// whether the fs_struct the mount namespace would be set on is shared.
    /// Changes nothing.
    fn install(
        &self,
        target: NsId,
        kind: Kind,
        cred: &Cred,
        nsset_user: NsId,
        fs_shared: bool,
    ) -> Result<(), Errno> {
        let threaded = self.caller.threads > 1;
        // Every install hook but userns_install wants CAP_SYS_ADMIN over the
        // target's owner and over the user namespace the caller will be in
        // (ns_capable, with the caller's credentials as they are now).
        let admin = || self.capable(cred, self.owner_of(target)) && self.capable(cred, nsset_user);
        match kind {
            Kind::User => {
                // userns_install: no regaining caps by re-entering, threads
                // must share a user namespace, the fs_struct must be the
                // caller's own (the caller's, even through a pidfd), then
                // the capability.
                if target == cred.user_ns || threaded || self.caller.fs_shared {
                    return Err(Errno::EINVAL);
                }
                if !self.capable(cred, target) {
                    return Err(Errno::EPERM);
                }
            }
            Kind::Mount => {
                // mntns_install: capabilities first, then `fs->users != 1`.
                // DESIGN §5 says "setns(mount) while multithreaded: EINVAL";
                // the kernel's test is a *shared fs_struct*, which threads
                // share until unshare(CLONE_NEWNS) gives the caller its own,
                // so a multithreaded caller can join after unshare(mount)
                // (checked on 6.18 by proptests/model_machine.rs). The engine
                // still asks for one thread before setns(mount): stricter.
                if !admin() {
                    return Err(Errno::EPERM);
                }
                if fs_shared {
                    return Err(Errno::EINVAL);
                }
            }
            Kind::Pid => {
                if !admin() {
                    return Err(Errno::EPERM);
                }
                // pidns_install: the active pid namespace or a descendant.
                let active = self.caller.ns[Kind::Pid.index()];
                let active_level = self.spaces[active].level;
                let mut ancestor = target;
                while self.spaces[ancestor].level > active_level {
                    match self.spaces[ancestor].parent {
                        Some(p) => ancestor = p,
                        None => break,
                    }
                }
                if ancestor != active {
                    return Err(Errno::EINVAL);
                }
            }
            Kind::Time => {
                // timens_install checks threads before capabilities.
                if threaded {
                    return Err(Errno::EUSERS);
                }
                if !admin() {
                    return Err(Errno::EPERM);
                }
            }
            Kind::Uts | Kind::Ipc | Kind::Network | Kind::Cgroup => {
                if !admin() {
                    return Err(Errno::EPERM);
                }
            }
        }
        Ok(())
    }

    /// What a join of `target` (of `kind`) changes in the caller, once every
    /// install hook agreed (`commit_nsset`).
    fn commit(&mut self, target: NsId, kind: Kind) {
        match kind {
            Kind::User => {
                self.caller.ns[Kind::User.index()] = target;
                self.caller.caps = true;
            }
            Kind::Mount => {
                self.caller.ns[Kind::Mount.index()] = target;
                // mntns_install ("Update the pwd and root"): the caller's
                // root and cwd become the joined namespace's root, so it is
                // no longer chrooted (DESIGN §2; external corpus row
                // setns-mnt-chroot-then-unshare-user-ok).
                self.caller.chroot = false;
            }
            Kind::Pid => self.caller.pid_for_children = target,
            Kind::Time => {
                self.caller.ns[Kind::Time.index()] = target;
                self.caller.time_for_children = target;
                // timens_commit: the caller is in it now; offsets freeze.
                self.spaces[target].entered = true;
            }
            _ => self.caller.ns[kind.index()] = target,
        }
    }

    /// setns(2) with a pidfd of a process whose namespaces are `targets`
    /// (by kind; pid and time: the active ones): `validate_nsset` installs
    /// each asked kind into a copy in the order user, mount, uts, ipc, pid,
    /// cgroup, net, time, each check seeing the user namespace the copy
    /// holds by then, and only if every one agrees does `commit_nsset`
    /// change the caller: all or nothing. The mount namespace is set on a
    /// private copy of the fs_struct unless it is the only kind asked
    /// (`prepare_nsset`), so a shared fs_struct refuses `CLONE_NEWNS` only
    /// alone, except on kernels whose `mntns_install` tests the caller's
    /// own fs_struct (`mntns_checks_caller_fs`): there it refuses it always.
    pub(super) fn setns_process(
        &mut self,
        targets: [NsId; 8],
        kinds: KindSet,
    ) -> Result<(), Errno> {
        let cred = self.caller.cred();
        let mut nsset_user = cred.user_ns;
        let mount_alone = kinds.len() == 1 && kinds.contains(Kind::Mount);
        // Linux 6.12.117 (Debian's linux-source-6.12: the stable update's
        // "mount: refuse setns() with a shared fs_struct again") changed
        // mntns_install's `fs->users != 1` to `current->fs->users != 1` in
        // fs/namespace.c; 6.12.116, 6.1.176, 6.1.192, 7.2.13 keep `fs`, the
        // copy, and 6.18.44 answers as they do (measured in the VM tests).
        let fs_shared = self.caller.fs_shared && (mount_alone || self.mntns_checks_caller_fs);
        for kind in NSSET_ORDER {
            if !kinds.contains(kind) {
                continue;
            }
            let target = targets[kind.index()];
            self.install(target, kind, &cred, nsset_user, fs_shared)?;
            if kind == Kind::User {
                nsset_user = target;
            }
        }
        for kind in NSSET_ORDER {
            if kinds.contains(kind) {
                self.commit(targets[kind.index()], kind);
            }
        }
        Ok(())
    }

    /// unshare(2), applied all or nothing.
    pub(super) fn unshare(&mut self, kinds: KindSet) -> Result<(), Errno> {
        // unshare only appends namespaces and changes the caller, so undoing
        // a failed one is putting those back. (Cloning the whole kernel for
        // that was two thirds of the model's cost, and grew with the world.)
        // Each namespace it appends was charged to its owner's ucounts (a
        // charge no namespace followed is taken back where it was made), so
        // those charges go too; no log of charges is kept.
        let (caller, created, len) = (self.caller, self.created, self.spaces.len());
        let result = self.unshare_in_place(kinds);
        if result.is_err() {
            self.caller = caller;
            self.created = created;
            for id in len..self.spaces.len() {
                let (owner, kind) = (self.spaces[id].owner, self.spaces[id].kind);
                self.uncharge(owner, kind);
            }
            self.spaces.truncate(len);
        }
        result
    }

    pub(super) fn unshare_in_place(&mut self, kinds: KindSet) -> Result<(), Errno> {
        if kinds.contains(Kind::User) {
            // check_unshare_flags: CLONE_NEWUSER implies CLONE_THREAD.
            if self.caller.threads > 1 {
                return Err(Errno::EINVAL);
            }
            self.create_user_ns()?;
            // It implies CLONE_FS too: unshare_fs gives the caller a copy of
            // a shared fs_struct (installed when the whole call succeeds;
            // the caller is restored on a failure).
            self.caller.fs_shared = false;
        }
        let mut others = kinds;
        others.remove(Kind::User);
        if others.is_empty() {
            return Ok(());
        }
        // unshare_nsproxy_namespaces: CAP_SYS_ADMIN in the (possibly new)
        // user namespace, before any namespace is made.
        let cred = self.caller.cred();
        if !self.capable(&cred, cred.user_ns) {
            return Err(Errno::EPERM);
        }
        // create_new_namespaces makes them in this order, and the first
        // that fails decides the errno (ENOSPC of a limit, EINVAL of pid).
        for kind in CREATE_ORDER {
            if others.contains(kind) {
                self.create(kind, cred.user_ns)?;
                others.remove(kind);
                if others.is_empty() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// `may_mount()` before `do_change_type()`: CAP_SYS_ADMIN over the user
    /// namespace that owns the caller's mount namespace.
    pub(super) fn set_root_propagation(&self) -> Result<(), Errno> {
        let cred = self.caller.cred();
        let owner = self.owner_of(self.caller.ns[Kind::Mount.index()]);
        if !self.capable(&cred, owner) {
            return Err(Errno::EPERM);
        }
        // do_change_type: the path must be the root of a mount, which a
        // chroot's `/` is not.
        if self.caller.chroot {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    /// `inc_ucount`: one more namespace of `kind` in the user namespace
    /// `ns`, which must stay within `max_<kind>_namespaces` there and in
    /// every ancestor (ENOSPC), all or nothing.
    pub(super) fn charge(&mut self, ns: NsId, kind: Kind) -> Result<(), Errno> {
        let k = kind.index();
        let mut at = Some(ns);
        while let Some(n) = at {
            if self.spaces[n].counts[k] >= self.spaces[n].limits[k] {
                return Err(Errno::ENOSPC);
            }
            at = self.spaces[n].owner;
        }
        let mut at = Some(ns);
        while let Some(n) = at {
            self.spaces[n].counts[k] += 1;
            at = self.spaces[n].owner;
        }
        Ok(())
    }

    /// `dec_ucount`: takes back a [`Kernel::charge`] of `kind` made at `at`.
    pub(super) fn uncharge(&mut self, mut at: Option<NsId>, kind: Kind) {
        while let Some(n) = at {
            self.spaces[n].counts[kind.index()] -= 1;
            at = self.spaces[n].owner;
        }
    }

    /// `create_user_ns`.
    pub(super) fn create_user_ns(&mut self) -> Result<(), Errno> {
        let parent = self.caller.ns[Kind::User.index()];
        if self.spaces[parent].level > MAX_USER_NS_PARENT_LEVEL {
            return Err(Errno::ENOSPC);
        }
        self.charge(parent, Kind::User)?;
        // The root directory must be the mount namespace's root, so a new
        // user namespace cannot widen what a chroot hides; and the creator
        // must be mapped in the parent namespace.
        if self.caller.chroot
            || self.id_up(parent, Ids::Uid, self.caller.euid).is_none()
            || self.id_up(parent, Ids::Gid, self.caller.egid).is_none()
        {
            self.uncharge(Some(parent), Kind::User);
            return Err(Errno::EPERM);
        }
        let could_setfcap = self.capable(&self.caller.cred(), parent);
        let id = self.add_space(Kind::User, parent);
        let (level, setgroups) = (
            self.spaces[parent].level + 1,
            self.spaces[parent].setgroups_allowed,
        );
        let s = &mut self.spaces[id];
        s.level = level;
        s.creator = self.caller.euid;
        s.setgroups_allowed = setgroups;
        s.parent_could_setfcap = could_setfcap;
        self.caller.ns[Kind::User.index()] = id;
        self.caller.caps = true;
        Ok(())
    }

    /// One non-user namespace of `create_new_namespaces`, owned by `owner`.
    pub(super) fn create(&mut self, kind: Kind, owner: NsId) -> Result<(), Errno> {
        match kind {
            Kind::Pid => {
                // copy_pid_ns: not after an unshare(pid) or setns(pid) whose
                // namespace has no process of ours yet.
                let active = self.caller.ns[Kind::Pid.index()];
                if self.caller.pid_for_children != active {
                    return Err(Errno::EINVAL);
                }
                // create_pid_namespace.
                if !self.in_userns(self.owner_of(active), owner) {
                    return Err(Errno::EINVAL);
                }
                let level = self.spaces[active].level + 1;
                if level > MAX_PID_NS_LEVEL {
                    return Err(Errno::ENOSPC);
                }
                self.charge(owner, Kind::Pid)?;
                let id = self.add_space(Kind::Pid, owner);
                let s = &mut self.spaces[id];
                s.parent = Some(active);
                s.level = level;
                s.has_init = false;
                self.caller.pid_for_children = id;
            }
            Kind::Time => {
                self.charge(owner, Kind::Time)?;
                // clone_time_ns copies the offsets of time_for_children;
                // the new namespace applies to children only.
                let offsets = self.spaces[self.caller.time_for_children].offsets.clone();
                let id = self.add_space(Kind::Time, owner);
                self.spaces[id].entered = false;
                self.spaces[id].offsets = offsets;
                self.caller.time_for_children = id;
            }
            Kind::User => {}
            Kind::Uts | Kind::Ipc | Kind::Network | Kind::Cgroup | Kind::Mount => {
                self.charge(owner, kind)?;
                let id = self.add_space(kind, owner);
                self.caller.ns[kind.index()] = id;
                if kind == Kind::Mount {
                    self.caller.fs_shared = false;
                }
            }
        }
        Ok(())
    }

    /// `setresgid(0,0,0)` then `setresuid(0,0,0)`; a failing setresuid
    /// leaves the new gid in place, as two syscalls do.
    pub(super) fn set_root_ids(&mut self) -> Result<(), Errno> {
        let ns = self.caller.ns[Kind::User.index()];
        let kgid = self.id_down(ns, Ids::Gid, 0).ok_or(Errno::EINVAL)?;
        // Changing to ids the process does not hold needs CAP_SETGID.
        if kgid != self.caller.egid && !self.caller.caps {
            return Err(Errno::EPERM);
        }
        self.caller.egid = kgid;
        let kuid = self.id_down(ns, Ids::Uid, 0).ok_or(Errno::EINVAL)?;
        if kuid != self.caller.euid && !self.caller.caps {
            return Err(Errno::EPERM);
        }
        // uid 0 of the namespace is its root: capabilities stay effective
        // (cap_emulate_setxuid).
        self.caller.euid = kuid;
        Ok(())
    }

    /// A write of `/proc/self/timens_offsets` (fs/proc/base.c, then
    /// `proc_timens_set_offset`).
    pub(super) fn write_time_offsets(&mut self, offsets: &[TimeOffset]) -> Result<(), Errno> {
        // Parsed first: nanoseconds out of range.
        if offsets.iter().any(|o| o.nanosecs > MAX_NANOSECS) {
            return Err(Errno::EINVAL);
        }
        let target = self.caller.time_for_children;
        let cred = self.caller.cred();
        if !self.capable(&cred, self.owner_of(target)) {
            return Err(Errno::EPERM);
        }
        // Per offset: its seconds within ±KTIME_SEC_MAX, then the clock's
        // current value plus the offset (timespec64_add: nanoseconds carry
        // into seconds) within [0, KTIME_SEC_MAX / 2] seconds.
        for o in offsets {
            if !(-KTIME_SEC_MAX..=KTIME_SEC_MAX).contains(&o.secs) {
                return Err(Errno::ERANGE);
            }
            let (now, now_ns) = self.clocks[match o.clock {
                Clock::Monotonic => 0,
                Clock::Boottime => 1,
            }];
            let nanos = i64::from(now_ns) + i64::from(o.nanosecs);
            let secs = now + o.secs + nanos / 1_000_000_000;
            if !(0..=KTIME_SEC_MAX / 2).contains(&secs) {
                return Err(Errno::ERANGE);
            }
        }
        let space = &mut self.spaces[target];
        if space.entered {
            return Err(Errno::EACCES);
        }
        for o in offsets {
            space.offsets.retain(|x| x.clock != o.clock);
            space.offsets.push(*o);
        }
        space.offsets.sort_by_key(|o| o.clock);
        Ok(())
    }

    /// fork(2) of a child that exits at once, continuing as the parent:
    /// the child was the first process of `pid_for_children` (its init)
    /// and entered `time_for_children`, whose offsets are frozen from then.
    pub(super) fn fork_child_exits(&mut self) {
        let pid = self.caller.pid_for_children;
        self.spaces[pid].has_init = true;
        let time = self.caller.time_for_children;
        self.spaces[time].entered = true;
    }

    /// fork(2), continuing as the child.
    pub(super) fn fork(&mut self) {
        let pid = self.caller.pid_for_children;
        // The first process of a new pid namespace is its init.
        self.spaces[pid].has_init = true;
        self.caller.ns[Kind::Pid.index()] = pid;
        // timens_on_fork: the child enters time_for_children.
        let time = self.caller.time_for_children;
        self.caller.ns[Kind::Time.index()] = time;
        self.spaces[time].entered = true;
        self.caller.threads = 1;
        self.caller.forked = true;
        self.caller.fs_shared = false;
    }

    /// `proc_setgroups_write("deny")` by `writer` on the user namespace `ns`.
    pub(super) fn write_setgroups_deny(&mut self, writer: &Cred, ns: NsId) -> Result<(), Errno> {
        self.write_setgroups(writer, ns, false)
    }

    /// `proc_setgroups_write` of "allow" or "deny" by `writer` on the user
    /// namespace `ns`.
    pub(super) fn write_setgroups(
        &mut self,
        writer: &Cred,
        ns: NsId,
        allow: bool,
    ) -> Result<(), Errno> {
        // proc_setgroups_open: writing needs CAP_SYS_ADMIN in `ns`.
        if !self.capable(writer, ns) {
            return Err(Errno::EACCES);
        }
        if allow {
            // Enabling setgroups after it was disabled is not allowed.
            if !self.spaces[ns].setgroups_allowed {
                return Err(Errno::EPERM);
            }
            return Ok(());
        }
        // Too late once gid_map is written.
        if self.spaces[ns].gid_map.is_some() {
            return Err(Errno::EPERM);
        }
        self.spaces[ns].setgroups_allowed = false;
        Ok(())
    }

    /// `map_write` of uid_map or gid_map of `ns` by `writer`.
    pub(super) fn write_map(
        &mut self,
        writer: &Cred,
        ns: NsId,
        ids: Ids,
        lines: &[IdMapping],
    ) -> Result<(), Errno> {
        // proc_*_map_write: the writer is in the namespace or its parent
        // (the host user namespace, which has no parent, only in itself).
        let parent = self.spaces[ns].owner;
        if writer.user_ns != ns && Some(writer.user_ns) != parent {
            return Err(Errno::EPERM);
        }
        // map_write: the text must be less than a page, checked first.
        if id_map_text(lines).len() >= PAGE_SIZE {
            return Err(Errno::EINVAL);
        }
        // Only one successful write (the host maps count as written).
        if self.spaces[ns].map(ids).is_some() {
            return Err(Errno::EPERM);
        }
        let Some(parent) = parent else {
            return Err(Errno::EPERM);
        };
        // The writer needs CAP_SYS_ADMIN over the target namespace.
        if !self.capable(writer, ns) {
            return Err(Errno::EPERM);
        }
        check_map_lines(lines).map_err(|_| Errno::EINVAL)?;
        if !self.idmap_permitted(writer, ns, parent, ids, lines) {
            return Err(Errno::EPERM);
        }
        // The host ids must be mapped in the parent namespace.
        if !lines
            .iter()
            .all(|l| self.range_mapped(parent, ids, l.host_id, l.size))
        {
            return Err(Errno::EPERM);
        }
        let lines = Some(Cow::Owned(lines.to_vec()));
        match ids {
            Ids::Uid => self.spaces[ns].uid_map = lines,
            Ids::Gid => self.spaces[ns].gid_map = lines,
        }
        Ok(())
    }

    /// `new_idmap_permitted`.
    pub(super) fn idmap_permitted(
        &self,
        writer: &Cred,
        ns: NsId,
        parent: NsId,
        ids: Ids,
        lines: &[IdMapping],
    ) -> bool {
        let privileged = self.capable(writer, parent);
        // verify_root_map: mapping host id 0 needs CAP_SETFCAP in the
        // parent: the writer's own, or for a process writing the map of its
        // own namespace, its creator's when it made it.
        if ids == Ids::Uid && lines.iter().any(|l| l.host_id == 0) {
            let could = if writer.user_ns == ns {
                self.spaces[ns].parent_could_setfcap
            } else {
                privileged
            };
            if !could {
                return false;
            }
        }
        let s = &self.spaces[ns];
        // Unprivileged: one id, the writer's own, in a namespace it owns
        // (for gids only once setgroups is denied).
        if let [line] = lines {
            if line.size == 1 && s.creator == writer.euid {
                let kid = self.id_down(parent, ids, line.host_id);
                let own = match ids {
                    Ids::Uid => kid == Some(writer.euid),
                    Ids::Gid => !s.setgroups_allowed && kid == Some(writer.egid),
                };
                if own {
                    return true;
                }
            }
        }
        privileged
    }
}
