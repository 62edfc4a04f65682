//! The runner's command line (`vm-tests/run` passes `--dir` and `--guest`,
//! then the user's options).

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::error::{Error, Result};
use crate::qemu::AccelChoice;

/// Boots the pinned kernels of KERNELS under QEMU and runs nsapply's
/// differential corpus in each guest.
///
/// Exit status: 0 when every scenario passed (or is not supported) on
/// every kernel; 1 on a mismatch, a failed check, a guest that did not
/// report or a timeout; 2 on a setup error.
#[derive(Clone, Debug, Parser)]
#[command(name = "vm-run", args_override_self = true)]
pub struct Args {
    /// The vm-tests directory (KERNELS, cache/ unless NSAPPLY_VM_CACHE is set)
    #[arg(long, value_name = "VM_TESTS_DIR")]
    pub dir: PathBuf,
    /// The static guest binary, /init of the initramfs
    #[arg(long, value_name = "GUEST_BINARY", required_unless_present = "list")]
    pub guest: Option<PathBuf>,
    /// Only these pins of KERNELS (comma-separated or repeated; default: all)
    #[arg(long = "kernel", value_name = "NAME[,NAME]", value_delimiter = ',', action = clap::ArgAction::Append)]
    pub kernels: Vec<String>,
    /// Boots at a time (default 1: one boot with every CPU)
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub jobs: usize,
    /// Wall-clock limit per boot, in seconds
    #[arg(long = "timeout", value_name = "SECS", default_value_t = 300)]
    pub timeout_secs: u64,
    /// Guest CPUs; the guest runs N cases at a time (default: the CPUs
    /// left per boot, at least 1)
    #[arg(long, value_name = "N")]
    pub smp: Option<usize>,
    /// Only these scenarios (comma-separated; default: the whole corpus)
    #[arg(long, value_name = "A[,B]")]
    pub cases: Option<String>,
    /// Scenarios the guest runs at once (default: its CPUs)
    #[arg(long, value_name = "N")]
    pub guest_jobs: Option<usize>,
    /// The accelerator
    #[arg(long, value_enum, value_name = "ACCEL", default_value_t = AccelChoice::Auto)]
    pub accel: AccelChoice,
    /// Succeed only if some model trace differs from the kernel's (the
    /// planted check)
    #[arg(long)]
    pub expect_mismatch: bool,
    /// Cache the initramfs as `N-<hash>.cpio`
    #[arg(long, value_name = "N", default_value = "guest")]
    pub initramfs_name: String,
    /// Fetch and extract the kernels, build the initramfs, boot nothing
    #[arg(long)]
    pub fetch_only: bool,
    /// Print the pins and exit
    #[arg(long)]
    pub list: bool,
}

impl Args {
    /// The arguments made ready to use: `--dir` and `--guest` absolute (apt
    /// and dpkg-deb run in other directories), `--jobs`, `--smp` and
    /// `--guest-jobs` at least 1 (0 means 1, as it always has).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when `--dir` or `--guest` does not exist.
    pub fn finish(mut self) -> Result<Args> {
        self.dir = fs::canonicalize(&self.dir).map_err(Error::io("--dir", &self.dir))?;
        if let Some(g) = &self.guest {
            self.guest = Some(fs::canonicalize(g).map_err(Error::io("--guest", g))?);
        }
        self.jobs = self.jobs.max(1);
        self.smp = self.smp.map(|n| n.max(1));
        self.guest_jobs = self.guest_jobs.map(|n| n.max(1));
        Ok(self)
    }

