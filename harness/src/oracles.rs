//! Invariant checks of runs and plans, shared by the property tests
//! (`proptests/properties.rs`) and the fuzz oracles (`nsapply_harness::fuzzing`),
//! feature `testing`.
//!
//! They restate DESIGN §3 and §4 from the text, independently of the code
//! they check: [`validation_rule`] does not call `nsapply::config`, and the
//! run checks read the model's own call log rather than trusting the trace.
//! Each returns the first violation as a message, or `None`.

use std::collections::BTreeMap;

use nsapply::apply::Applied;
use nsapply::config::{NsConfig, RawLinux};
use nsapply::error::{Errno, ErrorCode};
use nsapply::kind::Kind;
use nsapply::model::{Call, CallOp, Model};
use nsapply::plan::SyncPoint;
use nsapply::plan::{Plan, Step};
use nsapply::trace::{Outcome, TraceError, TraceStep};

/// The validation rules of DESIGN §3, restated from the text in the
/// simplest form, independent of `nsapply::config`: the code of the first
/// rule broken (in the documented precedence) and the entry index it names.
pub fn validation_rule(raw: &RawLinux) -> Option<(&'static str, Option<usize>)> {
    const TYPES: [&str; 8] = [
        "user", "pid", "uts", "ipc", "network", "cgroup", "mount", "time",
    ];
    let mut seen: Vec<&str> = Vec::new();
    for (i, ns) in raw.namespaces.iter().enumerate() {
        if !TYPES.contains(&ns.type_name.as_str()) {
            return Some(("unknown-type", Some(i)));
        }
        if let Some(p) = &ns.path {
            if !p.to_string_lossy().starts_with('/') {
                return Some(("relative-path", Some(i)));
            }
            if p.to_string_lossy().contains('\0') {
                return Some(("invalid-path", Some(i)));
            }
        }
        if seen.contains(&ns.type_name.as_str()) {
            return Some(("duplicate-namespace", Some(i)));
        }
        seen.push(&ns.type_name);
    }
    let entry = |t: &str| raw.namespaces.iter().position(|ns| ns.type_name == t);
    let given = |m: &Option<Vec<_>>| m.as_ref().is_some_and(|v: &Vec<_>| !v.is_empty());
    let (uid, gid) = (given(&raw.uid_mappings), given(&raw.gid_mappings));
    match entry("user") {
        Some(i) if raw.namespaces[i].path.is_some() && (uid || gid) => {
            return Some(("user-namespace-path-with-mappings", Some(i)))
        }
        None if uid || gid => return Some(("mappings-without-new-user-namespace", None)),
        Some(i) if raw.namespaces[i].path.is_none() && !(uid && gid) => {
            return Some(("missing-mappings", Some(i)))
        }
        _ => {}
    }
    let offsets: BTreeMap<_, _> = raw.time_offsets.clone().unwrap_or_default();
    if !offsets.is_empty() {
        match entry("time") {
            None => return Some(("time-offsets-without-new-time-namespace", None)),
            Some(i) if raw.namespaces[i].path.is_some() => {
                return Some(("time-offsets-without-new-time-namespace", Some(i)))
            }
            _ => {}
        }
        // A clock plus its offset must read within [0, KTIME_SEC_MAX / 2]
        // seconds (time_namespaces(7), proc_timens_set_offset): an offset
        // beyond half of KTIME_SEC_MAX (9223372036) either way never fits.
        let bad = offsets.iter().any(|(c, o)| {
            !(c == "monotonic" || c == "boottime")
                || o.nanosecs > 999_999_999
                || o.secs.unsigned_abs() > 9_223_372_036 / 2
        });
        if bad {
            return Some(("invalid-time-offset", None));
        }
    }
    let propagation = raw.rootfs_propagation.as_deref().unwrap_or("");
    if !propagation.is_empty() {
        const NAMES: [&str; 8] = [
            "shared",
            "slave",
            "private",
            "unbindable",
            "rshared",
            "rslave",
            "rprivate",
            "runbindable",
        ];
        if !NAMES.contains(&propagation) {
            return Some(("invalid-rootfs-propagation", None));
        }
        match entry("mount") {
            None => return Some(("rootfs-propagation-without-new-mount-namespace", None)),
            Some(i) if raw.namespaces[i].path.is_some() => {
                return Some(("rootfs-propagation-without-new-mount-namespace", Some(i)))
            }
            _ => {}
        }
    }
    None
}

