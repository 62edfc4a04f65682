//! Generators for property tests, fuzzing and other crates (feature `testing`).
//!
//! The strategies produce *raw* inputs (type names as strings, paths as
//! written) so that every rule of DESIGN §3 can be broken, not just the
//! shapes validation lets through.

use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::prelude::*;
use proptest::sample::select;

use nsapply::config::{IdMapping, NsConfig, RawLinux, RawNamespace, RawTimeOffset};
use nsapply::error::Errno;
use nsapply::kind::{Kind, KindSet};
use nsapply::model::{
    CallOp, CallerSpec, Fault, FaultAt, FaultScript, FileSpec, NsSpec, ProcessSpec, ProcessState,
    World,
};

/// The join path the generators use for `kind` (absolute).
pub fn join_path(kind: Kind) -> PathBuf {
    PathBuf::from(format!("/run/nsapply/{}", kind.spec_name()))
}

/// What a config does with one kind: the generators' and the fuzz inputs'
/// ([`crate::fuzzing`]) choice per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, arbitrary::Arbitrary)]
pub enum Pick {
    /// Not in `linux.namespaces`.
    Absent,
    /// Created (no path).
    Create,
    /// Joined by path.
    Join,
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![2 => Just(Pick::Absent), 3 => Just(Pick::Create), 2 => Just(Pick::Join)]
}

/// Type names that are not one of the eight (aliases other tools accept
/// included: the spec enum is the contract).
pub const UNKNOWN_TYPES: [&str; 6] = ["net", "mnt", "bogus", "", "User", "time_for_children"];

fn mappings() -> impl Strategy<Value = Option<Vec<IdMapping>>> {
    let line = (
        0u32..2,
        prop_oneof![Just(0u32), Just(1000), Just(100_000), Just(65534)],
        1u32..70_000,
    )
        .prop_map(|(c, h, size)| IdMapping {
            container_id: c * 1000,
            host_id: h,
            size,
        });
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(Vec::new())),
        3 => proptest::collection::vec(line, 1..3).prop_map(Some),
    ]
}

fn time_offsets() -> impl Strategy<Value = Option<BTreeMap<String, RawTimeOffset>>> {
    let clock = prop_oneof![
        4 => Just("monotonic".to_owned()),
        4 => Just("boottime".to_owned()),
        1 => Just("realtime".to_owned()),
        1 => Just("MONOTONIC".to_owned()),
    ];
    let nanos = prop_oneof![
        4 => 0u32..=999_999_999,
        1 => Just(999_999_999u32),
        1 => Just(1_000_000_000u32),
        1 => Just(u32::MAX),
    ];
    // Within a day either way (fits the default world's clocks or not),
    // the edge of what any clock can take (±KTIME_SEC_MAX / 2), and past it.
    let edge = nsapply::config::MAX_OFFSET_SECS;
    let secs = prop_oneof![
        Just(0i64),
        -86_400i64..86_400,
        Just(edge),
        Just(-edge),
        Just(edge + 1),
        Just(i64::MAX)
    ];
    let offset = (secs, nanos).prop_map(|(secs, nanosecs)| RawTimeOffset { secs, nanosecs });
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(BTreeMap::new())),
        3 => proptest::collection::btree_map(clock, offset, 1..3).prop_map(Some),
    ]
}

/// Mutations that break one rule of DESIGN §3 in the namespaces array.
#[derive(Clone, Debug)]
enum Breakage {
    None,
    Duplicate { from: usize, join: bool },
    Relative { at: usize },
    Unknown { at: usize, name: &'static str },
}

/// `linux.rootfsPropagation`: mostly absent; a valid name, the empty
/// string (unset), or a name that is not one.
fn rootfs_propagation() -> impl Strategy<Value = Option<String>> {
    let names: Vec<String> = nsapply::config::Propagation::ALL
        .iter()
        .map(|p| p.name().to_owned())
        .collect();
    prop_oneof![
        6 => Just(None),
        3 => select(names).prop_map(Some),
        1 => Just(Some(String::new())),
        1 => Just(Some("sideways".to_owned())),
    ]
}

fn breakage() -> impl Strategy<Value = Breakage> {
    prop_oneof![
        6 => Just(Breakage::None),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(from, join)| Breakage::Duplicate { from, join }),
        1 => any::<usize>().prop_map(|at| Breakage::Relative { at }),
        1 => (any::<usize>(), select(UNKNOWN_TYPES.to_vec())).prop_map(|(at, name)| Breakage::Unknown { at, name }),
    ]
}

