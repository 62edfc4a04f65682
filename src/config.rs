//! Validation: from an OCI `config.json` to an [`NsConfig`] (DESIGN §3).
//!
//! Parse, don't filter: an [`NsConfig`] holds at most one entry per kind and
//! only absolute paths, so the planner never sees a duplicate or a relative
//! path. Validation is pure and makes no syscall.
//!
//! When a config breaks several rules, the error reported is fixed by this
//! precedence (so tests and other runtimes can predict it):
//!
//! 1. per entry of `linux.namespaces`, in array order: `unknown-type`, then
//!    `relative-path`, then `duplicate-namespace` (raised on the second
//!    occurrence);
//! 2. `user-namespace-path-with-mappings`, `mappings-without-new-user-namespace`,
//!    `missing-mappings`;
//! 3. `time-offsets-without-new-time-namespace`, then `invalid-time-offset`
//!    (clocks in name order);
//! 4. `invalid-rootfs-propagation`, then
//!    `rootfs-propagation-without-new-mount-namespace`.
//!
//! `invalid-path` (a NUL byte in a path) is checked with `relative-path`,
//! right after it, for the same entry.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::kind::{Kind, KindSet};
pub use crate::propagation::{Propagation, PropagationMode};

/// One line of `uid_map`/`gid_map` (`linux.uidMappings` entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdMapping {
    /// First id inside the user namespace.
    #[serde(rename = "containerID")]
    pub container_id: u32,
    /// First id in the parent user namespace.
    #[serde(rename = "hostID")]
    pub host_id: u32,
    /// Number of ids mapped.
    pub size: u32,
}

impl IdMapping {
    /// Whether `id` inside the namespace is mapped by this line.
    pub fn maps_container_id(&self, id: u32) -> bool {
        id >= self.container_id
            && u64::from(id) < u64::from(self.container_id) + u64::from(self.size)
    }
}

/// The text of a `uid_map` or `gid_map` write: one
/// `"<container> <host> <size>\n"` line per mapping (user_namespaces(7)).
///
/// ```
/// use nsapply::{config::id_map_text, IdMapping};
/// let m = IdMapping { container_id: 0, host_id: 100000, size: 65536 };
/// assert_eq!(id_map_text(&[m]), "0 100000 65536\n");
/// ```
pub fn id_map_text(lines: &[IdMapping]) -> String {
    lines
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect()
}

/// A clock a time namespace can offset (time_namespaces(7)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// `CLOCK_BOOTTIME`.
    Boottime,
    /// `CLOCK_MONOTONIC`.
    Monotonic,
}

impl Clock {
    /// The name used in config.json and `/proc/self/timens_offsets`.
    pub const fn name(self) -> &'static str {
        match self {
            Clock::Boottime => "boottime",
            Clock::Monotonic => "monotonic",
        }
    }
}

/// One validated time offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeOffset {
    /// The clock.
    pub clock: Clock,
    /// Seconds.
    pub secs: i64,
    /// Nanoseconds, at most 999 999 999.
    pub nanosecs: u32,
}

/// The largest valid nanoseconds value of a time offset.
pub const MAX_NANOSECS: u32 = 999_999_999;

/// The largest time offset, in seconds, that some clock value can take
/// (`KTIME_SEC_MAX / 2`, the most a clock plus its offset may read).
pub const MAX_OFFSET_SECS: i64 = i64::MAX / 1_000_000_000 / 2;

/// What the config asks for one namespace kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// No `path`: create a new namespace (unshare).
    Create,
    /// `path` given: join the namespace at this absolute path (setns).
    Join(AbsPath),
}

/// A path known to be absolute.
///
/// Shared, not copied: a plan names a joined path in three steps (open,
/// setns, close) and its phases in theirs again, and each copy of a
/// `PathBuf` was an allocation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AbsPath(#[serde(serialize_with = "serialize_path")] Arc<Path>);

fn serialize_path<S: serde::Serializer>(p: &Arc<Path>, s: S) -> Result<S::Ok, S::Error> {
    Path::serialize(p, s)
}

impl AbsPath {
    /// `Some` when `path` is absolute.
    pub fn new(path: impl Into<PathBuf>) -> Option<AbsPath> {
        let p = path.into();
        p.is_absolute().then(|| AbsPath(Arc::from(p)))
    }

