//! The JSON trace (DESIGN §6): what a run did, step by step, with each call's
//! result. Both backends produce it through the same engine, so a model
//! trace and a kernel trace of one scenario compare field for field.
//!
//! The schema is checked in as `trace.schema.json` at the repository root.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::config::{Propagation, TimeOffset};
use crate::error::{Errno, ErrorCode};
use crate::kind::{Kind, KindSet};
use crate::plan::{Plan, Step, SyncPoint};

/// The trace format version written in every document.
pub const TRACE_VERSION: u32 = 1;

/// The result of one call: `"ok"` or the errno name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call succeeded.
    #[default]
    Ok,
    /// The call failed with this errno.
    Err(Errno),
}

impl Outcome {
    /// Whether the call succeeded.
    pub const fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok)
    }

    /// The outcome of a call's result.
    pub fn of<T>(r: &Result<T, Errno>) -> Outcome {
        match r {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Err(*e),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Err(e) => f.write_str(&e.name()),
        }
    }
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Outcome::Ok => s.serialize_str("ok"),
            Outcome::Err(e) => e.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        if s == "ok" {
            return Ok(Outcome::Ok);
        }
        s.parse::<Errno>()
            .map(Outcome::Err)
            .map_err(serde::de::Error::custom)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One step of a trace. The `op` tag and field names are the contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TraceStep {
    /// `open(path, O_RDONLY|O_CLOEXEC)` and `ioctl(NS_GET_NSTYPE)` on it.
    /// `result` is the first failing call's errno; `found` is the type the
    /// kernel reported when it is not the one asked for.
    Open {
        /// The kind asked for.
        #[serde(rename = "type")]
        kind: Kind,
        /// The path.
        path: PathBuf,
        /// `"ok"` or the errno.
        result: Outcome,
        /// The namespace type found, when it is not `type` (`wrong-namespace-type`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        found: Option<String>,
    },
    /// `setns(fd, CLONE_NEW*)`.
    Setns {
        /// The kind.
        #[serde(rename = "type")]
        kind: Kind,
        /// The path the fd was opened from.
        path: PathBuf,
        /// `"ok"` or the errno.
        result: Outcome,
        /// EPERM in pass 1, retried after the user namespace step.
        #[serde(default, skip_serializing_if = "is_false")]
        deferred: bool,
    },
    /// `unshare(CLONE_NEW*)`, one kind per call.
    Unshare {
        /// The kind.
        #[serde(rename = "type")]
        kind: Kind,
        /// `"ok"` or the errno.
        result: Outcome,
    },
    /// A caller-supplied sync point.
    Sync {
        /// Which one.
        point: SyncPoint,
    },
    /// `setresgid(0,0,0)` then `setresuid(0,0,0)` in the user namespace.
    Setid {
        /// Always `user`.
        #[serde(rename = "type")]
        kind: Kind,
        /// `"ok"` or the errno.
        result: Outcome,
    },
    /// Join pass 2 (DESIGN §4): the joins deferred in pass 1, retried in
    /// the setns steps that follow it.
    DeferredJoins {
        /// Always `user`: the pass belongs to the user namespace step.
        #[serde(rename = "type")]
        kind: Kind,
        /// The kinds retried, in canonical order (empty when pass 1 deferred
        /// nothing).
        retried: Vec<Kind>,
    },
    /// `mount(NULL, "/", NULL, MS_<propagation>, NULL)` in the new mount
    /// namespace.
    Propagation {
        /// Always `mount`.
        #[serde(rename = "type")]
        kind: Kind,
        /// The propagation given to `/` (`"rslave"`, ...).
        propagation: Propagation,
        /// `"ok"` or the errno.
        result: Outcome,
    },
    /// One write of all offsets to `/proc/self/timens_offsets`.
    TimeOffsets {
        /// Always `time`.
        #[serde(rename = "type")]
        kind: Kind,
        /// The offsets written.
        offsets: Vec<TimeOffset>,
        /// `"ok"` or the errno.
        result: Outcome,
    },
    /// close(2) of a namespace fd.
    Close {
        /// The kind.
        #[serde(rename = "type")]
        kind: Kind,
        /// The path it was opened from.
        path: PathBuf,
    },
    /// The pidfd join of an exec plan (DESIGN §9): `pidfd_open(pid, 0)`,
    /// `setns(pidfd, CLONE_NEW*...)` for all `types` at once, close. When
    /// it fails with `fallback`, the per-namespace steps that follow do the
    /// joins; when it succeeds, they are not taken.
    PidfdJoin {
        /// The process.
        pid: i32,
        /// The kinds joined, in canonical order.
        #[serde(rename = "types")]
        kinds: KindSet,
        /// `"ok"` or the errno of the call that failed.
        result: Outcome,
        /// The call that failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call: Option<PidfdCall>,
        /// The failure left the caller where it was, and the per-namespace
        /// steps follow.
        #[serde(default, skip_serializing_if = "is_false")]
        fallback: bool,
    },
    /// fork(2): pid and time namespaces apply to children only.
    Fork {
        /// `"ok"` (omitted) or the errno.
        #[serde(default, skip_serializing_if = "Outcome::is_ok")]
        result: Outcome,
    },
}

