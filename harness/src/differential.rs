//! The differential corpus (DESIGN §1): every scenario that runs on the
//! model and on the real kernel, with the checks each must pass.
//!
//! A case builds a [`World`] and a config, realizes the world on the kernel
//! ([`Realized`]), runs the plan on the model (with the realized world) and
//! on the [`Linux`](nsapply::linux::Linux) backend as the world's caller
//! ([`apply_as_caller`]), and requires equal traces, errno included, and no
//! fd left open by the engine. Then it runs the case's own checks (the
//! namespaces that changed, the joined inodes, the id maps, ...).
//!
//! The corpus is:
//!
//! * the real-kernel cases (`creates_<kind>`, `joins_<kind>_by_path`, and
//!   the named scenarios of [`case_names`]);
//! * `example_<name>`: each config of `examples/`, every namespace path
//!   realized as a bind mount of a fresh namespace of that kind;
//! * `bad_<code>`: each bad input of `tests/data/bad/`, which must give the
//!   error code it is named after (with its world from `tests/data/worlds/`
//!   when one is there).
//!
//! The files are embedded, so a guest in a VM needs none of them.
//!
//! Each case also has a [`Mode::Rootless`] variant where that makes sense:
//! the caller is uid 65534 (no capabilities) and the config creates a user
//! namespace first, mapping only 0 to 65534 (a join of a user namespace is
//! kept as it is). Only the checks every case must pass apply there, since
//! the case's own checks describe the root run.
//!
//! Users: `tests/kernel.rs` (the host kernel, as root) and the VM guest of
//! `vm-tests/guest` (pinned kernels under QEMU). [`run_case`] must run in a
//! single-threaded process, as root, and changes that process (a private
//! mount namespace for bind mounts): run each case in a fresh process.

use crate::host;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::realize::{apply_as_caller, KernelRun, Realized, ScratchDir, Side};
use nsapply::model::{CallerSpec, FileSpec, Model, NsSpec, ProcessSpec, ProcessState, World};
use nsapply::simulate::simulate;
use nsapply::{plan, ErrorCode, IdMapping, Kind, KindSet, NsConfig, Outcome, Trace, TraceStep};

/// The configs of `examples/`, by file stem.
const EXAMPLES: [(&str, &str); 5] = [
    ("all-kinds", include_str!("../../examples/all-kinds.json")),
    ("default", include_str!("../../examples/default.json")),
    ("join-netns", include_str!("../../examples/join-netns.json")),
    ("rootless", include_str!("../../examples/rootless.json")),
    ("user", include_str!("../../examples/user.json")),
];

/// The bad inputs of `tests/data/bad/`, by file stem (the code they give).
const BAD_INPUTS: [(&str, &str); 15] = [
    (
        "duplicate-namespace",
        include_str!("../../tests/data/bad/duplicate-namespace.json"),
    ),
    (
        "invalid-config",
        include_str!("../../tests/data/bad/invalid-config.json"),
    ),
    (
        "invalid-path",
        include_str!("../../tests/data/bad/invalid-path.json"),
    ),
    (
        "invalid-rootfs-propagation",
        include_str!("../../tests/data/bad/invalid-rootfs-propagation.json"),
    ),
    (
        "invalid-time-offset",
        include_str!("../../tests/data/bad/invalid-time-offset.json"),
    ),
    (
        "mappings-without-new-user-namespace",
        include_str!("../../tests/data/bad/mappings-without-new-user-namespace.json"),
    ),
    (
        "missing-mappings",
        include_str!("../../tests/data/bad/missing-mappings.json"),
    ),
    (
        "not-a-namespace",
        include_str!("../../tests/data/bad/not-a-namespace.json"),
    ),
    (
        "path-not-found",
        include_str!("../../tests/data/bad/path-not-found.json"),
    ),
    (
        "relative-path",
        include_str!("../../tests/data/bad/relative-path.json"),
    ),
    (
        "rootfs-propagation-without-new-mount-namespace",
        include_str!("../../tests/data/bad/rootfs-propagation-without-new-mount-namespace.json"),
    ),
    (
        "time-offsets-without-new-time-namespace",
        include_str!("../../tests/data/bad/time-offsets-without-new-time-namespace.json"),
    ),
    (
        "unknown-type",
        include_str!("../../tests/data/bad/unknown-type.json"),
    ),
    (
        "user-namespace-path-with-mappings",
        include_str!("../../tests/data/bad/user-namespace-path-with-mappings.json"),
    ),
    (
        "wrong-namespace-type",
        include_str!("../../tests/data/bad/wrong-namespace-type.json"),
    ),
];

/// The worlds of `tests/data/worlds/` that go with a bad input of that name.
const BAD_WORLDS: [(&str, &str); 1] = [(
    "not-a-namespace",
    include_str!("../../tests/data/worlds/not-a-namespace.json"),
)];

/// The uid (and gid) of the caller in [`Mode::Rootless`].
pub const ROOTLESS_UID: u32 = 65_534;

/// How a case is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// As the case describes it, with all its checks.
    Root,
    /// By uid [`ROOTLESS_UID`], creating a user namespace first (see the
    /// module docs); only the checks every case must pass.
    Rootless,
    /// A row of the external-expectations corpus
    /// ([`crate::external`]): its ops on the model and live on this
    /// kernel ([`crate::external_kernel`]), the answers equal. In
    /// `cargo test` its own target (`tests/external.rs`) runs these; the
    /// VM guest runs them with the corpus on every pinned kernel.
    External,
}

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 3] = [Mode::Root, Mode::Rootless, Mode::External];

    /// `"root"`, `"rootless"` or `"external"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Root => "root",
            Mode::Rootless => "rootless",
            Mode::External => "external",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown mode {s:?} (root, rootless or external)"))
    }
}

/// The verdict of one case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Equal traces and every check passed.
    Pass,
    /// The traces differ, a check failed, or the case could not run.
    Fail,
    /// The kernel lacks what the case needs (a time namespace before
    /// Linux 5.6); not a failure.
    Unsupported,
    /// The mode does not apply to the case (see [`case_names`]).
    NotApplicable,
}

/// What [`run_case`] reports: one line of the differential run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseReport {
    /// The case name.
    pub case: String,
    /// How it ran.
    pub mode: Mode,
    /// The verdict.
    pub status: Status,
    /// Whether the model's trace equals the kernel's; `None` when they were
    /// not compared (validation refused the config, so no syscall ran on
    /// either side, or the case stopped before).
    pub equal: Option<bool>,
    /// Whether the case's checks passed (false when they did not run).
    pub checks_passed: bool,
    /// The model's trace.
    pub model_trace: Option<Trace>,
    /// The kernel's trace.
    pub kernel_trace: Option<Trace>,
    /// A summary on success; what went wrong otherwise.
    pub detail: String,
}

impl CaseReport {
    fn new(case: &str, mode: Mode, status: Status, detail: impl Into<String>) -> CaseReport {
        CaseReport {
            case: case.to_owned(),
            mode,
            status,
            equal: None,
            checks_passed: false,
            model_trace: None,
            kernel_trace: None,
            detail: detail.into(),
        }
    }
}

// ---------------------------------------------------------------------------
// Cases and their setups.
// ---------------------------------------------------------------------------

type ConfigFn = Box<dyn FnOnce(&Realized) -> Value>;
type CheckFn = Box<dyn FnOnce(&Ran) -> Result<(), String>>;
type BuildFn = Box<dyn Fn() -> Result<Setup, String>>;
type PlainBuild = fn() -> Result<Setup, String>;

/// What a case runs: a world, a config made with the realized paths, and
/// the checks of the root run.
struct Setup {
    world: World,
    config: ConfigFn,
    check: CheckFn,
    /// Whether a [`Mode::Rootless`] variant makes sense (not for configs
    /// that validation refuses: no syscall is made).
    rootless: bool,
    /// Holds the scenario's paths; removed after the run.
    scratch: Option<ScratchDir>,
    /// An exec case: the plan joins a world process's namespaces
    /// (`config` is not used).
    exec: Option<ExecCase>,
}

/// What an exec case joins (DESIGN §9).
#[derive(Clone, Copy, Debug)]
struct ExecCase {
    /// The world's process (its pid in the world).
    pid: i32,
    /// The kinds, or `None` for those that differ from the caller's.
    kinds: Option<KindSet>,
    /// Try the pidfd join first.
    pidfd: bool,
    /// Find the target first (`exec::resolve` on the kernel,
    /// `Model::exec_target` on the model); `false` plans for `kinds` at
    /// once, so a target that is gone is met by the join itself.
    resolve: bool,
}

impl Setup {
    fn new(
        world: World,
        config: impl FnOnce(&Realized) -> Value + 'static,
        check: impl FnOnce(&Ran) -> Result<(), String> + 'static,
    ) -> Setup {
        Setup {
            world,
            config: Box::new(config),
            check: Box::new(check),
            rootless: true,
            scratch: None,
            exec: None,
        }
    }

    /// An exec case in `world` (its caller as the world says: exec cases
    /// have no rootless variant, their callers are chosen).
    fn exec(
        world: World,
        exec: ExecCase,
        check: impl FnOnce(&Ran) -> Result<(), String> + 'static,
    ) -> Setup {
        Setup {
            exec: Some(exec),
            ..Setup::new(world, |_| Value::Null, check).no_rootless()
        }
    }

    fn in_scratch(mut self, dir: ScratchDir) -> Setup {
        self.scratch = Some(dir);
        self
    }

