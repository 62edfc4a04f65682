//! Errors at the crate's public boundaries, their stable codes, and errno values.
//!
//! Two boundaries, two enums: [`ConfigError`] (parse and validation, before
//! any syscall; the CLI exits 2) and [`ApplyError`] (the run against a
//! backend; the CLI exits 1). Every variant names the operation, the
//! namespace kind, the path and the errno where they exist, and maps to one
//! stable [`ErrorCode`] that traces, the CLI and outside tools read.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Propagation;
use crate::kind::Kind;

/// A Linux errno value, printed and serialized by its symbolic name (`"EPERM"`).
///
/// Both backends answer with this type, so a model trace and a kernel trace
/// compare errno for errno.
///
/// ```
/// use nsapply::Errno;
/// assert_eq!(Errno::EPERM.name(), "EPERM");
/// assert_eq!("ENOTTY".parse::<Errno>().unwrap(), Errno::ENOTTY);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Errno(pub i32);

macro_rules! errnos {
    ($($name:ident),* $(,)?) => {
        impl Errno {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                pub const $name: Errno = Errno(libc::$name);
            )*
            const TABLE: &'static [(&'static str, i32)] = &[$((stringify!($name), libc::$name)),*];
        }
    };
}

errnos!(
    EPERM,
    ENOENT,
    ESRCH,
    EINTR,
    EIO,
    ENXIO,
    E2BIG,
    ENOEXEC,
    EBADF,
    ECHILD,
    EAGAIN,
    ENOMEM,
    EACCES,
    EFAULT,
    EBUSY,
    EEXIST,
    EXDEV,
    ENODEV,
    ENOTDIR,
    EISDIR,
    EINVAL,
    ENFILE,
    EMFILE,
    ENOTTY,
    ETXTBSY,
    EFBIG,
    ENOSPC,
    ESPIPE,
    EROFS,
    EMLINK,
    EPIPE,
    EDOM,
    ERANGE,
    ENAMETOOLONG,
    ENOSYS,
    ELOOP,
    EUSERS,
    EOPNOTSUPP,
);

impl Errno {
    /// The raw errno number.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// The symbolic name (`"EPERM"`), or `"E<number>"` for values outside the table.
    pub fn name(self) -> std::borrow::Cow<'static, str> {
        match Self::TABLE.iter().find(|(_, v)| *v == self.0) {
            Some((n, _)) => std::borrow::Cow::Borrowed(n),
            None => std::borrow::Cow::Owned(format!("E{}", self.0)),
        }
    }

    /// The C library's description (strerror).
    pub fn description(self) -> String {
        std::io::Error::from_raw_os_error(self.0)
            .to_string()
            .split(" (os error")
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// The errno of the last failed libc call (`errno`).
    pub fn last() -> Errno {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

impl Errno {
    /// The errno an I/O error carries, if it came from a system call. An
    /// error made by the standard library itself (invalid UTF-8, a write
    /// that wrote nothing, out of memory) has none, and none is invented.
    ///
    /// ```
    /// use nsapply::Errno;
    /// let os = std::io::Error::from_raw_os_error(libc::EACCES);
    /// assert_eq!(Errno::of_io(&os), Some(Errno::EACCES));
    /// let own = std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8");
    /// assert_eq!(Errno::of_io(&own), None);
    /// ```
    pub fn of_io(e: &std::io::Error) -> Option<Errno> {
        e.raw_os_error().map(Errno)
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.description())
    }
}

/// Error of parsing an errno name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown errno name {0:?}")]
pub struct UnknownErrno(pub String);

impl std::str::FromStr for Errno {
    type Err = UnknownErrno;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((_, v)) = Self::TABLE.iter().find(|(n, _)| *n == s) {
            return Ok(Errno(*v));
        }
        s.strip_prefix('E')
            .and_then(|n| n.parse::<i32>().ok())
            .filter(|n| *n > 0)
            .map(Errno)
            .ok_or_else(|| UnknownErrno(s.to_owned()))
    }
}

