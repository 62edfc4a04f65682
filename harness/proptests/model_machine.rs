//! Property 6 of issue 3, "model semantics": the kernel model
//! ([`nsapply::model::Model`]) driven by random sequences of raw operations
//! (open, close, setns, unshare, fork, time offsets, id maps, setgroups,
//! set root ids, spawn a thread, and for exec (issue 17) pidfd_open of a
//! world process and setns through a pidfd with any set of kinds)
//! answers, step by step, like
//!
//! 1. a small reference state machine written here from the rules of
//!    DESIGN §5, user_namespaces(7), time_namespaces(7), setns(2),
//!    unshare(2) and kernel/nsproxy.c (`validate_nsset`/`commit_nsset`
//!    for a pidfd), independent of the model's code; and
//! 2. the real kernel: as root, the same kind of sequence runs in a fresh
//!    single-threaded process (a re-execution of this binary) on a world
//!    built by [`nsapply_harness::realize`], and every answer, errno included, and
//!    the observable state after it must equal the model's.
//!
//! The state compared after every step: the caller's namespace of each kind
//! and the one for children (pid, time), as abstract identities (a name in
//! the model, an index in the reference, an inode on the kernel, matched by
//! a bijection built as the run goes), the number of open fds, the thread
//! count, whether the caller forked, and its effective uid and gid in host
//! terms.
//!
//! Where the reference says more than DESIGN §5's table, it follows the
//! kernel (each rule below was seen on Linux 6.18 by the kernel mode):
//!
//! * setns(mount) fails EINVAL when the caller's fs_struct is shared
//!   (`fs->users != 1`), not whenever it is multithreaded: unshare(mount)
//!   gives the calling thread its own;
//! * `/proc/self/ns/pid_for_children` does not open (ENOENT) until the pid
//!   namespace has an init (`pidns_for_children_get`);
//! * a thread cannot be started (EINVAL) while `pid_for_children` is not the
//!   active pid namespace (`copy_process`);
//! * the runtime parent can write `uid_map`/`gid_map` only of a user
//!   namespace that is its own or a child of its own (EPERM otherwise,
//!   before any other check; user_namespaces(7));
//! * setns through the pidfd of a zombie is EPERM, not ESRCH, unless the
//!   caller passes `ptrace_may_access`, which without CAP_SYS_PTRACE wants
//!   the target's uid *and* gid and the caller in the target's user
//!   namespace itself (`cap_ptrace_access_check`);
//! * pidfd_open of a world process is ESRCH once the caller forked into
//!   another pid namespace (the pid is looked up in the caller's active
//!   one);
//! * setns(2) given a namespace fd with flags 0 joins it, whatever the
//!   call is meant for (kernel/nsproxy.c looks at the fd first).
//!
//! The world has up to two processes besides the caller (exec targets,
//! started by `realize` on the kernel side: in world or host namespaces,
//! running, a zombie or reaped); the pidfd operations reach them.
//!
//! This target has no libtest harness (`harness = false`): the kernel cases
//! need a single-threaded process, so `main` lists libtest-mimic trials and
//! re-executes itself with `NSAPPLY_MACHINE_CHILD=1` for each sequence.
//!
//! Case counts: `PROPTEST_CASES` (default 256) sequences against the
//! reference; `NSAPPLY_KERNEL_CASES` (default 16) sequences on the kernel.
//! Failures are shrunk by proptest and persisted in
//! `proptests/regressions/model_machine.txt` and
//! `proptests/regressions/model_machine_kernel.txt`; they replay first.

use nsapply::syscall::process;
use nsapply_harness::host;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use nsapply::config::id_map_text;
use nsapply::model::{
    CallerSpec, FileSpec, Model, ModelFd, NsSpec, ProcessSpec, ProcessState, World,
};
use nsapply::syscall::linux::{self, Linux};
use nsapply::{Clock, Errno, Forked, IdMapping, Kind, KindSet, MapFile, Syscall, TimeOffset};
use nsapply_harness::realize::{Realized, ScratchDir};
use proptest::prelude::*;
use proptest::strategy::Union;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};
use serde::{Deserialize, Serialize};

const CHILD_ENV: &str = "NSAPPLY_MACHINE_CHILD";
const KERNEL_CASES_ENV: &str = "NSAPPLY_KERNEL_CASES";
const REGRESSIONS: &str = "proptests/regressions/model_machine.txt";
const KERNEL_REGRESSIONS: &str = "proptests/regressions/model_machine_kernel.txt";
/// Where the model's world puts its paths (the model has no real files).
const MODEL_DIR: &str = "/run/nsapply-machine";
/// The unprivileged caller's uid and gid.
const ROOTLESS: u32 = 1000;
/// `KTIME_SEC_MAX` of the kernel.
const KTIME_SEC_MAX: i64 = i64::MAX / 1_000_000_000;
const HOST_USER: usize = Kind::User.index();
/// How long one kernel sequence may take (they take about 0.1 s).
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        // First thing: no thread may exist before the sequence runs.
        std::process::exit(kernel_child());
    }
    let args = Arguments::from_args();
    let root = host::euid() == 0;
    if !root {
        eprintln!(
            "model_matches_kernel_on_random_sequences skipped: not root (euid {}); it builds namespaces for other users",
            host::euid()
        );
    }
    let trials = vec![
        Trial::test(
            "model_matches_reference_state_machine",
            model_matches_reference_state_machine,
        ),
        Trial::test(
            "model_matches_kernel_on_random_sequences",
            model_matches_kernel_on_random_sequences,
        )
        .with_ignored_flag(!root),
    ];
    libtest_mimic::run(&args, trials).exit();
}

// ---------------------------------------------------------------------------
// The world: the same for the model, the reference and the kernel.
// ---------------------------------------------------------------------------

/// Who runs the sequence (and, as the runtime parent, writes the id maps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Caller {
    /// Root with every capability in the host namespaces.
    Root,
    /// uid/gid 1000 without capabilities, creator of the user namespaces
    /// `u` and `v`.
    Rootless,
}

/// What the host is like besides the caller: the clocks' values, the host
/// user namespace's `max_<kind>_namespaces`, whether the caller shares its
/// fs_struct (made with CLONE_FS) and whether it is chrooted. The kernel
/// cases keep [`Setting::KERNEL`] (the host's limits are not the tests'
/// to change, and the offsets they use hold whatever the uptime).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Setting {
    /// `CLOCK_MONOTONIC` and `CLOCK_BOOTTIME` seconds.
    clocks: [i64; 2],
    /// Per kind (by index); `u64::MAX`: no limit.
    limits: [u64; 8],
    fs_shared: bool,
    chroot: bool,
    /// setns(2) takes a pidfd (Linux 5.8 and later; the world's
    /// `pidfd_setns`). This host's kernel does.
    pidfd_setns: bool,
}

impl Setting {
    /// The model's default world: one day up, no limit, a plain caller.
    const KERNEL: Setting = Setting {
        clocks: [86_400, 86_400],
        limits: [u64::MAX; 8],
        fs_shared: false,
        chroot: false,
        pidfd_setns: true,
    };

    /// How many namespaces of `kind` the world has (all count in the host
    /// user namespace), so a limit can sit right at them.
    fn existing(kind: Kind) -> u64 {
        WORLD.iter().filter(|n| n.kind == kind).count() as u64
    }
}

fn setting() -> impl Strategy<Value = Setting> {
    let clock = proptest::sample::select(vec![1i64, 3_600, 86_400, 10_000_000]);
    // Most kinds unlimited; some at what exists, or one above.
    let limit = |k: Kind| {
        prop_oneof![
            6 => Just(u64::MAX),
            1 => Just(Setting::existing(k)),
            1 => Just(Setting::existing(k) + 1),
        ]
    };
    let limits: Vec<_> = Kind::ALL.into_iter().map(limit).collect();
    (
        (clock.clone(), clock),
        limits,
        proptest::bool::weighted(0.2),
        proptest::bool::weighted(0.15),
        proptest::bool::weighted(0.9),
    )
        .prop_map(
            |((mono, boot), limits, fs_shared, chroot, pidfd_setns)| Setting {
                clocks: [mono, boot],
                limits: std::array::from_fn(|i| limits[i]),
                fs_shared,
                chroot,
                pidfd_setns,
            },
        )
}

/// One pre-made namespace of the world.
struct WorldNs {
    name: &'static str,
    kind: Kind,
    /// Owning user namespace (for a user namespace, its parent); `None`: host.
    owner: Option<&'static str>,
    /// Pid only: the parent pid namespace; `None`: host.
    pid_parent: Option<&'static str>,
    /// User only: the creator's uid.
    creator: u32,
    /// User only: the uid and gid map (the same line for both).
    map: Option<IdMapping>,
    /// Time only: whether a process entered it.
    entered: bool,
}

const fn ns(name: &'static str, kind: Kind, owner: Option<&'static str>) -> WorldNs {
    WorldNs {
        name,
        kind,
        owner,
        pid_parent: None,
        creator: 0,
        map: None,
        entered: true,
    }
}

const fn user(name: &'static str, creator: u32, map: Option<IdMapping>) -> WorldNs {
    WorldNs {
        creator,
        map,
        ..ns(name, Kind::User, None)
    }
}

const fn map(container_id: u32, host_id: u32, size: u32) -> IdMapping {
    IdMapping {
        container_id,
        host_id,
        size,
    }
}

/// Every namespace is listed after its owner and its pid parent (the order
/// [`Realized::new`] needs).
const WORLD: &[WorldNs] = &[
    user("u", ROOTLESS, Some(map(0, ROOTLESS, 1))),
    user("v", ROOTLESS, None),
    user("r", 0, Some(map(0, 100_000, 65_536))),
    ns("uts-h", Kind::Uts, None),
    ns("uts-u", Kind::Uts, Some("u")),
    ns("ipc-h", Kind::Ipc, None),
    ns("ipc-u", Kind::Ipc, Some("u")),
    ns("net-h", Kind::Network, None),
    ns("net-u", Kind::Network, Some("u")),
    ns("cgroup-h", Kind::Cgroup, None),
    ns("cgroup-u", Kind::Cgroup, Some("u")),
    ns("mnt-h", Kind::Mount, None),
    ns("mnt-u", Kind::Mount, Some("u")),
    ns("pid-h", Kind::Pid, None),
    WorldNs {
        pid_parent: Some("pid-h"),
        ..ns("pid-h2", Kind::Pid, None)
    },
    ns("pid-u", Kind::Pid, Some("u")),
    ns("time-h", Kind::Time, None),
    WorldNs {
        entered: false,
        ..ns("time-hn", Kind::Time, None)
    },
    WorldNs {
        entered: false,
        ..ns("time-u", Kind::Time, Some("u"))
    },
];