impl TraceStep {
    /// The kind the step belongs to (none for sync and fork).
    pub fn kind(&self) -> Option<Kind> {
        match self {
            TraceStep::Open { kind, .. }
            | TraceStep::Setns { kind, .. }
            | TraceStep::Unshare { kind, .. }
            | TraceStep::Setid { kind, .. }
            | TraceStep::DeferredJoins { kind, .. }
            | TraceStep::Propagation { kind, .. }
            | TraceStep::TimeOffsets { kind, .. }
            | TraceStep::Close { kind, .. } => Some(*kind),
            TraceStep::Sync { point } => Some(point.kind()),
            TraceStep::Fork { .. } | TraceStep::PidfdJoin { .. } => None,
        }
    }

    /// The call's outcome (sync and close always succeed as calls).
    pub fn outcome(&self) -> Outcome {
        match self {
            TraceStep::Open { result, .. }
            | TraceStep::Setns { result, .. }
            | TraceStep::Unshare { result, .. }
            | TraceStep::Setid { result, .. }
            | TraceStep::Propagation { result, .. }
            | TraceStep::TimeOffsets { result, .. }
            | TraceStep::PidfdJoin { result, .. }
            | TraceStep::Fork { result } => *result,
            TraceStep::Sync { .. } | TraceStep::Close { .. } | TraceStep::DeferredJoins { .. } => {
                Outcome::Ok
            }
        }
    }
}

/// The call of a pidfd join that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PidfdCall {
    /// `pidfd_open(2)`.
    #[serde(rename = "pidfd_open")]
    Open,
    /// `setns(2)` through the pidfd.
    Setns,
}

impl PidfdCall {
    /// The call's name as strace shows it.
    pub const fn name(self) -> &'static str {
        match self {
            PidfdCall::Open => "pidfd_open",
            PidfdCall::Setns => "setns",
        }
    }
}

/// A namespace left unjoined when a join failed, listed in [`ApplyError::Join`](crate::ApplyError::Join).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unjoined {
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Its path.
    pub path: PathBuf,
}

/// The `error` object of a failed run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceError {
    /// The stable code.
    pub code: ErrorCode,
    /// The namespace kind, if the error has one.
    #[serde(rename = "type")]
    pub kind: Option<Kind>,
    /// The path, if the error has one.
    pub path: Option<PathBuf>,
    /// The errno, if a call failed.
    pub errno: Option<Errno>,
    /// The human-readable message (the error's `Display`).
    pub message: String,
    /// For validation errors: the index in `linux.namespaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// For join failures: every namespace left unjoined.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unjoined: Vec<Unjoined>,
}

impl From<&ConfigError> for TraceError {
    fn from(e: &ConfigError) -> Self {
        TraceError {
            code: e.code(),
            kind: e.kind(),
            path: e.path().map(ToOwned::to_owned),
            errno: None,
            message: e.to_string(),
            index: e.index(),
            unjoined: Vec::new(),
        }
    }
}

