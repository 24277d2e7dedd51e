//! Webhooks (contract section 8): every promotion is announced to the URLs that
//! asked for it, signed, at least once. The events are written by the database
//! in the promotion's own transaction (the outbox, see `store::webhooks`); the
//! dispatcher delivers them after commit.

pub mod dispatcher;
pub mod event;
pub mod targets;
