//! TikTok Shop Partner API connector.