    /// [`AbsPath::new`] of a borrowed path (one copy, into the shared one).
    fn of(path: &Path) -> Option<AbsPath> {
        path.is_absolute().then(|| AbsPath(Arc::from(path)))
    }

    /// The path.
    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for AbsPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl<'de> Deserialize<'de> for AbsPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = PathBuf::deserialize(d)?;
        AbsPath::new(p.clone())
            .ok_or_else(|| serde::de::Error::custom(format!("path {p:?} is not absolute")))
    }
}

/// One validated `linux.namespaces` entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// Its index in the config's `linux.namespaces` array.
    pub index: usize,
    /// Create or join.
    pub action: Action,
}

/// A validated namespace configuration: at most one entry per kind, absolute
/// paths, mappings only with a new user namespace, offsets only with a new
/// time namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NsConfig {
    entries: [Option<Entry>; 8],
    uid_mappings: Vec<IdMapping>,
    gid_mappings: Vec<IdMapping>,
    time_offsets: Vec<TimeOffset>,
    /// Set exactly when a mount namespace is created.
    propagation: Option<Propagation>,
}

impl NsConfig {
    /// Parses and validates a whole OCI `config.json` document.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidConfig`] with line and column for malformed JSON
    /// or a document that is not an OCI config; the rule codes of DESIGN §3
    /// otherwise.
    ///
    /// ```
    /// use nsapply::{NsConfig, Kind};
    /// let cfg = NsConfig::from_json(r#"{"ociVersion":"1.2.0","linux":{"namespaces":[
    ///     {"type":"pid"},{"type":"network","path":"/run/netns/a"}]}}"#).unwrap();
    /// assert!(cfg.creates(Kind::Pid));
    /// assert!(cfg.joins(Kind::Network));
    /// let err = NsConfig::from_json(r#"{"linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}}"#)
    ///     .unwrap_err();
    /// assert_eq!(err.code().as_str(), "duplicate-namespace");
    /// ```
    pub fn from_json(json: &str) -> Result<NsConfig, ConfigError> {
        NsConfig::from_parsed(&RawLinux::from_json(json)?, json)
    }

    /// The second half of [`NsConfig::from_json`], for a caller that needs
    /// the raw section too (a fuzz oracle) and so parses it only once:
    /// validates `raw`, which [`RawLinux::from_json`] read from `json`, then
    /// parses `json` as the runtime-spec defines it, so a config that a
    /// runtime would refuse is refused here too.
    ///
    /// # Errors
    ///
    /// The rule codes of DESIGN §3, then [`ConfigError::InvalidConfig`].
    ///
    /// ```
    /// use nsapply::{config::RawLinux, NsConfig};
    /// let json = r#"{"linux":{"namespaces":[{"type":"pid"}]}}"#;
    /// let raw = RawLinux::from_json(json).unwrap();
    /// assert_eq!(NsConfig::from_parsed(&raw, json), NsConfig::from_json(json));
    /// ```
    pub fn from_parsed(raw: &RawLinux, json: &str) -> Result<NsConfig, ConfigError> {
        let cfg = validate(raw)?;
        serde_json::from_str::<oci_spec::runtime::Spec>(json).map_err(invalid_config)?;
        Ok(cfg)
    }