/// The pid the world gives its process `i` (the kernel child finds the
/// real one with [`Realized::process_pid`]; the model never shows a pid).
fn world_pid(i: usize) -> i32 {
    4200 + i32::try_from(i).unwrap_or(0)
}

/// A process of the world besides the caller (an exec target), as
/// [`Realized`] starts one: it joins its world namespaces (user last, a
/// fork into a joined pid namespace), and is root of a joined user
/// namespace, else `uid`.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct WorldProc {
    /// Per kind (by index): `Some(i)` is `WORLD[i]`, `None` the host's.
    ns: [Option<usize>; 8],
    /// Its uid and gid in host terms (the same number: `Realized` makes
    /// it with `become_user(uid, uid)` or as root of a user namespace
    /// whose uid and gid maps are one line).
    uid: u32,
    state: ProcessState,
}

impl fmt::Debug for WorldProc {
    // The world names it is in, so a failure prints short.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns: Vec<&str> = self.ns.iter().flatten().map(|&i| WORLD[i].name).collect();
        write!(f, "{:?} {{ uid: {}, in: {ns:?} }}", self.state, self.uid)
    }
}

/// The namespaces of `kind` a world process may be in: the host's, and
/// each world one that [`Realized`] can put a process in and the model
/// reads the same way: a user namespace whose map gives 0 an id (the
/// process becomes root there), a time namespace already entered (a
/// process in one would freeze offsets the world says are writable).
fn process_ns_choices(kind: Kind) -> Vec<Option<usize>> {
    let fits = |n: &WorldNs| match n.kind {
        Kind::User => n.map.is_some_and(|m| m.container_id == 0),
        Kind::Time => n.entered,
        _ => true,
    };
    std::iter::once(None)
        .chain(
            WORLD
                .iter()
                .enumerate()
                .filter(|(_, n)| n.kind == kind && fits(n))
                .map(|(i, _)| Some(i)),
        )
        .collect()
}

/// A world process: namespaces among the world's (or the host's), the
/// uid of the rootless caller, of root, or of the root of `r` (a user
/// the rootless caller is not), running, a zombie or reaped.
fn world_process() -> impl Strategy<Value = WorldProc> {
    let ns: Vec<_> = Kind::ALL
        .into_iter()
        .map(|k| proptest::sample::select(process_ns_choices(k)))
        .collect();
    let uid = proptest::sample::select(vec![0, ROOTLESS, 100_000]);
    let state = prop_oneof![
        3 => Just(ProcessState::Running),
        2 => Just(ProcessState::Exited),
        1 => Just(ProcessState::Reaped),
    ];
    (ns, uid, state).prop_map(|(ns, uid, state)| {
        let mut ns: [Option<usize>; 8] = std::array::from_fn(|i| ns[i]);
        // `Realized` reaps only its own child, not one forked into a
        // joined pid namespace.
        if state == ProcessState::Reaped {
            ns[Kind::Pid.index()] = None;
        }
        // Root of a joined user namespace: the host id its map gives 0.
        let uid = ns[HOST_USER]
            .and_then(|i| WORLD[i].map)
            .map_or(uid, |m| m.host_id);
        WorldProc { ns, uid, state }
    })
}

/// The world as a model [`World`], with the processes `procs`;
/// `with_paths` adds the model's paths (the realized world has none: the
/// kernel child opens its namespaces through fds it holds).
fn world(caller: Caller, setting: Setting, procs: &[WorldProc], with_paths: bool) -> World {
    let mut spec = match caller {
        Caller::Root => CallerSpec::root(),
        Caller::Rootless => CallerSpec::unprivileged(ROOTLESS, ROOTLESS),
    };
    spec.fs_shared = setting.fs_shared;
    spec.chroot = setting.chroot;
    let mut w = World::new().caller(spec);
    let value = |secs| nsapply::model::ClockValue { secs, nanosecs: 0 };
    w.clocks.monotonic = value(setting.clocks[0]);
    w.clocks.boottime = value(setting.clocks[1]);
    for k in Kind::ALL {
        if setting.limits[k.index()] != u64::MAX {
            w.limits.insert(k, setting.limits[k.index()]);
        }
    }
    for n in WORLD {
        let mut s = NsSpec::new(n.name, n.kind);
        if let Some(o) = n.owner {
            s = s.owned_by(o);
        }
        if let Some(p) = n.pid_parent {
            s = s.child_of(p);
        }
        match n.kind {
            Kind::User => {
                s = s.created_by(n.creator);
                if let Some(m) = n.map {
                    s = s.maps(vec![m], vec![m]);
                }
            }
            Kind::Time => s = s.entered(n.entered),
            _ => {}
        }
        if with_paths {
            s = s.at(format!("{MODEL_DIR}/{}", n.name));
        }
        w = w.namespace(s);
    }
    if with_paths {
        w = w.file(format!("{MODEL_DIR}/regular"), FileSpec::Regular);
    }
    for (i, p) in procs.iter().enumerate() {
        let mut s = ProcessSpec::new(world_pid(i)).uid(p.uid).state(p.state);
        for k in Kind::ALL {
            if let Some(n) = p.ns[k.index()] {
                s = s.in_ns(k, WORLD[n].name);
            }
        }
        w = w.process(s);
    }
    if !setting.pidfd_setns {
        w.pidfd_setns = Some(false);
    }
    w
}

// ---------------------------------------------------------------------------
// The operations.
// ---------------------------------------------------------------------------

/// What an open names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum OpTarget {
    /// The namespace `WORLD[i]`.
    World(usize),
    /// A regular file.
    Regular,
    /// A path that does not exist.
    Missing,
    /// `/proc/self/ns/<kind>`.
    ProcSelf(Kind),
    /// `/proc/self/ns/{pid,time}_for_children`.
    ForChildren(Kind),
    /// A pidfd of the world's process `i` ([`Op::PidfdOpen`]; an
    /// [`Op::Open`] of it is the same pidfd_open(2), never generated).
    Pidfd(usize),
}

/// One raw operation. An fd argument names the target the fd was opened
/// from (the newest such fd), so a sequence means the same while proptest
/// deletes unrelated operations from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Op {
    Open(OpTarget),
    /// Close the newest open fd opened from the target.
    Close(OpTarget),
    /// setns(2) with the newest open fd opened from the target.
    Setns(OpTarget, Kind),
    /// The kinds of one unshare(2), in canonical order.
    Unshare(Vec<Kind>),
    Fork,
    TimeOffsets(Vec<TimeOffset>),
    /// The runtime parent (the caller as it started) writes `uid_map` of
    /// the caller's current user namespace.
    UidMap(Vec<IdMapping>),
    GidMap(Vec<IdMapping>),
    /// The caller writes `uid_map` of its own user namespace
    /// (`/proc/self/uid_map`, as `unshare --map-root-user` does).
    OwnUidMap(Vec<IdMapping>),
    /// The caller writes its own `gid_map`.
    OwnGidMap(Vec<IdMapping>),
    SetgroupsDeny,
    SetRootIds,
    SpawnThread,
    /// pidfd_open(2) of the world's process `i`: the fd's target is
    /// [`OpTarget::Pidfd`]`(i)`, so [`Op::Close`] closes it and
    /// [`Op::Setns`] joins one kind through it.
    PidfdOpen(usize),
    /// setns(2) with the newest open fd opened from the target and the
    /// flags of these kinds (none: flags 0): through a pidfd, several
    /// namespaces at once; also with a namespace fd or a file, as the
    /// kernel takes any fd.
    SetnsPidfd(OpTarget, KindSet),
}

/// Open fds with the target each was opened from, oldest first.
#[derive(Clone, Debug)]
struct Fds<F>(Vec<(OpTarget, F)>);

impl<F> Fds<F> {
    fn new() -> Self {
        Fds(Vec::new())
    }

    fn push(&mut self, target: OpTarget, fd: F) {
        self.0.push((target, fd));
    }

    /// The newest fd opened from `target`.
    fn get(&self, target: OpTarget) -> Option<&F> {
        self.0
            .iter()
            .rev()
            .find(|(t, _)| *t == target)
            .map(|(_, f)| f)
    }

    fn take(&mut self, target: OpTarget) -> Option<F> {
        let i = self.0.iter().rposition(|(t, _)| *t == target)?;
        Some(self.0.remove(i).1)
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Id maps to write: own id, root, a range, two lines, and invalid ones.
fn map_menu() -> Vec<Vec<IdMapping>> {
    vec![
        vec![map(0, ROOTLESS, 1)],
        vec![map(1, ROOTLESS, 1)],
        vec![map(0, 0, 1)],
        vec![map(0, 100_000, 65_536)],
        vec![map(0, ROOTLESS, 1), map(1, 100_000, 10)],
        vec![map(0, ROOTLESS, 1), map(0, 1001, 1)],
        vec![map(0, ROOTLESS, 0)],
    ]
}

/// Time offsets whose answer does not depend on the clocks' current value
/// (the kernel refuses a clock made negative or above `KTIME_SEC_MAX / 2`;
/// these stay far from both edges, or beyond the clock-independent ones).
fn time_offset(clocks: Option<[i64; 2]>) -> impl Strategy<Value = TimeOffset> {
    let clock = prop_oneof![Just(Clock::Monotonic), Just(Clock::Boottime)];
    // With the clocks known (not on the kernel, whose uptime varies): the
    // edges of `0 <= now + offset <= KTIME_SEC_MAX / 2` for either clock.
    let edges: Vec<i64> = clocks
        .map(|c| {
            c.iter()
                .flat_map(|&now| {
                    [
                        -now,
                        -now - 1,
                        KTIME_SEC_MAX / 2 - now,
                        KTIME_SEC_MAX / 2 - now + 1,
                    ]
                })
                .collect()
        })
        .unwrap_or_else(|| vec![0]);
    let secs = prop_oneof![
        4 => proptest::sample::select(vec![0i64, 1, -1, 86_400, 1_000_000]),
        1 => proptest::sample::select(vec![KTIME_SEC_MAX / 2 + 1, -KTIME_SEC_MAX - 1, i64::MAX]),
        2 => proptest::sample::select(edges),
    ];
    let nanos = prop_oneof![
        4 => proptest::sample::select(vec![0u32, 1, 999_999_999]),
        1 => proptest::sample::select(vec![1_000_000_000u32, u32::MAX]),
    ];
    (clock, secs, nanos).prop_map(|(clock, secs, nanosecs)| TimeOffset {
        clock,
        secs,
        nanosecs,
    })
}

fn any_kind() -> impl Strategy<Value = Kind> {
    proptest::sample::select(Kind::ALL.to_vec())
}

// ---------------------------------------------------------------------------
// The reference state machine.
// ---------------------------------------------------------------------------

/// Which id map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ids {
    Uid,
    Gid,
}

/// A namespace object of the reference.
#[derive(Clone, Debug)]
struct RefNs {
    /// `host:<kind>` or the world's name; `None` for one the run created.
    name: Option<String>,
    kind: Kind,
    /// Owning user namespace; for a user namespace its parent (`None`: the host user namespace itself).
    owner: Option<usize>,
    /// Pid: the parent pid namespace.
    pid_parent: Option<usize>,
    /// User: the creator's euid (kuid).
    creator: u32,
    /// User: the maps, host ids in the parent's terms.
    uid_map: Option<Vec<IdMapping>>,
    gid_map: Option<Vec<IdMapping>>,
    /// User: `setgroups` is not denied.
    setgroups_allowed: bool,
    /// User: its creator had CAP_SETFCAP in the parent when it made it,
    /// so a process in it may map host root in its own `uid_map`.
    could_setfcap: bool,
    /// Time: a process entered it (offsets frozen).
    entered: bool,
    /// Pid: a process is its init.
    has_init: bool,
}

impl RefNs {
    /// A namespace without id maps, entered, with an init: the host's
    /// namespaces, and each one a run creates (the caller sets the rest).
    fn new(name: Option<String>, kind: Kind, owner: Option<usize>) -> RefNs {
        RefNs {
            name,
            kind,
            owner,
            pid_parent: None,
            creator: 0,
            uid_map: None,
            gid_map: None,
            setgroups_allowed: true,
            could_setfcap: true,
            entered: true,
            has_init: true,
        }
    }
}

/// Credentials: a user namespace, the effective ids in host terms, and
/// whether the capabilities are effective in that namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cred {
    user_ns: usize,
    euid: u32,
    egid: u32,
    caps: bool,
}

