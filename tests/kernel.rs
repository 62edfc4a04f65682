//! Real-kernel tests, each case in a fresh single-threaded process, and the
//! differential check of DESIGN §1: every scenario runs on the model and on
//! the Linux backend, and the two traces must be equal, errno included.
//!
//! The test harness runs tests on its own threads, and a multithreaded
//! process cannot `unshare(CLONE_NEWUSER)` or `setns` into a user or mount
//! namespace. So this target has no harness (`harness = false`): `main`
//! lists one libtest-mimic trial per case, and each trial re-executes this
//! binary with `NSAPPLY_KERNEL_CASE=<case>`; that process runs the case
//! before anything starts a thread and prints one JSON line with the result.
//!
//! The cases need root (they make namespaces for other users, bind-mount
//! namespace files, become other users). Without root every trial is
//! reported as ignored and the reason is printed, so a run never passes
//! silently; CI runs as root, where they all run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};
use nsapply::model::{simulate, CallerSpec, FileSpec, Model, NsSpec, World};
use nsapply::realize::{apply_as_caller, KernelRun, Realized, ScratchDir, Side};
use nsapply::syscall::linux;
use nsapply::{plan, ErrorCode, IdMapping, Kind, KindSet, NsConfig, Outcome, Trace, TraceStep};
use serde_json::{json, Value};

const CASE_ENV: &str = "NSAPPLY_KERNEL_CASE";

/// A case's result: a summary on success, what went wrong otherwise.
type CaseResult = Result<String, String>;
type CaseFn = Box<dyn Fn() -> CaseResult>;
type PlainCase = fn() -> CaseResult;