fn position(steps: &[Step], f: impl Fn(&Step) -> bool) -> Option<usize> {
    steps.iter().position(f)
}

fn is_sorted<T: Ord>(v: &[T]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

/// Checks every ordering rule of DESIGN §4 on one plan, as a partial order,
/// plus canonical order within each group. Returns the first broken rule.
pub fn order_violation(cfg: &NsConfig, p: &Plan) -> Option<String> {
    let s = p.steps();
    let kinds_of = |f: &dyn Fn(&Step) -> Option<Kind>| s.iter().filter_map(f).collect::<Vec<_>>();
    let opens = kinds_of(&|st| match st {
        Step::Open { kind, .. } => Some(*kind),
        _ => None,
    });
    let joins = kinds_of(&|st| match st {
        Step::Setns { kind, .. } if *kind != Kind::User => Some(*kind),
        _ => None,
    });
    let unshares = kinds_of(&|st| match st {
        Step::Unshare { kind } if *kind != Kind::User => Some(*kind),
        _ => None,
    });
    let closes = kinds_of(&|st| match st {
        Step::Close { kind, .. } => Some(*kind),
        _ => None,
    });
    for (name, group) in [
        ("opens", &opens),
        ("joins", &joins),
        ("unshares", &unshares),
        ("closes", &closes),
    ] {
        if !is_sorted(group) {
            return Some(format!("{name} not in canonical order: {group:?}"));
        }
    }
    let joined: Vec<Kind> = Kind::ALL.into_iter().filter(|k| cfg.joins(*k)).collect();
    if opens != joined || closes != joined {
        return Some("every joined kind is opened and closed exactly once".into());
    }
    let last_open = s.iter().rposition(|st| matches!(st, Step::Open { .. }));
    let first_setns = position(s, |st| matches!(st, Step::Setns { .. }));
    if let (Some(o), Some(j)) = (last_open, first_setns) {
        if o > j {
            return Some("an open comes after the first setns".into());
        }
    }
    let user_step = position(s, |st| {
        matches!(
            st,
            Step::Setns {
                kind: Kind::User,
                ..
            } | Step::Unshare { kind: Kind::User }
        )
    });
    if let Some(u) = user_step {
        if s[..u].iter().any(|st| matches!(st, Step::Unshare { .. })) {
            return Some("an unshare precedes the user namespace step".into());
        }
        if s[u..]
            .iter()
            .any(|st| matches!(st, Step::Setns { kind, .. } if *kind != Kind::User))
        {
            return Some("a planned non-user join follows the user step".into());
        }
        let next = &s[u + 1..];
        let ok = if cfg.creates(Kind::User) {
            next.starts_with(&[
                Step::Sync {
                    point: SyncPoint::IdMapping,
                },
                Step::Setid,
            ])
        } else {
            // Joined by path: setid, then join pass 2 (what pass 1 deferred
            // is retried from inside the user namespace).
            next.starts_with(&[Step::Setid, Step::DeferredJoins])
        };
        if !ok {
            return Some(
                "user step not followed by its id-mapping sync and setid (and pass 2 when joined)"
                    .into(),
            );
        }
    } else if cfg.kinds().contains(Kind::User) {
        return Some("user namespace named but no user step".into());
    }
    let pass_two = s.iter().filter(|st| **st == Step::DeferredJoins).count();
    if pass_two != usize::from(cfg.joins(Kind::User)) {
        return Some(format!(
            "{pass_two} join pass 2 steps, and the user namespace is {}joined by path",
            if cfg.joins(Kind::User) { "" } else { "not " }
        ));
    }
    let expected_unshares: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| *k != Kind::User && cfg.creates(*k))
        .collect();
    if unshares != expected_unshares {
        return Some(format!(
            "unshares {unshares:?}, expected {expected_unshares:?}"
        ));
    }
    let cgroup = position(s, |st| *st == Step::Unshare { kind: Kind::Cgroup });
    let cgroup_sync = position(s, |st| {
        *st == Step::Sync {
            point: SyncPoint::CgroupPlaced,
        }
    });
    match (cgroup, cgroup_sync) {
        (Some(c), Some(y)) if y + 1 == c => {}
        (None, None) => {}
        _ => return Some("cgroup-placed sync is not right before unshare(cgroup)".into()),
    }
    let mount = position(s, |st| *st == Step::Unshare { kind: Kind::Mount });
    let propagation = position(s, |st| matches!(st, Step::Propagation { .. }));
    match (mount, propagation) {
        (Some(m), Some(p)) if p == m + 1 => {}
        (None, None) => {}
        _ => return Some("the propagation of / is not right after unshare(mount)".into()),
    }
    if let Some(Step::Propagation { propagation }) = propagation.map(|i| &s[i]) {
        if Some(*propagation) != cfg.propagation() {
            return Some(format!(
                "/ made {propagation}, the config says {:?}",
                cfg.propagation()
            ));
        }
    }
    let time = position(s, |st| *st == Step::Unshare { kind: Kind::Time });
    let offsets = position(s, |st| matches!(st, Step::TimeOffsets { .. }));
    match (time, offsets, cfg.time_offsets().is_empty()) {
        (Some(t), Some(o), false) if o == t + 1 => {}
        (_, None, true) => {}
        _ => return Some("time offsets are not right after unshare(time)".into()),
    }
    let forks = s.iter().filter(|st| **st == Step::Fork).count();
    let needs_fork = cfg.kinds().contains(Kind::Pid) || cfg.kinds().contains(Kind::Time);
    if forks != usize::from(needs_fork) || (needs_fork && s.last() != Some(&Step::Fork)) {
        return Some("fork must be last, exactly when pid or time is involved".into());
    }
    let first_close = position(s, |st| matches!(st, Step::Close { .. }));
    if let Some(c) = first_close {
        if s[c..]
            .iter()
            .any(|st| !matches!(st, Step::Close { .. } | Step::Fork))
        {
            return Some("a step other than close/fork follows the first close".into());
        }
    }
    None
}

