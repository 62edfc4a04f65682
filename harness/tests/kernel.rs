//! Real-kernel tests, each case in a fresh single-threaded process, and the
//! differential check of DESIGN §1: every scenario runs on the model and on
//! the Linux backend, and the two traces must be equal, errno included.
//!
//! The corpus and its checks live in [`nsapply_harness::differential`] (shared with
//! the VM guest of `vm-tests/`); this file is the harness on the host
//! kernel. Every case runs as described (`<case>`), and, where it applies,
//! rootless (`rootless::<case>`: uid 65534 creating a user namespace first).
//!
//! The test harness runs tests on its own threads, and a multithreaded
//! process cannot `unshare(CLONE_NEWUSER)` or `setns` into a user or mount
//! namespace. So this target has no harness (`harness = false`): `main`
//! lists one libtest-mimic trial per case, and each trial re-executes this
//! binary with `NSAPPLY_KERNEL_CASE=<case>` (and `NSAPPLY_KERNEL_MODE`);
//! that process runs the case before anything starts a thread and prints
//! its [`CaseReport`] as one JSON line.
//!
//! The cases need root (they make namespaces for other users, bind-mount
//! namespace files, become other users). Without root every trial is
//! reported as ignored and the reason is printed, so a run never passes
//! silently; CI runs as root, where they all run.

use nsapply_harness::host;
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};
use nsapply_harness::differential::{case_names, case_process, CaseReport, Mode, Status};

const CASE_ENV: &str = "NSAPPLY_KERNEL_CASE";
const MODE_ENV: &str = "NSAPPLY_KERNEL_MODE";

fn main() {
    if let Ok(name) = std::env::var(CASE_ENV) {
        // First thing: no thread may exist before the case runs.
        let report = case_process(&name, MODE_ENV);
        std::process::exit(i32::from(report.status != Status::Pass));
    }

    let args = Arguments::from_args();
    let root = host::euid() == 0;
    if !root {
        eprintln!(
            "kernel tests skipped: not root (euid {}); they create namespaces for other users and bind-mount namespace files",
            host::euid()
        );
    }
    let mut trials = Vec::new();
    // The external corpus's rows have their own target (tests/external.rs).
    for mode in [Mode::Root, Mode::Rootless] {
        for name in case_names(mode) {
            let label = match mode {
                Mode::Root => name.clone(),
                _ => format!("{}::{name}", mode.as_str()),
            };
            trials.push(Trial::test(label, move || reexec(&name, mode)).with_ignored_flag(!root));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

/// Runs one case in a fresh process and reads its report.
fn reexec(name: &str, mode: Mode) -> Result<(), Failed> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = Command::new(exe)
        .env(CASE_ENV, name)
        .env(MODE_ENV, mode.as_str())
        .output()
        .map_err(|e| format!("re-executing the test binary: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let Some(report) = line.and_then(|l| serde_json::from_str::<CaseReport>(l).ok()) else {
        return Err(format!(
            "case process gave no result ({}):\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        )
        .into());
    };
    if report.status == Status::Pass && out.status.success() {
        Ok(())
    } else {
        Err(format!("{:?}: {}\nstderr: {stderr}", report.status, report.detail).into())
    }
}
