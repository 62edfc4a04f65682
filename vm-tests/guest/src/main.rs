//! `/init` of the VM tests: runs nsapply's differential corpus
//! ([`nsapply_harness::differential`]) on the kernel it was booted with and reports
//! over the serial console, one line per scenario. Every line it prints is
//! a [`GuestLine`] of [`nsapply_harness::vm`] (the host parses them with
//! the same type):
//!
//! ```text
//! NSAPPLY-VM-BEGIN {"cases":100,"kernel":"6.1.0-50-amd64","problems":[]}
//! NSAPPLY-VM-CASE {"case":"creates_user","checks_passed":true,"detail":"","equal":true,"kernel":"6.1.0-50-amd64","mode":"root","ms":21,...}
//! NSAPPLY-VM-DONE {"cases_ms":2100,"console_ms":200,"cpu_ms":{"idle":100,"system":3200,"user":1000,...},"fail":0,"kernel":"6.1.0-50-amd64","pass":100,...}
//! ```
//!
//! `cases_ms` is the time from the first case to the last report,
//! `console_ms` the part of it pid 1 spent writing lines to the console,
//! and `cpu_ms` what the CPUs did meanwhile: where a slow verdict's time
//! went.
//!
//! As pid 1 it mounts what the corpus needs (proc, devtmpfs, tmpfs on
//! `/tmp` and `/run`), then runs each case in a fresh process forked from
//! this single-threaded init, one per CPU at a time: a case must start
//! single-threaded and leaves its process changed. A case that fails, panics or dies is a
//! failing line, and the run goes on; the `DONE` line tells the host that
//! the guest finished. Then it reboots, which QEMU's `-no-reboot` turns
//! into an exit.
//!
//! Kernel command line options: `nsapply.probe` (print
//! `NSAPPLY-VM-PROBE-OK` and stop: the host's KVM probe),
//! `nsapply.cases=a,b` (only these cases) and `nsapply.jobs=N` (N cases at
//! a time instead of one per CPU).

use nsapply::syscall::process;
use nsapply_harness::host;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nsapply_harness::differential::{case_names, case_process, run_case, CaseReport, Mode, Status};
use nsapply_harness::vm::{Begin, CaseLine, CpuMs, Done, GuestLine, Probe};

const CASE_ENV: &str = "NSAPPLY_VM_CASE";
const MODE_ENV: &str = "NSAPPLY_VM_MODE";
/// A case taking longer is killed and reported as failing (a case takes
/// well under a second under TCG).
const CASE_TIMEOUT: Duration = Duration::from_secs(30);

