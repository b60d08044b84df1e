//! Katana simulator.