/// Arbitrary `linux` sections: any subset of the eight kinds, each created
/// or joined by path, in any array order, sometimes with duplicates,
/// relative paths, unknown types, uid/gid mappings present or not, time
/// offsets valid or not, the user namespace joined or created.
pub fn raw_linux() -> impl Strategy<Value = RawLinux> {
    (
        proptest::array::uniform8(pick()),
        any::<u64>(),
        breakage(),
        mappings(),
        mappings(),
        time_offsets(),
        rootfs_propagation(),
    )
        .prop_map(
            |(picks, shuffle_seed, breakage, uid, gid, offsets, propagation)| {
                let mut namespaces: Vec<RawNamespace> = Kind::ALL
                    .into_iter()
                    .zip(picks)
                    .filter(|(_, p)| *p != Pick::Absent)
                    .map(|(k, p)| RawNamespace {
                        type_name: k.spec_name().to_owned(),
                        path: (p == Pick::Join).then(|| join_path(k)),
                    })
                    .collect();
                shuffle(&mut namespaces, shuffle_seed);
                let n = namespaces.len();
                match breakage {
                    Breakage::None => {}
                    Breakage::Duplicate { from, join } if n > 0 => {
                        let mut dup = namespaces[from % n].clone();
                        if let Ok(k) = dup.type_name.parse::<Kind>() {
                            dup.path = join.then(|| join_path(k));
                        }
                        let at = (from / 7) % (n + 1);
                        namespaces.insert(at, dup);
                    }
                    Breakage::Relative { at } if n > 0 => {
                        let e = &mut namespaces[at % n];
                        e.path = Some(PathBuf::from(format!("run/nsapply/{}", e.type_name)));
                    }
                    Breakage::Unknown { at, name } => {
                        namespaces.insert(
                            at % (n + 1),
                            RawNamespace {
                                type_name: name.to_owned(),
                                path: None,
                            },
                        );
                    }
                    _ => {}
                }
                RawLinux {
                    namespaces,
                    uid_mappings: uid,
                    gid_mappings: gid,
                    time_offsets: offsets,
                    rootfs_propagation: propagation,
                }
            },
        )
}

/// Arbitrary `linux` sections that pass validation: like [`raw_linux`], with
/// the rules of DESIGN §3 repaired (mappings exactly when a user namespace
/// is created, offsets only with a new time namespace).
pub fn valid_raw_linux() -> impl Strategy<Value = RawLinux> {
    raw_linux().prop_map(|mut raw| {
        let mut seen = KindSet::EMPTY;
        raw.namespaces
            .retain(|ns| match ns.type_name.parse::<Kind>() {
                Ok(k) if !seen.contains(k) && ns.path.as_ref().is_none_or(|p| p.is_absolute()) => {
                    seen.insert(k);
                    true
                }
                _ => false,
            });
        let find = |k: Kind| {
            raw.namespaces
                .iter()
                .find(|ns| ns.type_name == k.spec_name())
        };
        let user_created = find(Kind::User).is_some_and(|ns| ns.path.is_none());
        let time_created = find(Kind::Time).is_some_and(|ns| ns.path.is_none());
        let mount_created = find(Kind::Mount).is_some_and(|ns| ns.path.is_none());
        raw.rootfs_propagation = raw
            .rootfs_propagation
            .take()
            .filter(|p| mount_created && p.parse::<nsapply::config::Propagation>().is_ok());
        let line = |h| {
            vec![IdMapping {
                container_id: 0,
                host_id: h,
                size: 65536,
            }]
        };
        if user_created {
            raw.uid_mappings = raw
                .uid_mappings
                .filter(|v| !v.is_empty())
                .or_else(|| Some(line(100_000)));
            raw.gid_mappings = raw
                .gid_mappings
                .filter(|v| !v.is_empty())
                .or_else(|| Some(line(100_000)));
        } else {
            raw.uid_mappings = None;
            raw.gid_mappings = None;
        }
        raw.time_offsets = raw.time_offsets.filter(|_| time_created).map(|m| {
            m.into_iter()
                .filter(|(c, o)| {
                    (c == "monotonic" || c == "boottime")
                        && o.nanosecs <= 999_999_999
                        && o.secs.unsigned_abs() <= nsapply::config::MAX_OFFSET_SECS.unsigned_abs()
                })
                .collect()
        });
        raw
    })
}