/// One trace document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trace {
    /// Always [`TRACE_VERSION`].
    pub version: u32,
    /// The steps taken, in order.
    pub steps: Vec<TraceStep>,
    /// `null` on success.
    pub error: Option<TraceError>,
}

impl Default for Trace {
    fn default() -> Self {
        Trace {
            version: TRACE_VERSION,
            steps: Vec::new(),
            error: None,
        }
    }
}

impl Trace {
    /// A trace with no steps that records a validation error.
    pub fn rejected(e: &ConfigError) -> Trace {
        Trace {
            error: Some(e.into()),
            ..Trace::default()
        }
    }

    /// The document as pretty JSON.
    pub fn to_json_pretty(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses a trace document.
    ///
    /// # Errors
    ///
    /// The serde error for malformed JSON or a document that is not a trace.
    pub fn from_json(s: &str) -> Result<Trace, serde_json::Error> {
        serde_json::from_str(s)
    }
}

/// A path (or message) as text output shows it: control characters (a newline, the
/// escape that starts a terminal sequence) and backslashes escaped as in a
/// Rust string (`\n`, `\u{1b}`, `\\`), so a hostile path can neither
/// forge a line nor drive the terminal; bytes that are not UTF-8 show as
/// U+FFFD.
///
/// ```
/// use std::path::Path;
/// use nsapply::trace::shown;
/// assert_eq!(shown(Path::new("/run/netns/a")).to_string(), "/run/netns/a");
/// assert_eq!(shown(Path::new("/a\nb\u{1b}[31m")).to_string(), r"/a\nb\u{1b}[31m");
/// ```
pub fn shown<T: AsRef<std::ffi::OsStr> + ?Sized>(path: &T) -> impl fmt::Display + '_ {
    struct Shown<'a>(&'a std::ffi::OsStr);
    impl fmt::Display for Shown<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for c in self.0.to_string_lossy().chars() {
                if c.is_control() || c == '\\' {
                    write!(f, "{}", c.escape_debug())?;
                } else {
                    fmt::Write::write_char(f, c)?;
                }
            }
            Ok(())
        }
    }
    Shown(path.as_ref())
}

impl fmt::Display for TraceStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceStep::Open {
                kind,
                path,
                result,
                found,
            } => {
                write!(f, "open    {kind:<8} {} -> {result}", shown(path))?;
                if let Some(t) = found {
                    write!(f, " (is {t})")?;
                }
                Ok(())
            }
            TraceStep::Setns {
                kind,
                path,
                result,
                deferred,
            } => {
                write!(f, "setns   {kind:<8} {} -> {result}", shown(path))?;
                if *deferred {
                    f.write_str(" (deferred)")?;
                }
                Ok(())
            }
            TraceStep::Unshare { kind, result } => write!(f, "unshare {kind:<8} -> {result}"),
            TraceStep::Sync { point } => write!(f, "sync    {point}"),
            TraceStep::Setid { result, .. } => {
                write!(f, "setid   user     uid=0 gid=0 -> {result}")
            }
            TraceStep::DeferredJoins { retried, .. } => {
                write!(f, "pass 2  user     retry")?;
                if retried.is_empty() {
                    f.write_str(" (nothing deferred)")
                } else {
                    let kinds: Vec<&str> = retried.iter().map(|k| k.spec_name()).collect();
                    write!(f, " {}", kinds.join(","))
                }
            }
            TraceStep::Propagation {
                propagation,
                result,
                ..
            } => write!(f, "propagate mount  / {propagation} -> {result}"),
            TraceStep::TimeOffsets {
                offsets, result, ..
            } => {
                write!(f, "offsets time    ")?;
                for o in offsets {
                    write!(f, " {}={}.{:09}", o.clock.name(), o.secs, o.nanosecs)?;
                }
                write!(f, " -> {result}")
            }
            TraceStep::Close { kind, path } => write!(f, "close   {kind:<8} {}", shown(path)),
            TraceStep::PidfdJoin {
                pid,
                kinds,
                result,
                call,
                fallback,
            } => {
                write!(f, "pidfd   {pid:<8} {kinds} -> {result}")?;
                if let Some(call) = call {
                    write!(f, " ({})", call.name())?;
                }
                if *fallback {
                    f.write_str(", per namespace below")?;
                }
                Ok(())
            }
            TraceStep::Fork { result } => write!(f, "fork             -> {result}"),
        }
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "{:>3}  {s}", i + 1)?;
        }
        match &self.error {
            None => writeln!(f, "ok"),
            Some(e) => writeln!(f, "error: {}: {}", e.code, shown(&e.message)),
        }
    }
}