/// What an fd refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RefFd {
    Ns(usize),
    File,
    /// A pidfd of the world's process `i`.
    Pidfd(usize),
}

/// A process of the world as the reference keeps it.
#[derive(Clone, Copy, Debug)]
struct RefProc {
    /// Per kind (pid and time: the active ones), a reference index.
    ns: [usize; 8],
    /// Its real, effective and saved uid and gid, in host terms.
    uid: u32,
    gid: u32,
    /// Its permitted capabilities are all of them (it is root of its user
    /// namespace), else none.
    caps: bool,
    state: ProcessState,
}

/// The reference: the kernel's objects for one process, the rules written
/// out plainly. Host namespaces have index `kind.index()`, `WORLD[i]` has
/// index `8 + i`, created ones follow.
#[derive(Clone)]
struct RefState {
    caller: Caller,
    setting: Setting,
    /// The world's processes as generated (for the model and the kernel).
    world_procs: Vec<WorldProc>,
    procs: Vec<RefProc>,
    /// Namespaces per kind counted in the host user namespace (every one
    /// is at or below it), against `setting.limits`.
    host_counts: [u64; 8],
    spaces: Vec<RefNs>,
    /// Current namespace per kind (pid: the active one).
    cur: [usize; 8],
    pid_children: usize,
    time_children: usize,
    me: Cred,
    /// The runtime parent that writes the id maps: the caller as it started.
    writer: Cred,
    threads: usize,
    /// The caller's fs_struct (root, cwd) is shared with another thread:
    /// a thread shares it from its creation until one of them unshares
    /// a mount namespace (which makes that thread a private copy).
    fs_shared: bool,
    /// The caller's root is not its mount namespace's root; joining a
    /// mount namespace ends that (mntns_install sets root and cwd).
    chroot: bool,
    forked: bool,
    fds: Fds<RefFd>,
    /// The answer to the last operation.
    answer: Result<(), Errno>,
}

impl fmt::Debug for RefState {
    // Only what tells the initial states apart, so a failure prints short.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RefState {{ caller: {:?}, setting: {:?}, processes: {:?} }}",
            self.caller, self.setting, self.world_procs
        )
    }
}

fn host_name(kind: Kind) -> String {
    format!("host:{}", kind.spec_name())
}

fn valid_lines(lines: &[IdMapping]) -> bool {
    let overlap = |a: u32, b: u32, n: u32, m: u32| {
        u64::from(a) < u64::from(b) + u64::from(m) && u64::from(b) < u64::from(a) + u64::from(n)
    };
    !lines.is_empty()
        && lines.len() <= 340
        && lines.iter().enumerate().all(|(i, l)| {
            l.size > 0
                && l.container_id != u32::MAX
                && l.host_id != u32::MAX
                && u64::from(l.container_id) + u64::from(l.size) <= u64::from(u32::MAX)
                && u64::from(l.host_id) + u64::from(l.size) <= u64::from(u32::MAX)
                && lines[..i].iter().all(|p| {
                    !overlap(p.container_id, l.container_id, p.size, l.size)
                        && !overlap(p.host_id, l.host_id, p.size, l.size)
                })
        })
}

impl RefState {
    fn new(caller: Caller, setting: Setting, world_procs: Vec<WorldProc>) -> RefState {
        let identity = Some(vec![map(0, 0, u32::MAX)]);
        let mut spaces: Vec<RefNs> = Kind::ALL
            .into_iter()
            .map(|k| {
                RefNs::new(
                    Some(host_name(k)),
                    k,
                    (k != Kind::User).then_some(HOST_USER),
                )
            })
            .collect();
        spaces[HOST_USER].uid_map.clone_from(&identity);
        spaces[HOST_USER].gid_map = identity;
        let index = |name: &str| 8 + WORLD.iter().position(|n| n.name == name).unwrap_or(0);
        for n in WORLD {
            spaces.push(RefNs {
                name: Some(n.name.to_owned()),
                kind: n.kind,
                owner: Some(n.owner.map_or(HOST_USER, index)),
                pid_parent: (n.kind == Kind::Pid)
                    .then(|| n.pid_parent.map_or(Kind::Pid.index(), index)),
                creator: n.creator,
                uid_map: n.map.map(|m| vec![m]),
                gid_map: n.map.map(|m| vec![m]),
                setgroups_allowed: true,
                // A root creator had CAP_SETFCAP in the host.
                could_setfcap: n.creator == 0,
                entered: n.entered,
                has_init: true,
            });
        }
        let me = match caller {
            Caller::Root => Cred {
                user_ns: HOST_USER,
                euid: 0,
                egid: 0,
                caps: true,
            },
            Caller::Rootless => Cred {
                user_ns: HOST_USER,
                euid: ROOTLESS,
                egid: ROOTLESS,
                caps: false,
            },
        };
        let procs = world_procs
            .iter()
            .map(|p| RefProc {
                ns: std::array::from_fn(|k| p.ns[k].map_or(k, |i| 8 + i)),
                uid: p.uid,
                gid: p.uid,
                // Root of a joined user namespace (full capabilities from
                // setns, kept by setresuid to its root); in the host's,
                // root keeps them and become_user drops them.
                caps: p.ns[HOST_USER].is_some() || p.uid == 0,
                state: p.state,
            })
            .collect();
        RefState {
            caller,
            setting,
            world_procs,
            procs,
            host_counts: std::array::from_fn(|i| Setting::existing(Kind::ALL[i])),
            spaces,
            cur: std::array::from_fn(|i| i),
            pid_children: Kind::Pid.index(),
            time_children: Kind::Time.index(),
            me,
            writer: me,
            threads: 1,
            fs_shared: setting.fs_shared,
            chroot: setting.chroot,
            forked: false,
            fds: Fds::new(),
            answer: Ok(()),
        }
    }

    /// `u`, its parent, ..., the host user namespace.
    fn user_chain(&self, u: usize) -> Vec<usize> {
        let mut chain = vec![u];
        while let Some(p) = self.spaces[chain[chain.len() - 1]].owner {
            chain.push(p);
        }
        chain
    }

    /// user_namespaces(7): `cred` has a capability in `target` when its own
    /// user namespace is `target` and the capability is effective, or its
    /// namespace is an ancestor of `target` and either the capability is
    /// effective or its euid created the child of its namespace on the way
    /// down to `target`.
    fn capable(&self, cred: &Cred, target: usize) -> bool {
        let chain = self.user_chain(target);
        match chain.iter().position(|&n| n == cred.user_ns) {
            None => false,
            Some(0) => cred.caps,
            Some(i) => cred.caps || self.spaces[chain[i - 1]].creator == cred.euid,
        }
    }

    fn owner(&self, n: usize) -> usize {
        self.spaces[n].owner.unwrap_or(HOST_USER)
    }

    fn map_of(&self, u: usize, ids: Ids) -> Option<&[IdMapping]> {
        match ids {
            Ids::Uid => self.spaces[u].uid_map.as_deref(),
            Ids::Gid => self.spaces[u].gid_map.as_deref(),
        }
    }

    /// The kernel id of `id` of user namespace `u`.
    fn kernel_id(&self, u: usize, ids: Ids, id: u32) -> Option<u32> {
        let Some(parent) = self.spaces[u].owner else {
            return (id != u32::MAX).then_some(id);
        };
        let l = self
            .map_of(u, ids)?
            .iter()
            .find(|l| id >= l.container_id && id - l.container_id < l.size)?;
        self.kernel_id(parent, ids, l.host_id + (id - l.container_id))
    }

    /// The id in user namespace `u` of kernel id `kid`.
    fn id_in(&self, u: usize, ids: Ids, kid: u32) -> Option<u32> {
        let Some(parent) = self.spaces[u].owner else {
            return (kid != u32::MAX).then_some(kid);
        };
        let id = self.id_in(parent, ids, kid)?;
        let l = self
            .map_of(u, ids)?
            .iter()
            .find(|l| id >= l.host_id && id - l.host_id < l.size)?;
        Some(l.container_id + (id - l.host_id))
    }

    /// The ids `[first, first + count)` of `u` lie in one line of its map.
    fn range_in_map(&self, u: usize, ids: Ids, first: u32, count: u32) -> bool {
        let end = u64::from(first) + u64::from(count);
        self.map_of(u, ids).is_some_and(|lines| {
            lines.iter().any(|l| {
                first >= l.container_id && end <= u64::from(l.container_id) + u64::from(l.size)
            })
        })
    }

    fn level(&self, n: usize, up: impl Fn(&RefNs) -> Option<usize>) -> u32 {
        let mut level = 0;
        let mut at = n;
        while let Some(p) = up(&self.spaces[at]) {
            level += 1;
            at = p;
        }
        level
    }

    fn add(&mut self, kind: Kind, owner: usize) -> usize {
        self.spaces.push(RefNs::new(None, kind, Some(owner)));
        self.spaces.len() - 1
    }

