//! Conformance: run real OCI runtimes (runc, crun, youki) on the corpus of
//! `conformance/cases/` and compare what they do with nsapply's plan.
//!
//! For each [`case::Case`] and runtime, [`Session::run_case`]:
//!
//! 1. fills `${WORLD}` with a fresh directory and builds the case's world
//!    on this kernel ([`Realized`]: helper processes hold the namespaces,
//!    bind mounts give them paths, all in a private mount namespace of
//!    this process, so nothing is mounted on the host);
//! 2. builds a bundle ([`bundle`]): a rootfs holding only a static busybox,
//!    and a `config.json` with the case's `linux` object and a container
//!    command that prints `/proc/self/ns/*` and its open fds
//!    ([`observe::CONTAINER_SCRIPT`]);
//! 3. runs `RUNTIME --root <scratch> run --bundle <bundle> <id>` under
//!    strace ([`strace::STRACE_ARGS`]) with a timeout, in a process group
//!    of its own (on timeout that group, and only it, is killed), then
//!    `RUNTIME delete --force <id>`;
//! 4. decodes the trace into typed events ([`strace`]), extracts the
//!    runtime's namespace activity ([`observe`]) and judges it against
//!    nsapply's reference for the same config and world ([`verdict`]).
//!
//! An exec case ([`case::Case::exec`], module [`exec`]) starts the container
//! detached instead (`RUNTIME run -d`), takes nsapply's exec plan for its
//! init ([`nsapply::exec::resolve`]), and traces and judges
//! `RUNTIME exec <id> <command>`; the container is deleted on every path.
//!
//! The caller must be root and single-threaded (the world's helpers are
//! forked, and this process changes mount namespace). Everything made for
//! a case (helpers, bind mounts, the container, its state, the bundle
//! unless `--bundle` was given) is gone when [`Session::run_case`] returns.
//!
//! crun 1.8 refuses a hybrid cgroup v1/v2 layout; for crun, this process
//! unmounts `/sys/fs/cgroup/unified` in its private mount namespace, which
//! leaves the host's mounts untouched ([`Runtime::hide_cgroup2`]).
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod bundle;
pub mod case;
pub mod exec;
pub mod message;
pub mod observe;
pub mod report;
pub mod strace;
pub mod userland;
pub mod verdict;

use nsapply_harness::host;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nsapply::kind::{Kind, KindSet};
use nsapply::syscall::linux::Linux;
use nsapply::syscall::Syscall;
use nsapply_harness::realize::{Realized, ScratchDir};

use case::{Case, Reference};
pub use message::error_line;
use userland::Userland;
use verdict::{Observed, Verdict};

/// Why a conformance run could not be done: nsapply's own failures, never
/// a runtime's non-conformance (that is a [`Verdict`]).
#[derive(Debug, thiserror::Error)]
pub enum ConformError {
    /// The corpus cannot be used.
    #[error(transparent)]
    Corpus(#[from] case::CaseError),
    /// The runtime cannot be found or run.
    #[error("runtime {name:?}: {message}")]
    Runtime {
        /// The name or path given.
        name: String,
        /// Why.
        message: String,
    },
    /// A tool the runner needs is missing (strace, busybox-static).
    #[error("{0} (conformance/install installs it)")]
    Missing(String),
    /// The runner must be root.
    #[error("conform needs root: runtimes create namespaces and the world's helpers join them")]
    NotRoot,
    /// Setting up or tearing down a case failed.
    #[error("case {case:?}: {message}")]
    Setup {
        /// The case.
        case: String,
        /// What failed.
        message: String,
    },
    /// An exec case could not be run on a runtime: starting, finding or
    /// cleaning up its container, or nsapply's exec target for it.
    #[error("case {case:?} on {runtime}: {message}")]
    Exec {
        /// The runtime.
        runtime: String,
        /// The case.
        case: String,
        /// What failed, with the errno or exit status.
        message: String,
    },
    /// The trace did not decode: a decoder bug or an unknown strace format.
    #[error("case {case:?}: trace {path:?}: {source}")]
    Decode {
        /// The case.
        case: String,
        /// The trace file.
        path: PathBuf,
        /// The first line that did not decode.
        source: strace::DecodeError,
    },
}

/// An OCI runtime under test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runtime {
    /// Its name in the report: the file name (`runc`, `crun`, `youki`),
    /// with `@<release>` for a runtime of another release (`runc@sid`).
    pub name: String,
    /// Its executable (inside its userland, for `NAME@RELEASE`).
    pub path: PathBuf,
    /// The first line of `RUNTIME --version`.
    pub version: String,
    /// The root file system it runs in; `None`: this host's.
    pub userland: Option<Userland>,
}

