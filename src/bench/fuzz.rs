//! `tks bench fuzz`: the fuzzing run as `key=value` lines.

/// `tks bench fuzz`: key=value lines, and a non-zero exit with the input when a
/// parser panicked.
pub fn run(inputs: u64, seed: u64) -> anyhow::Result<()> {
    let report = crate::fuzz::run(inputs, seed);
    println!("fuzz_seed={}", report.seed);
    for (target, n) in &report.runs {
        println!("fuzz_inputs_{}={n}", target.name());
    }
    println!("fuzz_inputs={}", report.inputs());
    println!("fuzz_panics={}", report.panics);
    println!(
        "fuzz_inputs_per_s={:.0}",
        report.inputs() as f64 / report.seconds.max(1e-9)
    );
    if let Some((target, input)) = report.first_panic {
        anyhow::bail!(
            "{} panicked on input (hex) {}",
            target.name(),
            hex::encode(input)
        );
    }
    Ok(())
}