    fn no_rootless(mut self) -> Setup {
        self.rootless = false;
        self
    }

    /// Whether the rootless variant applies: a root caller, and every
    /// namespace the world holds reachable through a bind mount. (Opening
    /// a root helper's `/proc/<pid>/ns/*` needs ptrace access, which the
    /// model leaves out.)
    fn rootless_applies(&self) -> bool {
        self.rootless
            && self.world.caller.uid == 0
            && self.world.namespaces.iter().all(|n| !n.paths.is_empty())
    }
}

fn cases() -> Vec<(String, BuildFn)> {
    let mut v: Vec<(String, BuildFn)> = Vec::new();
    for k in Kind::ALL {
        v.push((
            format!("creates_{}", k.spec_name()),
            Box::new(move || creates(k)),
        ));
    }
    for k in Kind::ALL {
        v.push((
            format!("joins_{}_by_path", k.spec_name()),
            Box::new(move || joins(k)),
        ));
    }
    let fixed: [(&str, PlainBuild); 46] = [
        (
            "unprivileged_joins_user_then_creates_network",
            unprivileged_join_user_create_network,
        ),
        (
            "root_joins_host_network_then_creates_user",
            root_join_network_create_user,
        ),
        (
            "joins_time_namespace_nobody_entered",
            joins_time_not_entered,
        ),
        ("joins_network_by_bind_mount", joins_network_by_bind_mount),
        ("wrong_type_path_fails_before_any_change", wrong_type_path),
        (
            "regular_file_path_fails_before_any_change",
            regular_file_path,
        ),
        ("directory_path_fails_before_any_change", directory_path),
        ("fifo_path_fails_at_once_without_blocking", fifo_path),
        ("socket_path_fails_before_any_change", socket_path),
        ("device_path_fails_without_opening_the_device", device_path),
        (
            "unreadable_file_path_is_not_a_namespace",
            unreadable_file_path,
        ),
        (
            "new_mount_namespace_root_is_not_shared_by_default",
            propagation_default,
        ),
        (
            "rootfs_propagation_shared_makes_root_shared",
            propagation_shared,
        ),
        (
            "rootfs_propagation_runbindable_makes_root_unbindable",
            propagation_unbindable,
        ),
        (
            "rootfs_propagation_rprivate_makes_root_private",
            propagation_private,
        ),
        ("missing_path_fails_before_any_change", missing_path),
        (
            "relative_path_is_rejected_before_any_syscall",
            relative_path,
        ),
        (
            "duplicate_type_is_rejected_before_any_syscall",
            duplicate_type,
        ),
        (
            "time_offsets_are_visible_in_the_child",
            time_offsets_visible,
        ),
        (
            "time_offset_below_the_clocks_start_is_erange",
            time_offset_below_zero,
        ),
        (
            "time_offset_past_half_of_ktime_sec_max_is_erange",
            time_offset_past_the_top,
        ),
        (
            "id_maps_are_visible_in_the_new_user_namespace",
            id_maps_visible,
        ),
        (
            "unprivileged_join_defers_eperm_until_user_joined",
            deferred_join_unprivileged,
        ),
        (
            "root_joins_user_owned_network_in_pass_one",
            root_join_no_deferral,
        ),
        (
            "a_deferred_join_that_fails_again_names_every_namespace_left_unjoined",
            deferred_join_fails_again,
        ),
        (
            "every_path_is_opened_before_the_mount_namespace_is_joined",
            paths_opened_before_joining_mount,
        ),
        (
            "a_multithreaded_caller_is_refused_before_joining_mount",
            multithreaded_join_mount,
        ),
        (
            "a_multithreaded_caller_is_refused_before_the_fork",
            multithreaded_fork,
        ),
        (
            "multithreaded_caller_is_refused_before_any_change",
            multithreaded,
        ),
        (
            "unprivileged_create_network_is_eperm",
            unprivileged_create_network,
        ),
        (
            "unprivileged_join_host_network_is_eperm",
            unprivileged_join_host_network,
        ),
        (
            "unprivileged_multi_line_uid_map_fails_at_sync",
            unprivileged_multi_line_map,
        ),
        (
            "joining_own_user_namespace_is_einval",
            joining_own_user_namespace,
        ),
        ("join_user_without_maps_fails_setid", join_user_without_maps),
        ("rootless_creates_user_network_pid", rootless_creates),
        (
            "exec_joins_all_eight_through_one_pidfd_setns",
            exec_all_eight_pidfd,
        ),
        (
            "exec_per_namespace_opens_all_eight_then_joins",
            exec_all_eight_per_namespace,
        ),
        ("exec_rootless_target_through_a_pidfd", exec_rootless_pidfd),
        (
            "exec_rootless_target_per_namespace_defers_until_user_joined",
            exec_rootless_per_namespace,
        ),
        ("exec_subset_of_kinds_joins_only_those", exec_subset),
        (
            "exec_target_in_the_callers_namespaces_is_an_empty_plan",
            exec_nothing_differs,
        ),
        (
            "exec_exited_target_is_refused_before_any_call",
            exec_exited_target,
        ),
        (
            "exec_zombie_target_fails_the_pidfd_join_with_esrch",
            exec_zombie_pidfd,
        ),
        (
            "exec_zombie_target_per_namespace_fails_its_first_open",
            exec_zombie_per_namespace,
        ),
        ("exec_reaped_target_fails_pidfd_open", exec_reaped_target),
        (
            "exec_zombie_of_another_user_is_eperm_then_eacces_not_esrch",
            exec_zombie_of_another_user,
        ),
    ];
    for (n, f) in fixed {
        v.push((n.to_owned(), Box::new(f)));
    }
    for (stem, text) in EXAMPLES {
        v.push((
            format!("example_{}", stem.replace('-', "_")),
            Box::new(move || example(text)),
        ));
    }
    for (stem, text) in BAD_INPUTS {
        v.push((
            format!("bad_{}", stem.replace('-', "_")),
            Box::new(move || bad_input(stem, text)),
        ));
    }
    v
}

/// The names of the cases that run in `mode`, in corpus order. Every case
/// runs in [`Mode::Root`]; [`Mode::Rootless`] lists those whose caller is
/// root, whose config passes validation, and whose namespaces are all
/// reachable through bind mounts.
pub fn case_names(mode: Mode) -> Vec<String> {
    if mode == Mode::External {
        return external_rows();
    }
    cases()
        .into_iter()
        .filter(|(_, build)| match mode {
            Mode::Root => true,
            Mode::Rootless => build().is_ok_and(|s| s.rootless_applies()),
            Mode::External => false,
        })
        .map(|(name, _)| name)
        .collect()
}

/// The names of `examples/*.json` and `tests/data/bad/*.json` embedded in
/// the corpus (file stems), for a test that they match the directories.
pub fn embedded_files() -> (Vec<&'static str>, Vec<&'static str>) {
    (
        EXAMPLES.iter().map(|(n, _)| *n).collect(),
        BAD_INPUTS.iter().map(|(n, _)| *n).collect(),
    )
}

/// Whether this kernel has time namespaces (Linux 5.6 and later).
pub fn time_namespaces_supported() -> bool {
    Path::new("/proc/self/ns/time").exists()
}

// ---------------------------------------------------------------------------
// Running one case.
// ---------------------------------------------------------------------------

/// A scenario run on the model and on the kernel.
struct Ran {
    model: Model,
    model_trace: Trace,
    /// `None` when validation refused the config (no syscall at all).
    kernel: Option<KernelRun>,
    /// The validation error, if any.
    rejected: Option<ErrorCode>,
    /// This process's namespaces before the world was built and after the run.
    own_before: Vec<u64>,
    own_after: Vec<u64>,
    /// Kept alive until the checks are done.
    real: Realized,
}

impl Ran {
    fn kernel(&self) -> Result<&KernelRun, String> {
        self.kernel
            .as_ref()
            .ok_or_else(|| "the kernel side did not run".to_owned())
    }

    fn error_code(&self) -> Option<ErrorCode> {
        self.rejected
            .or_else(|| self.model_trace.error.as_ref().map(|e| e.code))
    }

    fn summary(&self) -> String {
        let mut s = self.model_trace.to_string();
        match &self.kernel {
            Some(k) => s.push_str(&format!("(kernel side: {:?}, equal to the model)", k.side)),
            None => s.push_str("(refused by validation: no syscall on either side)"),
        }
        s
    }
}

fn kinds_of(doc: &Value) -> impl Iterator<Item = Kind> + '_ {
    doc["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["type"].as_str().and_then(|t| t.parse().ok()))
}

/// The body of a case process (a fresh process started with the case's name
/// in its environment): runs the case `name` in the mode named by the
/// environment variable `mode_var` (root when unset or unknown), prints its
/// report as one JSON line on stdout and returns it. Call it first thing in
/// `main`, before anything starts a thread.
pub fn case_process(name: &str, mode_var: &str) -> CaseReport {
    let mode = std::env::var(mode_var)
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(Mode::Root);
    let report = run_case(name, mode);
    println!(
        "{}",
        serde_json::to_string(&report).unwrap_or_else(|e| format!("unprintable report: {e}"))
    );
    report
}

