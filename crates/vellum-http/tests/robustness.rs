//! Property-based robustness tests of the query-string and body parsers behind the router: any
//! query string on a listing (the legacy `GET /events`, `GET /audit_logs/events` and its
//! cursors, the other lists and the log's routes) and any JSON body on a writing route is
//! answered with a parsed result or a 4xx in the error shape, never a 5xx and never a panic.
//!
//! The router runs in-process on a fresh SQLite store, driven without sockets. Case counts are
//! bounded so that these run in seconds; `PROPTEST_CASES=N` overrides them.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use tower::ServiceExt;
use vellum_core::checkpoint::NoteSigner;
use vellum_http::{AppState, HttpConfig};
use vellum_store::{SqliteConfig, SqliteStore, Store};

/// `cases` unless `PROPTEST_CASES` says otherwise (an explicit count would hide the variable).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The router on a fresh store with one API key, and what was seeded into it.
struct Harness {
    runtime: tokio::runtime::Runtime,
    router: Router,
    api_key: String,
    /// An organization with events of both APIs.
    organization: String,
    /// Another organization with events (its ids are cursors that do not belong to the first).
    other_organization: String,
    /// Event ids of `organization`, then of `other_organization`.
    event_ids: Vec<String>,
    /// `evt_` ids of the legacy events.
    legacy_ids: Vec<String>,
    _data_dir: tempfile::TempDir,
}

/// One answer, read whole.
struct Answer {
    status: StatusCode,
    request_id: bool,
    content_type: String,
    body: Vec<u8>,
}

impl Harness {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let data_dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&SqliteConfig::new(data_dir.path())).expect("store"));
        let secret = vellum_store::generate_api_key_secret().expect("random secret");
        runtime
            .block_on(store.create_api_key("robustness".into(), secret.clone()))
            .expect("api key");
        let signer = Arc::new(NoteSigner::new("vellum.test", &[7; 32]).expect("signer"));
        let router = vellum_http::router(AppState::new(store, HttpConfig::default(), signer));
        let mut harness = Self {
            runtime,
            router,
            api_key: secret.expose().to_owned(),
            organization: String::new(),
            other_organization: String::new(),
            event_ids: Vec::new(),
            legacy_ids: Vec::new(),
            _data_dir: data_dir,
        };
        harness.seed();
        harness
    }

    fn seed(&mut self) {
        let created = self.json(
            Method::POST,
            "/organizations",
            &json!({"name": "Acme", "external_id": "acme"}),
        );
        self.organization = created["id"].as_str().expect("id").to_owned();
        let created = self.json(Method::POST, "/organizations", &json!({"name": "Other"}));
        self.other_organization = created["id"].as_str().expect("id").to_owned();
        self.json(
            Method::POST,
            "/audit_logs/actions/user.signed_in/schemas",
            &json!({"targets": [{"type": "team"}]}),
        );
        for (organization, count) in [(self.organization.clone(), 5), (self.other_organization.clone(), 3)] {
            let events: Vec<Value> = (0..count)
                .map(|index| {
                    json!({
                        "action": "user.signed_in",
                        "occurred_at": format!("2026-01-0{}T00:00:00Z", index + 1),
                        "actor": {"id": format!("user_{index}"), "type": "user", "name": format!("User {index}")},
                        "targets": [{"id": "team_1", "type": "team"}],
                        "context": {"location": "192.0.2.1"},
                        "metadata": {"n": index},
                    })
                })
                .collect();
            let answer = self.json(
                Method::POST,
                "/audit_logs/events/batch",
                &json!({"organization_id": organization, "events": events}),
            );
            self.event_ids.extend(
                answer["data"]
                    .as_array()
                    .expect("data")
                    .iter()
                    .map(|item| item["id"].as_str().expect("stored").to_owned()),
            );
        }
        for (index, (group, action_type)) in [("acme", "C"), ("globex", "U"), ("acme", "D")].into_iter().enumerate() {
            self.json(
                Method::POST,
                "/events",
                &json!({
                    "group": group, "location": "192.0.2.8", "action": "document.updated",
                    "action_type": action_type, "actor_name": format!("jane {index}"),
                    "actor_id": "user_1", "target_name": "Doc", "target_id": format!("doc_{index}"),
                    "occurred_at": format!("2026-02-0{}T00:00:00Z", index + 1),
                }),
            );
        }
        let listed = self.json(Method::GET, "/events?limit=100", &Value::Null);
        self.legacy_ids = listed["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|event| event["id"].as_str().expect("id").to_owned())
            .collect();
    }

    /// Sends a request (with the API key) and reads the whole answer.
    fn send(&self, method: Method, uri: &str, content_type: Option<&str>, body: Vec<u8>) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.api_key));
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request.body(Body::from(body)).expect("a request");
        self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.expect("infallible");
            let status = response.status();
            let request_id = response.headers().contains_key("x-request-id");
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("the body")
                .to_vec();
            Answer {
                status,
                request_id,
                content_type,
                body,
            }
        })
    }

    /// A request that must succeed during seeding; returns its JSON.
    fn json(&self, method: Method, uri: &str, body: &Value) -> Value {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(body).expect("json")
        };
        let answer = self.send(method, uri, Some("application/json"), bytes);
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        assert!(answer.status.is_success(), "{uri}: {} {text}", answer.status);
        serde_json::from_str(&text).expect("json")
    }
}

