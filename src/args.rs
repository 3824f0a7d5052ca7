//! Command line and `INSTAGIFT_*` environment: every flag has an env twin,
//! and `--help` shows the defaults.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// instagift: a self-hosted gift-certificate server (Instagift API v2).
#[derive(Debug, Parser)]
#[command(name = "instagift", version, about)]
pub struct Cli {
    /// SQLite database file (created on first start).
    #[arg(
        long,
        env = "INSTAGIFT_DB",
        default_value = "./instagift.db",
        global = true
    )]
    pub db: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

/// Settings of the HTTP server.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on; 127.0.0.1 keeps it private to this machine,
    /// 0.0.0.0:8080 opens it to the LAN, port 0 picks a free port.
    #[arg(long, env = "INSTAGIFT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Worker threads answering reads and handing changes on (0 = two per
    /// CPU core, at least 2). More than the cores only adds thread switches.
    #[arg(long, env = "INSTAGIFT_THREADS", default_value_t = 0)]
    pub threads: usize,

    /// Threads answering changes (POST, PUT, PATCH, DELETE) while they wait
    /// for the writer's commit: how many changes can share one commit.
    #[arg(long, env = "INSTAGIFT_CHANGE_THREADS", default_value_t = 32)]
    pub change_threads: usize,

    /// Base URL customers reach this server at, used in emails and QR links
    /// (default: http:// plus the listen address).
    #[arg(long, env = "INSTAGIFT_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// SMTP server for outgoing mail: smtp://[user:pass@]host[:port] (STARTTLS
    /// when offered; add ?tls=required to insist, ?tls=none for a local
    /// relay) or smtps://… (implicit TLS). Without it, mail waits in the outbox.
    #[arg(long, env = "INSTAGIFT_SMTP_URL")]
    pub smtp_url: Option<String>,

    /// The From address of outgoing mail.
    #[arg(
        long,
        env = "INSTAGIFT_MAIL_FROM",
        default_value = "Instagift <instagift@localhost>"
    )]
    pub mail_from: String,

    /// Seconds to wait after a failed delivery; doubled after each failure.
    #[arg(long, env = "INSTAGIFT_MAIL_RETRY_SECS", default_value_t = 30)]
    pub mail_retry_secs: u64,

    /// Delivery attempts before a message is marked failed.
    #[arg(long, env = "INSTAGIFT_MAIL_MAX_ATTEMPTS", default_value_t = 10)]
    pub mail_max_attempts: i64,

    /// How often, in milliseconds, the mail worker looks for due messages.
    #[arg(long, env = "INSTAGIFT_MAIL_POLL_MS", default_value_t = 1000)]
    pub mail_poll_ms: u64,

    /// Enforce rate limits (`false` switches every budget off).
    #[arg(long, env = "INSTAGIFT_RATE_LIMITS", default_value_t = true, action = clap::ArgAction::Set)]
    pub rate_limits: bool,

    /// Requests per minute for each merchant API caller (0 = unlimited).
    #[arg(long, env = "INSTAGIFT_RATE_LIMIT_MERCHANT", default_value_t = 1200)]
    pub rate_limit_merchant: u32,

    /// Requests per minute for each user (0 = unlimited).
    #[arg(long, env = "INSTAGIFT_RATE_LIMIT_USER", default_value_t = 300)]
    pub rate_limit_user: u32,

    /// Requests per minute for each client IP without credentials (0 = unlimited).
    #[arg(long, env = "INSTAGIFT_RATE_LIMIT_IP", default_value_t = 600)]
    pub rate_limit_ip: u32,

    /// Days a user token may go unused before it expires (0 = never).
    #[arg(long, env = "INSTAGIFT_TOKEN_IDLE_DAYS", default_value_t = 90)]
    pub token_idle_days: u32,

    /// Seconds a connection may stay idle, or take between two reads,
    /// before it is closed.
    #[arg(long, env = "INSTAGIFT_CLIENT_TIMEOUT_SECS", default_value_t = 10)]
    pub client_timeout_secs: u64,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API and the admin page (what a bare `instagift` does).
    Serve(ServeArgs),
    /// Manage merchants and their API keys.
    #[command(subcommand)]
    Merchant(MerchantCommand),
    /// Manage the operator account of the admin page.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Verify the database: every certificate against its ledger, every
    /// merchant's conservation of value, every foreign key. Exit 1 on any
    /// discrepancy. Safe beside a running server.
    Check,
    /// Write a consistent copy of the database to FILE (safe while serving).
    Backup {
        /// Where to write the copy (must not exist).
        file: PathBuf,
    },
    /// Ask a running server whether it is healthy (exit 0 if so).
    Healthcheck {
        /// Server URL.
        #[arg(long, env = "INSTAGIFT_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
    },
}

/// `instagift admin …`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Set the operator password of the admin page: prompts on a terminal,
    /// otherwise reads one line from standard input. Logs out every admin
    /// session.
    SetPassword,
}

/// `instagift merchant …`
#[derive(Debug, Subcommand)]
pub enum MerchantCommand {
    /// Create a merchant and print its id.
    Create {
        /// Shop name.
        #[arg(long)]
        name: String,
        /// Shop website.
        #[arg(long)]
        url: Option<String>,
        /// IANA time zone, e.g. America/New_York.
        #[arg(long, default_value = "UTC")]
        time_zone: String,
    },
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

/// `instagift merchant key …`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key; the secret is printed once and never again.
    Create {
        /// The merchant's id (ids may start with '-').
        #[arg(allow_hyphen_values = true)]
        merchant_id: String,
    },
    /// Revoke an API key.
    Revoke {
        /// The key (mk_…).
        #[arg(allow_hyphen_values = true)]
        key: String,
    },
}
