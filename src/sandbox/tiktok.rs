//! TikTok Shop simulator.
