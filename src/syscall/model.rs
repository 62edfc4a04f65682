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
//! A [`World`] (JSON or builder) says what exists before the run; a
//! [`FaultScript`] forces chosen calls to fail, so every error path of the
//! engine can be reached without privilege.
//!
//! * mount(2) changing the propagation of `/`: `may_mount`, `do_change_type`.
//!
//! What the model leaves out, on purpose: ucount limits (`max_*_namespaces`),
//! chroot, LSMs, `ENOMEM`, ptrace access checks on `/proc/<pid>/ns`, and the
//! clocks' current values (see [`Syscall::write_time_offsets`] on [`Model`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::apply::{apply, Applied, SyncHooks, SyncRequest};
use crate::config::{IdMapping, TimeOffset, MAX_NANOSECS};
use crate::error::{Errno, MapFile, SyncError};
use crate::kind::{Kind, KindSet};
use crate::plan::Plan;
use crate::syscall::{Forked, Syscall, ThreadCountError};
use crate::trace::Outcome;

/// `create_user_ns`: a user namespace whose level is above this cannot get
/// a child (ENOSPC since Linux 4.9, EUSERS before): 32 nested below the host.
const MAX_USER_NS_PARENT_LEVEL: u32 = 32;
/// `MAX_PID_NS_LEVEL` of `create_pid_namespace`.
const MAX_PID_NS_LEVEL: u32 = 32;
/// `UID_GID_MAP_MAX_EXTENTS`: lines an id map may hold (Linux 4.15).
const MAX_MAP_LINES: usize = 340;
/// `KTIME_SEC_MAX`: the seconds range of a time offset.
const KTIME_SEC_MAX: i64 = i64::MAX / 1_000_000_000;
/// The first fd the model hands out (0, 1, 2 are stdio).
const FIRST_FD: u32 = 3;
/// Where the time offsets are written (recorded as the call's path).
const TIMENS_OFFSETS: &str = "/proc/self/timens_offsets";

// ---------------------------------------------------------------------------
// The world: what exists before the run.
// ---------------------------------------------------------------------------

/// What exists before a run: the caller, the namespaces reachable by path,
/// and the other files of the file system.
///
/// The eight host namespaces always exist, named `host:user`, `host:pid`,
/// `host:uts`, `host:ipc`, `host:network`, `host:cgroup`, `host:mount` and
/// `host:time` (all owned by `host:user`). `World::default()` is a root
/// caller in the host namespaces and nothing else.
///
/// A `namespaces` entry named like a host namespace (`host:network`, with
/// the matching `type`) adds `paths` to it and may set nothing else.
///
/// ```
/// use nsapply::Kind;
/// use nsapply::model::{CallerSpec, FileSpec, NsSpec, World};
/// let world = World::new()
///     .caller(CallerSpec::unprivileged(1000, 1000))
///     .namespace(NsSpec::new("u", Kind::User).created_by(1000).at("/run/userns/u"))
///     .namespace(NsSpec::new("n", Kind::Network).owned_by("u").at("/run/netns/n"))
///     .file("/etc/hostname", FileSpec::Regular);
/// assert_eq!(World::from_json(&world.to_json()).unwrap(), world);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct World {
    /// The process that runs the plan (and, as the runtime parent, writes
    /// the id maps).
    pub caller: CallerSpec,
    /// Namespaces besides the host ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<NsSpec>,
    /// Files that are not namespaces. A path neither here nor a namespace
    /// path (nor an ancestor directory of one) is missing (ENOENT).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<PathBuf, FileSpec>,
}

/// The calling process at the start of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallerSpec {
    /// Effective (and real, saved) uid, in host terms (the kuid).
    pub uid: u32,
    /// Effective (and real, saved) gid, in host terms (the kgid).
    pub gid: u32,
    /// Number of threads (at least 1).
    pub threads: usize,
    /// Whether the caller has its capabilities effective in its user
    /// namespace; default: `uid == 0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caps: Option<bool>,
    /// The namespace the caller starts in, per kind (default: the host one).
    /// For pid it is the active pid namespace, which is also
    /// `pid_for_children`; for time also `time_for_children`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub namespaces: BTreeMap<Kind, String>,
}

impl Default for CallerSpec {
    fn default() -> Self {
        CallerSpec::root()
    }
}

impl CallerSpec {
    /// Root with all capabilities in the host namespaces, single-threaded.
    pub fn root() -> Self {
        CallerSpec {
            uid: 0,
            gid: 0,
            threads: 1,
            caps: None,
            namespaces: BTreeMap::new(),
        }
    }

    /// An unprivileged user (no capabilities) in the host namespaces.
    pub fn unprivileged(uid: u32, gid: u32) -> Self {
        CallerSpec {
            uid,
            gid,
            caps: Some(false),
            ..CallerSpec::root()
        }
    }

    /// The same caller with `n` threads.
    #[must_use]
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// The same caller with capabilities effective (`true`) or not in its
    /// user namespace.
    #[must_use]
    pub fn with_caps(mut self, caps: bool) -> Self {
        self.caps = Some(caps);
        self
    }

    /// The same caller starting in the namespace `name` of `kind`.
    #[must_use]
    pub fn in_ns(mut self, kind: Kind, name: impl Into<String>) -> Self {
        self.namespaces.insert(kind, name.into());
        self
    }
}

/// One namespace of the world, besides the host ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NsSpec {
    /// Unique name (not `host:*`, not `new:*`).
    pub name: String,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The owning user namespace; for a user namespace, its parent.
    /// Default `host:user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Pid namespaces only: the parent pid namespace. Default `host:pid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// User namespaces only: the euid (kuid) of its creator. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator_uid: Option<u32>,
    /// User namespaces only: the uid map already written, host ids in the
    /// parent's terms (`None`: not written yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid_map: Option<Vec<IdMapping>>,
    /// User namespaces only: the gid map already written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid_map: Option<Vec<IdMapping>>,
    /// Time namespaces only: whether a process entered it already (its
    /// offsets are then frozen: writing them fails EACCES). Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entered: Option<bool>,
    /// Where it is reachable: bind mounts, or `/proc/<pid>/ns/*` of a helper.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathBuf>,
}

impl NsSpec {
    /// A namespace named `name` of `kind`, with every field at its default.
    pub fn new(name: impl Into<String>, kind: Kind) -> NsSpec {
        NsSpec {
            name: name.into(),
            kind,
            owner: None,
            parent: None,
            creator_uid: None,
            uid_map: None,
            gid_map: None,
            entered: None,
            paths: Vec::new(),
        }
    }

    /// Owned by the user namespace `user_ns` (for a user namespace: its parent).
    #[must_use]
    pub fn owned_by(mut self, user_ns: impl Into<String>) -> NsSpec {
        self.owner = Some(user_ns.into());
        self
    }

    /// A pid namespace whose parent is the pid namespace `pid_parent`.
    #[must_use]
    pub fn child_of(mut self, pid_parent: impl Into<String>) -> NsSpec {
        self.parent = Some(pid_parent.into());
        self
    }

    /// A user namespace created by a process whose euid (kuid) was `uid`.
    #[must_use]
    pub fn created_by(mut self, uid: u32) -> NsSpec {
        self.creator_uid = Some(uid);
        self
    }

    /// A user namespace whose uid and gid maps are written already.
    #[must_use]
    pub fn maps(mut self, uid_map: Vec<IdMapping>, gid_map: Vec<IdMapping>) -> NsSpec {
        self.uid_map = Some(uid_map);
        self.gid_map = Some(gid_map);
        self
    }

    /// A time namespace that a process has (`true`) or has not entered.
    #[must_use]
    pub fn entered(mut self, entered: bool) -> NsSpec {
        self.entered = Some(entered);
        self
    }

    /// Reachable at `path` too.
    #[must_use]
    pub fn at(mut self, path: impl Into<PathBuf>) -> NsSpec {
        self.paths.push(path.into());
        self
    }
}

/// A file of the world that is not a namespace.
///
/// Every kind opens as nsapply opens a namespace path (a reference only,
/// `O_PATH`: no permission on the file is needed, a FIFO does not block, a
/// device's driver is not called) and is then refused by NS_GET_NSTYPE
/// with ENOTTY (`not-a-namespace`). Only a directory differs: a path can
/// go through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileSpec {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A regular file with no permission bits (mode 000): an `O_PATH` open
    /// needs none, so it is refused like any other non-namespace file.
    Unreadable,
    /// A FIFO (named pipe): a plain open(2) would block until a writer came.
    Fifo,
    /// A Unix domain socket.
    Socket,
    /// A character device: a plain open(2) would run its driver.
    Device,
}

/// A world that cannot exist: malformed JSON or inconsistent references.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorldError {
    /// The document is not JSON, or not a world.
    #[error("world is malformed at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A name that is empty or reserved (`new:*`, or a `host:*` entry that
    /// does more than add paths to that host namespace).
    #[error("namespace name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// Two namespaces with one name.
    #[error("namespace {name:?} is defined twice")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// One path given twice (two namespaces, a namespace and a file, or
    /// two spellings of one file).
    #[error("path {path:?} is given twice")]
    DuplicatePath {
        /// The path.
        path: PathBuf,
    },
    /// A path that is not absolute, is `/`, or lies under `/proc/self`
    /// (which the model resolves itself).
    #[error("path {path:?}: {reason}")]
    InvalidPath {
        /// The path.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// A reference to a namespace that does not exist.
    #[error("{name}: {field} names unknown namespace {target:?}")]
    UnknownReference {
        /// The namespace (or `caller`) holding the reference.
        name: String,
        /// The field (`owner`, `parent`, `caller.namespaces.pid`).
        field: String,
        /// The name referred to.
        target: String,
    },
    /// A reference to a namespace of the wrong kind (an owner that is not a
    /// user namespace, a pid parent that is not a pid namespace, ...).
    #[error(
        "{name}: {field} must name a {expected} namespace, but {target:?} is a {found} namespace"
    )]
    WrongKind {
        /// The namespace (or `caller`) holding the reference.
        name: String,
        /// The field.
        field: String,
        /// The name referred to.
        target: String,
        /// The kind the field needs.
        expected: Kind,
        /// The kind it has.
        found: Kind,
    },
    /// A field set on a namespace of a kind it does not apply to.
    #[error("namespace {name:?} ({kind}): field {field} applies only to {applies_to} namespaces")]
    FieldOnWrongKind {
        /// The namespace.
        name: String,
        /// Its kind.
        kind: Kind,
        /// The field.
        field: &'static str,
        /// The kind the field is for.
        applies_to: Kind,
    },
    /// Parents that form a cycle.
    #[error("namespace {name:?}: its chain of parents is a cycle")]
    Cycle {
        /// A namespace on the cycle.
        name: String,
    },
    /// Nesting deeper than the kernel allows.
    #[error("namespace {name:?} ({kind}): nesting level {level} is deeper than the kernel allows ({max})")]
    TooDeep {
        /// The namespace.
        name: String,
        /// Its kind.
        kind: Kind,
        /// Its level (the host namespace is 0).
        level: u32,
        /// The deepest level allowed.
        max: u32,
    },
    /// An id map the kernel would not have accepted.
    #[error("namespace {name:?}: {which}: {reason}")]
    InvalidMap {
        /// The user namespace.
        name: String,
        /// `uid_map` or `gid_map`.
        which: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// A caller that cannot exist.
    #[error("caller: {reason}")]
    InvalidCaller {
        /// Why it is refused.
        reason: String,
    },
}

impl World {
    /// The default world: a root caller in the host namespaces.
    pub fn new() -> World {
        World::default()
    }

    /// The same world with `caller`.
    #[must_use]
    pub fn caller(mut self, caller: CallerSpec) -> World {
        self.caller = caller;
        self
    }

    /// The same world with one more namespace.
    #[must_use]
    pub fn namespace(mut self, ns: NsSpec) -> World {
        self.namespaces.push(ns);
        self
    }

    /// The same world with a file at `path`.
    #[must_use]
    pub fn file(mut self, path: impl Into<PathBuf>, spec: FileSpec) -> World {
        self.files.insert(path.into(), spec);
        self
    }

    /// Parses and checks a world document.
    ///
    /// # Errors
    ///
    /// [`WorldError::Json`] for malformed JSON or unknown fields, and the
    /// other variants for a world that cannot exist (see [`World::check`]).
    pub fn from_json(json: &str) -> Result<World, WorldError> {
        let world: World = serde_json::from_str(json).map_err(|e| {
            let text = e.to_string();
            let message = text
                .rsplit_once(" at line ")
                .map_or(text.as_str(), |(m, _)| m)
                .to_owned();
            WorldError::Json {
                line: e.line(),
                column: e.column(),
                message,
            }
        })?;
        world.check()?;
        Ok(world)
    }

