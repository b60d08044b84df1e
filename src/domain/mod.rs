//! The pure business rules: aggregates decide what happens and record it as events.
//! Nothing in here performs I/O, awaits, or reads the clock: time arrives as an
//! argument, so every rule is testable and every decision replayable.

pub mod observed;
