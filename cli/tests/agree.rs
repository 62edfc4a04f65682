//! `nsapply simulate` in the world of this machine and `nsapply run` end
//! the same, error code and errno (issue 14): for each situation where the
//! answer depends on the host (a clock's current value, a namespace limit,
//! the one-page map text, a path too long, a chroot), the same config is
//! simulated (`--world host`, or a world file saying what `--world host`
//! cannot see) and run, and both traces are compared.
//!
//! `run` needs root: without it every case is reported ignored, with the
//! reason, never as passed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

fn main() {
    let args = Arguments::from_args();
    let root = nix::unistd::geteuid().is_root();
    let cases: [(&str, Case); 7] = [
        (
            "boottime_minus_a_day_beyond_uptime_is_erange",
            boottime_beyond_uptime,
        ),
        (
            "an_offset_past_ktime_sec_max_half_is_erange",
            offset_past_half_ktime_max,
        ),
        (
            "an_offset_no_clock_can_take_is_refused_by_validation",
            offset_beyond_any_clock,
        ),
        (
            "a_map_text_of_a_page_or_more_is_einval_with_its_errno",
            map_text_of_a_page,
        ),
        (
            "a_path_component_over_name_max_is_enametoolong",
            path_component_too_long,
        ),
        ("a_namespace_limit_of_zero_is_enospc", limit_of_zero),
        ("unshare_user_in_a_chroot_is_eperm", chrooted),
    ];
    let trials = cases
        .into_iter()
        .map(|(name, f)| {
            Trial::test(name, f)
                .with_ignored_flag(!root)
                .with_kind(if root {
                    ""
                } else {
                    "needs root for nsapply run"
                })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// One case: its body.
type Case = fn() -> Result<(), Failed>;

fn nsapply_bin() -> &'static str {
    env!("CARGO_BIN_EXE_nsapply")
}

/// How a command of nsapply ended: its status, the code of its error line
/// (none on success), and the error of its trace (`null` on success).
#[derive(Debug, PartialEq)]
struct Ending {
    status: i32,
    code: Option<String>,
    errno: Value,
    error_code: Value,
}

fn ending(what: &str, out: &Output, trace: &str) -> Result<Ending, Failed> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = stderr
        .strip_prefix("nsapply: ")
        .and_then(|l| l.split(": ").next())
        .map(str::to_owned);
    let doc: Value = serde_json::from_str(trace)
        .map_err(|e| format!("{what}: the trace is not JSON ({e}): {trace:?}; stderr: {stderr}"))?;
    Ok(Ending {
        status: out.status.code().unwrap_or(-1),
        code,
        errno: doc["error"]["errno"].clone(),
        error_code: doc["error"]["code"].clone(),
    })
}

struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Scratch {
        Scratch(tempfile::tempdir().expect("a temporary directory"))
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// Simulates `config` in `world` (`host` or a file) and runs it (`run`
/// wrapped in `wrap`, a command line prefix such as a chroot), and checks
/// that both end with `want_code` and the errno `want_errno`.
fn agree(
    config: &Path,
    world: &str,
    wrap: &[&str],
    want_code: &str,
    want_errno: Option<&str>,
) -> Result<(), Failed> {
    let scratch = Scratch::new();
    let sim = Command::new(nsapply_bin())
        .args(["simulate", "--format", "json", "--world", world])
        .arg(config)
        .output()?;
    let sim_trace = if sim.stdout.is_empty() {
        // Refused before any call: the CLI prints no trace; build the
        // same shape from the error line.
        r#"{"error":null}"#.to_owned()
    } else {
        String::from_utf8_lossy(&sim.stdout).into_owned()
    };
    let trace = scratch.path("run.json");
    let mut run = Command::new(wrap.first().copied().unwrap_or(nsapply_bin()));
    if !wrap.is_empty() {
        run.args(&wrap[1..]).arg(nsapply_bin());
    }
    let run = run
        .args(["run", "--trace"])
        .arg(&trace)
        .arg(config)
        .args(["--", "true"])
        .output()?;
    let run_trace = std::fs::read_to_string(&trace).unwrap_or_else(|_| r#"{"error":null}"#.into());
    let s = ending("simulate", &sim, &sim_trace)?;
    let r = ending("run", &run, &run_trace)?;
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    if s.code.as_deref() != Some(want_code) {
        return Err(format!(
            "simulate should fail with {want_code}: {s:?}; stderr: {}",
            stderr(&sim)
        )
        .into());
    }
    if s.code != r.code || s.status != r.status {
        return Err(format!(
            "simulate and run end differently:\n  simulate: {s:?} ({})\n  run:      {r:?} ({})",
            stderr(&sim).trim_end(),
            stderr(&run).trim_end()
        )
        .into());
    }
    let want_errno = want_errno.map_or(Value::Null, |e| Value::String(e.to_owned()));
    // A validation error is refused before any trace exists.
    let traced = s.error_code != Value::Null || r.error_code != Value::Null;
    if traced && (s.errno != want_errno || r.errno != want_errno) {
        return Err(format!(
            "the traces' errno: simulate {}, run {}, want {want_errno}",
            s.errno, r.errno
        )
        .into());
    }
    Ok(())
}

fn config(scratch: &Scratch, namespaces: &str, extra: &str) -> PathBuf {
    scratch.write(
        "config.json",
        &format!(r#"{{"ociVersion":"1.2.0","linux":{{"namespaces":[{namespaces}]{extra}}}}}"#),
    )
}

fn uptime_secs() -> Result<i64, Failed> {
    let text = std::fs::read_to_string("/proc/uptime")?;
    let secs: f64 = text
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("/proc/uptime")?;
    // Truncation is what a whole-second offset needs here.
    #[allow(clippy::cast_possible_truncation)]
    Ok(secs as i64)
}

/// A boottime offset of minus (uptime + one day): `now + offset` below 0.
fn boottime_beyond_uptime() -> Result<(), Failed> {
    let s = Scratch::new();
    let secs = -(uptime_secs()? + 86_400);
    let cfg = config(
        &s,
        r#"{"type":"time"}"#,
        &format!(r#","timeOffsets":{{"boottime":{{"secs":{secs},"nanosecs":0}}}}"#),
    );
    agree(&cfg, "host", &[], "time-offsets-failed", Some("ERANGE"))
}

/// `4611686018` seconds: above `KTIME_SEC_MAX / 2` once the clock is past
/// its first second (time_namespaces(7), `proc_timens_set_offset`).
fn offset_past_half_ktime_max() -> Result<(), Failed> {
    let s = Scratch::new();
    let cfg = config(
        &s,
        r#"{"type":"time"}"#,
        r#","timeOffsets":{"monotonic":{"secs":4611686018,"nanosecs":0}}"#,
    );
    agree(&cfg, "host", &[], "time-offsets-failed", Some("ERANGE"))
}

/// LTP timens01's `-9223372036`: beyond `KTIME_SEC_MAX / 2` whatever the
/// clock says, refused by validation in both (no errno: no call made).
fn offset_beyond_any_clock() -> Result<(), Failed> {
    let s = Scratch::new();
    let cfg = config(
        &s,
        r#"{"type":"time"}"#,
        r#","timeOffsets":{"monotonic":{"secs":-9223372036,"nanosecs":0}}"#,
    );
    agree(&cfg, "host", &[], "invalid-time-offset", None)
}

/// 200 mappings whose text is over one page: `map_write` refuses it with
/// EINVAL, and the trace of the sync point says so (it had no errno once).
fn map_text_of_a_page() -> Result<(), Failed> {
    let s = Scratch::new();
    let lines: Vec<String> = (0..200u32)
        .map(|i| {
            let id = 1_000_000_000 + i * 10;
            format!(r#"{{"containerID":{id},"hostID":{id},"size":1}}"#)
        })
        .collect();
    let maps = lines.join(",");
    let cfg = config(
        &s,
        r#"{"type":"user"},{"type":"uts"}"#,
        &format!(r#","uidMappings":[{maps}],"gidMappings":[{maps}]"#),
    );
    agree(&cfg, "host", &[], "sync-failed", Some("EINVAL"))
}

/// A namespace path with a 300-byte component.
fn path_component_too_long() -> Result<(), Failed> {
    let s = Scratch::new();
    let long = format!("/run/{}", "a".repeat(300));
    let cfg = config(&s, &format!(r#"{{"type":"network","path":"{long}"}}"#), "");
    agree(&cfg, "host", &[], "open-failed", Some("ENAMETOOLONG"))
}

/// In a user namespace of its own (never on the host), this test sets
/// `user.max_uts_namespaces` to 0: `--world host` reads it, and a config
/// that creates a UTS namespace fails with ENOSPC in both.
fn limit_of_zero() -> Result<(), Failed> {
    let s = Scratch::new();
    let cfg = config(&s, r#"{"type":"uts"}"#, "");
    let script = s.write(
        "limit.sh",
        r#"echo 0 > /proc/sys/user/max_uts_namespaces || exit 9; exec "$@""#,
    );
    let wrap = [
        "unshare",
        "--user",
        "--map-root-user",
        "sh",
        script.to_str().ok_or("path")?,
    ];
    // The simulation must see the same limit: run it in such a namespace too.
    let sim = Command::new("unshare")
        .args(["--user", "--map-root-user", "sh"])
        .arg(&script)
        .arg(nsapply_bin())
        .args(["simulate", "--format", "json", "--world", "host"])
        .arg(&cfg)
        .output()?;
    let trace = s.path("run.json");
    let run = Command::new(wrap[0])
        .args(&wrap[1..])
        .arg(nsapply_bin())
        .args(["run", "--trace"])
        .arg(&trace)
        .arg(&cfg)
        .args(["--", "true"])
        .output()?;
    let se = ending("simulate", &sim, &String::from_utf8_lossy(&sim.stdout))?;
    let re = ending(
        "run",
        &run,
        &std::fs::read_to_string(&trace).unwrap_or_default(),
    )?;
    let want = (
        Some("unshare-failed".to_owned()),
        Value::String("ENOSPC".into()),
    );
    if (se.code.clone(), se.errno.clone()) != want || (re.code.clone(), re.errno.clone()) != want {
        return Err(format!(
            "both should end unshare-failed ENOSPC:\n  simulate {se:?} ({})\n  run {re:?} ({})",
            String::from_utf8_lossy(&sim.stderr).trim_end(),
            String::from_utf8_lossy(&run.stderr).trim_end()
        )
        .into());
    }
    Ok(())
}

/// In a chroot (here: the root bind-mounted on a directory, in a mount
/// namespace of its own), unshare(user) is EPERM. `--world host` cannot
/// see a chroot; the world file says it.
fn chrooted() -> Result<(), Failed> {
    let s = Scratch::new();
    let cfg = config(
        &s,
        r#"{"type":"user"},{"type":"uts"}"#,
        r#","uidMappings":[{"containerID":0,"hostID":0,"size":1}],"gidMappings":[{"containerID":0,"hostID":0,"size":1}]"#,
    );
    let world = s.write("world.json", r#"{"caller":{"chroot":true}}"#);
    let jail = s.path("jail");
    std::fs::create_dir(&jail)?;
    let script = s.write(
        "chroot.sh",
        r#"jail=$1; shift; mount --make-rprivate / && mount --rbind / "$jail" && exec chroot "$jail" "$@""#,
    );
    let wrap = [
        "unshare",
        "--mount",
        "sh",
        script.to_str().ok_or("path")?,
        jail.to_str().ok_or("path")?,
    ];
    agree(
        &cfg,
        world.to_str().ok_or("path")?,
        &wrap,
        "unshare-failed",
        Some("EPERM"),
    )
}
