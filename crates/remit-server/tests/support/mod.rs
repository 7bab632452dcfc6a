//! What the integration tests of `remit-server` share: the application
//! served on 127.0.0.1:0 over SQLite or PostgreSQL (own schema per test),
//! a raw HTTP/1.1 client for it, and remit chain helpers.
// Every test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use remit_server::oidc::OidcVerifier;
use remit_server::state::{IssuerJwks, IssuerKey};
use remit_server::{AppState, FileReceiptLog, Gateway, GatewayConfig, ReceiptLog, Settings};
use remit_store::{PgStore, SqliteStore, Store};
use remit_token::{
    delegate, DelegateRequest, EcdsaP256Signer, Grant, Pattern, PrivateJwk, Signer as _,
    UnverifiedChain, UnverifiedRemit,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Seconds since the Unix epoch, by the test's own clock.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The SQLite store of a test server whose folder is `dir`.
pub async fn sqlite_store(dir: &Path) -> SqliteStore {
    SqliteStore::open(&dir.join("t.db")).await.unwrap()
}

/// A receipt log in `dir`, signed by a fresh key.
pub fn receipt_log(dir: &Path) -> Arc<FileReceiptLog> {
    let key = EcdsaP256Signer::generate().unwrap();
    Arc::new(FileReceiptLog::open(dir, key, "remit.test/receipts").unwrap())
}

/// A fresh admin token and the hash a server keeps of it.
pub fn admin_token() -> (String, [u8; 32]) {
    let token = remit_server::setup::new_admin_token().unwrap();
    let hash = remit_server::setup::sha256(token.as_bytes());
    (token, hash)
}

/// How [`serve`] sets a server up; the default is a fresh issuer key, a
/// file receipt log in the server's folder, its own address as its public
/// URL and no trusted OpenID Connect issuer.
#[derive(Default)]
pub struct Options {
    /// The key it signs remits with.
    pub issuer: Option<EcdsaP256Signer>,
    /// Where its receipts go.
    pub receipts: Option<Arc<dyn ReceiptLog>>,
    /// Its public URL (the `iss` it mints and accepts): replicas behind one
    /// load balancer share one.
    pub public_url: Option<String>,
    /// The OpenID Connect issuers it trusts.
    pub oidc: Arc<OidcVerifier>,
    /// Holds only the issuer's public JWKS, as `remit wrap` does: it
    /// verifies remits the issuer key mints elsewhere and mints none.
    pub verify_only: bool,
    /// The per-peer limit on unauthenticated refusals (default: Remit's).
    pub unauthenticated: Option<remit_server::anonymous::Limits>,
}

/// An application served on 127.0.0.1:0 until the test ends.
pub struct Served<S: Store> {
    pub addr: SocketAddr,
    pub admin_token: String,
    pub state: Gateway<S>,
    /// The issuer key (held by the state unless `verify_only`).
    pub issuer: PrivateJwk,
}

/// Serves the application over `store`, as `options` say, on a free
/// loopback port; `dir` holds the default receipt log.
pub async fn serve<S: Store>(store: S, dir: &Path, options: Options) -> Served<S> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (admin_token, hash) = admin_token();
    let issuer = options
        .issuer
        .unwrap_or_else(|| EcdsaP256Signer::generate().unwrap());
    let private = issuer.to_private_jwk().unwrap();
    let issuer = if options.verify_only {
        let jwks = remit_server::state::published_jwks(&issuer).to_string();
        IssuerKey::Verifying(IssuerJwks::from_json(&jwks).unwrap())
    } else {
        IssuerKey::Signing(issuer)
    };
    let receipts = options.receipts.unwrap_or_else(|| receipt_log(dir));
    let mut settings = Settings::new(
        options
            .public_url
            .unwrap_or_else(|| format!("http://{addr}")),
    );
    settings.oidc = options.oidc;
    if let Some(limits) = options.unauthenticated {
        settings.unauthenticated = limits;
    }
    let state = AppState::new(store, issuer, hash, settings, receipts)
        .await
        .unwrap();
    let state = Gateway::new(state, GatewayConfig::default()).unwrap();
    tokio::spawn(remit_server::launch::run(
        state.clone(),
        listener,
        std::future::pending(),
    ));
    Served {
        addr,
        admin_token,
        state,
        issuer: private,
    }
}

/// Where a test server's database is, to reopen it or write to it directly.
#[derive(Clone)]
pub enum Db {
    Sqlite(PathBuf),
    Postgres { url: String, schema: String },
}

impl Db {
    /// Runs SQL on the database behind the server's back.
    pub async fn execute(&self, sql: &str) {
        use sqlx::Connection as _;
        match self {
            Self::Sqlite(path) => {
                let url = format!("sqlite://{}", path.display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
                    sqlx::query(statement).execute(&mut conn).await.unwrap();
                }
            }
            Self::Postgres { url, schema } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                let sql = format!("SET search_path TO \"{schema}\"; {sql}");
                for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
                    sqlx::query(statement).execute(&mut conn).await.unwrap();
                }
            }
        }
    }
}

