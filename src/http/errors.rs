//! The one place a failure becomes an HTTP status, so every handler says the same
//! thing about the same failure: whose fault it is and whether trying again helps.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::json;

use crate::actors::CommandError;
use crate::store::StoreError;

/// A refused command conflicts with the state (409); a log that cannot be written
/// or an actor that is gone is ours and passing (503, try again); a stream this
/// build cannot read, or a command nothing routes, needs a fix (500).
pub fn command_status(e: &CommandError) -> StatusCode {
    match e {
        CommandError::Rejected(_) => StatusCode::CONFLICT,
        CommandError::Store(e) => store_status(e),
        CommandError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        CommandError::Undecodable { .. } | CommandError::Unroutable(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

pub fn store_status(_: &StoreError) -> StatusCode {
    StatusCode::SERVICE_UNAVAILABLE
}

/// A webhook that could not be recorded, whatever the reason: 503, since only a
/// redelivery can bring it back and every sender redelivers on a 503.
pub const WEBHOOK_NOT_RECORDED: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

/// `{"error": message}` with `status`.
pub fn error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message.into() }))
}

pub fn command_error(e: CommandError) -> HttpResponse {
    let message = match &e {
        CommandError::Rejected(reason) => reason.to_string(),
        other => other.to_string(),
    };
    error(command_status(&e), message)
}

pub fn store_error(e: StoreError) -> HttpResponse {
    error(store_status(&e), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::codec::DecodeError;
    use crate::domain::sku::SkuError;

    #[test]
    fn each_failure_has_one_status() {
        let rejected = CommandError::Rejected(
            SkuError::WrongVariant {
                expected: 1,
                got: 2,
            }
            .into(),
        );
        assert_eq!(command_status(&rejected), StatusCode::CONFLICT);
        let store = CommandError::Store(StoreError::Storage("disk".into()));
        assert_eq!(command_status(&store), StatusCode::SERVICE_UNAVAILABLE);
        let undecodable = CommandError::Undecodable {
            stream: "order-1".into(),
            source: DecodeError::UnknownType("X".into()),
        };
        assert_eq!(
            command_status(&undecodable),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
