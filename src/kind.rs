//! The eight Linux namespace kinds and typed sets of them.
//!
//! [`Kind::ALL`] is the one list of kinds in the crate, in canonical order
//! (`user, pid, uts, ipc, network, cgroup, mount, time`, DESIGN §2). Every
//! per-kind fact (clone flag, `/proc/self/ns` name, OCI spec name) is an
//! exhaustive `match`, so adding a kind is a compile error everywhere it
//! matters instead of a hand-kept list that drifts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `CLONE_NEWTIME` from `<linux/sched.h>` (Linux 5.6); nix 0.32 lacks it, so
/// it comes from libc.
pub const CLONE_NEWTIME: i32 = libc::CLONE_NEWTIME;

/// One Linux namespace kind, as named by the OCI runtime-spec (`config-linux.md`).
///
/// The derived `Ord` is the canonical order used for plans, snapshots and ties.
///
/// ```
/// use nsapply::Kind;
/// assert_eq!(Kind::Network.spec_name(), "network");
/// assert_eq!(Kind::Network.proc_name(), "net");
/// assert_eq!("mount".parse::<Kind>().unwrap(), Kind::Mount);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// User namespace (`CLONE_NEWUSER`): owns every namespace created after it.
    User,
    /// PID namespace (`CLONE_NEWPID`): applies to children only.
    Pid,
    /// UTS namespace (`CLONE_NEWUTS`): hostname and NIS domain name.
    Uts,
    /// IPC namespace (`CLONE_NEWIPC`): System V IPC and POSIX message queues.
    Ipc,
    /// Network namespace (`CLONE_NEWNET`).
    Network,
    /// Cgroup namespace (`CLONE_NEWCGROUP`): its root is the caller's cgroup at unshare time.
    Cgroup,
    /// Mount namespace (`CLONE_NEWNS`): setns resets root and cwd.
    Mount,
    /// Time namespace (`CLONE_NEWTIME`, Linux 5.6): unshare applies to children only.
    Time,
}

impl Kind {
    /// Every kind once, in canonical order.
    pub const ALL: [Kind; 8] = [
        Kind::User,
        Kind::Pid,
        Kind::Uts,
        Kind::Ipc,
        Kind::Network,
        Kind::Cgroup,
        Kind::Mount,
        Kind::Time,
    ];

    /// Position in [`Kind::ALL`] (0..8).
    pub const fn index(self) -> usize {
        match self {
            Kind::User => 0,
            Kind::Pid => 1,
            Kind::Uts => 2,
            Kind::Ipc => 3,
            Kind::Network => 4,
            Kind::Cgroup => 5,
            Kind::Mount => 6,
            Kind::Time => 7,
        }
    }

    /// The `CLONE_NEW*` flag for unshare(2) and the `nstype` of setns(2).
    pub const fn clone_flag(self) -> i32 {
        match self {
            Kind::User => libc::CLONE_NEWUSER,
            Kind::Pid => libc::CLONE_NEWPID,
            Kind::Uts => libc::CLONE_NEWUTS,
            Kind::Ipc => libc::CLONE_NEWIPC,
            Kind::Network => libc::CLONE_NEWNET,
            Kind::Cgroup => libc::CLONE_NEWCGROUP,
            Kind::Mount => libc::CLONE_NEWNS,
            Kind::Time => CLONE_NEWTIME,
        }
    }