    /// Validates the namespace part of an already parsed spec (no `linux`
    /// section: nothing to create or join).
    ///
    /// # Errors
    ///
    /// The rule codes of DESIGN §3.
    ///
    /// ```
    /// use nsapply::{Kind, NsConfig};
    /// let spec: oci_spec::runtime::Spec = serde_json::from_str(
    ///     r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"uts"},{"type":"ipc"}]}}"#,
    /// )?;
    /// let cfg = NsConfig::from_spec(&spec)?;
    /// assert!(cfg.creates(Kind::Uts) && cfg.creates(Kind::Ipc));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_spec(spec: &oci_spec::runtime::Spec) -> Result<NsConfig, ConfigError> {
        validate(&RawLinux::from_spec(spec))
    }

    /// Validates an oci-spec `linux` section, for a runtime that builds or
    /// edits it in code (a runtime that has the whole spec uses
    /// [`NsConfig::from_spec`]).
    ///
    /// # Errors
    ///
    /// The rule codes of DESIGN §3.
    ///
    /// ```
    /// use nsapply::{Kind, NsConfig};
    /// use oci_spec::runtime::{LinuxBuilder, LinuxNamespaceBuilder, LinuxNamespaceType};
    /// let net = LinuxNamespaceBuilder::default()
    ///     .typ(LinuxNamespaceType::Network)
    ///     .path("/run/netns/blue")
    ///     .build()?;
    /// let pid = LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::Pid).build()?;
    /// let linux = LinuxBuilder::default().namespaces(vec![net, pid]).build()?;
    /// let cfg = NsConfig::from_linux(&linux)?;
    /// assert!(cfg.joins(Kind::Network) && cfg.creates(Kind::Pid));
    ///
    /// // The same rules as from_json: a relative path is refused.
    /// let bad = LinuxNamespaceBuilder::default()
    ///     .typ(LinuxNamespaceType::Network)
    ///     .path("run/netns/blue")
    ///     .build()?;
    /// let linux = LinuxBuilder::default().namespaces(vec![bad]).build()?;
    /// assert_eq!(NsConfig::from_linux(&linux).unwrap_err().code().as_str(), "relative-path");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_linux(linux: &oci_spec::runtime::Linux) -> Result<NsConfig, ConfigError> {
        validate(&RawLinux::from_linux(linux))
    }

    /// The entry for `kind`, if the config names it.
    pub fn entry(&self, kind: Kind) -> Option<&Entry> {
        self.entries[kind.index()].as_ref()
    }

    /// Whether the config creates a new namespace of `kind`.
    pub fn creates(&self, kind: Kind) -> bool {
        matches!(
            self.entry(kind),
            Some(Entry {
                action: Action::Create,
                ..
            })
        )
    }

    /// Whether the config joins `kind` by path.
    pub fn joins(&self, kind: Kind) -> bool {
        self.join_path(kind).is_some()
    }

    /// The path `kind` is joined at, if it is joined.
    pub fn join_path(&self, kind: Kind) -> Option<&AbsPath> {
        match self.entry(kind) {
            Some(Entry {
                action: Action::Join(p),
                ..
            }) => Some(p),
            _ => None,
        }
    }

    /// The kinds the config names (created or joined).
    pub fn kinds(&self) -> KindSet {
        Kind::ALL
            .into_iter()
            .filter(|k| self.entry(*k).is_some())
            .collect()
    }

    /// `linux.uidMappings` (non-empty exactly when a user namespace is created).
    pub fn uid_mappings(&self) -> &[IdMapping] {
        &self.uid_mappings
    }

    /// `linux.gidMappings` (non-empty exactly when a user namespace is created).
    pub fn gid_mappings(&self) -> &[IdMapping] {
        &self.gid_mappings
    }

    /// The validated time offsets, in clock name order (boottime, monotonic).
    pub fn time_offsets(&self) -> &[TimeOffset] {
        &self.time_offsets
    }

    /// The propagation `/` gets in the new mount namespace:
    /// `linux.rootfsPropagation`, or [`Propagation::DEFAULT`]; `None` when
    /// no mount namespace is created.
    pub fn propagation(&self) -> Option<Propagation> {
        self.propagation
    }
}

/// The part of `config.json` that validation reads, in its raw form: type
/// names as strings, paths as written. Generators and fuzzers build these.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawLinux {
    /// `linux.namespaces`.
    #[serde(default)]
    pub namespaces: Vec<RawNamespace>,
    /// `linux.uidMappings`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid_mappings: Option<Vec<IdMapping>>,
    /// `linux.gidMappings`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid_mappings: Option<Vec<IdMapping>>,
    /// `linux.timeOffsets`, clock name → offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_offsets: Option<BTreeMap<String, RawTimeOffset>>,
    /// `linux.rootfsPropagation` as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_propagation: Option<String>,
}

/// One raw `linux.namespaces` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawNamespace {
    /// The type as written.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The path as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// One raw `linux.timeOffsets` value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawTimeOffset {
    /// Seconds.
    #[serde(default)]
    pub secs: i64,
    /// Nanoseconds.
    #[serde(default)]
    pub nanosecs: u32,
}

#[derive(Deserialize)]
struct RawDocument {
    #[serde(default)]
    linux: Option<RawLinux>,
}

