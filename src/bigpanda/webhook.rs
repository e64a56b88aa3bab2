//! Lenient, total parsing of BigPanda Notifications Webhook bodies into [`Snapshot`]s.

use crate::lifecycle::Snapshot;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body has no incident id (looked for incident.id and a top-level id)")]
    MissingIncidentId,
}

pub fn parse(_body: &[u8]) -> Result<Snapshot, ParseError> {
    Err(ParseError::MissingIncidentId)
}

impl ParseError {
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::NotJson(_) => "invalid_json",
            ParseError::MissingIncidentId => "missing_incident_id",
        }
    }
}