    /// The kind whose `CLONE_NEW*` flag is exactly `flag`, as `NS_GET_NSTYPE` returns it.
    pub fn from_clone_flag(flag: i32) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.clone_flag() == flag)
    }

    /// The file name under `/proc/self/ns/` (namespaces(7)).
    pub const fn proc_name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Pid => "pid",
            Kind::Uts => "uts",
            Kind::Ipc => "ipc",
            Kind::Network => "net",
            Kind::Cgroup => "cgroup",
            Kind::Mount => "mnt",
            Kind::Time => "time",
        }
    }

    /// The `/proc/self/ns/` entry that shows the namespace a *new child* gets.
    /// Differs from [`Kind::proc_name`] only for pid and time.
    pub const fn proc_name_for_children(self) -> &'static str {
        match self {
            Kind::Pid => "pid_for_children",
            Kind::Time => "time_for_children",
            other => other.proc_name(),
        }
    }

    /// The `type` string of `linux.namespaces` in config.json.
    pub const fn spec_name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Pid => "pid",
            Kind::Uts => "uts",
            Kind::Ipc => "ipc",
            Kind::Network => "network",
            Kind::Cgroup => "cgroup",
            Kind::Mount => "mount",
            Kind::Time => "time",
        }
    }

    /// The kind whose spec name is `name`. Only the runtime-spec's names are
    /// accepted ("network", not "net"): the spec enum is the contract.
    pub fn from_spec_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.spec_name() == name)
    }

    /// Whether unshare/setns of this kind changes only what children get
    /// (pid, time), so the plan must fork afterwards.
    pub const fn applies_to_children(self) -> bool {
        matches!(self, Kind::Pid | Kind::Time)
    }

    /// Whether setns(2) of this kind requires a single-threaded caller
    /// (user and mount fail with EINVAL, time with EUSERS).
    pub const fn setns_needs_single_thread(self) -> bool {
        matches!(self, Kind::User | Kind::Mount | Kind::Time)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.spec_name())
    }
}

/// Error of [`Kind::from_str`]: the name is not one of the eight spec names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown namespace type {0:?} (expected one of user, pid, uts, ipc, network, cgroup, mount, time)")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::from_spec_name(s).ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// A set of namespace kinds: the argument of unshare(2) and the selector of
/// a plan phase. It can hold nothing but namespace kinds, so no other clone
/// flag (such as `CLONE_FILES`, which breaks fd ownership) can reach unshare.
///
/// ```
/// use nsapply::{Kind, KindSet};
/// let set: KindSet = "user,pid,time".parse().unwrap();
/// assert!(set.contains(Kind::Pid));
/// assert_eq!(set.iter().collect::<Vec<_>>(), [Kind::User, Kind::Pid, Kind::Time]);
/// assert_eq!(set.complement().len(), 5);
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct KindSet(u8);

impl KindSet {
    /// The empty set.
    pub const EMPTY: KindSet = KindSet(0);
    /// All eight kinds.
    pub const ALL: KindSet = KindSet(0xff);

    /// The set holding exactly `kind`.
    pub const fn one(kind: Kind) -> KindSet {
        KindSet(1 << kind.index())
    }

    /// Whether `kind` is in the set.
    pub const fn contains(self, kind: Kind) -> bool {
        self.0 & (1 << kind.index()) != 0
    }

    /// Adds `kind`.
    pub fn insert(&mut self, kind: Kind) {
        self.0 |= 1 << kind.index();
    }

    /// Removes `kind`.
    pub fn remove(&mut self, kind: Kind) {
        self.0 &= !(1 << kind.index());
    }

    /// The set with `kind` added.
    #[must_use]
    pub const fn with(self, kind: Kind) -> KindSet {
        KindSet(self.0 | (1 << kind.index()))
    }

    /// The kinds not in this set.
    #[must_use]
    pub const fn complement(self) -> KindSet {
        KindSet(!self.0)
    }

    /// The kinds in both sets.
    #[must_use]
    pub const fn intersection(self, other: KindSet) -> KindSet {
        KindSet(self.0 & other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of kinds in the set.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The bits, one per kind in canonical order (bit 0 = user).
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The set whose bits are `bits` (bit 0 = user, ..., bit 7 = time).
    pub const fn from_bits(bits: u8) -> KindSet {
        KindSet(bits)
    }

    /// The OR of the `CLONE_NEW*` flags of the kinds in the set.
    pub fn clone_flags(self) -> i32 {
        self.iter().fold(0, |acc, k| acc | k.clone_flag())
    }

    /// The kinds in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Kind> {
        Kind::ALL.into_iter().filter(move |k| self.contains(*k))
    }
}

/// Serialized as the list of its kinds in canonical order: `["user", "pid"]`.
impl Serialize for KindSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// Read from a list of kinds, in any order; a repeated kind counts once.
impl<'de> Deserialize<'de> for KindSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<Kind>::deserialize(d).map(|kinds| kinds.into_iter().collect())
    }
}