fn main() {
    if let Ok(name) = std::env::var(CASE_ENV) {
        // A case process: nothing may start a thread before the case.
        let report = case_process(&name, MODE_ENV);
        std::process::exit(i32::from(report.status == Status::Fail));
    }
    if std::process::id() != 1 {
        eprintln!("nsapply-vm-guest: run as /init of a VM (pid 1), or with {CASE_ENV}=<case>");
        std::process::exit(2);
    }
    init();
    // Keep pid 1 alive if the reboot failed: the host's timeout ends the VM.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Pid 1: mounts, runs every case, prints the summary, reboots.
fn init() {
    let mut problems = Vec::new();
    for (source, target, fstype) in [
        ("proc", "/proc", "proc"),
        ("devtmpfs", "/dev", "devtmpfs"),
        ("tmpfs", "/tmp", "tmpfs"),
        ("tmpfs", "/run", "tmpfs"),
    ] {
        if let Err(e) = mount(source, target, fstype) {
            problems.push(format!("mount {fstype} on {target}: {e}"));
        }
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    // The external rows' model takes this kernel's version (from uname:
    // host::running_kernel, read again by each case) for the rules that
    // differ between kernels (World::on_kernel); say so if it has none.
    match host::running_kernel() {
        Ok(v) => eprintln!("nsapply-vm-guest: the model is Linux {v} ({kernel})"),
        Err(e) => problems.push(format!("the kernel's version for the model: {e}")),
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    if words.contains(&"nsapply.probe") {
        say(&GuestLine::Probe(Probe { kernel }));
        reboot();
        return;
    }
    let only: Option<Vec<&str>> = words
        .iter()
        .find_map(|w| w.strip_prefix("nsapply.cases="))
        .map(|l| l.split(',').collect());
    let mut plan: Vec<(String, Mode)> = Vec::new();
    for mode in Mode::ALL {
        for name in case_names(mode) {
            if only.as_ref().is_none_or(|o| o.contains(&name.as_str())) {
                plan.push((name, mode));
            }
        }
    }
    say(&GuestLine::Begin(Begin {
        kernel: kernel.clone(),
        cases: plan.len(),
        problems,
    }));
    let (mut pass, mut fail, mut unsupported) = (0, 0, 0);
    let mut console = Duration::ZERO;
    let cases_started = Instant::now();
    let cpu_before = cpu_times();
    let jobs = words
        .iter()
        .find_map(|w| w.strip_prefix("nsapply.jobs=")?.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    run_all(&plan, jobs, |mut report, ms| {
        match report.status {
            Status::Pass => {
                pass += 1;
                // On success the detail repeats the model trace as text.
                report.detail.clear();
            }
            Status::Unsupported | Status::NotApplicable => unsupported += 1,
            Status::Fail => fail += 1,
        }
        let line = GuestLine::Case(Box::new(CaseLine {
            kernel: kernel.clone(),
            ms: u64::try_from(ms).unwrap_or(u64::MAX),
            report,
        }));
        let t = Instant::now();
        say(&line);
        console += t.elapsed();
    });
    reap_orphans();
    let uptime: Option<f64> = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|t| t.parse().ok()));
    say(&GuestLine::Done(Done {
        kernel,
        pass,
        fail,
        unsupported,
        uptime,
        cases_ms: millis(cases_started.elapsed()),
        console_ms: millis(console),
        cpu_ms: CpuMs::between(&cpu_before, &cpu_times()),
    }));
    reboot();
}

/// A case running in its own process.
struct Running {
    name: String,
    mode: Mode,
    /// The CPU its processes are pinned to (see [`start`]).
    cpu: usize,
    pid: i32,
    report: File,
    text: Vec<u8>,
    started: Instant,
}

fn failed(name: &str, mode: Mode, detail: String) -> CaseReport {
    CaseReport {
        case: name.to_owned(),
        mode,
        status: Status::Fail,
        equal: None,
        checks_passed: false,
        model_trace: None,
        kernel_trace: None,
        detail,
    }
}

/// Starts one case in a fresh process: a fork of this single-threaded
/// init (cheaper than an exec under TCG), which writes its report to a pipe.
///
/// The case's process and every process it forks are pinned to `cpu`, so
/// that two cases run side by side on two CPUs without their processes
/// crossing between them: under TCG a cross-CPU wakeup or TLB shootdown
/// means kicking another QEMU thread. Alternated boots of 6.1-cloud: the
/// corpus took 2.35 s unpinned, 2.16 s pinned (medians of 6).
fn start(name: &str, mode: Mode, cpu: usize) -> Result<Running, String> {
    let (r, w) = process::pipe().map_err(|e| format!("pipe: {e}"))?;
    let case = name.to_owned();
    let pid = host::fork_with(move || {
        pin_to_cpu(cpu);
        let report = run_case(&case, mode);
        let line = serde_json::to_string(&report).unwrap_or_default();
        let mut w = w;
        i32::from(w.write_all(line.as_bytes()).is_err())
    })
    .map_err(|e| format!("fork: {e}"))?;
    Ok(Running {
        name: name.to_owned(),
        mode,
        cpu,
        pid,
        report: r,
        text: Vec::new(),
        started: Instant::now(),
    })
}

/// Runs every case of `plan`, `jobs` at a time (one per CPU), and hands
/// each report, with its time in milliseconds, to `done` as it comes.
/// The cases do not share paths: each has its own scratch directory and
/// mount namespace.
///
/// A case's slot is refilled as soon as its report is in, before the
/// report is printed and before its process is reaped: printing a line
/// on the serial console takes a few milliseconds, and the exit of a case
/// process waits for its mount namespace to be torn down (an RCU grace
/// period). Both used to delay the next case.
fn run_all(plan: &[(String, Mode)], jobs: usize, mut done: impl FnMut(CaseReport, u128)) {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let mut queue = plan.iter();
    let mut running: Vec<Running> = Vec::new();
    // Case processes that reported and are still exiting.
    let mut exiting: Vec<i32> = Vec::new();
    loop {
        refill(&mut running, &mut queue, jobs, cpus, &mut done);
        if running.is_empty() {
            break;
        }
        let mut fds: Vec<libc::pollfd> = running
            .iter()
            .map(|r| libc::pollfd {
                fd: r.report.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let nfds = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
        // SAFETY: `fds` is a valid array of `nfds` pollfd structs, owned
        // here and alive across the call; each fd is an open pipe end.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), nfds, 1000) };
        if n < 0 {
            continue; // EINTR
        }
        let mut finished = Vec::new();
        let mut timed_out = Vec::new();
        for (i, fd) in fds.iter().enumerate() {
            if fd.revents == 0 {
                if running[i].started.elapsed() > CASE_TIMEOUT {
                    // A hung case must not hang the run: it fails alone.
                    process::kill_and_reap(running[i].pid);
                    timed_out.push(i);
                    finished.push(i);
                }
                continue;
            }
            let mut chunk = [0u8; 16384];
            match running[i].report.read(&mut chunk) {
                Ok(0) | Err(_) => finished.push(i),
                Ok(k) => running[i].text.extend_from_slice(&chunk[..k]),
            }
        }
        let mut ended = Vec::new();
        for i in finished.into_iter().rev() {
            ended.push((running.remove(i), timed_out.contains(&i)));
        }
        refill(&mut running, &mut queue, jobs, cpus, &mut done);
        for (r, timed_out) in ended.into_iter().rev() {
            let ms = r.started.elapsed().as_millis();
            if timed_out {
                let why = format!("timed out after {}s", CASE_TIMEOUT.as_secs());
                done(failed(&r.name, r.mode, why), ms);
                continue;
            }
            let text = String::from_utf8_lossy(&r.text);
            let report = match serde_json::from_str::<CaseReport>(&text) {
                Ok(report) => {
                    exiting.push(r.pid);
                    report
                }
                Err(e) => {
                    // Only a case without a report needs its exit status.
                    let status = process::wait(r.pid).map(process::Exit::status);
                    failed(
                        &r.name,
                        r.mode,
                        format!("the case process gave no report (exit {status:?}; {e}): {text:?}"),
                    )
                }
            };
            done(report, ms);
        }
        exiting.retain(|&pid| !reaped(pid));
    }
    for pid in exiting {
        let _ = process::wait(pid).map(process::Exit::status);
    }
}

/// Starts cases from `queue` until `jobs` run, each on the CPU with the
/// fewest running cases; a case that cannot start is reported failed.
fn refill<'a>(
    running: &mut Vec<Running>,
    queue: &mut impl Iterator<Item = &'a (String, Mode)>,
    jobs: usize,
    cpus: usize,
    done: &mut impl FnMut(CaseReport, u128),
) {
    while running.len() < jobs.max(1) {
        let Some((name, mode)) = queue.next() else {
            return;
        };
        let cpu = (0..cpus)
            .min_by_key(|c| running.iter().filter(|r| r.cpu == *c).count())
            .unwrap_or(0);
        match start(name, *mode, cpu) {
            Ok(r) => running.push(r),
            Err(e) => done(failed(name, *mode, e), 0),
        }
    }
}

/// Whether the child `pid` has exited, reaping it if so (never blocks). A
/// pid that is no child (already reaped) counts as exited.
fn reaped(pid: i32) -> bool {
    !matches!(process::try_wait(pid), Ok(None))
}

/// Pins the calling process (and so everything it forks) to `cpu`. Best
/// effort: a failure only costs speed.
fn pin_to_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is plain data for which all-zero is the empty set;
    // CPU_SET writes into the set we own (indexing its array, bounds
    // checked: a cpu past 1023 would panic, not corrupt), and
    // sched_setaffinity reads that set with its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The first line of `/proc/stat`: time spent by all CPUs in user, nice,
/// system, idle, iowait, irq and softirq, in clock ticks (proc(5)).
fn cpu_times() -> Vec<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .take(7)
                    .filter_map(|t| t.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// A duration in whole milliseconds, for the `DONE` line.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One guest line on the console, written whole (one write, newline
/// included): the only way pid 1 prints. (A case process that panics
/// still has its message on the console; the host keeps it as console
/// output, and the case's missing report fails it.)
fn say(line: &GuestLine) {
    let line = format!("{}\n", line.to_line());
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

fn mount(source: &str, target: &str, fstype: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(target)?;
    let c = |s: &str| CString::new(s).map_err(std::io::Error::other);
    let (source, target, fstype) = (c(source)?, c(target)?, c(fstype)?);
    // SAFETY: the three strings are valid NUL-terminated C strings that
    // live across the call; a null data pointer means no options.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Helpers of a case that outlived it are reparented to pid 1: reap them
/// once no case runs (a case's own process is waited for by its pid).
fn reap_orphans() {
    while process::reap_any().is_some() {}
}

fn reboot() {
    // SAFETY: sync and reboot take no pointers; RB_AUTOBOOT restarts the
    // machine, which QEMU's -no-reboot turns into an exit.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_AUTOBOOT);
    }
}