/// A served application and what a test talks to it with: its address, its
/// admin token and its database.
pub struct Server {
    pub addr: SocketAddr,
    pub token: String,
    /// The issuer key, so a restarted server verifies the same remits.
    pub issuer: PrivateJwk,
    pub db: Db,
    /// Its public URL (shared by a restarted server).
    pub public: String,
    /// The private keys of the agents [`Server::register`] made, by id.
    pub keys: Arc<std::sync::Mutex<std::collections::HashMap<String, PrivateJwk>>>,
    _dir: tempfile::TempDir,
}

/// Serves `store` (which is `db`) with its files in `dir`.
pub async fn start<S: Store>(store: S, db: Db, dir: tempfile::TempDir, options: Options) -> Server {
    let served = serve(store, dir.path(), options).await;
    Server {
        addr: served.addr,
        token: served.admin_token,
        issuer: served.issuer,
        db,
        public: served.state.settings().public_url.clone(),
        keys: Arc::default(),
        _dir: dir,
    }
}

/// A server on SQLite with the default [`Options`].
pub async fn sqlite() -> Server {
    sqlite_with(Options::default()).await
}

/// A server on SQLite set up as `options` say.
pub async fn sqlite_with(options: Options) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let db = Db::Sqlite(dir.path().join("t.db"));
    start(store, db, dir, options).await
}

/// A server on PostgreSQL with the default [`Options`], or `None` as
/// [`postgres_store`] says.
pub async fn postgres() -> Option<Server> {
    postgres_with(Options::default()).await
}

/// A server on PostgreSQL set up as `options` say, or `None` as
/// [`postgres_store`] says.
pub async fn postgres_with(options: Options) -> Option<Server> {
    let (store, db) = postgres_store().await?;
    Some(start(store, db, tempfile::tempdir().unwrap(), options).await)
}

/// A store in a fresh schema of the test database (named after the test
/// binary), or `None` (with a note) when no server is configured and none
/// is required by `REMIT_TEST_REQUIRE_POSTGRES=1`.
pub async fn postgres_store() -> Option<(PgStore, Db)> {
    let required = std::env::var("REMIT_TEST_REQUIRE_POSTGRES").as_deref() == Ok("1");
    let url = match std::env::var("REMIT_TEST_DATABASE_URL") {
        Ok(url) => url,
        Err(_) if required => {
            panic!("REMIT_TEST_REQUIRE_POSTGRES=1 but REMIT_TEST_DATABASE_URL is unset")
        }
        Err(_) => {
            eprintln!("REMIT_TEST_DATABASE_URL unset: PostgreSQL scenario not run");
            return None;
        }
    };
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let schema = format!("{}_{}", env!("CARGO_CRATE_NAME"), hex::encode(bytes));
    match PgStore::connect_in_schema(&url, &schema).await {
        Ok(store) => Some((store, Db::Postgres { url, schema })),
        Err(e) if required => panic!("PostgreSQL required but unreachable: {e}"),
        Err(e) => {
            eprintln!("PostgreSQL unreachable ({e}): scenario not run");
            None
        }
    }
}

/// An HTTP answer as read off the wire: the status, the head (status line
/// and headers) and the body, de-chunked.
pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Reply {
    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// Whether the body is an RFC 9457 problem.
    pub fn is_problem(&self) -> bool {
        self.headers
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json")
    }
}

/// The payload of a `transfer-encoding: chunked` body.
pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

impl Server {
    /// Another process on the same database with the same issuer key and
    /// public URL, as a replica started after this one (or this one
    /// restarted).
    pub async fn restart(&self) -> Server {
        let options = Options {
            issuer: Some(EcdsaP256Signer::from_jwk(&self.issuer).unwrap()),
            public_url: Some(self.url()),
            ..Options::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let mut replica = match &self.db {
            Db::Sqlite(path) => {
                let store = SqliteStore::open(path).await.unwrap();
                start(store, self.db.clone(), dir, options).await
            }
            Db::Postgres { url, schema } => {
                let store = PgStore::connect_in_schema(url, schema).await.unwrap();
                start(store, self.db.clone(), dir, options).await
            }
        };
        replica.keys = Arc::clone(&self.keys);
        replica
    }

    /// Its public URL.
    pub fn url(&self) -> String {
        self.public.clone()
    }

    /// Sends `request` (a whole HTTP/1.1 request, `connection: close`) and
    /// reads the answer to the end.
    pub async fn raw(&self, request: String) -> Reply {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head[9..12].parse().unwrap();
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        Reply {
            status,
            headers: head.to_owned(),
            body,
        }
    }

    /// A request with `Authorization: <auth>` and `Content-Type:
    /// <content_type>` when given.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        content_type: Option<&str>,
        body: &str,
    ) -> Reply {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        self.send_headers(method, path, &headers, content_type, body)
            .await
    }

