//! The plan: where the order is decided (DESIGN §4).
//!
//! [`plan`] is pure and deterministic: one validated config, one ordered
//! list of [`Step`]s. The order, and why:
//!
//! 1. **Open every path first**, canonical order: after joining the mount or
//!    user namespace a path may no longer resolve (runc's reason), and a
//!    wrong path fails before any namespace changes.
//! 2. **Join pass 1**: every joined non-user namespace, while the process
//!    still has its original privileges (a host-owned network namespace
//!    cannot be joined from inside a new user namespace).
//! 3. **User namespace**: joined, or created *alone* so every namespace
//!    created after it is owned by it, then the `id-mapping` sync point,
//!    then uid/gid 0.
//! 4. **Join pass 2** right after, when the user namespace is joined by
//!    path: the joins pass 1 deferred with EPERM are retried from inside
//!    it (a step of the plan; what it retries is decided by pass 1).
//! 5. **Create** the rest, one kind per unshare so an error names its kind;
//!    `cgroup-placed` right before cgroup (its root is the current cgroup);
//!    right after unshare(mount), `/` gets its propagation (`rslave` unless
//!    `linux.rootfsPropagation` says otherwise), so nothing mounted in the
//!    container reaches the host (a new mount namespace starts as a copy
//!    whose shared mounts still share with the host's);
//!    time offsets right after unshare(time), before any child exists.
//! 6. **Close** every fd before the fork, so no child inherits one.
//! 7. **Fork** when pid or time is involved: they apply to children only.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::{AbsPath, Action, IdMapping, NsConfig, Propagation, TimeOffset};
use crate::kind::{Kind, KindSet};

/// The two stages of the user-namespace and cgroup hand-off that a caller
/// (the runtime's parent process) performs (DESIGN §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncPoint {
    /// After `unshare(CLONE_NEWUSER)`: the parent writes setgroups, uid_map, gid_map.
    IdMapping,
    /// Before `unshare(CLONE_NEWCGROUP)`: the parent has placed the process in its cgroup.
    CgroupPlaced,
}

impl SyncPoint {
    /// The stable name (`"id-mapping"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            SyncPoint::IdMapping => "id-mapping",
            SyncPoint::CgroupPlaced => "cgroup-placed",
        }
    }

    /// The kind the sync point belongs to (for phase filtering).
    pub const fn kind(self) -> Kind {
        match self {
            SyncPoint::IdMapping => Kind::User,
            SyncPoint::CgroupPlaced => Kind::Cgroup,
        }
    }
}

impl fmt::Display for SyncPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Step {
    /// Open the path and check its namespace type.
    Open {
        /// The kind the config asks for.
        #[serde(rename = "type")]
        kind: Kind,
        /// The path.
        path: AbsPath,
    },
    /// Join the namespace opened from `path`.
    Setns {
        /// The kind.
        #[serde(rename = "type")]
        kind: Kind,
        /// The path.
        path: AbsPath,
    },
    /// Create a new namespace of one kind.
    Unshare {
        /// The kind.
        #[serde(rename = "type")]
        kind: Kind,
    },
    /// Hand over to the caller (parent) at a sync point.
    Sync {
        /// Which one.
        point: SyncPoint,
    },
    /// Become uid/gid 0 in the user namespace.
    Setid,
    /// Join pass 2: retry, now inside the user namespace, each join that
    /// pass 1 deferred with EPERM (the namespace may be owned by the user
    /// namespace, which the caller could not act in before). Planned right
    /// after `setid` when the user namespace is joined by path, the only
    /// plan in which a join is deferred; apply retries what was deferred,
    /// which may be nothing.
    DeferredJoins,
    /// Set the propagation of `/` (recursively or not) in the new mount
    /// namespace: `mount(NULL, "/", NULL, MS_<type>[|MS_REC], NULL)`.
    Propagation {
        /// The propagation.
        propagation: Propagation,
    },
    /// Write the time offsets of the new time namespace.
    TimeOffsets {
        /// The offsets.
        offsets: Vec<TimeOffset>,
    },
    /// Close the fd opened from `path`.
    Close {
        /// The kind.
        #[serde(rename = "type")]
        kind: Kind,
        /// The path.
        path: AbsPath,
    },
    /// Fork: the child is the container process.
    Fork,
    /// Join the namespaces of `kinds` of process `pid` at once, through a
    /// pidfd (`pidfd_open`, `setns(pidfd, flags)`, close; Linux 5.8, DESIGN
    /// §9): all or none. When it succeeds, the per-namespace steps that
    /// follow (open, setns, deferred joins, close of `/proc/<pid>/ns/*`)
    /// have nothing left to do and are skipped; when the kernel refuses a
    /// pidfd there (EINVAL: before 5.8; or no pidfds at all, ENOSYS) they
    /// do the joins.
    PidfdJoin {
        /// The process.
        pid: i32,
        /// The kinds joined.
        #[serde(rename = "types")]
        kinds: KindSet,
    },
}