/// Directories searched for a runtime named without a slash, after `PATH`
/// (runc is in /usr/sbin on Debian, which a non-login PATH may lack).
const EXTRA_PATH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

impl Runtime {
    /// Finds a runtime by name (on `PATH`), path, or `NAME@RELEASE` (the
    /// runtime `NAME` of a Debian root file system made by
    /// `conformance/install --root RELEASE`, see [`userland`]), and reads
    /// its version.
    ///
    /// # Errors
    ///
    /// Not found, or `--version` failed.
    pub fn find(spec: &str) -> Result<Runtime, ConformError> {
        let err = |message: String| ConformError::Runtime {
            name: spec.to_owned(),
            message,
        };
        if let Some((name, release)) = spec.split_once('@') {
            if name.is_empty() || name.contains('/') {
                return Err(err(
                    "NAME@RELEASE takes a program name before '@' (runc@sid)".to_owned(),
                ));
            }
            let userland = Userland::find(release).map_err(err)?;
            let path = userland
                .program(name)
                .ok_or_else(|| err(format!("no {name} in {}", userland.dir.display())))?;
            let path_text = path.display().to_string();
            let version = userland
                .first_line(&path_text, &["--version"])
                .map_err(err)?;
            return Ok(Runtime {
                name: spec.to_owned(),
                path,
                version,
                userland: Some(userland),
            });
        }
        let path = if spec.contains('/') {
            PathBuf::from(spec)
        } else {
            find_on_path(spec).ok_or_else(|| err("not found on PATH".to_owned()))?
        };
        if !path.is_file() {
            return Err(err(format!("{} is not a file", path.display())));
        }
        let out = Command::new(&path)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| err(format!("{} --version: {e}", path.display())))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text.lines().next().unwrap_or("").trim().to_owned();
        if !out.status.success() || version.is_empty() {
            return Err(err(format!("{} --version failed", path.display())));
        }
        let name = program_name(&path);
        Ok(Runtime {
            name,
            path,
            version,
            userland: None,
        })
    }

    /// The program's file name (`crun` for `crun@sid`).
    pub fn program(&self) -> String {
        program_name(&self.path)
    }

    /// The report's description of the version: `--version`'s first line,
    /// and for a runtime of another release, its root and tracer.
    pub fn described_version(&self) -> String {
        match &self.userland {
            None => self.version.clone(),
            Some(u) => format!(
                "{} (Debian {} root file system, traced by its {})",
                self.version, u.release, u.tracer
            ),
        }
    }

    /// Whether this runtime must not see the cgroup v2 mount of a hybrid
    /// layout (crun refuses hybrid hierarchies: 1.8.1 and 1.28 alike).
    pub fn hide_cgroup2(&self) -> bool {
        self.program() == "crun"
    }
}

