//! Black-box tests: the real application over real HTTP, each test against a fresh
//! database, every test body on both PostgreSQL and SQLite.

#[macro_use]
mod helpers;

mod browser;
mod cache;
mod cli;
mod client;
mod connectors;
mod containers;
mod content;
mod content_s3;
mod edge;
mod group_commit;
mod guarantees;
mod hardening;
mod history;
mod history_plans;
mod hostile;
mod import;
mod invariants;
mod management;
mod maven;
mod metrics;
mod npm;
mod nuget;
mod openapi;
mod promote_auth;
mod promote_input;
mod promote_moves;
mod pypi;
mod rate_limits;
mod receiver;
mod request_ids;
mod schemas;
mod settings;
mod structure;
mod versions;
mod web;
mod webhooks;
mod workflow;