impl Step {
    /// The kind the step goes with for phase filtering (none for fork).
    pub fn kind(&self) -> Option<Kind> {
        match self {
            Step::Open { kind, .. }
            | Step::Setns { kind, .. }
            | Step::Unshare { kind }
            | Step::Close { kind, .. } => Some(*kind),
            Step::Sync { point } => Some(point.kind()),
            Step::Setid | Step::DeferredJoins => Some(Kind::User),
            Step::Propagation { .. } => Some(Kind::Mount),
            Step::TimeOffsets { .. } => Some(Kind::Time),
            Step::Fork | Step::PidfdJoin { .. } => None,
        }
    }

    /// Whether the step is one of the per-namespace joins that a pidfd
    /// join before it makes unneeded (see [`Step::PidfdJoin`]).
    pub fn is_per_namespace_join(&self) -> bool {
        matches!(
            self,
            Step::Open { .. } | Step::Setns { .. } | Step::DeferredJoins | Step::Close { .. }
        )
    }
}

/// An ordered list of steps, plus the id mappings the `id-mapping` sync
/// point hands to the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plan {
    steps: Vec<Step>,
    /// For an exec plan (`crate::exec`): the process whose namespaces it
    /// joins, so a `/proc/<pid>/ns` gone missing is that process's exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exec: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    uid_mappings: Vec<IdMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    gid_mappings: Vec<IdMapping>,
}

/// Builds the plan for a validated config (DESIGN §4). Pure: the same config
/// always gives the same plan.
///
/// ```
/// use nsapply::{plan, NsConfig, Step, Kind};
/// let cfg = NsConfig::from_json(r#"{"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/run/netns/a"}]}}"#).unwrap();
/// let p = plan(&cfg);
/// assert!(matches!(p.steps()[0], Step::Open { kind: Kind::Network, .. }));
/// assert_eq!(p.steps().last(), Some(&Step::Fork));
/// ```
pub fn plan(cfg: &NsConfig) -> Plan {
    // Each kind's entry read once; the passes below then visit only the
    // kinds joined or created, not all eight each time.
    let (mut joins, mut creates) = (KindSet::EMPTY, KindSet::EMPTY);
    let mut paths: [Option<&AbsPath>; 8] = [None; 8];
    for kind in Kind::ALL {
        match cfg.entry(kind).map(|e| &e.action) {
            Some(Action::Join(path)) => {
                joins.insert(kind);
                paths[kind.index()] = Some(path);
            }
            Some(Action::Create) => creates.insert(kind),
            None => {}
        }
    }
    let joined = || members(joins).filter_map(|k| paths[k.index()].map(|p| (k, p)));
    let mut steps = Vec::with_capacity(24);

    for (kind, path) in joined() {
        steps.push(Step::Open {
            kind,
            path: path.clone(),
        });
    }
    for (kind, path) in joined().filter(|(k, _)| *k != Kind::User) {
        steps.push(Step::Setns {
            kind,
            path: path.clone(),
        });
    }
    if let Some(path) = paths[Kind::User.index()] {
        steps.push(Step::Setns {
            kind: Kind::User,
            path: path.clone(),
        });
        steps.push(Step::Setid);
        steps.push(Step::DeferredJoins);
    } else if cfg.creates(Kind::User) {
        steps.push(Step::Unshare { kind: Kind::User });
        steps.push(Step::Sync {
            point: SyncPoint::IdMapping,
        });
        steps.push(Step::Setid);
    }
    let mut others = creates;
    others.remove(Kind::User);
    for kind in members(others) {
        if kind == Kind::Cgroup {
            steps.push(Step::Sync {
                point: SyncPoint::CgroupPlaced,
            });
        }
        steps.push(Step::Unshare { kind });
        if let (Kind::Mount, Some(propagation)) = (kind, cfg.propagation()) {
            steps.push(Step::Propagation { propagation });
        }
        if kind == Kind::Time && !cfg.time_offsets().is_empty() {
            steps.push(Step::TimeOffsets {
                offsets: cfg.time_offsets().to_vec(),
            });
        }
    }
    for (kind, path) in joined() {
        steps.push(Step::Close {
            kind,
            path: path.clone(),
        });
    }
    let named = joins.bits() | creates.bits();
    if named & (KindSet::one(Kind::Pid).bits() | KindSet::one(Kind::Time).bits()) != 0 {
        steps.push(Step::Fork);
    }

    let (uid_mappings, gid_mappings) = if cfg.creates(Kind::User) {
        (cfg.uid_mappings().to_vec(), cfg.gid_mappings().to_vec())
    } else {
        (Vec::new(), Vec::new())
    };
    Plan {
        steps,
        exec: None,
        uid_mappings,
        gid_mappings,
    }
}