    /// The world as pretty JSON (what [`World::from_json`] reads back).
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serializing cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks that the world can exist: every reference resolves to a
    /// namespace of the right kind, names and paths are unique, nesting
    /// is within the kernel's limits and written id maps are valid.
    ///
    /// # Errors
    ///
    /// The first problem found, as a [`WorldError`].
    pub fn check(&self) -> Result<(), WorldError> {
        Model::new(self).map(|_| ())
    }
}

// ---------------------------------------------------------------------------
// Calls and faults.
// ---------------------------------------------------------------------------

/// Which [`Syscall`] method a [`Call`] was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallOp {
    /// [`Syscall::open_ns`].
    Open,
    /// [`Syscall::ns_get_nstype`].
    Nstype,
    /// [`Syscall::setns`].
    Setns,
    /// [`Syscall::unshare`].
    Unshare,
    /// [`Syscall::set_root_ids`].
    Setid,
    /// [`Syscall::set_root_propagation`].
    Propagation,
    /// [`Syscall::write_time_offsets`].
    TimeOffsets,
    /// [`Syscall::fork`].
    Fork,
    /// [`Syscall::close`] (never fails; not counted by fault positions).
    Close,
    /// [`Syscall::thread_count`] (not counted by fault positions).
    Threads,
}

impl CallOp {
    /// Every op, in the order of the enum.
    pub const ALL: [CallOp; 10] = [
        CallOp::Open,
        CallOp::Nstype,
        CallOp::Setns,
        CallOp::Unshare,
        CallOp::Setid,
        CallOp::Propagation,
        CallOp::TimeOffsets,
        CallOp::Fork,
        CallOp::Close,
        CallOp::Threads,
    ];

    /// The stable name (`"time-offsets"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            CallOp::Open => "open",
            CallOp::Nstype => "nstype",
            CallOp::Setns => "setns",
            CallOp::Unshare => "unshare",
            CallOp::Setid => "setid",
            CallOp::Propagation => "propagation",
            CallOp::TimeOffsets => "time-offsets",
            CallOp::Fork => "fork",
            CallOp::Close => "close",
            CallOp::Threads => "threads",
        }
    }

    /// Whether the op counts for [`FaultAt::Position`]: every call that the
    /// engine treats as able to fail, except reading the thread count.
    pub const fn is_fallible(self) -> bool {
        !matches!(self, CallOp::Close | CallOp::Threads)
    }
}

impl fmt::Display for CallOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CallOp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CallOp::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = CallOp::ALL.iter().map(|o| o.as_str()).collect();
                format!("unknown call {s:?} (expected one of {})", names.join(", "))
            })
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn no_kinds(kinds: &KindSet) -> bool {
    kinds.is_empty()
}

/// One call the model answered, with its result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// Which call.
    pub op: CallOp,
    /// The namespace kind: setns's argument; the kind the path or fd
    /// resolves to for open, nstype and close (none for a non-namespace);
    /// `user` for setid, `time` for time-offsets; the single kind of an
    /// unshare of one kind.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    /// Unshare only: every kind of the call (a list in canonical order).
    #[serde(default, skip_serializing_if = "no_kinds")]
    pub kinds: KindSet,
    /// The path opened (for fd calls: the path the fd was opened from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The fd number (returned by open, or passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd: Option<u32>,
    /// `"ok"` or the errno.
    pub result: Outcome,
    /// Whether the result was forced by the [`FaultScript`].
    #[serde(default, skip_serializing_if = "is_false")]
    pub injected: bool,
}

/// Which calls a [`Fault`] hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultAt {
    /// The n-th (1-based) fallible call: open, nstype, setns, unshare,
    /// setid, propagation, time-offsets, fork (not close, not threads), counted from the
    /// model's creation, faulted calls included.
    Position(usize),
    /// Every call of `op`, of `kind` when given (for unshare: every call
    /// whose set holds `kind`).
    Call {
        /// The op.
        op: CallOp,
        /// The kind, or any.
        kind: Option<Kind>,
    },
}

impl FaultAt {
    fn matches(&self, op: CallOp, kind: Option<Kind>, kinds: KindSet, position: usize) -> bool {
        match *self {
            FaultAt::Position(n) => op.is_fallible() && n == position,
            FaultAt::Call {
                op: want,
                kind: None,
            } => want == op,
            FaultAt::Call {
                op: want,
                kind: Some(k),
            } => want == op && (kind == Some(k) || kinds.contains(k)),
        }
    }
}

/// A call forced to fail with `errno`, without changing any state.
///
/// Written and serialized as a rule: `3=EPERM`, `setns=EINVAL`,
/// `setns:network=EPERM`, `threads=EIO`, `open:user=EACCES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fault {
    /// Which calls.
    pub at: FaultAt,
    /// The errno they return.
    pub errno: Errno,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            FaultAt::Position(n) => write!(f, "{n}")?,
            FaultAt::Call { op, kind: None } => write!(f, "{op}")?,
            FaultAt::Call { op, kind: Some(k) } => write!(f, "{op}:{k}")?,
        }
        write!(f, "={}", self.errno.name())
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultScript::parse_rule(s)
    }
}

impl Serialize for Fault {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fault {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        FaultScript::parse_rule(&s).map_err(serde::de::Error::custom)
    }
}

/// The faults to inject; the first fault that matches a call wins.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultScript {
    /// The faults, in priority order.
    pub faults: Vec<Fault>,
}

impl FaultScript {
    /// No faults.
    pub fn new() -> FaultScript {
        FaultScript::default()
    }

    /// Adds a fault (after the ones already there).
    pub fn push(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    /// Parses comma-separated rules (`"3=EPERM,setns:network=EINVAL"`).
    ///
    /// # Errors
    ///
    /// The first rule that does not parse, with the reason.
    pub fn parse(rules: &str) -> Result<FaultScript, String> {
        let faults = rules
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(FaultScript::parse_rule)
            .collect::<Result<_, _>>()?;
        Ok(FaultScript { faults })
    }

    /// Parses one rule: `<position>=<ERRNO>` or `<op>[:<type>]=<ERRNO>`.
    ///
    /// ```
    /// use nsapply::{Errno, Kind};
    /// use nsapply::model::{CallOp, FaultAt, FaultScript};
    /// let f = FaultScript::parse_rule("setns:network=EPERM").unwrap();
    /// assert_eq!(f.at, FaultAt::Call { op: CallOp::Setns, kind: Some(Kind::Network) });
    /// assert_eq!(f.errno, Errno::EPERM);
    /// assert_eq!(f.to_string(), "setns:network=EPERM");
    /// assert_eq!(FaultScript::parse_rule("3=EIO").unwrap().at, FaultAt::Position(3));
    /// assert!(FaultScript::parse_rule("close=EIO").is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// A message for a rule without `=`, an unknown op, type or errno, a
    /// position of 0, or a fault on `close` (close cannot fail).
    pub fn parse_rule(rule: &str) -> Result<Fault, String> {
        let (at, errno) = rule.split_once('=').ok_or_else(|| {
            format!("fault rule {rule:?} has no '=' (expected e.g. 3=EPERM or setns:network=EPERM)")
        })?;
        let (at, errno) = (at.trim(), errno.trim());
        let errno: Errno = errno.parse().map_err(|e| format!("{e}"))?;
        let at = if at.bytes().all(|b| b.is_ascii_digit()) && !at.is_empty() {
            match at.parse::<usize>() {
                Ok(0) | Err(_) => return Err(format!("fault position {at:?} must be 1 or more")),
                Ok(n) => FaultAt::Position(n),
            }
        } else {
            let (op, kind) = match at.split_once(':') {
                Some((op, kind)) => (op, Some(kind.parse::<Kind>().map_err(|e| e.to_string())?)),
                None => (at, None),
            };
            let op: CallOp = op.parse()?;
            if op == CallOp::Close {
                return Err("close cannot fail: the fd is gone either way".to_owned());
            }
            FaultAt::Call { op, kind }
        };
        Ok(Fault { at, errno })
    }
}

impl FromStr for FaultScript {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultScript::parse(s)
    }
}

// ---------------------------------------------------------------------------
// Kernel state.
// ---------------------------------------------------------------------------

/// Index of a namespace object in [`Kernel::spaces`]. The host namespace of
/// kind `k` has index `k.index()`.
type NsId = usize;

const HOST_USER: NsId = Kind::User.index();

/// Whether `id` is one of the eight host namespaces (they come first).
const fn is_host(id: NsId) -> bool {
    id < Kind::ALL.len()
}

/// Which id map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ids {
    Uid,
    Gid,
}

impl Ids {
    const fn file(self) -> &'static str {
        match self {
            Ids::Uid => "uid_map",
            Ids::Gid => "gid_map",
        }
    }
}

/// The identity map of the initial user namespace ("0 0 4294967295").
const IDENTITY_MAP: &[IdMapping] = &[IdMapping {
    container_id: 0,
    host_id: 0,
    size: u32::MAX,
}];

/// The name of the host namespace of `kind`.
const fn host_name(kind: Kind) -> &'static str {
    match kind {
        Kind::User => "host:user",
        Kind::Pid => "host:pid",
        Kind::Uts => "host:uts",
        Kind::Ipc => "host:ipc",
        Kind::Network => "host:network",
        Kind::Cgroup => "host:cgroup",
        Kind::Mount => "host:mount",
        Kind::Time => "host:time",
    }
}

/// The name of the `n`-th namespace of `kind` a run creates. A run
/// usually creates one of a kind, so the first name is a constant: a
/// default run then formats and allocates no name (benches/RESULTS.md).
fn created_name(kind: Kind, n: u32) -> Cow<'static, str> {
    let first = match kind {
        Kind::User => "new:user:1",
        Kind::Pid => "new:pid:1",
        Kind::Uts => "new:uts:1",
        Kind::Ipc => "new:ipc:1",
        Kind::Network => "new:network:1",
        Kind::Cgroup => "new:cgroup:1",
        Kind::Mount => "new:mount:1",
        Kind::Time => "new:time:1",
    };
    if n == 1 {
        Cow::Borrowed(first)
    } else {
        Cow::Owned(format!("new:{}:{n}", kind.spec_name()))
    }
}

/// One namespace object. Fields that do not apply to its kind keep their
/// initial value and are never read.
#[derive(Clone, Debug)]
struct Space {
    /// Borrowed for the host namespaces and the first created ones, so a
    /// default model allocates no names.
    name: Cow<'static, str>,
    kind: Kind,
    /// The owning user namespace; for a user namespace its parent
    /// (`None` only for `host:user`).
    owner: Option<NsId>,
    /// Pid: the parent pid namespace (`None` only for `host:pid`).
    parent: Option<NsId>,
    /// User and pid: depth below the host namespace.
    level: u32,
    /// User: the creator's euid (the namespace's `owner` in kernel terms).
    creator: u32,
    /// User: the maps as written, host ids in the parent's terms
    /// (borrowed for the host's identity map).
    uid_map: Option<Cow<'static, [IdMapping]>>,
    gid_map: Option<Cow<'static, [IdMapping]>>,
    /// User: `USERNS_SETGROUPS_ALLOWED`, inherited from the parent.
    setgroups_allowed: bool,
    /// Pid: whether a process is its init.
    has_init: bool,
    /// Time: a process entered it, so its offsets are frozen.
    entered: bool,
    /// Time: the offsets written.
    offsets: Vec<TimeOffset>,
    /// Where the world made it reachable.
    paths: Vec<PathBuf>,
}

impl Space {
    fn new(name: Cow<'static, str>, kind: Kind, owner: Option<NsId>) -> Space {
        Space {
            name,
            kind,
            owner,
            parent: None,
            level: 0,
            creator: 0,
            uid_map: None,
            gid_map: None,
            setgroups_allowed: true,
            has_init: true,
            entered: true,
            offsets: Vec::new(),
            paths: Vec::new(),
        }
    }

    fn map(&self, ids: Ids) -> Option<&[IdMapping]> {
        match ids {
            Ids::Uid => self.uid_map.as_deref(),
            Ids::Gid => self.gid_map.as_deref(),
        }
    }
}

/// The credentials that capability checks look at.
#[derive(Clone, Copy, Debug)]
struct Cred {
    user_ns: NsId,
    euid: u32,
    egid: u32,
    /// Capabilities effective in `user_ns`.
    caps: bool,
}

/// The calling process.
#[derive(Clone, Copy, Debug)]
struct Caller {
    /// Current namespace per kind (pid: the active pid namespace).
    ns: [NsId; 8],
    pid_for_children: NsId,
    time_for_children: NsId,
    euid: u32,
    egid: u32,
    caps: bool,
    threads: usize,
    forked: bool,
    fs_shared: bool,
}