/// Either a success (returned as JSON) or a 4xx in the error shape; anything else fails.
fn check_answer(answer: &Answer, what: &str) -> Result<Option<Value>, TestCaseError> {
    let text = String::from_utf8_lossy(&answer.body);
    prop_assert!(
        answer.status.is_success() || answer.status.is_client_error(),
        "{} answered {}: {}",
        what,
        answer.status,
        text
    );
    prop_assert!(answer.request_id, "{} answered without X-Request-ID", what);
    prop_assert!(
        answer.content_type.starts_with("application/json"),
        "{} answered {:?}: {}",
        what,
        answer.content_type,
        text
    );
    let body: Value = serde_json::from_slice(&answer.body)
        .map_err(|error| TestCaseError::fail(format!("{what} answered no JSON ({error}): {text}")))?;
    if answer.status.is_client_error() {
        prop_assert!(
            body["message"].is_string() && body["code"].is_string(),
            "{} answered {} without message and code: {}",
            what,
            answer.status,
            body
        );
        if answer.status == StatusCode::UNPROCESSABLE_ENTITY {
            let errors = body["errors"].as_array().cloned().unwrap_or_default();
            prop_assert!(!errors.is_empty(), "{} answered a 422 naming nothing: {}", what, body);
            for error in errors {
                prop_assert!(
                    error["field"].as_str().is_some_and(|field| !field.is_empty()),
                    "{} answered a 422 error without a field: {}",
                    what,
                    body
                );
            }
        }
        return Ok(None);
    }
    Ok(Some(body))
}

// ---------------------------------------------------------------------------------------------
// Query strings
// ---------------------------------------------------------------------------------------------

/// One piece of a query string: a pair whose decoded key and value are known, or raw text
/// whose decoding is left to the parser.
#[derive(Clone, Debug)]
enum Piece {
    Pair(String, String),
    Raw(String),
}

/// Percent-encodes everything but unreserved characters, as a careful client would.
fn encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn query_text(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|piece| match piece {
            Piece::Pair(key, value) => format!("{}={}", encode(key), encode(value)),
            Piece::Raw(raw) => raw.clone(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Raw query text that a parser must survive: bad escapes, invalid UTF-8, stray separators.
fn raw_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("%".to_owned()),
        Just("%G1".to_owned()),
        Just("a=%FF%FE".to_owned()),
        Just("limit=%FF".to_owned()),
        Just("after=%00".to_owned()),
        Just("search=%C3%28".to_owned()),
        Just("=".to_owned()),
        Just("&&".to_owned()),
        Just("a=b=c".to_owned()),
        Just("group[]".to_owned()),
        Just("order=asc;order=desc".to_owned()),
        "[a-z_\\[\\]=&%+;,0-9A-F]{0,16}",
    ]
}

/// A value for a parameter: often one that parses, often one that does not.
fn value(harness_values: Vec<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(harness_values),
        2 => prop::sample::select(vec![
            "0", "1", "100", "101", "-1", "4294967296", "18446744073709551616", "1e3", " 5", "",
            "asc", "desc", "normal", "Order.Asc", "ASC",
            "C", "r", "X", "CR",
            "2026-01-01T00:00:00Z", "2026-01-01", "2026-13-01T00:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z",
            "org_", "org_01EHWNCE74X7JSDV0X3SZ3KJNY", "audit_log_event_01EHWNCE74X7JSDV0X3SZ3KJNY",
            "evt_01EHWNCE74X7JSDV0X3SZ3KJNY", "evt_01ehwnce74x7jsdv0x3sz3kjny", "evt_ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
        ]).prop_map(str::to_owned),
        2 => prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
        1 => (1usize..3).prop_map(|factor| "x".repeat(2000 * factor)),
    ]
}