/// Runs the case `name` in `mode` (see the module docs) and reports it.
/// Never panics on a failing case: everything that goes wrong is in the
/// report. Must run in a fresh single-threaded process, as root.
pub fn run_case(name: &str, mode: Mode) -> CaseReport {
    if mode == Mode::External {
        return external_row(name);
    }
    let Some((_, build)) = cases().into_iter().find(|(n, _)| n == name) else {
        return CaseReport::new(name, mode, Status::Fail, format!("no case named {name:?}"));
    };
    let setup = match build() {
        Ok(s) => s,
        Err(e) => return CaseReport::new(name, mode, Status::Fail, format!("setup: {e}")),
    };
    if mode == Mode::Rootless && !setup.rootless_applies() {
        return CaseReport::new(
            name,
            mode,
            Status::NotApplicable,
            "the rootless variant does not apply to this case",
        );
    }
    let time_ok = time_namespaces_supported();
    if !time_ok && setup.world.namespaces.iter().any(|n| n.kind == Kind::Time) {
        return CaseReport::new(
            name,
            mode,
            Status::Unsupported,
            "time namespace not supported",
        );
    }
    let Setup {
        mut world,
        config,
        check,
        scratch,
        exec,
        ..
    } = setup;
    if mode == Mode::Rootless {
        world.caller =
            CallerSpec::unprivileged(ROOTLESS_UID, ROOTLESS_UID).threads(world.caller.threads);
    }
    let mut report = CaseReport::new(name, mode, Status::Fail, String::new());
    let ran = match scenario(&world, config, exec, mode, time_ok, &mut report) {
        Ok(Some(ran)) => ran,
        Ok(None) => return report,
        Err(e) => {
            report.detail = e;
            return report;
        }
    };
    let checked = match mode {
        Mode::Root => check(&ran),
        Mode::Rootless | Mode::External => Ok(()),
    };
    report.checks_passed = checked.is_ok();
    match checked {
        Ok(()) => {
            report.status = Status::Pass;
            report.detail = ran.summary();
        }
        Err(e) => report.detail = e,
    }
    // The world (its bind mounts in the scratch directory) goes first.
    drop(ran);
    drop(scratch);
    report
}

/// Builds `world` on the kernel, makes the config with the realized paths,
/// runs it on the model (with the realized world) and on the kernel (as
/// the world's caller), and checks what every run must satisfy: equal
/// traces, and no fd left behind by the engine. Fills the traces and
/// `equal` of `report`; `Ok(None)` when the case is unsupported here.
fn scenario(
    world: &World,
    config: ConfigFn,
    exec: Option<ExecCase>,
    mode: Mode,
    time_ok: bool,
    report: &mut CaseReport,
) -> Result<Option<Ran>, String> {
    let own_before = own_namespaces();
    let real = Realized::new(world).map_err(|e| format!("realize: {e}"))?;
    if let Some(exec) = exec {
        return exec_scenario(world, &real, exec, report).map(
            |(model, model_trace, kernel, rejected)| {
                Some(Ran {
                    model,
                    model_trace,
                    kernel,
                    rejected,
                    own_before,
                    own_after: own_namespaces(),
                    real,
                })
            },
        );
    }
    let mut doc = config(&real);
    if mode == Mode::Rootless {
        doc = rootless_config(doc);
    }
    if !time_ok && kinds_of(&doc).any(|k| k == Kind::Time) {
        report.status = Status::Unsupported;
        report.detail = "time namespace not supported".to_owned();
        return Ok(None);
    }
    let cfg_json = doc.to_string();
    let full = real.world();
    let mut model =
        Model::new(&full).map_err(|e| format!("model world: {e}\n{}", full.to_json()))?;
    let cfg = match NsConfig::from_json(&cfg_json) {
        Ok(cfg) => cfg,
        Err(e) => {
            let model_trace = Trace::rejected(&e);
            report.model_trace = Some(model_trace.clone());
            return Ok(Some(Ran {
                model_trace,
                model,
                kernel: None,
                rejected: Some(e.code()),
                own_before,
                own_after: own_namespaces(),
                real,
            }));
        }
    };
    let p = plan(&cfg);
    let (model_trace, kernel) = run_both(&p, &mut model, world, &full, report, || {
        format!("config: {cfg_json}")
    })?;
    Ok(Some(Ran {
        model,
        model_trace,
        kernel: Some(kernel),
        rejected: None,
        own_before,
        own_after: own_namespaces(),
        real,
    }))
}

/// Runs the plan on the model and on this kernel (as the world's caller)
/// and records both traces in the report; an error when they differ (with
/// `what`, the config or exec that ran, and the world), or when the kernel
/// run or the model left an fd open.
fn run_both(
    p: &nsapply::Plan,
    model: &mut Model,
    world: &World,
    full: &World,
    report: &mut CaseReport,
    what: impl Fn() -> String,
) -> Result<(Trace, KernelRun), String> {
    let model_trace = simulate(p, model).into_trace();
    report.model_trace = Some(model_trace.clone());
    let kernel = apply_as_caller(p, &world.caller).map_err(|e| format!("kernel run: {e}"))?;
    report.kernel_trace = Some(kernel.trace.clone());
    report.equal = Some(kernel.trace == model_trace);
    if kernel.trace != model_trace {
        return Err(format!(
            "MODEL AND KERNEL DISAGREE\n{}\n{}\nworld: {}",
            trace_diff(&model_trace, &kernel.trace),
            what(),
            full.to_json()
        ));
    }
    if !kernel.after.ns_fds.is_empty() {
        return Err(format!(
            "namespace fds left open: {:?}",
            kernel.after.ns_fds
        ));
    }
    if kernel.after.fds != kernel.before.fds {
        return Err(format!(
            "open fds changed: before {:?}, after {:?}",
            kernel.before.fds, kernel.after.fds
        ));
    }
    if model.open_fd_count() != 0 {
        return Err(format!("model fds left open: {:?}", model.open_fds()));
    }
    owned_by_the_new_user_namespace(&kernel)?;
    Ok((model_trace, kernel))
}

/// DESIGN §2: a user namespace the plan creates owns every namespace the
/// plan creates (each after it), as `NS_GET_USERNS` in the reporting
/// process shows (pid and time: of the namespace for children, which is
/// the new one whether or not the plan forked; unseen when the new pid
/// namespace has no init yet: `pid_for_children` does not open then).
fn owned_by_the_new_user_namespace(k: &KernelRun) -> Result<(), String> {
    let created: Vec<Kind> = k
        .trace
        .steps
        .iter()
        .filter_map(|s| match s {
            TraceStep::Unshare {
                kind,
                result: Outcome::Ok,
            } => Some(*kind),
            _ => None,
        })
        .collect();
    if !created.contains(&Kind::User) {
        return Ok(());
    }
    let user = k.after.ns.get(&Kind::User);
    for kind in created.into_iter().filter(|k| *k != Kind::User) {
        if kind.applies_to_children() && !k.after.for_children.contains_key(&kind) {
            continue;
        }
        let owner = k.after.owners.get(&kind);
        ensure(owner.is_some() && owner == user, || {
            format!("the new {kind} namespace is owned by user namespace {owner:?}, not the new one ({user:?})")
        })?;
    }
    Ok(())
}

