//! Fuzzing of everything that reads bytes from outside: both webhook parsers and
//! their signature checks, the capture reader with the event codec and `apply`
//! behind it, and the settings loader. Inputs are seeded valid documents mutated at
//! random, plus random bytes; any panic is a failure, and the first input that
//! panicked is kept so it can be turned into a test.
//!
//! The toolchain here is stable Rust, where cargo-fuzz (libFuzzer, nightly only)
//! does not run; this is a mutation fuzzer without coverage feedback, seeded and
//! therefore repeatable.

mod mutate;
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use targets::Target;

/// What a run found.
#[derive(Clone, Debug)]
pub struct FuzzReport {
    pub seed: u64,
    /// Inputs run, per target.
    pub runs: Vec<(Target, u64)>,
    pub panics: u64,
    /// The first input that panicked, with its target.
    pub first_panic: Option<(Target, Vec<u8>)>,
    pub seconds: f64,
}

impl FuzzReport {
    pub fn inputs(&self) -> u64 {
        self.runs.iter().map(|(_, n)| n).sum()
    }
}

/// Runs `inputs` inputs, spread evenly over every target, from `seed`.
pub fn run(inputs: u64, seed: u64) -> FuzzReport {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let targets = Target::all();
    let seeds: Vec<Vec<Vec<u8>>> = targets.iter().map(|t| t.seeds()).collect();
    let mut runs: Vec<(Target, u64)> = targets.iter().map(|t| (*t, 0)).collect();
    let mut panics = 0;
    let mut first_panic = None;
    // A panic inside a target is caught and counted; the default hook would print
    // a backtrace per input.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for i in 0..inputs {
        let which = (i % targets.len() as u64) as usize;
        let target = targets[which];
        let input = if rng.gen_ratio(1, 16) {
            mutate::random_bytes(&mut rng)
        } else {
            let base = &seeds[which][rng.gen_range(0..seeds[which].len())];
            mutate::mutate(base, &mut rng)
        };
        runs[which].1 += 1;
        if catch_unwind(AssertUnwindSafe(|| target.run(&input))).is_err() {
            panics += 1;
            if first_panic.is_none() {
                first_panic = Some((target, input));
            }
        }
    }
    std::panic::set_hook(hook);
    FuzzReport {
        seed,
        runs,
        panics,
        first_panic,
        seconds: started.elapsed().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_accepts_its_own_seeds() {
        for t in Target::all() {
            for s in t.seeds() {
                t.run(&s);
            }
        }
    }

    #[test]
    fn a_short_run_finds_no_panic() {
        let report = run(24_000, 20261202);
        assert_eq!(report.inputs(), 24_000);
        assert!(report.runs.iter().all(|(_, n)| *n > 0));
        assert_eq!(
            report.panics,
            0,
            "first panic: {:?}",
            report
                .first_panic
                .map(|(t, i)| (t, String::from_utf8_lossy(&i).into_owned()))
        );
    }
}
