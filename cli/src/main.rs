//! `nsapply`: validate, plan, simulate and apply the `linux.namespaces` of an
//! OCI `config.json`.
//!
//! Exit status: 0 ok, 1 the apply failed, 2 invalid input, 70 internal
//! error. Every error is one line on stderr: `nsapply: <code>: <message>`.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use nsapply::exec::{open_target, resolve, resolve_pidfd, ExecError, ExecTarget};
use nsapply::model::{FaultScript, Model, World};
use nsapply::run::{run, run_exec, RunError, RunOptions};
use nsapply::{plan, ConfigError, Errno, KindSet, NsConfig, Plan, Trace};

/// Exit status of a failed apply.
const EXIT_FAILED: u8 = 1;
/// Exit status of invalid input.
const EXIT_INVALID: u8 = 2;
/// Exit status of an internal error (a bug): EX_SOFTWARE of sysexits.h.
const EXIT_INTERNAL: i32 = 70;

/// Apply the Linux namespaces of an OCI config.json: plan, simulate on a
/// kernel model, or run a command in them for real.
#[derive(Debug, Parser)]
#[command(name = "nsapply", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the steps apply would take (every call succeeding).
    Plan {
        /// The OCI config.json.
        #[arg(required_unless_present = "exec")]
        config: Option<PathBuf>,
        #[command(flatten)]
        exec: ExecArgs,
        /// Output format: a readable table, or the trace document (JSON).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Only this phase: comma-separated spec type names (user,pid,time).
        #[arg(long, value_name = "KINDS")]
        only: Option<String>,
    },
    /// Run the plan on the kernel model and print the trace.
    Simulate {
        /// The OCI config.json.
        #[arg(required_unless_present = "exec")]
        config: Option<PathBuf>,
        #[command(flatten)]
        exec: ExecArgs,
        /// The world the model starts from (JSON), or `host`: this machine's
        /// caller, clocks and namespace limits, read now. Default: a root
        /// caller in the initial namespaces, no namespace files, one day of
        /// uptime, no limits.
        #[arg(long, value_name = "WORLD.json")]
        world: Option<PathBuf>,
        /// Make a call fail: STEP is a call position (3) or a call kind
        /// with its namespace kind (setns:network); ERRNO a name (EPERM).
        #[arg(long = "fail", value_name = "STEP=ERRNO")]
        fail: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Apply the plan on this kernel and run CMD in the namespaces.
    Run {
        /// The OCI config.json.
        config: PathBuf,
        /// Write the trace document (JSON) of the apply to FILE.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// Run a minimal init as pid 1 of the new pid namespace (it reaps
        /// orphans and forwards signals to CMD); the config must create a
        /// pid namespace.
        #[arg(long)]
        init: bool,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// Join the namespaces of running process PID (through a pidfd, per
    /// namespace where the kernel refuses one) and run CMD there, as `run`
    /// runs it: forked when pid or time is joined, supervised, its exit
    /// status nsapply's.
    Exec {
        /// The process whose namespaces to join (as this pid namespace
        /// numbers it).
        #[arg(value_name = "PID", allow_negative_numbers = true)]
        pid: i32,
        /// Join only these (comma-separated spec type names); default:
        /// every one whose namespace differs from nsapply's.
        #[arg(long, value_name = "KINDS")]
        kinds: Option<String>,
        /// Join per namespace (open every /proc/PID/ns file, then setns
        /// each), without trying the pidfd join first.
        #[arg(long)]
        no_pidfd: bool,
        /// Write the trace document (JSON) of the apply to FILE.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// Run OCI runtimes (runc, crun, youki) on the conformance corpus under
    /// strace and compare what they do with nsapply's plan (needs root).
    Conform {
        /// The runtime: a name on PATH or a path; repeat for several.
        #[arg(long = "runtime", required = true, value_name = "NAME|PATH")]
        runtime: Vec<String>,
        /// Keep each case's bundle, trace and output in DIR/<runtime>/<case>.
        #[arg(long, value_name = "DIR")]
        bundle: Option<PathBuf>,
        /// The corpus directory.
        #[arg(long, value_name = "DIR", default_value = "conformance/cases")]
        corpus: PathBuf,
        /// Write the runtime × case Markdown report to FILE.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Time limit of one runtime run, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 30)]
        timeout: u64,
        /// Only these cases (file names without .json), in this order.
        #[arg(value_name = "CASES")]
        cases: Vec<String>,
    },
}

/// `--exec PID` of `plan` and `simulate`: the plan that joins a running
/// process's namespaces instead of a config's.
#[derive(Debug, clap::Args)]
struct ExecArgs {
    /// Plan the exec into process PID's namespaces (for simulate: a process
    /// of the world) instead of a config.
    #[arg(
        long,
        value_name = "PID",
        conflicts_with = "config",
        allow_negative_numbers = true
    )]
    exec: Option<i32>,
    /// With --exec: join only these kinds (default: those that differ).
    #[arg(long, value_name = "KINDS", requires = "exec")]
    kinds: Option<String>,
    /// With --exec: no pidfd join, per namespace only.
    #[arg(long, requires = "exec")]
    no_pidfd: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// A readable table.
    Text,
    /// Pretty JSON: the trace document of DESIGN §6.
    Json,
}