impl Serialize for Errno {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Errno {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The stable error codes (DESIGN §3 and §6). Their kebab-case names are the
/// contract: CI, the CLI's `nsapply: <code>: ...` line and traces use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The document is not JSON or not an OCI config.
    InvalidConfig,
    /// A type appears twice in `linux.namespaces`.
    DuplicateNamespace,
    /// A `path` is not absolute.
    RelativePath,
    /// A type is not one of the eight.
    UnknownType,
    /// uid/gid mappings without a user namespace to create.
    MappingsWithoutNewUserNamespace,
    /// A user namespace joined by path, with mappings.
    UserNamespacePathWithMappings,
    /// A new user namespace without uid or gid mappings.
    MissingMappings,
    /// `timeOffsets` without a time namespace to create.
    TimeOffsetsWithoutNewTimeNamespace,
    /// Clock not monotonic/boottime, or nanosecs > 999999999.
    InvalidTimeOffset,
    /// A namespace path the kernel could never take (a NUL byte in it).
    InvalidPath,
    /// `linux.rootfsPropagation` is not one of the propagation names.
    InvalidRootfsPropagation,
    /// `linux.rootfsPropagation` without a new mount namespace (it would
    /// change the propagation of the caller's mounts).
    RootfsPropagationWithoutNewMountNamespace,
    /// NS_GET_NSTYPE said ENOTTY: the path is not a namespace file.
    NotANamespace,
    /// The path is a namespace of another type.
    WrongNamespaceType,
    /// The path does not exist (ENOENT).
    PathNotFound,
    /// open(2) or NS_GET_NSTYPE failed for another reason (EACCES, ...).
    OpenFailed,
    /// The process is not single-threaded where it must be.
    Multithreaded,
    /// The thread count could not be read (no procfs at `/proc`, no free fd).
    ThreadCountFailed,
    /// setns(2) failed.
    JoinFailed,
    /// unshare(2) failed.
    UnshareFailed,
    /// Becoming uid/gid 0 in the user namespace failed.
    SetidFailed,
    /// Writing `/proc/self/timens_offsets` failed.
    TimeOffsetsFailed,
    /// Setting the propagation of `/` in the new mount namespace failed.
    PropagationFailed,
    /// A caller-supplied sync point failed.
    SyncFailed,
    /// fork(2) failed.
    ForkFailed,
}

impl ErrorCode {
    /// Every code, for exhaustive tests and documentation.
    pub const ALL: [ErrorCode; 25] = [
        ErrorCode::InvalidConfig,
        ErrorCode::DuplicateNamespace,
        ErrorCode::RelativePath,
        ErrorCode::UnknownType,
        ErrorCode::MappingsWithoutNewUserNamespace,
        ErrorCode::UserNamespacePathWithMappings,
        ErrorCode::MissingMappings,
        ErrorCode::TimeOffsetsWithoutNewTimeNamespace,
        ErrorCode::InvalidTimeOffset,
        ErrorCode::InvalidPath,
        ErrorCode::InvalidRootfsPropagation,
        ErrorCode::RootfsPropagationWithoutNewMountNamespace,
        ErrorCode::NotANamespace,
        ErrorCode::WrongNamespaceType,
        ErrorCode::PathNotFound,
        ErrorCode::OpenFailed,
        ErrorCode::Multithreaded,
        ErrorCode::ThreadCountFailed,
        ErrorCode::JoinFailed,
        ErrorCode::UnshareFailed,
        ErrorCode::SetidFailed,
        ErrorCode::TimeOffsetsFailed,
        ErrorCode::PropagationFailed,
        ErrorCode::SyncFailed,
        ErrorCode::ForkFailed,
    ];