    fn step(&mut self, op: &Op) -> Result<(), Errno> {
        match op {
            Op::Open(OpTarget::Pidfd(i)) | Op::PidfdOpen(i) => self.pidfd_open(*i),
            Op::Open(t) => {
                let fd = match *t {
                    OpTarget::World(i) => RefFd::Ns(8 + i),
                    OpTarget::Regular => RefFd::File,
                    OpTarget::Missing => return Err(Errno::ENOENT),
                    OpTarget::ProcSelf(k) => RefFd::Ns(self.cur[k.index()]),
                    // pidns_for_children_get: hidden until the namespace has an init.
                    OpTarget::ForChildren(Kind::Pid)
                        if !self.spaces[self.pid_children].has_init =>
                    {
                        return Err(Errno::ENOENT)
                    }
                    OpTarget::ForChildren(Kind::Pid) => RefFd::Ns(self.pid_children),
                    OpTarget::ForChildren(_) => RefFd::Ns(self.time_children),
                    OpTarget::Pidfd(i) => RefFd::Pidfd(i),
                };
                self.fds.push(*t, fd);
                Ok(())
            }
            Op::Close(t) => {
                self.fds.take(*t);
                Ok(())
            }
            Op::Setns(t, kind) => match self.fds.get(*t) {
                Some(&RefFd::Ns(n)) if self.spaces[n].kind == *kind => self.setns(n, *kind),
                // A file that is not a namespace is held only as an O_PATH
                // reference (it is never opened for real), and setns(2)
                // does not take O_PATH fds (fdget refuses them).
                Some(RefFd::File) => Err(Errno::EBADF),
                // setns(pidfd, CLONE_NEW<kind>): one kind through a pidfd.
                Some(&RefFd::Pidfd(p)) => self.setns_process(p, KindSet::one(*kind)),
                _ => Err(Errno::EINVAL),
            },
            Op::SetnsPidfd(t, kinds) => match self.fds.get(*t) {
                Some(&RefFd::Pidfd(p)) => self.setns_process(p, *kinds),
                // setns(2) on a namespace file (`proc_ns_file`): flags 0
                // or exactly its own type join it, other flags are EINVAL.
                Some(&RefFd::Ns(n)) => {
                    let kind = self.spaces[n].kind;
                    if kinds.iter().all(|k| k == kind) {
                        self.setns(n, kind)
                    } else {
                        Err(Errno::EINVAL)
                    }
                }
                // An O_PATH reference: fdget refuses it whatever the flags.
                Some(RefFd::File) | None => Err(Errno::EBADF),
            },
            Op::Unshare(kinds) => {
                let before = self.clone();
                let r = self.unshare(kinds);
                if r.is_err() {
                    *self = before;
                }
                r
            }
            Op::Fork => {
                // The first process of a pid namespace is its init.
                self.spaces[self.pid_children].has_init = true;
                self.cur[Kind::Pid.index()] = self.pid_children;
                self.cur[Kind::Time.index()] = self.time_children;
                self.spaces[self.time_children].entered = true;
                self.threads = 1;
                self.fs_shared = false;
                self.forked = true;
                Ok(())
            }
            Op::TimeOffsets(offsets) => self.time_offsets(offsets),
            Op::UidMap(lines) => self.write_map(self.writer, Ids::Uid, lines),
            Op::GidMap(lines) => self.write_map(self.writer, Ids::Gid, lines),
            Op::OwnUidMap(lines) => self.write_map(self.me, Ids::Uid, lines),
            Op::OwnGidMap(lines) => self.write_map(self.me, Ids::Gid, lines),
            Op::SetgroupsDeny => {
                let u = self.cur[HOST_USER];
                // Opening `setgroups` for writing needs CAP_SYS_ADMIN in it.
                if !self.capable(&self.writer, u) {
                    return Err(Errno::EACCES);
                }
                // Too late once gid_map is written (the host's always is).
                if self.spaces[u].gid_map.is_some() {
                    return Err(Errno::EPERM);
                }
                self.spaces[u].setgroups_allowed = false;
                Ok(())
            }
            Op::SetRootIds => {
                let u = self.cur[HOST_USER];
                let kgid = self.kernel_id(u, Ids::Gid, 0).ok_or(Errno::EINVAL)?;
                if kgid != self.me.egid && !self.me.caps {
                    return Err(Errno::EPERM);
                }
                self.me.egid = kgid;
                let kuid = self.kernel_id(u, Ids::Uid, 0).ok_or(Errno::EINVAL)?;
                if kuid != self.me.euid && !self.me.caps {
                    return Err(Errno::EPERM);
                }
                self.me.euid = kuid;
                Ok(())
            }
            Op::SpawnThread => {
                // clone(CLONE_THREAD) (copy_process): a thread must be in the
                // pid namespace its children would get. (A time namespace
                // for children that differs is no obstacle on Linux 6.18.)
                if self.pid_children != self.cur[Kind::Pid.index()] {
                    return Err(Errno::EINVAL);
                }
                self.threads += 1;
                self.fs_shared = true;
                Ok(())
            }
        }
    }

    /// setns(2) into `t`, a namespace of `kind`.
    fn setns(&mut self, t: usize, kind: Kind) -> Result<(), Errno> {
        let me = self.me;
        let threaded = self.threads > 1;
        // CAP_SYS_ADMIN over the target's owner and over the caller's own
        // user namespace (every kind but user).
        let admin = self.capable(&me, self.owner(t)) && me.caps;
        match kind {
            Kind::User => {
                if t == me.user_ns || threaded || self.fs_shared {
                    return Err(Errno::EINVAL);
                }
                if !self.capable(&me, t) {
                    return Err(Errno::EPERM);
                }
                self.cur[HOST_USER] = t;
                self.me.user_ns = t;
                self.me.caps = true;
            }
            Kind::Mount => {
                if !admin {
                    return Err(Errno::EPERM);
                }
                // mntns_install: `fs->users != 1`. DESIGN §5 says "while
                // multithreaded"; the kernel looks at the fs_struct, which
                // unshare(CLONE_NEWNS) gives this thread to itself.
                if self.fs_shared {
                    return Err(Errno::EINVAL);
                }
                self.cur[kind.index()] = t;
                self.chroot = false;
            }
            Kind::Pid => {
                if !admin {
                    return Err(Errno::EPERM);
                }
                // Only the active pid namespace or one below it.
                let active = self.cur[Kind::Pid.index()];
                let mut up = Some(t);
                while up.is_some_and(|p| p != active) {
                    up = up.and_then(|p| self.spaces[p].pid_parent);
                }
                if up.is_none() {
                    return Err(Errno::EINVAL);
                }
                self.pid_children = t;
            }
            Kind::Time => {
                if threaded {
                    return Err(Errno::EUSERS);
                }
                if !admin {
                    return Err(Errno::EPERM);
                }
                self.cur[kind.index()] = t;
                self.time_children = t;
                self.spaces[t].entered = true;
            }
            Kind::Uts | Kind::Ipc | Kind::Network | Kind::Cgroup => {
                if !admin {
                    return Err(Errno::EPERM);
                }
                self.cur[kind.index()] = t;
            }
        }
        Ok(())
    }

    /// pidfd_open(2) of the world's process `p` (pidfd_open(2): ESRCH
    /// when "the process specified by pid does not exist"). The number is
    /// looked up in the caller's active pid namespace (`find_get_pid`,
    /// pid_namespaces(7): a process has one pid per namespace it is
    /// visible in). The world numbers its processes in the host pid
    /// namespace, where the caller starts; once the caller is in another
    /// (a fork after joining or making one), its processes have other
    /// numbers there, and the world's numbers name nothing (ESRCH). A
    /// zombie still has its pid (pidfd_open takes it); a reaped process
    /// has none.
    fn pidfd_open(&mut self, p: usize) -> Result<(), Errno> {
        if self.procs[p].state == ProcessState::Reaped
            || self.cur[Kind::Pid.index()] != Kind::Pid.index()
        {
            return Err(Errno::ESRCH);
        }
        self.fds.push(OpTarget::Pidfd(p), RefFd::Pidfd(p));
        Ok(())
    }

    /// `ptrace_may_access(target, PTRACE_MODE_READ_REALCREDS)`
    /// (kernel/ptrace.c, `__ptrace_may_access`), two checks that must both
    /// pass (with CAP_SYS_PTRACE over the target's user namespace,
    /// `ptrace_has_cap(tcred->user_ns)`, passing either):
    ///
    /// * the caller's real uid equals the target's real, effective and
    ///   saved uid, and its real gid the target's three gids; then the
    ///   dumpable check, which looks at the target's mm: a zombie has
    ///   none, and `Realized` keeps its running processes dumpable;
    /// * the LSM hook, here the capability module's
    ///   `cap_ptrace_access_check` (security/commoncap.c; Yama checks only
    ///   attaching): the caller's credentials are in the target's user
    ///   namespace itself (not an ancestor) and its permitted capabilities
    ///   include the target's.
    ///
    /// (Every id change here sets real, effective and saved ids together,
    /// so the caller's real ids are its effective ones, and its permitted
    /// capabilities its effective ones.)
    fn may_read(&self, p: &RefProc) -> bool {
        let user = p.ns[HOST_USER];
        let ptrace_cap = self.capable(&self.me, user);
        let same_ids = self.me.euid == p.uid && self.me.egid == p.gid;
        let lsm = self.me.user_ns == user && (self.me.caps || !p.caps);
        ptrace_cap || (same_ids && lsm)
    }

