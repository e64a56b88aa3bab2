//! The alert lifecycle of `LIFECYCLE.md`, as a pure function.
//!
//! `step(Option<&Alert>, &Input, &Ctx) -> Option<Step>` is the whole state machine: no clock
//! (the time comes in `Ctx`), no IO, no async.
//! The engine feeds it webhooks, local resolves and close replies, persists the returned alert,
//! history entry and outbox effects in one atomic batch, and only then answers anyone.

mod snapshot;
mod state;
mod step;
#[cfg(test)]
mod tests;

pub use snapshot::{Details, DetailsJson, EventType, IncidentAlert, Millis, Snapshot};
pub use state::{
    Alert, AlertStatus, CloseState, CloseSync, HistoryEvent, Outbound, OutboundKey, Outcome,
    ResolvedBy,
};
pub use step::{close_comment, step, CloseReply, Ctx, Effect, Input, Step};
