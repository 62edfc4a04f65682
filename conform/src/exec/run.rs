//! The runner of an exec case ([`super`]): the container started
//! detached, nsapply's exec target for its init, `RUNTIME exec` under
//! strace, and the clean-up on every path.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use nsapply::kind::Kind;
use nsapply::syscall::process::Pidfd;
use nsapply_harness::host;

use crate::case::{self, Case, Reference};
use crate::verdict::{Difference, Verdict};
use crate::{
    bundle, case_scratch, error_line, exec, mask_bracketed_numbers, observe, strace, CaseResult,
    ConformError, Runtime, Session,
};

impl Session {
    /// Runs one exec case on one runtime ([`exec`]): its world and bundle
    /// as for any case, the container started detached (`RUNTIME run -d`,
    /// not traced), its init's pid from `RUNTIME state`, nsapply's exec
    /// plan for that process ([`nsapply::exec::resolve`]) and its
    /// namespaces, then `RUNTIME exec ID COMMAND` under strace, judged by
    /// [`exec::judge`]. The container is deleted on every path out of here
    /// ([`Started`]), and its init must be gone afterwards.
    pub(crate) fn run_exec_case(
        &self,
        rt: &Runtime,
        case: &Case,
    ) -> Result<CaseResult, ConformError> {
        let fail = |message: String| ConformError::Exec {
            runtime: rt.name.clone(),
            case: case.name.clone(),
            message,
        };
        self.enter_runtime_namespace(rt, &case.name)?;
        let (scratch, world_dir, inst) = case_scratch(case).map_err(&fail)?;
        let id = format!("nsapply-conform-{}-{}", std::process::id(), case.name);
        let config = bundle::config_running(&inst.linux, &exec::init_args(&id));
        if let Reference::Reject { code, message, .. } = case::reference(&config, &inst.world) {
            return Err(fail(format!(
                "nsapply refuses the container's config ({code}): {message}"
            )));
        }
        let (realized, bundle_dir) = self
            .world_and_bundle(rt, case, &scratch, &inst, &config)
            .map_err(&fail)?;
        let state = scratch.join("state");
        let trace_path = scratch.join("trace");
        let stable = |s: &str, pid: Option<i32>| {
            let s = mask_bracketed_numbers(s)
                .replace(&world_dir.display().to_string(), case::WORLD_PLACEHOLDER)
                .replace(&bundle_dir.display().to_string(), "${BUNDLE}")
                .replace(&scratch.path().display().to_string(), "${SCRATCH}")
                .replace(&id, "${ID}");
            match pid {
                Some(pid) => s.replace(&format!("/proc/{pid}/"), "/proc/${PID}/"),
                None => s,
            }
        };

        // From here on the container may exist.
        let mut container = Started {
            session: self,
            rt,
            state: &state,
            id: &id,
            init: None,
            finished: false,
        };
        let id_arg = OsStr::new(&id);
        let start = self
            .run_runtime(
                rt,
                &state,
                &[
                    OsStr::new("run"),
                    OsStr::new("-d"),
                    OsStr::new("--bundle"),
                    bundle_dir.as_os_str(),
                    id_arg,
                ],
                None,
                &bundle_dir,
                &scratch.join("start.stdout"),
            )
            .map_err(&fail)?;
        if start.timed_out || !start.status.is_some_and(|s| s.success()) {
            // Whatever a failed start left (maybe nothing: then the delete
            // fails, which is fine).
            let _ = container.finish();
            let verdict = Verdict::Differs(vec![if start.timed_out {
                Difference::TimedOut
            } else {
                Difference::Exec(exec::ExecDifference::NotStarted {
                    message: error_line(&start.stderr),
                })
            }]);
            return Ok(CaseResult {
                case: case.name.clone(),
                reference: "exec (no container to join)".to_owned(),
                summary: stable(&verdict.summary(), None),
                message: stable(&error_line(&start.stderr), None),
                verdict,
                timed_out: start.timed_out,
                took: start.took,
            });
        }
        let pid = self
            .init_pid(rt, &state, &id, scratch.path())
            .map_err(&fail)?;
        container.init = Some(
            Pidfd::open(pid)
                .map_err(|e| fail(format!("pidfd_open({pid}) of the container's init: {e}")))?,
        );
        let target = nsapply::exec::resolve(pid, None)
            .map_err(|e| fail(format!("nsapply's exec target: {e} ({})", e.code())))?;
        let plan = target
            .plan()
            .map_err(|e| fail(format!("nsapply's exec plan: {e} ({})", e.code())))?;
        let init = host::ns_inodes(Some(pid), false)
            .map_err(|e| fail(format!("reading /proc/{pid}/ns: {e}")))?;
        let init: BTreeMap<Kind, u64> = Kind::ALL
            .into_iter()
            .map(|k| (k, init[k.index()]))
            .collect();
        let script = observe::exec_script();
        let run = self
            .run_runtime(
                rt,
                &state,
                &[
                    OsStr::new("exec"),
                    id_arg,
                    OsStr::new(bundle::CONTAINER_PROGRAM),
                    OsStr::new("sh"),
                    OsStr::new("-c"),
                    OsStr::new(&script),
                ],
                Some(&trace_path),
                &bundle_dir,
                &scratch.join("stdout"),
            )
            .map_err(&fail)?;
        container.finish().map_err(&fail)?;
        drop(realized);
        let record = exec::ExecRecord {
            pid,
            kinds: target.kinds,
            init: init
                .iter()
                .map(|(k, i)| (k.spec_name().to_owned(), *i))
                .collect(),
        };
        if self.options.bundle.is_some() {
            // Kept for inspection and for decoder fixtures.
            for (from, to) in [
                (&trace_path, "strace.txt"),
                (&scratch.join("stdout"), "stdout.txt"),
                (&scratch.join("stderr"), "stderr.txt"),
            ] {
                let _ = fs::copy(from, bundle_dir.join(to));
            }
            let text = serde_json::to_string_pretty(&record).unwrap_or_default();
            let _ = fs::write(bundle_dir.join("exec.json"), text + "\n");
        }

        let trace_text = fs::read_to_string(&trace_path)
            .map_err(|e| fail(format!("reading the trace {}: {e}", trace_path.display())))?;
        let events = strace::decode(&trace_text).map_err(|source| ConformError::Decode {
            case: case.name.clone(),
            path: trace_path.clone(),
            source,
        })?;
        let activity = observe::activity(&events, bundle::CONTAINER_PROGRAM, &BTreeSet::new());
        let view = observe::container_view(&run.stdout);
        let view = (!view.inodes.is_empty()).then_some(view);
        let message = if run.timed_out {
            format!("timed out after {}s", self.options.timeout.as_secs())
        } else {
            error_line(&run.stderr)
        };
        let seen = exec::ExecObserved {
            activity,
            view,
            success: run.status.is_some_and(|s| s.success()) && !run.timed_out,
            timed_out: run.timed_out,
            message: message.clone(),
            init,
        };
        let verdict = exec::judge(&plan, &seen);
        Ok(CaseResult {
            case: case.name.clone(),
            reference: exec::reference_name(&plan),
            summary: stable(&verdict.summary(), Some(pid)),
            message: if seen.success {
                String::new()
            } else {
                stable(&message, Some(pid))
            },
            verdict,
            timed_out: run.timed_out,
            took: start.took + run.took,
        })
    }