fn main() {
    if let Ok(name) = std::env::var(CASE_ENV) {
        // First thing: no thread may exist before the case runs.
        let result = match cases().into_iter().find(|(n, _)| *n == name) {
            Some((_, case)) => case(),
            None => Err(format!("no kernel case named {name:?}")),
        };
        let ok = result.is_ok();
        let detail = result.unwrap_or_else(|e| e);
        println!("{}", json!({ "case": name, "ok": ok, "detail": detail }));
        std::process::exit(i32::from(!ok));
    }

    let args = Arguments::from_args();
    let root = linux::euid() == 0;
    if !root {
        eprintln!(
            "kernel tests skipped: not root (euid {}); they create namespaces for other users and bind-mount namespace files",
            linux::euid()
        );
    }
    let trials = cases()
        .into_iter()
        .map(|(name, _)| {
            let n = name.clone();
            Trial::test(name, move || reexec(&n)).with_ignored_flag(!root)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// Runs one case in a fresh process and reads its JSON line.
fn reexec(name: &str) -> Result<(), Failed> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = Command::new(exe)
        .env(CASE_ENV, name)
        .output()
        .map_err(|e| format!("re-executing the test binary: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let Some(v) = line.and_then(|l| serde_json::from_str::<Value>(l).ok()) else {
        return Err(format!(
            "case process gave no result ({}):\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        )
        .into());
    };
    let detail = v["detail"].as_str().unwrap_or_default();
    if v["ok"] == Value::Bool(true) && out.status.success() {
        Ok(())
    } else {
        Err(format!("{detail}\nstderr: {stderr}").into())
    }
}

// ---------------------------------------------------------------------------
// The case list.
// ---------------------------------------------------------------------------

fn cases() -> Vec<(String, CaseFn)> {
    let mut v: Vec<(String, CaseFn)> = Vec::new();
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
    let fixed: [(&str, PlainCase); 21] = [
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
    ];
    for (n, f) in fixed {
        v.push((n.to_owned(), Box::new(f)));
    }
    for path in example_configs() {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().replace('-', "_"))
            .unwrap_or_default();
        v.push((format!("example_{stem}"), Box::new(move || example(&path))));
    }
    v
}

fn example_configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

// ---------------------------------------------------------------------------
// One scenario on both backends.
// ---------------------------------------------------------------------------

/// A scenario run on the model and on the kernel.
struct Ran {
    model: Model,
    model_trace: Trace,
    /// `None` when validation refused the config (no syscall at all).
    kernel: Option<KernelRun>,
    /// The validation error, if any.
    rejected: Option<ErrorCode>,
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
        if let Some(k) = &self.kernel {
            s.push_str(&format!("(kernel side: {:?}, equal to the model)", k.side));
        }
        s
    }
}

/// Builds `world` on the kernel, makes the config with the realized paths,
/// runs it on the model (with the realized world) and on the kernel (as
/// the world's caller), and checks what every run must satisfy: equal
/// traces, and no fd left behind by the engine.
fn scenario(world: World, config: impl FnOnce(&Realized) -> Value) -> Result<Ran, String> {
    let real = Realized::new(&world).map_err(|e| format!("realize: {e}"))?;
    let cfg_json = config(&real).to_string();
    let full = real.world();
    let mut model =
        Model::new(&full).map_err(|e| format!("model world: {e}\n{}", full.to_json()))?;
    let cfg = match NsConfig::from_json(&cfg_json) {
        Ok(cfg) => cfg,
        Err(e) => {
            return Ok(Ran {
                model_trace: Trace::rejected(&e),
                model,
                kernel: None,
                rejected: Some(e.code()),
                real,
            })
        }
    };
    let p = plan(&cfg);
    let model_trace = simulate(&p, &mut model).trace;
    let kernel = apply_as_caller(&p, &world.caller).map_err(|e| format!("kernel run: {e}"))?;
    if kernel.trace != model_trace {
        return Err(format!(
            "MODEL AND KERNEL DISAGREE\n{}\nconfig: {cfg_json}\nworld: {}",
            trace_diff(&model_trace, &kernel.trace),
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
    Ok(Ran {
        model,
        model_trace,
        kernel: Some(kernel),
        rejected: None,
        real,
    })
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

// ---------------------------------------------------------------------------
// The cases.
// ---------------------------------------------------------------------------

fn creates(kind: Kind) -> Result<String, String> {
    let extra = if kind == Kind::User {
        root_maps()
    } else {
        json!({})
    };
    let ran = scenario(World::new(), |_| config(&[(kind, None)], extra))?;
    let k = expect_ok(&ran)?;
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
    })?;
    Ok(ran.summary())
}

fn joins(kind: Kind) -> Result<String, String> {
    let mut target = NsSpec::new("target", kind);
    if kind == Kind::User {
        // Root must be mapped for setresuid(0) after the join.
        target = target.maps(vec![map(0, 100_000, 65_536)], vec![map(0, 100_000, 65_536)]);
    }
    let ran = scenario(World::new().namespace(target), |r| {
        config(&[(kind, Some(&proc_path(r, "target")))], json!({}))
    })?;
    let k = expect_ok(&ran)?;
    expect_in(k, kind, &ran.real, "target")?;
    expect_changed(k, KindSet::one(kind))?;
    Ok(ran.summary())
}

fn joins_network_by_bind_mount() -> Result<String, String> {
    let dir = ScratchDir::new().map_err(|e| e.to_string())?;
    let at = dir.join("netns/n");
    let world = World::new().namespace(NsSpec::new("n", Kind::Network).at(&at));
    let ran = scenario(world, |_| {
        config(&[(Kind::Network, Some(&at)), (Kind::Uts, None)], json!({}))
    })?;
    let k = expect_ok(&ran)?;
    expect_in(k, Kind::Network, &ran.real, "n")?;
    expect_changed(k, KindSet::one(Kind::Network).with(Kind::Uts))?;
    Ok(ran.summary())
}

fn wrong_type_path() -> Result<String, String> {
    let world = World::new().namespace(NsSpec::new("n", Kind::Network));
    let ran = scenario(world, |r| {
        config(
            &[
                (Kind::Uts, None),
                (Kind::Ipc, Some(&proc_path(r, "n"))),
                (Kind::Pid, None),
            ],
            json!({}),
        )
    })?;
    expect_code(&ran, ErrorCode::WrongNamespaceType)?;
    expect_unchanged(&ran)?;
    Ok(ran.summary())
}

fn bad_path_case(spec: Option<FileSpec>, code: ErrorCode) -> Result<String, String> {
    let dir = ScratchDir::new().map_err(|e| e.to_string())?;
    let path = dir.join("not-a-namespace");
    let mut world = World::new();
    if let Some(s) = spec {
        world = world.file(&path, s);
    }
    let ran = scenario(world, |_| {
        config(
            &[
                (Kind::User, None),
                (Kind::Uts, None),
                (Kind::Network, Some(&path)),
            ],
            root_maps(),
        )
    })?;
    expect_code(&ran, code)?;
    expect_unchanged(&ran)?;
    Ok(ran.summary())
}

fn regular_file_path() -> Result<String, String> {
    bad_path_case(Some(FileSpec::Regular), ErrorCode::NotANamespace)
}

fn directory_path() -> Result<String, String> {
    bad_path_case(Some(FileSpec::Directory), ErrorCode::NotANamespace)
}

fn missing_path() -> Result<String, String> {
    bad_path_case(None, ErrorCode::PathNotFound)
}

fn rejected_case(cfg: Value, code: ErrorCode) -> Result<String, String> {
    let before = linux::ns_inodes(None, true).map_err(|e| e.to_string())?;
    let ran = scenario(World::new(), |_| cfg)?;
    let after = linux::ns_inodes(None, true).map_err(|e| e.to_string())?;
    ensure(ran.rejected == Some(code), || {
        format!(
            "expected validation error {code:?}, got {:?}",
            ran.error_code()
        )
    })?;
    ensure(ran.model.calls().is_empty(), || {
        format!("the model saw calls: {:?}", ran.model.calls())
    })?;
    ensure(before == after, || "namespaces changed".to_owned())?;
    Ok(ran.summary())
}

fn relative_path() -> Result<String, String> {
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

fn duplicate_type() -> Result<String, String> {
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

fn time_offsets_visible() -> Result<String, String> {
    let offsets = json!({"timeOffsets": {
        "monotonic": {"secs": 86400, "nanosecs": 0},
        "boottime": {"secs": 172800, "nanosecs": 500000000}
    }});
    let ran = scenario(World::new(), |_| config(&[(Kind::Time, None)], offsets))?;
    let k = expect_ok(&ran)?;
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
    })?;
    Ok(ran.summary())
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

fn id_maps_visible() -> Result<String, String> {
    let uid = [map(0, 100_000, 1000), map(1000, 300_000, 1000)];
    let gid = [map(0, 200_000, 65_536)];
    let extra = json!({"uidMappings": maps_json(&uid), "gidMappings": maps_json(&gid)});
    let ran = scenario(World::new(), |_| config(&[(Kind::User, None)], extra))?;
    let k = expect_ok(&ran)?;
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
    })?;
    Ok(ran.summary())
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

fn deferred_join_unprivileged() -> Result<String, String> {
    let world = rootless_pair_world(CallerSpec::unprivileged(65_534, 65_534));
    let ran = scenario(world, join_pair)?;
    let k = expect_ok(&ran)?;
    let net = setns_results(&k.trace, Kind::Network);
    let want = vec![
        (Outcome::Err(nsapply::Errno::EPERM), true),
        (Outcome::Ok, false),
    ];
    ensure(net == want, || {
        format!("network joins: {net:?}, expected {want:?}")
    })?;
    expect_in(k, Kind::User, &ran.real, "u")?;
    expect_in(k, Kind::Network, &ran.real, "n")?;
    Ok(ran.summary())
}

fn root_join_no_deferral() -> Result<String, String> {
    let ran = scenario(rootless_pair_world(CallerSpec::root()), join_pair)?;
    let k = expect_ok(&ran)?;
    let net = setns_results(&k.trace, Kind::Network);
    ensure(net == vec![(Outcome::Ok, false)], || {
        format!("network joins: {net:?}")
    })?;
    expect_in(k, Kind::User, &ran.real, "u")?;
    expect_in(k, Kind::Network, &ran.real, "n")?;
    Ok(ran.summary())
}

fn multithreaded() -> Result<String, String> {
    let world = World::new().caller(CallerSpec::root().threads(2));
    let ran = scenario(world, |_| {
        config(&[(Kind::Uts, None), (Kind::User, None)], root_maps())
    })?;
    expect_code(&ran, ErrorCode::Multithreaded)?;
    expect_unchanged(&ran)?;
    let k = ran.kernel()?;
    ensure(k.before.threads == 2, || {
        format!("the applier had {} threads", k.before.threads)
    })?;
    Ok(ran.summary())
}

fn unprivileged_create_network() -> Result<String, String> {
    let world = World::new().caller(CallerSpec::unprivileged(65_534, 65_534));
    let ran = scenario(world, |_| config(&[(Kind::Network, None)], json!({})))?;
    expect_code(&ran, ErrorCode::UnshareFailed)?;
    expect_unchanged(&ran)?;
    Ok(ran.summary())
}

fn unprivileged_join_host_network() -> Result<String, String> {
    // A bind mount, not /proc/<helper>/ns/net: opening a root process's
    // /proc/<pid>/ns/* needs ptrace access, which the model leaves out.
    let dir = ScratchDir::new().map_err(|e| e.to_string())?;
    let at = dir.join("n");
    let world = World::new()
        .caller(CallerSpec::unprivileged(65_534, 65_534))
        .namespace(NsSpec::new("n", Kind::Network).at(&at));
    let ran = scenario(world, |_| config(&[(Kind::Network, Some(&at))], json!({})))?;
    expect_code(&ran, ErrorCode::JoinFailed)?;
    expect_unchanged(&ran)?;
    Ok(ran.summary())
}

fn unprivileged_multi_line_map() -> Result<String, String> {
    let uid = [map(0, 65_534, 1), map(1, 100_000, 10)];
    let gid = [map(0, 65_534, 1)];
    let world = World::new().caller(CallerSpec::unprivileged(65_534, 65_534));
    let extra = json!({"uidMappings": maps_json(&uid), "gidMappings": maps_json(&gid)});
    let ran = scenario(world, |_| config(&[(Kind::User, None)], extra))?;
    expect_code(&ran, ErrorCode::SyncFailed)?;
    Ok(ran.summary())
}

fn joining_own_user_namespace() -> Result<String, String> {
    let dir = ScratchDir::new().map_err(|e| e.to_string())?;
    let at = dir.join("host-user");
    let world = World::new().namespace(NsSpec::new("host:user", Kind::User).at(&at));
    let ran = scenario(world, |_| config(&[(Kind::User, Some(&at))], json!({})))?;
    expect_code(&ran, ErrorCode::JoinFailed)?;
    expect_unchanged(&ran)?;
    Ok(ran.summary())
}

fn join_user_without_maps() -> Result<String, String> {
    let world = World::new().namespace(NsSpec::new("u", Kind::User));
    let ran = scenario(world, |r| {
        config(&[(Kind::User, Some(&proc_path(r, "u")))], json!({}))
    })?;
    expect_code(&ran, ErrorCode::SetidFailed)?;
    Ok(ran.summary())
}

fn rootless_creates() -> Result<String, String> {
    let one = [map(0, 65_534, 1)];
    let world = World::new().caller(CallerSpec::unprivileged(65_534, 65_534));
    let extra = json!({"uidMappings": maps_json(&one), "gidMappings": maps_json(&one)});
    let ran = scenario(world, |_| {
        config(
            &[(Kind::User, None), (Kind::Network, None), (Kind::Pid, None)],
            extra,
        )
    })?;
    let k = expect_ok(&ran)?;
    expect_changed(
        k,
        [Kind::User, Kind::Network, Kind::Pid].into_iter().collect(),
    )?;
    ensure(k.after.setgroups.trim() == "deny", || {
        format!(
            "an unprivileged parent must deny setgroups: {:?}",
            k.after.setgroups
        )
    })?;
    Ok(ran.summary())
}

/// An example config: every namespace path is realized as a bind mount of
/// a fresh namespace of that kind; a config whose only uid mapping is one
/// id of a non-root host uid is run by that uid (rootless style).
fn example(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
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
    let ran = scenario(world, |_| doc.clone())?;
    let k = expect_ok(&ran)?;
    let kinds: KindSet = namespaces
        .iter()
        .filter_map(|n| n["type"].as_str().and_then(|t| t.parse().ok()))
        .collect();
    expect_changed(k, kinds)?;
    for (kind, name) in &joined {
        expect_in(k, *kind, &ran.real, name)?;
    }
    Ok(ran.summary())
}

fn unprivileged_join_user_create_network() -> CaseResult {
    let world = rootless_pair_world(CallerSpec::unprivileged(65_534, 65_534));
    let ran = scenario(world, |r| {
        config(
            &[
                (Kind::User, Some(&proc_path(r, "u"))),
                (Kind::Network, None),
                (Kind::Uts, None),
            ],
            json!({}),
        )
    })?;
    let k = expect_ok(&ran)?;
    expect_in(k, Kind::User, &ran.real, "u")?;
    expect_changed(
        k,
        [Kind::User, Kind::Network, Kind::Uts].into_iter().collect(),
    )?;
    Ok(ran.summary())
}

fn root_join_network_create_user() -> CaseResult {
    let world = World::new().namespace(NsSpec::new("n", Kind::Network));
    let ran = scenario(world, |r| {
        config(
            &[
                (Kind::User, None),
                (Kind::Network, Some(&proc_path(r, "n"))),
                (Kind::Ipc, None),
            ],
            root_maps(),
        )
    })?;
    let k = expect_ok(&ran)?;
    expect_in(k, Kind::Network, &ran.real, "n")?;
    expect_changed(
        k,
        [Kind::User, Kind::Network, Kind::Ipc].into_iter().collect(),
    )?;
    Ok(ran.summary())
}

fn joins_time_not_entered() -> CaseResult {
    let world = World::new().namespace(NsSpec::new("t", Kind::Time).entered(false));
    let ran = scenario(world, |r| {
        config(&[(Kind::Time, Some(&proc_path(r, "t")))], json!({}))
    })?;
    let k = expect_ok(&ran)?;
    expect_in(k, Kind::Time, &ran.real, "t")?;
    expect_changed(k, KindSet::one(Kind::Time))?;
    Ok(ran.summary())
}
