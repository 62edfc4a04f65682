//! Property tests of validation, ordering, phase filtering and determinism
//! (DESIGN §3 and §4), on generated configurations.
//!
//! Regressions found by proptest are persisted in `proptests/regressions/`
//! and committed; they replay first on every run. `PROPTEST_CASES=20000`
//! runs a deep search.

use std::collections::BTreeMap;

use nsapply::config::{RawLinux, RawNamespace};
use nsapply::model::{simulate, Call, CallOp, FaultScript, Model, World};
use nsapply::testing::{
    build_world, fault_script, kind_set, raw_linux, valid_raw_linux, world_for, PathTarget,
};
use nsapply::{
    plan, validate, Applied, Errno, ErrorCode, Kind, KindSet, NsConfig, Outcome, Plan, Step,
    SyncPoint, TraceStep,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, FileFailurePersistence};

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptests/regressions/properties.txt",
        ))),
        ..Config::default()
    }
}

/// The validation rules of DESIGN §3, restated from the text in the
/// simplest form, independent of `nsapply::config`: the code of the first
/// rule broken (in the documented precedence) and the entry index it names.
fn oracle(raw: &RawLinux) -> Option<(&'static str, Option<usize>)> {
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
        let bad = offsets
            .iter()
            .any(|(c, o)| !(c == "monotonic" || c == "boottime") || o.nanosecs > 999_999_999);
        if bad {
            return Some(("invalid-time-offset", None));
        }
    }
    None
}

fn as_document(raw: &RawLinux) -> String {
    serde_json::json!({"ociVersion": "1.2.0", "linux": raw}).to_string()
}

fn valid_plan() -> impl Strategy<Value = (NsConfig, Plan)> {
    valid_raw_linux().prop_map(|raw| {
        let cfg = validate(&raw).expect("valid_raw_linux yields valid configs");
        let p = plan(&cfg);
        (cfg, p)
    })
}

fn position(steps: &[Step], f: impl Fn(&Step) -> bool) -> Option<usize> {
    steps.iter().position(f)
}

fn is_sorted<T: Ord>(v: &[T]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

/// Checks every ordering rule of DESIGN §4 on one plan, as a partial order,
/// plus canonical order within each group. Returns the first broken rule.
fn order_violation(cfg: &NsConfig, p: &Plan) -> Option<String> {
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
            next.first() == Some(&Step::Setid)
        };
        if !ok {
            return Some("user step not followed by its id-mapping sync and setid".into());
        }
    } else if cfg.kinds().contains(Kind::User) {
        return Some("user namespace named but no user step".into());
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

/// Multiset of steps, fork aside.
fn counts(steps: &[Step]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in steps.iter().filter(|s| **s != Step::Fork) {
        *m.entry(format!("{s:?}")).or_default() += 1;
    }
    m
}

fn is_subsequence(sub: &[Step], full: &[Step]) -> bool {
    let mut it = full.iter();
    sub.iter()
        .filter(|s| **s != Step::Fork)
        .all(|s| it.any(|f| f == s))
}

proptest! {
    #![proptest_config(config())]

    /// Property 1 (validation): an error exactly when the independent
    /// checker says the config breaks a rule of DESIGN §3, with the same
    /// code and the same entry index; the JSON path agrees with the raw path.
    #[test]
    fn validation_matches_the_independent_checker(raw in raw_linux()) {
        let got = validate(&raw);
        let want = oracle(&raw);
        match (&got, want) {
            (Ok(_), None) => {}
            (Err(e), Some((code, index))) => {
                prop_assert_eq!(e.code().as_str(), code, "{}", e);
                if index.is_some() {
                    prop_assert_eq!(e.index(), index, "{}", e);
                }
            }
            _ => prop_assert!(false, "validate gave {:?}, checker wants {:?}", got, want),
        }
        prop_assert_eq!(NsConfig::from_json(&as_document(&raw)), got);
    }

    /// Property 2 (order): every plan satisfies the ordering rules of
    /// DESIGN §4 as a partial order and follows the canonical order within
    /// each group.
    #[test]
    fn plans_satisfy_the_ordering_rules((cfg, p) in valid_plan()) {
        if let Some(v) = order_violation(&cfg, &p) {
            prop_assert!(false, "{}\nplan:\n{}", v, p);
        }
    }

    /// Property 3 (phases): for any split, the two sub-plans together hold
    /// exactly the full plan's steps (fork aside), each in the full plan's
    /// order, no kind leaks into a phase that did not ask for it, and a
    /// sub-plan ends with fork exactly when it holds pid or time.
    #[test]
    fn phases_partition_the_plan((_cfg, p) in valid_plan(), split in kind_set()) {
        let (a, b) = (p.only(split), p.only(split.complement()));
        let mut joined = counts(a.steps());
        for (k, n) in counts(b.steps()) {
            *joined.entry(k).or_default() += n;
        }
        prop_assert_eq!(joined, counts(p.steps()));
        for (sub, set) in [(&a, split), (&b, split.complement())] {
            prop_assert!(is_subsequence(sub.steps(), p.steps()));
            let held: KindSet = sub.steps().iter().filter_map(Step::kind).collect();
            prop_assert_eq!(held.bits() & !set.bits(), 0, "kinds leaked: {:?}", held);
            let wants_fork = held.contains(Kind::Pid) || held.contains(Kind::Time);
            prop_assert_eq!(sub.steps().last() == Some(&Step::Fork), wants_fork);
            prop_assert!(sub.steps().iter().filter(|s| **s == Step::Fork).count() <= 1);
        }
    }

    /// Property 7 (determinism, plan part): the same config always gives the
    /// same plan, plan → JSON → plan round-trips, and the plan's table has
    /// one numbered line per step.
    #[test]
    fn planning_is_deterministic_and_round_trips((cfg, p) in valid_plan()) {
        prop_assert_eq!(&plan(&cfg), &p);
        let json = serde_json::to_string(&p).unwrap();
        let back: Plan = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &p);
        // The table (`nsapply plan`) has one numbered line per step.
        let table = p.to_string();
        prop_assert_eq!(table.lines().count(), p.steps().len());
        for (i, line) in table.lines().enumerate() {
            prop_assert!(line.trim_start().starts_with(&format!("{}  ", i + 1)), "{}", line);
        }
    }

    /// Property 8 (no panics, validation and planning): any generated input
    /// returns a value.
    #[test]
    fn validation_and_planning_never_panic(raw in raw_linux(), split in kind_set()) {
        if let Ok(cfg) = validate(&raw) {
            let p = plan(&cfg);
            let _ = p.only(split).expected_trace();
        }
    }
}