    /// The stable kebab-case name (`"duplicate-namespace"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidConfig => "invalid-config",
            ErrorCode::DuplicateNamespace => "duplicate-namespace",
            ErrorCode::RelativePath => "relative-path",
            ErrorCode::UnknownType => "unknown-type",
            ErrorCode::MappingsWithoutNewUserNamespace => "mappings-without-new-user-namespace",
            ErrorCode::UserNamespacePathWithMappings => "user-namespace-path-with-mappings",
            ErrorCode::MissingMappings => "missing-mappings",
            ErrorCode::TimeOffsetsWithoutNewTimeNamespace => {
                "time-offsets-without-new-time-namespace"
            }
            ErrorCode::InvalidTimeOffset => "invalid-time-offset",
            ErrorCode::InvalidPath => "invalid-path",
            ErrorCode::InvalidRootfsPropagation => "invalid-rootfs-propagation",
            ErrorCode::RootfsPropagationWithoutNewMountNamespace => {
                "rootfs-propagation-without-new-mount-namespace"
            }
            ErrorCode::NotANamespace => "not-a-namespace",
            ErrorCode::WrongNamespaceType => "wrong-namespace-type",
            ErrorCode::PathNotFound => "path-not-found",
            ErrorCode::OpenFailed => "open-failed",
            ErrorCode::Multithreaded => "multithreaded",
            ErrorCode::ThreadCountFailed => "thread-count-failed",
            ErrorCode::JoinFailed => "join-failed",
            ErrorCode::UnshareFailed => "unshare-failed",
            ErrorCode::SetidFailed => "setid-failed",
            ErrorCode::TimeOffsetsFailed => "time-offsets-failed",
            ErrorCode::PropagationFailed => "propagation-failed",
            ErrorCode::SyncFailed => "sync-failed",
            ErrorCode::ForkFailed => "fork-failed",
        }
    }

    /// Whether the code is an input error (CLI exit status 2) rather than an
    /// apply failure (exit status 1).
    pub const fn is_input_error(self) -> bool {
        matches!(
            self,
            ErrorCode::InvalidConfig
                | ErrorCode::DuplicateNamespace
                | ErrorCode::RelativePath
                | ErrorCode::UnknownType
                | ErrorCode::MappingsWithoutNewUserNamespace
                | ErrorCode::UserNamespacePathWithMappings
                | ErrorCode::MissingMappings
                | ErrorCode::TimeOffsetsWithoutNewTimeNamespace
                | ErrorCode::InvalidTimeOffset
                | ErrorCode::InvalidPath
                | ErrorCode::InvalidRootfsPropagation
                | ErrorCode::RootfsPropagationWithoutNewMountNamespace
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of the id maps an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MapKind {
    /// `uidMappings`.
    Uid,
    /// `gidMappings`.
    Gid,
    /// Both.
    Both,
}

impl fmt::Display for MapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MapKind::Uid => "uidMappings",
            MapKind::Gid => "gidMappings",
            MapKind::Both => "uidMappings and gidMappings",
        })
    }
}