impl RawLinux {
    /// Reads the `linux` section of a config.json document (empty when it
    /// has none), the first half of [`NsConfig::from_json`]. A light
    /// document: it keeps unknown type names as strings, so `unknown-type`
    /// can name its index (oci-spec's enum would reject the whole document
    /// without saying which entry), and skips everything else.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidConfig`] with line and column for malformed
    /// JSON or a `linux` section of the wrong shape.
    pub fn from_json(json: &str) -> Result<RawLinux, ConfigError> {
        let doc: RawDocument = serde_json::from_str(json).map_err(invalid_config)?;
        Ok(doc.linux.unwrap_or_default())
    }

    /// The raw view of a parsed oci-spec `Spec` (empty without a `linux`
    /// section).
    pub fn from_spec(spec: &oci_spec::runtime::Spec) -> RawLinux {
        spec.linux()
            .as_ref()
            .map(RawLinux::from_linux)
            .unwrap_or_default()
    }

    /// The raw view of an oci-spec `linux` section.
    pub fn from_linux(linux: &oci_spec::runtime::Linux) -> RawLinux {
        let map = |m: &oci_spec::runtime::LinuxIdMapping| IdMapping {
            container_id: m.container_id(),
            host_id: m.host_id(),
            size: m.size(),
        };
        RawLinux {
            namespaces: linux
                .namespaces()
                .iter()
                .flatten()
                .map(|ns| RawNamespace {
                    type_name: spec_type_name(ns.typ()).to_owned(),
                    path: ns.path().clone(),
                })
                .collect(),
            uid_mappings: linux
                .uid_mappings()
                .as_ref()
                .map(|v| v.iter().map(map).collect()),
            gid_mappings: linux
                .gid_mappings()
                .as_ref()
                .map(|v| v.iter().map(map).collect()),
            time_offsets: linux.time_offsets().as_ref().map(|m| {
                m.iter()
                    .map(|(clock, off)| {
                        let raw = RawTimeOffset {
                            secs: off.secs().unwrap_or(0),
                            nanosecs: off.nanosecs().unwrap_or(0),
                        };
                        (clock.clone(), raw)
                    })
                    .collect()
            }),
            rootfs_propagation: linux.rootfs_propagation().clone(),
        }
    }
}

fn spec_type_name(t: oci_spec::runtime::LinuxNamespaceType) -> &'static str {
    use oci_spec::runtime::LinuxNamespaceType as T;
    let kind = match t {
        T::User => Kind::User,
        T::Pid => Kind::Pid,
        T::Uts => Kind::Uts,
        T::Ipc => Kind::Ipc,
        T::Network => Kind::Network,
        T::Cgroup => Kind::Cgroup,
        T::Mount => Kind::Mount,
        T::Time => Kind::Time,
    };
    kind.spec_name()
}

fn invalid_config(e: serde_json::Error) -> ConfigError {
    // serde_json's Display ends with " at line L column C", which the
    // variant already says.
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
    ConfigError::InvalidConfig {
        line: e.line(),
        column: e.column(),
        message,
    }
}

fn which(uid: bool, gid: bool) -> MapKind {
    match (uid, gid) {
        (true, true) => MapKind::Both,
        (true, false) => MapKind::Uid,
        _ => MapKind::Gid,
    }
}