/// The kind each path was opened as, from the trace.
pub fn opened_as(trace: &[TraceStep]) -> BTreeMap<&std::path::Path, Kind> {
    trace
        .iter()
        .filter_map(|s| match s {
            TraceStep::Open { kind, path, .. } => Some((path.as_path(), *kind)),
            _ => None,
        })
        .collect()
}

/// Checks property 4 on one run of `p`, whose calls are `calls` (the
/// model's calls of this run only, so phases can run on one model) and which
/// started with `threads_at_start` threads; returns the first violation.
pub fn error_path_violation(
    p: &Plan,
    threads_at_start: usize,
    applied: &Applied,
    model: &Model,
    calls: &[Call],
) -> Option<String> {
    let error = applied.error();
    run_error_path_violation(p, threads_at_start, applied, error.as_ref(), model, calls)
}

/// [`error_path_violation`] with the run's trace error made once by the
/// caller (`applied.error()`, which formats the error's message: most of
/// the cost of a failed run's checks when each check made its own).
pub fn run_error_path_violation(
    p: &Plan,
    threads_at_start: usize,
    applied: &Applied,
    error: Option<&TraceError>,
    model: &Model,
    calls: &[Call],
) -> Option<String> {
    // setns(user|mount|time), unshare(user) and the fork need one thread.
    let needs_one_thread = p.steps().iter().any(|s| match s {
        Step::PidfdJoin { kinds, .. } => [Kind::User, Kind::Mount, Kind::Time]
            .iter()
            .any(|k| kinds.contains(*k)),
        _ => matches!(
            s,
            Step::Setns {
                kind: Kind::User | Kind::Mount | Kind::Time,
                ..
            } | Step::Unshare { kind: Kind::User }
                | Step::Fork
        ),
    });
    let asked = calls.iter().any(|c| c.op == CallOp::Threads);
    if asked != needs_one_thread {
        return Some(format!(
            "thread count asked: {asked}, plan needs one thread: {needs_one_thread}"
        ));
    }
    if needs_one_thread && threads_at_start > 1 {
        // Refused before the first step, naming the first step that needs
        // one thread (the fork is pid's when the plan has pid, else time's).
        let first = p.steps().iter().find_map(|s| match s {
            Step::PidfdJoin { kinds, .. } => kinds
                .iter()
                .find(|k| matches!(k, Kind::User | Kind::Mount | Kind::Time)),
            Step::Setns { kind, .. } if matches!(kind, Kind::User | Kind::Mount | Kind::Time) => {
                Some(*kind)
            }
            Step::Unshare { kind: Kind::User } => Some(Kind::User),
            Step::Fork if p.kinds().contains(Kind::Pid) => Some(Kind::Pid),
            Step::Fork => Some(Kind::Time),
            _ => None,
        });
        // A count that could not be read is its own error (with its errno),
        // still before the first step.
        let refused = error.is_some_and(|e| {
            e.kind == first
                && match e.errno {
                    None => e.code == ErrorCode::Multithreaded,
                    Some(_) => e.code == ErrorCode::ThreadCountFailed,
                }
        });
        if !refused || !applied.steps.is_empty() {
            return Some(format!(
                "a multithreaded caller was not refused before the first step, naming {first:?}"
            ));
        }
    }
    if model.open_fd_count() != 0 {
        return Some(format!("{} fds left open", model.open_fd_count()));
    }
    if model.bad_closes() != 0 {
        return Some("an fd was closed twice".into());
    }
    let steps = &applied.steps;
    let opened = opened_as(steps);
    // The kind a call's path was opened as (none without a path).
    let opened_kind = |c: &Call| c.path.as_deref().and_then(|p| opened.get(p)).copied();
    let mut setns_seen: BTreeMap<Kind, usize> = BTreeMap::new();
    let deferred_at = |kind: Kind, nth: usize| {
        steps
            .iter()
            .filter(|s| matches!(s, TraceStep::Setns { kind: k, .. } if *k == kind))
            .nth(nth)
            .is_some_and(|s| matches!(s, TraceStep::Setns { deferred: true, .. }))
    };
    // The run's only thread query is the one before its first step (sync
    // hooks of the model start no thread), so it saw the starting count.
    let multithreaded = threads_at_start > 1;
    let mut fatal: Option<(usize, &Call)> = None;
    for (i, c) in calls.iter().enumerate() {
        let is_fatal = match (c.op, c.result) {
            (CallOp::Close, _) => false,
            (CallOp::Threads, Outcome::Err(_)) => true,
            (CallOp::Threads, Outcome::Ok) => multithreaded,
            (CallOp::Setns, Outcome::Err(_)) => {
                let kind = c.kind.expect("setns has a kind");
                let nth = setns_seen.entry(kind).or_default();
                *nth += 1;
                !deferred_at(kind, *nth - 1)
            }
            (CallOp::Setns, Outcome::Ok) => {
                *setns_seen
                    .entry(c.kind.expect("setns has a kind"))
                    .or_default() += 1;
                false
            }
            (CallOp::Nstype, Outcome::Ok) => opened_kind(c) != c.kind,
            // A pidfd join that failed changed nothing, and the joins go on
            // one namespace file at a time (naming the one that fails);
            // only the target's exit (ESRCH) ends the run there.
            (CallOp::SetnsPidfd | CallOp::PidfdOpen, Outcome::Err(e)) => e == Errno::ESRCH,
            (_, Outcome::Err(_)) => true,
            _ => false,
        };
        if is_fatal {
            fatal = Some((i, c));
            break;
        }
    }
    match (fatal, error) {
        (None, None) => None,
        (None, Some(e)) if e.code == ErrorCode::SyncFailed => None,
        (None, Some(e)) => Some(format!("error {} without a failing call", e.code)),
        (Some((_, c)), None) => Some(format!("call {c:?} failed but the run succeeded")),
        (Some((i, c)), Some(e)) => {
            if let Some(after) = calls[i + 1..].iter().find(|c| c.op != CallOp::Close) {
                return Some(format!("call {after:?} after the fatal {c:?}"));
            }
            let want_kind = match c.op {
                CallOp::Open | CallOp::Nstype => opened_kind(c),
                CallOp::Fork => None,
                CallOp::Setid => Some(Kind::User),
                CallOp::TimeOffsets => Some(Kind::Time),
                _ => c.kind.or(e.kind),
            };
            if c.op != CallOp::Threads && e.kind != want_kind {
                return Some(format!(
                    "error names {:?}, the failing call was {c:?}",
                    e.kind
                ));
            }
            if matches!(c.op, CallOp::Open | CallOp::Nstype | CallOp::Setns) && e.path != c.path {
                return Some(format!(
                    "error names path {:?}, the failing call was {c:?}",
                    e.path
                ));
            }
            if let Outcome::Err(errno) = c.result {
                if e.errno != Some(errno) {
                    return Some(format!(
                        "error errno {:?}, the call gave {errno:?}",
                        e.errno
                    ));
                }
            }
            let want_code = match (c.op, c.result) {
                (CallOp::PidfdOpen | CallOp::SetnsPidfd, Outcome::Err(e)) if e == Errno::ESRCH => {
                    ErrorCode::TargetExited
                }
                (CallOp::PidfdOpen | CallOp::SetnsPidfd, _) => ErrorCode::JoinFailed,
                // An exec target's namespace files go with it.
                (CallOp::Open, Outcome::Err(e))
                    if e == Errno::ENOENT && p.exec_target().is_some() =>
                {
                    ErrorCode::TargetExited
                }
                (CallOp::Open, Outcome::Err(e)) if e == Errno::ENOENT || e == Errno::ENOTDIR => {
                    ErrorCode::PathNotFound
                }
                (CallOp::Open, _) => ErrorCode::OpenFailed,
                (CallOp::Nstype, Outcome::Err(e)) if e == Errno::ENOTTY => ErrorCode::NotANamespace,
                (CallOp::Nstype, Outcome::Err(_)) => ErrorCode::OpenFailed,
                (CallOp::Nstype, Outcome::Ok) => ErrorCode::WrongNamespaceType,
                (CallOp::Setns, _) => ErrorCode::JoinFailed,
                (CallOp::Unshare, _) => ErrorCode::UnshareFailed,
                (CallOp::Setid, _) => ErrorCode::SetidFailed,
                (CallOp::TimeOffsets, _) => ErrorCode::TimeOffsetsFailed,
                (CallOp::Propagation, _) => ErrorCode::PropagationFailed,
                (CallOp::Fork, _) => ErrorCode::ForkFailed,
                (CallOp::Threads, Outcome::Ok) => ErrorCode::Multithreaded,
                (CallOp::Threads, Outcome::Err(_)) => ErrorCode::ThreadCountFailed,
                (CallOp::Close, _) => unreachable!("close is never fatal"),
            };
            if e.code != want_code {
                return Some(format!(
                    "error code {}, the failing call {c:?} means {want_code}",
                    e.code
                ));
            }
            for (j, s) in steps.iter().enumerate() {
                if let TraceStep::Setns {
                    deferred: true,
                    kind,
                    result,
                    ..
                } = s
                {
                    let user_step_before = steps[..j]
                        .iter()
                        .any(|s| matches!(s, TraceStep::Setid { .. }));
                    if *result != Outcome::Err(Errno::EPERM)
                        || *kind == Kind::User
                        || !p.joins_user()
                        || user_step_before
                    {
                        return Some(format!("deferral not allowed here: {s:?}"));
                    }
                }
            }
            None
        }
    }
}