/// The ids of the external corpus's rows that run on the model (not left
/// out by the corpus, expressible by the engine's calls), in corpus order.
fn external_rows() -> Vec<String> {
    use crate::external::{run_on_model, Corpus};
    Corpus::load()
        .map(|c| {
            c.rows
                .into_iter()
                .filter(|r| r.left_out.is_none() && run_on_model(r).is_ok())
                .map(|r| r.id)
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the external row `id` on the model of this kernel (its version
/// from uname, [`crate::host::running_kernel`]) and live on it: pass when
/// the answers are equal, unsupported when this kernel cannot realize the
/// row.
fn external_row(id: &str) -> CaseReport {
    use crate::external::{run_on_model_on, Corpus};
    use crate::external_kernel::{run_on_kernel, KernelError};
    let mode = Mode::External;
    let corpus = match Corpus::load() {
        Ok(c) => c,
        Err(e) => return CaseReport::new(id, mode, Status::Fail, format!("the corpus: {e}")),
    };
    let Some(row) = corpus.rows.iter().find(|r| r.id == id) else {
        return CaseReport::new(id, mode, Status::Fail, format!("no row {id:?}"));
    };
    let version = match crate::host::running_kernel() {
        Ok(v) => v,
        Err(e) => {
            return CaseReport::new(
                id,
                mode,
                Status::Fail,
                format!("which kernel the model is: {e}"),
            )
        }
    };
    let model = match run_on_model_on(row, version) {
        Ok(a) => a,
        Err(u) => {
            return CaseReport::new(
                id,
                mode,
                Status::Fail,
                format!("the model cannot run it: {u}"),
            )
        }
    };
    let list = |a: &[crate::external::Answer]| {
        a.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match run_on_kernel(row) {
        Err(KernelError::Unsupported(u)) => CaseReport::new(
            id,
            mode,
            Status::Unsupported,
            format!("cannot realize: {}", u.0),
        ),
        Err(KernelError::Failed(m)) => {
            CaseReport::new(id, mode, Status::Fail, format!("the live run failed: {m}"))
        }
        Ok(live) => {
            let equal = live == model;
            let mut r = CaseReport::new(
                id,
                mode,
                if equal { Status::Pass } else { Status::Fail },
                format!(
                    "{} ({}): model (as {version}) {}; live {}",
                    row.id,
                    row.area,
                    list(&model),
                    list(&live)
                ),
            );
            r.equal = Some(equal);
            r.checks_passed = equal;
            r
        }
    }
}

/// An exec case's run: the target found on both sides (the same kinds, or
/// the same refusal), then its plan on the model and on the kernel, with
/// the checks of [`scenario`].
fn exec_scenario(
    world: &World,
    real: &Realized,
    exec: ExecCase,
    report: &mut CaseReport,
) -> Result<(Model, Trace, Option<KernelRun>, Option<ErrorCode>), String> {
    use nsapply::exec::{resolve, ExecError, ExecTarget};
    let full = real.world();
    let mut model =
        Model::new(&full).map_err(|e| format!("model world: {e}\n{}", full.to_json()))?;
    let pid = real.process_pid(exec.pid).unwrap_or(exec.pid);
    let found = |r: &Result<ExecTarget, ExecError>| match r {
        Ok(t) => format!("kinds {}", t.kinds),
        Err(e) => e.code().to_string(),
    };
    let targets = if exec.resolve {
        let on_model = model.exec_target(pid, exec.kinds);
        // The kernel side is found as the caller when that is this root
        // process; an unprivileged caller's is the model's (its own
        // ptrace access is what the join then meets).
        let on_kernel = if world.caller.uid == 0 {
            resolve(pid, exec.kinds)
        } else {
            on_model.clone()
        };
        if found(&on_model) != found(&on_kernel) {
            return Err(format!(
                "MODEL AND KERNEL DISAGREE on the target: model {}, kernel {}",
                found(&on_model),
                found(&on_kernel)
            ));
        }
        on_model
    } else {
        Ok(ExecTarget::new(pid, exec.kinds.unwrap_or(KindSet::EMPTY)))
    };
    let target = match targets.and_then(|t| {
        ExecTarget {
            pidfd: exec.pidfd,
            ..t
        }
        .plan()
        .map(|p| (t, p))
    }) {
        Ok(t) => t,
        Err(e) => {
            let model_trace = Trace {
                error: Some((&e).into()),
                ..Trace::default()
            };
            report.model_trace = Some(model_trace.clone());
            return Ok((model, model_trace, None, Some(e.code())));
        }
    };
    let (_, p) = target;
    let (model_trace, kernel) = run_both(&p, &mut model, world, &full, report, || {
        format!("exec: {exec:?} (pid {pid})")
    })?;
    Ok((model, model_trace, Some(kernel), None))
}

/// This process's namespace inodes, and those for its children, per kind;
/// 0 where the kernel has no such namespace (time before Linux 5.6).
fn own_namespaces() -> Vec<u64> {
    let me = host::ProcSelf::open();
    Kind::ALL
        .into_iter()
        .flat_map(|k| {
            let children = k.applies_to_children().then(|| k.proc_name_for_children());
            [Some(k.proc_name()), children]
        })
        .flatten()
        .map(|entry| me.as_ref().map_or(0, |me| me.ns_inode(entry).unwrap_or(0)))
        .collect()
}

/// The rootless form of a config: a user namespace created first, mapping
/// only 0 to [`ROOTLESS_UID`]; a config that joins a user namespace is kept.
fn rootless_config(mut doc: Value) -> Value {
    let one = json!([{"containerID": 0, "hostID": ROOTLESS_UID, "size": 1}]);
    let Some(linux) = doc.get_mut("linux").and_then(Value::as_object_mut) else {
        return doc;
    };
    let mut ns = linux
        .get("namespaces")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let user = ns.iter().find(|n| n["type"] == "user");
    if user.is_some_and(|u| u.get("path").is_some()) {
        return doc;
    }
    if user.is_none() {
        ns.insert(0, json!({"type": "user"}));
        linux.insert("namespaces".to_owned(), Value::Array(ns));
    }
    linux.insert("uidMappings".to_owned(), one.clone());
    linux.insert("gidMappings".to_owned(), one);
    doc
}

fn trace_diff(model: &Trace, kernel: &Trace) -> String {
    let n = model.steps.len().max(kernel.steps.len());
    let mut out = String::new();
    for i in 0..n {
        let (m, k) = (model.steps.get(i), kernel.steps.get(i));
        let mark = if m == k { "   " } else { ">>>" };
        let show = |s: Option<&TraceStep>| s.map_or_else(|| "-".to_owned(), ToString::to_string);
        out.push_str(&format!(
            "{mark} {:>2} model:  {}\n           kernel: {}\n",
            i + 1,
            show(m),
            show(k)
        ));
    }
    let err = |t: &Trace| {
        t.error.as_ref().map_or_else(
            || "none".to_owned(),
            |e| serde_json::to_string(e).unwrap_or_default(),
        )
    };
    out.push_str(&format!(
        "model error:  {}\nkernel error: {}\n",
        err(model),
        err(kernel)
    ));
    out
}

// ---------------------------------------------------------------------------
// Helpers for the cases.
// ---------------------------------------------------------------------------

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

fn map(container: u32, host: u32, size: u32) -> IdMapping {
    IdMapping {
        container_id: container,
        host_id: host,
        size,
    }
}

fn maps_json(m: &[IdMapping]) -> Value {
    serde_json::to_value(m).unwrap_or_default()
}

/// `{"linux": {"namespaces": [...], ...extra}}`.
fn config(namespaces: &[(Kind, Option<&Path>)], extra: Value) -> Value {
    let ns: Vec<Value> = namespaces
        .iter()
        .map(|(k, p)| match p {
            Some(p) => json!({"type": k.spec_name(), "path": p}),
            None => json!({"type": k.spec_name()}),
        })
        .collect();
    let mut linux = json!({ "namespaces": ns });
    if let (Some(l), Some(e)) = (linux.as_object_mut(), extra.as_object()) {
        for (key, val) in e {
            l.insert(key.clone(), val.clone());
        }
    }
    json!({ "ociVersion": "1.2.0", "linux": linux })
}

fn root_maps() -> Value {
    let m = [map(0, 100_000, 65_536)];
    json!({"uidMappings": maps_json(&m), "gidMappings": maps_json(&m)})
}

fn proc_path(real: &Realized, name: &str) -> PathBuf {
    real.proc_path(name).unwrap_or_default()
}

fn scratch() -> Result<ScratchDir, String> {
    ScratchDir::new().map_err(|e| format!("scratch directory: {e}"))
}

fn expect_ok(ran: &Ran) -> Result<&KernelRun, String> {
    let k = ran.kernel()?;
    ensure(k.trace.error.is_none(), || {
        format!("apply failed on both backends:\n{}", ran.summary())
    })?;
    Ok(k)
}

fn expect_code(ran: &Ran, code: ErrorCode) -> Result<(), String> {
    ensure(ran.error_code() == Some(code), || {
        format!(
            "expected {code:?}, got {:?}:\n{}",
            ran.error_code(),
            ran.summary()
        )
    })
}

/// Apply failed with `code` (on both backends: the checks run only once
/// the two traces are equal) and the applying process's namespaces did
/// not change.
fn expect_failed(ran: &Ran, code: ErrorCode) -> Result<(), String> {
    expect_code(ran, code)?;
    expect_unchanged(ran)
}

fn expect_unchanged(ran: &Ran) -> Result<(), String> {
    let k = ran.kernel()?;
    let changed = k.before.changed(&k.after);
    ensure(changed.is_empty(), || {
        format!("namespaces changed although apply failed: {changed:?}")
    })
}

fn expect_changed(k: &KernelRun, want: KindSet) -> Result<(), String> {
    let changed = k.before.changed(&k.after);
    ensure(changed == want, || {
        format!(
            "namespaces changed: {changed:?}, expected {want:?}\nbefore {:?}\nafter {:?}",
            k.before, k.after
        )
    })
}

fn expect_in(k: &KernelRun, kind: Kind, real: &Realized, name: &str) -> Result<(), String> {
    let want = real
        .inode(name)
        .map_err(|e| format!("inode of {name}: {e}"))?;
    let got = k.after.ns.get(&kind).copied();
    ensure(got == Some(want), || {
        format!("{kind} namespace is {got:?} after the join, target {name} is {want}")
    })
}

/// Validation refused the config with `code`: the model saw no call and
/// this process's namespaces did not change.
fn expect_rejected(ran: &Ran, code: ErrorCode) -> Result<(), String> {
    ensure(ran.rejected == Some(code), || {
        format!(
            "expected validation error {code:?}, got {:?}",
            ran.error_code()
        )
    })?;
    ensure(ran.model.calls().is_empty(), || {
        format!("the model saw calls: {:?}", ran.model.calls())
    })?;
    ensure(
        !ran.own_before.is_empty() && ran.own_before == ran.own_after,
        || {
            format!(
                "namespaces changed: {:?} -> {:?}",
                ran.own_before, ran.own_after
            )
        },
    )
}

// ---------------------------------------------------------------------------
// The cases.
// ---------------------------------------------------------------------------

fn creates(kind: Kind) -> Result<Setup, String> {
    let extra = if kind == Kind::User {
        root_maps()
    } else {
        json!({})
    };
    Ok(Setup::new(
        World::new(),
        move |_| config(&[(kind, None)], extra),
        move |ran| {
            let k = expect_ok(ran)?;
            expect_changed(k, KindSet::one(kind))?;
            let side = if kind.applies_to_children() {
                Side::Child
            } else {
                Side::Applier
            };
            ensure(k.side == side, || {
                format!("reported by {:?}, expected {side:?}", k.side)
            })?;
            let model_ns = ran.model.current(kind);
            ensure(model_ns.starts_with("new:"), || {
                format!("the model's caller is in {model_ns}, not a new {kind} namespace")
            })
        },
    ))
}

fn joins(kind: Kind) -> Result<Setup, String> {
    let mut target = NsSpec::new("target", kind);
    if kind == Kind::User {
        // Root must be mapped for setresuid(0) after the join.
        target = target.maps(vec![map(0, 100_000, 65_536)], vec![map(0, 100_000, 65_536)]);
    }
    Ok(Setup::new(
        World::new().namespace(target),
        move |r| config(&[(kind, Some(&proc_path(r, "target")))], json!({})),
        move |ran| {
            let k = expect_ok(ran)?;
            expect_in(k, kind, &ran.real, "target")?;
            expect_changed(k, KindSet::one(kind))
        },
    ))
}

fn joins_network_by_bind_mount() -> Result<Setup, String> {
    let dir = scratch()?;
    let at = dir.join("netns/n");
    let world = World::new().namespace(NsSpec::new("n", Kind::Network).at(&at));
    Ok(Setup::new(
        world,
        move |_| config(&[(Kind::Network, Some(&at)), (Kind::Uts, None)], json!({})),
        |ran| {
            let k = expect_ok(ran)?;
            expect_in(k, Kind::Network, &ran.real, "n")?;
            expect_changed(k, KindSet::one(Kind::Network).with(Kind::Uts))
        },
    )
    .in_scratch(dir))
}

/// DESIGN §4.1: every path is opened before the first join, because a
/// path may not resolve after joining a mount namespace. The network
/// namespace's path is a bind mount in the caller's mount namespace only
/// (made after the mount namespace `m`'s helper copied the host's; in `m`
/// the path is the empty file under it), so an open after setns(mount)
/// would fail on the kernel (not a namespace), while the model (one file
/// system) would still open the namespace: the traces would differ.
fn paths_opened_before_joining_mount() -> Result<Setup, String> {
    let dir = scratch()?;
    let at = dir.join("netns/n");
    let world = World::new()
        .namespace(NsSpec::new("m", Kind::Mount))
        .namespace(NsSpec::new("n", Kind::Network).at(&at));
    let seen = at.clone();
    Ok(Setup::new(
        world,
        move |real| {
            config(
                &[
                    (Kind::Mount, Some(&proc_path(real, "m"))),
                    (Kind::Network, Some(&at)),
                ],
                json!({}),
            )
        },
        move |ran| {
            // The case means something only if the path is not that
            // namespace in `m` (there it is the empty mount point file).
            let m = proc_path(&ran.real, "m");
            let root = m.parent().and_then(Path::parent).map(|p| p.join("root"));
            let inside = root.map(|r| r.join(seen.strip_prefix("/").unwrap_or(&seen)));
            let ino = |p: &Path| {
                std::fs::metadata(p)
                    .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                    .ok()
            };
            let net = ran.real.inode("n").ok();
            ensure(
                net.is_some() && inside.as_deref().and_then(ino) != net,
                || {
                    format!(
                        "{} is network namespace {net:?} in the joined mount namespace too",
                        seen.display()
                    )
                },
            )?;
            let k = expect_ok(ran)?;
            expect_in(k, Kind::Mount, &ran.real, "m")?;
            expect_in(k, Kind::Network, &ran.real, "n")
        },
    )
    .in_scratch(dir))
}

fn wrong_type_path() -> Result<Setup, String> {
    let world = World::new().namespace(NsSpec::new("n", Kind::Network));
    Ok(Setup::new(
        world,
        |r| {
            config(
                &[
                    (Kind::Uts, None),
                    (Kind::Ipc, Some(&proc_path(r, "n"))),
                    (Kind::Pid, None),
                ],
                json!({}),
            )
        },
        |ran| expect_failed(ran, ErrorCode::WrongNamespaceType),
    ))
}

fn bad_path_case(spec: Option<FileSpec>, code: ErrorCode) -> Result<Setup, String> {
    let dir = scratch()?;
    let path = dir.join("not-a-namespace");
    let mut world = World::new();
    if let Some(s) = spec {
        world = world.file(&path, s);
    }
    Ok(Setup::new(
        world,
        move |_| {
            config(
                &[
                    (Kind::User, None),
                    (Kind::Uts, None),
                    (Kind::Network, Some(&path)),
                ],
                root_maps(),
            )
        },
        move |ran| expect_failed(ran, code),
    )
    .in_scratch(dir))
}

fn regular_file_path() -> Result<Setup, String> {
    bad_path_case(Some(FileSpec::Regular), ErrorCode::NotANamespace)
}

fn directory_path() -> Result<Setup, String> {
    bad_path_case(Some(FileSpec::Directory), ErrorCode::NotANamespace)
}

/// A FIFO: a plain open would block until a writer came (and hang the
/// run forever); the O_PATH open does not, and the type check refuses it.
fn fifo_path() -> Result<Setup, String> {
    bad_path_case(Some(FileSpec::Fifo), ErrorCode::NotANamespace)
}

fn socket_path() -> Result<Setup, String> {
    bad_path_case(Some(FileSpec::Socket), ErrorCode::NotANamespace)
}

/// A character device (a node of /dev/null): never opened, so its driver
/// never runs; refused by the type check.
fn device_path() -> Result<Setup, String> {
    bad_path_case(Some(FileSpec::Device), ErrorCode::NotANamespace)
}

/// A file with no permission bits: the O_PATH open needs none, so even a
/// rootless caller gets `not-a-namespace`, not EACCES.
fn unreadable_file_path() -> Result<Setup, String> {
    bad_path_case(Some(FileSpec::Unreadable), ErrorCode::NotANamespace)
}

/// A new mount namespace with `rootfsPropagation` (none: the default,
/// rslave) whose `/`, seen from inside, has the optional fields `check`
/// accepts (`shared:N`, `master:N`, `unbindable`: proc(5), mountinfo).
fn propagation_case(
    value: Option<&'static str>,
    check: fn(&str) -> bool,
    want: &'static str,
) -> Result<Setup, String> {
    let extra = match value {
        Some(v) => json!({ "rootfsPropagation": v }),
        None => json!({}),
    };
    Ok(Setup::new(
        World::new(),
        move |_| config(&[(Kind::Mount, None), (Kind::Uts, None)], extra),
        move |ran| {
            let k = expect_ok(ran)?;
            ensure(check(&k.after.root_propagation), || {
                format!(
                    "/ in the new mount namespace has {:?}: {want}",
                    k.after.root_propagation
                )
            })
        },
    ))
}

/// rslave: whatever `/` was on the host, it no longer shares with it (a
/// slave of a shared mount shows `master:N`; of a private one, nothing).
fn propagation_default() -> Result<Setup, String> {
    propagation_case(None, |t| !t.contains("shared:"), "not shared")
}

fn propagation_shared() -> Result<Setup, String> {
    propagation_case(Some("shared"), |t| t.contains("shared:"), "shared")
}

fn propagation_unbindable() -> Result<Setup, String> {
    propagation_case(
        Some("runbindable"),
        |t| t.contains("unbindable"),
        "unbindable",
    )
}

fn propagation_private() -> Result<Setup, String> {
    propagation_case(
        Some("rprivate"),
        |t| !t.contains("shared:") && !t.contains("master:"),
        "private (no shared or master tag)",
    )
}

/// A boottime offset of minus the host's uptime and one day more: the
/// clock would read below 0, which the kernel refuses (ERANGE) and the
/// model, given the host's clocks, refuses too.
fn time_offset_below_zero() -> Result<Setup, String> {
    time_offset_case(|now| -(now + 86_400))
}

/// `KTIME_SEC_MAX / 2` seconds of monotonic offset: valid on its own, but
/// the clock already reads more than 0 (ERANGE).
fn time_offset_past_the_top() -> Result<Setup, String> {
    time_offset_case(|_| nsapply::config::MAX_OFFSET_SECS)
}

/// A new time namespace (and pid) whose boottime offset is
/// `offset(boottime now)`, refused with ERANGE on both backends.
fn time_offset_case(offset: fn(i64) -> i64) -> Result<Setup, String> {
    if !time_namespaces_supported() {
        return Err("no time namespaces on this kernel".to_owned());
    }
    let now = nsapply::simulate::host_clocks()
        .map_err(|e| format!("reading the clocks: {e}"))?
        .boottime
        .secs;
    let secs = offset(now);
    Ok(Setup::new(
        World::new(),
        move |_| {
            config(
                &[(Kind::Time, None), (Kind::Pid, None)],
                json!({"timeOffsets": {"boottime": {"secs": secs, "nanosecs": 0}}}),
            )
        },
        |ran| {
            // After unshare(pid) and unshare(time): those did change.
            expect_code(ran, ErrorCode::TimeOffsetsFailed)?;
            let k = ran.kernel()?;
            let errno = k.trace.error.as_ref().and_then(|e| e.errno);
            ensure(errno == Some(nsapply::Errno::ERANGE), || {
                format!("expected ERANGE, got {errno:?}")
            })
        },
    ))
}

fn missing_path() -> Result<Setup, String> {
    bad_path_case(None, ErrorCode::PathNotFound)
}

fn rejected_case(cfg: Value, code: ErrorCode) -> Result<Setup, String> {
    Ok(Setup::new(World::new(), |_| cfg, move |ran| expect_rejected(ran, code)).no_rootless())
}

fn relative_path() -> Result<Setup, String> {
    rejected_case(
        config(
            &[
                (Kind::Uts, None),
                (Kind::Network, Some(Path::new("run/netns/x"))),
            ],
            json!({}),
        ),
        ErrorCode::RelativePath,
    )
}

fn duplicate_type() -> Result<Setup, String> {
    rejected_case(
        config(
            &[(Kind::Uts, None), (Kind::Ipc, None), (Kind::Uts, None)],
            json!({}),
        ),
        ErrorCode::DuplicateNamespace,
    )
}

/// `/proc/self/timens_offsets` as `(clock, secs, nanosecs)` lines.
fn parse_offsets(text: &str) -> BTreeMap<String, (i64, u32)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let clock = it.next()?.to_owned();
            let secs = it.next()?.parse().ok()?;
            let nsecs = it.next()?.parse().ok()?;
            Some((clock, (secs, nsecs)))
        })
        .collect()
}

fn time_offsets_visible() -> Result<Setup, String> {
    let offsets = json!({"timeOffsets": {
        "monotonic": {"secs": 86400, "nanosecs": 0},
        "boottime": {"secs": 172800, "nanosecs": 500000000}
    }});
    Ok(Setup::new(
        World::new(),
        |_| config(&[(Kind::Time, None)], offsets),
        |ran| {
            let k = expect_ok(ran)?;
            ensure(k.side == Side::Child, || {
                "the time plan did not fork".to_owned()
            })?;
            expect_changed(k, KindSet::one(Kind::Time))?;
            let got = parse_offsets(&k.after.timens_offsets);
            let want: BTreeMap<String, (i64, u32)> = [
                ("monotonic".to_owned(), (86_400, 0)),
                ("boottime".to_owned(), (172_800, 500_000_000)),
            ]
            .into();
            ensure(got == want, || {
                format!(
                    "child's timens_offsets: {:?}, expected {want:?}",
                    k.after.timens_offsets
                )
            })
        },
    ))
}

fn parse_map(text: &str) -> Vec<IdMapping> {
    text.lines()
        .filter_map(|l| {
            let v: Vec<u32> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() == 3).then(|| map(v[0], v[1], v[2]))
        })
        .collect()
}

fn id_maps_visible() -> Result<Setup, String> {
    let uid = [map(0, 100_000, 1000), map(1000, 300_000, 1000)];
    let gid = [map(0, 200_000, 65_536)];
    let extra = json!({"uidMappings": maps_json(&uid), "gidMappings": maps_json(&gid)});
    Ok(Setup::new(
        World::new(),
        |_| config(&[(Kind::User, None)], extra),
        move |ran| {
            let k = expect_ok(ran)?;
            expect_changed(k, KindSet::one(Kind::User))?;
            ensure(parse_map(&k.after.uid_map) == uid, || {
                format!("uid_map: {:?}", k.after.uid_map)
            })?;
            ensure(parse_map(&k.after.gid_map) == gid, || {
                format!("gid_map: {:?}", k.after.gid_map)
            })?;
            ensure(k.after.euid == 0, || {
                format!("euid in the namespace: {}", k.after.euid)
            })?;
            // A root parent leaves setgroups allowed, like runc.
            ensure(k.after.setgroups.trim() == "allow", || {
                format!("setgroups: {:?}", k.after.setgroups)
            })
        },
    ))
}

/// A user namespace made by uid 65534 with `0 65534 1`, and a network
/// namespace it owns.
fn rootless_pair_world(caller: CallerSpec) -> World {
    let one = vec![map(0, 65_534, 1)];
    World::new()
        .caller(caller)
        .namespace(
            NsSpec::new("u", Kind::User)
                .created_by(65_534)
                .maps(one.clone(), one),
        )
        .namespace(NsSpec::new("n", Kind::Network).owned_by("u"))
}

fn join_pair(real: &Realized) -> Value {
    config(
        &[
            (Kind::User, Some(&proc_path(real, "u"))),
            (Kind::Network, Some(&proc_path(real, "n"))),
        ],
        json!({}),
    )
}

fn setns_results(t: &Trace, kind: Kind) -> Vec<(Outcome, bool)> {
    t.steps
        .iter()
        .filter_map(|s| match s {
            TraceStep::Setns {
                kind: k,
                result,
                deferred,
                ..
            } if *k == kind => Some((*result, *deferred)),
            _ => None,
        })
        .collect()
}

fn deferred_join_unprivileged() -> Result<Setup, String> {
    let world = rootless_pair_world(CallerSpec::unprivileged(65_534, 65_534));
    Ok(Setup::new(world, join_pair, |ran| {
        let k = expect_ok(ran)?;
        let net = setns_results(&k.trace, Kind::Network);
        let want = vec![
            (Outcome::Err(nsapply::Errno::EPERM), true),
            (Outcome::Ok, false),
        ];
        ensure(net == want, || {
            format!("network joins: {net:?}, expected {want:?}")
        })?;
        expect_in(k, Kind::User, &ran.real, "u")?;
        expect_in(k, Kind::Network, &ran.real, "n")
    }))
}

/// DESIGN §4.4: a rootless caller joins its own user namespace, and an
/// ipc and a uts namespace of the host's (bind mounts: their owner is the
/// initial user namespace). Both joins are EPERM in pass 1 and deferred;
/// after the user namespace, the first retry fails EPERM again, and the
/// error names every namespace still unjoined, on the kernel as on the
/// model (the traces, `unjoined` included, must be equal first).
fn deferred_join_fails_again() -> Result<Setup, String> {
    let dir = scratch()?;
    let (ipc, uts) = (dir.join("ipc"), dir.join("uts"));
    let world = rootless_pair_world(CallerSpec::unprivileged(65_534, 65_534))
        .namespace(NsSpec::new("i", Kind::Ipc).at(&ipc))
        .namespace(NsSpec::new("t", Kind::Uts).at(&uts));
    Ok(Setup::new(
        world,
        move |real| {
            config(
                &[
                    (Kind::User, Some(&proc_path(real, "u"))),
                    (Kind::Ipc, Some(&ipc)),
                    (Kind::Uts, Some(&uts)),
                ],
                json!({}),
            )
        },
        |ran| {
            expect_code(ran, ErrorCode::JoinFailed)?;
            let k = ran.kernel()?;
            for kind in [Kind::Ipc, Kind::Uts] {
                let first = setns_results(&k.trace, kind).first().copied();
                ensure(
                    first == Some((Outcome::Err(nsapply::Errno::EPERM), true)),
                    || format!("{kind}: pass 1 should defer EPERM: {first:?}"),
                )?;
            }
            let unjoined: Vec<Kind> = k
                .trace
                .error
                .as_ref()
                .map(|e| e.unjoined.iter().map(|u| u.kind).collect())
                .unwrap_or_default();
            ensure(
                // The failed retry (uts, first in the plan's order) and
                // the one not retried after it.
                unjoined == [Kind::Uts, Kind::Ipc],
                || format!("the error should name ipc and uts as unjoined: {unjoined:?}"),
            )?;
            expect_in(k, Kind::User, &ran.real, "u")
        },
    )
    .in_scratch(dir))
}

fn root_join_no_deferral() -> Result<Setup, String> {
    Ok(Setup::new(
        rootless_pair_world(CallerSpec::root()),
        join_pair,
        |ran| {
            let k = expect_ok(ran)?;
            let net = setns_results(&k.trace, Kind::Network);
            ensure(net == vec![(Outcome::Ok, false)], || {
                format!("network joins: {net:?}")
            })?;
            expect_in(k, Kind::User, &ran.real, "u")?;
            expect_in(k, Kind::Network, &ran.real, "n")
        },
    ))
}

fn multithreaded() -> Result<Setup, String> {
    let world = World::new().caller(CallerSpec::root().threads(2));
    Ok(Setup::new(
        world,
        |_| config(&[(Kind::Uts, None), (Kind::User, None)], root_maps()),
        |ran| {
            expect_failed(ran, ErrorCode::Multithreaded)?;
            let k = ran.kernel()?;
            ensure(k.before.threads == 2, || {
                format!("the applier had {} threads", k.before.threads)
            })
        },
    ))
}

/// DESIGN §4: one thread before setns(mount), checked by the engine
/// (`multithreaded`), not left to the kernel (which looks at the
/// fs_struct, and two threads share one).
fn multithreaded_join_mount() -> Result<Setup, String> {
    let world = World::new()
        .caller(CallerSpec::root().threads(2))
        .namespace(NsSpec::new("m", Kind::Mount));
    Ok(Setup::new(
        world,
        |real| config(&[(Kind::Mount, Some(&proc_path(real, "m")))], json!({})),
        |ran| expect_failed(ran, ErrorCode::Multithreaded),
    ))
}

/// DESIGN §4: one thread before the fork that puts the command in its new
/// pid namespace (a fork copies only the calling thread). The pid
/// namespace is made first: the refusal comes at the fork.
fn multithreaded_fork() -> Result<Setup, String> {
    let world = World::new().caller(CallerSpec::root().threads(2));
    Ok(Setup::new(
        world,
        |_| config(&[(Kind::Pid, None)], json!({})),
        |ran| {
            expect_code(ran, ErrorCode::Multithreaded)?;
            let k = ran.kernel()?;
            let forked = k
                .trace
                .steps
                .iter()
                .any(|s| matches!(s, TraceStep::Fork { .. }));
            ensure(!forked, || format!("the run forked: {:?}", k.trace.steps))
        },
    ))
}

fn unprivileged_create_network() -> Result<Setup, String> {
    let world = World::new().caller(CallerSpec::unprivileged(65_534, 65_534));
    Ok(Setup::new(
        world,
        |_| config(&[(Kind::Network, None)], json!({})),
        |ran| expect_failed(ran, ErrorCode::UnshareFailed),
    ))
}

fn unprivileged_join_host_network() -> Result<Setup, String> {
    // A bind mount, not /proc/<helper>/ns/net: opening a root process's
    // /proc/<pid>/ns/* needs ptrace access, which the model leaves out.
    let dir = scratch()?;
    let at = dir.join("n");
    let world = World::new()
        .caller(CallerSpec::unprivileged(65_534, 65_534))
        .namespace(NsSpec::new("n", Kind::Network).at(&at));
    Ok(Setup::new(
        world,
        move |_| config(&[(Kind::Network, Some(&at))], json!({})),
        |ran| expect_failed(ran, ErrorCode::JoinFailed),
    )
    .in_scratch(dir))
}

fn unprivileged_multi_line_map() -> Result<Setup, String> {
    let uid = [map(0, 65_534, 1), map(1, 100_000, 10)];
    let gid = [map(0, 65_534, 1)];
    let world = World::new().caller(CallerSpec::unprivileged(65_534, 65_534));
    let extra = json!({"uidMappings": maps_json(&uid), "gidMappings": maps_json(&gid)});
    Ok(Setup::new(
        world,
        |_| config(&[(Kind::User, None)], extra),
        |ran| expect_code(ran, ErrorCode::SyncFailed),
    ))
}

fn joining_own_user_namespace() -> Result<Setup, String> {
    let dir = scratch()?;
    let at = dir.join("host-user");
    let world = World::new().namespace(NsSpec::new("host:user", Kind::User).at(&at));
    Ok(Setup::new(
        world,
        move |_| config(&[(Kind::User, Some(&at))], json!({})),
        |ran| expect_failed(ran, ErrorCode::JoinFailed),
    )
    .in_scratch(dir))
}

fn join_user_without_maps() -> Result<Setup, String> {
    let world = World::new().namespace(NsSpec::new("u", Kind::User));
    Ok(Setup::new(
        world,
        |r| config(&[(Kind::User, Some(&proc_path(r, "u")))], json!({})),
        |ran| expect_code(ran, ErrorCode::SetidFailed),
    ))
}

fn rootless_creates() -> Result<Setup, String> {
    let one = [map(0, 65_534, 1)];
    let world = World::new().caller(CallerSpec::unprivileged(65_534, 65_534));
    let extra = json!({"uidMappings": maps_json(&one), "gidMappings": maps_json(&one)});
    Ok(Setup::new(
        world,
        |_| {
            config(
                &[(Kind::User, None), (Kind::Network, None), (Kind::Pid, None)],
                extra,
            )
        },
        |ran| {
            let k = expect_ok(ran)?;
            expect_changed(
                k,
                [Kind::User, Kind::Network, Kind::Pid].into_iter().collect(),
            )?;
            ensure(k.after.setgroups.trim() == "deny", || {
                format!(
                    "an unprivileged parent must deny setgroups: {:?}",
                    k.after.setgroups
                )
            })
        },
    ))
}

/// An example config: every namespace path is realized as a bind mount of
/// a fresh namespace of that kind; a config whose only uid mapping is one
/// id of a non-root host uid is run by that uid (rootless style).
fn example(text: &str) -> Result<Setup, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut world = World::new();
    let mut joined = Vec::new();
    let namespaces = doc["linux"]["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for ns in &namespaces {
        if let (Some(t), Some(p)) = (ns["type"].as_str(), ns["path"].as_str()) {
            let kind: Kind = t.parse().map_err(|e| format!("{e}"))?;
            let name = format!("example-{t}");
            world = world.namespace(NsSpec::new(&name, kind).at(p));
            joined.push((kind, name));
        }
    }
    let uid: Vec<IdMapping> =
        serde_json::from_value(doc["linux"]["uidMappings"].clone()).unwrap_or_default();
    let gid: Vec<IdMapping> =
        serde_json::from_value(doc["linux"]["gidMappings"].clone()).unwrap_or_default();
    if let ([u], [g]) = (uid.as_slice(), gid.as_slice()) {
        if u.size == 1 && u.host_id != 0 {
            world = world.caller(CallerSpec::unprivileged(u.host_id, g.host_id));
        }
    }
    let kinds: KindSet = kinds_of(&doc).collect();
    Ok(Setup::new(
        world,
        move |_| doc,
        move |ran| {
            let k = expect_ok(ran)?;
            expect_changed(k, kinds)?;
            for (kind, name) in &joined {
                expect_in(k, *kind, &ran.real, name)?;
            }
            Ok(())
        },
    ))
}