/// Validates the raw namespace configuration (DESIGN §3), in the precedence
/// documented at the top of this module.
///
/// # Errors
///
/// The first rule broken, as a [`ConfigError`] naming the entry.
pub fn validate(raw: &RawLinux) -> Result<NsConfig, ConfigError> {
    let mut entries: [Option<Entry>; 8] = Default::default();
    for (index, ns) in raw.namespaces.iter().enumerate() {
        let Some(kind) = Kind::from_spec_name(&ns.type_name) else {
            return Err(ConfigError::UnknownType {
                index,
                type_name: ns.type_name.clone(),
            });
        };
        let action = match &ns.path {
            None => Action::Create,
            Some(p) => {
                let abs = AbsPath::of(p).ok_or_else(|| ConfigError::RelativePath {
                    index,
                    kind,
                    path: p.clone(),
                })?;
                // The kernel reads a path up to its first NUL: this one
                // would name another file than the config says.
                if p.as_os_str().as_encoded_bytes().contains(&0) {
                    return Err(ConfigError::InvalidPath {
                        index,
                        kind,
                        path: p.clone(),
                    });
                }
                Action::Join(abs)
            }
        };
        let slot = &mut entries[kind.index()];
        if let Some(first) = slot {
            return Err(ConfigError::DuplicateNamespace {
                index,
                kind,
                first_index: first.index,
            });
        }
        *slot = Some(Entry { index, action });
    }

    let uid = raw.uid_mappings.clone().unwrap_or_default();
    let gid = raw.gid_mappings.clone().unwrap_or_default();
    let user = entries[Kind::User.index()].as_ref();
    match user {
        Some(Entry {
            index,
            action: Action::Join(path),
        }) if !uid.is_empty() || !gid.is_empty() => {
            return Err(ConfigError::UserNamespacePathWithMappings {
                index: *index,
                path: path.as_path().to_owned(),
                which: which(!uid.is_empty(), !gid.is_empty()),
            });
        }
        None if !uid.is_empty() || !gid.is_empty() => {
            return Err(ConfigError::MappingsWithoutNewUserNamespace {
                which: which(!uid.is_empty(), !gid.is_empty()),
            });
        }
        Some(Entry {
            index,
            action: Action::Create,
        }) if uid.is_empty() || gid.is_empty() => {
            return Err(ConfigError::MissingMappings {
                index: *index,
                which: which(uid.is_empty(), gid.is_empty()),
            });
        }
        _ => {}
    }

    let raw_offsets = raw.time_offsets.as_ref().filter(|m| !m.is_empty());
    let mut time_offsets = Vec::new();
    if let Some(offsets) = raw_offsets {
        match &entries[Kind::Time.index()] {
            Some(Entry {
                action: Action::Create,
                ..
            }) => {}
            Some(Entry {
                index,
                action: Action::Join(p),
            }) => {
                return Err(ConfigError::TimeOffsetsWithoutNewTimeNamespace {
                    index: Some(*index),
                    path: Some(p.as_path().to_owned()),
                });
            }
            None => {
                return Err(ConfigError::TimeOffsetsWithoutNewTimeNamespace {
                    index: None,
                    path: None,
                })
            }
        }
        for (name, off) in offsets {
            let clock = match name.as_str() {
                "monotonic" => Clock::Monotonic,
                "boottime" => Clock::Boottime,
                _ => {
                    return Err(ConfigError::InvalidTimeOffset {
                        clock: name.clone(),
                        reason: "unknown clock (only monotonic and boottime can be offset)".into(),
                    })
                }
            };
            if off.nanosecs > MAX_NANOSECS {
                return Err(ConfigError::InvalidTimeOffset {
                    clock: name.clone(),
                    reason: format!("nanosecs {} is larger than {MAX_NANOSECS}", off.nanosecs),
                });
            }
            // The kernel wants the clock's value plus the offset within
            // [0, KTIME_SEC_MAX / 2] seconds (proc_timens_set_offset); past
            // half of KTIME_SEC_MAX either way, no clock value makes it so.
            // Within it, whether it fits depends on the clock now: the
            // kernel's (and the model's) ERANGE.
            if off.secs.unsigned_abs() > MAX_OFFSET_SECS.unsigned_abs() {
                return Err(ConfigError::InvalidTimeOffset {
                    clock: name.clone(),
                    reason: format!(
                        "secs {} is beyond ±{MAX_OFFSET_SECS} (KTIME_SEC_MAX / 2): no clock value makes the clock and its offset valid",
                        off.secs
                    ),
                });
            }
            time_offsets.push(TimeOffset {
                clock,
                secs: off.secs,
                nanosecs: off.nanosecs,
            });
        }
    }

    let propagation = validate_propagation(raw.rootfs_propagation.as_deref(), &entries)?;
    Ok(NsConfig {
        entries,
        uid_mappings: uid,
        gid_mappings: gid,
        time_offsets,
        propagation,
    })
}

