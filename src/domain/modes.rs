//! How decisions may be taken: the modes the buffer and fulfilled-by-TikTok
//! orders run in. The settings name them; the domain owns them.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferMode {
    All,
    IncreasesOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FbtMode {
    Skip,
    RecordAsDone,
}
