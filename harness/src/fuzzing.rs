//! Fuzz oracles and their structured inputs (feature `fuzzing`).
//!
//! The cargo-fuzz targets in `fuzz/fuzz_targets/` are one call each,
//! `FuzzTarget::ConfigJson.fuzz(data)`; the decoding of the fuzzer's bytes, the
//! generators and the invariant checks all live here, so the same oracles
//! also run as ordinary tests (`tests/fuzz_oracles.rs`: seeded random inputs
//! and the committed crash replays) without libFuzzer.
//!
//! | target | input | oracle |
//! |---|---|---|
//! | `config_json` | raw bytes as config.json | no panic; an invalid config gets one input-error code, the one an independent reading of DESIGN §3 predicts; a valid one plans by DESIGN §4 and simulates on the default world with every fd closed |
//! | `apply_model` | [`ApplyInput`]: config, world, fault script, phase split | the run stops at the first fatal call, makes no call after it but closes, names its kind, path and errno, defers only EPERM in pass 1 with a user namespace joined by path, retries each deferral once after the user step, and leaves the fd table empty |
//! | `differential_plan` | [`PlanInput`]: config, paths, phase split | the engine's plan and phases equal, step by step, those of [`naive`], a planner written from DESIGN §4 alone |
//! | `trace_roundtrip` | raw bytes as a trace document | malformed JSON is an error, not a panic; a parsed trace → JSON → trace → JSON is a fixed point |
//!
//! Structured inputs are decoded the way `libfuzzer-sys` decodes a typed
//! `fuzz_target!`: [`arbitrary::Arbitrary::arbitrary_take_rest`] over the
//! whole input, so a crash file replays here byte for byte.
//!
//! **Shared checks.** The invariants are [`crate::oracles`]
//! (`order_violation`, `error_path_violation`, `deferral_violation`,
//! `validation_rule`), the same functions the property suite uses, so a
//! change to an invariant is made once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// The `arbitrary` crate these inputs derive from, re-exported so tests
/// and fuzz targets decode with the same version.
pub use arbitrary;
use arbitrary::{Arbitrary, Unstructured};

use crate::oracles::{
    order_violation, run_deferral_violation, run_error_path_violation, validation_rule,
};
use crate::testing::{build_world, join_path, shuffle, PathTarget, Pick, ERRNOS, UNKNOWN_TYPES};
use nsapply::apply::ApplyError;
use nsapply::config::{validate, IdMapping, NsConfig, RawLinux, RawNamespace, RawTimeOffset};
use nsapply::error::ErrorCode;
use nsapply::kind::{Kind, KindSet};
use nsapply::model::{CallOp, Fault, FaultAt, FaultScript, Model, World};
use nsapply::plan::{plan, Plan};
use nsapply::simulate::simulate;
use nsapply::trace::Unjoined;
use nsapply::trace::{Trace, TraceError};
use nsapply::Applied;

// ---------------------------------------------------------------------------
// Targets and verdicts.
// ---------------------------------------------------------------------------

/// One fuzz target. Its [`FuzzTarget::name`] is the cargo-fuzz target name and
/// the directory of its corpus (`fuzz/corpus/<name>`) and of its committed
/// crashes (`tests/fuzz-regressions/<name>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FuzzTarget {
    /// Bytes → config.json → validate → plan → simulate on the default world.
    ConfigJson,
    /// [`ApplyInput`] → apply on the model, with faults and phases.
    ApplyModel,
    /// [`PlanInput`] → engine plan against the [`naive`] planner.
    DifferentialPlan,
    /// Bytes → trace JSON → serde → JSON.
    TraceRoundtrip,
}

impl FuzzTarget {
    /// Every target.
    pub const ALL: [FuzzTarget; 4] = [
        FuzzTarget::ConfigJson,
        FuzzTarget::ApplyModel,
        FuzzTarget::DifferentialPlan,
        FuzzTarget::TraceRoundtrip,
    ];

    /// The cargo-fuzz target name (`"config_json"`).
    pub const fn name(self) -> &'static str {
        match self {
            FuzzTarget::ConfigJson => "config_json",
            FuzzTarget::ApplyModel => "apply_model",
            FuzzTarget::DifferentialPlan => "differential_plan",
            FuzzTarget::TraceRoundtrip => "trace_roundtrip",
        }
    }

    /// The target named `name`.
    pub fn from_name(name: &str) -> Option<FuzzTarget> {
        FuzzTarget::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Runs the target's oracle on the fuzzer's bytes. Inputs that do not
    /// decode (too short for a structured input) pass.
    ///
    /// # Errors
    ///
    /// The [`Violation`] the oracle found.
    ///
    /// ```
    /// use nsapply_harness::fuzzing::FuzzTarget;
    /// assert!(FuzzTarget::ConfigJson.check(br#"{"linux":{"namespaces":[{"type":"pid"}]}}"#).is_ok());
    /// assert!(FuzzTarget::TraceRoundtrip.check(b"{not json").is_ok());
    /// ```
    // Inlined into each fuzz target, where `self` is a constant: the other
    // targets' oracles are then dead code, and neither linked nor given
    // coverage counters (libFuzzer scans every counter on every run, so
    // that is most of the speed of a small target).
    #[inline(always)]
    pub fn check(self, data: &[u8]) -> Result<(), Violation> {
        let r = match self {
            FuzzTarget::ConfigJson => config_json(data),
            FuzzTarget::TraceRoundtrip => trace_roundtrip(data),
            FuzzTarget::ApplyModel => {
                decode::<ApplyInput>(data).map_or(Ok(()), |i| apply_model(&i))
            }
            FuzzTarget::DifferentialPlan => {
                decode::<PlanInput>(data).map_or(Ok(()), |i| differential_plan(&i))
            }
        };
        r.map_err(|message| Violation {
            target: self,
            message,
        })
    }

    /// The body of the cargo-fuzz target: [`FuzzTarget::check`], panicking on a
    /// violation so libFuzzer records the input as a crash.
    ///
    /// # Panics
    ///
    /// When the oracle finds a violation (that is the point).
    #[inline(always)]
    pub fn fuzz(self, data: &[u8]) {
        if let Err(v) = self.check(data) {
            panic!("{v}");
        }
    }
}

