//! The fuzz oracles of `nsapply_harness::fuzzing` as ordinary tests, so `cargo test`
//! exercises them without libFuzzer:
//!
//! * each oracle over a fixed number of seeded random inputs (wasmtime's
//!   `test_n_times`): random bytes → `arbitrary::Unstructured` → oracle,
//!   and for the two byte-level targets, the committed seeds mutated the
//!   way libFuzzer would (bit flips, cuts, dictionary tokens, splices);
//! * every committed seed of `fuzz/corpus/<target>/`;
//! * every crash the fuzzer found, minimized and committed under
//!   `tests/fuzz-regressions/<target>/`, each also replayed by a named test
//!   below with its root cause.
//!
//! `FUZZ_ORACLE_CASES=N` multiplies the random cases by N (default 1).

use std::path::{Path, PathBuf};

use nsapply_harness::fuzzing::arbitrary::Unstructured;
use nsapply_harness::fuzzing::{self, FuzzTarget};

/// xorshift64*: a fixed seed, so every run tests the same inputs.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn cases(n: usize) -> usize {
    let scale = std::env::var("FUZZ_ORACLE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize);
    n * scale.max(1)
}

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The files of a directory, sorted (none when it does not exist).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"));
    v.sort();
    v
}

fn seeds(target: FuzzTarget) -> Vec<Vec<u8>> {
    files(&root().join("fuzz/corpus").join(target.name()))
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// The tokens of a libFuzzer dictionary (`name="value"` lines).
fn dictionary(name: &str) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(root().join("fuzz/dict").join(name)).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(_, v)| v))
        .filter_map(|v| v.strip_prefix('"')?.strip_suffix('"'))
        .map(|v| v.replace("\\\"", "\"").replace("\\\\", "\\").into_bytes())
        .collect()
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `target`'s oracle on `n` inputs made by `input`.
fn test_n_times(target: FuzzTarget, n: usize, mut input: impl FnMut(&mut Rng) -> Vec<u8>) {
    let mut rng = Rng::new(0x6e73_6170_706c_7900 ^ target.name().len() as u64);
    for i in 0..cases(n) {
        let data = input(&mut rng);
        if let Err(v) = target.check(&data) {
            panic!(
                "case {i}: {v}\ninput ({} bytes, hex): {}",
                data.len(),
                hex(&data)
            );
        }
    }
}

/// One libFuzzer-like mutation of `seed`.
fn mutate(rng: &mut Rng, seed: &[u8], tokens: &[Vec<u8>], others: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len());
        match rng.below(6) {
            0 if !v.is_empty() => v[at] ^= 1 << rng.below(8),
            1 if !v.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(v.len());
                v.drain(at..end);
            }
            2 | 3 => {
                let t = &tokens[rng.below(tokens.len())];
                v.splice(at..at, t.iter().copied());
            }
            4 if !v.is_empty() => {
                let t = &tokens[rng.below(tokens.len())];
                let end = (at + t.len()).min(v.len());
                v.splice(at..end, t.iter().copied());
            }
            _ => {
                let other = &others[rng.below(others.len())];
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(64)).min(other.len());
                v.splice(at..at, other[from..end].iter().copied());
            }
        }
    }
    v
}

#[test]
fn config_json_oracle_holds_on_structured_documents() {
    test_n_times(FuzzTarget::ConfigJson, 3000, |rng| {
        let bytes = rng.bytes(256);
        let mut u = Unstructured::new(&bytes);
        fuzzing::config_document(&mut u)
            .unwrap_or_default()
            .into_bytes()
    });
}

/// `n` inputs for `target`: its committed seeds, mutated with the tokens
/// of its dictionary `dict`.
fn test_mutated_seeds(target: FuzzTarget, dict: &str, n: usize) {
    let seeds = seeds(target);
    let tokens = dictionary(dict);
    assert!(!seeds.is_empty() && !tokens.is_empty());
    test_n_times(target, n, |rng| {
        let seed = &seeds[rng.below(seeds.len())];
        mutate(rng, seed, &tokens, &seeds)
    });
}

#[test]
fn config_json_oracle_holds_on_mutated_seeds() {
    test_mutated_seeds(FuzzTarget::ConfigJson, "config_json.dict", 2000);
}