fn query(keys: Vec<&'static str>, values: Vec<String>) -> impl Strategy<Value = Vec<Piece>> {
    let key = prop_oneof![
        6 => prop::sample::select(keys.clone()).prop_map(str::to_owned),
        2 => prop::sample::select(keys).prop_map(|key| format!("{key}[]")),
        1 => "[a-z_]{1,8}",
    ];
    prop::collection::vec(
        prop_oneof![
            6 => (key, value(values)).prop_map(|(key, value)| Piece::Pair(key, value)),
            1 => raw_piece().prop_map(Piece::Raw),
        ],
        0..8,
    )
}

const PAGING: [&str; 4] = ["limit", "order", "before", "after"];

/// The decoded values of an array parameter (`name` or `name[]`) when every piece of the query
/// is a known pair.
fn decoded<'a>(pieces: &'a [Piece], name: &str) -> Option<Vec<&'a str>> {
    decoded_as(pieces, name, &format!("{name}[]"))
}

fn decoded_as<'a>(pieces: &'a [Piece], name: &str, bracketed: &str) -> Option<Vec<&'a str>> {
    let mut values = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Raw(_) => return None,
            Piece::Pair(key, value) if key == name || key == bracketed => {
                if !value.is_empty() {
                    values.push(value.as_str());
                }
            }
            Piece::Pair(..) => {}
        }
    }
    Some(values)
}

