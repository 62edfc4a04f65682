//! The host side of nsapply's VM tests (`vm-tests/run` calls it), one
//! module per job, wired here:
//!
//! 1. [`pins`]: reads the pins of `vm-tests/KERNELS` (apt sources and
//!    kernel packages);
//! 2. [`fetch`]: fetches each pinned kernel that is not cached, with
//!    `apt-get download` through a private apt configuration under the
//!    cache (the host's apt sources are not used nor changed) and
//!    `dpkg-deb -x`;
//! 3. [`vmlinux`]: extracts the uncompressed `vmlinux` from the bzImage
//!    (the payload the setup header points at, decompressed by `xz`, `lz4`,
//!    `zstd` or `gzip` after its magic; the result must be a complete
//!    x86-64 ELF), so QEMU boots it through the PVH entry point;
//! 4. [`initramfs`]: writes the initramfs (cpio newc: the guest binary as
//!    `/init`, `/dev/console`, empty directories), cached per guest binary;
//! 5. [`qemu`]: probes KVM once per host boot (a guest must actually report
//!    under KVM), else uses TCG; boots every selected kernel (`--jobs` at a
//!    time) with a wall-clock timeout and reads the guest's lines
//!    ([`nsapply_harness::vm::GuestLine`]) from the serial console;
//! 6. [`report`]: prints the table kernel × scenario and the
//!    boot-to-verdict time per kernel, and decides the verdict.
//!
//! [`cli`] holds the arguments, [`error`] the setup errors.
//!
//! Exit status: 0 when every scenario passed (or is not supported) on every
//! kernel; 1 on a mismatch, a failed check, a guest that did not report or
//! a timeout (with the console tail); 2 on a setup error. With
//! `--expect-mismatch` (the planted check) it is 0 only when some scenario's
//! model trace differs from the kernel's.

mod cli;
mod error;
mod fetch;
mod initramfs;
mod pins;
mod qemu;
mod report;
mod vmlinux;

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use crate::cli::Args;
use crate::error::Result;
use crate::fetch::Apt;
use crate::pins::Pins;
use crate::qemu::{Accel, KERNEL_ARGS};
use crate::report::Settings;

fn main() -> ExitCode {
    // Usage errors exit with status 2 (clap's), --help with 0.
    let args = match Args::parse().finish() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("vm-tests: {e}");
            ExitCode::from(2)
        }
    }
}

/// The whole run: whether it passed.
fn run(args: &Args) -> Result<bool> {
    let pins = Pins::read(&args.dir.join("KERNELS"))?;
    if args.list {
        print!("{}", pins.listing());
        return Ok(true);
    }
    let selected = pins.select(&args.kernels)?;
    // NSAPPLY_VM_CACHE puts the cache outside the clone, so fresh clones
    // (CI) reuse the kernels instead of fetching them again.
    let cache = std::env::var_os("NSAPPLY_VM_CACHE")
        .filter(|c| !c.is_empty())
        .map_or_else(|| args.dir.join("cache"), PathBuf::from);
    let t0 = Instant::now();
    let mut apt = Apt::new(cache.join("apt"));
    let mut kernels = Vec::new();
    for pin in &selected {
        kernels.push(fetch::prepare_kernel(pin, &cache, &mut apt, &pins.sources)?);
    }
    // `--guest` is required unless `--list`, which returned above.
    let guest = args.guest.clone().unwrap_or_default();
    let initramfs = initramfs::prepare(&guest, &cache, &args.initramfs_name)?;
    let prepared = t0.elapsed();
    if args.fetch_only {
        eprintln!(
            "vm-tests: {} kernels and the initramfs ready in {:.1}s",
            kernels.len(),
            prepared.as_secs_f64()
        );
        return Ok(true);
    }
    let Some(first) = kernels.first() else {
        // KERNELS pins nothing: no boot, a failed run (as the table says).
        let verdict = report::render(&[], &settings(args, Accel::Tcg, 1, prepared, prepared));
        print!("{}", verdict.text);
        return Ok(verdict.ok);
    };
    let accel = Accel::choose(args.accel, first, &initramfs, &cache);
    // The host's CPUs, shared by the boots that run at once.
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let smp = args
        .smp
        .unwrap_or_else(|| (cpus / args.jobs.min(kernels.len()).max(1)).max(1));
    let append = format!("{KERNEL_ARGS} quiet loglevel=3{}", args.guest_options());
    eprintln!(
        "vm-tests: booting {} kernels, {} at a time, {} CPUs each, accel {}, timeout {}s",
        kernels.len(),
        args.jobs,
        smp,
        accel.as_str(),
        args.timeout_secs
    );
    let t1 = Instant::now();
    let boots = qemu::boot_all(
        &kernels,
        &initramfs,
        (accel, smp),
        &append,
        args.jobs,
        args.timeout(),
    );
    let matrix = t1.elapsed();
    // The whole console of each boot, for a closer look.
    let logs = cache.join("logs");
    let _ = fs::create_dir_all(&logs);
    for b in &boots {
        let _ = fs::write(
            logs.join(format!("{}.log", b.kernel.name)),
            b.full.join("\n") + "\n",
        );
        if let Some(first) = &b.first {
            let _ = fs::write(
                logs.join(format!("{}.first.log", b.kernel.name)),
                first.full.join("\n") + "\n",
            );
        }
    }
    let verdict = report::render(&boots, &settings(args, accel, smp, prepared, matrix));
    print!("{}", verdict.text);
    Ok(verdict.ok)
}

/// The report's settings for this run.
fn settings(
    args: &Args,
    accel: Accel,
    smp: usize,
    prepared: std::time::Duration,
    matrix: std::time::Duration,
) -> Settings {
    Settings {
        accel,
        jobs: args.jobs,
        smp,
        timeout: args.timeout(),
        expect_mismatch: args.expect_mismatch,
        prepared,
        matrix,
    }
}