/// A config.json that cannot be applied: malformed, or breaking a rule of
/// the runtime-spec (DESIGN §3). Raised before any syscall.
///
/// `index` is the entry's position in `linux.namespaces`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The document is not valid JSON, or not a valid OCI runtime config.
    #[error("config.json is malformed at line {line}, column {column}: {message}")]
    InvalidConfig {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A type appears twice (spec: "the runtime MUST generate an error").
    #[error("linux.namespaces[{index}]: type {kind} appears again (first at index {first_index})")]
    DuplicateNamespace {
        /// Index of the second occurrence.
        index: usize,
        /// The repeated kind.
        kind: Kind,
        /// Index of the first occurrence.
        first_index: usize,
    },
    /// A path that is not absolute (spec: "MUST be an absolute path").
    #[error("linux.namespaces[{index}] ({kind}): path {path:?} is not absolute")]
    RelativePath {
        /// Index of the entry.
        index: usize,
        /// The entry's kind.
        kind: Kind,
        /// The path as written.
        path: PathBuf,
    },
    /// A type that is not one of the eight spec names.
    #[error("linux.namespaces[{index}]: unknown namespace type {type_name:?} (expected user, pid, uts, ipc, network, cgroup, mount or time)")]
    UnknownType {
        /// Index of the entry.
        index: usize,
        /// The type as written.
        type_name: String,
    },
    /// Mappings, but the config creates no user namespace and joins none.
    #[error("{which} given but linux.namespaces creates no user namespace to map them into")]
    MappingsWithoutNewUserNamespace {
        /// Which mappings were given.
        which: MapKind,
    },
    /// A user namespace joined by path together with mappings.
    #[error("linux.namespaces[{index}] (user): joins {path:?} by path, but {which} are given; a joined user namespace keeps its own mappings")]
    UserNamespacePathWithMappings {
        /// Index of the user entry.
        index: usize,
        /// The user namespace path.
        path: PathBuf,
        /// Which mappings were given.
        which: MapKind,
    },
    /// A new user namespace without uid or gid mappings.
    #[error("linux.namespaces[{index}] (user): a new user namespace needs {which}")]
    MissingMappings {
        /// Index of the user entry.
        index: usize,
        /// Which mappings are missing.
        which: MapKind,
    },
    /// `timeOffsets` without a new time namespace.
    #[error("linux.timeOffsets given but {}", match (index, path) {
        (Some(i), Some(p)) => format!("linux.namespaces[{i}] (time) joins {p:?} by path; offsets can only be set on a new time namespace"),
        _ => "linux.namespaces creates no time namespace".to_owned(),
    })]
    TimeOffsetsWithoutNewTimeNamespace {
        /// Index of the time entry when it joins by path.
        index: Option<usize>,
        /// The joined path, if any.
        path: Option<PathBuf>,
    },
    /// A bad clock name or nanoseconds out of range (time_namespaces(7)).
    #[error("linux.timeOffsets[{clock:?}]: {reason}")]
    InvalidTimeOffset {
        /// The clock name as written.
        clock: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A path no system call could take: it holds a NUL byte, where the
    /// kernel's path would end (path_resolution(7)).
    #[error("linux.namespaces[{index}] ({kind}): path {path:?} contains a NUL byte")]
    InvalidPath {
        /// Index of the entry.
        index: usize,
        /// The entry's kind.
        kind: Kind,
        /// The path as written.
        path: PathBuf,
    },
    /// `linux.rootfsPropagation` is not a propagation name.
    #[error("linux.rootfsPropagation {value:?} is not one of shared, slave, private, unbindable, rshared, rslave, rprivate, runbindable")]
    InvalidRootfsPropagation {
        /// The value as written.
        value: String,
    },
    /// `linux.rootfsPropagation` without a mount namespace to create.
    #[error("linux.rootfsPropagation {value:?} given but {}", match (index, path) {
        (Some(i), Some(p)) => format!("linux.namespaces[{i}] (mount) joins {p:?} by path; nsapply changes propagation only in a mount namespace it creates"),
        _ => "linux.namespaces creates no mount namespace (it would change the propagation of the caller's own mounts)".to_owned(),
    })]
    RootfsPropagationWithoutNewMountNamespace {
        /// The value as written.
        value: String,
        /// Index of the mount entry when it joins by path.
        index: Option<usize>,
        /// The joined path, if any.
        path: Option<PathBuf>,
    },
}

impl ConfigError {
    /// The stable code.
    pub const fn code(&self) -> ErrorCode {
        match self {
            ConfigError::InvalidConfig { .. } => ErrorCode::InvalidConfig,
            ConfigError::DuplicateNamespace { .. } => ErrorCode::DuplicateNamespace,
            ConfigError::RelativePath { .. } => ErrorCode::RelativePath,
            ConfigError::UnknownType { .. } => ErrorCode::UnknownType,
            ConfigError::MappingsWithoutNewUserNamespace { .. } => {
                ErrorCode::MappingsWithoutNewUserNamespace
            }
            ConfigError::UserNamespacePathWithMappings { .. } => {
                ErrorCode::UserNamespacePathWithMappings
            }
            ConfigError::MissingMappings { .. } => ErrorCode::MissingMappings,
            ConfigError::TimeOffsetsWithoutNewTimeNamespace { .. } => {
                ErrorCode::TimeOffsetsWithoutNewTimeNamespace
            }
            ConfigError::InvalidTimeOffset { .. } => ErrorCode::InvalidTimeOffset,
            ConfigError::InvalidPath { .. } => ErrorCode::InvalidPath,
            ConfigError::InvalidRootfsPropagation { .. } => ErrorCode::InvalidRootfsPropagation,
            ConfigError::RootfsPropagationWithoutNewMountNamespace { .. } => {
                ErrorCode::RootfsPropagationWithoutNewMountNamespace
            }
        }
    }

    /// The index in `linux.namespaces` of the offending entry, when there is one.
    pub fn index(&self) -> Option<usize> {
        match self {
            ConfigError::DuplicateNamespace { index, .. }
            | ConfigError::RelativePath { index, .. }
            | ConfigError::UnknownType { index, .. }
            | ConfigError::UserNamespacePathWithMappings { index, .. }
            | ConfigError::MissingMappings { index, .. }
            | ConfigError::InvalidPath { index, .. } => Some(*index),
            ConfigError::TimeOffsetsWithoutNewTimeNamespace { index, .. }
            | ConfigError::RootfsPropagationWithoutNewMountNamespace { index, .. } => *index,
            _ => None,
        }
    }