fn run_queries(
    harness: &Harness,
    cases: u32,
    strategy: impl Strategy<Value = Vec<Piece>>,
    path: impl Fn(&str) -> String,
    check_listing: impl Fn(&[Piece], &Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(config(cases));
    let outcome = runner.run(&strategy, |pieces| {
        let uri = path(&query_text(&pieces));
        // Only what `http` accepts as a request target can arrive at all.
        prop_assume!(uri.parse::<axum::http::Uri>().is_ok());
        let answer = harness.send(Method::GET, &uri, None, Vec::new());
        if let Some(body) = check_answer(&answer, &format!("GET {uri}"))? {
            prop_assert_eq!(&body["object"], "list", "GET {}: {}", uri, body);
            prop_assert!(body["data"].is_array(), "GET {}: {}", uri, body);
            check_listing(&pieces, &body)?;
        }
        Ok(())
    });
    if let Err(error) = outcome {
        panic!("{error}");
    }
}

/// Every value of a listed item's field is among the filter's values, when the filter is known.
fn within(pieces: &[Piece], parameter: &str, body: &Value, field: &str) -> Result<(), TestCaseError> {
    let Some(wanted) = decoded(pieces, parameter).filter(|values| !values.is_empty()) else {
        return Ok(());
    };
    for item in body["data"].as_array().into_iter().flatten() {
        let pointer = format!("/{}", field.replace('.', "/"));
        let actual = item.pointer(&pointer).and_then(Value::as_str).unwrap_or_default();
        prop_assert!(
            wanted.iter().any(|value| value.eq_ignore_ascii_case(actual)),
            "{} = {:?} is listed under {}={:?}",
            field,
            actual,
            parameter,
            wanted
        );
    }
    Ok(())
}

/// The legacy `GET /events`: any query string is a parsed filter (and the listing obeys it)
/// or a 4xx in the error shape.
#[test]
fn legacy_event_queries_parse_or_are_refused() {
    let harness = Harness::start();
    let mut values = harness.legacy_ids.clone();
    values.extend(harness.event_ids.iter().take(2).cloned());
    values.extend(
        ["acme", "globex", "document.updated", "jane 1", "user_1", "Doc", "doc_2"]
            .into_iter()
            .map(str::to_owned),
    );
    let mut keys = vec![
        "group",
        "action",
        "action_type",
        "actor_name",
        "actor_id",
        "target_name",
        "target_id",
        "occurred_at",
        "occurred_at_gt",
        "occurred_at_gte",
        "occurred_at_lt",
        "occurred_at_lte",
        "search",
    ];
    keys.extend(PAGING);
    run_queries(
        &harness,
        512,
        query(keys, values),
        |query| format!("/events?{query}"),
        |pieces, body| {
            for item in body["data"].as_array().into_iter().flatten() {
                prop_assert_eq!(&item["object"], "event");
            }
            within(pieces, "group", body, "group")?;
            within(pieces, "action", body, "action.name")?;
            within(pieces, "action_type", body, "action_type")?;
            within(pieces, "actor_name", body, "actor_name")?;
            within(pieces, "actor_id", body, "actor_id")?;
            within(pieces, "target_id", body, "target_id")
        },
    );
}

/// `GET /audit_logs/events`: any query string, cursors from this organization, from another
/// one, from the legacy API or made up, is a parsed filter or a 4xx in the error shape.
#[test]
fn event_list_queries_and_cursors_parse_or_are_refused() {
    let harness = Harness::start();
    let mut values = harness.event_ids.clone();
    values.extend(harness.legacy_ids.iter().take(1).cloned());
    values.extend([harness.organization.clone(), harness.other_organization.clone()]);
    values.extend(
        ["user.signed_in", "user_1", "User 2", "team", "team_1"]
            .into_iter()
            .map(str::to_owned),
    );
    let mut keys = vec![
        "organization_id",
        "actions",
        "actor_ids",
        "actor_names",
        "targets",
        "target_ids",
        "range_start",
        "range_end",
        "search",
    ];
    keys.extend(PAGING);
    let organization = harness.organization.clone();
    let strategy = (any::<bool>(), query(keys, values)).prop_map(move |(scoped, mut pieces)| {
        if scoped {
            pieces.insert(0, Piece::Pair("organization_id".into(), organization.clone()));
        }
        pieces
    });
    let organization = harness.organization.clone();
    run_queries(
        &harness,
        512,
        strategy,
        |query| format!("/audit_logs/events?{query}"),
        |pieces, body| {
            // A listing is always one organization's, the one asked for.
            // A single parameter: its bracketed spelling is another (unknown) parameter.
            let asked = decoded_as(pieces, "organization_id", "organization_id");
            for item in body["data"].as_array().into_iter().flatten() {
                prop_assert_eq!(&item["object"], "audit_log_event");
                if let Some(asked) = &asked {
                    prop_assert_eq!(asked.as_slice(), [item["organization_id"].as_str().unwrap_or_default()]);
                }
            }
            if asked.as_deref() == Some(&[organization.as_str()][..]) {
                within(pieces, "actions", body, "action")?;
                within(pieces, "actor_ids", body, "actor.id")?;
                within(pieces, "actor_names", body, "actor.name")?;
            }
            Ok(())
        },
    );
}

/// The other lists and the log's routes: any query string parses or is refused.
#[test]
fn other_list_and_log_queries_parse_or_are_refused() {
    let harness = Harness::start();
    let mut values = harness.event_ids.clone();
    values.extend([harness.organization.clone(), harness.other_organization.clone()]);
    values.extend(["0", "1", "3", "5", "8", "1000", "1001"].into_iter().map(str::to_owned));
    let lists: [(&str, Vec<&'static str>); 3] = [
        ("/organizations", vec!["domains", "search"]),
        ("/audit_logs/actions", vec![]),
        ("/audit_logs/actions/user.signed_in/schemas", vec![]),
    ];
    for (path, extra) in lists {
        let mut keys = extra;
        keys.extend(PAGING);
        run_queries(
            &harness,
            128,
            query(keys, values.clone()),
            |query| format!("{path}?{query}"),
            |_, _| Ok(()),
        );
    }
    // The log's routes answer objects, not lists.
    let keys = vec![
        "organization_id",
        "event_id",
        "tree_size",
        "first",
        "second",
        "start",
        "end",
    ];
    let organization = harness.organization.clone();
    let strategy = (
        prop::sample::select(vec!["proof/inclusion", "proof/consistency", "entries"]),
        any::<bool>(),
        query(keys, values),
    )
        .prop_map(move |(route, scoped, mut pieces)| {
            if scoped {
                pieces.insert(0, Piece::Pair("organization_id".into(), organization.clone()));
            }
            (route, pieces)
        });
    let mut runner = TestRunner::new(config(384));
    let outcome = runner.run(&strategy, |(route, pieces)| {
        let uri = format!("/audit_logs/log/{route}?{}", query_text(&pieces));
        prop_assume!(uri.parse::<axum::http::Uri>().is_ok());
        let answer = harness.send(Method::GET, &uri, None, Vec::new());
        check_answer(&answer, &format!("GET {uri}"))?;
        Ok(())
    });
    if let Err(error) = outcome {
        panic!("{error}");
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|number| json!(number)),
        any::<f64>().prop_filter_map("finite", |number| serde_json::Number::from_f64(number)
            .map(Value::Number)),
        prop::collection::vec(any::<char>(), 0..10).prop_map(|chars| Value::String(chars.into_iter().collect())),
        prop::sample::select(vec![
            "org_01EHWNCE74X7JSDV0X3SZ3KJNY",
            "2026-01-01T00:00:00Z",
            "user.signed_in",
            "U",
            "csv",
            "1_YEAR",
        ])
        .prop_map(|text| Value::String(text.to_owned())),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "organization_id",
                        "event",
                        "events",
                        "action",
                        "occurred_at",
                        "actor",
                        "targets",
                        "context",
                        "location",
                        "metadata",
                        "id",
                        "type",
                        "name",
                        "group",
                        "action_type",
                        "actor_name",
                        "actor_id",
                        "target_name",
                        "target_id",
                        "domains",
                        "domain_data",
                        "external_id",
                        "retention_period",
                        "retention_period_in_days",
                        "version",
                        "x",
                    ]),
                    inner
                ),
                0..6
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().map(|(key, value)| (key.to_owned(), value)).collect())),
        ]
    })
}