/// A config, its plan (full or one phase of it), a world and a fault script.
fn scenario() -> BoxedStrategy<(Plan, World, FaultScript)> {
    (valid_plan(), kind_set(), any::<bool>())
        .prop_flat_map(|((cfg, full), split, phase)| {
            let p = if phase { full.only(split) } else { full };
            let calls = p.steps().len() * 2;
            (Just(p), world_for(&cfg), fault_script(calls))
        })
        .boxed()
}

fn run(p: &Plan, world: &World, faults: &FaultScript) -> (Applied, Model) {
    let mut model = Model::new(world).expect("generated worlds are consistent");
    model.set_faults(faults.clone());
    let applied = simulate(p, &mut model);
    (applied, model)
}

/// The kind each path was opened as, from the trace.
fn opened_as(trace: &[TraceStep]) -> BTreeMap<std::path::PathBuf, Kind> {
    trace
        .iter()
        .filter_map(|s| match s {
            TraceStep::Open { kind, path, .. } => Some((path.clone(), *kind)),
            _ => None,
        })
        .collect()
}

/// Checks property 4 on one run; returns the first violation.
fn error_path_violation(
    p: &Plan,
    threads_at_start: usize,
    applied: &Applied,
    model: &Model,
) -> Option<String> {
    // setns(user|mount|time), unshare(user) and the fork need one thread.
    let needs_one_thread = p.steps().iter().any(|s| {
        matches!(
            s,
            Step::Setns {
                kind: Kind::User | Kind::Mount | Kind::Time,
                ..
            } | Step::Unshare { kind: Kind::User }
                | Step::Fork
        )
    });
    let asked = model.calls().iter().any(|c| c.op == CallOp::Threads);
    if asked != needs_one_thread {
        return Some(format!(
            "thread count asked: {asked}, plan needs one thread: {needs_one_thread}"
        ));
    }
    if needs_one_thread && threads_at_start > 1 {
        // Refused before the first step, naming the first step that needs
        // one thread (the fork is pid's when the plan has pid, else time's).
        let first = p.steps().iter().find_map(|s| match s {
            Step::Setns { kind, .. } if matches!(kind, Kind::User | Kind::Mount | Kind::Time) => {
                Some(*kind)
            }
            Step::Unshare { kind: Kind::User } => Some(Kind::User),
            Step::Fork if p.kinds().contains(Kind::Pid) => Some(Kind::Pid),
            Step::Fork => Some(Kind::Time),
            _ => None,
        });
        let refused = applied.trace.error.as_ref().is_some_and(|e| {
            e.code == ErrorCode::Multithreaded && (e.kind == first || e.errno.is_some())
        });
        if !refused || !applied.trace.steps.is_empty() {
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
    let steps = &applied.trace.steps;
    let opened = opened_as(steps);
    let mut setns_seen: BTreeMap<Kind, usize> = BTreeMap::new();
    let deferred_at = |kind: Kind, nth: usize| {
        steps
            .iter()
            .filter(|s| matches!(s, TraceStep::Setns { kind: k, .. } if *k == kind))
            .nth(nth)
            .is_some_and(|s| matches!(s, TraceStep::Setns { deferred: true, .. }))
    };
    let multithreaded = model.threads() > 1 || !model.has_forked() && model.threads() > 1;
    let mut fatal: Option<(usize, &Call)> = None;
    for (i, c) in model.calls().iter().enumerate() {
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
            (CallOp::Nstype, Outcome::Ok) => {
                c.path.as_ref().and_then(|p| opened.get(p)).copied() != c.kind
            }
            (_, Outcome::Err(_)) => true,
            _ => false,
        };
        if is_fatal {
            fatal = Some((i, c));
            break;
        }
    }
    let error = applied.trace.error.as_ref();
    match (fatal, error) {
        (None, None) => None,
        (None, Some(e)) if e.code == ErrorCode::SyncFailed => None,
        (None, Some(e)) => Some(format!("error {} without a failing call", e.code)),
        (Some((_, c)), None) => Some(format!("call {c:?} failed but the run succeeded")),
        (Some((i, c)), Some(e)) => {
            if let Some(after) = model.calls()[i + 1..]
                .iter()
                .find(|c| c.op != CallOp::Close)
            {
                return Some(format!("call {after:?} after the fatal {c:?}"));
            }
            let want_kind = match c.op {
                CallOp::Open | CallOp::Nstype => {
                    c.path.as_ref().and_then(|p| opened.get(p)).copied()
                }
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
                if c.op != CallOp::Threads && e.errno != Some(errno) {
                    return Some(format!(
                        "error errno {:?}, the call gave {errno:?}",
                        e.errno
                    ));
                }
            }
            let want_code = match (c.op, c.result) {
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
                (CallOp::Fork, _) => ErrorCode::ForkFailed,
                (CallOp::Threads, _) => ErrorCode::Multithreaded,
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
fn deferral_violation(p: &Plan, applied: &Applied) -> Option<String> {
    let steps = &applied.trace.steps;
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
    if let Some(e) = &applied.trace.error {
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

/// Configs joining a user namespace by path plus 1..=7 namespaces it owns,
/// for a rootless caller that created it: every non-user join is deferred.
fn deferral_scenario() -> BoxedStrategy<(Plan, World, FaultScript)> {
    let owned: Vec<Kind> = Kind::ALL.into_iter().filter(|k| *k != Kind::User).collect();
    let others = proptest::sample::subsequence(owned, 1..=7);
    (others, fault_script(24), any::<bool>())
        .prop_map(|(others, faults, eperm_twice)| {
            let mut namespaces = vec![RawNamespace {
                type_name: "user".into(),
                path: Some(nsapply::testing::join_path(Kind::User)),
            }];
            namespaces.extend(others.iter().map(|k| RawNamespace {
                type_name: k.spec_name().into(),
                path: Some(nsapply::testing::join_path(*k)),
            }));
            let cfg = validate(&RawLinux {
                namespaces,
                ..RawLinux::default()
            })
            .unwrap();
            let world = build_world(&cfg, 1000, 1, &[PathTarget::JoinedUserOwned; 8]);
            let faults = if eperm_twice {
                FaultScript::parse(&format!("setns:{}=EPERM", others[0].spec_name())).unwrap()
            } else {
                faults
            };
            (plan(&cfg), world, faults)
        })
        .boxed()
}

proptest! {
    #![proptest_config(config())]

    /// Property 4 (error paths): with a fault at any call (or a world that
    /// makes one fail), apply stops at that call, or defers it only for
    /// EPERM in pass 1 with a user namespace joined by path; makes no call
    /// after a fatal error but closes; returns an error naming the call's
    /// kind, path and errno, with the code that call and errno mean; and
    /// leaves every opened fd closed exactly once.
    #[test]
    fn errors_stop_the_run_and_close_every_fd((p, world, faults) in scenario()) {
        let (applied, model) = run(&p, &world, &faults);
        if let Some(v) = error_path_violation(&p, world.caller.threads, &applied, &model) {
            prop_assert!(false, "{}\ntrace:\n{}\ncalls: {:#?}", v, applied.trace, model.calls());
        }
    }

    /// Property 5 (deferral): a join deferred in pass 1 is retried exactly
    /// once, after the user step; a second failure is fatal and the error
    /// lists every namespace left unjoined.
    #[test]
    fn deferred_joins_are_retried_once_after_the_user_step(
        (p, world, faults) in prop_oneof![scenario(), deferral_scenario()]
    ) {
        let (applied, model) = run(&p, &world, &faults);
        if let Some(v) = deferral_violation(&p, &applied) {
            prop_assert!(false, "{}\ntrace:\n{}", v, applied.trace);
        }
        prop_assert!(error_path_violation(&p, world.caller.threads, &applied, &model).is_none());
    }

    /// Property 7 (determinism, trace part): the same plan, world and faults
    /// always give the same trace.
    #[test]
    fn simulation_is_deterministic((p, world, faults) in scenario()) {
        let (a, _) = run(&p, &world, &faults);
        let (b, _) = run(&p, &world, &faults);
        prop_assert_eq!(a.trace, b.trace);
    }

    /// Property 8 (no panics, simulation): any generated scenario returns a
    /// trace whose JSON round-trips.
    #[test]
    fn simulation_never_panics((p, world, faults) in scenario()) {
        let (a, _) = run(&p, &world, &faults);
        let back = nsapply::Trace::from_json(&serde_json::to_string(&a.trace).unwrap()).unwrap();
        prop_assert_eq!(back, a.trace);
    }
}

/// The deferral scenario really defers: a rootless caller that created the
/// joined user namespace gets EPERM on every namespace it owns in pass 1
/// and joins them all in pass 2.
#[test]
fn rootless_deferral_scenario_defers_every_owned_namespace() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..32 {
        let (p, world, _) = deferral_scenario().new_tree(&mut runner).unwrap().current();
        let (applied, model) = run(&p, &world, &FaultScript::new());
        assert!(applied.trace.error.is_none(), "{}", applied.trace);
        let deferred = applied
            .trace
            .steps
            .iter()
            .filter(|s| matches!(s, TraceStep::Setns { deferred: true, .. }))
            .count();
        let joins = p
            .steps()
            .iter()
            .filter(|s| matches!(s, Step::Setns { kind, .. } if *kind != Kind::User))
            .count();
        assert_eq!(deferred, joins, "{}", applied.trace);
        assert_eq!(model.open_fd_count(), 0);
    }
}

/// Valid configs as a runtime would pass them: one id mapping line that
/// maps container root (the generated ones may overlap or leave root
/// unmapped, which fails at the id-mapping sync or at setid, as it should),
/// and offsets far from the clocks' limits (the model cannot know the
/// clocks' values, so it answers ERANGE near them).
fn benign_plan() -> impl Strategy<Value = (NsConfig, Plan)> {
    valid_raw_linux().prop_map(|mut raw| {
        let line = vec![nsapply::IdMapping {
            container_id: 0,
            host_id: 100_000,
            size: 65_536,
        }];
        if raw.uid_mappings.is_some() {
            raw.uid_mappings = Some(line.clone());
            raw.gid_mappings = Some(line);
        }
        if let Some(offsets) = raw.time_offsets.as_mut() {
            for o in offsets.values_mut() {
                o.secs %= 1_000_000_000;
            }
        }
        let cfg = validate(&raw).expect("still valid");
        let p = plan(&cfg);
        (cfg, p)
    })
}

proptest! {
    #![proptest_config(config())]

    /// Property 9 (success): a valid plan (full or a phase), applied by root
    /// in a world where every joined path is a namespace of the right kind
    /// owned by the host (the joined user namespace maps root), with no
    /// fault, succeeds, hands the config's id mappings to the id-mapping
    /// sync point, and its trace is exactly the plan's expected trace.
    #[test]
    fn benign_runs_succeed_with_the_expected_trace(
        (cfg, full) in benign_plan(),
        split in kind_set(),
        phase in any::<bool>(),
    ) {
        let p = if phase { full.only(split) } else { full.clone() };
        let world = build_world(&cfg, 0, 1, &[PathTarget::HostOwned; 8]);
        let (applied, model) = run(&p, &world, &FaultScript::new());
        prop_assert!(applied.result.is_ok(), "{}", applied.trace);
        prop_assert_eq!(&applied.trace, &p.expected_trace());
        prop_assert_eq!(model.open_fd_count(), 0);
        if p.steps().contains(&Step::Unshare { kind: Kind::User }) {
            prop_assert_eq!(p.uid_mappings(), cfg.uid_mappings());
            prop_assert_eq!(p.gid_mappings(), cfg.gid_mappings());
            prop_assert!(!p.uid_mappings().is_empty());
        }
        // The plan's kinds are exactly the kinds of its steps.
        let held: KindSet = p.steps().iter().filter_map(Step::kind).collect();
        prop_assert_eq!(p.kinds(), held);
    }
}
