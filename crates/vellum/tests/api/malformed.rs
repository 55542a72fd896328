//! A corpus of malformed requests sent to every route of the server, with and without valid
//! credentials: broken and mistyped JSON, deep nesting, huge strings, wrong content types,
//! malformed ids in paths, bad query strings. Every answer must be a 4xx (never a 5xx) with a
//! JSON body holding string `message` and `code`, must carry `X-Request-ID`, and must leave the
//! store as it was.
//!
//! Requests are written byte for byte on a plain TCP connection, so that nothing on the client
//! side normalises a path, re-encodes a query or fixes a header. Each test collects every
//! failure and reports them all at once.
//!
//! The routes table below is read off the routers (`crates/vellum-http/src/*.rs` `routes()` and
//! `dashboard/mod.rs`); `every_route_in_the_table_is_served` checks it against the server.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::exports::finished_export;
use crate::helpers::{TestApp, json_ok};

pub const OPERATOR_EMAIL: &str = "operator@example.com";
pub const OPERATOR_PASSWORD: &str = "correct horse battery staple";

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1
// ---------------------------------------------------------------------------------------------

/// One request, exactly as it goes on the wire.
#[derive(Clone, Debug)]
pub struct Raw {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn new(method: &str, target: impl Into<String>) -> Self {
        Self {
            method: method.to_owned(),
            target: target.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn json(self, value: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(serde_json::to_vec(value).expect("json"))
    }

    fn bytes(&self, host: &str) -> Vec<u8> {
        let mut bytes = format!(
            "{} {} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n",
            self.method, self.target
        )
        .into_bytes();
        for (name, value) in &self.headers {
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(format!("content-length: {}\r\n\r\n", self.body.len()).as_bytes());
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// A short description for failure reports.
    pub fn describe(&self) -> String {
        let mut target: String = self.target.chars().take(140).collect();
        if self.target.len() > 140 {
            target.push_str(&format!("…({} bytes)", self.target.len()));
        }
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(100)]).into_owned();
        let more = if self.body.len() > 100 {
            format!("…({} bytes)", self.body.len())
        } else {
            String::new()
        };
        format!("{} {target} {body:?}{more}", self.method)
    }
}

/// One answer, read whole.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn excerpt(&self) -> String {
        let text = self.text();
        let mut excerpt: String = text.chars().take(240).collect();
        if text.len() > 240 {
            excerpt.push('…');
        }
        excerpt
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|pair| pair == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        body = &body[line_end + 2..];
        if size == 0 || body.len() < size {
            out.extend_from_slice(&body[..size.min(body.len())]);
            return out;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[(size + 2).min(body.len())..];
    }
}

/// Sends one request on its own connection and reads the answer until the server closes.
pub async fn send_raw(app: &TestApp, raw: &Raw) -> Result<Reply, String> {
    let host = app.address.trim_start_matches("http://").to_owned();
    let stream = TcpStream::connect(&host)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let (mut reader, mut writer) = stream.into_split();
    let bytes = raw.bytes(&host);
    // Write while reading: the server may answer (413, 415) before it has read the body.
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&bytes).await;
        let _ = writer.flush().await;
        writer
    });
    let mut received = Vec::new();
    // To the end of the connection, or, for a live tail (which never ends), to its first message.
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let mut chunk = [0_u8; 16 * 1024];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) => return Ok(()),
                Ok(read) => received.extend_from_slice(&chunk[..read]),
                Err(error) => return Err(error),
            }
            if let Some(head_end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..head_end]).to_ascii_lowercase();
                if head.contains("content-type: text/event-stream")
                    && received[head_end + 4..].windows(2).any(|window| window == b"\n\n")
                {
                    return Ok(());
                }
            }
        }
    })
    .await;
    drop(writing.await);
    match read {
        Err(_) => return Err("no answer within 30 s".into()),
        Ok(Err(error)) if received.is_empty() => return Err(format!("read: {error}")),
        Ok(_) => {}
    }
    let Some(head_end) = received.windows(4).position(|window| window == b"\r\n\r\n") else {
        return Err(format!(
            "no complete answer: {:?}",
            String::from_utf8_lossy(&received[..received.len().min(200)])
        ));
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status line: {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut body = received[head_end + 4..].to_vec();
    if headers
        .iter()
        .any(|(name, value)| name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(Reply { status, headers, body })
}

// ---------------------------------------------------------------------------------------------
// The seeded server
// ---------------------------------------------------------------------------------------------

/// A server with an operator signed in and a little of everything stored.
pub struct Fixture {
    pub app: TestApp,
    /// `vellum_session=…`.
    pub cookie: String,
    pub csrf: String,
    pub organization: String,
    pub external_id: String,
    pub event: String,
    pub other_event: String,
    pub legacy_event: String,
    pub export: String,
    /// A log stream (inactive: it delivers nothing).
    pub stream: String,
    /// `expires=…&signature=…` of the export's download link.
    pub download_query: String,
    pub api_key_id: String,
    /// `vellum_portal=…` of an `audit_logs` portal session of the organization, and its CSRF token.
    pub portal: (String, String),
    /// The same of a `log_streams` portal session.
    pub portal_streams: (String, String),
    /// A viewer token of the organization.
    pub viewer_token: String,
}

/// Opens a portal session of `intent` for `organization`: its cookie and CSRF token.
pub async fn portal_session(app: &TestApp, organization: &str, intent: &str) -> (String, String) {
    let link = json_ok_status(
        app.post_json(
            "/portal/generate_link",
            &json!({"organization": organization, "intent": intent}),
        )
        .await,
        201,
    )
    .await["link"]
        .as_str()
        .expect("link")
        .to_owned();
    let path = link.strip_prefix(&app.address).expect("a link to this server");
    let reply = send_raw(app, &Raw::new("GET", path)).await.expect("launch answered");
    assert_eq!(reply.status, 303, "{}", reply.text());
    let cookie = reply
        .header("set-cookie")
        .and_then(|value| value.split(';').next())
        .expect("a portal cookie")
        .to_owned();
    let session = send_raw(app, &Raw::new("GET", "/portal/api/session").header("cookie", &cookie))
        .await
        .expect("session answered");
    let csrf = session.json().expect("json")["csrf_token"]
        .as_str()
        .expect("csrf token")
        .to_owned();
    (cookie, csrf)
}

async fn json_ok_status(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    response.json().await.expect("json")
}

/// Starts a server with the corpus operator.
pub async fn spawn_with_operator() -> TestApp {
    TestApp::spawn_with(|settings| {
        settings.admin = Some(vellum::config::AdminBootstrap {
            email: vellum_core::operator::Email::parse(OPERATOR_EMAIL).expect("email"),
            password: OPERATOR_PASSWORD.into(),
        });
    })
    .await
}

/// Signs the operator in and returns the session cookie and its CSRF token.
pub async fn sign_in(app: &TestApp) -> (String, String) {
    let reply = send_raw(
        app,
        &Raw::new("POST", "/dashboard/api/session")
            .json(&json!({"email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD})),
    )
    .await
    .expect("sign-in answered");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let cookie = reply
        .header("set-cookie")
        .and_then(|value| value.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let csrf = reply.json().expect("json")["csrf_token"]
        .as_str()
        .expect("csrf token")
        .to_owned();
    (cookie, csrf)
}

fn event_body(actor: &str, day: u32) -> Value {
    json!({
        "action": "user.signed_in",
        "occurred_at": format!("2026-01-{day:02}T12:00:00.000Z"),
        "actor": {"id": actor, "type": "user", "name": format!("{actor} name")},
        "targets": [{"id": "team_1", "type": "team"}],
        "context": {"location": "192.0.2.1"},
    })
}

impl Fixture {
    pub async fn start() -> Self {
        let app = spawn_with_operator().await;
        let (cookie, csrf) = sign_in(&app).await;
        let external_id = "corpus-ext".to_owned();
        let organization = app
            .create_organization(&json!({"name": "Corpus", "external_id": external_id, "domains": ["corpus.example"]}))
            .await["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let other_organization = app.organization("Corpus Other").await;
        app.create_schema("user.signed_in", &json!({"targets": [{"type": "team"}]}))
            .await;
        let events = app
            .ingest_batch(
                &organization,
                (1..=3).map(|day| event_body(&format!("user_{day}"), day)).collect(),
            )
            .await;
        let other_events = app
            .ingest_batch(&other_organization, vec![event_body("other_user", 4)])
            .await;
        let legacy = app
            .post_json(
                "/events",
                &json!({
                    "group": "corpus-group", "location": "192.0.2.8", "action": "document.updated",
                    "action_type": "U", "actor_name": "Jane", "actor_id": "user_1",
                    "target_name": "Doc", "target_id": "doc_1", "occurred_at": "2026-02-01T00:00:00Z",
                }),
            )
            .await;
        assert_eq!(legacy.status(), reqwest::StatusCode::CREATED);
        let legacy_event = json_ok(app.get("/events?limit=1").await).await["data"][0]["id"]
            .as_str()
            .expect("legacy id")
            .to_owned();
        let retention = app
            .send_json(
                reqwest::Method::PUT,
                &format!("/organizations/{organization}/audit_logs_retention"),
                &json!({"retention_period": "1_YEAR"}),
            )
            .await;
        assert_eq!(retention.status(), reqwest::StatusCode::OK);
        let export = finished_export(
            &app,
            json!({"organization_id": organization, "range_start": "2026-01-01T00:00:00Z", "range_end": "2027-01-01T00:00:00Z"}),
        )
        .await;
        assert_eq!(export["state"], "ready", "{export}");
        let url = export["url"].as_str().expect("url");
        let download_query = url.split_once('?').expect("a signed link").1.to_owned();
        // One checkpoint signed before anything is compared.
        let checkpoint = app
            .get(&format!("/audit_logs/log/checkpoint?organization_id={organization}"))
            .await;
        assert_eq!(checkpoint.status(), reqwest::StatusCode::OK);
        let stream = app
            .post_json(
                "/audit_logs/streams",
                &json!({"organization_id": organization, "type": "GenericHttps", "state": "inactive",
                        "config": {"url": "https://corpus-stream.example/hook"}}),
            )
            .await;
        assert_eq!(stream.status(), reqwest::StatusCode::CREATED);
        let stream: Value = stream.json().await.expect("json");
        let portal = portal_session(&app, &organization, "audit_logs").await;
        let portal_streams = portal_session(&app, &organization, "log_streams").await;
        let viewer_token = json_ok_status(
            app.post_json("/audit_logs/viewer_tokens", &json!({"organization_id": organization}))
                .await,
            201,
        )
        .await["token"]
            .as_str()
            .expect("token")
            .to_owned();
        let fixture = Self {
            portal,
            portal_streams,
            viewer_token,
            stream: stream["id"].as_str().expect("id").to_owned(),
            cookie,
            csrf,
            organization,
            external_id,
            event: events[0].clone(),
            other_event: other_events[0].clone(),
            legacy_event,
            export: export["id"].as_str().expect("id").to_owned(),
            download_query,
            api_key_id: String::new(),
            app,
        };
        let keys = fixture
            .send(&Raw::new("GET", "/dashboard/api/api_keys"), Credential::Session)
            .await
            .expect("api keys");
        let api_key_id = keys.json().expect("json")["data"][0]["id"]
            .as_str()
            .expect("an api key")
            .to_owned();
        Self { api_key_id, ..fixture }
    }

    /// Sends a request with a credential added.
    pub async fn send(&self, raw: &Raw, credential: Credential) -> Result<Reply, String> {
        let raw = match credential {
            Credential::None => raw.clone(),
            Credential::ApiKey => raw
                .clone()
                .header("authorization", format!("Bearer {}", self.app.api_key)),
            Credential::Session => {
                let raw = raw.clone().header("cookie", &self.cookie);
                if raw.method == "GET" || raw.method == "HEAD" {
                    raw
                } else {
                    raw.header("x-csrf-token", &self.csrf)
                }
            }
            Credential::SessionWithoutCsrf => raw.clone().header("cookie", &self.cookie),
            Credential::Portal | Credential::PortalStreams => {
                let (cookie, csrf) = if credential == Credential::Portal {
                    &self.portal
                } else {
                    &self.portal_streams
                };
                let raw = raw.clone().header("cookie", cookie);
                if raw.method == "GET" || raw.method == "HEAD" {
                    raw
                } else {
                    raw.header("x-csrf-token", csrf)
                }
            }
            Credential::PortalWithoutCsrf => raw.clone().header("cookie", &self.portal.0),
            Credential::Viewer => raw
                .clone()
                .header("authorization", format!("Bearer {}", self.viewer_token)),
        };
        send_raw(&self.app, &raw).await
    }

    /// A digest of everything stored, read through the API and straight from the database.
    pub async fn snapshot(&self) -> Snapshot {
        let mut api = BTreeSet::new();
        let read = |path: String| async move {
            let reply = self
                .send(&Raw::new("GET", path.clone()), Credential::ApiKey)
                .await
                .expect("answered");
            assert_eq!(reply.status, 200, "{path}: {}", reply.text());
            (path, reply.json().expect("json"))
        };
        let mut organizations = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                Some(cursor) => format!("/organizations?limit=100&after={cursor}"),
                None => "/organizations?limit=100".to_owned(),
            };
            let (path, page) = read(path).await;
            for organization in page["data"].as_array().expect("data") {
                organizations.push(organization["id"].as_str().expect("id").to_owned());
            }
            api.insert(format!("{path} {page}"));
            match page["list_metadata"]["after"].as_str() {
                Some(cursor) => after = Some(cursor.to_owned()),
                None => break,
            }
        }
        for organization in &organizations {
            for path in [
                format!("/organizations/{organization}/audit_logs_retention"),
                format!("/organizations/{organization}/audit_log_configuration"),
                format!("/audit_logs/log/entries?organization_id={organization}&start=0"),
            ] {
                let (path, body) = read(path).await;
                api.insert(format!("{path} {body}"));
            }
            let events = self.app.all_events(organization).await;
            api.insert(format!("events of {organization}: {}", Value::Array(events)));
        }
        let (path, actions) = read("/audit_logs/actions?limit=100".to_owned()).await;
        api.insert(format!("{path} {actions}"));
        for action in actions["data"].as_array().expect("data") {
            let name = action["name"].as_str().expect("name");
            let (path, schemas) = read(format!("/audit_logs/actions/{name}/schemas?limit=100")).await;
            api.insert(format!("{path} {schemas}"));
        }
        let (path, legacy) = read("/events?limit=100".to_owned()).await;
        api.insert(format!("{path} {legacy}"));
        let (path, mut export) = read(format!("/audit_logs/exports/{}", self.export)).await;
        // The link is signed anew on every read.
        export["url"] = Value::Null;
        api.insert(format!("{path} {export}"));
        let keys = self
            .send(&Raw::new("GET", "/dashboard/api/api_keys"), Credential::Session)
            .await
            .expect("answered");
        api.insert(format!("api keys {}", keys.text()));
        Snapshot {
            api,
            tables: database_digest(&self.app),
        }
    }
}

/// What a request is sent with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    None,
    ApiKey,
    Session,
    SessionWithoutCsrf,
    Portal,
    PortalStreams,
    PortalWithoutCsrf,
    Viewer,
}

/// Everything stored, in two readings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    api: BTreeSet<String>,
    tables: Vec<(String, u64, u64)>,
}

impl Snapshot {
    /// What differs, for a failure report.
    pub fn difference(&self, later: &Self) -> String {
        let mut report = String::new();
        for line in self.api.symmetric_difference(&later.api) {
            let side = if self.api.contains(line) { "before" } else { "after" };
            report.push_str(&format!("\n  {side}: {}", line.chars().take(400).collect::<String>()));
        }
        for (before, after) in self.tables.iter().zip(&later.tables) {
            if before != after {
                report.push_str(&format!("\n  table {}: {before:?} -> {after:?}", before.0));
            }
        }
        report
    }
}

/// For every table of the store: its row count and a hash of its rows.
pub fn database_digest(app: &TestApp) -> Vec<(String, u64, u64)> {
    if let Some(url) = crate::helpers::database_url_for(app.data_dir.path()) {
        return vellum_store::postgres::testing::table_digests(&url);
    }
    let connection = rusqlite::Connection::open_with_flags(
        app.data_dir.path().join("vellum.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("the store opens read-only");
    let tables: Vec<String> = connection
        .prepare("select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name")
        .expect("sql")
        .query_map([], |row| row.get(0))
        .expect("tables")
        .collect::<Result<_, _>>()
        .expect("names");
    tables
        .into_iter()
        .map(|table| {
            let mut statement = connection.prepare(&format!("select * from \"{table}\"")).expect("sql");
            let columns = statement.column_count();
            let mut rows: Vec<String> = statement
                .query_map([], |row| {
                    let mut text = String::new();
                    for index in 0..columns {
                        text.push_str(&format!("{:?}|", row.get_ref(index)?));
                    }
                    Ok(text)
                })
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("values");
            rows.sort();
            let mut hasher = DefaultHasher::new();
            rows.hash(&mut hasher);
            (table, rows.len() as u64, hasher.finish())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The routes table
// ---------------------------------------------------------------------------------------------

/// How a route authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    ApiKey,
    Session,
    /// An Admin Portal session of intent `audit_logs` (cookie `vellum_portal`).
    Portal,
    /// An Admin Portal session of intent `log_streams`.
    PortalStreams,
    /// An embedded viewer's token (`Authorization: Bearer vt_…`).
    Viewer,
    /// No credential: probes, the signed download link, sign-in, the page.
    Public,
}

/// What a path parameter names, which decides the malformed values it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Organization,
    ExternalId,
    Event,
    Export,
    Stream,
    ApiKey,
    /// An action to read.
    Action,
    /// An action to create a schema version for: only names the rules refuse are sent.
    NewAction,
    Asset,
    /// A client-side page of the dashboard: any path is the page.
    Page,
}

/// A request body: a valid one (never sent as is to a route that writes) and its variations.
#[derive(Clone, Debug)]
pub struct BodySpec {
    pub valid: Value,
    /// JSON Pointers into `valid` where `null` is a valid value.
    pub nullable: Vec<&'static str>,
    /// Optional members, added one at a time with wrong types: (pointer, allowed JSON types).
    pub optional: Vec<(&'static str, &'static [Kind])>,
    /// Pointers under this prefix are checked per item: the request answers 200 with the item
    /// refused (a batch).
    pub per_item: Option<&'static str>,
    /// The valid body as an array of its members in declaration order, where a derived serde
    /// struct would read one.
    pub positional: Option<Value>,
    /// `{}` is refused (some member is required).
    pub requires_members: bool,
}

#[derive(Clone, Debug)]
pub struct Route {
    pub method: &'static str,
    pub template: String,
    pub auth: Auth,
    /// Changes the store when valid: only refusals are sent.
    pub writes: bool,
    pub params: Vec<(&'static str, String, Slot)>,
    /// A valid query for the route.
    pub base_query: Vec<(&'static str, String)>,
    /// Single-valued parameters the route reads and checks.
    pub strict: Vec<&'static str>,
    pub body: Option<BodySpec>,
    /// Answers HTML or a file rather than JSON when it succeeds.
    pub not_json: bool,
}

/// The JSON types, for wrong-type variations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

fn kind_of(value: &Value) -> Kind {
    match value {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::Array,
        Value::Object(_) => Kind::Object,
    }
}

fn example(kind: Kind) -> Value {
    match kind {
        Kind::Null => Value::Null,
        Kind::Bool => json!(true),
        Kind::Number => json!(-7.5),
        Kind::String => json!("corpus"),
        Kind::Array => json!([]),
        Kind::Object => json!({}),
    }
}

const ALL_KINDS: [Kind; 6] = [
    Kind::Null,
    Kind::Bool,
    Kind::Number,
    Kind::String,
    Kind::Array,
    Kind::Object,
];

const PAGING: [&str; 4] = ["limit", "order", "before", "after"];

fn route(method: &'static str, template: &str, auth: Auth) -> Route {
    Route {
        method,
        template: template.to_owned(),
        auth,
        writes: method != "GET",
        params: Vec::new(),
        base_query: Vec::new(),
        strict: Vec::new(),
        body: None,
        not_json: false,
    }
}

impl Route {
    fn param(mut self, name: &'static str, value: &str, slot: Slot) -> Self {
        self.params.push((name, value.to_owned(), slot));
        self
    }

    fn query(mut self, name: &'static str, value: &str) -> Self {
        self.base_query.push((name, value.to_owned()));
        self
    }

    fn strict(mut self, names: &[&'static str]) -> Self {
        self.strict.extend_from_slice(names);
        self
    }

    fn body(mut self, body: BodySpec) -> Self {
        self.body = Some(body);
        self
    }

    fn writes(mut self, writes: bool) -> Self {
        self.writes = writes;
        self
    }

    pub fn path_with(&self, replaced: Option<(&str, &str)>) -> String {
        let mut path = self.template.clone();
        for (name, value, _) in &self.params {
            let value = match replaced {
                Some((target, bad)) if target == *name => bad,
                _ => value.as_str(),
            };
            path = path.replace(&format!("{{{name}}}"), value);
        }
        path
    }

    /// The target with the base query, `overrides` replacing or adding pairs (raw text).
    pub fn target(&self, path: &str, overrides: &[(String, String)], raw_tail: Option<&str>) -> String {
        let mut pairs: Vec<(String, String)> = self
            .base_query
            .iter()
            .filter(|(name, _)| !overrides.iter().any(|(key, _)| key == name))
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect();
        pairs.extend(overrides.iter().cloned());
        let mut query: Vec<String> = pairs.iter().map(|(key, value)| format!("{key}={value}")).collect();
        if let Some(tail) = raw_tail {
            query.push(tail.to_owned());
        }
        if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", query.join("&"))
        }
    }

    pub fn credential(&self) -> Credential {
        match self.auth {
            Auth::ApiKey => Credential::ApiKey,
            Auth::Session => Credential::Session,
            Auth::Portal => Credential::Portal,
            Auth::PortalStreams => Credential::PortalStreams,
            Auth::Viewer => Credential::Viewer,
            Auth::Public => Credential::None,
        }
    }

    fn label(&self) -> String {
        format!("{} {}", self.method, self.template)
    }
}

fn spec(valid: Value) -> BodySpec {
    BodySpec {
        valid,
        nullable: Vec::new(),
        optional: Vec::new(),
        per_item: None,
        positional: None,
        requires_members: true,
    }
}

/// Every route the server serves, with valid ids from the fixture.
pub fn routes(fixture: &Fixture) -> Vec<Route> {
    let organization = fixture.organization.as_str();
    let event = fixture.event.as_str();
    let export = fixture.export.as_str();
    let stream = fixture.stream.as_str();
    let organization_body = |valid: Value| BodySpec {
        optional: vec![
            ("/domains", &[Kind::Array][..]),
            ("/domain_data", &[Kind::Array]),
            ("/external_id", &[Kind::String]),
            ("/metadata", &[Kind::Object]),
            ("/stripe_customer_id", &[Kind::String]),
            ("/allow_profiles_outside_organization", &[Kind::Bool]),
        ],
        ..spec(valid)
    };
    let ingest_event = json!({
        "action": "user.signed_in",
        "occurred_at": "2026-03-01T00:00:00.000Z",
        "actor": {"id": "corpus_user", "type": "user"},
        "targets": [{"id": "team_9", "type": "team"}],
        "context": {"location": "192.0.2.9"},
    });
    let event_optional: Vec<(&'static str, &'static [Kind])> = vec![
        ("/event/version", &[Kind::Number]),
        ("/event/actor/name", &[Kind::String]),
        ("/event/actor/metadata", &[Kind::Object]),
        ("/event/targets/0/name", &[Kind::String]),
        ("/event/targets/0/metadata", &[Kind::Object]),
        ("/event/context/user_agent", &[Kind::String]),
        ("/event/metadata", &[Kind::Object]),
    ];

    let mut public = vec![
        // organizations.rs
        route("GET", "/organizations", Auth::ApiKey)
            .strict(&PAGING)
            .strict(&["search"]),
        route("POST", "/organizations", Auth::ApiKey).body(BodySpec {
            positional: Some(json!(["Positional Org", null, null, null, null, null, null])),
            ..organization_body(json!({"name": "Corpus New"}))
        }),
        route("GET", "/organizations/{id}", Auth::ApiKey).param("id", organization, Slot::Organization),
        route("PUT", "/organizations/{id}", Auth::ApiKey)
            .param("id", organization, Slot::Organization)
            .body(BodySpec {
                nullable: vec!["/name"],
                requires_members: false,
                positional: Some(json!(["Renamed By Array", null, null, null, null, null, null])),
                ..organization_body(json!({"name": "Renamed"}))
            }),
        route("DELETE", "/organizations/{id}", Auth::ApiKey).param("id", organization, Slot::Organization),
        route("GET", "/organizations/external_id/{external_id}", Auth::ApiKey).param(
            "external_id",
            &fixture.external_id,
            Slot::ExternalId,
        ),
        // retention.rs
        route("GET", "/organizations/{id}/audit_logs_retention", Auth::ApiKey).param(
            "id",
            organization,
            Slot::Organization,
        ),
        route("PUT", "/organizations/{id}/audit_logs_retention", Auth::ApiKey)
            .param("id", organization, Slot::Organization)
            .body(BodySpec {
                optional: vec![("/retention_period_in_days", &[Kind::Number])],
                positional: Some(json!(["10_YEARS", null])),
                ..spec(json!({"retention_period": "10_YEARS"}))
            }),
        route("GET", "/organizations/{id}/audit_log_configuration", Auth::ApiKey).param(
            "id",
            organization,
            Slot::Organization,
        ),
        route("GET", "/organizations/{id}/audit_logs_legal_hold", Auth::ApiKey).param(
            "id",
            organization,
            Slot::Organization,
        ),
        route("PUT", "/organizations/{id}/audit_logs_legal_hold", Auth::ApiKey)
            .param("id", organization, Slot::Organization)
            .body(BodySpec {
                optional: vec![("/reason", &[Kind::String, Kind::Null])],
                positional: Some(json!([false, null])),
                ..spec(json!({"legal_hold": false}))
            }),
        route("POST", "/audit_logs/erasures", Auth::ApiKey).body(BodySpec {
            optional: vec![("/target_id", &[Kind::String, Kind::Null])],
            ..spec(json!({"organization_id": organization, "actor_id": "nobody_in_this_trail"}))
        }),
        // schemas.rs
        route("GET", "/audit_logs/actions", Auth::ApiKey).strict(&PAGING),
        route("GET", "/audit_logs/actions/{action}/schemas", Auth::ApiKey)
            .param("action", "user.signed_in", Slot::Action)
            .strict(&PAGING),
        route("POST", "/audit_logs/actions/{action}/schemas", Auth::ApiKey)
            .param("action", "corpus.created", Slot::NewAction)
            .body(BodySpec {
                optional: vec![
                    ("/metadata", &[Kind::Object]),
                    ("/actor", &[Kind::Object]),
                    ("/targets/0/metadata", &[Kind::Object]),
                ],
                ..spec(json!({"targets": [{"type": "team"}]}))
            }),
        // events.rs
        route("GET", "/audit_logs/events", Auth::ApiKey)
            .query("organization_id", organization)
            .strict(&PAGING)
            .strict(&["organization_id", "range_start", "range_end", "search"]),
        route("POST", "/audit_logs/events", Auth::ApiKey).body(BodySpec {
            optional: event_optional.clone(),
            positional: Some(json!([
                organization,
                [
                    "user.signed_in",
                    "2026-03-01T00:00:00.000Z",
                    null,
                    ["array_user", "user", null, null],
                    [],
                    ["192.0.2.9", null],
                    null
                ]
            ])),
            ..spec(json!({"organization_id": organization, "event": ingest_event}))
        }),
        route("POST", "/audit_logs/events/batch", Auth::ApiKey).body(BodySpec {
            per_item: Some("/events/0"),
            optional: event_optional
                .iter()
                .map(|(pointer, kinds)| {
                    let pointer: &'static str = Box::leak(pointer.replace("/event/", "/events/0/").into_boxed_str());
                    (pointer, *kinds)
                })
                .collect(),
            positional: Some(json!([organization, [ingest_event]])),
            ..spec(json!({"organization_id": organization, "events": [ingest_event]}))
        }),
        route("GET", "/audit_logs/events/{id}", Auth::ApiKey).param("id", event, Slot::Event),
        // tail.rs: answers server-sent events, not JSON, when it succeeds.
        Route {
            not_json: true,
            ..route("GET", "/audit_logs/events/stream", Auth::ApiKey)
                .query("organization_id", organization)
                .strict(&["organization_id", "range_start", "range_end", "search", "last_event_id"])
        },
        // audit_trail.rs
        route("POST", "/events", Auth::ApiKey).body(BodySpec {
            optional: vec![
                ("/latitude", &[Kind::String, Kind::Number]),
                ("/longitude", &[Kind::String, Kind::Number]),
                ("/metadata", &[Kind::Object]),
            ],
            ..spec(json!({
                "group": "corpus-new-group", "location": "192.0.2.8", "action": "document.viewed",
                "action_type": "R", "actor_name": "Jane", "actor_id": "user_1",
                "target_name": "Doc", "target_id": "doc_1", "occurred_at": "2026-02-02T00:00:00Z",
            }))
        }),
        route("GET", "/events", Auth::ApiKey).strict(&PAGING).strict(&[
            "action_type",
            "occurred_at",
            "occurred_at_gt",
            "occurred_at_gte",
            "occurred_at_lt",
            "occurred_at_lte",
            "search",
        ]),
        // log.rs (a checkpoint is signed on read: it writes)
        route("GET", "/audit_logs/log/checkpoint", Auth::ApiKey)
            .writes(true)
            .query("organization_id", organization)
            .strict(&["organization_id"]),
        route("GET", "/audit_logs/log/public_key", Auth::ApiKey),
        route("GET", "/audit_logs/log/proof/inclusion", Auth::ApiKey)
            .query("organization_id", organization)
            .query("event_id", event)
            .strict(&["organization_id", "event_id", "tree_size"]),
        route("GET", "/audit_logs/log/proof/consistency", Auth::ApiKey)
            .query("organization_id", organization)
            .query("first", "1")
            .query("second", "2")
            .strict(&["organization_id", "first", "second"]),
        route("GET", "/audit_logs/log/entries", Auth::ApiKey)
            .query("organization_id", organization)
            .strict(&["organization_id", "start", "end"]),
        // exports.rs
        route("POST", "/audit_logs/exports", Auth::ApiKey).body(BodySpec {
            optional: vec![
                ("/actions", &[Kind::Array, Kind::Null]),
                ("/actor_names", &[Kind::Array, Kind::Null]),
                ("/actors", &[Kind::Array, Kind::Null]),
                ("/actor_ids", &[Kind::Array, Kind::Null]),
                ("/targets", &[Kind::Array, Kind::Null]),
                ("/format", &[Kind::String, Kind::Null]),
            ],
            ..spec(json!({
                "organization_id": organization,
                "range_start": "2026-01-01T00:00:00Z",
                "range_end": "2027-01-01T00:00:00Z",
            }))
        }),
        route("GET", "/audit_logs/exports/{id}", Auth::ApiKey).param("id", export, Slot::Export),
        // streams.rs
        route("GET", "/audit_logs/streams", Auth::ApiKey)
            .query("organization_id", organization)
            .strict(&["organization_id"]),
        route("POST", "/audit_logs/streams", Auth::ApiKey).body(BodySpec {
            optional: vec![("/state", &[Kind::String, Kind::Null])],
            ..spec(json!({"organization_id": organization, "type": "GenericHttps", "config": {"url": "https://corpus.example/hook"}}))
        }),
        route("GET", "/audit_logs/streams/{id}", Auth::ApiKey).param("id", stream, Slot::Stream),
        route("PUT", "/audit_logs/streams/{id}", Auth::ApiKey)
            .param("id", stream, Slot::Stream)
            .body(BodySpec {
                optional: vec![
                    ("/config", &[Kind::Object, Kind::Null]),
                    ("/rotate_signing_secret", &[Kind::Bool, Kind::Null]),
                ],
                ..spec(json!({"state": "inactive"}))
            }),
        route("DELETE", "/audit_logs/streams/{id}", Auth::ApiKey).param("id", stream, Slot::Stream),
        route("POST", "/audit_logs/streams/{id}/replay", Auth::ApiKey)
            .param("id", stream, Slot::Stream)
            .body(spec(json!({"from_log_index": 0}))),
        route("POST", "/audit_logs/streams/{id}/test", Auth::ApiKey).param("id", stream, Slot::Stream),
    ];
    public.extend([
        // portal/links.rs, portal/viewer.rs
        route("POST", "/portal/generate_link", Auth::ApiKey).body(BodySpec {
            positional: Some(json!([organization, "audit_logs"])),
            ..spec(json!({"organization": organization, "intent": "audit_logs"}))
        }),
        route("POST", "/portal/revoke_link", Auth::ApiKey).body(BodySpec {
            positional: Some(json!([organization, "corpus-admin"])),
            ..spec(json!({"organization": organization, "external_user_id": "corpus-admin"}))
        }),
        route("POST", "/audit_logs/viewer_tokens", Auth::ApiKey).body(BodySpec {
            positional: Some(json!([organization, 600])),
            nullable: vec!["/expires_in"],
            ..spec(json!({"organization_id": organization, "expires_in": 600}))
        }),
    ]);
    // The Admin Portal and the embedded viewer mount the trail's routes (the portal's log
    // streams intent: the streams' routes) a second time, scoped to the organization.
    let scoped: Vec<Route> = public
        .iter()
        .filter(|route| {
            (route.template.starts_with("/audit_logs/events")
                && route.method == "GET"
                && route.template != "/audit_logs/events/batch")
                || route.template.starts_with("/audit_logs/log/")
                || (route.template.starts_with("/audit_logs/exports") && !route.template.ends_with("/download"))
                || route.template.starts_with("/audit_logs/streams")
        })
        .flat_map(|route| {
            let streams = route.template.starts_with("/audit_logs/streams");
            // A scoped request may leave out its organization: the scope's is filled in.
            let mut route = route.clone();
            if let Some(body) = &mut route.body
                && body.valid.get("organization_id").is_some()
            {
                body.nullable.push("/organization_id");
            }
            let portal = Route {
                template: format!("/portal/api{}", route.template),
                auth: if streams { Auth::PortalStreams } else { Auth::Portal },
                ..route.clone()
            };
            let viewer = (!streams).then(|| Route {
                template: format!("/viewer/api{}", route.template),
                auth: Auth::Viewer,
                ..route.clone()
            });
            std::iter::once(portal).chain(viewer)
        })
        .collect();
    // The dashboard mounts these a second time behind a session (ingest and the legacy API
    // excluded).
    let mirrored: Vec<Route> = public
        .iter()
        .filter(|route| {
            !(route.template.starts_with("/audit_logs/events") && route.method == "POST")
                && route.template != "/events"
                && !route.template.starts_with("/portal/")
                && route.template != "/audit_logs/viewer_tokens"
        })
        .map(|route| Route {
            template: format!("/dashboard/api{}", route.template),
            auth: Auth::Session,
            ..route.clone()
        })
        .collect();
    public.extend(mirrored);
    public.extend(scoped);
    let mut page = route("GET", "/dashboard/{*page}", Auth::Public).param("*page", "organizations", Slot::Page);
    page.not_json = true;
    let mut index = route("GET", "/dashboard", Auth::Public);
    index.not_json = true;
    let mut index_slash = route("GET", "/dashboard/", Auth::Public);
    index_slash.not_json = true;
    let mut asset = route("GET", "/dashboard/assets/{file}", Auth::Public).param("file", "viewer.js", Slot::Asset);
    asset.not_json = true;
    // portal/mod.rs: the portal's page and files, and the embeddable viewer's.
    let mut portal_pages: Vec<Route> = ["/portal", "/portal/", "/embed/viewer.js"]
        .into_iter()
        .map(|template| route("GET", template, Auth::Public))
        .chain([
            route("GET", "/portal/assets/{file}", Auth::Public).param("file", "portal.js", Slot::Asset),
            route("GET", "/embed/modules/{file}", Auth::Public).param("file", "viewer.js", Slot::Asset),
        ])
        .collect();
    for page in &mut portal_pages {
        page.not_json = true;
    }
    let mut download = route("GET", "/audit_logs/exports/{id}/download", Auth::Public)
        .param("id", export, Slot::Export)
        .strict(&["expires", "signature"]);
    for pair in fixture.download_query.split('&') {
        let (name, value) = pair.split_once('=').expect("name=value");
        let name: &'static str = if name == "expires" { "expires" } else { "signature" };
        download = download.query(name, value);
    }
    download.not_json = true;
    public.extend([
        download,
        route("GET", "/health", Auth::Public),
        route("GET", "/ready", Auth::Public),
        // dashboard/mod.rs and session.rs
        route("GET", "/dashboard/api/session", Auth::Session),
        route("POST", "/dashboard/api/session", Auth::Public).body(BodySpec {
            positional: Some(json!([OPERATOR_EMAIL, OPERATOR_PASSWORD])),
            ..spec(json!({"email": OPERATOR_EMAIL, "password": "not the password"}))
        }),
        route("DELETE", "/dashboard/api/session", Auth::Session),
        route("GET", "/dashboard/api/api_keys", Auth::Session),
        route("POST", "/dashboard/api/api_keys", Auth::Session).body(BodySpec {
            positional: Some(json!(["positional key"])),
            ..spec(json!({"name": "corpus key"}))
        }),
        route("POST", "/dashboard/api/api_keys/{id}/revoke", Auth::Session).param(
            "id",
            &fixture.api_key_id,
            Slot::ApiKey,
        ),
        route("GET", "/dashboard/api/health", Auth::Session),
        // portal/session.rs, portal/viewer.rs
        route("GET", "/portal/api/session", Auth::Portal),
        route("DELETE", "/portal/api/session", Auth::Portal),
        route("GET", "/viewer/api/token", Auth::Viewer),
        index,
        index_slash,
        asset,
        page,
    ]);
    public.extend(portal_pages);
    public
}

// ---------------------------------------------------------------------------------------------
// Checking answers
// ---------------------------------------------------------------------------------------------

/// What an answer must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A 4xx with a JSON `message` and `code` (and a 401 or 415 where named).
    Refused(Option<u16>),
    /// Anything but a 5xx; a 4xx in the error shape; JSON unless the route serves a page.
    Survives,
    /// A batch that answers 200 with every item refused, or a 4xx.
    ItemsRefused,
}

/// Collects failures, so that a test reports all of them at once.
#[derive(Default)]
pub struct Findings {
    pub failures: Vec<String>,
    pub sent: usize,
}

impl Findings {
    pub fn check(&mut self, raw: &Raw, reply: Result<Reply, String>, expect: Expect, not_json: bool) {
        self.sent += 1;
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                self.failures.push(format!("{}: {error}", raw.describe()));
                return;
            }
        };
        let mut problems = Vec::new();
        if reply.header("x-request-id").is_none() {
            problems.push("no X-Request-ID".to_owned());
        }
        let status = reply.status;
        let error_shape = |problems: &mut Vec<String>| match reply.json() {
            Some(body) if body["message"].is_string() && body["code"].is_string() => {}
            Some(_) => problems.push("the JSON body lacks a string message or code".to_owned()),
            None => problems.push(format!(
                "the body is not JSON (content-type {:?})",
                reply.header("content-type")
            )),
        };
        match expect {
            Expect::Refused(exact) => {
                if !(400..500).contains(&status) {
                    problems.push("expected a 4xx".to_owned());
                } else {
                    error_shape(&mut problems);
                }
                if let Some(exact) = exact
                    && status != exact
                {
                    problems.push(format!("expected {exact}"));
                }
            }
            Expect::Survives => {
                if status >= 500 {
                    problems.push("a 5xx".to_owned());
                } else if status >= 400 {
                    error_shape(&mut problems);
                } else if !not_json && status != 204 && reply.json().is_none() {
                    problems.push("a success without a JSON body".to_owned());
                }
            }
            Expect::ItemsRefused => {
                if status == 200 {
                    let body = reply.json().unwrap_or_default();
                    if body["succeeded"] != json!(0) {
                        problems.push("a batch item was stored".to_owned());
                    }
                } else if !(400..500).contains(&status) {
                    problems.push("expected a 4xx or a batch with every item refused".to_owned());
                } else {
                    error_shape(&mut problems);
                }
            }
        }
        if !problems.is_empty() {
            self.failures.push(format!(
                "{}: {} {} — {}",
                raw.describe(),
                status,
                reply.excerpt(),
                problems.join(", ")
            ));
        }
    }

    pub fn assert_none(&self, what: &str) {
        assert!(
            self.failures.is_empty(),
            "{what}: {} of {} requests failed:\n{}",
            self.failures.len(),
            self.sent,
            self.failures
                .iter()
                .take(300)
                .map(|failure| format!("- {failure}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Sends a request and checks its answer; a request to a route that writes is followed by a
/// check that the database is unchanged, so that a change is pinned on its request.
async fn probe(
    fixture: &Fixture,
    findings: &mut Findings,
    route: &Route,
    raw: Raw,
    credential: Credential,
    expect: Expect,
) {
    let before = route.writes.then(|| database_digest(&fixture.app));
    let reply = fixture.send(&raw, credential).await;
    findings.check(&raw, reply, expect, route.not_json);
    if let Some(before) = before {
        let after = database_digest(&fixture.app);
        if before != after {
            let changed: Vec<String> = before
                .iter()
                .zip(&after)
                .filter(|(one, other)| one != other)
                .map(|(one, other)| format!("{} {} -> {} rows", one.0, one.1, other.1))
                .collect();
            findings.failures.push(format!(
                "{}: changed the store ({})",
                raw.describe(),
                changed.join(", ")
            ));
        }
    }
}

/// Sends a corpus request with the route's credential, and again without any: a route that
/// needs one refuses the anonymous copy with a 401 whatever else is wrong with it.
async fn probe_corpus(fixture: &Fixture, findings: &mut Findings, route: &Route, raw: Raw, expect: Expect) {
    if route.auth != Auth::Public {
        probe(
            fixture,
            findings,
            route,
            raw.clone(),
            Credential::None,
            Expect::Refused(Some(401)),
        )
        .await;
    }
    probe(fixture, findings, route, raw, route.credential(), expect).await;
}

/// Runs a corpus against a fresh fixture and checks that the store is as it was.
async fn with_fixture<F>(what: &str, corpus: F)
where
    F: AsyncFnOnce(&Fixture, &mut Findings),
{
    let fixture = Fixture::start().await;
    let before = fixture.snapshot().await;
    let mut findings = Findings::default();
    corpus(&fixture, &mut findings).await;
    let after = fixture.snapshot().await;
    if before != after {
        findings
            .failures
            .push(format!("the store changed:{}", before.difference(&after)));
    }
    findings.assert_none(what);
}

// ---------------------------------------------------------------------------------------------
// The corpora
// ---------------------------------------------------------------------------------------------

/// A request to the route with valid ids, the base query and, for a route with a body, its
/// valid body.
fn base_request(route: &Route) -> Raw {
    let raw = Raw::new(route.method, route.target(&route.path_with(None), &[], None));
    match &route.body {
        Some(body) => raw.json(&body.valid),
        None => raw,
    }
}

/// A request to the route that is refused whatever its query says: an unknown id in the path,
/// else a body without its required members, else an unknown organization in the query.
fn refused_request(route: &Route, overrides: &[(String, String)], tail: Option<&str>) -> Option<Raw> {
    if let Some((name, _, slot)) = route.params.first()
        && *slot != Slot::Page
    {
        // An action name the rules refuse: an unknown but valid one would be created.
        let unknown = if *slot == Slot::NewAction {
            "bad%20action".to_owned()
        } else {
            unknown_id(*slot)
        };
        let path = route.path_with(Some((name, &unknown)));
        let raw = Raw::new(route.method, route.target(&path, overrides, tail));
        return Some(match &route.body {
            Some(body) => raw.json(&body.valid),
            None => raw,
        });
    }
    if let Some(body) = &route.body {
        let invalid = if body.requires_members {
            json!({})
        } else {
            json!({"name": 5})
        };
        return Some(Raw::new(route.method, route.target(&route.path_with(None), overrides, tail)).json(&invalid));
    }
    if route.base_query.iter().any(|(name, _)| *name == "organization_id")
        && !overrides.iter().any(|(name, _)| name == "organization_id")
    {
        let mut overrides = overrides.to_vec();
        overrides.push(("organization_id".into(), unknown_id(Slot::Organization)));
        return Some(Raw::new(
            route.method,
            route.target(&route.path_with(None), &overrides, tail),
        ));
    }
    None
}

fn unknown_id(slot: Slot) -> String {
    let prefix = match slot {
        Slot::Organization => "org_",
        Slot::Event => "audit_log_event_",
        Slot::Export => "audit_log_export_",
        Slot::Stream => "audit_log_stream_",
        Slot::ApiKey => "key_",
        Slot::ExternalId => "no-such-external-id-",
        Slot::Action | Slot::NewAction => "no.such.action",
        Slot::Asset => "no-such-asset.js",
        Slot::Page => "",
    };
    match slot {
        Slot::Action | Slot::NewAction | Slot::Asset => prefix.to_owned(),
        _ => format!("{prefix}01ARZ3NDEKTSV4RRFFQ69G5FAV"),
    }
}

/// Malformed values for a path parameter (raw text, percent-encoding as sent).
fn bad_path_values(slot: Slot, fixture: &Fixture) -> Vec<String> {
    let prefix = match slot {
        Slot::Organization => "org_",
        Slot::Event => "audit_log_event_",
        Slot::Export => "audit_log_export_",
        Slot::Stream => "audit_log_stream_",
        Slot::ApiKey => "key_",
        _ => "",
    };
    let encoding = [
        "%00",
        "%FF",
        "%C3%28",
        "%2F",
        "%20",
        "%0A",
        "%E2%80%AE",
        "%25",
        "%ZZ",
        "..",
        "%2E%2E",
        "%EF%BF%BF",
    ]
    .map(str::to_owned);
    if slot == Slot::NewAction {
        // Names the rules refuse (a valid name would create an action).
        let mut values: Vec<String> = ["%00", "%FF", "%C3%28", "%2F", "%20", "%0A", "a%09b"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        values.push("a".repeat(10_240));
        return values;
    }
    let mut values = vec![
        format!("{prefix}garbage!"),
        format!("{prefix}01arz3ndektsv4rrffq69g5fav"),
        format!("{prefix}01ARZ3NDEKTSV4RRFFQ69G5FA"),
        format!("{prefix}81ARZ3NDEKTSV4RRFFQ69G5FAV"),
        format!("{prefix}{}", "Z".repeat(26)),
        unknown_id(slot),
        "x".repeat(10_240),
        format!("{prefix}{}", "A".repeat(10_240)),
        format!("{prefix}%00"),
        format!("{}%00", unknown_id(slot)),
        format!("{prefix}%FF%FE"),
    ];
    values.extend(encoding);
    // Ids of another kind.
    values.push(fixture.organization.clone());
    values.push(fixture.event.clone());
    values.push(fixture.legacy_event.clone());
    values.push(fixture.export.clone());
    values.push(fixture.stream.clone());
    let valid_here = match slot {
        Slot::Organization => Some(&fixture.organization),
        Slot::Event => Some(&fixture.event),
        Slot::Export => Some(&fixture.export),
        Slot::Stream => Some(&fixture.stream),
        Slot::ExternalId => Some(&fixture.external_id),
        _ => None,
    };
    values.retain(|value| Some(value) != valid_here);
    values
}

/// Malformed ids in every path position of every route, with valid credentials.
#[tokio::test]
async fn malformed_ids_in_paths_are_refused() {
    with_fixture("malformed ids in paths", async |fixture, findings| {
        for route in routes(fixture) {
            for (name, _, slot) in &route.params {
                for bad in bad_path_values(*slot, fixture) {
                    let path = route.path_with(Some((name, &bad)));
                    let raw = Raw::new(route.method, route.target(&path, &[], None));
                    let raw = match &route.body {
                        Some(body) => raw.json(&body.valid),
                        None => raw,
                    };
                    let expect = if *slot == Slot::Page {
                        Expect::Survives
                    } else {
                        Expect::Refused(None)
                    };
                    probe_corpus(fixture, findings, &route, raw, expect).await;
                }
            }
        }
    })
    .await;
}

/// Query strings: malformed values of the parameters a route checks are refused; anything else
/// (unknown parameters, bad escapes, huge values) is survived.
#[tokio::test]
async fn malformed_query_strings_are_refused_or_ignored() {
    with_fixture("malformed query strings", async |fixture, findings| {
        let strict_cases: Vec<(&str, String)> = vec![
            ("limit", "%FF".into()),
            ("limit", "0".into()),
            ("limit", "101".into()),
            ("limit", "-1".into()),
            ("limit", "1.5".into()),
            ("limit", "9".repeat(10_000)),
            ("order", "%FF".into()),
            ("order", "sideways".into()),
            ("before", "%FF%FE".into()),
            ("after", "%00".into()),
            ("after", "A".repeat(20_000)),
            ("after", fixture.other_event.clone()),
            ("before", "org_garbage".into()),
            ("organization_id", "%FF".into()),
            ("organization_id", "org_garbage".into()),
            ("organization_id", "".into()),
            ("organization_id", "o".repeat(30_000)),
            ("event_id", "%FF".into()),
            ("event_id", fixture.other_event.clone()),
            ("tree_size", "%FF".into()),
            ("tree_size", "99999999999999999999999".into()),
            ("first", "-1".into()),
            ("second", "x".into()),
            ("start", "1e3".into()),
            ("end", "%FF".into()),
            ("range_start", "%FF".into()),
            ("range_start", "2026-13-01T00:00:00Z".into()),
            ("range_end", "yesterday".into()),
            ("action_type", "X".into()),
            ("occurred_at_gt", "%FF".into()),
            ("occurred_at", "1700000000".into()),
            ("expires", "%FF".into()),
            ("expires", "99999999999999999999".into()),
            ("signature", "%FF%FE".into()),
        ];
        let tolerated: Vec<String> = vec![
            "zzz=1".into(),
            "%FF=%FE".into(),
            "%G1=%".into(),
            "%".into(),
            "&&==&".into(),
            "a=b=c".into(),
            "search[]=%FF".into(),
            "actions[]=%00&targets=%C3%28".into(),
            format!("unknown={}", "x".repeat(60_000)),
            "q=%E2%80%AE%00%0A".into(),
        ];
        for route in routes(fixture) {
            let path = route.path_with(None);
            let reads = |name: &str| route.strict.contains(&name);
            // A checked parameter with a malformed value, or repeated.
            for (name, value) in &strict_cases {
                let overrides = vec![((*name).to_owned(), value.clone())];
                if route.writes || !reads(name) {
                    if let Some(raw) = refused_request(&route, &overrides, None) {
                        probe_corpus(fixture, findings, &route, raw, Expect::Refused(None)).await;
                    }
                    continue;
                }
                let raw = Raw::new(route.method, route.target(&path, &overrides, None));
                probe_corpus(fixture, findings, &route, raw, Expect::Refused(None)).await;
            }
            for name in route.strict.iter().filter(|name| **name != "action_type") {
                let value = route
                    .base_query
                    .iter()
                    .find(|(key, _)| key == name)
                    .map_or_else(|| "1".to_owned(), |(_, value)| value.clone());
                let tail = format!("{name}={value}");
                let raw = Raw::new(route.method, route.target(&path, &[], Some(&tail)));
                let raw = if route.writes {
                    match refused_request(&route, &[], Some(&tail)) {
                        Some(raw) => raw,
                        None => continue,
                    }
                } else {
                    raw
                };
                // `name=v&name=v`: a repeated single parameter.
                let raw = if route.base_query.iter().any(|(key, _)| key == name) {
                    raw
                } else {
                    Raw {
                        target: format!("{}&{tail}", raw.target),
                        ..raw
                    }
                };
                probe_corpus(fixture, findings, &route, raw, Expect::Refused(None)).await;
            }
            // What a route does not check: never a 5xx (and never a change).
            for tail in &tolerated {
                let raw = if route.writes {
                    match refused_request(&route, &[], Some(tail)) {
                        Some(raw) => raw,
                        None => continue,
                    }
                } else {
                    Raw::new(route.method, route.target(&path, &[], Some(tail)))
                };
                let expect = if route.writes {
                    Expect::Refused(None)
                } else {
                    Expect::Survives
                };
                probe_corpus(fixture, findings, &route, raw, expect).await;
            }
        }
    })
    .await;
}

/// The body with the value at `pointer` replaced (or added, creating the member).
fn with_value(body: &Value, pointer: &str, value: Value) -> Value {
    let mut body = body.clone();
    let (parent, member) = pointer.rsplit_once('/').expect("a pointer");
    let slot = if parent.is_empty() {
        Some(&mut body)
    } else {
        body.pointer_mut(parent)
    };
    match slot {
        Some(Value::Object(object)) => {
            object.insert(member.to_owned(), value);
        }
        Some(Value::Array(items)) => {
            let index: usize = member.parse().expect("an index");
            items[index] = value;
        }
        _ => panic!("{pointer} names nothing in {body}"),
    }
    body
}

/// Every pointer in a JSON value, containers included (not the root).
fn pointers(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (key, member) in object {
                let pointer = format!("{prefix}/{key}");
                out.push(pointer.clone());
                pointers(member, &pointer, out);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let pointer = format!("{prefix}/{index}");
                out.push(pointer.clone());
                pointers(item, &pointer, out);
            }
        }
        _ => {}
    }
}

/// Bodies of every malformed kind on every route that reads one.
#[tokio::test]
async fn malformed_bodies_are_refused() {
    with_fixture("malformed bodies", async |fixture, findings| {
        let deep_array = "[".repeat(100_000).into_bytes();
        let deep_object = "{\"a\":".repeat(50_000).into_bytes();
        let mut balanced = "[".repeat(10_000);
        balanced.push_str(&"]".repeat(10_000));
        let huge_text = "x".repeat(3_500_000);
        let mut huge_array = String::from("[");
        huge_array.push_str(&"0,".repeat(1_500_000));
        huge_array.push_str("0]");
        let invalid_json: Vec<Vec<u8>> = vec![
            b"{".to_vec(),
            b"{\"a\":}".to_vec(),
            b"{\"a\" 1}".to_vec(),
            b"nul".to_vec(),
            b"{\"name\": \"x\"} trailing".to_vec(),
            b"\xEF\xBB\xBF{}".to_vec(),
            b"{\"name\": \"\xFF\xFE\"}".to_vec(),
            b"{\"name\": \"\\ud800\"}".to_vec(),
            b"[1,]".to_vec(),
            b"{'name': 'x'}".to_vec(),
            b"{\"a\": NaN}".to_vec(),
            b"{\"name\": 1e999}".to_vec(),
            b"\x00".to_vec(),
            deep_array,
            deep_object,
        ];
        let wrong_types: Vec<Vec<u8>> = vec![
            b"[]".to_vec(),
            b"[1, 2]".to_vec(),
            b"1".to_vec(),
            b"-0".to_vec(),
            b"null".to_vec(),
            b"\"a string\"".to_vec(),
            b"true".to_vec(),
            balanced.into_bytes(),
            format!("\"{huge_text}\"").into_bytes(),
            huge_array.into_bytes(),
        ];
        for route in routes(fixture) {
            let Some(body) = &route.body else { continue };
            let target = route.target(&route.path_with(None), &[], None);
            let json_request = |bytes: Vec<u8>| {
                Raw::new(route.method, target.clone())
                    .header("content-type", "application/json")
                    .body(bytes)
            };
            for bytes in invalid_json.iter().chain(&wrong_types) {
                probe_corpus(
                    fixture,
                    findings,
                    &route,
                    json_request(bytes.clone()),
                    Expect::Refused(None),
                )
                .await;
            }
            // Empty bodies, and the valid body under content types that are not JSON.
            probe_corpus(
                fixture,
                findings,
                &route,
                json_request(Vec::new()),
                Expect::Refused(Some(400)),
            )
            .await;
            let valid = serde_json::to_vec(&body.valid).expect("json");
            for content_type in [
                None,
                Some(&b"text/plain"[..]),
                Some(b"application/x-www-form-urlencoded"),
                Some(b"multipart/form-data; boundary=x"),
                Some(b"application/jsonx"),
                Some(b"application/json-seq"),
                Some(b"json"),
                Some(b"application/json\xFF"),
            ] {
                let raw = Raw::new(route.method, target.clone()).body(valid.clone());
                let raw = match content_type {
                    Some(value) => raw.header("content-type", value),
                    None => raw,
                };
                probe_corpus(fixture, findings, &route, raw, Expect::Refused(Some(415))).await;
            }
            // Unknown members only.
            if body.requires_members {
                probe_corpus(
                    fixture,
                    findings,
                    &route,
                    json_request(br#"{"zzz": 1, "__proto__": {"name": "x"}, "constructor": null}"#.to_vec()),
                    Expect::Refused(None),
                )
                .await;
            }
            // Every member of the valid body with every wrong type (and an unknown member beside
            // it), then each optional member with every type it does not allow.
            let mut variations: Vec<(String, Value)> = Vec::new();
            let mut members = Vec::new();
            pointers(&body.valid, "", &mut members);
            for pointer in members {
                let original = kind_of(body.valid.pointer(&pointer).expect("a member"));
                for kind in ALL_KINDS {
                    if kind == original || (kind == Kind::Null && body.nullable.contains(&pointer.as_str())) {
                        continue;
                    }
                    variations.push((pointer.clone(), example(kind)));
                }
            }
            for (pointer, allowed) in &body.optional {
                for kind in ALL_KINDS {
                    if kind == Kind::Null || allowed.contains(&kind) {
                        continue;
                    }
                    variations.push(((*pointer).to_owned(), example(kind)));
                }
            }
            for (pointer, value) in variations {
                let mut changed = with_value(&body.valid, &pointer, value);
                if let Value::Object(object) = &mut changed {
                    object.insert("unknown_member".into(), json!({"nested": [1, 2]}));
                }
                let expect = match body.per_item {
                    Some(prefix) if pointer.starts_with(prefix) => Expect::ItemsRefused,
                    _ => Expect::Refused(None),
                };
                probe_corpus(
                    fixture,
                    findings,
                    &route,
                    Raw::new(route.method, target.clone()).json(&changed),
                    expect,
                )
                .await;
            }
            // A huge string in the first text member.
            let mut members = Vec::new();
            pointers(&body.valid, "", &mut members);
            if let Some(pointer) = members
                .iter()
                .find(|pointer| body.valid.pointer(pointer).is_some_and(Value::is_string))
            {
                let changed = with_value(&body.valid, pointer, json!(huge_text));
                let expect = match body.per_item {
                    Some(prefix) if pointer.starts_with(prefix) => Expect::ItemsRefused,
                    _ => Expect::Refused(None),
                };
                probe_corpus(
                    fixture,
                    findings,
                    &route,
                    Raw::new(route.method, target.clone()).json(&changed),
                    expect,
                )
                .await;
            }
        }
    })
    .await;
}

/// A body that holds the right values as an array, member by member in declaration order, is
/// not the object the route takes. (serde's derived structs read such arrays by default; this
/// lists every route where they would be taken for the object.)
#[tokio::test]
async fn bodies_given_as_arrays_of_members_are_refused() {
    with_fixture("bodies given as arrays of members", async |fixture, findings| {
        for route in routes(fixture) {
            let Some(positional) = route.body.as_ref().and_then(|body| body.positional.clone()) else {
                continue;
            };
            let raw = Raw::new(route.method, route.target(&route.path_with(None), &[], None)).json(&positional);
            probe(
                fixture,
                findings,
                &route,
                raw,
                route.credential(),
                Expect::Refused(None),
            )
            .await;
        }
    })
    .await;
}

/// Every route without its credential, with a malformed one, with the other kind of credential,
/// and (dashboard) without the CSRF token, even with a valid body: 401 (403 for CSRF).
#[tokio::test]
async fn requests_without_valid_credentials_are_refused() {
    with_fixture("requests without valid credentials", async |fixture, findings| {
        for route in routes(fixture) {
            let base = base_request(&route);
            match route.auth {
                Auth::Public => {}
                Auth::Portal | Auth::PortalStreams | Auth::Viewer => {
                    // No credential, and every other kind of credential, is a 401.
                    let mut others = vec![Credential::None, Credential::ApiKey, Credential::Session];
                    others.push(if route.auth == Auth::Viewer {
                        Credential::Portal
                    } else {
                        Credential::Viewer
                    });
                    for credential in others {
                        probe(
                            fixture,
                            findings,
                            &route,
                            base.clone(),
                            credential,
                            Expect::Refused(Some(401)),
                        )
                        .await;
                    }
                    let garbage: Vec<(&str, String)> = if route.auth == Auth::Viewer {
                        vec![
                            ("authorization", "Bearer vt_garbage".to_owned()),
                            ("authorization", format!("Bearer {}x", fixture.viewer_token)),
                            ("authorization", format!("Bearer {}", fixture.app.api_key)),
                            ("authorization", format!("Bearer vt_{}", "A".repeat(20_000))),
                        ]
                    } else {
                        vec![
                            ("cookie", "vellum_portal=garbage".to_owned()),
                            ("cookie", format!("vellum_portal={}", "a".repeat(64))),
                            ("cookie", format!("{}x", fixture.portal.0)),
                            // A dashboard session's cookie value under the portal's name.
                            (
                                "cookie",
                                format!("vellum_portal={}", fixture.cookie.trim_start_matches("vellum_session=")),
                            ),
                        ]
                    };
                    for (name, value) in garbage {
                        let raw = base
                            .clone()
                            .header(name, value)
                            .header("x-csrf-token", &fixture.portal.1);
                        probe(
                            fixture,
                            findings,
                            &route,
                            raw,
                            Credential::None,
                            Expect::Refused(Some(401)),
                        )
                        .await;
                    }
                    if route.auth == Auth::Portal && route.method != "GET" {
                        probe(
                            fixture,
                            findings,
                            &route,
                            base.clone(),
                            Credential::PortalWithoutCsrf,
                            Expect::Refused(Some(403)),
                        )
                        .await;
                    }
                }
                Auth::ApiKey => {
                    for authorization in [
                        None,
                        Some(b"Bearer".to_vec()),
                        Some(b"Bearer ".to_vec()),
                        Some(b"Basic dXNlcjpwYXNz".to_vec()),
                        Some(b"Bearer sk_garbage".to_vec()),
                        Some(format!("Bearer {}x", fixture.app.api_key).into_bytes()),
                        Some(format!("Token {}", fixture.app.api_key).into_bytes()),
                        Some(b"Bearer sk_\xFF\xFE".to_vec()),
                        Some(format!("Bearer {}", "sk_".repeat(3000)).into_bytes()),
                    ] {
                        let raw = match authorization {
                            Some(value) => base.clone().header("authorization", value),
                            None => base.clone(),
                        };
                        probe(
                            fixture,
                            findings,
                            &route,
                            raw,
                            Credential::None,
                            Expect::Refused(Some(401)),
                        )
                        .await;
                    }
                    // A session is no credential for the public API.
                    probe(
                        fixture,
                        findings,
                        &route,
                        base.clone(),
                        Credential::Session,
                        Expect::Refused(Some(401)),
                    )
                    .await;
                }
                Auth::Session => {
                    probe(
                        fixture,
                        findings,
                        &route,
                        base.clone(),
                        Credential::None,
                        Expect::Refused(Some(401)),
                    )
                    .await;
                    // An API key is no credential for the dashboard.
                    probe(
                        fixture,
                        findings,
                        &route,
                        base.clone(),
                        Credential::ApiKey,
                        Expect::Refused(Some(401)),
                    )
                    .await;
                    for cookie in [
                        "vellum_session=garbage".to_owned(),
                        format!("vellum_session={}", "a".repeat(64)),
                        format!(
                            "vellum_session={}x",
                            fixture.cookie.trim_start_matches("vellum_session=")
                        ),
                        "vellum_session=%FF".to_owned(),
                    ] {
                        let raw = base
                            .clone()
                            .header("cookie", cookie)
                            .header("x-csrf-token", &fixture.csrf);
                        probe(
                            fixture,
                            findings,
                            &route,
                            raw,
                            Credential::None,
                            Expect::Refused(Some(401)),
                        )
                        .await;
                    }
                    if route.method != "GET" {
                        probe(
                            fixture,
                            findings,
                            &route,
                            base.clone(),
                            Credential::SessionWithoutCsrf,
                            Expect::Refused(Some(403)),
                        )
                        .await;
                        let raw = base.clone().header("x-csrf-token", "0".repeat(64));
                        probe(
                            fixture,
                            findings,
                            &route,
                            raw,
                            Credential::SessionWithoutCsrf,
                            Expect::Refused(Some(403)),
                        )
                        .await;
                    }
                }
            }
        }
    })
    .await;
}

/// Methods a path is not served with answer 405 in the error shape.
#[tokio::test]
async fn wrong_methods_are_refused() {
    with_fixture("wrong methods", async |fixture, findings| {
        let table = routes(fixture);
        let templates: BTreeSet<String> = table.iter().map(|route| route.template.clone()).collect();
        for template in templates {
            let served: Vec<&str> = table
                .iter()
                .filter(|route| route.template == template)
                .map(|route| route.method)
                .collect();
            let route = table.iter().find(|route| route.template == template).expect("a route");
            for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
                if served.contains(&method) || (template.starts_with("/dashboard/") && template.contains('*')) {
                    continue;
                }
                let raw = Raw::new(method, route.target(&route.path_with(None), &[], None))
                    .json(&json!({"name": "wrong method"}));
                let credential = if route.auth == Auth::Public {
                    Credential::ApiKey
                } else {
                    route.credential()
                };
                let mut wrong = route.clone();
                wrong.writes = true;
                probe(fixture, findings, &wrong, raw, credential, Expect::Refused(None)).await;
            }
        }
    })
    .await;
}

/// The table is right: every reading route it names answers its valid request with a success
/// (so the template, ids and base query are the ones the server serves), and unknown paths under
/// every prefix are JSON 404s.
#[tokio::test]
async fn every_route_in_the_table_is_served() {
    let fixture = Fixture::start().await;
    let mut findings = Findings::default();
    for route in routes(&fixture) {
        if route.writes {
            continue;
        }
        let raw = base_request(&route);
        let reply = fixture.send(&raw, route.credential()).await;
        match &reply {
            Ok(reply) if reply.status < 300 => {}
            Ok(reply) => findings
                .failures
                .push(format!("{}: {} {}", route.label(), reply.status, reply.excerpt())),
            Err(error) => findings.failures.push(format!("{}: {error}", route.label())),
        }
        findings.sent += 1;
    }
    for path in [
        "/nope",
        "/organizations/a/b/c",
        "/audit_logs/nope",
        "/audit_logs/log/nope",
        "/dashboard/api/nope",
        "/dashboard/api/events",
        "/dashboard/assets/",
    ] {
        let raw = Raw::new("GET", path);
        let reply = fixture.send(&raw, Credential::ApiKey).await;
        findings.check(&raw, reply, Expect::Refused(Some(404)), false);
    }
    findings.assert_none("the routes table");
}

/// Export filters with tens of thousands of values are refused, not failed.
#[tokio::test]
async fn huge_export_filters_are_refused_not_failed() {
    with_fixture("huge export filters", async |fixture, findings| {
        let route = routes(fixture)
            .into_iter()
            .find(|route| route.template == "/audit_logs/exports" && route.method == "POST")
            .expect("the export route");
        for member in ["actions", "actor_names", "actor_ids", "targets"] {
            let values: Vec<String> = (0..33_000).map(|index| format!("value_{index}")).collect();
            let mut body = route.body.as_ref().expect("a body").valid.clone();
            body[member] = json!(values);
            let raw = Raw::new("POST", "/audit_logs/exports").json(&body);
            probe(
                fixture,
                findings,
                &route,
                raw,
                Credential::ApiKey,
                Expect::Refused(None),
            )
            .await;
        }
        // The same on the events list, as far as a request line allows.
        let list = routes(fixture)
            .into_iter()
            .find(|route| route.template == "/audit_logs/events" && route.method == "GET")
            .expect("the list route");
        let values: Vec<String> = (0..4_000).map(|index| format!("actions[]=a{index}")).collect();
        let raw = Raw::new(
            "GET",
            format!(
                "/audit_logs/events?organization_id={}&{}",
                fixture.organization,
                values.join("&")
            ),
        );
        probe(fixture, findings, &list, raw, Credential::ApiKey, Expect::Survives).await;
    })
    .await;
}

/// Requests that fail before any route sees them (an over-long request line, over-large or too
/// many headers, a malformed request line or header) are still answered in the error shape,
/// with `X-Request-ID`.
#[tokio::test]
async fn requests_refused_by_the_connection_layer_get_json_errors() {
    let fixture = Fixture::start().await;
    let mut findings = Findings::default();
    let long_target = format!("/organizations?search={}", "x".repeat(70_000));
    let mut many_headers = Raw::new("GET", "/health");
    for index in 0..150 {
        many_headers = many_headers.header(&format!("x-corpus-{index}"), "1");
    }
    let corpus = vec![
        Raw::new("GET", long_target),
        Raw::new("GET", "/health").header("x-huge", "x".repeat(500_000)),
        many_headers,
        Raw::new("GET", "/health bad"),
        Raw::new("G@T", "/health"),
        Raw::new("GET", "/health").header("bad header", "1"),
        Raw::new("GET", "/health").header("x-bin", b"\x00\x01"),
        Raw::new("GET", "health"),
        Raw::new("POST", "/organizations")
            .header("content-type", "application/json")
            .header("content-length", "5")
            .body(&b"{}"[..]),
    ];
    let before = fixture.snapshot().await;
    for raw in corpus {
        let reply = fixture.send(&raw, Credential::ApiKey).await;
        findings.check(&raw, reply, Expect::Refused(None), false);
    }
    let after = fixture.snapshot().await;
    if before != after {
        findings
            .failures
            .push(format!("the store changed:{}", before.difference(&after)));
    }
    findings.assert_none("requests refused by the connection layer");
}