    /// The pid of container `id`'s init: `RUNTIME state ID`'s `pid`.
    fn init_pid(
        &self,
        rt: &Runtime,
        state: &Path,
        id: &str,
        scratch: &Path,
    ) -> Result<i32, String> {
        let out = self.run_runtime(
            rt,
            state,
            &[OsStr::new("state"), OsStr::new(id)],
            None,
            scratch,
            &scratch.join("state.stdout"),
        )?;
        let what = format!("{} state {id}", rt.name);
        if out.timed_out || !out.status.is_some_and(|s| s.success()) {
            return Err(format!("{what}: {}", error_line(&out.stderr)));
        }
        let state: serde_json::Value =
            serde_json::from_str(&out.stdout).map_err(|e| format!("{what}: not JSON: {e}"))?;
        state
            .get("pid")
            .and_then(serde_json::Value::as_i64)
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{what}: no pid in {}", out.stdout.trim()))
    }
}

/// A container started for an exec case: `RUNTIME delete --force` when
/// it goes out of scope, on every path ([`Started::finish`] on the normal
/// one, which also says when the clean-up failed).
struct Started<'a> {
    session: &'a Session,
    rt: &'a Runtime,
    state: &'a Path,
    id: &'a str,
    /// The init, once its pid is known: it must be gone after the delete.
    init: Option<Pidfd>,
    /// Whether [`Started::finish`] ran.
    finished: bool,
}

impl Started<'_> {
    /// Deletes the container and waits for its init to be gone; an init
    /// that `delete --force` left running is killed through its pidfd
    /// (the container's pid namespace ends with it).
    fn finish(&mut self) -> Result<(), String> {
        self.finished = true;
        let deleted = self.session.delete_checked(self.rt, self.state, self.id);
        let Some(init) = self.init.take() else {
            return deleted;
        };
        let gone = |init: &Pidfd| {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if init.has_exited() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        };
        if gone(&init) {
            return deleted;
        }
        let killed = init.send_signal(nix::sys::signal::Signal::SIGKILL);
        let left = format!(
            "the container's init (pid {}) outlived {} delete --force",
            init.pid(),
            self.rt.name
        );
        match (killed, gone(&init)) {
            (Ok(()), true) => Err(format!("{left}; killed")),
            (Ok(()), false) => Err(format!("{left}; SIGKILL did not end it")),
            (Err(e), _) => Err(format!("{left}; SIGKILL: {e}")),
        }
    }
}

impl Drop for Started<'_> {
    fn drop(&mut self) {
        // An early return (an error): clean up anyway, the error is the
        // one being returned.
        if !self.finished {
            let _ = self.finish();
        }
    }
}