/// The trace steps of a plan: what apply records when every call succeeds.
impl Step {
    /// The trace step this plan step produces when every call succeeds.
    pub fn expected(&self) -> TraceStep {
        let ok = Outcome::Ok;
        match self {
            Step::Open { kind, path } => TraceStep::Open {
                kind: *kind,
                path: path.as_path().to_owned(),
                result: ok,
                found: None,
            },
            Step::Setns { kind, path } => TraceStep::Setns {
                kind: *kind,
                path: path.as_path().to_owned(),
                result: ok,
                deferred: false,
            },
            Step::Unshare { kind } => TraceStep::Unshare {
                kind: *kind,
                result: ok,
            },
            Step::Sync { point } => TraceStep::Sync { point: *point },
            Step::Setid => TraceStep::Setid {
                kind: Kind::User,
                result: ok,
            },
            Step::DeferredJoins => TraceStep::DeferredJoins {
                kind: Kind::User,
                retried: Vec::new(),
            },
            Step::Propagation { propagation } => TraceStep::Propagation {
                kind: Kind::Mount,
                propagation: *propagation,
                result: ok,
            },
            Step::TimeOffsets { offsets } => TraceStep::TimeOffsets {
                kind: Kind::Time,
                offsets: offsets.clone(),
                result: ok,
            },
            Step::Close { kind, path } => TraceStep::Close {
                kind: *kind,
                path: path.as_path().to_owned(),
            },
            Step::Fork => TraceStep::Fork { result: ok },
            Step::PidfdJoin { pid, kinds } => TraceStep::PidfdJoin {
                pid: *pid,
                kinds: *kinds,
                result: ok,
                call: None,
                fallback: false,
            },
        }
    }
}

impl Plan {
    /// The trace apply would produce on a host where every call succeeds
    /// (what `nsapply plan --format json` prints).
    ///
    /// After a pidfd join that succeeds, the per-namespace joins of its
    /// fallback are not taken, so they are not in the trace.
    pub fn expected_trace(&self) -> Trace {
        let mut pidfd = false;
        let steps = self
            .steps()
            .iter()
            .filter(|s| {
                pidfd |= matches!(s, Step::PidfdJoin { .. });
                !(pidfd && s.is_per_namespace_join())
            })
            .map(Step::expected)
            .collect();
        Trace {
            steps,
            ..Trace::default()
        }
    }
}

