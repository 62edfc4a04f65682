//! Property tests of validation, ordering, phase filtering and determinism
//! (DESIGN §3 and §4), on generated configurations. The invariant checks
//! are `nsapply_harness::oracles` (shared with the fuzz oracles).
//!
//! Regressions found by proptest are persisted in `proptests/regressions/`
//! and committed; they replay first on every run. `PROPTEST_CASES=20000`
//! runs a deep search.

use std::collections::BTreeMap;

use nsapply::config::{RawLinux, RawNamespace};
use nsapply::model::{FaultScript, Model, World};
use nsapply::simulate::simulate;
use nsapply::{plan, validate, Applied, Kind, KindSet, NsConfig, Plan, Step, TraceStep};
use nsapply_harness::oracles::{
    deferral_violation, error_path_violation, order_violation, validation_rule,
};
use nsapply_harness::testing::{
    build_world, exec_scenario, fault_script, kind_set, raw_linux, valid_raw_linux, world_for,
    ExecScenario, PathTarget, EXEC_TARGET,
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
    /// checker (`nsapply_harness::oracles::validation_rule`, DESIGN §3 restated
    /// without calling `nsapply::config`, shared with the fuzz oracles) says
    /// the config breaks a rule, with the same code and the same entry
    /// index; the JSON path agrees with the raw path.
    #[test]
    fn validation_matches_the_independent_checker(raw in raw_linux()) {
        let got = validate(&raw);
        let want = validation_rule(&raw);
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

/// An exec plan (DESIGN §9), its world and a fault script.
fn exec_fault_scenario() -> BoxedStrategy<(Plan, World, FaultScript)> {
    exec_scenario()
        .prop_flat_map(|sc| {
            let p = sc.plan();
            let calls = p.steps().len() * 2;
            (Just(p), Just(sc.world), fault_script(calls))
        })
        .boxed()
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
                path: Some(nsapply_harness::testing::join_path(Kind::User)),
            }];
            namespaces.extend(others.iter().map(|k| RawNamespace {
                type_name: k.spec_name().into(),
                path: Some(nsapply_harness::testing::join_path(*k)),
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
    fn errors_stop_the_run_and_close_every_fd(
        (p, world, faults) in prop_oneof![3 => scenario(), 1 => exec_fault_scenario()]
    ) {
        let (applied, model) = run(&p, &world, &faults);
        if let Some(v) = error_path_violation(&p, world.caller.threads, &applied, &model, model.calls()) {
            prop_assert!(false, "{}\ntrace:\n{}\ncalls: {:#?}", v, applied.trace(), model.calls());
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
            prop_assert!(false, "{}\ntrace:\n{}", v, applied.trace());
        }
        prop_assert!(error_path_violation(&p, world.caller.threads, &applied, &model, model.calls()).is_none());
    }

    /// Property 7 (determinism, trace part): the same plan, world and faults
    /// always give the same trace.
    #[test]
    fn simulation_is_deterministic(
        (p, world, faults) in prop_oneof![3 => scenario(), 1 => exec_fault_scenario()]
    ) {
        let (a, _) = run(&p, &world, &faults);
        let (b, _) = run(&p, &world, &faults);
        prop_assert_eq!(a.trace(), b.trace());
    }

    /// Property 8 (no panics, simulation): any generated scenario returns a
    /// trace whose JSON round-trips.
    #[test]
    fn simulation_never_panics((p, world, faults) in scenario()) {
        let (a, _) = run(&p, &world, &faults);
        let back = nsapply::Trace::from_json(&serde_json::to_string(&a.trace()).unwrap()).unwrap();
        prop_assert_eq!(back, a.trace());
    }
}

/// The namespaces the model's caller is in, and those its children get.
fn namespaces_of(m: &Model) -> Vec<(String, String)> {
    Kind::ALL
        .iter()
        .map(|k| (m.current(*k).to_owned(), m.for_children(*k).to_owned()))
        .collect()
}

proptest! {
    #![proptest_config(config())]

    /// Property 10 (exec, DESIGN §9): joining a process through a pidfd and
    /// joining it one namespace file at a time end alike: the same error
    /// code, or both succeed with the caller in the same namespaces (and
    /// the same for its children). When the pidfd join fails and falls
    /// back, the rest of that run is exactly the per-namespace run.
    #[test]
    fn exec_pidfd_and_per_namespace_joins_agree(sc in exec_scenario()) {
        let with_pidfd = ExecScenario { pidfd: true, ..sc.clone() }.plan();
        let per_namespace = ExecScenario { pidfd: false, ..sc.clone() }.plan();
        let (a, ma) = run(&with_pidfd, &sc.world, &FaultScript::new());
        let (b, mb) = run(&per_namespace, &sc.world, &FaultScript::new());
        let why = || format!(
            "pidfd run:\n{}per-namespace run:\n{}world: {}",
            a.trace(), b.trace(), sc.world.to_json()
        );
        prop_assert_eq!(a.error().map(|e| e.code), b.error().map(|e| e.code), "{}", why());
        if a.error().is_none() {
            prop_assert_eq!(namespaces_of(&ma), namespaces_of(&mb), "{}", why());
        }
        if let Some(TraceStep::PidfdJoin { fallback: true, .. }) = a.steps.first() {
            prop_assert_eq!(&a.steps[1..], &b.steps[..], "{}", why());
            prop_assert_eq!(a.error(), b.error(), "{}", why());
        }
        prop_assert_eq!(ma.open_fd_count() + mb.open_fd_count(), 0, "{}", why());
    }

    /// Property 11 (exec atomicity): setns through a pidfd joins all the
    /// kinds asked for or none: when it fails, the caller's namespaces (and
    /// its children's) are what they were; when it succeeds, the caller is
    /// in the target's namespace of each kind asked for and in its own of
    /// every other kind.
    #[test]
    fn a_pidfd_join_is_all_or_nothing(sc in exec_scenario(), kinds in kind_set()) {
        use nsapply::Syscall;
        let mut m = Model::new(&sc.world).unwrap();
        let before = namespaces_of(&m);
        let r = m.pidfd_open(EXEC_TARGET).and_then(|fd| {
            let r = m.setns_pidfd(&fd, kinds);
            m.close(fd);
            r
        });
        let after = namespaces_of(&m);
        let target = sc.world.processes.iter().find(|p| p.pid == EXEC_TARGET).unwrap();
        let theirs = |k: Kind| {
            target.namespaces.get(&k).cloned().unwrap_or_else(|| format!("host:{}", k.spec_name()))
        };
        match r {
            Err(e) => prop_assert_eq!(&before, &after, "{:?} changed the caller; world {}", e, sc.world.to_json()),
            Ok(()) => {
                for k in Kind::ALL {
                    // pid applies to children only; time to both (setns).
                    let (now, children) = &after[k.index()];
                    let want = if kinds.contains(k) { theirs(k) } else { before[k.index()].1.clone() };
                    prop_assert_eq!(children, &want, "{} for children; world {}", k, sc.world.to_json());
                    if k != Kind::Pid {
                        let want_now = if kinds.contains(k) { theirs(k) } else { before[k.index()].0.clone() };
                        prop_assert_eq!(now, &want_now, "{}; world {}", k, sc.world.to_json());
                    }
                }
            }
        }
        prop_assert_eq!(m.open_fd_count(), 0);
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
        assert!(applied.error().is_none(), "{}", applied.trace());
        let deferred = applied
            .steps
            .iter()
            .filter(|s| matches!(s, TraceStep::Setns { deferred: true, .. }))
            .count();
        let joins = p
            .steps()
            .iter()
            .filter(|s| matches!(s, Step::Setns { kind, .. } if *kind != Kind::User))
            .count();
        assert_eq!(deferred, joins, "{}", applied.trace());
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
    /// owned by the host (the joined user namespace maps root), whose clocks
    /// read what every time offset fits (the kernel wants each clock plus
    /// its offset within [0, KTIME_SEC_MAX / 2]), with no fault, succeeds,
    /// hands the config's id mappings to the id-mapping sync point, and its
    /// trace is exactly the plan's expected trace.
    #[test]
    fn benign_runs_succeed_with_the_expected_trace(
        (cfg, full) in benign_plan(),
        split in kind_set(),
        phase in any::<bool>(),
    ) {
        let p = if phase { full.only(split) } else { full.clone() };
        let mut world = build_world(&cfg, 0, 1, &[PathTarget::HostOwned; 8]);
        // A clock that reads what its offset needs: minus the offset when it
        // is negative (so the sum is 0), else 0 (the offset alone is within
        // KTIME_SEC_MAX / 2, which validation holds).
        for o in cfg.time_offsets() {
            let clock = match o.clock {
                nsapply::Clock::Monotonic => &mut world.clocks.monotonic,
                nsapply::Clock::Boottime => &mut world.clocks.boottime,
            };
            *clock = nsapply::model::ClockValue { secs: o.secs.saturating_neg().max(0), nanosecs: 0 };
        }
        let (applied, model) = run(&p, &world, &FaultScript::new());
        prop_assert!(applied.result.is_ok(), "{}", applied.trace());
        prop_assert_eq!(&applied.trace(), &p.expected_trace());
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
