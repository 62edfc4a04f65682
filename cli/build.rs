//! The link layout of the `nsapply` binary (issue 15, goal 2: peak RSS;
//! harness/benches/profile-notes.md, "Peak RSS", has the figures).
//!
//! `nsapply run`'s resident memory is mostly the binary's own pages that
//! page faults map: the kernel maps 64 KiB around every faulting address
//! in a file mapping, so the few hundred KiB of code a run executes, spread
//! over a 3 MB text, made 2.1 MB of it resident. Three link options change
//! that, and nothing else (the same code, the same ASLR):
//!
//! * `--symbol-ordering-file=link-order.txt`: the functions a run executes
//!   (sampled by `harness/benches/link-order`) are laid out first, next to
//!   each other. A name the build no longer has is skipped (it only costs
//!   the gain; `link-order --check` says how much of the file still
//!   matches).
//! * `-z pack-relative-relocs`: the 8,700 relative relocations as RELR, a
//!   few KiB instead of 200 KiB of `.rela.dyn` read at start-up. The binary
//!   then needs glibc 2.36 or later (`GLIBC_ABI_DT_RELR`), so only where
//!   the glibc it is built against has it.
//! * the unwinder linked in statically (`libgcc_eh.a`, what gcc's
//!   `-static-libgcc` links) before std asks for `libgcc_s.so.1`, which
//!   `--as-needed` then leaves out: one shared library less to load and
//!   map (96 KiB resident), and no `libgcc_s` constructor, whose `cpuid`
//!   traps on a VM. Panics unwind as before (`run` catches them in its
//!   forked processes).
//!
//! All three only for a release build of the host's own
//! x86_64-unknown-linux-gnu target with rustc's own lld (the default linker there since Rust 1.90):
//! another linker may not know the options, and a debug build is not what
//! runs. `NSAPPLY_LINK_LAYOUT=0` leaves the link as cargo makes it.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-env-changed=NSAPPLY_LINK_LAYOUT");
    let rustc = rustc_version();
    if !applies(rustc.as_deref()) {
        return;
    }
    // The names are the mangled names one rustc gives: made for another,
    // few of them match (cli/tests/cli.rs checks the lockfile and the
    // profile, which are the change's; the rustc is the machine's).
    let order = std::fs::read_to_string("link-order.txt").unwrap_or_default();
    let made_for = order.lines().find_map(|l| l.strip_prefix("# made for: "));
    if let (Some(made_for), Some(rustc)) = (made_for, rustc) {
        if !made_for.starts_with(&format!("{rustc};")) {
            println!(
                "cargo:warning=cli/link-order.txt was made for {}, this is {rustc}: \
                 few of its functions are laid out (harness/benches/link-order \
                 regenerates it)",
                made_for.split(';').next().unwrap_or_default()
            );
        }
    }
    let dir = env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={dir}/link-order.txt");
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    // Before std's `-lgcc_s` on the link line (a crate's own libraries
    // come before its dependencies'), so the unwinder comes from here.
    println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    if glibc_has_relr() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// A release build, for this host, linked by rustc's own lld (`rustc`:
/// what the rustc that builds this says of itself).
fn applies(rustc: Option<&str>) -> bool {
    let var = |k: &str| env::var(k).unwrap_or_default();
    if var("NSAPPLY_LINK_LAYOUT") == "0" || var("PROFILE") != "release" {
        return false;
    }
    let target = var("TARGET");
    if target != "x86_64-unknown-linux-gnu" || var("HOST") != target {
        return false;
    }
    // A linker chosen by the user (RUSTC_LINKER: cargo's `linker`
    // setting) or linker flags of their own: theirs to lay out.
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    if !var("RUSTC_LINKER").is_empty()
        || ["linker", "fuse-ld", "link-self-contained"]
            .iter()
            .any(|f| flags.contains(f))
    {
        return false;
    }
    rustc.and_then(rustc_minor).is_some_and(|minor| minor >= 90)
}

/// What the rustc that builds this says of itself (`rustc 1.95.0 (...)`).
fn rustc_version() -> Option<String> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let out = Command::new(rustc).arg("--version").output().ok()?;
    Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
}

/// Its minor version (`rustc 1.95.0 (...)`: 95).
fn rustc_minor(text: &str) -> Option<u32> {
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    (parts.next()? == "1").then_some(())?;
    parts.next()?.parse().ok()
}

/// The host's glibc (the one linked against: `HOST` is the target) is 2.36
/// or later: `getconf GNU_LIBC_VERSION` says `glibc 2.36`.
fn glibc_has_relr() -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    matches!((parts.next(), parts.next()), (Some(Some(major)), Some(Some(minor))) if (major, minor) >= (2, 36))
}