/// One error line and the exit status that goes with it.
struct CliError {
    code: &'static str,
    message: String,
    status: u8,
}

impl CliError {
    fn invalid(code: &'static str, message: impl Into<String>) -> CliError {
        CliError {
            code,
            message: message.into(),
            status: EXIT_INVALID,
        }
    }
}

impl From<&ConfigError> for CliError {
    fn from(e: &ConfigError) -> CliError {
        CliError::invalid(e.code().as_str(), e.to_string())
    }
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let line = format!("nsapply: internal-error: {}{at}\n", one_line(&msg));
        let _ = std::io::stderr().write_all(line.as_bytes());
        std::process::exit(EXIT_INTERNAL);
    }));

    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: clap's own output, on stdout.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message, first paragraph only (no usage block), on one line.
            let text = e.to_string();
            let first: Vec<&str> = text
                .trim_start()
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .collect();
            let first = first.join(" ");
            let first = first.strip_prefix("error: ").unwrap_or(&first);
            report(&CliError::invalid(
                "usage",
                format!("{} (see nsapply --help)", one_line(first)),
            ));
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let result = match cli.command {
        Command::Plan {
            config,
            exec,
            format,
            only,
        } => cmd_plan(config.as_deref(), &exec, format, only.as_deref()),
        Command::Simulate {
            config,
            exec,
            world,
            fail,
            format,
        } => cmd_simulate(config.as_deref(), &exec, world.as_deref(), &fail, format),
        Command::Exec {
            pid,
            kinds,
            no_pidfd,
            trace,
            command,
        } => cmd_exec(pid, kinds.as_deref(), no_pidfd, trace, &command),
        Command::Run {
            config,
            trace,
            init,
            command,
        } => cmd_run(
            &config,
            RunOptions {
                trace,
                init,
                // A signal sent to nsapply before the run began (blocked
                // by whoever started it) is the command's, as every later
                // one is.
                forward_pending_signals: true,
            },
            &command,
        ),
        Command::Conform {
            runtime,
            bundle,
            corpus,
            report,
            timeout,
            cases,
        } => cmd_conform(
            &runtime,
            bundle,
            &corpus,
            report.as_deref(),
            timeout,
            &cases,
        ),
    };
    match result {
        Ok(status) => ExitCode::from(status),
        Err(f) => {
            report(&f);
            ExitCode::from(f.status)
        }
    }
}

/// Prints the one error line.
fn report(f: &CliError) {
    let line = format!("nsapply: {}: {}\n", f.code, one_line(&f.message));
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Keeps a message on one line, whatever it quotes, and escapes the
/// control characters left (DESIGN §8: text output escapes them): a
/// message quotes what a config, a world or the command line held, often
/// through another parser's words (serde's unknown variant, clap's unknown
/// subcommand), so ESC, BEL, DEL or an 8-bit CSI would reach the terminal
/// raw. Written as `{:?}` writes a char (`\u{1b}`), as the text output
/// does for paths; a backslash is left as it is, since the messages
/// already quote paths escaped.
fn one_line(s: &str) -> String {
    let mut line = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !line.is_empty() {
            line.push(' ');
        }
        for c in word.chars() {
            if c.is_control() {
                line.extend(c.escape_debug());
            } else {
                line.push(c);
            }
        }
    }
    line
}