    /// The namespace kind the error is about, when there is one.
    pub fn kind(&self) -> Option<Kind> {
        match self {
            ConfigError::DuplicateNamespace { kind, .. }
            | ConfigError::RelativePath { kind, .. }
            | ConfigError::InvalidPath { kind, .. } => Some(*kind),
            ConfigError::InvalidRootfsPropagation { .. }
            | ConfigError::RootfsPropagationWithoutNewMountNamespace { .. } => Some(Kind::Mount),
            ConfigError::MappingsWithoutNewUserNamespace { .. }
            | ConfigError::UserNamespacePathWithMappings { .. }
            | ConfigError::MissingMappings { .. } => Some(Kind::User),
            ConfigError::TimeOffsetsWithoutNewTimeNamespace { .. }
            | ConfigError::InvalidTimeOffset { .. } => Some(Kind::Time),
            ConfigError::InvalidConfig { .. } | ConfigError::UnknownType { .. } => None,
        }
    }

    /// The path the error is about, when there is one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            ConfigError::RelativePath { path, .. }
            | ConfigError::UserNamespacePathWithMappings { path, .. }
            | ConfigError::InvalidPath { path, .. } => Some(path),
            ConfigError::TimeOffsetsWithoutNewTimeNamespace { path, .. }
            | ConfigError::RootfsPropagationWithoutNewMountNamespace { path, .. } => {
                path.as_deref()
            }
            _ => None,
        }
    }
}

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

/// A namespace left unjoined when a join failed, listed in [`ApplyError::Join`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unjoined {
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Its path.
    pub path: PathBuf,
}

fn list_unjoined(v: &[Unjoined]) -> String {
    if v.len() <= 1 {
        return String::new();
    }
    let items: Vec<String> = v
        .iter()
        .map(|u| format!("{} {:?}", u.kind, u.path))
        .collect();
    format!("; namespaces left unjoined: {}", items.join(", "))
}

