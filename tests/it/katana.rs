//! Katana connector against the Katana simulator, over HTTP.