fn program_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `name` in `PATH`, then in the usual `sbin` and `bin` directories.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_PATH.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// How to run the corpus.
#[derive(Clone, Debug)]
pub struct Options {
    /// Keep each case's bundle in `DIR/<runtime>/<case>`, with the trace
    /// (`strace.txt`) and the runtime's output (`stdout.txt`, `stderr.txt`);
    /// default: a scratch directory, removed after the case.
    pub bundle: Option<PathBuf>,
    /// The time limit of one runtime run.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            bundle: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// The result of one case on one runtime.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The case name.
    pub case: String,
    /// nsapply's reference (`accept`, or the code it rejects with).
    pub reference: String,
    /// The verdict.
    pub verdict: Verdict,
    /// [`Verdict::summary`], with scratch paths replaced by `${WORLD}` and
    /// `${BUNDLE}` so reports of two runs compare.
    pub summary: String,
    /// The runtime's error line, same replacements (empty on success).
    pub message: String,
    /// Whether the runtime run hit the time limit.
    pub timed_out: bool,
    /// How long the runtime run took.
    pub took: Duration,
}

/// One runtime's results.
#[derive(Clone, Debug)]
pub struct RuntimeResults {
    /// The runtime.
    pub runtime: Runtime,
    /// One per case, in corpus order.
    pub results: Vec<CaseResult>,
}

/// A session: the checks and mount namespace set-up shared by every case.
#[derive(Debug)]
pub struct Session {
    strace: PathBuf,
    /// The static busybox, read once: a runtime of another release runs
    /// with that release's `/usr`, where the host's `/bin/busybox` is not.
    busybox: Vec<u8>,
    /// The private mount namespace every runtime's namespace is made from.
    base: OwnedFd,
    options: Options,
}

/// A case's scratch directory, the world directory in it and the case
/// instantiated there.
fn case_scratch(case: &Case) -> Result<(ScratchDir, PathBuf, case::Instance), String> {
    let scratch = ScratchDir::new().map_err(|e| format!("scratch directory: {e}"))?;
    let world_dir = scratch.join("world");
    fs::create_dir(&world_dir).map_err(|e| format!("{}: {e}", world_dir.display()))?;
    let inst = case.instantiate(&world_dir)?;
    Ok((scratch, world_dir, inst))
}

impl Session {
    /// Checks the environment (root, strace, a static busybox) and moves
    /// this process into a private mount namespace.
    ///
    /// # Errors
    ///
    /// Not root, a tool missing, or the mount namespace set-up failed.
    pub fn new(options: Options) -> Result<Session, ConformError> {
        if host::euid() != 0 {
            return Err(ConformError::NotRoot);
        }
        let strace = find_on_path("strace")
            .ok_or_else(|| ConformError::Missing("strace not found".to_owned()))?;
        let busybox = fs::read("/bin/busybox").unwrap_or_default();
        if !bundle::elf_is_static(&busybox) {
            return Err(ConformError::Missing(
                "/bin/busybox is missing or not statically linked (package busybox-static)"
                    .to_owned(),
            ));
        }
        let setup = |what: &str, e: nsapply::Errno| ConformError::Setup {
            case: String::new(),
            message: format!("{what}: {e}"),
        };
        Linux
            .unshare(KindSet::one(Kind::Mount))
            .map_err(|e| setup("unshare(CLONE_NEWNS)", e))?;
        host::make_mounts_private().map_err(|e| setup("making mounts private", e))?;
        let base = Linux
            .open_ns(Path::new("/proc/self/ns/mnt"))
            .map_err(|e| setup("opening /proc/self/ns/mnt", e))?;
        Ok(Session {
            strace,
            busybox,
            base,
            options,
        })
    }

    /// The case's world realized (`None` when it has nothing to make) and
    /// its bundle built with `config`: under the bundle directory the
    /// options name, else in the scratch directory.
    fn world_and_bundle(
        &self,
        rt: &Runtime,
        case: &Case,
        scratch: &ScratchDir,
        inst: &case::Instance,
        config: &serde_json::Value,
    ) -> Result<(Option<Realized>, PathBuf), String> {
        let realized = if inst.world.namespaces.is_empty() && inst.world.files.is_empty() {
            None
        } else {
            Some(Realized::new(&inst.world).map_err(|e| format!("world: {e}"))?)
        };
        let bundle_dir = match &self.options.bundle {
            Some(d) => d.join(&rt.name).join(&case.name),
            None => scratch.join("bundle"),
        };
        bundle::build(&bundle_dir, &self.busybox, config)
            .map_err(|e| format!("bundle {}: {e}", bundle_dir.display()))?;
        Ok((realized, bundle_dir))
    }