/// The kinds of `set` in canonical order, found bit by bit, so a loop over
/// a few kinds takes a few turns ([`KindSet::iter`] tests all eight).
pub(crate) fn members(set: KindSet) -> impl Iterator<Item = Kind> {
    let mut bits = set.bits();
    std::iter::from_fn(move || {
        let index = bits.trailing_zeros() as usize;
        let kind = Kind::ALL.get(index).copied()?;
        bits &= bits - 1;
        Some(kind)
    })
}

impl Plan {
    /// The steps in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The process whose namespaces an exec plan joins.
    pub fn exec_target(&self) -> Option<i32> {
        self.exec
    }

    /// This plan as the join of process `pid`'s namespaces (`crate::exec`):
    /// `pidfd` first when given, the steps of this plan as its fallback.
    pub(crate) fn for_exec(mut self, pid: i32, pidfd: Option<KindSet>) -> Plan {
        if let Some(kinds) = pidfd {
            self.steps.insert(0, Step::PidfdJoin { pid, kinds });
        }
        self.exec = Some(pid);
        self
    }

    /// The uid mappings for the `id-mapping` sync point (empty unless the
    /// plan creates a user namespace).
    pub fn uid_mappings(&self) -> &[IdMapping] {
        &self.uid_mappings
    }

    /// The gid mappings for the `id-mapping` sync point.
    pub fn gid_mappings(&self) -> &[IdMapping] {
        &self.gid_mappings
    }

    /// The kinds that have at least one step in this plan.
    pub fn kinds(&self) -> KindSet {
        self.steps.iter().filter_map(Step::kind).collect()
    }