/// A bad input: it must give the code it is named after, before any
/// change; its world is `tests/data/worlds/<code>.json` when there is one.
fn bad_input(code_name: &str, text: &'static str) -> Result<Setup, String> {
    let code = ErrorCode::ALL
        .into_iter()
        .find(|c| c.as_str() == code_name)
        .ok_or_else(|| format!("bad input {code_name:?} is not named after an error code"))?;
    let world = match BAD_WORLDS.iter().find(|(n, _)| *n == code_name) {
        Some((_, w)) => World::from_json(w).map_err(|e| format!("world {code_name}: {e}"))?,
        None => World::new(),
    };
    // Not JSON (invalid-config): the text goes through as a JSON string,
    // which validation refuses with the same code.
    let doc = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()));
    let setup = Setup::new(
        world,
        move |_| doc,
        move |ran| {
            if code.is_input_error() {
                expect_rejected(ran, code)
            } else {
                expect_failed(ran, code)
            }
        },
    );
    Ok(if code.is_input_error() {
        setup.no_rootless()
    } else {
        setup
    })
}

fn unprivileged_join_user_create_network() -> Result<Setup, String> {
    let world = rootless_pair_world(CallerSpec::unprivileged(65_534, 65_534));
    Ok(Setup::new(
        world,
        |r| {
            config(
                &[
                    (Kind::User, Some(&proc_path(r, "u"))),
                    (Kind::Network, None),
                    (Kind::Uts, None),
                ],
                json!({}),
            )
        },
        |ran| {
            let k = expect_ok(ran)?;
            expect_in(k, Kind::User, &ran.real, "u")?;
            expect_changed(
                k,
                [Kind::User, Kind::Network, Kind::Uts].into_iter().collect(),
            )
        },
    ))
}