impl fmt::Display for FuzzTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An oracle failure: which target, and what broke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The target whose oracle failed.
    pub target: FuzzTarget,
    /// The broken invariant, with the input and what the engine did.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} oracle failed: {}", self.target, self.message)
    }
}

impl std::error::Error for Violation {}

/// Decodes a structured input exactly as a typed `fuzz_target!` of
/// `libfuzzer-sys` 0.4 does: too short for the size hint is no input,
/// otherwise `arbitrary_take_rest` over all the bytes.
pub fn decode<'a, T: Arbitrary<'a>>(data: &'a [u8]) -> Option<T> {
    if data.len() < T::size_hint(0).0 {
        return None;
    }
    T::arbitrary_take_rest(Unstructured::new(data)).ok()
}

// ---------------------------------------------------------------------------
// Structured inputs.
// ---------------------------------------------------------------------------

/// One id-map line, from small tables so the model's map rules are hit.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct MappingShape {
    /// `containerID / 1000`, modulo 3.
    pub container: u8,
    /// Index into `[0, 1000, 100000, 65534]`.
    pub host: u8,
    /// The size (0 is replaced by 1).
    pub size: u32,
}

impl MappingShape {
    fn line(self) -> IdMapping {
        const HOSTS: [u32; 4] = [0, 1000, 100_000, 65534];
        IdMapping {
            container_id: u32::from(self.container % 3) * 1000,
            host_id: HOSTS[usize::from(self.host) % HOSTS.len()],
            size: self.size.max(1),
        }
    }
}

/// One time offset of a valid config.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct OffsetShape {
    /// `boottime` when true, else `monotonic`.
    pub boottime: bool,
    /// Seconds, taken modulo `MAX_OFFSET_SECS + 1` so validation accepts
    /// them (the model answers ERANGE where the clock makes them too much).
    pub secs: i64,
    /// Nanoseconds, taken modulo 10⁹ so validation accepts them.
    pub nanosecs: u32,
}

/// A config that passes validation by construction: each kind absent,
/// created or joined; the array in a shuffled order; mappings exactly when
/// a user namespace is created; offsets only with a new time namespace.
#[derive(Arbitrary, Clone, Debug)]
pub struct ConfigShape {
    /// Per kind, in canonical order.
    pub picks: [Pick; 8],
    /// Seed of the `linux.namespaces` array order (order must not matter).
    pub order: u64,
    /// `uidMappings` lines (one default line when empty).
    pub uid: Vec<MappingShape>,
    /// `gidMappings` lines (one default line when empty).
    pub gid: Vec<MappingShape>,
    /// `timeOffsets`, used only when time is created.
    pub offsets: Vec<OffsetShape>,
    /// `rootfsPropagation`, used only when mount is created: 0 (and 9 and
    /// up) absent, else the name of `Propagation::ALL[n - 1]`.
    pub propagation: u8,
}

/// At most this many map lines and offsets are used (more only slows runs).
const MAX_LINES: usize = 3;

impl ConfigShape {
    /// Whether the config creates `kind`.
    pub fn creates(&self, kind: Kind) -> bool {
        self.picks[kind.index()] == Pick::Create
    }

    /// Whether the config joins `kind`.
    pub fn joins(&self, kind: Kind) -> bool {
        self.picks[kind.index()] == Pick::Join
    }

    fn lines(shapes: &[MappingShape]) -> Vec<IdMapping> {
        let mut v: Vec<IdMapping> = shapes.iter().take(MAX_LINES).map(|s| s.line()).collect();
        if v.is_empty() {
            v.push(IdMapping {
                container_id: 0,
                host_id: 100_000,
                size: 65536,
            });
        }
        v
    }

    /// The uid map lines (empty unless user is created).
    pub fn uid_lines(&self) -> Vec<IdMapping> {
        if self.creates(Kind::User) {
            Self::lines(&self.uid)
        } else {
            Vec::new()
        }
    }

    /// The gid map lines (empty unless user is created).
    pub fn gid_lines(&self) -> Vec<IdMapping> {
        if self.creates(Kind::User) {
            Self::lines(&self.gid)
        } else {
            Vec::new()
        }
    }

    /// The time offsets by clock name (the last one given for a clock
    /// wins, as in a JSON object), empty unless time is created.
    pub fn offsets_by_clock(&self) -> BTreeMap<String, RawTimeOffset> {
        if !self.creates(Kind::Time) {
            return BTreeMap::new();
        }
        self.offsets
            .iter()
            .take(MAX_LINES)
            .map(|o| {
                let clock = if o.boottime { "boottime" } else { "monotonic" };
                let off = RawTimeOffset {
                    // Any value a clock could take with it (validation
                    // refuses the rest; the model answers ERANGE where the
                    // world's clock makes it out of range).
                    secs: o.secs % (nsapply::config::MAX_OFFSET_SECS + 1),
                    nanosecs: o.nanosecs % 1_000_000_000,
                };
                (clock.to_owned(), off)
            })
            .collect()
    }

    /// The `rootfsPropagation` name, when the config has one (only with a
    /// new mount namespace).
    pub fn propagation_name(&self) -> Option<&'static str> {
        let i = usize::from(self.propagation);
        (self.creates(Kind::Mount) && (1..=8).contains(&i))
            .then(|| nsapply::config::Propagation::ALL[i - 1].name())
    }

    /// The raw `linux` section, joined kinds at `path(kind)`.
    pub fn raw(&self, path: impl Fn(Kind) -> PathBuf) -> RawLinux {
        let mut namespaces: Vec<RawNamespace> = Kind::ALL
            .into_iter()
            .filter(|k| self.picks[k.index()] != Pick::Absent)
            .map(|k| RawNamespace {
                type_name: k.spec_name().to_owned(),
                path: self.joins(k).then(|| path(k)),
            })
            .collect();
        shuffle(&mut namespaces, self.order);
        let user = self.creates(Kind::User);
        let offsets = self.offsets_by_clock();
        RawLinux {
            namespaces,
            uid_mappings: user.then(|| self.uid_lines()),
            gid_mappings: user.then(|| self.gid_lines()),
            time_offsets: (!offsets.is_empty()).then_some(offsets),
            rootfs_propagation: self.propagation_name().map(str::to_owned),
        }
    }
}