/// The plan as a table: the steps taken when every call succeeds; for an
/// exec plan with a pidfd join, then the per-namespace fallback, numbered
/// `f1`, `f2`, ... (taken instead when the pidfd join fails, ESRCH aside).
impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn table(
            f: &mut std::fmt::Formatter<'_>,
            prefix: &str,
            steps: impl Iterator<Item = TraceStep>,
        ) -> std::fmt::Result {
            steps.enumerate().try_for_each(|(i, s)| {
                let text = s.to_string();
                // The plan table shows what will be done, not results.
                let text = text.strip_suffix(" -> ok").unwrap_or(&text).trim_end();
                writeln!(f, "{:>3}  {text}", format!("{prefix}{}", i + 1))
            })
        }
        table(f, "", self.expected_trace().steps.into_iter())?;
        if self
            .steps()
            .iter()
            .any(|s| matches!(s, Step::PidfdJoin { .. }))
        {
            writeln!(f, "     fallback, when the kernel refuses the pidfd join:")?;
            let fallback = self
                .steps()
                .iter()
                .filter(|s| !matches!(s, Step::PidfdJoin { .. }))
                .map(Step::expected);
            table(f, "f", fallback)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_names_its_kind_and_outcome() {
        let step = |json: &str| -> TraceStep { serde_json::from_str(json).unwrap() };
        let eperm = Outcome::Err(Errno::EPERM);
        let cases = [
            (
                r#"{"op":"open","type":"network","path":"/a","result":"EPERM"}"#,
                Some(Kind::Network),
                eperm,
            ),
            (
                r#"{"op":"setns","type":"ipc","path":"/a","result":"EPERM"}"#,
                Some(Kind::Ipc),
                eperm,
            ),
            (
                r#"{"op":"unshare","type":"uts","result":"EPERM"}"#,
                Some(Kind::Uts),
                eperm,
            ),
            (
                r#"{"op":"setid","type":"user","result":"EPERM"}"#,
                Some(Kind::User),
                eperm,
            ),
            (
                r#"{"op":"propagation","type":"mount","propagation":"rslave","result":"EPERM"}"#,
                Some(Kind::Mount),
                eperm,
            ),
            (
                r#"{"op":"time-offsets","type":"time","offsets":[],"result":"EPERM"}"#,
                Some(Kind::Time),
                eperm,
            ),
            (r#"{"op":"fork","result":"EPERM"}"#, None, eperm),
            (
                r#"{"op":"sync","point":"cgroup-placed"}"#,
                Some(Kind::Cgroup),
                Outcome::Ok,
            ),
            (
                r#"{"op":"close","type":"pid","path":"/a"}"#,
                Some(Kind::Pid),
                Outcome::Ok,
            ),
            (
                r#"{"op":"deferred-joins","type":"user","retried":["ipc"]}"#,
                Some(Kind::User),
                Outcome::Ok,
            ),
        ];
        for (json, kind, outcome) in cases {
            let s = step(json);
            assert_eq!((s.kind(), s.outcome()), (kind, outcome), "{json}");
        }
    }

    #[test]
    fn shown_escapes_control_characters_and_backslashes_only() {
        let shown = |p: &str| shown(std::path::Path::new(p)).to_string();
        assert_eq!(shown("/run/netns/a b"), "/run/netns/a b");
        assert_eq!(shown("/a\nb"), r"/a\nb");
        assert_eq!(shown("/a\u{1b}[31m"), r"/a\u{1b}[31m");
        assert_eq!(shown(r"/a\nb"), r"/a\\nb");
    }

    #[test]
    fn design_example_round_trips() {
        let doc = r#"{
          "version": 1,
          "steps": [
            {"op": "open",    "type": "network", "path": "/run/netns/a", "result": "ok"},
            {"op": "setns",   "type": "network", "path": "/run/netns/a", "result": "ok"},
            {"op": "unshare", "type": "user", "result": "ok"},
            {"op": "sync",    "point": "id-mapping"},
            {"op": "unshare", "type": "pid", "result": "ok"},
            {"op": "close",   "type": "network", "path": "/run/netns/a"},
            {"op": "fork"}
          ],
          "error": null
        }"#;
        let t = Trace::from_json(doc).unwrap();
        assert_eq!(t.steps.len(), 7);
        let again = Trace::from_json(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(t, again);
        let v: serde_json::Value = serde_json::from_str(&t.to_json_pretty()).unwrap();
        let want: serde_json::Value = serde_json::from_str(doc).unwrap();
        assert_eq!(
            v, want,
            "serialization must reproduce the DESIGN example exactly"
        );
    }

    #[test]
    fn deferred_and_errno_results_serialize_as_names() {
        let s = TraceStep::Setns {
            kind: Kind::Network,
            path: "/n".into(),
            result: Outcome::Err(Errno::EPERM),
            deferred: true,
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"op":"setns","type":"network","path":"/n","result":"EPERM","deferred":true}"#
        );
        assert!(Trace::from_json(
            r#"{"version":1,"steps":[{"op":"fork","result":"EBOGUS"}],"error":null}"#
        )
        .is_err());
    }
}