/// Arbitrary phase splits: any set of kinds.
pub fn kind_set() -> impl Strategy<Value = KindSet> {
    any::<u8>().prop_map(KindSet::from_bits)
}

/// Fisher–Yates with a small deterministic generator (xorshift), so the
/// order is part of the generated value (and shrinks with it); shared with
/// the fuzz input decoders.
pub(crate) fn shuffle<T>(v: &mut [T], mut seed: u64) {
    // xorshift stays at 0 from 0.
    seed |= 1;
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let j = (seed % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// What stands at a join path in a generated world.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathTarget {
    /// A namespace of the right kind owned by the host user namespace.
    HostOwned,
    /// A namespace of the right kind owned by a child user namespace the
    /// caller created (for a pid namespace: a child of the host one).
    ChildOwned,
    /// A namespace of the right kind owned by the user namespace the config
    /// joins by path (the deferral case); host-owned when none is joined.
    JoinedUserOwned,
    /// The caller's own host namespace of that kind (for pid: its active
    /// pid namespace; for user: joining it is EINVAL).
    CallersOwn,
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// Nothing (ENOENT).
    Missing,
    /// A namespace of another kind.
    WrongKind,
}

fn path_target() -> impl Strategy<Value = PathTarget> {
    prop_oneof![
        6 => Just(PathTarget::HostOwned),
        3 => Just(PathTarget::ChildOwned),
        4 => Just(PathTarget::JoinedUserOwned),
        1 => Just(PathTarget::CallersOwn),
        1 => Just(PathTarget::Regular),
        1 => Just(PathTarget::Directory),
        1 => Just(PathTarget::Missing),
        1 => Just(PathTarget::WrongKind),
    ]
}

/// The name of the user namespace a generated config joins by path.
pub const JOINED_USER: &str = "joined-user";
/// The name of the child user namespace generated worlds hold.
pub const CHILD_USER: &str = "child-user";

/// Builds the world a config is run in: the caller (`uid` 0 is root), its
/// thread count, and for each joined kind what stands at its path.
pub fn build_world(cfg: &NsConfig, uid: u32, threads: usize, targets: &[PathTarget; 8]) -> World {
    let caller = if uid == 0 {
        CallerSpec::root()
    } else {
        CallerSpec::unprivileged(uid, uid)
    };
    let own_map = |host, size| {
        vec![IdMapping {
            container_id: 0,
            host_id: host,
            size,
        }]
    };
    let (host_id, size) = if uid == 0 {
        (100_000, 65_536)
    } else {
        (uid, 1)
    };
    let mut world = World::new()
        .caller(caller.threads(threads.max(1)))
        .namespace(
            NsSpec::new(CHILD_USER, Kind::User)
                .created_by(uid)
                .maps(own_map(host_id, size), own_map(host_id, size)),
        );
    // The joined user namespace exists only when its path leads to a user
    // namespace that the world creates under that name.
    let user_joined = cfg.joins(Kind::User)
        && matches!(
            targets[Kind::User.index()],
            PathTarget::HostOwned | PathTarget::ChildOwned | PathTarget::JoinedUserOwned
        );
    for kind in Kind::ALL {
        let Some(path) = cfg.join_path(kind) else {
            continue;
        };
        let path = path.as_path().to_owned();
        // Made only for the entries that have one.
        let name = || format!("target-{}", kind.spec_name());
        let target = targets[kind.index()];
        world = match (kind, target) {
            (_, PathTarget::Regular) => world.file(path, FileSpec::Regular),
            (_, PathTarget::Directory) => world.file(path, FileSpec::Directory),
            (_, PathTarget::Missing) => world,
            (_, PathTarget::WrongKind) => {
                let other = Kind::ALL[(kind.index() + 3) % 8];
                world.namespace(NsSpec::new(name(), other).at(path))
            }
            (_, PathTarget::CallersOwn) => {
                world.namespace(NsSpec::new(format!("host:{}", kind.spec_name()), kind).at(path))
            }
            (Kind::User, t) => {
                // The joined user namespace: made by the caller (rootless
                // case, it may join and own) or by the host root.
                let creator = if t == PathTarget::HostOwned { 0 } else { uid };
                let (h, s) = if creator == 0 {
                    (100_000, 65_536)
                } else {
                    (uid, 1)
                };
                world.namespace(
                    NsSpec::new(JOINED_USER, Kind::User)
                        .created_by(creator)
                        .maps(own_map(h, s), own_map(h, s))
                        .at(path),
                )
            }
            (_, t) => {
                let owner = match t {
                    PathTarget::ChildOwned => CHILD_USER,
                    PathTarget::JoinedUserOwned if user_joined => JOINED_USER,
                    _ => "host:user",
                };
                let mut ns = NsSpec::new(name(), kind).owned_by(owner).at(path);
                if kind == Kind::Time {
                    ns = ns.entered(true);
                }
                world.namespace(ns)
            }
        };
    }
    world
}

/// Arbitrary worlds for a config: the caller root or not, single- or
/// multi-threaded, and for each joined path a namespace owned by the host,
/// a child user namespace or the joined user namespace, or a regular file,
/// a directory, nothing, or a namespace of the wrong kind.
pub fn world_for(cfg: &NsConfig) -> impl Strategy<Value = World> {
    let cfg = cfg.clone();
    (
        prop_oneof![3 => Just(0u32), 1 => Just(1000u32)],
        prop_oneof![8 => Just(1usize), 1 => 2usize..5],
        proptest::array::uniform8(path_target()),
    )
        .prop_map(move |(uid, threads, targets)| build_world(&cfg, uid, threads, &targets))
}

/// The errnos the kernel can give for the calls of a plan.
pub const ERRNOS: [Errno; 9] = [
    Errno::EPERM,
    Errno::EINVAL,
    Errno::ENOENT,
    Errno::ENOTTY,
    Errno::EBADF,
    Errno::ENOMEM,
    Errno::ENOSPC,
    Errno::EUSERS,
    Errno::EACCES,
];

/// Arbitrary fault scripts for a plan of `calls` fallible calls: none, one
/// call by position, or every call of one op (and kind), failing with any
/// errno of [`ERRNOS`].
pub fn fault_script(calls: usize) -> impl Strategy<Value = FaultScript> {
    let errno = select(ERRNOS.to_vec());
    // Every op a fault can hit: close never fails (its errors are not reported).
    let op = select(
        CallOp::ALL
            .into_iter()
            .filter(|op| *op != CallOp::Close)
            .collect::<Vec<_>>(),
    );
    let kind = proptest::option::of(select(Kind::ALL.to_vec()));
    let at = prop_oneof![
        3 => (1..calls.max(1) + 2).prop_map(FaultAt::Position),
        2 => (op, kind).prop_map(|(op, kind)| FaultAt::Call { op, kind }),
    ];
    prop_oneof![
        1 => Just(FaultScript::new()),
        4 => (at, errno).prop_map(|(at, errno)| FaultScript { faults: vec![Fault { at, errno }] }),
    ]
}

/// The world's pid of a generated exec's target.
pub const EXEC_TARGET: i32 = 4242;

/// Where a generated exec target has its namespace of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetNs {
    /// The caller's (the host's).
    Host,
    /// A namespace of its own, owned by the host user namespace.
    HostOwned,
    /// A namespace of its own, owned by the caller's child user namespace
    /// ([`CHILD_USER`], a container's).
    ChildOwned,
}