/// The world a config runs in, as [`build_world`] makes it.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct WorldShape {
    /// Root caller (uid 0) when true, uid 1000 otherwise.
    pub root: bool,
    /// 0 means one thread; otherwise 1 + `threads % 4` (so mostly one).
    pub threads: u8,
    /// Per kind: what stands at its join path (index into the eight
    /// [`PathTarget`]s, weighted towards namespaces).
    pub targets: [u8; 8],
}

/// [`PathTarget`]s, namespaces weighted as in the property generators.
const TARGETS: [PathTarget; 16] = [
    PathTarget::HostOwned,
    PathTarget::HostOwned,
    PathTarget::HostOwned,
    PathTarget::ChildOwned,
    PathTarget::ChildOwned,
    PathTarget::JoinedUserOwned,
    PathTarget::JoinedUserOwned,
    PathTarget::JoinedUserOwned,
    PathTarget::JoinedUserOwned,
    PathTarget::CallersOwn,
    PathTarget::Regular,
    PathTarget::Directory,
    PathTarget::Missing,
    PathTarget::WrongKind,
    PathTarget::HostOwned,
    PathTarget::JoinedUserOwned,
];

impl WorldShape {
    /// The caller's uid and thread count.
    pub fn caller(&self) -> (u32, usize) {
        let uid = if self.root { 0 } else { 1000 };
        let threads = if self.threads % 4 == 0 {
            1
        } else {
            1 + usize::from(self.threads % 4)
        };
        (uid, threads)
    }

    /// The model world for `cfg`.
    pub fn build(&self, cfg: &NsConfig) -> World {
        let (uid, threads) = self.caller();
        let targets = self
            .targets
            .map(|t| TARGETS[usize::from(t) % TARGETS.len()]);
        build_world(cfg, uid, threads, &targets)
    }
}

/// One fault of a [`FaultScript`].
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum FaultShape {
    /// The n-th fallible call (1 + `n % 32`).
    Position(u8),
    /// Every call of an op (index into the ops that can fail), of a kind
    /// (index into [`Kind::ALL`]) or of any kind.
    Call {
        /// The op.
        op: u8,
        /// The kind.
        kind: Option<u8>,
    },
}

/// How the plan is split into phases.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum PhaseShape {
    /// The whole plan in one run.
    Full,
    /// Only the sub-plan of the kinds in the set (bits as [`KindSet`]).
    One(u8),
    /// The sub-plan of the set, then (if it succeeded) the sub-plan of its
    /// complement, in one process, as a two-process runtime does.
    Both(u8),
}

/// The input of `apply_model`.
#[derive(Arbitrary, Clone, Debug)]
pub struct ApplyInput {
    /// The config (valid by construction; joins at the generators' paths).
    pub config: ConfigShape,
    /// The world.
    pub world: WorldShape,
    /// How the plan is split.
    pub phase: PhaseShape,
    /// Faults, with their errno (index into [`ERRNOS`]); at most three used.
    pub faults: Vec<(FaultShape, u8)>,
    /// Instead of the config: an exec plan (DESIGN §9) into a process of
    /// a world of its own.
    pub exec: Option<ExecShape>,
}

/// An exec run for `apply_model`: the world of
/// [`crate::testing::exec_world`] and the plan of
/// [`crate::testing::ExecScenario::plan`].
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct ExecShape {
    /// Per kind: the caller's namespace, one owned by the host, or one
    /// owned by the caller's child user namespace (`% 3`).
    pub places: [u8; 8],
    /// Running, exited or reaped (`% 8`: mostly running).
    pub state: u8,
    /// The kinds asked for (bits as [`KindSet`]), or those that differ.
    pub kinds: Option<u8>,
    /// Try the pidfd join first.
    pub pidfd: bool,
    /// A kernel before 5.8, whose setns takes no pidfd.
    pub old_kernel: bool,
    /// The target is root's, whoever the caller is.
    pub root_target: bool,
}

impl ExecShape {
    /// The exec scenario, for the caller of `world`.
    pub fn scenario(&self, world: &WorldShape) -> crate::testing::ExecScenario {
        use crate::testing::{exec_world, ExecScenario, TargetNs};
        use nsapply::model::ProcessState;
        let places = self.places.map(|p| match p % 3 {
            0 => TargetNs::Host,
            1 => TargetNs::HostOwned,
            _ => TargetNs::ChildOwned,
        });
        let state = match self.state % 8 {
            6 => ProcessState::Exited,
            7 => ProcessState::Reaped,
            _ => ProcessState::Running,
        };
        // The caller `world.build` would make (without building its world).
        let (uid, threads) = world.caller();
        let w = exec_world(
            uid,
            threads,
            places,
            state,
            self.root_target.then_some(0),
            self.old_kernel.then_some(false),
        );
        ExecScenario {
            world: w,
            kinds: self.kinds.map(KindSet::from_bits),
            pidfd: self.pidfd,
        }
    }
}

impl ApplyInput {
    /// The fault script the run uses.
    pub fn fault_script(&self) -> FaultScript {
        if self.faults.is_empty() {
            return FaultScript::default();
        }
        let ops: Vec<CallOp> = CallOp::ALL
            .into_iter()
            .filter(|op| *op != CallOp::Close)
            .collect();
        let faults = self
            .faults
            .iter()
            .take(MAX_LINES)
            .map(|(shape, errno)| {
                let at = match *shape {
                    FaultShape::Position(n) => FaultAt::Position(1 + usize::from(n % 32)),
                    FaultShape::Call { op, kind } => FaultAt::Call {
                        op: ops[usize::from(op) % ops.len()],
                        kind: kind.map(|k| Kind::ALL[usize::from(k) % 8]),
                    },
                };
                Fault {
                    at,
                    errno: ERRNOS[usize::from(*errno) % ERRNOS.len()],
                }
            })
            .collect();
        FaultScript { faults }
    }
}

