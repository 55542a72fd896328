//! The OpenAPI document: what `GET /openapi.json` serves is the committed `docs/openapi.json`,
//! byte for byte, and it describes exactly the routes the router serves.

use std::collections::BTreeSet;
use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

const REGENERATE: &str =
    "regenerate it with `cargo run -p vellum -- openapi > docs/openapi.json` and commit the change";

#[tokio::test]
async fn the_served_document_is_the_committed_one() {
    let app = TestApp::spawn().await;
    // No API key: the document is public.
    let response = reqwest::get(app.url("/openapi.json")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "the document is served as JSON"
    );
    let served = response.text().await.unwrap();
    let committed = std::fs::read_to_string(repository_root().join("docs/openapi.json"))
        .unwrap_or_else(|error| panic!("docs/openapi.json cannot be read ({error}): {REGENERATE}"));
    if served != committed {
        let line = served
            .lines()
            .zip(committed.lines())
            .position(|(served, committed)| served != committed)
            .map_or_else(|| "the end".to_owned(), |index| format!("line {}", index + 1));
        panic!("docs/openapi.json differs from what GET /openapi.json serves (first at {line}): {REGENERATE}");
    }
    let document: Value = serde_json::from_str(&served).expect("the document is JSON");
    assert_eq!(document["openapi"], "3.1.0");
    // Every list envelope has a name of its own (WorkOS's `OrganizationList` pattern).
    assert!(
        !served.contains("ListResponse_"),
        "a list envelope has utoipa's generic name: add it to LIST_NAMES in crates/vellum-http/src/openapi.rs"
    );
    app.stop().await.unwrap();
}

/// `(METHOD, /path/{param})` of every route mounted in `vellum-http`, read from its source: each
/// `.route("path", get(…).post(…))` call outside the dashboard and the portal (whose session and
/// viewer APIs, the public handlers behind another credential, are not in the document).
fn routes_in_the_router() -> BTreeSet<(String, String)> {
    let source_dir = repository_root().join("crates/vellum-http/src");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(&source_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|extension| extension != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rest = text.as_str();
        while let Some(start) = rest.find(".route(") {
            rest = &rest[start + ".route(".len()..];
            // The call's arguments, up to its closing parenthesis.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, character)| {
                    match character {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(index, _)| index)
                .expect("a closed .route( call");
            let arguments = &rest[..end];
            let Some(route_path) = arguments.split('"').nth(1) else {
                continue;
            };
            let handlers = arguments.split_once(',').map_or("", |(_, handlers)| handlers);
            for method in ["get", "post", "put", "delete", "patch"] {
                let called = handlers.match_indices(&format!("{method}(")).any(|(index, _)| {
                    index == 0
                        || !handlers.as_bytes()[index - 1].is_ascii_alphanumeric()
                            && handlers.as_bytes()[index - 1] != b'_'
                });
                if called {
                    routes.insert((method.to_uppercase(), route_path.to_owned()));
                }
            }
        }
    }
    routes
}

fn operations_in_the_document() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(repository_root().join("docs/openapi.json")).unwrap();
    let document: Value = serde_json::from_str(&text).unwrap();
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.insert((method.to_uppercase(), path.clone()));
        }
    }
    operations
}

#[tokio::test]
async fn every_route_is_in_the_document_and_every_operation_is_served() {
    let served = routes_in_the_router();
    let documented = operations_in_the_document();
    assert!(served.len() > 20, "the route scan found too few routes: {served:?}");
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "routes missing from the document: {undocumented:?}\noperations the router does not mount: {not_served:?}\n\
         (add `#[utoipa::path]` to the handler and list it in crates/vellum-http/src/openapi.rs, then {REGENERATE})"
    );

    // And the server answers each documented operation from its handler, not from the
    // fallbacks for unknown paths and methods.
    let app = TestApp::spawn().await;
    for (method, path) in &documented {
        let concrete = path.replace("{external_id}", "missing").replace(['{', '}'], "");
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .request(method.clone(), &concrete)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let from_fallback = status == StatusCode::METHOD_NOT_ALLOWED
            || body["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("Cannot "));
        assert!(
            !from_fallback,
            "{method} {path} is documented but not served: {status} {body}"
        );
    }
    app.stop().await.unwrap();
}