/// An exec scenario: the world (its caller, a child user namespace made
/// by the caller, and the target [`EXEC_TARGET`] with a namespace per kind
/// from [`TargetNs`]), the kinds asked for (`None`: those that differ),
/// and whether the pidfd join is tried.
#[derive(Clone, Debug)]
pub struct ExecScenario {
    /// The world.
    pub world: World,
    /// `--kinds`, or `None`.
    pub kinds: Option<KindSet>,
    /// Whether the pidfd join is tried first.
    pub pidfd: bool,
}

impl ExecScenario {
    /// The exec plan, as `nsapply exec` makes it on the model: the target
    /// found by [`nsapply::model::Model::exec_target`]; one the caller may
    /// not look at (or one that is gone) is planned for the kinds asked,
    /// or all eight, so the join itself meets it.
    pub fn plan(&self) -> nsapply::Plan {
        use nsapply::exec::ExecTarget;
        let model =
            nsapply::model::Model::new(&self.world).expect("generated worlds are consistent");
        let target = model
            .exec_target(EXEC_TARGET, self.kinds)
            .unwrap_or_else(|_| ExecTarget::new(EXEC_TARGET, self.kinds.unwrap_or(KindSet::ALL)));
        ExecTarget {
            pidfd: self.pidfd,
            ..target
        }
        .plan()
        .expect("a positive pid")
    }
}

