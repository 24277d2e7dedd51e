//! Defaults and the settings shared by every command. Flags win over environment
//! variables, which win over these defaults (clap does the layering).

use clap::Args;

/// ProGet's own port, so that clients configured for ProGet find us.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8624";

/// An embedded SQLite file in the working directory, created on first start, so
/// that the service runs on a bare machine.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://promoter.db?mode=rwc";

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// postgres://USER:PASSWORD@HOST/DB for PostgreSQL, sqlite://PATH for a SQLite file.
    #[arg(
        long,
        env = "PROMOTER_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true,
        global = true
    )]
    pub database_url: String,
}