    /// setns(2) with a pidfd of the world's process `p` and the flags of
    /// `kinds` (setns(2), "Since Linux 5.8, fd may refer to a PID file
    /// descriptor"; kernel/nsproxy.c):
    ///
    /// 1. before 5.8 a pidfd is no namespace file: EINVAL;
    ///    `check_setns_flags`: EINVAL for no flags;
    /// 2. the target (`setns_target_get`, once part of `validate_nsset`):
    ///    ESRCH when its pid has no task (reaped), EPERM without ptrace
    ///    read access, ESRCH when it has no nsproxy (a zombie: do_exit
    ///    dropped its namespaces) — so a zombie of another user is EPERM;
    /// 3. `validate_nsset` installs each kind into a copy in the order
    ///    user, mount, uts, ipc, pid, cgroup, net, time, each install hook
    ///    checking capabilities with the caller's credentials as they are
    ///    (`ns_capable` reads `current_cred()`) over the target's owner and
    ///    over `nsset->cred->user_ns`, the user namespace joined first
    ///    when user is among the kinds; the first refusal is the answer
    ///    and nothing changes;
    /// 4. `commit_nsset` switches the caller to all of them at once.
    ///
    /// The targets are the process's namespaces: its user namespace (of
    /// its credentials), its active pid namespace (`task_active_pid_ns`),
    /// its active time namespace (`nsp->time_ns`), the rest of its nsproxy.
    fn setns_process(&mut self, p: usize, kinds: KindSet) -> Result<(), Errno> {
        if !self.setting.pidfd_setns || kinds.is_empty() {
            return Err(Errno::EINVAL);
        }
        let proc = self.procs[p];
        if proc.state == ProcessState::Reaped {
            return Err(Errno::ESRCH);
        }
        if !self.may_read(&proc) {
            return Err(Errno::EPERM);
        }
        if proc.state == ProcessState::Exited {
            return Err(Errno::ESRCH);
        }
        let me = self.me;
        let threaded = self.threads > 1;
        // nsset->cred->user_ns: the caller's until userns_install replaces it.
        let mut nsset_user = me.user_ns;
        // The order of validate_nsset (and of create_new_namespaces).
        let order = [
            Kind::User,
            Kind::Mount,
            Kind::Uts,
            Kind::Ipc,
            Kind::Pid,
            Kind::Cgroup,
            Kind::Network,
            Kind::Time,
        ];
        for kind in order.into_iter().filter(|k| kinds.contains(*k)) {
            let t = proc.ns[kind.index()];
            if kind == Kind::User {
                // userns_install looks at the caller itself: its own user
                // namespace, its threads, its own fs_struct.
                if t == me.user_ns || threaded || self.fs_shared {
                    return Err(Errno::EINVAL);
                }
                if !self.capable(&me, t) {
                    return Err(Errno::EPERM);
                }
                nsset_user = t;
                continue;
            }
            // timens_install: one thread (EUSERS) before capabilities.
            if kind == Kind::Time && threaded {
                return Err(Errno::EUSERS);
            }
            if !(self.capable(&me, self.owner(t)) && self.capable(&me, nsset_user)) {
                return Err(Errno::EPERM);
            }
            match kind {
                // mntns_install: `nsset->fs->users != 1`; prepare_nsset
                // hands it the caller's own fs_struct only when
                // CLONE_NEWNS is the only flag, else a private copy.
                Kind::Mount if self.fs_shared && kinds == KindSet::one(Kind::Mount) => {
                    return Err(Errno::EINVAL);
                }
                // pidns_install: the active pid namespace or one below it.
                Kind::Pid => {
                    let active = self.cur[Kind::Pid.index()];
                    let mut up = Some(t);
                    while up.is_some_and(|n| n != active) {
                        up = up.and_then(|n| self.spaces[n].pid_parent);
                    }
                    if up.is_none() {
                        return Err(Errno::EINVAL);
                    }
                }
                _ => {}
            }
        }
        for kind in order.into_iter().filter(|k| kinds.contains(*k)) {
            let t = proc.ns[kind.index()];
            match kind {
                // commit_creds of the prepared credentials: full
                // capabilities in the joined namespace (set_cred_user_ns).
                Kind::User => {
                    self.cur[HOST_USER] = t;
                    self.me.user_ns = t;
                    self.me.caps = true;
                }
                // pid_ns_for_children only.
                Kind::Pid => self.pid_children = t,
                // commit_nsset sets the new root and cwd.
                Kind::Mount => {
                    self.cur[kind.index()] = t;
                    self.chroot = false;
                }
                // timens_install sets time_ns and time_ns_for_children.
                Kind::Time => {
                    self.cur[kind.index()] = t;
                    self.time_children = t;
                    self.spaces[t].entered = true;
                }
                _ => self.cur[kind.index()] = t,
            }
        }
        Ok(())
    }

    /// unshare(2); the caller restores the state on an error.
    fn unshare(&mut self, kinds: &[Kind]) -> Result<(), Errno> {
        if kinds.contains(&Kind::User) {
            if self.threads > 1 {
                return Err(Errno::EINVAL);
            }
            let parent = self.cur[HOST_USER];
            if self.level(parent, |s| s.owner) > 32 {
                return Err(Errno::ENOSPC);
            }
            self.charge(Kind::User)?;
            // A chrooted caller may not make one (its root would widen).
            if self.chroot {
                return Err(Errno::EPERM);
            }
            // The creator's ids must be mapped where the namespace is made.
            if self.id_in(parent, Ids::Uid, self.me.euid).is_none()
                || self.id_in(parent, Ids::Gid, self.me.egid).is_none()
            {
                return Err(Errno::EPERM);
            }
            let could_setfcap = self.capable(&self.me, parent);
            let u = self.add(Kind::User, parent);
            self.spaces[u].creator = self.me.euid;
            self.spaces[u].could_setfcap = could_setfcap;
            self.spaces[u].setgroups_allowed = self.spaces[parent].setgroups_allowed;
            self.cur[HOST_USER] = u;
            self.me.user_ns = u;
            self.me.caps = true;
            // CLONE_NEWUSER implies CLONE_FS: a shared fs_struct is copied.
            self.fs_shared = false;
        }
        if kinds.iter().all(|k| *k == Kind::User) {
            return Ok(());
        }
        if !self.me.caps {
            return Err(Errno::EPERM);
        }
        let owner = self.me.user_ns;
        // create_new_namespaces' order (kernel/nsproxy.c); the first that
        // fails gives the errno.
        let order = [
            Kind::Mount,
            Kind::Uts,
            Kind::Ipc,
            Kind::Pid,
            Kind::Cgroup,
            Kind::Network,
            Kind::Time,
        ];
        for k in order.into_iter().filter(|k| kinds.contains(k)) {
            match k {
                Kind::User => {}
                Kind::Pid => {
                    let active = self.cur[Kind::Pid.index()];
                    if self.pid_children != active {
                        return Err(Errno::EINVAL);
                    }
                    // The parent's owner must be the caller's user namespace or above it.
                    if !self.user_chain(owner).contains(&self.owner(active)) {
                        return Err(Errno::EINVAL);
                    }
                    if self.level(active, |s| s.pid_parent) + 1 > 32 {
                        return Err(Errno::ENOSPC);
                    }
                    self.charge(Kind::Pid)?;
                    let p = self.add(Kind::Pid, owner);
                    self.spaces[p].pid_parent = Some(active);
                    self.spaces[p].has_init = false;
                    self.pid_children = p;
                }
                Kind::Time => {
                    self.charge(Kind::Time)?;
                    let t = self.add(Kind::Time, owner);
                    self.spaces[t].entered = false;
                    self.time_children = t;
                }
                _ => {
                    self.charge(k)?;
                    let n = self.add(k, owner);
                    self.cur[k.index()] = n;
                    if k == Kind::Mount {
                        self.fs_shared = false;
                    }
                }
            }
        }
        Ok(())
    }

    /// One more namespace of `kind` against `max_<kind>_namespaces` of the
    /// host user namespace, where every namespace counts (ENOSPC).
    fn charge(&mut self, kind: Kind) -> Result<(), Errno> {
        let k = kind.index();
        if self.host_counts[k] >= self.setting.limits[k] {
            return Err(Errno::ENOSPC);
        }
        self.host_counts[k] += 1;
        Ok(())
    }

    /// A write of `/proc/self/timens_offsets` (time_namespaces(7)): each
    /// offset must keep `now + offset` within `0 ..= KTIME_SEC_MAX / 2`.
    fn time_offsets(&mut self, offsets: &[TimeOffset]) -> Result<(), Errno> {
        if offsets.iter().any(|o| o.nanosecs > 999_999_999) {
            return Err(Errno::EINVAL);
        }
        let t = self.time_children;
        if !self.capable(&self.me, self.owner(t)) {
            return Err(Errno::EPERM);
        }
        let out_of_range = |o: &TimeOffset| {
            if o.secs > KTIME_SEC_MAX || o.secs < -KTIME_SEC_MAX {
                return true;
            }
            let now = match o.clock {
                Clock::Monotonic => self.setting.clocks[0],
                Clock::Boottime => self.setting.clocks[1],
            };
            // The clocks are whole seconds here; nanoseconds never carry.
            let at = now + o.secs;
            !(0..=KTIME_SEC_MAX / 2).contains(&at)
        };
        if offsets.iter().any(out_of_range) {
            return Err(Errno::ERANGE);
        }
        if self.spaces[t].entered {
            return Err(Errno::EACCES);
        }
        Ok(())
    }

    /// The runtime parent writes `uid_map` or `gid_map` of the caller's
    /// user namespace (user_namespaces(7), "Defining user and group ID
    /// mappings").
    fn write_map(&mut self, w: Cred, ids: Ids, lines: &[IdMapping]) -> Result<(), Errno> {
        let u = self.cur[HOST_USER];
        let Some(parent) = self.spaces[u].owner else {
            return Err(Errno::EPERM);
        };
        // The writer must be in the namespace or in its parent.
        if w.user_ns != u && w.user_ns != parent {
            return Err(Errno::EPERM);
        }
        if self.map_of(u, ids).is_some() || !self.capable(&w, u) {
            return Err(Errno::EPERM);
        }
        if !valid_lines(lines) {
            return Err(Errno::EINVAL);
        }
        let privileged = self.capable(&w, parent);
        // Mapping id 0 of the parent needs CAP_SETFCAP there: the writer's,
        // or, for a process writing its own namespace's map, its creator's
        // when it made it.
        let could_setfcap = if w.user_ns == u {
            self.spaces[u].could_setfcap
        } else {
            privileged
        };
        if ids == Ids::Uid && lines.iter().any(|l| l.host_id == 0) && !could_setfcap {
            return Err(Errno::EPERM);
        }
        // Unprivileged: one line of one id, the writer's own, in a
        // namespace it created; for gids only once setgroups is denied.
        let own = match lines {
            [l] if l.size == 1 && self.spaces[u].creator == w.euid => {
                let kid = self.kernel_id(parent, ids, l.host_id);
                match ids {
                    Ids::Uid => kid == Some(w.euid),
                    Ids::Gid => !self.spaces[u].setgroups_allowed && kid == Some(w.egid),
                }
            }
            _ => false,
        };
        if !own && !privileged {
            return Err(Errno::EPERM);
        }
        if !lines
            .iter()
            .all(|l| self.range_in_map(parent, ids, l.host_id, l.size))
        {
            return Err(Errno::EPERM);
        }
        let lines = Some(lines.to_vec());
        match ids {
            Ids::Uid => self.spaces[u].uid_map = lines,
            Ids::Gid => self.spaces[u].gid_map = lines,
        }
        Ok(())
    }
}

/// The reference as a proptest state machine. `KERNEL` restricts the
/// operations to the ones a real process can run safely: no fork once a
/// thread was started, at most three threads.
struct RefMachine<const KERNEL: bool>;

impl<const KERNEL: bool> ReferenceStateMachine for RefMachine<KERNEL> {
    type State = RefState;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<RefState> {
        let caller = prop_oneof![Just(Caller::Root), Just(Caller::Rootless)];
        let procs = proptest::collection::vec(world_process(), 0..=2);
        if KERNEL {
            (caller, procs)
                .prop_map(|(c, p)| RefState::new(c, Setting::KERNEL, p))
                .boxed()
        } else {
            (caller, setting(), procs)
                .prop_map(|(c, s, p)| RefState::new(c, s, p))
                .boxed()
        }
    }

