//! `remit serve`: run the control plane.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use remit_server::{router, AppState, DataDir};
use remit_store::{redact_url, PgStore, SqliteStore, Store};
use remit_token::Signer as _;

/// Arguments of `remit serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Data directory: signing keys, admin token hash, SQLite database
    /// [default: $XDG_DATA_HOME/remit or ~/.local/share/remit].
    #[arg(long, env = "REMIT_DATA")]
    data: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "REMIT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Database URL: `postgres://...` for replicas, or `sqlite://PATH`
    /// [default: SQLite file remit.db in the data directory].
    #[arg(long, env = "REMIT_DATABASE_URL")]
    database: Option<String>,
    /// Print the start-up summary as one JSON line (for scripts).
    #[arg(long)]
    json: bool,
}

/// Where the state lives.
enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Database {
    fn choose(url: Option<&str>, data: &DataDir) -> anyhow::Result<Self> {
        match url {
            None => Ok(Self::Sqlite(data.sqlite_path())),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Self::Postgres(url.to_owned()))
            }
            Some(url) => match url.strip_prefix("sqlite://") {
                Some(path) if !path.is_empty() => Ok(Self::Sqlite(PathBuf::from(path))),
                _ => anyhow::bail!(
                    "unsupported --database {:?}: use postgres://USER@HOST:PORT/DB or sqlite://PATH",
                    redact_url(url)
                ),
            },
        }
    }

    fn shown(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => redact_url(url),
        }
    }
}

/// Runs `remit serve` until interrupted.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REMIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let data_path = match args.data {
        Some(path) => path,
        None => remit_server::default_data_dir()?,
    };
    let data = DataDir::open(&data_path)?;
    let database = Database::choose(args.database.as_deref(), &data)?;
    match &database {
        Database::Sqlite(path) => {
            let store = SqliteStore::open(path).await?;
            run_with(store, &data, &database, args.listen, args.json).await
        }
        Database::Postgres(url) => {
            let store = PgStore::connect(url).await?;
            run_with(store, &data, &database, args.listen, args.json).await
        }
    }
}

async fn run_with<S: Store>(
    store: S,
    data: &DataDir,
    database: &Database,
    listen: SocketAddr,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen} (is another remit serve running?)"))?;
    let addr = listener.local_addr()?;
    let state = AppState::new(store, &data.issuer, data.admin_token.clone());
    let url = format!("http://{addr}");
    if json {
        let summary = serde_json::json!({
            "listening": url,
            "data_dir": data.path,
            "database": database.shown(),
            "issuer_kid": data.issuer.key_id(),
            "receipt_kid": data.receipt.key_id(),
            "created": data.created,
            "admin_token": data.new_admin_token,
        });
        println!("{summary}");
    } else {
        print_summary(data, database, &url);
    }
    remit_server::serve(listener, router(state), shutdown_signal())
        .await
        .context("serving HTTP")?;
    eprintln!("remit serve: stopped");
    Ok(ExitCode::SUCCESS)
}

fn print_summary(data: &DataDir, database: &Database, url: &str) {
    println!("remit serve");
    println!("  data directory  {}", data.path.display());
    for file in &data.created {
        println!("  created         {}", file.display());
    }
    println!("  database        {}", database.shown());
    println!("  issuer key      {}", data.issuer.key_id());
    println!("  receipt key     {}", data.receipt.key_id());
    println!("  listening on    {url}");
    match &data.new_admin_token {
        Some(token) => {
            println!();
            println!("Admin token (shown only now; only its hash is kept):");
            println!("  {token}");
            println!();
            println!("Next: give an agent a key and register it:");
            println!("  export REMIT_ADMIN_TOKEN={token}");
            println!("  remit keys generate --out agent.jwk > agent.pub.jwk");
        }
        None => {
            println!();
            println!("The admin token was shown at first start; to replace it, stop the server,");
            println!(
                "delete {} and start again.",
                data.path.join("admin-token.sha256").display()
            );
            println!();
            println!("Next: give an agent a key and register it:");
            println!("  remit keys generate --out agent.jwk > agent.pub.jwk");
        }
    }
    println!(
        "  curl -sS -H \"Authorization: Bearer $REMIT_ADMIN_TOKEN\" -H 'Content-Type: application/json' \\\n    -d '{{\"name\":\"my-agent\",\"owner\":\"you@example.com\",\"public_jwk\":'\"$(cat agent.pub.jwk)\"'}}' {url}/v1/agents"
    );
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
