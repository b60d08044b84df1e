//! How domain events become stored rows and back: a type name, a version, and a JSON
//! payload. Old versions are upcast to the current shape before decoding, so the log
//! never has to be rewritten when an event evolves.

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error(
        "{event_type} v{version} is newer than this build understands (v{supported}); upgrade tks"
    )]
    NewerVersion {
        event_type: String,
        version: u32,
        supported: u32,
    },
    #[error("{event_type} v{version} has no upcaster to v{supported}")]
    NoUpcaster {
        event_type: String,
        version: u32,
        supported: u32,
    },
    #[error("{event_type} v{version}: malformed payload: {reason}")]
    Malformed {
        event_type: String,
        version: u32,
        reason: String,
    },
}

pub trait DomainEvent: Sized {
    fn event_type(&self) -> &'static str;
    fn version(&self) -> u32;
    fn encode(&self) -> String;
    fn decode(event_type: &str, version: u32, payload: &str) -> Result<Self, DecodeError>;
    /// All (type, current version) pairs this enum knows: the JSON Schema check
    /// walks these.
    fn known_types() -> &'static [(&'static str, u32)];
}

/// A step that lifts one event type from `from` to `from + 1`.
pub struct Upcaster {
    pub event_type: &'static str,
    pub from: u32,
    pub lift: fn(Value) -> Result<Value, String>,
}

/// Applies upcasters in order until the payload reaches `target`.
pub fn upcast(
    upcasters: &[Upcaster],
    event_type: &str,
    mut version: u32,
    target: u32,
    payload: &str,
) -> Result<String, DecodeError> {
    let malformed = |version: u32, reason: String| DecodeError::Malformed {
        event_type: event_type.to_string(),
        version,
        reason,
    };
    let mut value: Value =
        serde_json::from_str(payload).map_err(|e| malformed(version, e.to_string()))?;
    while version < target {
        let step = upcasters
            .iter()
            .find(|u| u.event_type == event_type && u.from == version)
            .ok_or_else(|| DecodeError::NoUpcaster {
                event_type: event_type.to_string(),
                version,
                supported: target,
            })?;
        value = (step.lift)(value).map_err(|e| malformed(version, e))?;
        version += 1;
    }
    Ok(value.to_string())
}

/// Declares an event enum whose variants wrap payload structs, with its codec.
macro_rules! domain_events {
    (
        $(#[$meta:meta])*
        pub enum $name:ident upcasters($upcasters:path) {
            $( $variant:ident = $version:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $variant($variant) ),*
        }

        impl $name {
            /// The JSON Schema of every event type's current version, for
            /// `schema/events/<Type>.v<N>.json`.
            pub fn json_schemas() -> Vec<(&'static str, u32, serde_json::Value)> {
                vec![ $( (
                    stringify!($variant),
                    $version,
                    serde_json::to_value(schemars::schema_for!($variant)).unwrap_or_default(),
                ) ),* ]
            }
        }

        impl $crate::domain::codec::DomainEvent for $name {
            fn event_type(&self) -> &'static str {
                match self { $( Self::$variant(_) => stringify!($variant) ),* }
            }

            fn version(&self) -> u32 {
                match self { $( Self::$variant(_) => $version ),* }
            }

            fn encode(&self) -> String {
                let encoded = match self {
                    $( Self::$variant(p) => serde_json::to_string(p) ),*
                };
                // Payloads are plain structs with string keys: serialising cannot fail.
                encoded.unwrap_or_else(|e| format!("{{\"encode_error\":{:?}}}", e.to_string()))
            }

            fn decode(
                event_type: &str,
                version: u32,
                payload: &str,
            ) -> Result<Self, $crate::domain::codec::DecodeError> {
                use $crate::domain::codec::DecodeError;
                match event_type {
                    $( stringify!($variant) => {
                        if version > $version {
                            return Err(DecodeError::NewerVersion {
                                event_type: event_type.to_string(),
                                version,
                                supported: $version,
                            });
                        }
                        let upcast;
                        let current = if version < $version {
                            upcast = $crate::domain::codec::upcast(
                                $upcasters, event_type, version, $version, payload)?;
                            upcast.as_str()
                        } else {
                            payload
                        };
                        serde_json::from_str(current).map(Self::$variant).map_err(|e| {
                            DecodeError::Malformed {
                                event_type: event_type.to_string(),
                                version,
                                reason: e.to_string(),
                            }
                        })
                    } )*
                    other => Err(DecodeError::UnknownType(other.to_string())),
                }
            }

            fn known_types() -> &'static [(&'static str, u32)] {
                &[ $( (stringify!($variant), $version) ),* ]
            }
        }
    };
}

pub(crate) use domain_events;
