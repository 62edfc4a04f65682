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
use nsapply::model::{FaultScript, Model, World};
use nsapply::run::{run, RunOptions};
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
        config: PathBuf,
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
        config: PathBuf,
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
            format,
            only,
        } => cmd_plan(&config, format, only.as_deref()),
        Command::Simulate {
            config,
            world,
            fail,
            format,
        } => cmd_simulate(&config, world.as_deref(), &fail, format),
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

/// Keeps a message on one line, whatever it quotes.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
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
    let unreadable = |e: std::io::Error| {
        let why = Errno::of_io(&e).map_or_else(|| e.to_string(), |errno| errno.to_string());
        CliError::invalid(
            "unreadable-file",
            format!("cannot read {what} {path:?}: {why}"),
        )
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
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

fn cmd_plan(config: &Path, format: Format, only: Option<&str>) -> Result<u8, CliError> {
    // Arguments first: nothing is printed for a bad --only.
    let kinds = only.map(parse_kinds).transpose()?;
    let mut plan = load_plan(config, format)?;
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

fn parse_kinds(s: &str) -> Result<KindSet, CliError> {
    let kinds: KindSet = s.parse().map_err(|e: nsapply::kind::UnknownKind| {
        CliError::invalid("invalid-kinds", e.to_string())
    })?;
    if kinds.is_empty() {
        return Err(CliError::invalid(
            "invalid-kinds",
            "--only needs at least one namespace type (user, pid, uts, ipc, network, cgroup, mount, time)",
        ));
    }
    Ok(kinds)
}

fn cmd_simulate(
    config: &Path,
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
    let plan = load_plan(config, format)?;
    let mut world = world;
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
    match run(&plan, command, &options) {
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