impl FromIterator<Kind> for KindSet {
    fn from_iter<I: IntoIterator<Item = Kind>>(iter: I) -> Self {
        let mut set = KindSet::EMPTY;
        for k in iter {
            set.insert(k);
        }
        set
    }
}

impl fmt::Debug for KindSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for KindSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for k in self.iter() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(k.spec_name())?;
        }
        Ok(())
    }
}

impl FromStr for KindSet {
    type Err = UnknownKind;

    /// Parses comma-separated spec names (`user,pid,time`); empty items are ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::parse::<Kind>)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_variant_once_in_index_order() {
        for (i, k) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(k.index(), i);
            // Exhaustive match: a new variant without an entry in ALL fails to compile here.
            let in_all = match k {
                Kind::User
                | Kind::Pid
                | Kind::Uts
                | Kind::Ipc
                | Kind::Network
                | Kind::Cgroup
                | Kind::Mount
                | Kind::Time => Kind::ALL.iter().filter(|x| **x == k).count(),
            };
            assert_eq!(in_all, 1, "{k} must appear once in Kind::ALL");
        }
        let mut sorted = Kind::ALL;
        sorted.sort();
        assert_eq!(sorted, Kind::ALL, "derived Ord must be the canonical order");
    }

    #[test]
    fn clone_flags_are_distinct_and_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_clone_flag(k.clone_flag()), Some(k));
            assert_eq!(k.clone_flag().count_ones(), 1);
        }
        assert_eq!(Kind::Time.clone_flag(), 0x80);
        assert_eq!(KindSet::ALL.clone_flags().count_ones(), 8);
    }

    #[test]
    fn spec_names_round_trip_and_aliases_are_rejected() {
        for k in Kind::ALL {
            assert_eq!(k.spec_name().parse::<Kind>(), Ok(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.spec_name()));
        }
        assert!("net".parse::<Kind>().is_err());
        assert!("mnt".parse::<Kind>().is_err());
    }

    #[test]
    fn kind_set_parses_and_complements() {
        let s: KindSet = "time, user".parse().unwrap();
        assert_eq!(s.iter().collect::<Vec<_>>(), [Kind::User, Kind::Time]);
        assert_eq!(s.to_string(), "user,time");
        assert_eq!(s.complement().complement(), s);
        assert_eq!((s.bits() | s.complement().bits()), 0xff);
        assert!("user,bogus".parse::<KindSet>().is_err());
    }

    #[test]
    fn an_intersection_holds_the_kinds_in_both_sets() {
        let a: KindSet = "user,network,ipc".parse().unwrap();
        let b: KindSet = "network,ipc,uts".parse().unwrap();
        assert_eq!(a.intersection(b).to_string(), "ipc,network");
        assert_eq!(a.intersection(a.complement()), KindSet::EMPTY);
    }

    #[test]
    fn adding_a_kind_already_in_a_set_keeps_it() {
        let s = KindSet::one(Kind::Pid).with(Kind::Time);
        assert_eq!(s.with(Kind::Pid), s);
        assert_eq!(
            s.with(Kind::Time).iter().collect::<Vec<_>>(),
            [Kind::Pid, Kind::Time]
        );
        let mut t = s;
        t.insert(Kind::Pid);
        assert_eq!(t, s);
    }

    #[test]
    fn kind_set_serializes_as_a_list_and_reads_any_order() {
        let s: KindSet = "time,user".parse().unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"["user","time"]"#);
        let back: KindSet = serde_json::from_str(r#"["time","user","time"]"#).unwrap();
        assert_eq!(back, s);
        assert!(serde_json::from_str::<KindSet>(r#"["net"]"#).is_err());
        assert_eq!(format!("{s:?}"), "{User, Time}");
        assert_eq!(format!("{:?}", KindSet::EMPTY), "{}");
    }
}