/// Checks property 5 on one run.
pub fn deferral_violation(p: &Plan, applied: &Applied) -> Option<String> {
    run_deferral_violation(p, applied, applied.error().as_ref())
}

/// [`deferral_violation`] with the run's trace error made once by the
/// caller (see [`run_error_path_violation`]).
pub fn run_deferral_violation(
    p: &Plan,
    applied: &Applied,
    error: Option<&TraceError>,
) -> Option<String> {
    let steps = &applied.steps;
    let setid = steps
        .iter()
        .position(|s| matches!(s, TraceStep::Setid { .. }));
    let deferred: Vec<(usize, Kind)> = steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            TraceStep::Setns {
                deferred: true,
                kind,
                ..
            } => Some((i, *kind)),
            _ => None,
        })
        .collect();
    if !deferred.is_empty() && !p.joins_user() {
        return Some("a join was deferred although no user namespace is joined".into());
    }
    // Join pass 2, once reached, names exactly the deferred kinds, in
    // canonical order, and the retries follow it.
    let pass_two = steps.iter().enumerate().find_map(|(i, s)| match s {
        TraceStep::DeferredJoins { retried, .. } => Some((i, retried)),
        _ => None,
    });
    if let Some((at, retried)) = pass_two {
        let mut want: Vec<Kind> = deferred.iter().map(|(_, k)| *k).collect();
        want.sort();
        if *retried != want {
            return Some(format!(
                "pass 2 retries {retried:?}, pass 1 deferred {want:?}"
            ));
        }
        if deferred.iter().any(|(i, _)| *i > at) {
            return Some("a join was deferred after pass 2".into());
        }
    }
    let mut unretried = Vec::new();
    for (i, kind) in &deferred {
        let retries: Vec<usize> = steps
            .iter()
            .enumerate()
            .skip(i + 1)
            .filter(|(_, s)| matches!(s, TraceStep::Setns { kind: k, .. } if k == kind))
            .map(|(j, _)| j)
            .collect();
        match retries.as_slice() {
            [] => unretried.push(*kind),
            [j] if setid.is_some_and(|u| u < *j) => {}
            [j] => return Some(format!("{kind} retried at step {j}, before the user step")),
            _ => return Some(format!("{kind} retried more than once")),
        }
    }
    if let Some(e) = error {
        if e.code == ErrorCode::JoinFailed {
            let failed = steps.iter().rev().find_map(|s| match s {
                TraceStep::Setns {
                    kind,
                    result: Outcome::Err(_),
                    deferred: false,
                    ..
                } => Some(*kind),
                _ => None,
            });
            let retry = failed.is_some_and(|k| deferred.iter().any(|(_, d)| *d == k));
            if retry {
                let mut want: Vec<Kind> = vec![failed.unwrap()];
                want.extend(unretried.iter().filter(|k| Some(**k) != failed));
                let got: Vec<Kind> = e.unjoined.iter().map(|u| u.kind).collect();
                if got != want {
                    return Some(format!("unjoined lists {got:?}, expected {want:?}"));
                }
            }
        }
    } else if !unretried.is_empty() {
        return Some(format!("run succeeded with {unretried:?} never retried"));
    }
    None
}