    /// The wall-clock limit per boot.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// The guest kernel command line's own options: `nsapply.cases` and
    /// `nsapply.jobs` when asked for, each after a space.
    pub fn guest_options(&self) -> String {
        let mut out = String::new();
        if let Some(c) = &self.cases {
            out.push_str(&format!(" nsapply.cases={c}"));
        }
        if let Some(j) = self.guest_jobs {
            out.push_str(&format!(" nsapply.jobs={j}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> std::result::Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("vm-run").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let a = parse(&["--dir", "d", "--guest", "g"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.dir, PathBuf::from("d"));
        assert_eq!(a.guest, Some(PathBuf::from("g")));
        assert!(a.kernels.is_empty());
        assert_eq!((a.jobs, a.smp, a.guest_jobs), (1, None, None));
        assert_eq!(a.timeout(), Duration::from_secs(300));
        assert_eq!(a.accel, AccelChoice::Auto);
        assert_eq!(a.initramfs_name, "guest");
        assert!(!a.expect_mismatch && !a.fetch_only && !a.list);
        assert_eq!(a.guest_options(), "");
    }

    #[test]
    fn every_flag_the_scripts_pass() {
        // vm-tests/run, vm-tests/planted/check, .ci/run, .github/workflows/vm.yml.
        let a = parse(&[
            "--dir",
            "/x/vm-tests",
            "--guest",
            "/t/nsapply-vm-guest-planted",
            "--kernel",
            "6.1-generic,6.1-cloud",
            "--kernel",
            "7.2-cloud",
            "--initramfs-name",
            "planted",
            "--expect-mismatch",
            "--jobs",
            "2",
            "--timeout",
            "60",
            "--smp",
            "0",
            "--cases",
            "creates_user,example_user",
            "--guest-jobs",
            "3",
            "--accel",
            "tcg",
            "--fetch-only",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.kernels, ["6.1-generic", "6.1-cloud", "7.2-cloud"]);
        assert_eq!(a.initramfs_name, "planted");
        assert!(a.expect_mismatch && a.fetch_only);
        assert_eq!((a.jobs, a.timeout_secs, a.smp), (2, 60, Some(0)));
        assert_eq!(a.accel, AccelChoice::Tcg);
        assert_eq!(
            a.guest_options(),
            " nsapply.cases=creates_user,example_user nsapply.jobs=3"
        );
    }

    #[test]
    fn guest_is_required_unless_listing() {
        assert!(parse(&["--dir", "d"]).is_err());
        assert!(parse(&["--guest", "g"]).is_err());
        assert!(parse(&["--dir", "d", "--list"]).is_ok_and(|a| a.list && a.guest.is_none()));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for bad in [
            &["--dir", "d", "--guest", "g", "--accel", "hvf"][..],
            &["--dir", "d", "--guest", "g", "--jobs", "two"],
            &["--dir", "d", "--guest", "g", "--bogus"],
            &["--dir", "d", "--guest", "g", "--timeout"],
        ] {
            let e = parse(bad).err().map(|e| e.exit_code());
            assert_eq!(e, Some(2), "{bad:?}");
        }
    }

    #[test]
    fn the_last_of_a_repeated_option_wins() {
        let a = parse(&[
            "--dir", "d", "--guest", "g", "--jobs", "3", "--jobs", "1", "--cases", "a", "--cases",
            "b",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.jobs, 1);
        assert_eq!(a.cases.as_deref(), Some("b"));
    }

    #[test]
    fn finish_makes_paths_absolute_and_counts_at_least_one() {
        let here = env!("CARGO_MANIFEST_DIR");
        let a = parse(&[
            "--dir",
            here,
            "--guest",
            "Cargo.toml",
            "--jobs",
            "0",
            "--smp",
            "0",
            "--guest-jobs",
            "0",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let a = Args {
            guest: Some(PathBuf::from(here).join("Cargo.toml")),
            ..a
        }
        .finish()
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(a.dir.is_absolute());
        assert_eq!((a.jobs, a.smp, a.guest_jobs), (1, Some(1), Some(1)));
        let missing = parse(&["--dir", "/nonexistent/vm-tests", "--list"]).map(Args::finish);
        let e = missing.ok().and_then(|r| r.err()).map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.starts_with("--dir /nonexistent/vm-tests: ")));
    }
}
