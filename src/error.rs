//! What every error of the crate is made of: errno values ([`Errno`]), the
//! stable codes ([`ErrorCode`]) that traces, the CLI and outside tools read,
//! and the errors of the sync points ([`SyncError`]).
//!
//! Each public boundary has its own enum, beside the code it is about:
//! [`ConfigError`](crate::ConfigError) in `config` (parse and validation,
//! before any syscall; the CLI exits 2), [`ApplyError`](crate::ApplyError)
//! in `apply` (the run against a backend; the CLI exits 1),
//! [`RunError`](crate::run::RunError) in `run`. Every variant names the
//! operation, the namespace kind, the path and the errno where they exist,
//! and maps to one stable [`ErrorCode`].

use std::fmt;

use serde::{Deserialize, Serialize};

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
    ENOTSOCK,
    EMSGSIZE,
    ECONNRESET,
    ENOTCONN,
    ETIMEDOUT,
    ECONNREFUSED,
);

impl From<nix::errno::Errno> for Errno {
    fn from(e: nix::errno::Errno) -> Self {
        Errno(e as i32)
    }
}

impl Errno {
    /// The raw errno number.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// The symbolic name (`"EPERM"`), or `"E<number>"` for values outside the table.
    pub fn name(self) -> std::borrow::Cow<'static, str> {
        match self.known() {
            Some(i) => std::borrow::Cow::Borrowed(Self::TABLE[i].0),
            None => std::borrow::Cow::Owned(format!("E{}", self.0)),
        }
    }

    /// The index of this errno in the table of named ones.
    fn known(self) -> Option<usize> {
        Self::TABLE.iter().position(|(_, v)| *v == self.0)
    }

    /// The C library's description (strerror).
    pub fn description(self) -> String {
        match self.known() {
            Some(i) => Self::descriptions()[i].clone(),
            None => Self::strerror(self.0),
        }
    }

    /// What the standard library says for `errno`, without its
    /// `" (os error N)"`.
    fn strerror(errno: i32) -> String {
        std::io::Error::from_raw_os_error(errno)
            .to_string()
            .split(" (os error")
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// The descriptions of the named errnos, in table order, made once: an
    /// error's message names its errno's description, and making it
    /// (strerror, then the standard library's formatting) cost more than
    /// the rest of the message.
    fn descriptions() -> &'static [String] {
        static DESCRIPTIONS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        DESCRIPTIONS.get_or_init(|| {
            Self::TABLE
                .iter()
                .map(|(_, v)| Self::strerror(*v))
                .collect()
        })
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
        match self.known() {
            Some(i) => {
                f.write_str(Self::TABLE[i].0)?;
                f.write_str(" (")?;
                f.write_str(&Self::descriptions()[i])?;
                f.write_str(")")
            }
            None => write!(f, "{} ({})", self.name(), self.description()),
        }
    }
}

/// A path as `{:?}` writes it (`"/run/netns/a"`), for messages: a path of
/// printable ASCII without a double quote or a backslash (every path a config usually names)
/// is written as it is between quotes, which is what its `Debug` writes,
/// without escaping it character by character; any other path is written
/// by its `Debug`.
pub(crate) struct QuotedPath<'a>(pub &'a std::path::Path);

impl fmt::Display for QuotedPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0.as_os_str().as_encoded_bytes();
        let plain = bytes
            .iter()
            .all(|b| (b' '..=b'~').contains(b) && *b != b'"' && *b != b'\\');
        match std::str::from_utf8(bytes) {
            Ok(s) if plain => {
                f.write_str("\"")?;
                f.write_str(s)?;
                f.write_str("\"")
            }
            _ => write!(f, "{:?}", self.0),
        }
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
    /// The process whose namespaces an exec joins has exited (its pidfd or
    /// its `/proc/<pid>/ns` says so).
    TargetExited,
    /// The process an exec names cannot be joined: the pid is not positive
    /// or is the caller's, `/proc` does not show it, or its namespaces
    /// cannot be read.
    InvalidTarget,
    /// `nsapply run`: the command is empty or holds a NUL byte, or an
    /// option does not fit the plan.
    InvalidCommand,
    /// `nsapply run --trace` or an output file cannot be created.
    UnwritableFile,
    /// `nsapply run`: execvp(3) of the command failed.
    ExecFailed,
    /// `nsapply run`: a process of the run could not be set up or watched,
    /// or ended without reporting.
    RunFailed,
}