fn root_join_network_create_user() -> Result<Setup, String> {
    let world = World::new().namespace(NsSpec::new("n", Kind::Network));
    Ok(Setup::new(
        world,
        |r| {
            config(
                &[
                    (Kind::User, None),
                    (Kind::Network, Some(&proc_path(r, "n"))),
                    (Kind::Ipc, None),
                ],
                root_maps(),
            )
        },
        |ran| {
            let k = expect_ok(ran)?;
            expect_in(k, Kind::Network, &ran.real, "n")?;
            expect_changed(
                k,
                [Kind::User, Kind::Network, Kind::Ipc].into_iter().collect(),
            )
        },
    ))
}

fn joins_time_not_entered() -> Result<Setup, String> {
    let world = World::new().namespace(NsSpec::new("t", Kind::Time).entered(false));
    Ok(Setup::new(
        world,
        |r| config(&[(Kind::Time, Some(&proc_path(r, "t")))], json!({})),
        |ran| {
            let k = expect_ok(ran)?;
            expect_in(k, Kind::Time, &ran.real, "t")?;
            expect_changed(k, KindSet::one(Kind::Time))
        },
    ))
}

// ---------------------------------------------------------------------------
// Exec: joining the namespaces of a running process (DESIGN §9).
// ---------------------------------------------------------------------------