/// A join path for `differential_plan`: the generators' path, an odd but
/// absolute one, or any text made absolute.
#[derive(Arbitrary, Clone, Debug)]
pub enum PathShape {
    /// `/run/nsapply/<type>`.
    Standard,
    /// One of a few odd absolute paths (shared between kinds, dot-dot,
    /// trailing slash, non-ASCII).
    Odd(u8),
    /// Any text, with `/` put in front when it lacks one.
    Any(String),
}

impl PathShape {
    fn path(&self, kind: Kind) -> PathBuf {
        const ODD: [&str; 6] = [
            "/",
            "/run/netns/shared",
            "/a/../b",
            "/proc/4242/ns/net/",
            "//double//slash",
            "/nämespace with space",
        ];
        match self {
            PathShape::Standard => join_path(kind),
            PathShape::Odd(i) => PathBuf::from(ODD[usize::from(*i) % ODD.len()]),
            // A NUL would make the config invalid (`invalid-path`); these
            // configs are valid by construction.
            PathShape::Any(s) if s.starts_with('/') => PathBuf::from(s.replace('\0', "@")),
            PathShape::Any(s) => PathBuf::from(format!("/{}", s.replace('\0', "@"))),
        }
    }
}

/// The input of `differential_plan`.
#[derive(Arbitrary, Clone, Debug)]
pub struct PlanInput {
    /// The config.
    pub config: ConfigShape,
    /// The phase split compared as well (bits as [`KindSet`]).
    pub split: u8,
    /// Per kind, its join path.
    pub paths: [PathShape; 8],
}

/// A whole config.json document, valid or not: any type names (the eight,
/// aliases, junk), absolute, relative or no paths, duplicates, mappings
/// present or not, offsets with any clock and nanoseconds. For seeding
/// `config_json` from structure rather than bytes (the random-input tests).
///
/// # Errors
///
/// Only when `u` runs out in a way `arbitrary` reports (it normally fills
/// with defaults).
pub fn config_document(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    const CLOCKS: [&str; 4] = ["monotonic", "boottime", "realtime", "MONOTONIC"];
    let n = u.int_in_range(0..=9)?;
    let mut namespaces = Vec::with_capacity(n);
    for _ in 0..n {
        let t: u8 = u.arbitrary()?;
        let type_name = if t % 8 == 7 {
            UNKNOWN_TYPES[usize::from(t / 8) % UNKNOWN_TYPES.len()].to_owned()
        } else {
            Kind::ALL[usize::from(t / 8) % 8].spec_name().to_owned()
        };
        let path = match u.int_in_range(0..=5)? {
            0..=2 => None,
            3 | 4 => Some(PathBuf::from(format!("/run/nsapply/{type_name}"))),
            _ => Some(PathBuf::from(format!("run/{type_name}"))),
        };
        namespaces.push(RawNamespace { type_name, path });
    }
    let maps = |u: &mut Unstructured<'_>| -> arbitrary::Result<Option<Vec<IdMapping>>> {
        Ok(match u.int_in_range(0..=3)? {
            0 => None,
            1 => Some(Vec::new()),
            _ => Some(vec![MappingShape::arbitrary(u)?.line()]),
        })
    };
    let uid_mappings = maps(u)?;
    let gid_mappings = maps(u)?;
    let time_offsets = if u.arbitrary()? {
        let mut m = BTreeMap::new();
        for _ in 0..u.int_in_range(0..=2)? {
            let clock = CLOCKS[usize::from(u.arbitrary::<u8>()?) % CLOCKS.len()];
            let nanosecs = if u.arbitrary()? {
                u.arbitrary::<u32>()? % 1_000_000_000
            } else {
                u.arbitrary()?
            };
            let secs = u.arbitrary()?;
            m.insert(clock.to_owned(), RawTimeOffset { secs, nanosecs });
        }
        Some(m)
    } else {
        None
    };
    let rootfs_propagation = match u.int_in_range(0..=5)? {
        0 => Some(
            nsapply::config::Propagation::ALL[usize::from(u.arbitrary::<u8>()?) % 8]
                .name()
                .to_owned(),
        ),
        1 => Some(String::new()),
        2 => Some("rsideways".to_owned()),
        _ => None,
    };
    let raw = RawLinux {
        namespaces,
        uid_mappings,
        gid_mappings,
        time_offsets,
        rootfs_propagation,
    };
    Ok(serde_json::json!({"ociVersion": "1.2.0", "linux": raw}).to_string())
}

// ---------------------------------------------------------------------------
// The oracles.
// ---------------------------------------------------------------------------