    /// Enters a fresh mount namespace for `rt`, made from the base one.
    fn enter_runtime_namespace(&self, rt: &Runtime, case: &str) -> Result<(), ConformError> {
        let setup = |what: String| ConformError::Setup {
            case: case.to_owned(),
            message: what,
        };
        Linux
            .setns(&self.base, Kind::Mount)
            .map_err(|e| setup(format!("setns to the base mount namespace: {e}")))?;
        Linux
            .unshare(KindSet::one(Kind::Mount))
            .map_err(|e| setup(format!("unshare(CLONE_NEWNS): {e}")))?;
        let unified = Path::new("/sys/fs/cgroup/unified");
        if rt.hide_cgroup2() && is_mount_point(unified) {
            host::unmount(unified).map_err(|e| {
                setup(format!(
                    "unmounting {} for {}: {e}",
                    unified.display(),
                    rt.name
                ))
            })?;
        }
        if let Some(u) = &rt.userland {
            u.enter().map_err(setup)?;
        }
        Ok(())
    }

    /// Runs every case on `rt`, calling `each` after each case.
    ///
    /// # Errors
    ///
    /// The first case that could not be run (nsapply's failure).
    pub fn run_all(
        &self,
        rt: &Runtime,
        cases: &[Case],
        mut each: impl FnMut(&CaseResult),
    ) -> Result<RuntimeResults, ConformError> {
        let mut results = Vec::new();
        for case in cases {
            let r = self.run_case(rt, case)?;
            each(&r);
            results.push(r);
        }
        // Leave the last case's mount namespace.
        let _ = Linux.setns(&self.base, Kind::Mount);
        Ok(RuntimeResults {
            runtime: rt.clone(),
            results,
        })
    }