/// A plan that failed against a backend (DESIGN §6 apply codes).
///
/// Every variant carries the namespace kind, the path (for joins) and the
/// errno, so the message alone says which namespace failed and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// `ioctl(NS_GET_NSTYPE)` gave ENOTTY: the file is not a namespace.
    #[error("{kind} namespace path {path:?} is not a namespace file (NS_GET_NSTYPE: {errno})")]
    NotANamespace {
        /// The kind the config asked for.
        kind: Kind,
        /// The path.
        path: PathBuf,
        /// The errno (ENOTTY).
        errno: Errno,
    },
    /// The path is a namespace of another kind.
    #[error("{kind} namespace path {path:?} is a namespace of another type ({})", found.map_or_else(|| format!("nstype {raw:#x}"), |k| k.to_string()))]
    WrongNamespaceType {
        /// The kind the config asked for.
        kind: Kind,
        /// The path.
        path: PathBuf,
        /// The kind the kernel reported, if it is one of the eight.
        found: Option<Kind>,
        /// The raw `NS_GET_NSTYPE` answer.
        raw: i32,
    },
    /// The path does not exist.
    #[error("{kind} namespace path {path:?} does not exist: {errno}")]
    PathNotFound {
        /// The kind the config asked for.
        kind: Kind,
        /// The path.
        path: PathBuf,
        /// The errno (ENOENT, or ENOTDIR for a missing directory component).
        errno: Errno,
    },
    /// open(2) or `NS_GET_NSTYPE` failed with another errno.
    #[error("opening {kind} namespace path {path:?} failed: {errno}")]
    OpenFailed {
        /// The kind the config asked for.
        kind: Kind,
        /// The path.
        path: PathBuf,
        /// The errno.
        errno: Errno,
    },
    /// The process has more than one thread where the kernel requires one.
    #[error("{op}({kind}) needs a single-threaded process, but it has {threads} threads")]
    Multithreaded {
        /// The kind of the step that needs one thread.
        kind: Kind,
        /// `"setns"`, `"unshare"` or `"fork"`.
        op: &'static str,
        /// The thread count seen.
        threads: usize,
    },
    /// The thread count, which `op(kind)` must check first, could not be
    /// read (`/proc/self/stat`: no procfs at `/proc`, or no free fd).
    #[error("{op}({kind}) needs a single-threaded process, but the thread count could not be read: {}", errno.map_or_else(|| "/proc/self/stat is not a stat line (is /proc a procfs?)".to_owned(), |e| e.to_string()))]
    ThreadCount {
        /// The kind of the step that needs one thread.
        kind: Kind,
        /// `"setns"`, `"unshare"` or `"fork"`.
        op: &'static str,
        /// The errno of the failed read; `None` when the text read was not
        /// a stat line.
        errno: Option<Errno>,
    },
    /// setns(2) failed (fatal in pass 1, or the retry of a deferred join).
    #[error(
        "joining {kind} namespace {path:?} failed: {errno}{}",
        list_unjoined(unjoined)
    )]
    Join {
        /// The kind.
        kind: Kind,
        /// The path.
        path: PathBuf,
        /// The errno.
        errno: Errno,
        /// Every namespace left unjoined (this one first), in canonical order.
        unjoined: Vec<Unjoined>,
    },
    /// unshare(2) failed.
    #[error("creating a new {kind} namespace (unshare) failed: {errno}")]
    Unshare {
        /// The kind.
        kind: Kind,
        /// The errno.
        errno: Errno,
    },
    /// setresgid/setresuid to 0 in the user namespace failed.
    #[error("becoming uid/gid 0 in the user namespace failed: {errno}")]
    Setid {
        /// The errno.
        errno: Errno,
    },
    /// Writing the time offsets failed.
    #[error("writing /proc/self/timens_offsets for the new time namespace failed: {errno}")]
    TimeOffsets {
        /// The errno.
        errno: Errno,
    },
    /// `mount(NULL, "/", NULL, MS_<propagation>, NULL)` in the new mount
    /// namespace failed (mount(2), mount_namespaces(7)).
    #[error("making / {propagation} in the new mount namespace failed: {errno}")]
    Propagation {
        /// The propagation asked for.
        propagation: Propagation,
        /// The errno.
        errno: Errno,
    },
    /// A sync point failed (the caller's side of it, or the hand-off).
    #[error("sync point {point} failed: {source}")]
    Sync {
        /// The sync point.
        point: SyncPoint,
        /// What failed.
        #[source]
        source: SyncError,
    },
    /// fork(2) failed.
    #[error("fork into the new pid/time namespaces failed: {errno}")]
    Fork {
        /// The errno.
        errno: Errno,
    },
}

impl ApplyError {
    /// The stable code.
    pub const fn code(&self) -> ErrorCode {
        match self {
            ApplyError::NotANamespace { .. } => ErrorCode::NotANamespace,
            ApplyError::WrongNamespaceType { .. } => ErrorCode::WrongNamespaceType,
            ApplyError::PathNotFound { .. } => ErrorCode::PathNotFound,
            ApplyError::OpenFailed { .. } => ErrorCode::OpenFailed,
            ApplyError::Multithreaded { .. } => ErrorCode::Multithreaded,
            ApplyError::ThreadCount { .. } => ErrorCode::ThreadCountFailed,
            ApplyError::Propagation { .. } => ErrorCode::PropagationFailed,
            ApplyError::Join { .. } => ErrorCode::JoinFailed,
            ApplyError::Unshare { .. } => ErrorCode::UnshareFailed,
            ApplyError::Setid { .. } => ErrorCode::SetidFailed,
            ApplyError::TimeOffsets { .. } => ErrorCode::TimeOffsetsFailed,
            ApplyError::Sync { .. } => ErrorCode::SyncFailed,
            ApplyError::Fork { .. } => ErrorCode::ForkFailed,
        }
    }

    /// The namespace kind of the failed step (none for fork).
    pub fn kind(&self) -> Option<Kind> {
        match self {
            ApplyError::NotANamespace { kind, .. }
            | ApplyError::WrongNamespaceType { kind, .. }
            | ApplyError::PathNotFound { kind, .. }
            | ApplyError::OpenFailed { kind, .. }
            | ApplyError::Multithreaded { kind, .. }
            | ApplyError::ThreadCount { kind, .. }
            | ApplyError::Join { kind, .. }
            | ApplyError::Unshare { kind, .. } => Some(*kind),
            ApplyError::Propagation { .. } => Some(Kind::Mount),
            ApplyError::Setid { .. } => Some(Kind::User),
            ApplyError::TimeOffsets { .. } => Some(Kind::Time),
            ApplyError::Sync { point, .. } => Some(point.kind()),
            ApplyError::Fork { .. } => None,
        }
    }

