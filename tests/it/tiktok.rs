//! TikTok connector against the TikTok simulator, over HTTP.
