//! The external-expectations corpus (`tests/data/external/`): every row
//! the engine's calls can express runs on the model, whose answer must be
//! the kernel's (the `kernel` column, measured on the kernel the corpus
//! names). Rows the model leaves out (the corpus says why) and rows no
//! engine call can express (the runner says why) are listed as ignored,
//! with the reason, never as passed.
//!
//! As root, each row that runs on the model also runs live on this kernel
//! (`kernel::<id>`, issue 14): the row's world and caller are built here
//! ([`nsapply_harness::external_kernel`]) and the live answers must equal
//! the model's. A row whose world cannot be built on this machine is
//! listed as ignored with the reason. Building a world forks, and a
//! multithreaded process cannot join a user or mount namespace, so each
//! such trial re-executes this binary with `NSAPPLY_EXTERNAL_ROW=<id>`:
//! that process runs the row before anything starts a thread and prints
//! one JSON line. Without root the live trials are ignored and the reason
//! is printed.

use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};
use nsapply_harness::external::{judge, run_on_model, run_on_model_on, Answer, Corpus, Row};
use nsapply_harness::external_kernel::{
    decode_answer, encode_answer, kernel_support, run_on_kernel, KernelError,
};
use nsapply_harness::host;
use serde::{Deserialize, Serialize};

/// Names the row a re-executed process runs on the kernel.
const ROW_ENV: &str = "NSAPPLY_EXTERNAL_ROW";

/// What a re-executed process prints: one JSON line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum LiveReport {
    Answers(Vec<String>),
    Unsupported(String),
    Failed(String),
}

fn main() {
    if let Ok(id) = std::env::var(ROW_ENV) {
        // First thing: no thread may exist before the row runs.
        std::process::exit(live_row_process(&id));
    }
    let args = Arguments::from_args();
    let corpus = Corpus::load().expect("tests/data/external/expectations.json parses");
    let root = host::euid() == 0;
    if !root {
        eprintln!(
            "kernel:: trials skipped: not root (euid {}); they make namespaces for other users, write id maps and limits, bind-mount namespace files",
            host::euid()
        );
    }
    let mut trials = Vec::new();
    let mut live = Vec::new();
    for row in corpus.rows {
        let name = format!("model::{}", row.id);
        let ignored = row.left_out.clone().map(|why| format!("left out: {why}"));
        let ignored = ignored.or_else(|| {
            run_on_model(&row)
                .err()
                .map(|u| format!("no engine call: {u}"))
        });
        if ignored.is_none() {
            live.push(row.clone());
        }
        let trial = Trial::test(name, move || model_equals_kernel(&row));
        trials.push(match ignored {
            Some(why) => trial.with_ignored_flag(true).with_kind(why),
            None => trial,
        });
    }
    for row in live {
        let name = format!("kernel::{}", row.id);
        let ignored = if root {
            kernel_support(&row)
                .err()
                .map(|u| format!("cannot realize on this kernel: {u}"))
        } else {
            Some(format!("not root (euid {})", host::euid()))
        };
        let trial = Trial::test(name, move || live_equals_model(&row));
        trials.push(match ignored {
            Some(why) => trial.with_ignored_flag(true).with_kind(why),
            None => trial,
        });
    }
    libtest_mimic::run(&args, trials).exit();
}

/// The model's answers equal the corpus's kernel's, and for each range of
/// `kernels` the model of its first version answers as the range says and
/// the model of the version past it as the corpus's kernel.
fn model_equals_kernel(row: &Row) -> Result<(), Failed> {
    for other in &row.kernels {
        let (from, before) = other.range()?;
        for (version, want) in [(from, &other.kernel), (before, &row.kernel)] {
            let answers = run_on_model_on(row, version).map_err(|u| u.to_string())?;
            if let Some(diff) = judge(row, &answers, Answer::parse(want)?) {
                return Err(format!(
                    "{} ({}): the model of Linux {version} differs from that kernel: {diff}\n  evidence: {}",
                    row.id, row.area, other.evidence
                )
                .into());
            }
        }
    }
    let want = Answer::parse(&row.kernel)?;
    let answers = run_on_model(row).map_err(|u| u.to_string())?;
    match judge(row, &answers, want) {
        None => Ok(()),
        Some(diff) => {
            Err(format!(
            "{} ({}): the model differs from the kernel: {diff}\n  source: {} ({})\n  answers: {}",
            row.id,
            row.area,
            row.source.reference,
            row.source.says,
            answers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        )
            .into())
        }
    }
}

/// The re-executed process: runs row `id` on this kernel, prints the
/// [`LiveReport`], and gives the exit status.
fn live_row_process(id: &str) -> i32 {
    let report = match Corpus::load() {
        Err(e) => LiveReport::Failed(format!("the corpus does not parse: {e}")),
        Ok(corpus) => match corpus.rows.iter().find(|r| r.id == id) {
            None => LiveReport::Failed(format!("no row {id:?}")),
            Some(row) => match run_on_kernel(row) {
                Ok(answers) => LiveReport::Answers(answers.iter().map(encode_answer).collect()),
                Err(KernelError::Unsupported(u)) => LiveReport::Unsupported(u.0),
                Err(KernelError::Failed(m)) => LiveReport::Failed(m),
            },
        },
    };
    match serde_json::to_string(&report) {
        Ok(line) => {
            println!("{line}");
            i32::from(!matches!(report, LiveReport::Answers(_)))
        }
        Err(e) => {
            eprintln!("encoding the report: {e}");
            2
        }
    }
}

/// Runs the row live in a fresh process; its answers must be those of the
/// model of this kernel (its version from uname).
fn live_equals_model(row: &Row) -> Result<(), Failed> {
    let version = host::running_kernel().map_err(|e| format!("which kernel this is: {e}"))?;
    let model =
        run_on_model_on(row, version).map_err(|u| format!("the model cannot run it: {u}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = Command::new(exe)
        .env(ROW_ENV, &row.id)
        .output()
        .map_err(|e| format!("re-executing the test binary: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let report = line.and_then(|l| serde_json::from_str::<LiveReport>(l).ok());
    let live = match report {
        Some(LiveReport::Answers(texts)) => texts
            .iter()
            .map(|t| decode_answer(t))
            .collect::<Result<Vec<_>, _>>()?,
        Some(LiveReport::Unsupported(u)) => {
            return Err(format!(
                "cannot realize on this kernel (after listing it as runnable): {u}"
            )
            .into())
        }
        Some(LiveReport::Failed(m)) => {
            return Err(format!("{}: the live run failed: {m}\nstderr: {stderr}", row.id).into())
        }
        None => {
            return Err(format!(
                "{}: the row process gave no report ({}):\nstdout: {stdout}\nstderr: {stderr}",
                row.id, out.status
            )
            .into())
        }
    };
    if live == model {
        return Ok(());
    }
    let list = |a: &[Answer]| {
        a.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(format!(
        "{} ({}): this kernel, live, differs from the model of Linux {version}\n  model:    {}\n  live:     {}\n  recorded: {} (the corpus's `kernel` column, last op)\n  realize:  {}",
        row.id,
        row.area,
        list(&model),
        list(&live),
        row.kernel,
        row.realize
    )
    .into())
}