    /// The path of the failed step, for opens and joins.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            ApplyError::NotANamespace { path, .. }
            | ApplyError::WrongNamespaceType { path, .. }
            | ApplyError::PathNotFound { path, .. }
            | ApplyError::OpenFailed { path, .. }
            | ApplyError::Join { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The errno of the failed call, when a call failed.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            ApplyError::NotANamespace { errno, .. }
            | ApplyError::PathNotFound { errno, .. }
            | ApplyError::OpenFailed { errno, .. }
            | ApplyError::Join { errno, .. }
            | ApplyError::Unshare { errno, .. }
            | ApplyError::Setid { errno }
            | ApplyError::TimeOffsets { errno }
            | ApplyError::Fork { errno }
            | ApplyError::Propagation { errno, .. } => Some(*errno),
            ApplyError::ThreadCount { errno, .. } => *errno,
            ApplyError::Sync { source, .. } => source.errno(),
            ApplyError::WrongNamespaceType { .. } | ApplyError::Multithreaded { .. } => None,
        }
    }
}

/// One of the files the parent writes at the `id-mapping` sync point
/// (user_namespaces(7)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapFile {
    /// `/proc/<pid>/setgroups`.
    Setgroups,
    /// `/proc/<pid>/uid_map`.
    UidMap,
    /// `/proc/<pid>/gid_map`.
    GidMap,
}

impl MapFile {
    /// The file's name in `/proc/<pid>/`.
    pub const fn name(self) -> &'static str {
        match self {
            MapFile::Setgroups => "setgroups",
            MapFile::UidMap => "uid_map",
            MapFile::GidMap => "gid_map",
        }
    }
}

impl fmt::Display for MapFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a sync point failed: the parent's work (writing the id maps through
/// a checked `/proc`), the hand-off between the two processes, or a
/// caller's own hook. Serializable, so the parent's answer reaches the
/// child as it was, errno included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SyncError {
    /// Opening or writing an id-map file of the child failed.
    #[error("writing {file} of the child failed: {errno}")]
    MapWrite {
        /// The file.
        file: MapFile,
        /// The errno of open(2) or write(2).
        errno: Errno,
    },
    /// The kernel took fewer bytes than the map holds (it must take a map
    /// in one write, or refuse it with an errno).
    #[error("writing {file} of the child took {written} of {len} bytes")]
    ShortWrite {
        /// The file.
        file: MapFile,
        /// Bytes written.
        written: usize,
        /// Bytes of the map.
        len: usize,
    },
    /// `/proc` cannot be trusted to name the child: it is not a procfs
    /// mount, or it shows no pid for the child (it belongs to a pid
    /// namespace the child is not in), or reading it failed.
    #[error("cannot reach the child through /proc: {reason}{}", errno.map(|e| format!(": {e}")).unwrap_or_default())]
    Proc {
        /// What is wrong.
        reason: String,
        /// The errno, when a call failed.
        errno: Option<Errno>,
    },
    /// The channel between the two processes failed: a call on it failed
    /// (errno), or the other side closed it (no errno).
    #[error("{what}: {}", errno.map_or_else(|| "the other process closed the channel".to_owned(), |e| e.to_string()))]
    Channel {
        /// What was being done.
        what: String,
        /// The errno, when a call failed.
        errno: Option<Errno>,
    },
    /// A message that does not belong to the protocol at this point.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A caller's own [`SyncHooks`](crate::SyncHooks) failed.
    #[error("{message}{}", errno.map(|e| format!(": {e}")).unwrap_or_default())]
    Caller {
        /// What the caller says.
        message: String,
        /// The errno, when a call failed.
        errno: Option<Errno>,
    },
}

impl SyncError {
    /// The errno of the failed call, when a call failed.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            SyncError::MapWrite { errno, .. } => Some(*errno),
            SyncError::Proc { errno, .. }
            | SyncError::Channel { errno, .. }
            | SyncError::Caller { errno, .. } => *errno,
            SyncError::ShortWrite { .. } | SyncError::Protocol(_) => None,
        }
    }
}