    /// Runs one case on one runtime (module docs).
    ///
    /// # Errors
    ///
    /// Setting up the world or bundle, running strace, or decoding the
    /// trace failed.
    pub fn run_case(&self, rt: &Runtime, case: &Case) -> Result<CaseResult, ConformError> {
        if case.exec {
            return self.run_exec_case(rt, case);
        }
        let setup = |message: String| ConformError::Setup {
            case: case.name.clone(),
            message,
        };
        self.enter_runtime_namespace(rt, &case.name)?;
        let (scratch, world_dir, inst) = case_scratch(case).map_err(setup)?;
        let config = bundle::config(&inst.linux);
        let reference = case::reference(&config, &inst.world);
        let (realized, bundle_dir) = self
            .world_and_bundle(rt, case, &scratch, &inst, &config)
            .map_err(setup)?;

        let path_inodes = path_inodes(&inst.linux);
        let host = host_inodes().map_err(|e| setup(format!("reading /proc/self/ns: {e}")))?;
        let state = scratch.join("state");
        let trace_path = scratch.join("trace");
        // Unique on the machine: runtimes name cgroups after it.
        let id = format!("nsapply-conform-{}-{}", std::process::id(), case.name);
        let bundle_arg = bundle_dir.as_os_str();
        let run = self
            .run_runtime(
                rt,
                &state,
                &[
                    OsStr::new("run"),
                    OsStr::new("--bundle"),
                    bundle_arg,
                    OsStr::new(&id),
                ],
                Some(&trace_path),
                &bundle_dir,
                &scratch.join("stdout"),
            )
            .map_err(setup)?;
        self.delete(rt, &state, &id);
        drop(realized);
        if self.options.bundle.is_some() {
            // Kept for inspection and for decoder fixtures.
            for (from, to) in [
                (&trace_path, "strace.txt"),
                (&scratch.join("stdout"), "stdout.txt"),
                (&scratch.join("stderr"), "stderr.txt"),
            ] {
                let _ = fs::copy(from, bundle_dir.join(to));
            }
        }

        let trace_text = fs::read_to_string(&trace_path)
            .map_err(|e| setup(format!("reading the trace {}: {e}", trace_path.display())))?;
        let events = strace::decode(&trace_text).map_err(|source| ConformError::Decode {
            case: case.name.clone(),
            path: trace_path.clone(),
            source,
        })?;
        let ns_paths: BTreeSet<String> = path_inodes.keys().cloned().collect();
        let activity = observe::activity(&events, bundle::CONTAINER_PROGRAM, &ns_paths);
        let view = observe::container_view(&run.stdout);
        let view = (!view.inodes.is_empty()).then_some(view);
        let message = if run.timed_out {
            format!("timed out after {}s", self.options.timeout.as_secs())
        } else {
            error_line(&run.stderr)
        };
        let seen = Observed {
            activity,
            view,
            success: run.status.is_some_and(|s| s.success()) && !run.timed_out,
            timed_out: run.timed_out,
            message: message.clone(),
            host,
            path_inodes,
        };
        let verdict = verdict::judge(&reference, &seen);
        let stable = |s: &str| {
            mask_bracketed_numbers(s)
                .replace(&world_dir.display().to_string(), case::WORLD_PLACEHOLDER)
                .replace(&bundle_dir.display().to_string(), "${BUNDLE}")
                .replace(&scratch.path().display().to_string(), "${SCRATCH}")
                .replace(&id, "${ID}")
        };
        let reference_name = match &reference {
            Reference::Accept(_) => "accept".to_owned(),
            Reference::Reject { code, stage, .. } => format!("{code} ({})", stage.name()),
        };
        Ok(CaseResult {
            case: case.name.clone(),
            reference: reference_name,
            summary: stable(&verdict.summary()),
            message: if seen.success {
                String::new()
            } else {
                stable(&message)
            },
            verdict,
            timed_out: run.timed_out,
            took: run.took,
        })
    }

    /// Runs `RUNTIME --root STATE ARGS...` in `cwd`, under strace when
    /// `trace` is given, in its own process group, with the session's time
    /// limit; its stdout goes to `stdout` and its stderr to the same path
    /// with the extension `stderr` (`.../stdout` and `.../stderr`,
    /// `.../start.stdout` and `.../start.stderr`).
    fn run_runtime(
        &self,
        rt: &Runtime,
        state: &Path,
        args: &[&OsStr],
        trace: Option<&Path>,
        cwd: &Path,
        stdout: &Path,
    ) -> Result<RunOutput, String> {
        let stdout_path = stdout.to_owned();
        let stderr_path = match stdout.extension() {
            Some(_) => stdout.with_extension("stderr"),
            None => stdout.with_file_name("stderr"),
        };
        let create = |p: &Path| File::create(p).map_err(|e| format!("{}: {e}", p.display()));
        let mut cmd = match trace {
            Some(trace) => {
                let mut cmd = Command::new(&self.strace);
                cmd.args(strace::STRACE_ARGS)
                    .arg("-o")
                    .arg(trace)
                    .arg("--")
                    .arg(&rt.path);
                cmd
            }
            None => Command::new(&rt.path),
        };
        cmd.arg("--root")
            .arg(state)
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(create(&stdout_path)?)
            .stderr(create(&stderr_path)?)
            .process_group(0);
        let start = Instant::now();
        let under = if trace.is_some() { " under strace" } else { "" };
        let what = args
            .first()
            .map_or(String::new(), |a| a.to_string_lossy().into_owned());
        let (status, timed_out) = run_with_timeout(cmd, self.options.timeout)
            .map_err(|e| format!("running {} {what}{under}: {e}", rt.name))?;
        let took = start.elapsed();
        let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
        Ok(RunOutput {
            status,
            timed_out,
            took,
            stdout: read(&stdout_path),
            stderr: read(&stderr_path),
        })
    }