/// Writes to stdout; a closed stdout (`| head`) is not an error worth a line.
fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// The largest config or world nsapply reads: far above any real config
/// (a runtime-spec config is kilobytes), and a bound on the memory a file
/// that never ends (`/dev/zero`) can take.
const MAX_INPUT: u64 = 16 * 1024 * 1024;

/// Reads a config or world: at most [`MAX_INPUT`] bytes of UTF-8. A file
/// that cannot be read is `unreadable-file` (with the errno); one that is
/// too large or not UTF-8 is `invalid_code` (`invalid-config`,
/// `invalid-world`): it was read, and is not a document.
fn read_file(path: &Path, what: &str, invalid_code: &'static str) -> Result<String, CliError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let unreadable = |e: std::io::Error| {
        let why = Errno::of_io(&e).map_or_else(|| e.to_string(), |errno| errno.to_string());
        CliError::invalid(
            "unreadable-file",
            format!("cannot read {what} {path:?}: {why}"),
        )
    };
    // O_NONBLOCK: the open does not wait for a FIFO's writer (one without
    // a writer then reads as empty, and is refused as such, where a plain
    // open waited for ever); O_NOCTTY: a terminal named here does not
    // become ours. The reads block again, so a FIFO or pipe with a writer
    // (`nsapply plan <(...)`) is read to its end as before.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
        .map_err(unreadable)?;
    nix::fcntl::fcntl(
        &file,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .map_err(|e| unreadable(e.into()))?;
    // Room for the whole of a regular file, so it is read in one call.
    let size = file.metadata().map_or(0, |m| m.len().min(MAX_INPUT));
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0) + 1);
    file.take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(CliError::invalid(
            invalid_code,
            format!(
                "{what} {path:?} is larger than {} MiB, the most nsapply reads",
                MAX_INPUT / (1024 * 1024)
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        CliError::invalid(
            invalid_code,
            format!(
                "{what} {path:?} is not UTF-8 (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Reads and validates CONFIG. With JSON output, a rejected config still
/// prints a trace document (no steps, the error) for tools that read stdout.
fn load_plan(path: &Path, format: Format) -> Result<Plan, CliError> {
    let text = read_file(path, "config", "invalid-config")?;
    match NsConfig::from_json(&text) {
        Ok(cfg) => Ok(plan(&cfg)),
        Err(e) => {
            if format == Format::Json {
                emit(&format!("{}\n", Trace::rejected(&e).to_json_pretty()));
            }
            Err(CliError::from(&e))
        }
    }
}

/// The exec plan for `--exec PID` (or `nsapply exec PID`): the target
/// found by `resolve` (this host's `/proc`, or the model's world).
fn exec_plan(
    pid: i32,
    kinds: Option<&str>,
    no_pidfd: bool,
    resolve: impl FnOnce(i32, Option<KindSet>) -> Result<ExecTarget, ExecError>,
) -> Result<Plan, CliError> {
    let kinds = kinds.map(|k| parse_kinds("--kinds", k)).transpose()?;
    plan_for(resolve(pid, kinds), no_pidfd)
}

/// The plan for a resolved exec target, joining through a pidfd unless
/// `--no-pidfd`.
fn plan_for(target: Result<ExecTarget, ExecError>, no_pidfd: bool) -> Result<Plan, CliError> {
    let mut target = target.map_err(|e| exec_error(&e))?;
    target.pidfd = !no_pidfd;
    target.plan().map_err(|e| exec_error(&e))
}

fn exec_error(e: &ExecError) -> CliError {
    CliError {
        code: e.code().as_str(),
        message: e.to_string(),
        status: match e {
            ExecError::InvalidTarget { .. } => EXIT_INVALID,
            ExecError::TargetExited { .. } => EXIT_FAILED,
        },
    }
}

fn cmd_plan(
    config: Option<&Path>,
    exec: &ExecArgs,
    format: Format,
    only: Option<&str>,
) -> Result<u8, CliError> {
    // Arguments first: nothing is printed for a bad --only.
    let kinds = only.map(|k| parse_kinds("--only", k)).transpose()?;
    let mut plan = match (exec.exec, config) {
        (Some(pid), _) => exec_plan(pid, exec.kinds.as_deref(), exec.no_pidfd, resolve)?,
        (None, Some(config)) => load_plan(config, format)?,
        (None, None) => unreachable!("clap requires CONFIG without --exec"),
    };
    if let Some(kinds) = kinds {
        plan = plan.only(kinds);
    }
    match format {
        Format::Text if plan.steps().is_empty() => emit("(no steps: the plan is empty)\n"),
        Format::Text => emit(&plan.to_string()),
        Format::Json => emit(&format!("{}\n", plan.expected_trace().to_json_pretty())),
    }
    Ok(0)
}

fn parse_kinds(option: &str, s: &str) -> Result<KindSet, CliError> {
    let kinds: KindSet = s.parse().map_err(|e: nsapply::kind::UnknownKind| {
        CliError::invalid("invalid-kinds", e.to_string())
    })?;
    if kinds.is_empty() {
        return Err(CliError::invalid(
            "invalid-kinds",
            format!("{option} needs at least one namespace type (user, pid, uts, ipc, network, cgroup, mount, time)"),
        ));
    }
    Ok(kinds)
}

fn cmd_simulate(
    config: Option<&Path>,
    exec: &ExecArgs,
    world: Option<&Path>,
    fail: &[String],
    format: Format,
) -> Result<u8, CliError> {
    let host = world == Some(Path::new("host"));
    let world = match world {
        None => World::default(),
        // This machine as a run here meets it: clocks and limits read now.
        Some(path) if path == Path::new("host") => {
            nsapply::simulate::host_world().map_err(|e| {
                CliError::invalid(
                    "invalid-world",
                    format!("reading this machine's world: {e}"),
                )
            })?
        }
        Some(path) => {
            let text = read_file(path, "world", "invalid-world")?;
            World::from_json(&text)
                .map_err(|e| CliError::invalid("invalid-world", format!("{path:?}: {e}")))?
        }
    };
    let mut faults = FaultScript::new();
    for rule in fail {
        let fault = FaultScript::parse_rule(rule)
            .map_err(|e| CliError::invalid("invalid-fault", format!("--fail {rule:?}: {e}")))?;
        faults.push(fault);
    }
    let (plan, mut world) = match (exec.exec, config) {
        (Some(pid), _) => {
            // The target as the model's caller finds it at the start.
            let model = Model::new(&world)
                .map_err(|e| CliError::invalid("invalid-world", format!("world: {e}")))?;
            let plan = exec_plan(pid, exec.kinds.as_deref(), exec.no_pidfd, |pid, kinds| {
                model.exec_target(pid, kinds)
            })?;
            (plan, world)
        }
        (None, Some(config)) => (load_plan(config, format)?, world),
        (None, None) => unreachable!("clap requires CONFIG without --exec"),
    };
    if host {
        // What a run here would meet on the way to each namespace path.
        let paths = plan.steps().iter().filter_map(|s| match s {
            nsapply::Step::Open { path, .. } => Some(path.as_path()),
            _ => None,
        });
        nsapply::simulate::observe_paths(&mut world, paths);
    }
    let mut model = Model::new(&world)
        .map_err(|e| CliError::invalid("invalid-world", format!("world: {e}")))?;
    model.set_faults(faults);
    let applied = nsapply::simulate::simulate(&plan, &mut model);
    match format {
        Format::Text => emit(&applied.trace().to_string()),
        Format::Json => emit(&format!("{}\n", applied.trace().to_json_pretty())),
    }
    match &applied.error() {
        None => Ok(0),
        Some(e) => Err(CliError {
            code: e.code.as_str(),
            message: e.message.clone(),
            status: if e.code.is_input_error() {
                EXIT_INVALID
            } else {
                EXIT_FAILED
            },
        }),
    }
}

fn cmd_run(config: &Path, options: RunOptions, command: &[OsString]) -> Result<u8, CliError> {
    let plan = load_plan(config, Format::Text)?;
    run_result(run(&plan, command, &options))
}

fn run_result(r: Result<nsapply::run::Exit, RunError>) -> Result<u8, CliError> {
    match r {
        // Statuses are 0..=255 and 128 + signal (at most 192): they fit.
        Ok(exit) => Ok(u8::try_from(exit.status()).unwrap_or(u8::MAX)),
        Err(e) => Err(CliError {
            code: e.code().as_str(),
            message: e.to_string(),
            status: if e.is_input_error() {
                EXIT_INVALID
            } else {
                EXIT_FAILED
            },
        }),
    }
}

fn cmd_exec(
    pid: i32,
    kinds: Option<&str>,
    no_pidfd: bool,
    trace: Option<PathBuf>,
    command: &[OsString],
) -> Result<u8, CliError> {
    // A bad --kinds is refused before the target is opened.
    let kinds = kinds.map(|k| parse_kinds("--kinds", k)).transpose()?;
    // The target held from its resolve to the end of the apply, so that no
    // process given its number meanwhile is joined (`run_exec`).
    let target = open_target(pid).map_err(|e| exec_error(&e))?;
    let plan = plan_for(resolve_pidfd(&target, kinds), no_pidfd)?;
    let options = RunOptions {
        trace,
        init: false,
        forward_pending_signals: true,
    };
    run_result(run_exec(&plan, &target, command, &options))
}

fn cmd_conform(
    runtimes: &[String],
    bundle: Option<PathBuf>,
    corpus: &Path,
    report: Option<&Path>,
    timeout: u64,
    names: &[String],
) -> Result<u8, CliError> {
    use nsapply_conform::{self as conform, ConformError, Options, Runtime, Session};
    let failed = |e: ConformError| {
        let (code, status) = match &e {
            ConformError::Corpus(_) => ("invalid-corpus", EXIT_INVALID),
            ConformError::Runtime { .. } => ("invalid-runtime", EXIT_INVALID),
            _ => ("conform-failed", EXIT_FAILED),
        };
        CliError {
            code,
            message: e.to_string(),
            status,
        }
    };
    // The session changes mount namespace (and so the working directory's
    // meaning): make every path absolute first.
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    // The report names itself as the command line gave it.
    let shown_report = report.map(|p| p.display().to_string());
    let corpus = absolute(corpus);
    let report = report.map(absolute);
    let bundle = bundle.map(|b| absolute(&b));
    let cases = conform::case::load_corpus(&corpus, names).map_err(|e| failed(e.into()))?;
    let runtimes: Vec<Runtime> = runtimes
        .iter()
        .map(|r| Runtime::find(r))
        .collect::<Result<_, _>>()
        .map_err(failed)?;
    let session = Session::new(Options {
        bundle,
        timeout: std::time::Duration::from_secs(timeout.max(1)),
    })
    .map_err(failed)?;
    let width = cases.iter().map(|c| c.name.len()).max().unwrap_or(4);
    let mut runs = Vec::new();
    for rt in &runtimes {
        emit(&format!("== {} ({})\n", rt.name, rt.version));
        let results = session
            .run_all(rt, &cases, |r| {
                emit(&format!("{}\n", conform::report::row(r, width)))
            })
            .map_err(failed)?;
        runs.push(results);
    }
    if let Some(path) = report {
        let command = format!(
            "nsapply conform {}--report {}",
            runtimes
                .iter()
                .map(|r| format!("--runtime {} ", r.name))
                .collect::<String>(),
            shown_report.unwrap_or_default()
        );
        let explanations = corpus
            .parent()
            .map(|d| d.join("explanations.json"))
            .map(|p| conform::report::load_explanations(&p))
            .transpose()
            .map_err(|e| CliError::invalid("invalid-corpus", e))?
            .unwrap_or_default();
        let text = conform::report::markdown(
            &cases,
            &runs,
            &conform::environment(),
            &command,
            &explanations,
        );
        std::fs::write(&path, text).map_err(|e| {
            CliError::invalid(
                "unwritable-file",
                format!(
                    "cannot write report {path:?}: {}",
                    Errno::of_io(&e).map_or_else(|| e.to_string(), |errno| errno.to_string())
                ),
            )
        })?;
    }
    Ok(0)
}
