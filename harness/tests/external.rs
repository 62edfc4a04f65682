//! The external-expectations corpus (`tests/data/external/`): every row
//! the engine's calls can express runs on the model, whose answer must be
//! the kernel's (the `kernel` column, measured on the kernel the corpus
//! names). Rows the model leaves out (the corpus says why) and rows no
//! engine call can express (the runner says why) are listed as ignored,
//! with the reason, never as passed.

use libtest_mimic::{Arguments, Failed, Trial};
use nsapply_harness::external::{judge, run_on_model, Answer, Corpus, Row};

fn main() {
    let args = Arguments::from_args();
    let corpus = Corpus::load().expect("tests/data/external/expectations.json parses");
    let mut trials = Vec::new();
    for row in corpus.rows {
        let name = format!("model::{}", row.id);
        let ignored = row.left_out.clone().map(|why| format!("left out: {why}"));
        let ignored = ignored.or_else(|| {
            run_on_model(&row)
                .err()
                .map(|u| format!("no engine call: {u}"))
        });
        let trial = Trial::test(name, move || model_equals_kernel(&row));
        trials.push(match ignored {
            Some(why) => trial.with_ignored_flag(true).with_kind(why),
            None => trial,
        });
    }
    libtest_mimic::run(&args, trials).exit();
}

fn model_equals_kernel(row: &Row) -> Result<(), Failed> {
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