/// The world's pid of an exec case's target (the real one differs).
const TARGET: i32 = 4242;

/// A container as a runtime leaves it: a user namespace `u` made by
/// `creator`, mapping 0 to `host` (`size` ids), the other kinds of `kinds`
/// each a namespace owned by `u` (named by its spec name), and its init,
/// process [`TARGET`], in all of them as root of `u` (kuid `host`).
fn container(creator: u32, host: u32, size: u32, kinds: KindSet) -> World {
    let m = vec![map(0, host, size)];
    let mut world = World::new().namespace(
        NsSpec::new("u", Kind::User)
            .created_by(creator)
            .maps(m.clone(), m),
    );
    let mut process = ProcessSpec::new(TARGET).uid(host).in_ns(Kind::User, "u");
    for kind in kinds.iter().filter(|k| *k != Kind::User) {
        world = world.namespace(NsSpec::new(kind.spec_name(), kind).owned_by("u"));
        process = process.in_ns(kind, kind.spec_name());
    }
    world.process(process)
}

/// The name of the namespace of `kind` in a [`container`].
fn container_ns(kind: Kind) -> &'static str {
    if kind == Kind::User {
        "u"
    } else {
        kind.spec_name()
    }
}

fn joined(ran: &Ran, kinds: KindSet) -> Result<(), String> {
    let k = expect_ok(ran)?;
    for kind in kinds.iter() {
        expect_in(k, kind, &ran.real, container_ns(kind))?;
    }
    expect_changed(k, kinds)
}

