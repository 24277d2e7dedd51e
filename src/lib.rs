//! Promoter: promotes package versions between the feeds of a package repository,
//! speaking ProGet's "Promote Package" API, and keeps the history of every move.

pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod connectors;
pub mod content;
pub mod domain;
pub mod ecosystems;
pub mod error;
pub mod http;
pub mod metrics;
pub mod promotion;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod webhooks;