/// `linux.rootfsPropagation`: a name of [`Propagation`], and only with a
/// mount namespace to create (changing the propagation of a joined mount
/// namespace, or of the caller's own, would change another's mounts). An
/// empty string means unset, as in runc.
fn validate_propagation(
    value: Option<&str>,
    entries: &[Option<Entry>; 8],
) -> Result<Option<Propagation>, ConfigError> {
    let value = value.filter(|v| !v.is_empty());
    let parsed = value
        .map(|v| {
            v.parse::<Propagation>()
                .map_err(|_| ConfigError::InvalidRootfsPropagation {
                    value: v.to_owned(),
                })
        })
        .transpose()?;
    match (&entries[Kind::Mount.index()], value) {
        (
            Some(Entry {
                action: Action::Create,
                ..
            }),
            _,
        ) => Ok(Some(parsed.unwrap_or(Propagation::DEFAULT))),
        (_, None) => Ok(None),
        (
            Some(Entry {
                index,
                action: Action::Join(p),
            }),
            Some(v),
        ) => Err(ConfigError::RootfsPropagationWithoutNewMountNamespace {
            value: v.to_owned(),
            index: Some(*index),
            path: Some(p.as_path().to_owned()),
        }),
        (None, Some(v)) => Err(ConfigError::RootfsPropagationWithoutNewMountNamespace {
            value: v.to_owned(),
            index: None,
            path: None,
        }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn code(json: &str) -> ErrorCode {
        NsConfig::from_json(json).unwrap_err().code()
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let err =
            NsConfig::from_json("{\n  \"linux\": {\n    \"namespaces\": [,]\n  }\n}").unwrap_err();
        match err {
            ConfigError::InvalidConfig { line, column, .. } => {
                assert_eq!(line, 3);
                assert!(column > 0);
            }
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    #[test]
    fn non_oci_document_is_invalid_config() {
        // Valid JSON, but `process.args` must be an array for oci-spec.
        assert_eq!(
            code(r#"{"process":{"args":"nope"},"linux":{"namespaces":[]}}"#),
            ErrorCode::InvalidConfig
        );
    }

    #[test]
    fn duplicate_type_is_rejected_with_both_indexes() {
        let err = NsConfig::from_json(
            r#"{"linux":{"namespaces":[{"type":"pid"},{"type":"uts"},{"type":"pid","path":"/x"}]}}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            ConfigError::DuplicateNamespace {
                index: 2,
                kind: Kind::Pid,
                first_index: 0
            }
        );
    }

    #[test]
    fn relative_path_is_rejected_before_duplicate_of_same_entry() {
        let err = NsConfig::from_json(
            r#"{"linux":{"namespaces":[{"type":"network"},{"type":"network","path":"run/netns/a"}]}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::RelativePath);
        assert_eq!(err.index(), Some(1));
    }

    #[test]
    fn unknown_and_alias_types_are_rejected_with_index() {
        let err =
            NsConfig::from_json(r#"{"linux":{"namespaces":[{"type":"pid"},{"type":"net"}]}}"#)
                .unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnknownType {
                index: 1,
                type_name: "net".into()
            }
        );
    }

    #[test]
    fn mapping_rules() {
        let m = r#""uidMappings":[{"containerID":0,"hostID":1000,"size":1}],"gidMappings":[{"containerID":0,"hostID":1000,"size":1}]"#;
        assert_eq!(
            code(&format!(
                r#"{{"linux":{{"namespaces":[{{"type":"pid"}}],{m}}}}}"#
            )),
            ErrorCode::MappingsWithoutNewUserNamespace
        );
        assert_eq!(
            code(&format!(
                r#"{{"linux":{{"namespaces":[{{"type":"user","path":"/u"}}],{m}}}}}"#
            )),
            ErrorCode::UserNamespacePathWithMappings
        );
        assert_eq!(
            code(
                r#"{"linux":{"namespaces":[{"type":"user"}],"uidMappings":[{"containerID":0,"hostID":1,"size":1}]}}"#
            ),
            ErrorCode::MissingMappings
        );
        let ok = NsConfig::from_json(&format!(
            r#"{{"linux":{{"namespaces":[{{"type":"user"}}],{m}}}}}"#
        ))
        .unwrap();
        assert_eq!(ok.uid_mappings().len(), 1);
    }

    #[test]
    fn time_offset_rules() {
        let off = r#""timeOffsets":{"monotonic":{"secs":10,"nanosecs":5}}"#;
        assert_eq!(
            code(&format!(
                r#"{{"linux":{{"namespaces":[{{"type":"pid"}}],{off}}}}}"#
            )),
            ErrorCode::TimeOffsetsWithoutNewTimeNamespace
        );
        assert_eq!(
            code(&format!(
                r#"{{"linux":{{"namespaces":[{{"type":"time","path":"/t"}}],{off}}}}}"#
            )),
            ErrorCode::TimeOffsetsWithoutNewTimeNamespace
        );
        assert_eq!(
            code(
                r#"{"linux":{"namespaces":[{"type":"time"}],"timeOffsets":{"realtime":{"secs":1}}}}"#
            ),
            ErrorCode::InvalidTimeOffset
        );
        assert_eq!(
            code(
                r#"{"linux":{"namespaces":[{"type":"time"}],"timeOffsets":{"boottime":{"secs":1,"nanosecs":1000000000}}}}"#
            ),
            ErrorCode::InvalidTimeOffset
        );
        // LTP timens01's -9223372036 (-KTIME_SEC_MAX), and one past half
        // of it either way: no clock value makes them valid.
        for secs in ["-9223372036", "4611686019", "-4611686019"] {
            assert_eq!(
                code(&format!(
                    r#"{{"linux":{{"namespaces":[{{"type":"time"}}],"timeOffsets":{{"monotonic":{{"secs":{secs}}}}}}}}}"#
                )),
                ErrorCode::InvalidTimeOffset,
                "{secs}"
            );
        }
        for secs in ["4611686018", "-4611686018"] {
            assert!(
                NsConfig::from_json(&format!(
                    r#"{{"linux":{{"namespaces":[{{"type":"time"}}],"timeOffsets":{{"monotonic":{{"secs":{secs}}}}}}}}}"#
                ))
                .is_ok(),
                "{secs} can fit a clock value"
            );
        }
        let ok = NsConfig::from_json(
            r#"{"linux":{"namespaces":[{"type":"time"}],"timeOffsets":{"monotonic":{"secs":1},"boottime":{"secs":2,"nanosecs":999999999}}}}"#,
        )
        .unwrap();
        assert_eq!(
            ok.time_offsets()
                .iter()
                .map(|o| o.clock)
                .collect::<Vec<_>>(),
            [Clock::Boottime, Clock::Monotonic]
        );
    }

    #[test]
    fn a_nul_byte_in_a_path_is_invalid_path_after_relative_path() {
        let err = NsConfig::from_json(
            r#"{"linux":{"namespaces":[{"type":"uts"},{"type":"network","path":"/run/a\u0000b"}]}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidPath);
        assert_eq!(err.index(), Some(1));
        assert_eq!(err.kind(), Some(Kind::Network));
        assert_eq!(
            code(r#"{"linux":{"namespaces":[{"type":"network","path":"run\u0000"}]}}"#),
            ErrorCode::RelativePath
        );
    }

    #[test]
    fn propagation_defaults_to_rslave_only_with_a_new_mount_namespace() {
        let cfg = NsConfig::from_json(r#"{"linux":{"namespaces":[{"type":"mount"}]}}"#).unwrap();
        assert_eq!(cfg.propagation(), Some(Propagation::DEFAULT));
        let cfg = NsConfig::from_json(
            r#"{"linux":{"namespaces":[{"type":"mount"}],"rootfsPropagation":"private"}}"#,
        )
        .unwrap();
        assert_eq!(
            cfg.propagation(),
            Some(Propagation {
                mode: PropagationMode::Private,
                recursive: false
            })
        );
        // Empty means unset, as in runc.
        let cfg = NsConfig::from_json(
            r#"{"linux":{"namespaces":[{"type":"uts"}],"rootfsPropagation":""}}"#,
        )
        .unwrap();
        assert_eq!(cfg.propagation(), None);
        assert_eq!(
            code(r#"{"linux":{"namespaces":[{"type":"mount"}],"rootfsPropagation":"rsideways"}}"#),
            ErrorCode::InvalidRootfsPropagation
        );
        assert_eq!(
            code(r#"{"linux":{"namespaces":[{"type":"uts"}],"rootfsPropagation":"shared"}}"#),
            ErrorCode::RootfsPropagationWithoutNewMountNamespace
        );
        let err = NsConfig::from_json(
            r#"{"linux":{"namespaces":[{"type":"mount","path":"/m"}],"rootfsPropagation":"slave"}}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.code(),
            ErrorCode::RootfsPropagationWithoutNewMountNamespace
        );
        assert_eq!(err.index(), Some(0));
        assert_eq!(err.path(), Some(Path::new("/m")));
    }

    #[test]
    fn errors_about_an_entry_name_its_path() {
        let m = r#""uidMappings":[{"containerID":0,"hostID":1,"size":1}]"#;
        for (json, path) in [
            (
                r#"{"linux":{"namespaces":[{"type":"ipc","path":"run/ipc"}]}}"#.to_owned(),
                "run/ipc",
            ),
            (
                r#"{"linux":{"namespaces":[{"type":"ipc","path":"/run/a\u0000b"}]}}"#.to_owned(),
                "/run/a\0b",
            ),
            (
                format!(r#"{{"linux":{{"namespaces":[{{"type":"user","path":"/u"}}],{m}}}}}"#),
                "/u",
            ),
        ] {
            let err = NsConfig::from_json(&json).unwrap_err();
            let want = PathBuf::from(path);
            assert_eq!(err.path(), Some(want.as_path()), "{err}");
        }
        // The user entry's mappings name which map is wrong: uid only here.
        assert_eq!(
            NsConfig::from_json(&format!(
                r#"{{"linux":{{"namespaces":[{{"type":"user","path":"/u"}}],{m}}}}}"#
            )),
            Err(ConfigError::UserNamespacePathWithMappings {
                index: 0,
                path: "/u".into(),
                which: MapKind::Uid
            })
        );
    }

    #[test]
    fn a_mapping_covers_exactly_its_range() {
        let m = IdMapping {
            container_id: 10,
            host_id: 100_000,
            size: 5,
        };
        assert!(!m.maps_container_id(9));
        assert!(m.maps_container_id(10));
        assert!(m.maps_container_id(14));
        // One past the end: the last id mapped is container_id + size - 1.
        assert!(!m.maps_container_id(15));
        let empty = IdMapping { size: 0, ..m };
        assert!(!empty.maps_container_id(10));
        // The range ends past u32::MAX without wrapping around.
        let top = IdMapping {
            container_id: u32::MAX - 1,
            host_id: 0,
            size: 10,
        };
        assert!(top.maps_container_id(u32::MAX));
        assert!(!top.maps_container_id(0));
    }

    #[test]
    fn linux_section_and_json_paths_agree() {
        let linux = r#"{"namespaces":[{"type":"user"},{"type":"mount"},{"type":"network","path":"/run/netns/x"},{"type":"time"}],
            "uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],
            "gidMappings":[{"containerID":0,"hostID":200000,"size":1}],
            "timeOffsets":{"monotonic":{"secs":7,"nanosecs":9}},"rootfsPropagation":"private"}"#;
        let parsed: oci_spec::runtime::Linux = serde_json::from_str(linux).unwrap();
        let cfg = NsConfig::from_linux(&parsed).unwrap();
        assert_eq!(
            cfg,
            NsConfig::from_json(&format!(r#"{{"ociVersion":"1.2.0","linux":{linux}}}"#)).unwrap()
        );
        assert!(cfg.creates(Kind::User) && cfg.joins(Kind::Network));
        assert_eq!(cfg.gid_mappings()[0].host_id, 200_000);
        // And the rules are the same: mappings without a user namespace.
        let bad: oci_spec::runtime::Linux = serde_json::from_str(
            r#"{"namespaces":[{"type":"pid"}],"uidMappings":[{"containerID":0,"hostID":1,"size":1}]}"#,
        )
        .unwrap();
        assert_eq!(
            NsConfig::from_linux(&bad),
            Err(ConfigError::MappingsWithoutNewUserNamespace {
                which: MapKind::Uid
            })
        );
    }

    #[test]
    fn spec_and_json_paths_agree() {
        let json = r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"mount"},{"type":"network","path":"/run/netns/x"},{"type":"time"}],"timeOffsets":{"boottime":{"secs":3}},"rootfsPropagation":"rshared"}}"#;
        let spec: oci_spec::runtime::Spec = serde_json::from_str(json).unwrap();
        assert_eq!(
            NsConfig::from_spec(&spec).unwrap(),
            NsConfig::from_json(json).unwrap()
        );
    }
}