    /// `RUNTIME --root STATE delete --force ID`, bounded; a container that
    /// never got created makes it fail, which is fine.
    fn delete(&self, rt: &Runtime, state: &Path, id: &str) {
        let _ = self.delete_checked(rt, state, id);
    }

    /// [`Session::delete`], saying how it failed.
    fn delete_checked(&self, rt: &Runtime, state: &Path, id: &str) -> Result<(), String> {
        if !state.exists() {
            return Ok(());
        }
        let mut cmd = Command::new(&rt.path);
        cmd.arg("--root")
            .arg(state)
            .args(["delete", "--force", id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let what = format!("{} delete --force {id}", rt.name);
        match run_with_timeout(cmd, self.options.timeout) {
            Err(e) => Err(format!("{what}: {e}")),
            Ok((_, true)) => Err(format!(
                "{what}: timed out after {}s",
                self.options.timeout.as_secs()
            )),
            Ok((Some(s), false)) if !s.success() => Err(format!("{what}: {s}")),
            Ok(_) => Ok(()),
        }
    }
}

/// What one runtime run left.
struct RunOutput {
    status: Option<ExitStatus>,
    timed_out: bool,
    took: Duration,
    stdout: String,
    stderr: String,
}

/// Spawns `cmd` (which must be in a process group of its own) and waits
/// at most `limit`; past it, kills that process group, which holds only
/// what this command started, and reaps the command.
fn run_with_timeout(
    mut cmd: Command,
    limit: Duration,
) -> std::io::Result<(Option<ExitStatus>, bool)> {
    let mut child = cmd.spawn()?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((Some(status), false));
        }
        if start.elapsed() >= limit {
            let pgid = i32::try_from(child.id()).unwrap_or(0);
            if pgid > 0 {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let status = child.wait().ok();
            return Ok((status, true));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The inode of each absolute namespace path in `linux.namespaces`.
fn path_inodes(linux: &serde_json::Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let entries = linux
        .get("namespaces")
        .and_then(|n| n.as_array())
        .cloned()
        .unwrap_or_default();
    for e in entries {
        if let Some(p) = e.get("path").and_then(|p| p.as_str()) {
            if let Ok(m) = fs::metadata(p) {
                out.insert(p.to_owned(), m.ino());
            }
        }
    }
    out
}

/// The namespaces of this process (what a runtime started now inherits).
fn host_inodes() -> std::io::Result<BTreeMap<Kind, u64>> {
    let inodes = host::ns_inodes(None, false)?;
    Ok(Kind::ALL
        .into_iter()
        .map(|k| (k, inodes[k.index()]))
        .collect())
}

/// Whether `path` is a mount point in this mount namespace.
fn is_mount_point(path: &Path) -> bool {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.display().to_string();
    text.lines()
        .any(|l| l.split_whitespace().nth(4) == Some(want.as_str()))
}

/// `name: value` lines describing the machine for the report: the
/// kernel, strace, and the cgroup layout.
pub fn environment() -> Vec<String> {
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let strace = Command::new("strace")
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let cgroup = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "v2 (unified)"
    } else if is_mount_point(Path::new("/sys/fs/cgroup/unified")) {
        "hybrid v1/v2 (crun runs with /sys/fs/cgroup/unified unmounted in a private mount namespace)"
    } else {
        "v1"
    };
    vec![
        format!("kernel: Linux {kernel}"),
        format!("tracer: {strace}"),
        format!("cgroups: {cgroup}"),
    ]
}

/// Replaces every `[<digits>]` (pids in `nsexec-1[1234]`, inodes in
/// `net:[4026531840]`) with `[N]`: they change from run to run.
///
/// ```
/// assert_eq!(nsapply_conform::mask_bracketed_numbers("nsexec-1[24819]: x[] [a1]"), "nsexec-1[N]: x[] [a1]");
/// ```
pub fn mask_bracketed_numbers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(']') {
            out.push_str("[N]");
            rest = &after[digits + 1..];
        } else {
            out.push('[');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}