#[test]
fn apply_model_oracle_holds_on_random_inputs() {
    test_n_times(FuzzTarget::ApplyModel, 10_000, |rng| rng.bytes(160));
}

/// The random inputs of `apply_model` reach exec plans (DESIGN §9): its
/// pidfd join succeeding, falling back, and the target gone.
#[test]
fn apply_model_random_inputs_reach_exec_plans() {
    use nsapply::model::Model;
    use nsapply::simulate::simulate;
    use nsapply::{Outcome, TraceStep};
    let mut rng = Rng::new(0x5eed_e8ec);
    let (mut exec, mut joined, mut fell_back, mut exited) = (0, 0, 0, 0);
    for _ in 0..4000 {
        let bytes = rng.bytes(160);
        let Some(input) = fuzzing::decode::<fuzzing::ApplyInput>(&bytes) else {
            continue;
        };
        let Some(shape) = input.exec else { continue };
        exec += 1;
        let sc = shape.scenario(&input.world);
        let mut model = Model::new(&sc.world).unwrap();
        let run = simulate(&sc.plan(), &mut model);
        match run.steps.first() {
            Some(TraceStep::PidfdJoin {
                result: Outcome::Ok,
                ..
            }) => joined += 1,
            Some(TraceStep::PidfdJoin { fallback: true, .. }) => fell_back += 1,
            _ => {}
        }
        if run
            .error()
            .is_some_and(|e| e.code == nsapply::ErrorCode::TargetExited)
        {
            exited += 1;
        }
        assert!(
            FuzzTarget::ApplyModel.check(&bytes).is_ok(),
            "{}",
            hex(&bytes)
        );
    }
    assert!(
        exec > 400 && joined > 10 && fell_back > 20 && exited > 5,
        "exec inputs {exec}: pidfd joined {joined}, fell back {fell_back}, target exited {exited}"
    );
}

#[test]
fn differential_plan_oracle_holds_on_random_inputs() {
    test_n_times(FuzzTarget::DifferentialPlan, 10_000, |rng| rng.bytes(200));
}

#[test]
fn trace_roundtrip_oracle_holds_on_mutated_seeds() {
    test_mutated_seeds(FuzzTarget::TraceRoundtrip, "trace_roundtrip.dict", 6000);
}

#[test]
fn trace_roundtrip_oracle_holds_on_random_bytes() {
    test_n_times(FuzzTarget::TraceRoundtrip, 4000, |rng| rng.bytes(64));
}

#[test]
fn every_committed_seed_passes_its_oracle() {
    for target in FuzzTarget::ALL {
        let seeds = seeds(target);
        assert!(!seeds.is_empty(), "fuzz/corpus/{target} has no seeds");
        for data in seeds {
            if let Err(v) = target.check(&data) {
                panic!("seed {}: {v}", hex(&data));
            }
        }
    }
}

/// The committed crash of `target` named `name`, run through its oracle.
fn replay(target: FuzzTarget, name: &str) {
    let path = root()
        .join("tests/fuzz-regressions")
        .join(target.name())
        .join(name);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if let Err(v) = target.check(&data) {
        panic!("{}: {v}", path.display());
    }
}

/// Every file under `tests/fuzz-regressions/<target>/`, named test or not
/// (so a crash file dropped in is replayed before its test is written).
#[test]
fn every_committed_crash_replays_clean() {
    for target in FuzzTarget::ALL {
        let dir = root().join("tests/fuzz-regressions").join(target.name());
        for path in files(&dir) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            replay(target, &name);
        }
    }
}