impl Caller {
    fn cred(&self) -> Cred {
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
struct Kernel {
    spaces: Vec<Space>,
    caller: Caller,
    /// Namespaces created so far per kind, for the `new:<kind>:<n>` names.
    created: [u32; 8],
}

fn ranges_overlap(a: u32, a_len: u32, b: u32, b_len: u32) -> bool {
    let (a, a_end) = (u64::from(a), u64::from(a) + u64::from(a_len));
    let (b, b_end) = (u64::from(b), u64::from(b) + u64::from(b_len));
    a < b_end && b < a_end
}

/// The parse checks of `map_write` (each EINVAL in the kernel).
fn check_map_lines(lines: &[IdMapping]) -> Result<(), &'static str> {
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
    fn host(more: usize) -> Kernel {
        let mut spaces = Vec::with_capacity(Kind::ALL.len() + more);
        spaces.extend(Kind::ALL.into_iter().map(|k| {
            let owner = (k != Kind::User).then_some(HOST_USER);
            Space::new(Cow::Borrowed(host_name(k)), k, owner)
        }));
        // The initial user namespace maps every id to itself, so its maps
        // count as written: another write fails EPERM.
        spaces[HOST_USER].uid_map = Some(Cow::Borrowed(IDENTITY_MAP));
        spaces[HOST_USER].gid_map = Some(Cow::Borrowed(IDENTITY_MAP));
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
                fs_shared: false,
            },
            created: [0; 8],
        }
    }

    /// The owning user namespace of a non-user namespace.
    fn owner_of(&self, ns: NsId) -> NsId {
        self.spaces[ns].owner.unwrap_or(HOST_USER)
    }

    /// `cap_capable()`: whether `cred` has the capabilities of a full
    /// member in the user namespace `target` (the model does not split
    /// capabilities: a process has all of them in a namespace or none).
    fn capable(&self, cred: &Cred, target: NsId) -> bool {
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
    fn in_userns(&self, ancestor: NsId, child: NsId) -> bool {
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
    fn id_down(&self, ns: NsId, ids: Ids, id: u32) -> Option<u32> {
        let s = &self.spaces[ns];
        let Some(parent) = s.owner else {
            return (id != u32::MAX).then_some(id);
        };
        let line = s.map(ids)?.iter().find(|l| l.maps_container_id(id))?;
        self.id_down(parent, ids, line.host_id + (id - line.container_id))
    }

    /// `from_kuid`: the id of kernel id `kid` in `ns`, if mapped.
    fn id_up(&self, ns: NsId, ids: Ids, kid: u32) -> Option<u32> {
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
    fn range_mapped(&self, ns: NsId, ids: Ids, first: u32, count: u32) -> bool {
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

    fn add_space(&mut self, kind: Kind, owner: NsId) -> NsId {
        let n = &mut self.created[kind.index()];
        *n += 1;
        let name = created_name(kind, *n);
        self.spaces.push(Space::new(name, kind, Some(owner)));
        self.spaces.len() - 1
    }

    /// setns(2) into `target` (already checked to be a namespace of `kind`).
    fn setns(&mut self, target: NsId, kind: Kind) -> Result<(), Errno> {
        let cred = self.caller.cred();
        let threaded = self.caller.threads > 1;
        // Every install hook but userns_install wants CAP_SYS_ADMIN over the
        // target's owner and over the caller's own user namespace.
        let admin =
            || self.capable(&cred, self.owner_of(target)) && self.capable(&cred, cred.user_ns);
        match kind {
            Kind::User => {
                // userns_install: no regaining caps by re-entering, threads
                // must share a user namespace, then the capability.
                if target == cred.user_ns || threaded {
                    return Err(Errno::EINVAL);
                }
                if !self.capable(&cred, target) {
                    return Err(Errno::EPERM);
                }
                self.caller.ns[Kind::User.index()] = target;
                self.caller.caps = true;
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
                if self.caller.fs_shared {
                    return Err(Errno::EINVAL);
                }
                self.caller.ns[Kind::Mount.index()] = target;
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
                self.caller.pid_for_children = target;
            }
            Kind::Time => {
                // timens_install checks threads before capabilities.
                if threaded {
                    return Err(Errno::EUSERS);
                }
                if !admin() {
                    return Err(Errno::EPERM);
                }
                self.caller.ns[Kind::Time.index()] = target;
                self.caller.time_for_children = target;
                // timens_commit: the caller is in it now; offsets freeze.
                self.spaces[target].entered = true;
            }
            Kind::Uts | Kind::Ipc | Kind::Network | Kind::Cgroup => {
                if !admin() {
                    return Err(Errno::EPERM);
                }
                self.caller.ns[kind.index()] = target;
            }
        }
        Ok(())
    }

    /// unshare(2), applied all or nothing.
    fn unshare(&mut self, kinds: KindSet) -> Result<(), Errno> {
        // unshare only appends namespaces and changes the caller, so undoing
        // a failed one is putting those back. (Cloning the whole kernel for
        // that was two thirds of the model's cost, and grew with the world.)
        let (caller, created, len) = (self.caller, self.created, self.spaces.len());
        let result = self.unshare_in_place(kinds);
        if result.is_err() {
            self.caller = caller;
            self.created = created;
            self.spaces.truncate(len);
        }
        result
    }

    fn unshare_in_place(&mut self, kinds: KindSet) -> Result<(), Errno> {
        if kinds.contains(Kind::User) {
            // check_unshare_flags: CLONE_NEWUSER implies CLONE_THREAD.
            if self.caller.threads > 1 {
                return Err(Errno::EINVAL);
            }
            self.create_user_ns()?;
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
        for kind in others.iter() {
            self.create(kind, cred.user_ns)?;
        }
        Ok(())
    }

    /// `may_mount()` before `do_change_type()`: CAP_SYS_ADMIN over the user
    /// namespace that owns the caller's mount namespace.
    fn set_root_propagation(&self) -> Result<(), Errno> {
        let cred = self.caller.cred();
        let owner = self.owner_of(self.caller.ns[Kind::Mount.index()]);
        if self.capable(&cred, owner) {
            Ok(())
        } else {
            Err(Errno::EPERM)
        }
    }

    /// `create_user_ns`.
    fn create_user_ns(&mut self) -> Result<(), Errno> {
        let parent = self.caller.ns[Kind::User.index()];
        if self.spaces[parent].level > MAX_USER_NS_PARENT_LEVEL {
            return Err(Errno::ENOSPC);
        }
        // The creator must be mapped in the parent namespace.
        if self.id_up(parent, Ids::Uid, self.caller.euid).is_none()
            || self.id_up(parent, Ids::Gid, self.caller.egid).is_none()
        {
            return Err(Errno::EPERM);
        }
        let id = self.add_space(Kind::User, parent);
        let (level, setgroups) = (
            self.spaces[parent].level + 1,
            self.spaces[parent].setgroups_allowed,
        );
        let s = &mut self.spaces[id];
        s.level = level;
        s.creator = self.caller.euid;
        s.setgroups_allowed = setgroups;
        self.caller.ns[Kind::User.index()] = id;
        self.caller.caps = true;
        Ok(())
    }

    /// One non-user namespace of `create_new_namespaces`, owned by `owner`.
    fn create(&mut self, kind: Kind, owner: NsId) -> Result<(), Errno> {
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
                let id = self.add_space(Kind::Pid, owner);
                let s = &mut self.spaces[id];
                s.parent = Some(active);
                s.level = level;
                s.has_init = false;
                self.caller.pid_for_children = id;
            }
            Kind::Time => {
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
    fn set_root_ids(&mut self) -> Result<(), Errno> {
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
    fn write_time_offsets(&mut self, offsets: &[TimeOffset]) -> Result<(), Errno> {
        // Parsed first: nanoseconds out of range.
        if offsets.iter().any(|o| o.nanosecs > MAX_NANOSECS) {
            return Err(Errno::EINVAL);
        }
        let target = self.caller.time_for_children;
        let cred = self.caller.cred();
        if !self.capable(&cred, self.owner_of(target)) {
            return Err(Errno::EPERM);
        }
        // The kernel adds the clock's current value and wants the sum in
        // [0, KTIME_SEC_MAX / 2]. The model takes that value as 0 for the
        // upper bound and does not model the lower one (it depends on uptime).
        if offsets
            .iter()
            .any(|o| o.secs > KTIME_SEC_MAX / 2 || o.secs < -KTIME_SEC_MAX)
        {
            return Err(Errno::ERANGE);
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

    /// fork(2), continuing as the child.
    fn fork(&mut self) {
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
    fn write_setgroups_deny(&mut self, writer: &Cred, ns: NsId) -> Result<(), Errno> {
        // proc_setgroups_open: writing needs CAP_SYS_ADMIN in `ns`.
        if !self.capable(writer, ns) {
            return Err(Errno::EACCES);
        }
        // Too late once gid_map is written.
        if self.spaces[ns].gid_map.is_some() {
            return Err(Errno::EPERM);
        }
        self.spaces[ns].setgroups_allowed = false;
        Ok(())
    }

    /// `map_write` of uid_map or gid_map of `ns` by `writer`.
    fn write_map(
        &mut self,
        writer: &Cred,
        ns: NsId,
        ids: Ids,
        lines: &[IdMapping],
    ) -> Result<(), Errno> {
        // Only one successful write (the host maps count as written).
        if self.spaces[ns].map(ids).is_some() {
            return Err(Errno::EPERM);
        }
        let Some(parent) = self.spaces[ns].owner else {
            return Err(Errno::EPERM);
        };
        if writer.user_ns != ns && writer.user_ns != parent {
            return Err(Errno::EPERM);
        }
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
    fn idmap_permitted(
        &self,
        writer: &Cred,
        ns: NsId,
        parent: NsId,
        ids: Ids,
        lines: &[IdMapping],
    ) -> bool {
        let privileged = self.capable(writer, parent);
        // verify_root_map: mapping host id 0 needs CAP_SETFCAP in the parent.
        if ids == Ids::Uid && lines.iter().any(|l| l.host_id == 0) && !privileged {
            return false;
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

// ---------------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------------

static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// An fd the model handed out. Not `Clone`: it is given back by value to
/// [`Syscall::close`], so it cannot be closed twice or used after close.
/// Dropping it without closing leaves the model's fd open (a leak that
/// [`Model::open_fd_count`] shows).
#[derive(Debug)]
pub struct ModelFd {
    num: u32,
    /// Unique across models, so a number reused after close, or an fd of
    /// another model, is not taken for this one.
    serial: u64,
    /// The path it was opened from (for debugging output).
    path: PathBuf,
}

impl ModelFd {
    /// The fd number (the lowest free one at open, from 3, like the kernel).
    pub fn number(&self) -> u32 {
        self.num
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Dir,
    /// Any other file that is not a namespace (see [`FileSpec`]).
    File,
    Ns(NsId),
}

/// What an open fd refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Ns(NsId),
    /// A regular file or directory.
    File,
}

#[derive(Clone, Debug)]
struct OpenFile {
    serial: u64,
    path: PathBuf,
    target: Target,
    cloexec: bool,
}

/// One open fd of the model, as [`Model::open_fds`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpenFdView {
    /// The fd number.
    pub fd: u32,
    /// The path it was opened from.
    pub path: PathBuf,
    /// The namespace it refers to, if any.
    pub namespace: Option<String>,
    /// The close-on-exec bit.
    pub cloexec: bool,
}

/// A read-only view of one namespace object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NsView {
    /// Its name (`host:user`, `new:pid:1`, or the world's name).
    pub name: String,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The owning user namespace; for a user namespace, its parent
    /// (`None` for `host:user`).
    pub owner: Option<String>,
    /// The parent: user namespace for user, pid namespace for pid.
    pub parent: Option<String>,
    /// User and pid: nesting level (host = 0).
    pub level: Option<u32>,
    /// User: the creator's euid (kuid).
    pub creator_uid: Option<u32>,
    /// User: the uid map (`None`: not written).
    pub uid_map: Option<Vec<IdMapping>>,
    /// User: the gid map (`None`: not written).
    pub gid_map: Option<Vec<IdMapping>>,
    /// User: whether setgroups(2) is allowed (`false` after "deny").
    pub setgroups_allowed: Option<bool>,
    /// Pid: whether it has an init process.
    pub has_init: Option<bool>,
    /// Time: whether a process entered it (offsets frozen).
    pub entered: Option<bool>,
    /// Time: the offsets written.
    pub offsets: Vec<TimeOffset>,
    /// Where the world made it reachable.
    pub paths: Vec<PathBuf>,
}

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
    nodes: HashMap<Box<str>, Node>,
    fds: BTreeMap<u32, OpenFile>,
    calls: Vec<Call>,
    faults: FaultScript,
    fallible_calls: usize,
    bad_closes: usize,
}

/// The path after `.` and `..` (lexically: the model has no symlinks), as
/// `/a/b` (empty for the root), and whether it ends with a slash.
///
/// Non-UTF-8 bytes read as U+FFFD, so two paths that differ only there name
/// one file.
fn normalize(path: &Path) -> (Cow<'_, str>, bool) {
    // Paths are almost always written in normal form already: then the
    // path is its own normal form and resolving it allocates nothing.
    if let Some(text) = path.to_str() {
        let normal = text.len() > 1
            && text.starts_with('/')
            && text[1..]
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        if normal {
            return (Cow::Borrowed(text), false);
        }
    }
    let mut norm = String::with_capacity(path.as_os_str().len());
    for c in path.components() {
        match c {
            Component::Normal(part) => {
                norm.push('/');
                norm.push_str(&part.to_string_lossy());
            }
            Component::ParentDir => {
                let parent = norm.rfind('/').unwrap_or(0);
                norm.truncate(parent);
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let text = path.as_os_str().as_encoded_bytes();
    (Cow::Owned(norm), text.len() > 1 && text.ends_with(b"/"))
}

/// The normal form of a world path, or why it is refused.
fn world_path(path: &Path) -> Result<String, WorldError> {
    let invalid = |reason: &str| WorldError::InvalidPath {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if !path.is_absolute() {
        return Err(invalid("must be absolute"));
    }
    let (norm, _) = normalize(path);
    let mut parts = norm.split('/').skip(1);
    match (parts.next(), parts.next()) {
        (None, _) => Err(invalid("cannot be the root directory")),
        (Some("proc"), None | Some("self" | "thread-self")) => Err(invalid(
            "/proc and /proc/self belong to the model (it resolves /proc/self/ns itself)",
        )),
        _ => Ok(norm.into_owned()),
    }
}

/// The namespace named `name`: a host one, or one of the world's (`names`).
fn lookup<'a>(
    names: &HashMap<&str, NsId>,
    spaces: &'a [Space],
    name: &str,
) -> Option<(NsId, &'a Space)> {
    let host = Kind::ALL.into_iter().find(|k| host_name(*k) == name);
    host.map(Kind::index)
        .or_else(|| names.get(name).copied())
        .map(|id| (id, &spaces[id]))
}

impl Model {
    /// A model of `world` before any call.
    ///
    /// # Errors
    ///
    /// A [`WorldError`] when the world cannot exist.
    pub fn new(world: &World) -> Result<Model, WorldError> {
        // Room for the world's namespaces and for one run creating every kind.
        let mut kernel = Kernel::host(world.namespaces.len() + Kind::ALL.len());
        // The world's names (the host ones are looked up by `host_name`).
        let mut names: HashMap<&str, NsId> = HashMap::with_capacity(world.namespaces.len());
        // The host namespaces the world gives paths to.
        let mut host_refs = [false; 8];

        // Pass 1: one object per entry (references resolved in pass 2).
        let mut ids = Vec::with_capacity(world.namespaces.len());
        for spec in &world.namespaces {
            check_fields(spec)?;
            let name = spec.name.as_str();
            if name.is_empty() {
                return Err(WorldError::InvalidName {
                    name: name.to_owned(),
                    reason: "a name cannot be empty".to_owned(),
                });
            }
            if name.starts_with("new:") {
                return Err(WorldError::InvalidName {
                    name: name.to_owned(),
                    reason: "new:* names are for namespaces the run creates".to_owned(),
                });
            }
            if name.starts_with("host:") {
                let id = spec.kind.index();
                let plain = NsSpec {
                    paths: spec.paths.clone(),
                    ..NsSpec::new(name, spec.kind)
                };
                if kernel.spaces[id].name != name || *spec != plain {
                    return Err(WorldError::InvalidName {
                        name: name.to_owned(),
                        reason: format!(
                            "an entry for a host namespace must be named host:{} with that type, and may only add paths",
                            spec.kind.spec_name()
                        ),
                    });
                }
                if std::mem::replace(&mut host_refs[id], true) {
                    return Err(WorldError::DuplicateName {
                        name: name.to_owned(),
                    });
                }
                ids.push(id);
                continue;
            }
            if names.contains_key(name) {
                return Err(WorldError::DuplicateName {
                    name: name.to_owned(),
                });
            }
            let mut space = Space::new(Cow::Owned(name.to_owned()), spec.kind, None);
            space.creator = spec.creator_uid.unwrap_or(0);
            space.entered = spec.entered.unwrap_or(true);
            kernel.spaces.push(space);
            let id = kernel.spaces.len() - 1;
            names.insert(name, id);
            ids.push(id);
        }

        // Pass 2: owners and pid parents.
        for (spec, &id) in world.namespaces.iter().zip(&ids) {
            if is_host(id) {
                continue;
            }
            let resolve = |field: &str, target: &str, expected: Kind| {
                let (tid, t) = lookup(&names, &kernel.spaces, target).ok_or_else(|| {
                    WorldError::UnknownReference {
                        name: spec.name.clone(),
                        field: field.to_owned(),
                        target: target.to_owned(),
                    }
                })?;
                if t.kind != expected {
                    return Err(WorldError::WrongKind {
                        name: spec.name.clone(),
                        field: field.to_owned(),
                        target: target.to_owned(),
                        expected,
                        found: t.kind,
                    });
                }
                Ok(tid)
            };
            let owner = resolve(
                "owner",
                spec.owner.as_deref().unwrap_or("host:user"),
                Kind::User,
            )?;
            let parent = match spec.kind {
                Kind::Pid => Some(resolve(
                    "parent",
                    spec.parent.as_deref().unwrap_or("host:pid"),
                    Kind::Pid,
                )?),
                _ => None,
            };
            kernel.spaces[id].owner = Some(owner);
            kernel.spaces[id].parent = parent;
        }

        // Levels, refusing cycles and nesting the kernel would not allow.
        let user_parent = |s: &Space| if s.kind == Kind::User { s.owner } else { None };
        let pid_parent = |s: &Space| s.parent;
        for id in Kind::ALL.len()..kernel.spaces.len() {
            let s = &kernel.spaces[id];
            let (level, max) = match s.kind {
                Kind::User => (
                    chain_level(&kernel.spaces, id, user_parent),
                    MAX_USER_NS_PARENT_LEVEL + 1,
                ),
                Kind::Pid => (
                    chain_level(&kernel.spaces, id, pid_parent),
                    MAX_PID_NS_LEVEL,
                ),
                _ => continue,
            };
            let level = level.ok_or_else(|| WorldError::Cycle {
                name: s.name.to_string(),
            })?;
            if level > max {
                return Err(WorldError::TooDeep {
                    name: s.name.to_string(),
                    kind: s.kind,
                    level,
                    max,
                });
            }
            kernel.spaces[id].level = level;
        }

        // Written maps, parents before children (a child's host ids must be
        // mapped in its parent).
        let mut users: Vec<(NsId, &NsSpec)> = world
            .namespaces
            .iter()
            .zip(&ids)
            .filter(|(s, id)| s.kind == Kind::User && !is_host(**id))
            .map(|(s, id)| (*id, s))
            .collect();
        users.sort_by_key(|(id, _)| kernel.spaces[*id].level);
        for (id, spec) in users {
            for (ids_kind, lines) in [(Ids::Uid, &spec.uid_map), (Ids::Gid, &spec.gid_map)] {
                let Some(lines) = lines else { continue };
                let invalid = |reason: &str| WorldError::InvalidMap {
                    name: spec.name.clone(),
                    which: ids_kind.file(),
                    reason: reason.to_owned(),
                };
                check_map_lines(lines).map_err(invalid)?;
                let parent = kernel.owner_of(id);
                if !lines
                    .iter()
                    .all(|l| kernel.range_mapped(parent, ids_kind, l.host_id, l.size))
                {
                    return Err(invalid(
                        "host ids are not mapped in the parent user namespace",
                    ));
                }
                let lines = Some(Cow::Owned(lines.clone()));
                match ids_kind {
                    Ids::Uid => kernel.spaces[id].uid_map = lines,
                    Ids::Gid => kernel.spaces[id].gid_map = lines,
                }
            }
        }

        // The file system.
        let paths = world
            .namespaces
            .iter()
            .map(|s| s.paths.len())
            .sum::<usize>();
        // Each path, and usually few directories besides.
        let mut nodes: HashMap<Box<str>, Node> = HashMap::with_capacity(paths + world.files.len());
        let mut add = |path: String, node: Node| match nodes.entry(path.into()) {
            std::collections::hash_map::Entry::Occupied(e) => Err(WorldError::DuplicatePath {
                path: PathBuf::from(&**e.key()),
            }),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(node);
                Ok(())
            }
        };
        for (spec, &id) in world.namespaces.iter().zip(&ids) {
            for p in &spec.paths {
                let p = world_path(p)?;
                kernel.spaces[id].paths.push(PathBuf::from(&p));
                add(p, Node::Ns(id))?;
            }
        }
        for (p, spec) in &world.files {
            let node = match spec {
                FileSpec::Directory => Node::Dir,
                FileSpec::Regular
                | FileSpec::Unreadable
                | FileSpec::Fifo
                | FileSpec::Socket
                | FileSpec::Device => Node::File,
            };
            add(world_path(p)?, node)?;
        }
        // Every ancestor of a world path is a directory, unless the world
        // says otherwise (a file there makes the path below it ENOTDIR).
        let paths: Vec<Box<str>> = nodes.keys().cloned().collect();
        for p in &paths {
            for (end, _) in p.match_indices('/').skip(1) {
                if !nodes.contains_key(&p[..end]) {
                    nodes.insert(p[..end].into(), Node::Dir);
                }
            }
        }

        // The caller.
        let c = &world.caller;
        if c.threads == 0 {
            return Err(WorldError::InvalidCaller {
                reason: "a process has at least one thread".to_owned(),
            });
        }
        for (&kind, name) in &c.namespaces {
            let field = format!("namespaces.{}", kind.spec_name());
            let (id, s) = lookup(&names, &kernel.spaces, name).ok_or_else(|| {
                WorldError::UnknownReference {
                    name: "caller".to_owned(),
                    field: field.clone(),
                    target: name.clone(),
                }
            })?;
            if s.kind != kind {
                return Err(WorldError::WrongKind {
                    name: "caller".to_owned(),
                    field,
                    target: name.clone(),
                    expected: kind,
                    found: s.kind,
                });
            }
            if kind == Kind::Time && !s.entered {
                return Err(WorldError::InvalidCaller {
                    reason: format!(
                        "it is in time namespace {name:?}, so that namespace is entered"
                    ),
                });
            }
            kernel.caller.ns[kind.index()] = id;
        }
        let caller = &mut kernel.caller;
        caller.pid_for_children = caller.ns[Kind::Pid.index()];
        caller.time_for_children = caller.ns[Kind::Time.index()];
        caller.euid = c.uid;
        caller.egid = c.gid;
        caller.caps = c.caps.unwrap_or(c.uid == 0);
        caller.threads = c.threads;
        caller.fs_shared = c.threads > 1;
        let parent = caller.cred();

        Ok(Model {
            kernel,
            parent,
            nodes,
            fds: BTreeMap::new(),
            calls: Vec::new(),
            faults: FaultScript::default(),
            fallible_calls: 0,
            bad_closes: 0,
        })
    }

    /// Replaces the fault script. Positions count every fallible call since
    /// the model was made, so set it before the run.
    pub fn set_faults(&mut self, faults: FaultScript) {
        self.faults = faults;
    }

    /// Every call answered so far, in order (close and thread count included).
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// Number of fds open now.
    pub fn open_fd_count(&self) -> usize {
        self.fds.len()
    }

    /// The fds open now, lowest first.
    pub fn open_fds(&self) -> Vec<OpenFdView> {
        self.fds
            .iter()
            .map(|(&fd, o)| OpenFdView {
                fd,
                path: o.path.clone(),
                namespace: match o.target {
                    Target::Ns(id) => Some(self.kernel.spaces[id].name.to_string()),
                    Target::File => None,
                },
                cloexec: o.cloexec,
            })
            .collect()
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

    /// A view of the namespace named `name`.
    pub fn namespace(&self, name: &str) -> Option<NsView> {
        self.find(name).map(|id| self.view(id))
    }

    /// Every namespace object, host ones first, then the world's, then the
    /// ones the run created.
    pub fn namespaces(&self) -> Vec<NsView> {
        (0..self.kernel.spaces.len())
            .map(|id| self.view(id))
            .collect()
    }

    fn find(&self, name: &str) -> Option<NsId> {
        self.kernel.spaces.iter().position(|s| s.name == name)
    }

    fn view(&self, id: NsId) -> NsView {
        let s = &self.kernel.spaces[id];
        let name_of = |id: Option<NsId>| id.map(|i| self.kernel.spaces[i].name.to_string());
        let (user, pid, time) = (
            s.kind == Kind::User,
            s.kind == Kind::Pid,
            s.kind == Kind::Time,
        );
        NsView {
            name: s.name.to_string(),
            kind: s.kind,
            owner: name_of(s.owner),
            parent: match s.kind {
                Kind::User => name_of(s.owner),
                Kind::Pid => name_of(s.parent),
                _ => None,
            },
            level: (user || pid).then_some(s.level),
            creator_uid: user.then_some(s.creator),
            uid_map: s.map(Ids::Uid).filter(|_| user).map(<[_]>::to_vec),
            gid_map: s.map(Ids::Gid).filter(|_| user).map(<[_]>::to_vec),
            setgroups_allowed: user.then_some(s.setgroups_allowed),
            has_init: pid.then_some(s.has_init),
            entered: time.then_some(s.entered),
            offsets: s.offsets.clone(),
            paths: s.paths.clone(),
        }
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

    fn write_id_maps_as_parent(
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

    /// What `path` names now, or the errno of resolving it.
    fn resolve(&self, path: &Path) -> Result<Node, Errno> {
        let (norm, trailing_slash) = normalize(path);
        // Every component before the last must be a directory.
        for (end, _) in norm.match_indices('/').skip(1) {
            match self.node(&norm[..end]) {
                None => return Err(Errno::ENOENT),
                Some(Node::Dir) => {}
                Some(_) => return Err(Errno::ENOTDIR),
            }
        }
        match self.node(&norm) {
            None => Err(Errno::ENOENT),
            Some(node) if trailing_slash && node != Node::Dir => Err(Errno::ENOTDIR),
            Some(node) => Ok(node),
        }
    }

    /// The node at a path in normal form (see [`normalize`]).
    fn node(&self, path: &str) -> Option<Node> {
        let mut parts = path.split('/').skip(1);
        let first = (parts.next(), parts.next(), parts.next(), parts.next());
        let more = parts.next().is_some();
        match (first, more) {
            ((None, ..) | (Some("proc"), None, ..), _) => return Some(Node::Dir),
            ((Some("proc"), Some("self"), None, _), _)
            | ((Some("proc"), Some("self"), Some("ns"), None), _) => return Some(Node::Dir),
            ((Some("proc"), Some("self"), Some("ns"), Some(entry)), false) => {
                return self.proc_self_ns(entry).map(Node::Ns)
            }
            ((Some("proc"), Some("self"), ..), _) => return None,
            _ => {}
        }
        self.nodes.get(path).copied()
    }

    /// `/proc/self/ns/<entry>`: the caller's namespace now (namespaces(7)).
    fn proc_self_ns(&self, entry: &str) -> Option<NsId> {
        let c = &self.kernel.caller;
        Kind::ALL.into_iter().find_map(|k| {
            if entry == k.proc_name() {
                Some(c.ns[k.index()])
            } else if entry == k.proc_name_for_children() {
                match k {
                    Kind::Pid if !self.kernel.spaces[c.pid_for_children].has_init => None,
                    Kind::Pid => Some(c.pid_for_children),
                    _ => Some(c.time_for_children),
                }
            } else {
                None
            }
        })
    }

    fn entry(&self, fd: &ModelFd) -> Option<&OpenFile> {
        self.fds.get(&fd.num).filter(|o| o.serial == fd.serial)
    }

    fn target_kind(&self, target: Target) -> Option<Kind> {
        match target {
            Target::Ns(id) => Some(self.kernel.spaces[id].kind),
            Target::File => None,
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

    fn allocate_fd(&mut self, path: &Path, target: Target) -> ModelFd {
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

/// Depth of `id` along `up`, or `None` when the chain loops.
fn chain_level(spaces: &[Space], id: NsId, up: impl Fn(&Space) -> Option<NsId>) -> Option<u32> {
    let mut level = 0u32;
    let mut at = id;
    while let Some(next) = up(&spaces[at]) {
        level += 1;
        if level as usize > spaces.len() {
            return None;
        }
        at = next;
    }
    Some(level)
}

/// Refuses fields set on a kind they do not apply to.
fn check_fields(spec: &NsSpec) -> Result<(), WorldError> {
    let wrong = |field: &'static str, applies_to: Kind| WorldError::FieldOnWrongKind {
        name: spec.name.clone(),
        kind: spec.kind,
        field,
        applies_to,
    };
    let only = |set: bool, field: &'static str, applies_to: Kind| {
        if set && spec.kind != applies_to {
            Err(wrong(field, applies_to))
        } else {
            Ok(())
        }
    };
    only(spec.parent.is_some(), "parent", Kind::Pid)?;
    only(spec.creator_uid.is_some(), "creator_uid", Kind::User)?;
    only(spec.uid_map.is_some(), "uid_map", Kind::User)?;
    only(spec.gid_map.is_some(), "gid_map", Kind::User)?;
    only(spec.entered.is_some(), "entered", Kind::Time)
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
                Node::Ns(id) => Ok(m.allocate_fd(path, Target::Ns(id))),
                Node::Dir | Node::File => Ok(m.allocate_fd(path, Target::File)),
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
                None | Some(Target::File) => Err(Errno::EBADF),
                Some(Target::Ns(id)) if m.kernel.spaces[id].kind != kind => Err(Errno::EINVAL),
                Some(Target::Ns(id)) => m.kernel.setns(id, kind),
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
        let one = (kinds.len() == 1).then(|| kinds.iter().next()).flatten();
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
    fn set_root_propagation(&mut self, _: crate::config::Propagation) -> Result<(), Errno> {
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
}

/// The runtime parent for the model: at `id-mapping` it writes the maps
/// with [`Model::parent_write_id_maps`]; `cgroup-placed` needs nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct ModelParent;

impl SyncHooks<Model> for ModelParent {
    fn sync(&mut self, request: SyncRequest<'_>, sys: &mut Model) -> Result<(), SyncError> {
        match request {
            SyncRequest::IdMapping { uid, gid } => sys
                .write_id_maps_as_parent(uid, gid)
                .map_err(|(file, errno)| SyncError::MapWrite { file, errno }),
            SyncRequest::CgroupPlaced => Ok(()),
        }
    }
}

/// Applies `plan` to `model` with [`ModelParent`] at the sync points.
///
/// ```
/// use nsapply::{plan, NsConfig};
/// use nsapply::model::{simulate, Model, World};
/// let cfg = NsConfig::from_json(r#"{"linux":{"namespaces":[{"type":"pid"}]}}"#).unwrap();
/// let mut model = Model::new(&World::default()).unwrap();
/// let run = simulate(&plan(&cfg), &mut model);
/// assert!(run.result.is_ok());
/// assert_eq!(model.current(nsapply::Kind::Pid), "new:pid:1");
/// ```
pub fn simulate(plan: &Plan, model: &mut Model) -> Applied {
    // One allocation for the calls of a usual run: a step is one call,
    // an open two, and the thread checks a few more.
    model.calls.reserve(2 * plan.steps().len());
    apply(plan, model, &mut ModelParent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Clock, NsConfig};
    use crate::error::ErrorCode;
    use crate::plan::plan;

    fn model(world: World) -> Model {
        Model::new(&world).expect("a valid world")
    }

    fn open(m: &mut Model, path: &str) -> ModelFd {
        m.open_ns(Path::new(path)).expect("path opens")
    }

    fn map(host_id: u32, size: u32) -> Vec<IdMapping> {
        vec![IdMapping {
            container_id: 0,
            host_id,
            size,
        }]
    }

    fn offset(secs: i64, nanosecs: u32) -> TimeOffset {
        TimeOffset {
            clock: Clock::Monotonic,
            secs,
            nanosecs,
        }
    }

    /// A rootless caller (uid 1000) and the namespaces a rootless runtime
    /// made earlier: user namespace `u` (root in it is uid 1000) at
    /// /run/u, and network namespace `n` owned by `u` at /run/n.
    fn rootless() -> World {
        World::new()
            .caller(CallerSpec::unprivileged(1000, 1000))
            .namespace(
                NsSpec::new("u", Kind::User)
                    .created_by(1000)
                    .maps(map(1000, 1), map(1000, 1))
                    .at("/run/u"),
            )
            .namespace(NsSpec::new("n", Kind::Network).owned_by("u").at("/run/n"))
    }

    fn config(json: &str) -> Plan {
        plan(&NsConfig::from_json(json).expect("a valid config"))
    }

    // DESIGN §5, one test per row of the errno table.

    #[test]
    fn open_of_a_missing_path_is_enoent() {
        let mut m = model(World::new().file("/run/a", FileSpec::Regular));
        assert_eq!(m.open_ns(Path::new("/run/b")).err(), Some(Errno::ENOENT));
        assert_eq!(
            m.open_ns(Path::new("/nowhere/b")).err(),
            Some(Errno::ENOENT)
        );
        assert_eq!(
            m.open_ns(Path::new("/proc/self/ns/bogus")).err(),
            Some(Errno::ENOENT)
        );
        assert_eq!(m.open_fd_count(), 0);
    }

    #[test]
    fn nstype_of_a_non_namespace_file_is_enotty() {
        let mut m = model(
            World::new()
                .file("/etc/hostname", FileSpec::Regular)
                .file("/srv", FileSpec::Directory),
        );
        for path in ["/etc/hostname", "/srv", "/etc"] {
            let fd = open(&mut m, path);
            assert_eq!(m.ns_get_nstype(&fd), Err(Errno::ENOTTY), "{path}");
            m.close(fd);
        }
    }

    #[test]
    fn setns_with_a_non_namespace_fd_is_ebadf() {
        // Not EINVAL, as for an fd opened for reading: a file that is not a
        // namespace is held as an O_PATH reference, which setns refuses.
        let mut m = model(World::new().file("/etc/hostname", FileSpec::Regular));
        let fd = open(&mut m, "/etc/hostname");
        assert_eq!(m.setns(&fd, Kind::Network), Err(Errno::EBADF));
        m.close(fd);
    }

    #[test]
    fn setns_with_a_type_other_than_the_namespace_is_einval() {
        let mut m = model(World::new());
        let fd = open(&mut m, "/proc/self/ns/ipc");
        assert_eq!(m.ns_get_nstype(&fd), Ok(Kind::Ipc.clone_flag()));
        assert_eq!(m.setns(&fd, Kind::Network), Err(Errno::EINVAL));
        m.close(fd);
    }

    #[test]
    fn setns_user_into_the_callers_own_user_namespace_is_einval() {
        let mut m = model(World::new());
        let fd = open(&mut m, "/proc/self/ns/user");
        assert_eq!(m.setns(&fd, Kind::User), Err(Errno::EINVAL));
        m.close(fd);
    }

    #[test]
    fn setns_user_while_multithreaded_is_einval() {
        let mut m = model(rootless().caller(CallerSpec::root().threads(2)));
        let fd = open(&mut m, "/run/u");
        assert_eq!(m.setns(&fd, Kind::User), Err(Errno::EINVAL));
        assert_eq!(m.current(Kind::User), "host:user");
        m.close(fd);
    }

    #[test]
    fn setns_mount_while_multithreaded_is_einval() {
        let world = World::new()
            .caller(CallerSpec::root().threads(3))
            .namespace(NsSpec::new("m", Kind::Mount).at("/run/m"));
        let mut m = model(world);
        let fd = open(&mut m, "/run/m");
        assert_eq!(m.setns(&fd, Kind::Mount), Err(Errno::EINVAL));
        m.close(fd);
    }

    #[test]
    fn setns_time_while_multithreaded_is_eusers() {
        let world = World::new()
            .caller(CallerSpec::root().threads(2))
            .namespace(NsSpec::new("t", Kind::Time).at("/run/t"));
        let mut m = model(world);
        let fd = open(&mut m, "/run/t");
        assert_eq!(m.setns(&fd, Kind::Time), Err(Errno::EUSERS));
        m.close(fd);
    }

    #[test]
    fn setns_pid_into_an_ancestor_pid_namespace_is_einval() {
        let world = World::new()
            .namespace(NsSpec::new("outer", Kind::Pid).at("/run/outer"))
            .namespace(NsSpec::new("inner", Kind::Pid).child_of("outer"))
            .caller(CallerSpec::root().in_ns(Kind::Pid, "inner"));
        let mut m = model(world);
        let fd = open(&mut m, "/run/outer");
        assert_eq!(m.setns(&fd, Kind::Pid), Err(Errno::EINVAL));
        assert_eq!(m.for_children(Kind::Pid), "inner");
        m.close(fd);
    }

    #[test]
    fn setns_without_cap_sys_admin_over_owner_and_own_user_ns_is_eperm() {
        // No capabilities in its own user namespace.
        let world = World::new()
            .caller(CallerSpec::unprivileged(1000, 1000))
            .namespace(NsSpec::new("n", Kind::Network).at("/run/n"));
        let mut m = model(world.clone());
        let fd = open(&mut m, "/run/n");
        assert_eq!(m.setns(&fd, Kind::Network), Err(Errno::EPERM));
        m.close(fd);

        // Root inside a new user namespace has none over the host-owned target.
        let mut m = model(world.caller(CallerSpec::root()));
        let fd = open(&mut m, "/run/n");
        m.unshare(KindSet::one(Kind::User)).unwrap();
        assert_eq!(m.setns(&fd, Kind::Network), Err(Errno::EPERM));
        m.close(fd);
    }

    #[test]
    fn unshare_user_while_multithreaded_is_einval() {
        let mut m = model(World::new().caller(CallerSpec::unprivileged(1000, 1000).threads(2)));
        assert_eq!(m.unshare(KindSet::one(Kind::User)), Err(Errno::EINVAL));
        assert_eq!(m.current(Kind::User), "host:user");
    }

    #[test]
    fn unshare_pid_a_second_time_before_a_child_is_einval() {
        let mut m = model(World::new());
        m.unshare(KindSet::one(Kind::Pid)).unwrap();
        assert_eq!(m.unshare(KindSet::one(Kind::Pid)), Err(Errno::EINVAL));
        assert_eq!(m.for_children(Kind::Pid), "new:pid:1");
        assert_eq!(m.current(Kind::Pid), "host:pid");
    }

    #[test]
    fn unshare_non_user_without_cap_sys_admin_is_eperm() {
        let mut m = model(World::new().caller(CallerSpec::unprivileged(1000, 1000)));
        for kind in Kind::ALL.into_iter().filter(|k| *k != Kind::User) {
            assert_eq!(m.unshare(KindSet::one(kind)), Err(Errno::EPERM), "{kind}");
        }
        // A user namespace created in the same call grants them.
        assert_eq!(
            m.unshare(KindSet::one(Kind::User).with(Kind::Network)),
            Ok(())
        );
        assert_eq!(
            m.namespace("new:network:1").unwrap().owner.as_deref(),
            Some("new:user:1")
        );
    }

    #[test]
    fn time_offsets_after_a_process_entered_is_eacces() {
        // No unshare(time): time_for_children is the host's, which is entered.
        let mut m = model(World::new());
        assert_eq!(m.write_time_offsets(&[offset(10, 0)]), Err(Errno::EACCES));

        // After the first child entered the new namespace.
        m.unshare(KindSet::one(Kind::Time)).unwrap();
        assert_eq!(m.write_time_offsets(&[offset(10, 0)]), Ok(()));
        assert_eq!(m.fork(), Ok(Forked::Child));
        assert_eq!(m.write_time_offsets(&[offset(20, 0)]), Err(Errno::EACCES));
        assert_eq!(m.namespace("new:time:1").unwrap().offsets, [offset(10, 0)]);
    }

    #[test]
    fn time_offsets_with_nanosecs_out_of_range_is_einval() {
        let mut m = model(World::new());
        m.unshare(KindSet::one(Kind::Time)).unwrap();
        assert_eq!(
            m.write_time_offsets(&[offset(1, 1_000_000_000)]),
            Err(Errno::EINVAL)
        );
        assert_eq!(m.write_time_offsets(&[offset(1, 999_999_999)]), Ok(()));
    }

    #[test]
    fn uid_map_written_twice_is_eperm() {
        let mut m = model(World::new());
        m.unshare(KindSet::one(Kind::User)).unwrap();
        assert_eq!(m.write_uid_map(&map(100_000, 65_536)), Ok(()));
        assert_eq!(m.write_uid_map(&map(100_000, 65_536)), Err(Errno::EPERM));
        assert_eq!(m.write_uid_map(&map(200_000, 1)), Err(Errno::EPERM));
    }

    // Capabilities (user_namespaces(7)).

    #[test]
    fn root_joins_anything() {
        let mut world = World::new().namespace(
            NsSpec::new("u", Kind::User)
                .created_by(1000)
                .maps(map(1000, 1), map(1000, 1)),
        );
        for kind in Kind::ALL.into_iter().filter(|k| *k != Kind::User) {
            let mut ns = NsSpec::new(format!("x-{kind}"), kind)
                .owned_by("u")
                .at(format!("/run/{kind}"));
            if kind == Kind::Time {
                ns = ns.entered(false);
            }
            world = world.namespace(ns);
        }
        let world = world.namespace(NsSpec::new("u2", Kind::User).owned_by("u").at("/run/user"));
        let mut m = model(world);
        let fds: Vec<(Kind, ModelFd)> = Kind::ALL
            .into_iter()
            .map(|k| (k, open(&mut m, &format!("/run/{k}"))))
            .collect();
        // Every non-user kind first (as the owner is below the host), then user.
        for (kind, fd) in fds.iter().rev() {
            assert_eq!(m.setns(fd, *kind), Ok(()), "{kind}");
        }
        assert_eq!(m.current(Kind::Network), "x-network");
        assert_eq!(m.current(Kind::Pid), "host:pid");
        assert_eq!(m.for_children(Kind::Pid), "x-pid");
        assert_eq!(m.current(Kind::Time), "x-time");
        assert!(m.namespace("x-time").unwrap().entered.unwrap());
        assert_eq!(m.current(Kind::User), "u2");
        for (_, fd) in fds {
            m.close(fd);
        }
        assert_eq!((m.open_fd_count(), m.bad_closes()), (0, 0));
    }

    #[test]
    fn rootless_join_of_a_net_ns_owned_by_its_own_user_ns_needs_that_user_ns_first() {
        let mut m = model(rootless());
        assert!(m.capable_in("u"), "the creator's euid owns u");
        assert!(!m.capable_in("host:user"));
        let net = open(&mut m, "/run/n");
        let user = open(&mut m, "/run/u");
        assert_eq!(m.setns(&net, Kind::Network), Err(Errno::EPERM));
        assert_eq!(m.setns(&user, Kind::User), Ok(()));
        assert_eq!(m.euid(), 1000, "setns keeps the kuid");
        assert_eq!(m.setns(&net, Kind::Network), Ok(()));
        assert_eq!(m.current(Kind::Network), "n");
        m.close(net);
        m.close(user);
    }

    #[test]
    fn rootless_caller_cannot_join_a_user_ns_of_another_uid() {
        let world = rootless().namespace(
            NsSpec::new("other", Kind::User)
                .created_by(2000)
                .at("/run/o"),
        );
        let mut m = model(world);
        let fd = open(&mut m, "/run/o");
        assert_eq!(m.setns(&fd, Kind::User), Err(Errno::EPERM));
        m.close(fd);
    }

    #[test]
    fn setns_mount_checks_capabilities_before_threads() {
        let world = World::new()
            .caller(CallerSpec::unprivileged(1000, 1000).threads(2))
            .namespace(NsSpec::new("m", Kind::Mount).at("/run/m"));
        let mut m = model(world);
        let fd = open(&mut m, "/run/m");
        assert_eq!(m.setns(&fd, Kind::Mount), Err(Errno::EPERM));
        m.close(fd);
    }

    #[test]
    fn setns_time_checks_threads_before_capabilities() {
        let world = World::new()
            .caller(CallerSpec::unprivileged(1000, 1000).threads(2))
            .namespace(NsSpec::new("t", Kind::Time).at("/run/t"));
        let mut m = model(world);
        let fd = open(&mut m, "/run/t");
        assert_eq!(m.setns(&fd, Kind::Time), Err(Errno::EUSERS));
        m.close(fd);
    }

    #[test]
    fn setns_pid_into_a_sibling_is_einval_and_into_a_descendant_is_ok() {
        let world = World::new()
            .namespace(NsSpec::new("a", Kind::Pid))
            .namespace(NsSpec::new("b", Kind::Pid).at("/run/b"))
            .namespace(NsSpec::new("b1", Kind::Pid).child_of("b").at("/run/b1"))
            .caller(CallerSpec::root().in_ns(Kind::Pid, "a"));
        let mut m = model(world);
        let b = open(&mut m, "/run/b");
        assert_eq!(m.setns(&b, Kind::Pid), Err(Errno::EINVAL));
        m.close(b);

        let mut m = model(
            World::new()
                .namespace(NsSpec::new("b", Kind::Pid))
                .namespace(NsSpec::new("b1", Kind::Pid).child_of("b").at("/run/b1")),
        );
        let b1 = open(&mut m, "/run/b1");
        assert_eq!(m.setns(&b1, Kind::Pid), Ok(()));
        assert_eq!(
            (m.current(Kind::Pid), m.for_children(Kind::Pid)),
            ("host:pid", "b1")
        );
        // pid_for_children is not the active one: no new pid namespace now.
        assert_eq!(m.unshare(KindSet::one(Kind::Pid)), Err(Errno::EINVAL));
        m.close(b1);
    }

    // unshare.

    #[test]
    fn unshare_pid_is_allowed_again_in_the_child() {
        let mut m = model(World::new());
        m.unshare(KindSet::one(Kind::Pid)).unwrap();
        m.fork().unwrap();
        assert_eq!(m.current(Kind::Pid), "new:pid:1");
        assert_eq!(m.namespace("new:pid:1").unwrap().has_init, Some(true));
        assert_eq!(m.unshare(KindSet::one(Kind::Pid)), Ok(()));
        let view = m.namespace("new:pid:2").unwrap();
        assert_eq!(
            (view.parent.as_deref(), view.level),
            (Some("new:pid:1"), Some(2))
        );
        assert_eq!(view.has_init, Some(false));
    }

    #[test]
    fn fork_moves_the_child_into_pid_and_time_for_children() {
        let mut m = model(World::new().caller(CallerSpec::root().threads(4)));
        m.unshare(KindSet::one(Kind::Pid).with(Kind::Time)).unwrap();
        assert_eq!(m.current(Kind::Time), "host:time");
        assert!(!m.namespace("new:time:1").unwrap().entered.unwrap());
        assert_eq!(m.fork(), Ok(Forked::Child));
        assert!(m.has_forked());
        assert_eq!(m.threads(), 1);
        assert_eq!(m.current(Kind::Pid), "new:pid:1");
        assert_eq!(m.current(Kind::Time), "new:time:1");
        assert!(m.namespace("new:time:1").unwrap().entered.unwrap());
    }

    #[test]
    fn unshare_user_past_32_nested_levels_is_enospc() {
        // A chain of user namespaces u1..u33, each mapping root to its
        // parent's root; the caller starts at the deepest one it is given.
        let chain = |depth: u32| {
            let mut world = World::new();
            for level in 1..=depth {
                let parent = if level == 1 {
                    "host:user".to_owned()
                } else {
                    format!("u{}", level - 1)
                };
                world = world.namespace(
                    NsSpec::new(format!("u{level}"), Kind::User)
                        .owned_by(parent)
                        .maps(map(0, 1), map(0, 1)),
                );
            }
            world.caller(CallerSpec::root().in_ns(Kind::User, format!("u{depth}")))
        };
        let mut m = model(chain(32));
        assert_eq!(m.unshare(KindSet::one(Kind::User)), Ok(()));
        assert_eq!(m.namespace(m.current(Kind::User)).unwrap().level, Some(33));
        let mut m = model(chain(33));
        assert_eq!(m.unshare(KindSet::one(Kind::User)), Err(Errno::ENOSPC));
    }

    #[test]
    fn unshare_user_with_the_callers_uid_unmapped_is_eperm() {
        let mut m = model(World::new());
        m.unshare(KindSet::one(Kind::User)).unwrap();
        // Maps not written yet: kuid 0 has no id in the new namespace.
        assert_eq!(m.unshare(KindSet::one(Kind::User)), Err(Errno::EPERM));
        assert_eq!(m.current(Kind::User), "new:user:1");
    }

    #[test]
    fn unshare_of_several_kinds_is_all_or_nothing() {
        let mut m = model(World::new());
        m.unshare(KindSet::one(Kind::Pid)).unwrap();
        let set: KindSet = "user,uts,pid".parse().unwrap();
        assert_eq!(m.unshare(set), Err(Errno::EINVAL));
        assert_eq!(m.current(Kind::User), "host:user");
        assert_eq!(m.current(Kind::Uts), "host:uts");
        assert!(m.namespace("new:user:1").is_none());
        let call = m.calls().last().unwrap();
        assert_eq!((call.kind, call.kinds.len()), (None, 3));
    }

    #[test]
    fn unshare_pid_past_level_32_is_enospc() {
        let mut m = model(World::new());
        for _ in 0..32 {
            m.unshare(KindSet::one(Kind::Pid)).unwrap();
            m.fork().unwrap();
        }
        assert_eq!(m.namespace(m.current(Kind::Pid)).unwrap().level, Some(32));
        assert_eq!(m.unshare(KindSet::one(Kind::Pid)), Err(Errno::ENOSPC));
    }

    // Ids.

    #[test]
    fn set_root_ids_without_id_0_mapped_is_einval() {
        let mut m = model(World::new());
        m.unshare(KindSet::one(Kind::User)).unwrap();
        assert_eq!(m.set_root_ids(), Err(Errno::EINVAL));
        m.write_gid_map(&map(100_000, 10)).unwrap();
        assert_eq!(m.set_root_ids(), Err(Errno::EINVAL), "uid 0 still unmapped");
        assert_eq!(m.egid(), 100_000, "setresgid already succeeded");
    }

    #[test]
    fn set_root_ids_makes_the_mapped_kuid_effective() {
        let mut m = model(World::new());
        m.unshare(KindSet::one(Kind::User)).unwrap();
        m.parent_write_id_maps(&map(100_000, 65_536), &map(200_000, 65_536))
            .unwrap();
        assert_eq!(m.set_root_ids(), Ok(()));
        assert_eq!((m.euid(), m.egid()), (100_000, 200_000));
        assert!(m.capable_in("new:user:1"));
        assert!(!m.capable_in("host:user"));
    }

    #[test]
    fn set_root_ids_in_the_host_as_unprivileged_is_eperm() {
        let mut m = model(World::new().caller(CallerSpec::unprivileged(1000, 1000)));
        assert_eq!(m.set_root_ids(), Err(Errno::EPERM));
        assert_eq!((m.euid(), m.egid()), (1000, 1000));
    }

    #[test]
    fn unprivileged_parent_maps_only_its_own_ids() {
        let world = World::new().caller(CallerSpec::unprivileged(1000, 1000));
        let mut m = model(world.clone());
        m.unshare(KindSet::one(Kind::User)).unwrap();
        assert_eq!(m.write_uid_map(&map(100_000, 65_536)), Err(Errno::EPERM));
        assert_eq!(m.write_uid_map(&map(1001, 1)), Err(Errno::EPERM));
        assert_eq!(m.write_uid_map(&map(1000, 1)), Ok(()));
        // gid needs setgroups "deny" first.
        assert_eq!(m.write_gid_map(&map(1000, 1)), Err(Errno::EPERM));
        assert_eq!(m.write_setgroups_deny(), Ok(()));
        assert_eq!(m.write_gid_map(&map(1000, 1)), Ok(()));
        assert_eq!(
            m.write_setgroups_deny(),
            Err(Errno::EPERM),
            "gid_map is written"
        );
        assert_eq!(
            m.namespace("new:user:1").unwrap().setgroups_allowed,
            Some(false)
        );

        let mut m = model(world);
        m.unshare(KindSet::one(Kind::User)).unwrap();
        assert_eq!(m.parent_write_id_maps(&map(1000, 1), &map(1000, 1)), Ok(()));
        assert_eq!(m.set_root_ids(), Ok(()));
        assert_eq!(m.euid(), 1000);
    }

    #[test]
    fn id_map_lines_empty_overlapping_or_of_size_0_are_einval() {
        let line = |c, h, size| IdMapping {
            container_id: c,
            host_id: h,
            size,
        };
        let mut m = model(World::new());
        m.unshare(KindSet::one(Kind::User)).unwrap();
        assert_eq!(m.write_uid_map(&[]), Err(Errno::EINVAL));
        assert_eq!(m.write_uid_map(&[line(0, 1000, 0)]), Err(Errno::EINVAL));
        assert_eq!(
            m.write_uid_map(&[line(0, 1000, 10), line(5, 5000, 10)]),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            m.write_uid_map(&[line(0, 1000, 10), line(100, 1005, 10)]),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            m.write_uid_map(&[line(0, 1000, 10), line(100, 2000, 10)]),
            Ok(())
        );
    }

    #[test]
    fn parent_write_id_maps_into_the_host_user_ns_is_eperm() {
        let mut m = model(World::new());
        assert_eq!(
            m.parent_write_id_maps(&map(0, 1), &map(0, 1)),
            Err(Errno::EPERM)
        );
    }

    #[test]
    fn nested_maps_need_a_writer_in_the_namespace_or_its_parent() {
        let mut m = model(World::new());
        m.unshare(KindSet::one(Kind::User)).unwrap();
        m.parent_write_id_maps(&map(100_000, 1000), &map(100_000, 1000))
            .unwrap();
        m.set_root_ids().unwrap();
        m.unshare(KindSet::one(Kind::User)).unwrap();
        // map_write: the opener (host root) is in neither the target nor its
        // parent, so even a valid map is EPERM (found by the model-vs-kernel
        // state machine on 6.18).
        assert_eq!(m.write_uid_map(&map(0, 1000)), Err(Errno::EPERM));
        assert_eq!(m.write_uid_map(&map(500, 1000)), Err(Errno::EPERM));
    }

    // Faults.

    #[test]
    fn fault_by_position_hits_the_nth_fallible_call() {
        let mut m = model(World::new());
        m.set_faults(FaultScript::parse("3=ENOMEM").unwrap());
        let fd = open(&mut m, "/proc/self/ns/net"); // 1
        assert_eq!(m.thread_count(), Ok(1)); // not counted
        assert_eq!(m.ns_get_nstype(&fd), Ok(Kind::Network.clone_flag())); // 2
        m.close(fd); // not counted
        assert_eq!(m.unshare(KindSet::one(Kind::Uts)), Err(Errno::ENOMEM)); // 3
        assert_eq!(m.unshare(KindSet::one(Kind::Uts)), Ok(())); // 4
        let injected: Vec<bool> = m.calls().iter().map(|c| c.injected).collect();
        assert_eq!(injected, [false, false, false, false, true, false]);
    }

    #[test]
    fn fault_by_op_and_kind_hits_every_matching_call() {
        let world = World::new()
            .namespace(NsSpec::new("n", Kind::Network).at("/run/n"))
            .namespace(NsSpec::new("i", Kind::Ipc).at("/run/i"));
        let mut m = model(world);
        m.set_faults(FaultScript::parse("setns:network=EPERM, open:ipc=EACCES").unwrap());
        assert_eq!(m.open_ns(Path::new("/run/i")).err(), Some(Errno::EACCES));
        assert_eq!(
            m.open_ns(Path::new("/proc/self/ns/ipc")).err(),
            Some(Errno::EACCES)
        );
        let n = open(&mut m, "/run/n");
        assert_eq!(m.setns(&n, Kind::Network), Err(Errno::EPERM));
        assert_eq!(m.setns(&n, Kind::Network), Err(Errno::EPERM));
        m.close(n);
        assert_eq!(m.calls().iter().filter(|c| c.injected).count(), 4);
    }

    #[test]
    fn a_faulted_call_changes_no_state() {
        let mut m = model(rootless());
        m.set_faults(
            FaultScript::parse("setns:user=EIO,unshare=ENOMEM,fork=EAGAIN,open:network=EMFILE")
                .unwrap(),
        );
        let user = open(&mut m, "/run/u");
        assert_eq!(m.setns(&user, Kind::User), Err(Errno::EIO));
        assert_eq!(m.current(Kind::User), "host:user");
        assert_eq!(m.unshare(KindSet::one(Kind::User)), Err(Errno::ENOMEM));
        assert!(m.namespace("new:user:1").is_none());
        assert_eq!(m.fork(), Err(Errno::EAGAIN));
        assert!(!m.has_forked());
        assert_eq!(m.open_ns(Path::new("/run/n")).err(), Some(Errno::EMFILE));
        assert_eq!(m.open_fd_count(), 1);
        m.close(user);
        assert_eq!(m.open_fd_count(), 0);
    }

    #[test]
    fn a_threads_fault_fails_thread_count() {
        let mut m = model(World::new());
        m.set_faults(FaultScript::parse("threads=EIO").unwrap());
        assert_eq!(
            m.thread_count(),
            Err(ThreadCountError {
                errno: Some(Errno::EIO)
            })
        );
        assert_eq!(m.calls()[0].op, CallOp::Threads);
    }

    #[test]
    fn fault_rules_parse_print_and_serialize() {
        for rule in [
            "3=EPERM",
            "setns=EINVAL",
            "setns:network=EPERM",
            "threads=EIO",
            "open:user=EACCES",
            "time-offsets=EACCES",
        ] {
            assert_eq!(FaultScript::parse_rule(rule).unwrap().to_string(), rule);
        }
        for bad in [
            "",
            "3",
            "0=EPERM",
            "x=EPERM",
            "setns:net=EPERM",
            "setns=EWHAT",
            "close=EIO",
        ] {
            assert!(FaultScript::parse_rule(bad).is_err(), "{bad:?}");
        }
        let script = FaultScript::parse("2=EIO,unshare:pid=EINVAL").unwrap();
        let json = serde_json::to_string(&script).unwrap();
        assert_eq!(json, r#"{"faults":["2=EIO","unshare:pid=EINVAL"]}"#);
        assert_eq!(serde_json::from_str::<FaultScript>(&json).unwrap(), script);
    }

    // The file system.

    #[test]
    fn proc_self_ns_ipc_resolves_to_the_current_ipc_ns() {
        let mut m = model(World::new());
        let before = open(&mut m, "/proc/self/ns/ipc");
        m.unshare(KindSet::one(Kind::Ipc)).unwrap();
        let after = open(&mut m, "/proc/self/ns/ipc");
        assert_eq!(m.current(Kind::Ipc), "new:ipc:1");
        let views = m.open_fds();
        assert_eq!(views[0].namespace.as_deref(), Some("host:ipc"));
        assert_eq!(views[1].namespace.as_deref(), Some("new:ipc:1"));
        // The fd keeps its namespace: joining it goes back.
        assert_eq!(m.setns(&before, Kind::Ipc), Ok(()));
        assert_eq!(m.current(Kind::Ipc), "host:ipc");
        m.close(before);
        m.close(after);
    }

    #[test]
    fn proc_self_ns_for_children_entries_follow_unshare() {
        let mut m = model(World::new());
        m.unshare(KindSet::one(Kind::Pid).with(Kind::Time)).unwrap();
        // pidns_for_children_get: hidden until the new pid namespace has an
        // init (found by the model-vs-kernel state machine on 6.18).
        let hidden = m.open_ns(Path::new("/proc/self/ns/pid_for_children"));
        assert_eq!(hidden.err(), Some(Errno::ENOENT));
        let pid = open(&mut m, "/proc/self/ns/pid");
        let time_children = open(&mut m, "/proc/self/ns/time_for_children");
        let names: Vec<Option<String>> = m.open_fds().into_iter().map(|f| f.namespace).collect();
        assert_eq!(names, [Some("host:pid".into()), Some("new:time:1".into())]);
        for fd in [pid, time_children] {
            m.close(fd);
        }
        // The child is the init of the new pid namespace: visible from there.
        assert_eq!(m.fork(), Ok(Forked::Child));
        let pid = open(&mut m, "/proc/self/ns/pid_for_children");
        let names: Vec<Option<String>> = m.open_fds().into_iter().map(|f| f.namespace).collect();
        assert_eq!(names, [Some("new:pid:1".into())]);
        m.close(pid);
    }

    #[test]
    fn every_file_that_is_not_a_namespace_opens_and_is_enotty() {
        // Opening a namespace path takes a reference only (O_PATH): no
        // permission is needed, a FIFO does not block, no driver runs; the
        // type check then refuses the file.
        let mut world = World::new();
        let specs = [
            FileSpec::Regular,
            FileSpec::Directory,
            FileSpec::Unreadable,
            FileSpec::Fifo,
            FileSpec::Socket,
            FileSpec::Device,
        ];
        for (i, spec) in specs.iter().enumerate() {
            world = world.file(format!("/f/{i}"), *spec);
        }
        let mut m = model(world);
        for (i, spec) in specs.iter().enumerate() {
            let fd = m.open_ns(Path::new(&format!("/f/{i}"))).unwrap();
            assert_eq!(m.ns_get_nstype(&fd), Err(Errno::ENOTTY), "{spec:?}");
            assert_eq!(m.setns(&fd, Kind::Network), Err(Errno::EBADF), "{spec:?}");
            m.close(fd);
        }
        assert_eq!(m.open_fd_count(), 0);
    }

    #[test]
    fn open_through_a_file_is_enotdir() {
        let world = World::new()
            .file("/etc/hostname", FileSpec::Regular)
            .file("/root/secret", FileSpec::Unreadable)
            .namespace(NsSpec::new("n", Kind::Network).at("/run/netns/n"));
        let mut m = model(world);
        let open_err = |m: &mut Model, p: &str| m.open_ns(Path::new(p)).err();
        assert_eq!(open_err(&mut m, "/etc/hostname/x"), Some(Errno::ENOTDIR));
        assert_eq!(open_err(&mut m, "/etc/hostname/"), Some(Errno::ENOTDIR));
        assert_eq!(open_err(&mut m, "/run/netns/n/x"), Some(Errno::ENOTDIR));
        assert_eq!(
            open_err(&mut m, "/proc/self/ns/net/x"),
            Some(Errno::ENOTDIR)
        );
        assert_eq!(open_err(&mut m, "/root/secret/x"), Some(Errno::ENOTDIR));
        assert_eq!(open_err(&mut m, "/root/secret"), None);
        assert_eq!(open_err(&mut m, "/run/netns/../netns/n"), None);
        assert_eq!(m.open_fd_count(), 2);
    }

    #[test]
    fn fds_are_lowest_free_numbers_and_close_on_exec() {
        let mut m = model(World::new());
        let a = open(&mut m, "/proc/self/ns/net");
        let b = open(&mut m, "/proc/self/ns/uts");
        assert_eq!((a.number(), b.number()), (3, 4));
        m.close(a);
        let c = open(&mut m, "/proc/self/ns/ipc");
        assert_eq!(c.number(), 3);
        assert!(m.open_fds().iter().all(|f| f.cloexec));
        m.close(b);
        m.close(c);
    }

    #[test]
    fn an_fd_of_another_model_is_not_open_here() {
        let mut one = model(World::new());
        let mut two = model(World::new());
        let theirs = open(&mut two, "/proc/self/ns/net");
        let _ours = open(&mut one, "/proc/self/ns/uts");
        assert_eq!(one.ns_get_nstype(&theirs), Err(Errno::EBADF));
        assert_eq!(one.setns(&theirs, Kind::Network), Err(Errno::EBADF));
        one.close(theirs);
        assert_eq!((one.bad_closes(), one.open_fd_count()), (1, 1));
        assert_eq!(
            two.open_fd_count(),
            1,
            "leaked in two: it was never closed there"
        );
    }

    #[test]
    fn calls_serialize_with_kebab_ops_and_errno_names() {
        let mut m = model(World::new());
        m.unshare(KindSet::one(Kind::Time)).unwrap();
        m.write_time_offsets(&[offset(1, 2_000_000_000)])
            .unwrap_err();
        let json = serde_json::to_string(&m.calls()[1]).unwrap();
        assert_eq!(
            json,
            r#"{"op":"time-offsets","type":"time","path":"/proc/self/timens_offsets","result":"EINVAL"}"#
        );
        let back: Call = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m.calls()[1]);
    }

    // The engine on the model.

    #[test]
    fn simulate_closes_every_fd_on_success() {
        let world = World::new()
            .namespace(NsSpec::new("n", Kind::Network).at("/run/netns/a"))
            .namespace(NsSpec::new("m", Kind::Mount).at("/run/mnt"));
        let p = config(
            r#"{"linux":{"namespaces":[{"type":"network","path":"/run/netns/a"},{"type":"mount","path":"/run/mnt"},{"type":"uts"},{"type":"pid"}]}}"#,
        );
        let mut m = model(world);
        let run = simulate(&p, &mut m);
        assert!(run.trace.error.is_none(), "{}", run.trace);
        assert_eq!(run.result, Ok(Some(Forked::Child)));
        assert_eq!((m.open_fd_count(), m.bad_closes()), (0, 0));
        assert_eq!(m.current(Kind::Network), "n");
        assert_eq!(m.current(Kind::Mount), "m");
        assert_eq!(m.current(Kind::Pid), "new:pid:1");
        assert_eq!(run.trace, p.expected_trace());
    }

    #[test]
    fn simulate_closes_every_fd_on_a_fault() {
        let world = World::new()
            .namespace(NsSpec::new("n", Kind::Network).at("/run/netns/a"))
            .namespace(NsSpec::new("i", Kind::Ipc).at("/run/ipc"));
        let p = config(
            r#"{"linux":{"namespaces":[{"type":"network","path":"/run/netns/a"},{"type":"ipc","path":"/run/ipc"},{"type":"uts"}]}}"#,
        );
        for rule in [
            "1=EIO",
            "2=ENOMEM",
            "3=EIO",
            "setns:network=EINVAL",
            "unshare=EPERM",
            "open:network=EACCES",
        ] {
            let mut m = model(world.clone());
            m.set_faults(FaultScript::parse(rule).unwrap());
            let run = simulate(&p, &mut m);
            assert!(run.trace.error.is_some(), "{rule}");
            assert_eq!((m.open_fd_count(), m.bad_closes()), (0, 0), "{rule}");
        }
    }

    #[test]
    fn simulate_of_a_rootless_plan_with_its_own_id_succeeds() {
        let p = config(
            r#"{"linux":{"namespaces":[{"type":"user"},{"type":"network"},{"type":"pid"}],
               "uidMappings":[{"containerID":0,"hostID":1000,"size":1}],
               "gidMappings":[{"containerID":0,"hostID":1000,"size":1}]}}"#,
        );
        let mut m = model(World::new().caller(CallerSpec::unprivileged(1000, 1000)));
        let run = simulate(&p, &mut m);
        assert!(run.trace.error.is_none(), "{}", run.trace);
        assert_eq!(
            m.namespace("new:network:1").unwrap().owner.as_deref(),
            Some("new:user:1")
        );
        assert_eq!(m.euid(), 1000);
    }

    #[test]
    fn simulate_of_a_rootless_plan_mapping_a_range_fails_writing_uid_map() {
        let p = config(
            r#"{"linux":{"namespaces":[{"type":"user"}],
               "uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],
               "gidMappings":[{"containerID":0,"hostID":100000,"size":65536}]}}"#,
        );
        let mut m = model(World::new().caller(CallerSpec::unprivileged(1000, 1000)));
        let run = simulate(&p, &mut m);
        let error = run.trace.error.expect("the map write fails");
        assert_eq!(error.code, ErrorCode::SyncFailed);
        // The write's errno is the error's, not only words in the message.
        assert_eq!(error.errno, Some(Errno::EPERM));
        assert!(
            error
                .message
                .contains("writing uid_map of the child failed: EPERM (Operation not permitted)"),
            "{}",
            error.message
        );
    }

    #[test]
    fn simulate_joins_deferred_namespaces_after_the_user_namespace() {
        let p = config(
            r#"{"linux":{"namespaces":[{"type":"user","path":"/run/u"},{"type":"network","path":"/run/n"}]}}"#,
        );
        let mut m = model(rootless());
        let run = simulate(&p, &mut m);
        assert!(run.trace.error.is_none(), "{}", run.trace);
        let setns: Vec<String> = m
            .calls()
            .iter()
            .filter(|c| c.op == CallOp::Setns)
            .map(|c| format!("{}:{}", c.kind.unwrap(), c.result))
            .collect();
        assert_eq!(setns, ["network:EPERM", "user:ok", "network:ok"]);
        assert_eq!(m.current(Kind::Network), "n");
        assert_eq!(m.open_fd_count(), 0);
    }

    #[test]
    fn simulate_with_time_offsets_writes_them_before_the_child_enters() {
        let p = config(
            r#"{"linux":{"namespaces":[{"type":"time"}],
               "timeOffsets":{"monotonic":{"secs":86400,"nanosecs":0}}}}"#,
        );
        let mut m = model(World::new());
        let run = simulate(&p, &mut m);
        assert!(run.trace.error.is_none(), "{}", run.trace);
        let view = m.namespace(m.current(Kind::Time)).unwrap();
        assert_eq!(view.offsets, [offset(86_400, 0)]);
        assert_eq!(view.entered, Some(true));
    }

    // The world.

    #[test]
    fn world_json_round_trips() {
        let world = rootless()
            .namespace(
                NsSpec::new("p", Kind::Pid)
                    .owned_by("u")
                    .at("/proc/42/ns/pid"),
            )
            .namespace(NsSpec::new("t", Kind::Time).entered(false))
            .namespace(NsSpec::new("host:network", Kind::Network).at("/run/hostnet"))
            .file("/etc/hostname", FileSpec::Regular)
            .file("/srv", FileSpec::Directory)
            .file("/root/x", FileSpec::Unreadable)
            .file("/run/fifo", FileSpec::Fifo)
            .file("/run/sock", FileSpec::Socket)
            .file("/dev/x", FileSpec::Device)
            .caller(
                CallerSpec::unprivileged(1000, 1000)
                    .threads(2)
                    .in_ns(Kind::Pid, "p"),
            );
        let json = world.to_json();
        assert_eq!(World::from_json(&json).unwrap(), world);
        assert_eq!(World::from_json("{}").unwrap(), World::default());
        let parsed = World::from_json(
            r#"{"caller":{"uid":1000,"gid":1000,"namespaces":{"network":"n"}},
                "namespaces":[{"name":"n","type":"network","paths":["/run/n"]}],
                "files":{"/etc/x":"regular"}}"#,
        )
        .unwrap();
        let m = model(parsed);
        assert_eq!(m.current(Kind::Network), "n");
        assert!(!m.capable_in("host:user"), "caps default to uid == 0");
    }

    #[test]
    fn world_json_errors_name_the_problem() {
        let err = |json: &str| World::from_json(json).unwrap_err();
        assert!(matches!(
            err("{\n  \"caller\": 3\n}"),
            WorldError::Json { line: 2, .. }
        ));
        assert!(matches!(err(r#"{"bogus":1}"#), WorldError::Json { .. }));
        assert!(matches!(
            err(r#"{"namespaces":[{"name":"n","type":"network","owner":"nope"}]}"#),
            WorldError::UnknownReference { .. }
        ));
        assert!(matches!(
            err(
                r#"{"namespaces":[{"name":"i","type":"ipc"},{"name":"n","type":"network","owner":"i"}]}"#
            ),
            WorldError::WrongKind {
                expected: Kind::User,
                found: Kind::Ipc,
                ..
            }
        ));
        assert!(matches!(
            err(r#"{"namespaces":[{"name":"n","type":"network"},{"name":"n","type":"uts"}]}"#),
            WorldError::DuplicateName { .. }
        ));
        assert!(matches!(
            err(
                r#"{"namespaces":[{"name":"n","type":"network","paths":["/a"]}],"files":{"/a":"regular"}}"#
            ),
            WorldError::DuplicatePath { .. }
        ));
        assert!(matches!(
            err(r#"{"namespaces":[{"name":"n","type":"network","parent":"host:pid"}]}"#),
            WorldError::FieldOnWrongKind {
                field: "parent",
                ..
            }
        ));
        assert!(matches!(
            err(
                r#"{"namespaces":[{"name":"a","type":"user","owner":"b"},{"name":"b","type":"user","owner":"a"}]}"#
            ),
            WorldError::Cycle { .. }
        ));
        assert!(matches!(
            err(r#"{"namespaces":[{"name":"new:net:1","type":"network"}]}"#),
            WorldError::InvalidName { .. }
        ));
        assert!(matches!(
            err(r#"{"namespaces":[{"name":"host:network","type":"network","owner":"host:user"}]}"#),
            WorldError::InvalidName { .. }
        ));
        assert!(matches!(
            err(r#"{"files":{"etc/x":"regular"}}"#),
            WorldError::InvalidPath { .. }
        ));
        assert!(matches!(
            err(r#"{"files":{"/proc/self/ns/net":"regular"}}"#),
            WorldError::InvalidPath { .. }
        ));
        assert!(matches!(
            err(r#"{"caller":{"namespaces":{"pid":"host:uts"}}}"#),
            WorldError::WrongKind {
                expected: Kind::Pid,
                ..
            }
        ));
        assert!(matches!(
            err(r#"{"caller":{"threads":0}}"#),
            WorldError::InvalidCaller { .. }
        ));
        assert!(matches!(
            err(
                r#"{"caller":{"namespaces":{"time":"t"}},"namespaces":[{"name":"t","type":"time","entered":false}]}"#
            ),
            WorldError::InvalidCaller { .. }
        ));
        assert!(matches!(
            err(
                r#"{"namespaces":[{"name":"u","type":"user","uid_map":[{"containerID":0,"hostID":0,"size":0}]}]}"#
            ),
            WorldError::InvalidMap {
                which: "uid_map",
                ..
            }
        ));
        let e = err(r#"{"namespaces":[{"name":"n","type":"network","owner":"nope"}]}"#);
        assert_eq!(e.to_string(), r#"n: owner names unknown namespace "nope""#);
    }

    #[test]
    fn nesting_deeper_than_the_kernel_allows_is_refused() {
        let mut world = World::new();
        let mut parent = "host:pid".to_owned();
        for i in 0..33 {
            let name = format!("p{i}");
            world = world.namespace(NsSpec::new(name.clone(), Kind::Pid).child_of(parent));
            parent = name;
        }
        assert!(matches!(
            Model::new(&world).unwrap_err(),
            WorldError::TooDeep {
                level: 33,
                max: 32,
                ..
            }
        ));
    }
}