/// `config_json`: bytes as config.json → validate → plan → simulate on the
/// default world.
///
/// # Errors
///
/// A message naming the broken invariant.
pub fn config_json(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    // What `NsConfig::from_json` does, in its two halves so the `linux`
    // section is parsed once: the engine's result, and the rule a correct
    // validator must report when that section can be read at all.
    let (got, want) = match RawLinux::from_json(text) {
        Ok(raw) => (
            NsConfig::from_parsed(&raw, text),
            Some(validation_rule(&raw)),
        ),
        Err(e) => (Err(e), None),
    };
    let cfg = match (got, want) {
        (Err(e), want) => {
            let code = e.code();
            if !code.is_input_error() || !ErrorCode::ALL.contains(&code) {
                return Err(format!("validation gave non-input code {code}: {e}"));
            }
            let expected = match want {
                None => "invalid-config",
                Some(Some((rule, _))) => rule,
                // The namespace rules hold; only the full OCI parse may fail.
                Some(None) => "invalid-config",
            };
            if code.as_str() != expected {
                return Err(format!(
                    "validation gave {code} ({e}), DESIGN §3 says {expected}\ninput: {text:?}"
                ));
            }
            if let Some(Some((_, Some(index)))) = want {
                if e.index() != Some(index) {
                    return Err(format!("{code} names index {:?}, not {index}", e.index()));
                }
            }
            if Trace::rejected(&e).error.map(|t| t.code) != Some(code) {
                return Err(format!("the rejected trace does not carry {code}"));
            }
            return Ok(());
        }
        (Ok(_), None) => {
            return Err(format!(
                "accepted a document whose linux section does not parse: {text:?}"
            ))
        }
        (Ok(_), Some(Some((rule, _)))) => {
            return Err(format!("accepted a config that breaks {rule}: {text:?}"))
        }
        (Ok(cfg), Some(None)) => cfg,
    };
    let p = plan(&cfg);
    if let Some(v) = order_violation(&cfg, &p) {
        return Err(format!("{v}\nplan:\n{p}input: {text:?}"));
    }
    let mut model = Model::new(&World::default()).map_err(|e| format!("default world: {e}"))?;
    let applied = simulate(&p, &mut model);
    check_run(&p, &applied, &model, 0, 1).map_err(|v| format!("{v}\ninput: {text:?}"))
}

/// `apply_model`: a valid config, a world, faults and a phase split, applied
/// on the model; every run checked by [`check_run`].
///
/// # Errors
///
/// A message naming the broken invariant, with the trace and the calls.
pub fn apply_model(input: &ApplyInput) -> Result<(), String> {
    let (full, world) = match &input.exec {
        None => {
            let raw = input.config.raw(join_path);
            let cfg =
                validate(&raw).map_err(|e| format!("generator made an invalid config: {e}"))?;
            (plan(&cfg), input.world.build(&cfg))
        }
        Some(exec) => {
            let sc = exec.scenario(&input.world);
            (sc.plan(), sc.world)
        }
    };
    let mut model =
        Model::new(&world).map_err(|e| format!("generator made an impossible world: {e}"))?;
    model.set_faults(input.fault_script());
    let plans = match input.phase {
        PhaseShape::Full => vec![full],
        PhaseShape::One(bits) => vec![full.only(KindSet::from_bits(bits))],
        PhaseShape::Both(bits) => {
            let set = KindSet::from_bits(bits);
            vec![full.only(set), full.only(set.complement())]
        }
    };
    for p in &plans {
        let (start, threads) = (model.calls().len(), model.threads());
        let applied = simulate(p, &mut model);
        check_run(p, &applied, &model, start, threads).map_err(|v| {
            format!(
                "{v}\ninput: {input:?}\nplan:\n{p}trace:\n{}calls: {:#?}",
                applied.trace(),
                &model.calls()[start..]
            )
        })?;
        if applied.result.is_err() {
            break;
        }
    }
    Ok(())
}

/// The invariants of one run of `p` on `model`, whose calls for this run
/// start at `start`: the trace mirrors the result, and
/// [`crate::oracles::error_path_violation`] and
/// [`crate::oracles::deferral_violation`] find nothing.
///
/// # Errors
///
/// The first broken invariant.
pub fn check_run(
    p: &Plan,
    applied: &Applied,
    model: &Model,
    start: usize,
    threads_at_start: usize,
) -> Result<(), String> {
    // The trace's error, made once for every check below.
    let error = applied.error();
    match (&applied.result, &error) {
        (Ok(_), None) => {}
        (Err(e), Some(t)) if mirrors(t, e) => {}
        (r, t) => return Err(format!("result {r:?} and trace error {t:?} disagree")),
    }
    let calls = &model.calls()[start..];
    let error = error.as_ref();
    if let Some(v) = run_error_path_violation(p, threads_at_start, applied, error, model, calls) {
        return Err(v);
    }
    if let Some(v) = run_deferral_violation(p, applied, error) {
        return Err(v);
    }
    Ok(())
}

/// Whether the trace's error says what `e` says: code, kind, path, errno
/// and the unjoined list, field by field. The message is not formatted
/// again here (an error's `Display` is most of a failed run's cost in the
/// fuzz loop); `TraceError::from` writes it from the same error, and
/// `trace_error_mirrors_the_apply_error` in this module checks that path.
fn mirrors(t: &TraceError, e: &ApplyError) -> bool {
    let unjoined: &[Unjoined] = match e {
        ApplyError::Join { unjoined, .. } => unjoined,
        _ => &[],
    };
    t.code == e.code()
        && t.kind == e.kind()
        && t.path.as_deref() == e.path()
        && t.errno == e.errno()
        && t.index.is_none()
        && t.unjoined == unjoined
        && !t.message.is_empty()
}

/// `differential_plan`: the engine's plan, and both phases of the input's
/// split, equal step by step the [`naive`] planner's.
///
/// # Errors
///
/// The first differing step, with both plans.
pub fn differential_plan(input: &PlanInput) -> Result<(), String> {
    differential_plan_with(input, plan)
}

/// [`differential_plan`] with `planner` in the engine's place, so a test
/// can plant a bug in the plan and see the oracle catch it.
///
/// # Errors
///
/// As [`differential_plan`].
#[inline(always)]
pub fn differential_plan_with(
    input: &PlanInput,
    planner: impl Fn(&NsConfig) -> Plan,
) -> Result<(), String> {
    // Only a joined kind has a path (the others' are never read).
    let paths: [PathBuf; 8] = std::array::from_fn(|i| {
        let kind = Kind::ALL[i];
        if input.config.joins(kind) {
            input.paths[i].path(kind)
        } else {
            PathBuf::new()
        }
    });
    let raw = input.config.raw(|k| paths[k.index()].clone());
    let cfg = validate(&raw).map_err(|e| format!("valid by construction, but {e}: {raw:?}"))?;
    let engine = planner(&cfg);
    let want = naive::plan(&input.config, &paths);
    let split = KindSet::from_bits(input.split);
    compare_plans("plan", &engine, &want, input)?;
    compare_plans("phase", &engine.only(split), &want.only(split), input)?;
    let rest = split.complement();
    compare_plans(
        "complement phase",
        &engine.only(rest),
        &want.only(rest),
        input,
    )
}