    /// Whether the plan joins a user namespace by path (what allows EPERM
    /// deferral in join pass 1).
    pub fn joins_user(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(
                s,
                Step::Setns {
                    kind: Kind::User,
                    ..
                }
            )
        })
    }

    /// The sub-plan for a phase: the steps of the kinds in `kinds`, in this
    /// plan's order, ending with fork exactly when it holds pid or time.
    ///
    /// Running `only(s)` and then `only(s.complement())` performs exactly
    /// this plan's steps (fork aside, compared as a multiset).
    ///
    /// ```
    /// use nsapply::{plan, NsConfig, KindSet, Step};
    /// let cfg = NsConfig::from_json(r#"{"linux":{"namespaces":[{"type":"pid"},{"type":"uts"}]}}"#).unwrap();
    /// let full = plan(&cfg);
    /// let first: KindSet = "user,pid,time".parse().unwrap();
    /// assert_eq!(full.only(first).steps().last(), Some(&Step::Fork));
    /// assert!(!full.only(first.complement()).steps().contains(&Step::Fork));
    /// ```
    #[must_use]
    pub fn only(&self, kinds: KindSet) -> Plan {
        // One allocation: the phase's steps are at most the plan's and a fork.
        let mut steps: Vec<Step> = Vec::with_capacity(self.steps.len() + 1);
        steps.extend(self.steps.iter().filter_map(|s| {
            match s {
                // The pidfd join of an exec plan keeps the phase's kinds.
                Step::PidfdJoin { pid, kinds: joined } => {
                    let kept = joined.intersection(kinds);
                    (!kept.is_empty()).then_some(Step::PidfdJoin {
                        pid: *pid,
                        kinds: kept,
                    })
                }
                s => s
                    .kind()
                    .is_some_and(|k| kinds.contains(k))
                    .then(|| s.clone()),
            }
        }));
        let held = steps.iter().filter_map(Step::kind).collect::<KindSet>();
        if held.contains(Kind::Pid) || held.contains(Kind::Time) {
            steps.push(Step::Fork);
        }
        let user = held.contains(Kind::User);
        Plan {
            steps,
            exec: self.exec,
            uid_mappings: if user {
                self.uid_mappings.clone()
            } else {
                Vec::new()
            },
            gid_mappings: if user {
                self.gid_mappings.clone()
            } else {
                Vec::new()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(json: &str) -> Plan {
        plan(&NsConfig::from_json(json).unwrap())
    }

    const MAPS: &str = r#""uidMappings":[{"containerID":0,"hostID":1000,"size":1}],"gidMappings":[{"containerID":0,"hostID":1000,"size":1}]"#;

    #[test]
    fn user_is_created_alone_after_joins_and_before_other_unshares() {
        let p = plan_of(&format!(
            r#"{{"linux":{{"namespaces":[{{"type":"mount"}},{{"type":"network","path":"/run/netns/a"}},{{"type":"user"}},{{"type":"pid"}}],{MAPS}}}}}"#
        ));
        let n = |k| AbsPath::new(k).unwrap();
        assert_eq!(
            p.steps(),
            [
                Step::Open {
                    kind: Kind::Network,
                    path: n("/run/netns/a")
                },
                Step::Setns {
                    kind: Kind::Network,
                    path: n("/run/netns/a")
                },
                Step::Unshare { kind: Kind::User },
                Step::Sync {
                    point: SyncPoint::IdMapping
                },
                Step::Setid,
                Step::Unshare { kind: Kind::Pid },
                Step::Unshare { kind: Kind::Mount },
                Step::Propagation {
                    propagation: Propagation::DEFAULT
                },
                Step::Close {
                    kind: Kind::Network,
                    path: n("/run/netns/a")
                },
                Step::Fork,
            ]
        );
        assert_eq!(p.uid_mappings().len(), 1);
    }

    #[test]
    fn cgroup_sync_precedes_cgroup_and_offsets_follow_time() {
        let p = plan_of(
            r#"{"linux":{"namespaces":[{"type":"time"},{"type":"cgroup"}],"timeOffsets":{"monotonic":{"secs":5}}}}"#,
        );
        assert!(matches!(
            p.steps(),
            [
                Step::Sync {
                    point: SyncPoint::CgroupPlaced
                },
                Step::Unshare { kind: Kind::Cgroup },
                Step::Unshare { kind: Kind::Time },
                Step::TimeOffsets { .. },
                Step::Fork
            ]
        ));
    }

    #[test]
    fn joined_user_comes_after_other_joins_and_no_fork_without_pid_or_time() {
        let p = plan_of(
            r#"{"linux":{"namespaces":[{"type":"user","path":"/u"},{"type":"network","path":"/n"},{"type":"uts"}]}}"#,
        );
        let ops: Vec<String> = p
            .expected_trace()
            .steps
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            ops,
            [
                "open    user     /u -> ok",
                "open    network  /n -> ok",
                "setns   network  /n -> ok",
                "setns   user     /u -> ok",
                "setid   user     uid=0 gid=0 -> ok",
                "pass 2  user     retry (nothing deferred)",
                "unshare uts      -> ok",
                "close   user     /u",
                "close   network  /n",
            ]
        );
        assert!(p.joins_user());
    }

    #[test]
    fn only_keeps_a_pidfd_join_with_the_kinds_asked_and_drops_it_without_any() {
        let kinds: KindSet = "network,uts".parse().unwrap();
        let p = crate::exec::ExecTarget::new(4242, kinds).plan().unwrap();
        let pidfd_kinds = |p: &Plan| {
            p.steps().iter().find_map(|s| match s {
                Step::PidfdJoin { kinds, .. } => Some(*kinds),
                _ => None,
            })
        };
        let net = KindSet::one(Kind::Network);
        assert_eq!(pidfd_kinds(&p), Some(kinds));
        assert_eq!(pidfd_kinds(&p.only(net)), Some(net));
        assert_eq!(pidfd_kinds(&p.only(KindSet::one(Kind::Ipc))), None);
    }

    #[test]
    fn phases_split_and_recombine() {
        let p = plan_of(&format!(
            r#"{{"linux":{{"namespaces":[{{"type":"user"}},{{"type":"pid"}},{{"type":"time"}},{{"type":"ipc","path":"/i"}},{{"type":"mount"}}],{MAPS}}}}}"#
        ));
        let a: KindSet = "user,pid,time".parse().unwrap();
        let (pa, pb) = (p.only(a), p.only(a.complement()));
        assert_eq!(pa.steps().last(), Some(&Step::Fork));
        assert!(!pb.steps().contains(&Step::Fork));
        let mut both: Vec<_> = pa.steps().iter().chain(pb.steps()).cloned().collect();
        let mut full = p.steps().to_vec();
        both.sort_by_key(|s| format!("{s:?}"));
        full.sort_by_key(|s| format!("{s:?}"));
        assert_eq!(both, full);
        assert!(pb.uid_mappings().is_empty());
        assert_eq!(pa.uid_mappings(), p.uid_mappings());
    }

    #[test]
    fn plan_round_trips_through_json() {
        let p = plan_of(
            r#"{"linux":{"namespaces":[{"type":"time"},{"type":"network","path":"/n"}],"timeOffsets":{"boottime":{"secs":-5,"nanosecs":3}}}}"#,
        );
        let back: Plan = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
