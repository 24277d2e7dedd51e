//! The words of a move that every layer speaks: what a revert names.

/// What a revert undoes: one promotion, or every promotion of a batch.
#[derive(Debug, Clone)]
pub enum RevertTarget {
    Promotion(i64),
    Batch(uuid::Uuid),
}