/// The checks can fail: plans broken by hand (as a planted engine bug would
/// break them) are caught by the order and error-path oracles.
#[test]
fn oracles_catch_hand_broken_plans() {
    use nsapply::model::{Model, World};
    use nsapply::simulate::simulate;
    use nsapply::{plan, NsConfig, Plan};

    let cfg = NsConfig::from_json(
        r#"{"linux":{"namespaces":[{"type":"network","path":"/run/nsapply/network"},{"type":"uts"}]}}"#,
    )
    .unwrap();
    let good = plan(&cfg);
    assert_eq!(nsapply_harness::oracles::order_violation(&cfg, &good), None);
    let edit = |f: &dyn Fn(&mut Vec<serde_json::Value>)| -> Plan {
        let mut v = serde_json::to_value(&good).unwrap();
        f(v["steps"].as_array_mut().unwrap());
        serde_json::from_value(v).unwrap()
    };
    // unshare(uts) moved before the open: opens must come first.
    let reordered = edit(&|s| s.rotate_right(1));
    assert!(nsapply_harness::oracles::order_violation(&cfg, &reordered).is_some());
    // The close dropped: the fd stays open after the run.
    let leaky = edit(&|s| s.retain(|st| st["op"] != "close"));
    let world = nsapply_harness::testing::build_world(
        &cfg,
        0,
        1,
        &[nsapply_harness::testing::PathTarget::HostOwned; 8],
    );
    let mut model = Model::new(&world).unwrap();
    let applied = simulate(&leaky, &mut model);
    assert!(fuzzing::check_run(&leaky, &applied, &model, 0, 1)
        .unwrap_err()
        .contains("fds left open"));
    let mut model = Model::new(&World::default()).unwrap();
    let applied = simulate(&good, &mut model);
    assert!(
        applied.result.is_err(),
        "no namespace at the path by default"
    );
    assert_eq!(fuzzing::check_run(&good, &applied, &model, 0, 1), Ok(()));
}

/// The differential oracle can fail: bugs planted in the engine's plan (a
/// step out of order, a step dropped, a path changed, a mapping changed)
/// are each caught by the comparison the `differential_plan` target runs,
/// and the engine's own plan passes it.
#[test]
fn differential_oracle_catches_planted_plan_bugs() {
    use nsapply::{plan, NsConfig, Plan};
    use nsapply_harness::fuzzing::{ConfigShape, MappingShape, PathShape, PlanInput};
    use nsapply_harness::testing::Pick;

    let input = PlanInput {
        config: ConfigShape {
            // user, pid, uts, ipc, network, cgroup, mount, time
            picks: [
                Pick::Create,
                Pick::Create,
                Pick::Join,
                Pick::Absent,
                Pick::Join,
                Pick::Create,
                Pick::Create,
                Pick::Absent,
            ],
            order: 3,
            uid: vec![MappingShape {
                container: 0,
                host: 2,
                size: 65536,
            }],
            gid: Vec::new(),
            offsets: Vec::new(),
            propagation: 0,
        },
        split: 0b0101_0011,
        paths: std::array::from_fn(|i| {
            if i == 4 {
                PathShape::Any("//double//slash".to_owned())
            } else {
                PathShape::Standard
            }
        }),
    };
    assert_eq!(fuzzing::differential_plan(&input), Ok(()));
    assert_eq!(fuzzing::differential_plan_with(&input, plan), Ok(()));
    let planted = |edit: fn(&mut serde_json::Value)| {
        move |cfg: &NsConfig| -> Plan {
            let mut v = serde_json::to_value(plan(cfg)).unwrap();
            edit(&mut v);
            serde_json::from_value(v).unwrap()
        }
    };
    type Edit = fn(&mut serde_json::Value);
    let bugs: [(&str, Edit); 5] = [
        ("two steps swapped", |v| {
            v["steps"].as_array_mut().unwrap().swap(0, 1)
        }),
        ("the fork dropped", |v| {
            v["steps"].as_array_mut().unwrap().pop();
        }),
        ("a close dropped", |v| {
            v["steps"]
                .as_array_mut()
                .unwrap()
                .retain(|s| s["op"] != "close" || s["type"] != "uts")
        }),
        ("a joined path changed", |v| {
            for s in v["steps"].as_array_mut().unwrap() {
                if s["op"] == "setns" && s["type"] == "network" {
                    s["path"] = "/run/nsapply/network".into();
                }
            }
        }),
        ("a mapping changed", |v| {
            v["uidMappings"][0]["size"] = 1.into()
        }),
    ];
    for (bug, edit) in bugs {
        let caught = fuzzing::differential_plan_with(&input, planted(edit));
        assert!(caught.is_err(), "{bug}: not caught");
    }
}