    /// [`Server::send`] with any extra headers.
    pub async fn send_headers(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        content_type: Option<&str>,
        body: &str,
    ) -> Reply {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(ct) = content_type {
            request.push_str(&format!("content-type: {ct}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        self.raw(request).await
    }

    /// The admin token as an `Authorization` value.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// `GET path` as the admin.
    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, Some(&self.bearer()), None, "").await
    }

    /// `POST path` of JSON `body` as the admin.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(
            "POST",
            path,
            Some(&self.bearer()),
            Some("application/json"),
            &body.to_string(),
        )
        .await
    }

    /// `POST path` of the form `token=<token>` as the admin (RFC 7662
    /// introspection, RFC 7009 revocation).
    pub async fn form(&self, path: &str, token: &str) -> Reply {
        self.send(
            "POST",
            path,
            Some(&self.bearer()),
            Some("application/x-www-form-urlencoded"),
            &format!("token={token}"),
        )
        .await
    }

    /// Registers agent `id` owned by `owner` (the standard policy lets a
    /// user issue only to their own agents); returns its key.
    pub async fn register(&self, id: &str, owner: &str) -> EcdsaP256Signer {
        let key = EcdsaP256Signer::generate().unwrap();
        let reply = self
            .post(
                "/v1/agents",
                &json!({"id": id, "public_jwk": key.public_jwk(), "owner": owner, "risk_tier": "low"}),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        self.keys
            .lock()
            .unwrap()
            .insert(id.to_owned(), key.to_private_jwk().unwrap());
        key
    }

    /// The key [`Server::register`] made for agent `id`.
    pub fn key_of(&self, id: &str) -> Option<EcdsaP256Signer> {
        let keys = self.keys.lock().unwrap();
        keys.get(id).map(|k| EcdsaP256Signer::from_jwk(k).unwrap())
    }

    /// A root remit for `agent` on behalf of `sub` over `tools`.
    pub async fn issue(&self, agent: &str, sub: &str, tools: &[&str]) -> String {
        let reply = self
            .post(
                "/v1/remits",
                &json!({"agent": agent, "sub": sub, "grants": [{"type": "remit_tool", "tools": tools}], "ttl_secs": 300}),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.json()["remit"].as_str().unwrap().to_owned()
    }

    /// `POST /v1/revocations` of `kind` and `value` as the admin.
    pub async fn revoke(&self, kind: &str, value: &str) -> Reply {
        self.post("/v1/revocations", &json!({"kind": kind, "value": value}))
            .await
    }

    /// The introspection answer for `chain`.
    pub async fn introspect(&self, chain: &str) -> Value {
        let reply = self.form("/oauth/introspect", chain).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }

    /// Whether introspection calls `chain` active.
    pub async fn active(&self, chain: &str) -> bool {
        self.introspect(chain).await["active"].as_bool().unwrap()
    }

    /// The signed receipts the server wrote (the first 1000), parsed.
    pub async fn signed_receipts(&self) -> Vec<Value> {
        let reply = self.get("/v1/receipts?from=0&limit=1000").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["leaves"]
            .as_array()
            .unwrap()
            .iter()
            .map(|leaf| serde_json::from_str(leaf.as_str().unwrap()).unwrap())
            .collect()
    }

    /// The receipts the server wrote (the first 1000), without signatures.
    pub async fn receipts(&self) -> Vec<Value> {
        self.signed_receipts()
            .await
            .into_iter()
            .map(|signed| signed["receipt"].clone())
            .collect()
    }
}

/// The last link of `chain`, unverified.
pub fn leaf(chain: &str) -> UnverifiedRemit {
    UnverifiedRemit::parse(chain.rsplit('~').next().unwrap()).unwrap()
}

/// The `jti` of `chain`'s last link.
pub fn jti(chain: &str) -> String {
    leaf(chain).claims().jti.clone()
}

/// `chain` delegated offline by `holder` (its leaf's key) to `agent`,
/// holding `to`, for `tool`.
pub fn extend(
    chain: &str,
    holder: &EcdsaP256Signer,
    agent: &str,
    to: &EcdsaP256Signer,
    tool: &str,
) -> String {
    let parsed = UnverifiedChain::parse(chain).unwrap();
    let grants = vec![Grant::tools(vec![Pattern::try_from(tool).unwrap()])];
    let child = delegate(
        &parsed,
        holder,
        &DelegateRequest::new(agent, to.public_jwk().clone(), grants),
        now(),
    )
    .unwrap();
    format!("{chain}~{child}")
}

/// Makes each named `async fn(Server)` scenario of the calling module two
/// tests, `sqlite::NAME` and `postgres::NAME` (the latter passes without
/// running when [`postgres_store`] says `None`).
#[allow(unused_macros)] // as `dead_code` above: not every binary uses it
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name($crate::support::sqlite().await).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() {
                if let Some(server) = $crate::support::postgres().await { super::$name(server).await }
            })*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;

/// `text` percent-encoded for an `application/x-www-form-urlencoded` body.
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An ES256 JWT over `claims` signed by `key` (an agent's assertion).
pub fn sign_jwt(key: &EcdsaP256Signer, claims: &Value) -> String {
    let header = remit_token::b64::encode(br#"{"alg":"ES256","typ":"JWT"}"#);
    let input = format!("{header}.{}", remit_token::b64::encode(claims.to_string()));
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", remit_token::b64::encode(sig))
}