    fn transitions(state: &RefState) -> BoxedStrategy<Op> {
        let open = prop_oneof![
            // User namespaces (the first three) more often: they decide
            // most of the other answers.
            3 => (0..3usize).prop_map(OpTarget::World),
            6 => (0..WORLD.len()).prop_map(OpTarget::World),
            1 => Just(OpTarget::Regular),
            1 => Just(OpTarget::Missing),
            2 => any_kind().prop_map(OpTarget::ProcSelf),
            1 => prop_oneof![Just(Kind::Pid), Just(Kind::Time)].prop_map(OpTarget::ForChildren),
        ]
        .prop_map(Op::Open);
        let unshare = prop_oneof![
            3 => any_kind().prop_map(|k| vec![k]),
            1 => proptest::sample::subsequence(Kind::ALL.to_vec(), 1..=3),
        ]
        .prop_map(Op::Unshare);
        let maps = proptest::sample::select(map_menu());
        let mut arms: Vec<(u32, BoxedStrategy<Op>)> = vec![
            (5, open.boxed()),
            (3, unshare.boxed()),
            (1, Just(Op::Fork).boxed()),
            (
                1,
                proptest::collection::vec(
                    time_offset((!KERNEL).then_some(state.setting.clocks)),
                    1..=2,
                )
                .prop_map(Op::TimeOffsets)
                .boxed(),
            ),
            (1, maps.clone().prop_map(Op::UidMap).boxed()),
            (1, maps.clone().prop_map(Op::GidMap).boxed()),
            (1, maps.clone().prop_map(Op::OwnUidMap).boxed()),
            (1, maps.prop_map(Op::OwnGidMap).boxed()),
            (1, Just(Op::SetgroupsDeny).boxed()),
            (1, Just(Op::SetRootIds).boxed()),
            (1, Just(Op::SpawnThread).boxed()),
        ];
        if !state.procs.is_empty() {
            arms.push((3, (0..state.procs.len()).prop_map(Op::PidfdOpen).boxed()));
        }
        if !state.fds.0.is_empty() {
            // The open fds' targets, with the kind of namespace each fd is
            // on: setns mostly asks for that kind, to get past the type check.
            let open: Vec<(OpTarget, Option<Kind>)> = state
                .fds
                .0
                .iter()
                .map(|(t, f)| match f {
                    RefFd::Ns(n) => (*t, Some(state.spaces[*n].kind)),
                    RefFd::File | RefFd::Pidfd(_) => (*t, None),
                })
                .collect();
            let targets: Vec<OpTarget> = open.iter().map(|(t, _)| *t).collect();
            let pidfds: Vec<OpTarget> = targets
                .iter()
                .copied()
                .filter(|t| matches!(t, OpTarget::Pidfd(_)))
                .collect();
            // Mostly a pidfd; sometimes whatever fd is open (the kernel
            // takes any fd).
            let (weight, fd) = if pidfds.is_empty() {
                (1, proptest::sample::select(targets.clone()).boxed())
            } else {
                let fd = prop_oneof![
                    9 => proptest::sample::select(pidfds),
                    1 => proptest::sample::select(targets.clone()),
                ];
                (6, fd.boxed())
            };
            // Any set of kinds, often without user (joining the user
            // namespace one is in is EINVAL), sometimes none.
            let kinds = prop_oneof![
                3 => proptest::sample::subsequence(Kind::ALL.to_vec(), 1..=8),
                2 => proptest::sample::subsequence(Kind::ALL[1..].to_vec(), 1..=7),
                1 => Just(Vec::new()),
            ]
            .prop_map(|k| k.into_iter().collect::<KindSet>());
            arms.push((
                weight,
                (fd, kinds).prop_map(|(t, k)| Op::SetnsPidfd(t, k)).boxed(),
            ));
            let setns = (proptest::sample::select(open), any_kind(), 0..4u8).prop_map(
                |((t, own), k, coin)| Op::Setns(t, own.filter(|_| coin > 0).unwrap_or(k)),
            );
            arms.push((6, setns.boxed()));
            arms.push((
                2,
                proptest::sample::select(targets)
                    .prop_map(Op::Close)
                    .boxed(),
            ));
        }
        Union::new_weighted(arms).boxed()
    }

    fn preconditions(state: &RefState, op: &Op) -> bool {
        match op {
            Op::Close(t) | Op::Setns(t, _) | Op::SetnsPidfd(t, _) => state.fds.get(*t).is_some(),
            // A pidfd is opened by PidfdOpen only (the same call).
            Op::Open(OpTarget::Pidfd(_)) => false,
            Op::PidfdOpen(i) => *i < state.procs.len(),
            // fork(2) in a multithreaded process is only safe for
            // async-signal-safe work in the child; the child here runs Rust.
            Op::Fork => !KERNEL || state.threads == 1,
            Op::SpawnThread => !KERNEL || state.threads < 3,
            _ => true,
        }
    }

    fn apply(mut state: RefState, op: &Op) -> RefState {
        state.answer = state.step(op);
        state
    }
}

// ---------------------------------------------------------------------------
// The model side.
// ---------------------------------------------------------------------------

/// Abstract identities: a bijection between the model's namespace names
/// and another side's identities (reference indices or kernel inodes),
/// extended as new namespaces appear.
#[derive(Debug)]
struct Identities<K> {
    fwd: BTreeMap<String, K>,
    back: BTreeMap<K, String>,
}

impl<K: Ord + Copy + fmt::Debug> Identities<K> {
    fn new() -> Self {
        Identities {
            fwd: BTreeMap::new(),
            back: BTreeMap::new(),
        }
    }

    fn bind(&mut self, name: &str, id: K) -> Result<(), String> {
        match (self.fwd.get(name), self.back.get(&id)) {
            (Some(k), _) if *k != id => Err(format!(
                "model namespace {name} was {k:?} before, now {id:?}"
            )),
            (_, Some(n)) if n != name => {
                Err(format!("{id:?} was model namespace {n} before, now {name}"))
            }
            _ => {
                self.fwd.insert(name.to_owned(), id);
                self.back.insert(id, name.to_owned());
                Ok(())
            }
        }
    }
}

/// The model with the fds it handed out, oldest first.
struct ModelRun {
    model: Model,
    fds: Fds<ModelFd>,
}

impl ModelRun {
    fn new(caller: Caller, setting: Setting, procs: &[WorldProc]) -> ModelRun {
        let model =
            Model::new(&world(caller, setting, procs, true)).expect("the test world is valid");
        ModelRun {
            model,
            fds: Fds::new(),
        }
    }

    fn step(&mut self, op: &Op) -> Result<(), Errno> {
        let m = &mut self.model;
        match op {
            Op::Open(OpTarget::Pidfd(i)) | Op::PidfdOpen(i) => {
                let fd = m.pidfd_open(world_pid(*i))?;
                self.fds.push(OpTarget::Pidfd(*i), fd);
                Ok(())
            }
            Op::Open(t) => {
                let path = match *t {
                    OpTarget::World(i) => format!("{MODEL_DIR}/{}", WORLD[i].name),
                    OpTarget::Regular => format!("{MODEL_DIR}/regular"),
                    OpTarget::Missing => format!("{MODEL_DIR}/missing"),
                    OpTarget::ProcSelf(k) => format!("/proc/self/ns/{}", k.proc_name()),
                    OpTarget::ForChildren(k) => {
                        format!("/proc/self/ns/{}", k.proc_name_for_children())
                    }
                    OpTarget::Pidfd(_) => unreachable!("opened by pidfd_open above"),
                };
                let fd = m.open_ns(PathBuf::from(path).as_path())?;
                self.fds.push(*t, fd);
                Ok(())
            }
            Op::Close(t) => {
                if let Some(fd) = self.fds.take(*t) {
                    m.close(fd);
                }
                Ok(())
            }
            Op::Setns(t, k) => match self.fds.get(*t) {
                Some(fd) => m.setns(fd, *k),
                None => Err(Errno::EBADF),
            },
            Op::SetnsPidfd(t, kinds) => match self.fds.get(*t) {
                Some(fd) => m.setns_pidfd(fd, *kinds),
                None => Err(Errno::EBADF),
            },
            Op::Unshare(kinds) => m.unshare(kinds.iter().copied().collect::<KindSet>()),
            Op::Fork => m.fork().map(|_| ()),
            Op::TimeOffsets(o) => m.write_time_offsets(o),
            Op::UidMap(l) => m.write_uid_map(l),
            Op::GidMap(l) => m.write_gid_map(l),
            Op::OwnUidMap(l) => m.caller_write_map("self", MapFile::UidMap, l),
            Op::OwnGidMap(l) => m.caller_write_map("self", MapFile::GidMap, l),
            Op::SetgroupsDeny => m.write_setgroups_deny(),
            Op::SetRootIds => m.set_root_ids(),
            Op::SpawnThread => m.spawn_thread(),
        }
    }

    /// The model's namespaces: current per kind, then pid and time for children.
    fn namespaces(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = Kind::ALL
            .into_iter()
            .map(|k| (k.proc_name().to_owned(), self.model.current(k).to_owned()))
            .collect();
        for k in [Kind::Pid, Kind::Time] {
            v.push((
                k.proc_name_for_children().to_owned(),
                self.model.for_children(k).to_owned(),
            ));
        }
        v
    }
}

/// The model against the reference: the answer of each step, then the state.
struct ModelVsReference {
    run: ModelRun,
    /// Model names against reference indices; a `RefCell` because
    /// `check_invariants` sees the test by shared reference.
    ids: RefCell<Identities<usize>>,
}

impl StateMachineTest for ModelVsReference {
    type SystemUnderTest = ModelVsReference;
    type Reference = RefMachine<false>;

    fn init_test(reference: &RefState) -> ModelVsReference {
        let mut ids = Identities::new();
        for (i, s) in reference.spaces.iter().enumerate() {
            if let Some(name) = &s.name {
                ids.fwd.insert(name.clone(), i);
                ids.back.insert(i, name.clone());
            }
        }
        ModelVsReference {
            run: ModelRun::new(reference.caller, reference.setting, &reference.world_procs),
            ids: RefCell::new(ids),
        }
    }

    fn apply(mut sut: ModelVsReference, reference: &RefState, op: Op) -> ModelVsReference {
        let got = sut.run.step(&op);
        assert_eq!(
            got, reference.answer,
            "{op:?}: the model answered {got:?}, the reference {:?}",
            reference.answer
        );
        sut
    }