/// Any JSON body on any route that reads one is answered with a success or a 4xx in the error
/// shape (exports are not served by this router: without an export service they answer 503).
#[test]
fn any_json_body_is_accepted_or_refused() {
    let harness = Harness::start();
    let organization = harness.organization.clone();
    let routes = vec![
        (Method::POST, "/audit_logs/events".to_owned()),
        (Method::POST, "/audit_logs/events/batch".to_owned()),
        (Method::POST, "/events".to_owned()),
        (Method::POST, "/organizations".to_owned()),
        (Method::PUT, format!("/organizations/{organization}")),
        (
            Method::PUT,
            format!("/organizations/{organization}/audit_logs_retention"),
        ),
        (Method::POST, "/audit_logs/actions/user.signed_in/schemas".to_owned()),
    ];
    let strategy = (
        prop::sample::select(routes),
        prop_oneof![
            4 => json_value().prop_map(|value| serde_json::to_vec(&value).expect("json")),
            1 => prop::collection::vec(any::<u8>(), 0..64),
        ],
        prop::sample::select(vec![
            Some("application/json"),
            Some("application/vnd.api+json; charset=utf-8"),
            Some("text/plain"),
            None,
        ]),
    );
    let mut runner = TestRunner::new(config(512));
    let outcome = runner.run(&strategy, |((method, path), body, content_type)| {
        let what = format!("{method} {path} {}", String::from_utf8_lossy(&body));
        let answer = harness.send(method, &path, content_type, body);
        check_answer(&answer, &what)?;
        Ok(())
    });
    if let Err(error) = outcome {
        panic!("{error}");
    }
}