/// One comparison of [`differential_plan`]: step by step, then the
/// mappings. Formats only when they differ.
fn compare_plans(
    what: &str,
    got: &Plan,
    want: &naive::NaivePlan<'_>,
    input: &PlanInput,
) -> Result<(), String> {
    let (got_steps, want_steps) = (got.steps(), &want.steps);
    if let Some(at) = (0..got_steps.len().max(want_steps.len())).find(|&i| {
        match (got_steps.get(i), want_steps.get(i)) {
            (Some(g), Some(w)) => !naive::same(g, &w.op),
            _ => true,
        }
    }) {
        let got_lines: Vec<String> = got_steps.iter().map(naive::render).collect();
        let want_lines: Vec<String> = want_steps.iter().map(|s| s.op.to_string()).collect();
        return Err(format!(
            "{what} differs at step {at}\nengine: {got_lines:#?}\nnaive:  {want_lines:#?}\ninput: {input:?}"
        ));
    }
    if got.uid_mappings() != want.uid.as_slice() || got.gid_mappings() != want.gid.as_slice() {
        return Err(format!(
            "{what}: id mappings differ: engine {:?}/{:?}, naive {:?}/{:?}",
            got.uid_mappings(),
            got.gid_mappings(),
            want.uid,
            want.gid
        ));
    }
    Ok(())
}

/// `trace_roundtrip`: a parsed trace → JSON → trace → JSON is a fixed
/// point (compact and pretty), and printing it does not panic; bytes that
/// are not a trace give an error.
///
/// # Errors
///
/// What did not round-trip.
pub fn trace_roundtrip(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let Ok(trace) = Trace::from_json(text) else {
        return Ok(());
    };
    let json = serde_json::to_string(&trace).map_err(|e| format!("serializing: {e}"))?;
    let back = Trace::from_json(&json)
        .map_err(|e| format!("the serialized trace does not parse: {e}\n{json}"))?;
    if back != trace {
        return Err(format!(
            "trace changed in a round trip\nfirst:  {trace:?}\nsecond: {back:?}\ninput: {text:?}"
        ));
    }
    let again = serde_json::to_string(&back).map_err(|e| format!("serializing: {e}"))?;
    if again != json {
        return Err(format!(
            "JSON not stable\nfirst:  {json}\nsecond: {again}\ninput: {text:?}"
        ));
    }
    let pretty = trace.to_json_pretty();
    if Trace::from_json(&pretty).ok().as_ref() != Some(&trace) {
        return Err(format!("the pretty JSON does not round-trip: {pretty}"));
    }
    let _ = trace.to_string();
    Ok(())
}

// ---------------------------------------------------------------------------
// The naive planner.
// ---------------------------------------------------------------------------

pub mod naive {
    //! A second planner, written only for the differential oracle, straight
    //! from the numbered list of DESIGN §4, sharing no code with
    //! `src/plan.rs` (nor with validation: it reads the [`ConfigShape`]).
    //!
    //! Where the engine walks the kinds group by group, this one lists
    //! every step the config implies, in any order, tags it with a sort key
    //! `(stage, kind, sub-step)` read off §4, and sorts. Steps are compared
    //! field by field by [`same`], the only place that reads the engine's
    //! [`Step`] (with [`render`], which writes it for failure messages).

    use std::fmt;
    use std::path::{Path, PathBuf};

    use super::ConfigShape;
    use nsapply::config::IdMapping;
    use nsapply::kind::{Kind, KindSet};
    use nsapply::plan::Step;

    /// What a naive step does, in the naive planner's own terms: kinds,
    /// paths, sync point and clock names as DESIGN §4 writes them.
    /// Paths are borrowed from the caller's array of join paths.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum NaiveOp<'a> {
        /// Open the path of a joined kind.
        Open(Kind, &'a Path),
        /// Join it.
        Setns(Kind, &'a Path),
        /// Create a kind.
        Unshare(Kind),
        /// Hand over at the sync point of this name.
        Sync(&'static str),
        /// Become 0 in the user namespace.
        Setid,
        /// Write offsets: (clock name, secs, nanosecs), sorted by clock.
        Offsets(Vec<(String, i64, u32)>),
        /// Give `/` this propagation (its runtime-spec name).
        Propagation(&'static str),
        /// Join pass 2: retry the joins pass 1 deferred.
        DeferredJoins,
        /// Close the path's fd.
        Close(Kind, &'a Path),
        /// Fork the child that enters pid and time.
        Fork,
    }

    impl fmt::Display for NaiveOp<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                NaiveOp::Open(kind, p) => write!(f, "open {kind} {p:?}"),
                NaiveOp::Setns(kind, p) => write!(f, "setns {kind} {p:?}"),
                NaiveOp::Unshare(kind) => write!(f, "unshare {kind}"),
                NaiveOp::Sync(point) => write!(f, "sync {point}"),
                NaiveOp::Setid => f.write_str("setid"),
                NaiveOp::Propagation(name) => write!(f, "propagation {name}"),
                NaiveOp::DeferredJoins => f.write_str("deferred-joins"),
                NaiveOp::Offsets(o) => {
                    f.write_str("offsets")?;
                    for (i, (clock, secs, nanos)) in o.iter().enumerate() {
                        let sep = if i == 0 { ' ' } else { ',' };
                        write!(f, "{sep}{clock}={secs}.{nanos}")?;
                    }
                    Ok(())
                }
                NaiveOp::Close(kind, p) => write!(f, "close {kind} {p:?}"),
                NaiveOp::Fork => f.write_str("fork"),
            }
        }
    }

    /// One planned step: its sort key, the kind it goes with for phases
    /// (none for fork) and what it does.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct NaiveStep<'a> {
        /// `(stage of §4, kind's canonical index, sub-step)`.
        pub key: (u8, usize, u8),
        /// The kind it goes with (§4 "Phases").
        pub kind: Option<Kind>,
        /// What it does.
        pub op: NaiveOp<'a>,
    }