    fn check_invariants(sut: &ModelVsReference, r: &RefState) {
        let m = &sut.run.model;
        let mut want: Vec<usize> = r.cur.to_vec();
        want.extend([r.pid_children, r.time_children]);
        let mut ids = sut.ids.borrow_mut();
        for ((entry, name), id) in sut.run.namespaces().into_iter().zip(want) {
            if let Err(e) = ids.bind(&name, id) {
                panic!("/proc/self/ns/{entry}: {e}");
            }
        }
        let got = (
            m.open_fd_count(),
            m.threads(),
            m.has_forked(),
            m.euid(),
            m.egid(),
        );
        let want = (r.fds.len(), r.threads, r.forked, r.me.euid, r.me.egid);
        assert_eq!(
            got, want,
            "(fds, threads, forked, euid, egid): model {got:?}, reference {want:?}"
        );
    }

    fn teardown(mut sut: ModelVsReference, _: RefState) {
        for (_, fd) in std::mem::replace(&mut sut.run.fds, Fds::new()).0 {
            sut.run.model.close(fd);
        }
    }
}

thread_local! {
    /// Set while proptest runs and shrinks: its panics are expected.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

fn install_quiet_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !QUIET.with(Cell::get) {
            default(info);
        }
    }));
}

fn config(cases_env: &str, default: u32, file: &'static str) -> Config {
    let cases = std::env::var(cases_env)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(file))),
        ..Config::default()
    }
}

/// Property 6, model against reference: for random sequences of raw
/// operations on a root or rootless caller, every answer of the model
/// (`Ok` or the errno) and its state after every step (namespaces per
/// kind and for children, fd count, threads, forked, euid and egid) equal
/// those of the reference state machine written from DESIGN §5 and the
/// man pages.
fn model_matches_reference_state_machine() -> Result<(), Failed> {
    install_quiet_panic_hook();
    let cfg = config("PROPTEST_CASES", 256, REGRESSIONS);
    let mut runner = TestRunner::new(cfg.clone());
    let strategy = RefMachine::<false>::sequential_strategy(1..40);
    QUIET.with(|q| q.set(true));
    let r = runner.run(&strategy, |(init, ops, seen)| {
        ModelVsReference::test_sequential(cfg.clone(), init, ops, seen);
        Ok(())
    });
    QUIET.with(|q| q.set(false));
    r.map_err(|e| Failed::from(format!("{e}")))
}

// ---------------------------------------------------------------------------
// The kernel side.
// ---------------------------------------------------------------------------

/// What the kernel child reads on stdin.
#[derive(Debug, Serialize, Deserialize)]
struct ChildInput {
    caller: Caller,
    processes: Vec<WorldProc>,
    ops: Vec<Op>,
}

/// What the kernel child saw after one step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct KernelState {
    /// Inodes of `/proc/self/ns/<kind>` in canonical order, then
    /// `pid_for_children` and `time_for_children`; `None` when the entry
    /// does not open (ENOENT: `pid_for_children` before its init exists).
    ns: Vec<Option<u64>>,
    fds: usize,
    threads: usize,
    /// Effective ids as the host sees them (`/proc/<pid>/status` read by
    /// the runtime parent).
    euid: u32,
    egid: u32,
}

/// One line of the kernel child's output.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ChildLine {
    /// Inode of each host and world namespace, by model name.
    Setup(BTreeMap<String, u64>),
    Step {
        result: Option<Errno>,
        state: KernelState,
    },
    Done,
    Error(String),
}

/// Property 6, kernel-backed: for random sequences of the operations a
/// real process can run safely (no fork once a thread was started; time
/// offsets whose answer does not depend on uptime), run by a root or a
/// rootless caller in a fresh single-threaded process on a world built by
/// `nsapply_harness::realize`, the kernel's answer at every step, errno included,
/// and the state after it (namespaces per kind as inodes, fds, threads,
/// euid and egid) equal the model's.
fn model_matches_kernel_on_random_sequences() -> Result<(), Failed> {
    install_quiet_panic_hook();
    let cfg = Config {
        max_shrink_iters: 400,
        ..config(KERNEL_CASES_ENV, 16, KERNEL_REGRESSIONS)
    };
    let mut runner = TestRunner::new(cfg);
    let strategy = RefMachine::<true>::sequential_strategy(1..24);
    let r = runner.run(&strategy, |(init, ops, seen)| {
        let compared = compare_with_kernel(init.caller, &init.world_procs, &ops);
        if let Some(s) = &seen {
            let n = compared.as_ref().map_or_else(|(n, _)| *n, |()| ops.len());
            s.fetch_add(n, Ordering::SeqCst);
        }
        compared.map_err(|(_, e)| TestCaseError::fail(e))
    });
    r.map_err(|e| Failed::from(format!("{e}")))
}

/// Runs `ops` on the model and, in a fresh process, on the kernel; on a
/// difference, the number of steps run up to it and a description.
fn compare_with_kernel(
    caller: Caller,
    procs: &[WorldProc],
    ops: &[Op],
) -> Result<(), (usize, String)> {
    let out = run_child(caller, procs, ops).map_err(|e| (ops.len(), e))?;
    let mut lines = out.lines.iter();
    let Some(ChildLine::Setup(setup)) = lines.next() else {
        return Err((0, format!("no setup line\n{}", out.stderr)));
    };
    let mut ids: Identities<u64> = Identities::new();
    for (name, ino) in setup {
        ids.bind(name, *ino).map_err(|e| (0, e))?;
    }
    let mut run = ModelRun::new(caller, Setting::KERNEL, procs);
    for (i, op) in ops.iter().enumerate() {
        let fail = |what: String| {
            (
                i + 1,
                format!(
                    "step {} {op:?}: {what}\nsequence: {:?}\nkernel stderr: {}",
                    i + 1,
                    &ops[..=i],
                    out.stderr
                ),
            )
        };
        let want = run.step(op).err();
        let (got, state) = match lines.next() {
            Some(ChildLine::Step { result, state }) => (*result, state),
            other => return Err(fail(format!("the kernel child said {other:?}"))),
        };
        if got != want {
            return Err(fail(format!(
                "the model answered {}, the kernel {}",
                outcome(want),
                outcome(got)
            )));
        }
        for ((entry, name), ino) in run.namespaces().into_iter().zip(&state.ns) {
            match ino {
                Some(ino) => ids
                    .bind(&name, *ino)
                    .map_err(|e| fail(format!("/proc/self/ns/{entry}: {e}")))?,
                // The kernel hides a pid namespace that has no init yet.
                None => {
                    let no_init = run
                        .model
                        .namespace(&name)
                        .is_some_and(|v| v.has_init == Some(false));
                    if !no_init {
                        return Err(fail(format!(
                            "/proc/self/ns/{entry} does not open on the kernel, the model is in {name}"
                        )));
                    }
                }
            }
        }
        let m = &run.model;
        let model = (m.open_fd_count(), m.threads(), m.euid(), m.egid());
        let kernel = (state.fds, state.threads, state.euid, state.egid);
        if model != kernel {
            return Err(fail(format!(
                "(fds, threads, euid, egid): model {model:?}, kernel {kernel:?}"
            )));
        }
    }
    match lines.next() {
        Some(ChildLine::Done) => Ok(()),
        other => Err((
            ops.len(),
            format!("the kernel child ended with {other:?}\n{}", out.stderr),
        )),
    }
}

fn outcome(r: Option<Errno>) -> String {
    r.map_or_else(|| "ok".to_owned(), |e| e.name().into_owned())
}

struct ChildOutput {
    lines: Vec<ChildLine>,
    stderr: String,
}

fn run_child(caller: Caller, procs: &[WorldProc], ops: &[Op]) -> Result<ChildOutput, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("re-executing the test binary: {e}"))?;
    let input = serde_json::to_string(&ChildInput {
        caller,
        processes: procs.to_vec(),
        ops: ops.to_vec(),
    })
    .map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("writing the sequence: {e}"))?;
    }
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    // A watchdog, so a kernel child that hangs fails the case instead of the run.
    let deadline = std::time::Instant::now() + CHILD_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the kernel child did not finish within {CHILD_TIMEOUT:?}"
                ));
            }
        }
    }
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("bad line {l:?}: {e}\n{stderr}")))
        .collect::<Result<Vec<ChildLine>, String>>()?;
    Ok(ChildOutput { lines, stderr })
}

fn say(line: &ChildLine) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", serde_json::to_string(line).unwrap_or_default());
    let _ = out.flush();
}

/// The re-executed process: builds the world, then runs the sequence in a
/// forked caller process, and tears the world down.
///
/// ```text
/// this process (root): Realized world, fds on each world namespace ─fork─▶ caller
/// caller: becomes the world's caller ─fork─▶ writer (the runtime parent: writes id maps, reads status)
///         runs each op, prints one line per op; on a fork op the child goes on and the parent waits
/// ```
fn kernel_child() -> i32 {
    match kernel_child_setup() {
        Ok(code) => code,
        Err(e) => {
            say(&ChildLine::Error(e));
            1
        }
    }
}

fn kernel_child_setup() -> Result<i32, String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| format!("reading the sequence: {e}"))?;
    let input: ChildInput = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let scratch = ScratchDir::new().map_err(|e| format!("scratch directory: {e}"))?;
    let regular = scratch.join("regular");
    fs::write(&regular, "").map_err(|e| format!("creating {}: {e}", regular.display()))?;
    let real = Realized::new(&world(
        input.caller,
        Setting::KERNEL,
        &input.processes,
        false,
    ))
    .map_err(|e| format!("realize: {e}"))?;
    let pids = (0..input.processes.len())
        .map(|i| {
            real.process_pid(world_pid(i))
                .ok_or_else(|| format!("world process {i} has no pid"))
        })
        .collect::<Result<Vec<i32>, String>>()?;
    let mut setup = BTreeMap::new();
    for k in Kind::ALL {
        let ino = host::ns_inode(None, k.proc_name()).map_err(|e| e.to_string())?;
        setup.insert(host_name(k), ino);
    }
    // The world's namespaces are opened through fds held from here on
    // (`/proc/self/fd/N`): the path resolves in any mount namespace the
    // caller joins, and without the ptrace check of `/proc/<pid>/ns`,
    // neither of which the model has.
    let mut held = Vec::new();
    for n in WORLD {
        let p = real.proc_path(n.name).unwrap_or_default();
        let f = File::open(&p).map_err(|e| format!("open {}: {e}", p.display()))?;
        let ino = f.metadata().map_err(|e| e.to_string())?.ino();
        setup.insert(n.name.to_owned(), ino);
        held.push(f);
    }
    say(&ChildLine::Setup(setup));
    let paths = Paths {
        world: held
            .iter()
            .map(|f| PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())))
            .collect(),
        regular,
        missing: scratch.join("missing"),
        pids,
    };
    let caller = host::fork_with(|| match run_caller(&input, &paths) {
        Ok(()) => 0,
        Err(e) => {
            say(&ChildLine::Error(e));
            1
        }
    })
    .map_err(|e| format!("fork of the caller: {e}"))?;
    let code = process::wait(caller)
        .map(process::Exit::status)
        .map_err(|e| format!("waiting for the caller: {e}"))?;
    drop(held);
    drop(real);
    drop(scratch);
    Ok(code)
}