fn pidfd_step_ok(ran: &Ran) -> Result<(), String> {
    let steps = &ran.model_trace.steps;
    ensure(
        matches!(
            steps.first(),
            Some(TraceStep::PidfdJoin {
                result: Outcome::Ok,
                ..
            })
        ),
        || {
            format!(
                "the pidfd join did not come first and succeed:\n{}",
                ran.summary()
            )
        },
    )?;
    ensure(
        !steps
            .iter()
            .any(|s| matches!(s, TraceStep::Open { .. } | TraceStep::Setns { .. })),
        || {
            format!(
                "per-namespace steps after a pidfd join that succeeded:\n{}",
                ran.summary()
            )
        },
    )
}

/// Every namespace file opened before the first join, no pidfd step.
fn per_namespace_steps(ran: &Ran, opens: usize) -> Result<(), String> {
    let steps = &ran.model_trace.steps;
    let first_join = steps
        .iter()
        .position(|s| matches!(s, TraceStep::Setns { .. }))
        .unwrap_or(steps.len());
    let opened = steps[..first_join]
        .iter()
        .filter(|s| matches!(s, TraceStep::Open { .. }))
        .count();
    ensure(
        opened == opens
            && !steps
                .iter()
                .any(|s| matches!(s, TraceStep::PidfdJoin { .. })),
        || {
            format!(
                "expected {opens} opens before the first setns and no pidfd join:\n{}",
                ran.summary()
            )
        },
    )
}

fn exec_case(kinds: Option<KindSet>, pidfd: bool) -> ExecCase {
    ExecCase {
        pid: TARGET,
        kinds,
        pidfd,
        resolve: true,
    }
}

fn exec_all_eight_pidfd() -> Result<Setup, String> {
    Ok(Setup::exec(
        container(0, 100_000, 65_536, KindSet::ALL),
        exec_case(None, true),
        |ran| {
            joined(ran, KindSet::ALL)?;
            pidfd_step_ok(ran)
        },
    ))
}

fn exec_all_eight_per_namespace() -> Result<Setup, String> {
    Ok(Setup::exec(
        container(0, 100_000, 65_536, KindSet::ALL),
        exec_case(None, false),
        |ran| {
            joined(ran, KindSet::ALL)?;
            per_namespace_steps(ran, 8)
        },
    ))
}

/// A rootless container: its user namespace made by the caller, 65534,
/// mapping only 0 to it; the caller joins it without privilege.
fn rootless_container() -> World {
    container(ROOTLESS_UID, ROOTLESS_UID, 1, KindSet::ALL)
        .caller(CallerSpec::unprivileged(ROOTLESS_UID, ROOTLESS_UID))
}

fn exec_rootless_pidfd() -> Result<Setup, String> {
    Ok(Setup::exec(
        rootless_container(),
        exec_case(None, true),
        |ran| {
            joined(ran, KindSet::ALL)?;
            pidfd_step_ok(ran)
        },
    ))
}

fn exec_rootless_per_namespace() -> Result<Setup, String> {
    Ok(Setup::exec(
        rootless_container(),
        exec_case(None, false),
        |ran| {
            joined(ran, KindSet::ALL)?;
            per_namespace_steps(ran, 8)?;
            // Without privilege outside `u`, the other joins wait for it
            // (what losing the other files would break: crun issue 1264).
            ensure(
                ran.model_trace
                    .steps
                    .iter()
                    .any(|s| matches!(s, TraceStep::Setns { deferred: true, .. })),
                || format!("no join was deferred:\n{}", ran.summary()),
            )
        },
    ))
}

fn exec_subset() -> Result<Setup, String> {
    let world = container(
        0,
        100_000,
        65_536,
        "network,uts,ipc".parse().map_err(|e| format!("{e}"))?,
    );
    let kinds: KindSet = "network,uts".parse().map_err(|e| format!("{e}"))?;
    Ok(Setup::exec(
        world,
        exec_case(Some(kinds), true),
        move |ran| {
            joined(ran, kinds)?;
            pidfd_step_ok(ran)
        },
    ))
}

fn exec_nothing_differs() -> Result<Setup, String> {
    Ok(Setup::exec(
        World::new().process(ProcessSpec::new(TARGET)),
        exec_case(None, true),
        |ran| {
            let k = expect_ok(ran)?;
            ensure(ran.model_trace.steps.is_empty(), || {
                format!(
                    "steps for a target in the caller's namespaces:\n{}",
                    ran.summary()
                )
            })?;
            expect_changed(k, KindSet::EMPTY)
        },
    ))
}

/// A process in a network namespace of its own, in `state`.
fn target_in(state: ProcessState) -> World {
    World::new()
        .namespace(NsSpec::new("network", Kind::Network))
        .process(
            ProcessSpec::new(TARGET)
                .in_ns(Kind::Network, "network")
                .state(state),
        )
}

fn exec_exited_target() -> Result<Setup, String> {
    Ok(Setup::exec(
        target_in(ProcessState::Exited),
        exec_case(None, true),
        |ran| expect_rejected(ran, ErrorCode::TargetExited),
    ))
}

/// Planned for network without looking first, so the join meets the
/// target gone.
fn exec_unresolved(pidfd: bool) -> ExecCase {
    ExecCase {
        resolve: false,
        ..exec_case(Some(KindSet::one(Kind::Network)), pidfd)
    }
}

fn exec_zombie_pidfd() -> Result<Setup, String> {
    Ok(Setup::exec(
        target_in(ProcessState::Exited),
        exec_unresolved(true),
        |ran| {
            expect_failed(ran, ErrorCode::TargetExited)?;
            ensure(
                matches!(
                    ran.model_trace.steps.as_slice(),
                    [TraceStep::PidfdJoin { result: Outcome::Err(e), fallback: false, .. }] if *e == nsapply::Errno::ESRCH
                ),
                || format!("expected one pidfd join failing ESRCH:\n{}", ran.summary()),
            )
        },
    ))
}

fn exec_zombie_per_namespace() -> Result<Setup, String> {
    Ok(Setup::exec(
        target_in(ProcessState::Exited),
        exec_unresolved(false),
        |ran| {
            expect_failed(ran, ErrorCode::TargetExited)?;
            let e = ran.model_trace.error.as_ref();
            ensure(
                e.is_some_and(|e| {
                    e.kind == Some(Kind::Network) && e.errno == Some(nsapply::Errno::ENOENT)
                }),
                || {
                    format!(
                        "expected the network file missing (ENOENT):\n{}",
                        ran.summary()
                    )
                },
            )
        },
    ))
}

fn exec_reaped_target() -> Result<Setup, String> {
    Ok(Setup::exec(
        target_in(ProcessState::Reaped),
        exec_unresolved(true),
        |ran| {
            expect_failed(ran, ErrorCode::TargetExited)?;
            ensure(
                matches!(
                    ran.model_trace.steps.as_slice(),
                    [TraceStep::PidfdJoin {
                        call: Some(nsapply::trace::PidfdCall::Open),
                        ..
                    }]
                ),
                || format!("expected pidfd_open to fail:\n{}", ran.summary()),
            )
        },
    ))
}

/// A zombie of root, for an unprivileged caller: the ptrace check comes
/// before the zombie's missing namespaces, in setns through a pidfd
/// (EPERM, not ESRCH: `validate_nsset`) as in opening `/proc/<pid>/ns/*`
/// (EACCES). The pidfd join falls back, and the open names the refusal.
fn exec_zombie_of_another_user() -> Result<Setup, String> {
    Ok(Setup::exec(
        target_in(ProcessState::Exited)
            .caller(CallerSpec::unprivileged(ROOTLESS_UID, ROOTLESS_UID)),
        exec_unresolved(true),
        |ran| {
            expect_failed(ran, ErrorCode::OpenFailed)?;
            ensure(
                matches!(
                    ran.model_trace.steps.first(),
                    Some(TraceStep::PidfdJoin { result: Outcome::Err(e), fallback: true, .. }) if *e == nsapply::Errno::EPERM
                ),
                || {
                    format!(
                        "expected the pidfd join to fail EPERM and fall back:\n{}",
                        ran.summary()
                    )
                },
            )
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stems(dir: &str) -> Vec<String> {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(dir);
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn every_example_and_bad_input_is_embedded() {
        let (examples, bad) = embedded_files();
        assert_eq!(examples, stems("examples"), "update EXAMPLES");
        assert_eq!(bad, stems("tests/data/bad"), "update BAD_INPUTS");
    }

    #[test]
    fn case_names_are_unique_and_rootless_is_a_subset() {
        let root = case_names(Mode::Root);
        let unique: std::collections::BTreeSet<&String> = root.iter().collect();
        assert_eq!(unique.len(), root.len());
        let rootless = case_names(Mode::Rootless);
        assert!(rootless.iter().all(|n| root.contains(n)));
        assert!(rootless.contains(&"creates_network".to_owned()));
        assert!(!rootless.contains(&"bad_relative_path".to_owned()));
        assert!(!rootless.contains(&"joins_user_by_path".to_owned()));
    }

    #[test]
    fn rootless_config_creates_a_user_namespace_first() {
        let doc = rootless_config(config(&[(Kind::Network, None)], json!({})));
        assert_eq!(doc["linux"]["namespaces"][0]["type"], "user");
        assert_eq!(doc["linux"]["uidMappings"][0]["hostID"], ROOTLESS_UID);
        let join = config(&[(Kind::User, Some(Path::new("/x")))], json!({}));
        assert_eq!(rootless_config(join.clone()), join);
    }
}