    /// A naive plan.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct NaivePlan<'a> {
        /// The steps in order.
        pub steps: Vec<NaiveStep<'a>>,
        /// Mappings handed over at `id-mapping` (empty without it).
        pub uid: Vec<IdMapping>,
        /// Same for gid.
        pub gid: Vec<IdMapping>,
    }

    // The stages of DESIGN §4, in order.
    const OPEN: u8 = 1;
    const JOIN_PASS_1: u8 = 2;
    const USER: u8 = 3;
    const CREATE: u8 = 5;
    const CLOSE: u8 = 6;
    const FORK: u8 = 7;

    /// Whether the engine's `step` does what `op` says. The one place
    /// that reads the engine's [`Step`]; it compares fields, so the fuzz
    /// loop formats nothing unless a step differs.
    pub fn same(step: &Step, op: &NaiveOp<'_>) -> bool {
        match (step, op) {
            (Step::Open { kind, path }, NaiveOp::Open(k, p))
            | (Step::Setns { kind, path }, NaiveOp::Setns(k, p))
            | (Step::Close { kind, path }, NaiveOp::Close(k, p)) => {
                // The same bytes are the same path; else compare them as
                // paths (component by component, as before).
                kind == k && (path.as_path().as_os_str() == p.as_os_str() || path.as_path() == *p)
            }
            (Step::Unshare { kind }, NaiveOp::Unshare(k)) => kind == k,
            (Step::Sync { point }, NaiveOp::Sync(name)) => point.as_str() == *name,
            (Step::Setid, NaiveOp::Setid)
            | (Step::Fork, NaiveOp::Fork)
            | (Step::DeferredJoins, NaiveOp::DeferredJoins) => true,
            (Step::Propagation { propagation }, NaiveOp::Propagation(name)) => {
                propagation.name() == *name
            }
            (Step::TimeOffsets { offsets }, NaiveOp::Offsets(want)) => {
                offsets.len() == want.len()
                    && offsets.iter().zip(want).all(|(o, (clock, secs, nanos))| {
                        o.clock.name() == clock && o.secs == *secs && o.nanosecs == *nanos
                    })
            }
            _ => false,
        }
    }

    /// The text of one engine step, as [`NaiveOp`]'s `Display` writes the
    /// naive one (for failure messages).
    pub fn render(step: &Step) -> String {
        match step {
            Step::Open { kind, path } => format!("open {kind} {:?}", path.as_path()),
            Step::Setns { kind, path } => format!("setns {kind} {:?}", path.as_path()),
            Step::Unshare { kind } => format!("unshare {kind}"),
            Step::Sync { point } => format!("sync {point}"),
            Step::Setid => "setid".to_owned(),
            Step::DeferredJoins => "deferred-joins".to_owned(),
            Step::Propagation { propagation } => format!("propagation {propagation}"),
            Step::TimeOffsets { offsets } => {
                let o: Vec<String> = offsets
                    .iter()
                    .map(|o| format!("{}={}.{}", o.clock.name(), o.secs, o.nanosecs))
                    .collect();
                format!("offsets {}", o.join(","))
            }
            Step::Close { kind, path } => format!("close {kind} {:?}", path.as_path()),
            Step::Fork => "fork".to_owned(),
            Step::PidfdJoin { pid, kinds } => format!("pidfd-join {pid} {kinds}"),
        }
    }

    /// The plan for `cfg`, joined kinds at `paths[kind]`.
    pub fn plan<'a>(cfg: &ConfigShape, paths: &'a [PathBuf; 8]) -> NaivePlan<'a> {
        // At most six steps per kind and the fork.
        let mut steps: Vec<NaiveStep<'a>> = Vec::with_capacity(16);
        let mut add = |stage: u8, kind: Kind, sub: u8, op: NaiveOp<'a>| {
            steps.push(NaiveStep {
                key: (stage, kind.index(), sub),
                kind: Some(kind),
                op,
            });
        };
        for kind in Kind::ALL {
            let i = kind.index();
            if cfg.joins(kind) {
                let p = paths[i].as_path();
                // 1: open every path first; closed exactly once, at the end.
                add(OPEN, kind, 0, NaiveOp::Open(kind, p));
                add(CLOSE, kind, 0, NaiveOp::Close(kind, p));
                if kind == Kind::User {
                    // 3: join the user namespace, then become 0 in it;
                    // 4: then join pass 2.
                    add(USER, kind, 0, NaiveOp::Setns(kind, p));
                    add(USER, kind, 2, NaiveOp::Setid);
                    add(USER, kind, 3, NaiveOp::DeferredJoins);
                } else {
                    // 2: join pass 1, every non-user join.
                    add(JOIN_PASS_1, kind, 0, NaiveOp::Setns(kind, p));
                }
            }
            if cfg.creates(kind) {
                if kind == Kind::User {
                    // 3: create it alone, id-mapping sync, become 0.
                    add(USER, kind, 0, NaiveOp::Unshare(kind));
                    add(USER, kind, 1, NaiveOp::Sync("id-mapping"));
                    add(USER, kind, 2, NaiveOp::Setid);
                } else {
                    // 5: one unshare per kind; cgroup-placed right before
                    // cgroup, offsets right after time.
                    if kind == Kind::Cgroup {
                        add(CREATE, kind, 0, NaiveOp::Sync("cgroup-placed"));
                    }
                    add(CREATE, kind, 1, NaiveOp::Unshare(kind));
                    // Right after unshare(mount): `/` rslave, or what the
                    // config names.
                    if kind == Kind::Mount {
                        let name = cfg.propagation_name().unwrap_or("rslave");
                        add(CREATE, kind, 2, NaiveOp::Propagation(name));
                    }
                    let offsets = if kind == Kind::Time {
                        cfg.offsets_by_clock()
                    } else {
                        Default::default()
                    };
                    if !offsets.is_empty() {
                        let o = offsets
                            .into_iter()
                            .map(|(c, o)| (c, o.secs, o.nanosecs))
                            .collect();
                        add(CREATE, kind, 2, NaiveOp::Offsets(o));
                    }
                }
            }
        }
        steps.sort_by_key(|s| s.key);
        // 6: fork when pid or time was created or joined.
        if [Kind::Pid, Kind::Time]
            .iter()
            .any(|k| cfg.creates(*k) || cfg.joins(*k))
        {
            steps.push(fork());
        }
        NaivePlan {
            steps,
            uid: cfg.uid_lines(),
            gid: cfg.gid_lines(),
        }
    }

    fn fork() -> NaiveStep<'static> {
        NaiveStep {
            key: (FORK, 0, 0),
            kind: None,
            op: NaiveOp::Fork,
        }
    }

    impl<'a> NaivePlan<'a> {
        /// The sub-plan of a phase (§4 "Phases"): the steps of the kinds in
        /// `kinds`, order kept, ending with fork exactly when it holds pid
        /// or time; the mappings go with user.
        pub fn only(&self, kinds: KindSet) -> NaivePlan<'a> {
            let mut steps: Vec<NaiveStep<'a>> = Vec::with_capacity(self.steps.len() + 1);
            steps.extend(
                self.steps
                    .iter()
                    .filter(|s| s.kind.is_some_and(|k| kinds.contains(k)))
                    .cloned(),
            );
            let holds = |k: Kind| steps.iter().any(|s| s.kind == Some(k));
            if holds(Kind::Pid) || holds(Kind::Time) {
                steps.push(fork());
            }
            let user = steps.iter().any(|s| s.kind == Some(Kind::User));
            NaivePlan {
                steps,
                uid: if user { self.uid.clone() } else { Vec::new() },
                gid: if user { self.gid.clone() } else { Vec::new() },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_round_trips_its_name() {
        for t in FuzzTarget::ALL {
            assert_eq!(FuzzTarget::from_name(t.name()), Some(t));
        }
    }

    #[test]
    fn naive_planner_matches_a_hand_written_plan() {
        let shape = ConfigShape {
            picks: [
                Pick::Create,
                Pick::Create,
                Pick::Absent,
                Pick::Absent,
                Pick::Join,
                Pick::Create,
                Pick::Create,
                Pick::Absent,
            ],
            order: 7,
            uid: Vec::new(),
            gid: Vec::new(),
            offsets: Vec::new(),
            // Propagation::ALL[2]
            propagation: 3,
        };
        let paths = std::array::from_fn(|i| join_path(Kind::ALL[i]));
        let p = naive::plan(&shape, &paths);
        let text: Vec<String> = p.steps.iter().map(|s| s.op.to_string()).collect();
        assert_eq!(
            text,
            [
                "open network \"/run/nsapply/network\"",
                "setns network \"/run/nsapply/network\"",
                "unshare user",
                "sync id-mapping",
                "setid",
                "unshare pid",
                "sync cgroup-placed",
                "unshare cgroup",
                "unshare mount",
                "propagation private",
                "close network \"/run/nsapply/network\"",
                "fork",
            ]
        );
        assert_eq!(p.uid.len(), 1);
        // The engine's plan for the same shape is the same, step by step,
        // and `same` tells a different step apart.
        let raw = shape.raw(|k| paths[k.index()].clone());
        let engine = plan(&validate(&raw).expect("valid"));
        assert_eq!(engine.steps().len(), p.steps.len());
        for (e, n) in engine.steps().iter().zip(&p.steps) {
            assert!(naive::same(e, &n.op), "{} vs {}", naive::render(e), n.op);
            assert_eq!(naive::render(e), n.op.to_string());
        }
        assert!(!naive::same(&engine.steps()[0], &p.steps[1].op));
        assert!(!naive::same(
            &engine.steps()[2],
            &naive::NaiveOp::Unshare(Kind::Pid)
        ));
    }

    #[test]
    fn trace_error_mirrors_the_apply_error() {
        let e = ApplyError::Join {
            kind: Kind::Network,
            path: join_path(Kind::Network),
            errno: nsapply::Errno(libc::EPERM),
            unjoined: vec![
                Unjoined {
                    kind: Kind::Network,
                    path: join_path(Kind::Network),
                },
                Unjoined {
                    kind: Kind::Ipc,
                    path: join_path(Kind::Ipc),
                },
            ],
        };
        let t = TraceError::from(&e);
        // What `mirrors` does not check: the message is the error's Display.
        assert_eq!(t.message, e.to_string());
        assert!(mirrors(&t, &e));
        let mut other = t.clone();
        other.unjoined.pop();
        assert!(!mirrors(&other, &e));
        let mut other = t.clone();
        other.errno = Some(nsapply::Errno(libc::EINVAL));
        assert!(!mirrors(&other, &e));
        let mut other = t;
        other.path = None;
        assert!(!mirrors(&other, &e));
    }

    #[test]
    fn the_caller_is_the_built_world_s() {
        for root in [false, true] {
            for threads in 0..=u8::MAX {
                let shape = WorldShape {
                    root,
                    threads,
                    targets: [0; 8],
                };
                let world = shape.build(&NsConfig::default());
                assert_eq!(shape.caller(), (world.caller.uid, world.caller.threads));
            }
        }
    }

    #[test]
    fn offsets_compare_field_by_field() {
        use nsapply::config::{Clock, TimeOffset};
        let step = nsapply::plan::Step::TimeOffsets {
            offsets: vec![TimeOffset {
                clock: Clock::Boottime,
                secs: -3,
                nanosecs: 7,
            }],
        };
        let op = |secs| naive::NaiveOp::Offsets(vec![("boottime".to_owned(), secs, 7)]);
        assert!(naive::same(&step, &op(-3)));
        assert!(!naive::same(&step, &op(3)));
        assert_eq!(naive::render(&step), op(-3).to_string());
    }
}