impl ErrorCode {
    /// Every code, for exhaustive tests and documentation.
    pub const ALL: [ErrorCode; 31] = [
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
        ErrorCode::TargetExited,
        ErrorCode::InvalidTarget,
        ErrorCode::InvalidCommand,
        ErrorCode::UnwritableFile,
        ErrorCode::ExecFailed,
        ErrorCode::RunFailed,
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
            ErrorCode::TargetExited => "target-exited",
            ErrorCode::InvalidTarget => "invalid-target",
            ErrorCode::InvalidCommand => "invalid-command",
            ErrorCode::UnwritableFile => "unwritable-file",
            ErrorCode::ExecFailed => "exec-failed",
            ErrorCode::RunFailed => "run-failed",
        }
    }

    /// Whether the code is an input error found by validation (CLI exit
    /// status 2) rather than an apply failure (exit status 1). The run's
    /// own input errors (`invalid-command`, `unwritable-file`) are not
    /// validation's: see `RunError::is_input_error`.
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
    /// (A struct variant: the enum is serialized with an internal tag,
    /// which a newtype of a string cannot carry.)
    #[error("protocol error: {message}")]
    Protocol {
        /// What was wrong.
        message: String,
    },
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
            SyncError::ShortWrite { .. } | SyncError::Protocol { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_is_the_standard_library_s() {
        // The names and descriptions made once are what the standard
        // library says, for every named errno and for one outside the table.
        for e in Errno::TABLE
            .iter()
            .map(|(_, v)| Errno(*v))
            .chain([Errno(4095)])
        {
            let std = std::io::Error::from_raw_os_error(e.0).to_string();
            let want = std.split(" (os error").next().unwrap().to_owned();
            assert_eq!(e.description(), want);
            assert_eq!(e.to_string(), format!("{} ({want})", e.name()));
        }
    }

    #[test]
    fn a_quoted_path_is_its_debug() {
        use std::os::unix::ffi::OsStrExt;
        let paths: [&[u8]; 10] = [
            b"/run/nsapply/network",
            b"",
            b"/a b/~!",
            b"/with\"quote",
            b"/back\\slash",
            b"/tab\tnewline\n",
            b"/del\x7f",
            "/n\u{e4}mespace".as_bytes(),
            b"/invalid\xff\xfe",
            "/combining\u{301}".as_bytes(),
        ];
        for p in paths {
            let p = std::path::Path::new(std::ffi::OsStr::from_bytes(p));
            assert_eq!(QuotedPath(p).to_string(), format!("{p:?}"));
        }
    }

    #[test]
    fn every_sync_error_round_trips_through_json() {
        // It crosses the channel of `nsapply run` (ToChild::Refused).
        let all = [
            SyncError::MapWrite {
                file: MapFile::UidMap,
                errno: Errno::EPERM,
            },
            SyncError::ShortWrite {
                file: MapFile::GidMap,
                written: 1,
                len: 2,
            },
            SyncError::Proc {
                reason: "r".into(),
                errno: None,
            },
            SyncError::Channel {
                what: "w".into(),
                errno: Some(Errno::EPIPE),
            },
            SyncError::Protocol {
                message: "m".into(),
            },
            SyncError::Caller {
                message: "c".into(),
                errno: None,
            },
        ];
        for e in all {
            let json = serde_json::to_string(&e).unwrap_or_else(|x| panic!("{e:?}: {x}"));
            let back: SyncError = serde_json::from_str(&json).unwrap();
            assert_eq!(back, e, "{json}");
        }
    }

    #[test]
    fn an_errno_is_its_number_and_shows_its_name() {
        assert_eq!(Errno::EPERM.raw(), libc::EPERM);
        assert_eq!(Errno::ENOTTY.raw(), libc::ENOTTY);
        assert_eq!(Errno(Errno::EUSERS.raw()), Errno::EUSERS);
        // Debug is the name too, so a failed assertion names the errno.
        assert_eq!(format!("{:?}", Errno::EPERM), "EPERM");
        assert_eq!(format!("{:?}", Some(Errno(4095))), "Some(E4095)");
    }

    #[test]
    fn a_numeric_errno_name_round_trips_and_must_be_positive() {
        for e in [Errno(200), Errno(1), Errno::ECONNREFUSED] {
            assert_eq!(e.name().parse::<Errno>(), Ok(e), "{}", e.name());
        }
        assert_eq!("E2".parse::<Errno>(), Ok(Errno::ENOENT));
        for bad in ["E0", "E-1", "E", "EBOGUS", "2", ""] {
            assert!(bad.parse::<Errno>().is_err(), "{bad:?}");
        }
    }
}
