//! The model's record of calls ([`Call`]) and the fault scripts that make
//! chosen calls fail ([`FaultScript`]), so every error path of the engine
//! can be reached without privilege.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Errno;
use crate::kind::{Kind, KindSet};
use crate::trace::Outcome;

/// Which [`Syscall`](crate::Syscall) method a [`Call`] was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallOp {
    /// [`crate::Syscall::open_ns`].
    Open,
    /// [`crate::Syscall::ns_get_nstype`].
    Nstype,
    /// [`crate::Syscall::setns`].
    Setns,
    /// [`crate::Syscall::unshare`].
    Unshare,
    /// [`crate::Syscall::set_root_ids`].
    Setid,
    /// [`crate::Syscall::set_root_propagation`].
    Propagation,
    /// [`crate::Syscall::write_time_offsets`].
    TimeOffsets,
    /// [`crate::Syscall::fork`].
    Fork,
    /// [`crate::Syscall::close`] (never fails; not counted by fault positions).
    Close,
    /// [`crate::Syscall::thread_count`] (not counted by fault positions).
    Threads,
    /// [`crate::Syscall::pidfd_open`].
    PidfdOpen,
    /// [`crate::Syscall::setns_pidfd`].
    SetnsPidfd,
}

impl CallOp {
    /// Every op, in the order of the enum.
    pub const ALL: [CallOp; 12] = [
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
        CallOp::PidfdOpen,
        CallOp::SetnsPidfd,
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
            CallOp::PidfdOpen => "pidfd-open",
            CallOp::SetnsPidfd => "setns-pidfd",
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
    #[serde(default, skip_serializing_if = "super::is_false")]
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
    pub(super) fn matches(
        &self,
        op: CallOp,
        kind: Option<Kind>,
        kinds: KindSet,
        position: usize,
    ) -> bool {
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