/// Arbitrary exec scenarios (see [`ExecScenario`]).
pub fn exec_scenario() -> impl Strategy<Value = ExecScenario> {
    let target_ns = prop_oneof![
        3 => Just(TargetNs::Host),
        2 => Just(TargetNs::HostOwned),
        3 => Just(TargetNs::ChildOwned),
    ];
    let state = prop_oneof![
        8 => Just(ProcessState::Running),
        1 => Just(ProcessState::Exited),
        1 => Just(ProcessState::Reaped),
    ];
    (
        prop_oneof![3 => Just(0u32), 2 => Just(1000u32)],
        prop_oneof![8 => Just(1usize), 1 => 2usize..5],
        proptest::array::uniform8(target_ns),
        state,
        prop_oneof![2 => Just(None), 1 => kind_set().prop_map(Some)],
        any::<bool>(),
        prop_oneof![4 => Just(None), 1 => Just(Some(false))],
        prop_oneof![3 => Just(None), 1 => Just(Some(0u32))],
    )
        .prop_map(
            |(uid, threads, places, state, kinds, pidfd, pidfd_setns, other_uid)| ExecScenario {
                world: exec_world(uid, threads, places, state, other_uid, pidfd_setns),
                kinds,
                pidfd,
            },
        )
}

/// The world of an exec scenario: the caller (`uid` 0 is root, with
/// `threads`), the child user namespace [`CHILD_USER`] it made, and the
/// target [`EXEC_TARGET`] in `state`, with its namespace of each kind as
/// `places` says, its uid root's of [`CHILD_USER`] when it is in it, else
/// the caller's (`other_uid` instead when given); `pidfd_setns` as
/// [`World::pidfd_setns`].
pub fn exec_world(
    uid: u32,
    threads: usize,
    places: [TargetNs; 8],
    state: ProcessState,
    other_uid: Option<u32>,
    pidfd_setns: Option<bool>,
) -> World {
    let caller = if uid == 0 {
        CallerSpec::root()
    } else {
        CallerSpec::unprivileged(uid, uid)
    };
    let (host_id, size) = if uid == 0 {
        (100_000, 65_536)
    } else {
        (uid, 1)
    };
    let map = vec![IdMapping {
        container_id: 0,
        host_id,
        size,
    }];
    let mut world = World::new().caller(caller.threads(threads)).namespace(
        NsSpec::new(CHILD_USER, Kind::User)
            .created_by(uid)
            .maps(map.clone(), map),
    );
    let in_child = places[Kind::User.index()] != TargetNs::Host;
    let target_uid = other_uid.unwrap_or(if in_child { host_id } else { uid });
    let mut process = ProcessSpec::new(EXEC_TARGET).uid(target_uid).state(state);
    if in_child {
        process = process.in_ns(Kind::User, CHILD_USER);
    }
    for kind in Kind::ALL.into_iter().filter(|k| *k != Kind::User) {
        let owner = match places[kind.index()] {
            TargetNs::Host => continue,
            TargetNs::HostOwned => "host:user",
            TargetNs::ChildOwned => CHILD_USER,
        };
        let name = format!("target-{}", kind.spec_name());
        world = world.namespace(NsSpec::new(name.clone(), kind).owned_by(owner));
        process = process.in_ns(kind, name);
    }
    world.pidfd_setns = pidfd_setns;
    world.process(process)
}