/// The kernel child's paths for each [`OpTarget`] that is not in `/proc/self/ns`.
struct Paths {
    world: Vec<PathBuf>,
    regular: PathBuf,
    missing: PathBuf,
    /// The real pid of each world process (as the host pid namespace,
    /// where the caller starts, numbers it).
    pids: Vec<i32>,
}

/// A request to the writer (the runtime parent).
#[derive(Debug, Serialize, Deserialize)]
enum WriterRequest {
    /// One write(2) of `text` to `/proc/<pid>/<file>`.
    Write {
        pid: i32,
        file: String,
        text: String,
    },
    /// The effective uid and gid of `pid` in host terms.
    Status { pid: i32 },
    /// Exit (the caller may not be able to kill the writer: it may have
    /// become another user).
    Quit,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct WriterAnswer {
    errno: Option<Errno>,
    euid: u32,
    egid: u32,
}

fn writer_main(requests: File, mut answers: File) -> i32 {
    let _ = linux::set_parent_death_signal();
    for line in BufReader::new(requests).lines() {
        let Ok(line) = line else { return 1 };
        let answer = match serde_json::from_str::<WriterRequest>(&line) {
            Ok(WriterRequest::Write { pid, file, text }) => {
                let r = OpenOptions::new()
                    .write(true)
                    .open(format!("/proc/{pid}/{file}"))
                    .and_then(|mut f| f.write(text.as_bytes()));
                WriterAnswer {
                    errno: match r {
                        Ok(n) if n == text.len() => None,
                        // Never seen (the kernel takes a map whole or
                        // refuses it); the model never answers EIO, so a
                        // short write fails the comparison.
                        Ok(_) => Some(Errno::EIO),
                        Err(e) => Some(Errno::of_io(&e).unwrap_or(Errno::EIO)),
                    },
                    ..WriterAnswer::default()
                }
            }
            Ok(WriterRequest::Status { pid }) => status_ids(pid),
            Ok(WriterRequest::Quit) => return 0,
            Err(_) => WriterAnswer {
                errno: Some(Errno::EINVAL),
                ..WriterAnswer::default()
            },
        };
        let text = serde_json::to_string(&answer).unwrap_or_default();
        if writeln!(answers, "{text}").is_err() {
            return 1;
        }
    }
    0
}

/// The effective ids of `pid` from `/proc/<pid>/status` (proc(5)), which
/// shows them in the reader's user namespace: the host's.
fn status_ids(pid: i32) -> WriterAnswer {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let effective = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u32::MAX)
    };
    WriterAnswer {
        errno: None,
        euid: effective("Uid:"),
        egid: effective("Gid:"),
    }
}

/// The caller's side of the writer.
struct Writer {
    pid: i32,
    to: File,
    from: BufReader<File>,
}

impl Writer {
    fn ask(&mut self, request: &WriterRequest) -> Result<WriterAnswer, String> {
        let text = serde_json::to_string(request).map_err(|e| e.to_string())?;
        writeln!(self.to, "{text}").map_err(|e| format!("asking the writer: {e}"))?;
        let mut line = String::new();
        self.from
            .read_line(&mut line)
            .map_err(|e| format!("reading the writer: {e}"))?;
        serde_json::from_str(&line).map_err(|e| format!("writer answered {line:?}: {e}"))
    }

    /// Stops the writer and reaps it; only its parent, the first caller
    /// process, may call this.
    fn finish(&mut self) {
        let text = serde_json::to_string(&WriterRequest::Quit).unwrap_or_default();
        let _ = writeln!(self.to, "{text}");
        let _ = process::wait(self.pid).map(process::Exit::status);
    }

    fn write(&mut self, file: &str, text: String) -> Result<(), Errno> {
        let pid = host_pid();
        let request = WriterRequest::Write {
            pid,
            file: file.to_owned(),
            text,
        };
        match self.ask(&request) {
            Ok(a) => a.errno.map_or(Ok(()), Err),
            Err(_) => Err(Errno::EIO),
        }
    }
}

/// This process's pid in the host pid namespace (the mounted `/proc` is the
/// host's in every mount namespace of the world).
fn host_pid() -> i32 {
    fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

fn run_caller(input: &ChildInput, paths: &Paths) -> Result<(), String> {
    if input.caller == Caller::Rootless {
        host::become_user(ROOTLESS, ROOTLESS).map_err(|e| format!("become_user: {e}"))?;
    }
    linux::set_dumpable(true).map_err(|e| e.to_string())?;
    let (req_r, req_w) = process::pipe().map_err(|e| e.to_string())?;
    let (ans_r, ans_w) = process::pipe().map_err(|e| e.to_string())?;
    let writer_pid = host::fork_with(move || writer_main(req_r, ans_w))
        .map_err(|e| format!("fork of the writer: {e}"))?;
    let mut writer = Writer {
        pid: writer_pid,
        to: req_w,
        from: BufReader::new(ans_r),
    };
    let first = host_pid();
    let result = run_ops(input, paths, &mut writer, first);
    if host_pid() == first {
        writer.finish();
    }
    result
}

/// The caller writes `/proc/self/<file>` in one write(2).
fn write_own(file: &str, text: &str) -> Result<(), Errno> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/{file}"))
        .map_err(|e| Errno::of_io(&e).unwrap_or(Errno::EIO))?;
    match f.write(text.as_bytes()) {
        Ok(n) if n == text.len() => Ok(()),
        // A short write is not an answer the model gives.
        Ok(_) => Err(Errno::EIO),
        Err(e) => Err(Errno::of_io(&e).unwrap_or(Errno::EIO)),
    }
}

fn run_ops(
    input: &ChildInput,
    paths: &Paths,
    writer: &mut Writer,
    first: i32,
) -> Result<(), String> {
    let baseline = host::open_fds().map_err(|e| e.to_string())?.len();
    let mut fds: Fds<OwnedFd> = Fds::new();
    // One fd on every namespace the caller has been in, so none is freed
    // and its inode number reused for a later one.
    let mut keep: Vec<File> = Vec::new();
    let mut kept: BTreeSet<u64> = BTreeSet::new();
    for op in &input.ops {
        let result = match op {
            Op::Open(OpTarget::Pidfd(i)) | Op::PidfdOpen(i) => Linux
                .pidfd_open(paths.pids[*i])
                .map(|fd| fds.push(OpTarget::Pidfd(*i), fd)),
            Op::Open(t) => {
                let path = match *t {
                    OpTarget::World(i) => paths.world[i].clone(),
                    OpTarget::Regular => paths.regular.clone(),
                    OpTarget::Missing => paths.missing.clone(),
                    OpTarget::ProcSelf(k) => format!("/proc/self/ns/{}", k.proc_name()).into(),
                    OpTarget::ForChildren(k) => {
                        format!("/proc/self/ns/{}", k.proc_name_for_children()).into()
                    }
                    OpTarget::Pidfd(_) => unreachable!("opened by pidfd_open above"),
                };
                Linux.open_ns(&path).map(|fd| fds.push(*t, fd))
            }
            Op::Close(t) => {
                if let Some(fd) = fds.take(*t) {
                    Linux.close(fd);
                }
                Ok(())
            }
            Op::Setns(t, k) => match fds.get(*t) {
                Some(fd) => Linux.setns(fd, *k),
                None => Err(Errno::EBADF),
            },
            Op::SetnsPidfd(t, kinds) => match fds.get(*t) {
                Some(fd) => Linux.setns_pidfd(fd, *kinds),
                None => Err(Errno::EBADF),
            },
            Op::Unshare(kinds) => Linux.unshare(kinds.iter().copied().collect::<KindSet>()),
            Op::Fork => match Linux.fork() {
                Ok(Forked::Parent { child }) => {
                    let code = process::wait(child).map(process::Exit::status).unwrap_or(1);
                    if host_pid() == first {
                        writer.finish();
                    }
                    process::exit_now(code)
                }
                Ok(Forked::Child) => Ok(()),
                Err(e) => Err(e),
            },
            Op::TimeOffsets(o) => Linux.write_time_offsets(o),
            Op::UidMap(l) => writer.write("uid_map", id_map_text(l)),
            Op::GidMap(l) => writer.write("gid_map", id_map_text(l)),
            Op::OwnUidMap(l) => write_own("uid_map", &id_map_text(l)),
            Op::OwnGidMap(l) => write_own("gid_map", &id_map_text(l)),
            Op::SetgroupsDeny => writer.write("setgroups", "deny".to_owned()),
            Op::SetRootIds => Linux.set_root_ids(),
            Op::SpawnThread => std::thread::Builder::new()
                .spawn(|| loop {
                    std::thread::sleep(Duration::from_secs(3600));
                })
                .map(drop)
                // pthread_create's errno (EAGAIN, EINVAL); the model
                // never answers EIO, so anything else fails the comparison.
                .map_err(|e| Errno::of_io(&e).unwrap_or(Errno::EIO)),
        };
        // The model has no dumpable flag: a process that changed its ids is
        // kept dumpable, so its /proc files stay its own (as `realize`
        // and the Linux backend's time offsets do).
        let _ = linux::set_dumpable(true);
        let mut ns = Vec::with_capacity(10);
        let entries = Kind::ALL
            .iter()
            .map(|k| k.proc_name())
            .chain(["pid_for_children", "time_for_children"]);
        for entry in entries {
            let path = format!("/proc/self/ns/{entry}");
            let f = match File::open(&path) {
                Ok(f) => f,
                // pid_for_children of a pid namespace without an init yet.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    ns.push(None);
                    continue;
                }
                Err(e) => return Err(format!("open {path}: {e}")),
            };
            let ino = f.metadata().map_err(|e| e.to_string())?.ino();
            if kept.insert(ino) {
                keep.push(f);
            }
            ns.push(Some(ino));
        }
        let open = host::open_fds().map_err(|e| e.to_string())?.len();
        let status = writer.ask(&WriterRequest::Status { pid: host_pid() })?;
        let state = KernelState {
            ns,
            fds: open.saturating_sub(baseline + keep.len()),
            threads: linux::thread_count().map_err(|e| e.to_string())?,
            euid: status.euid,
            egid: status.egid,
        };
        say(&ChildLine::Step {
            result: result.err(),
            state,
        });
    }
    say(&ChildLine::Done);
    Ok(())
}
