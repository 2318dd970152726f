//! The OpenAPI document (`GET /v1/openapi.json`): the handlers' annotations,
//! then the conventions every operation shares, applied here once so that
//! no handler can forget them:
//!
//! - the bearer token: a security scheme, required by every operation but
//!   the [`OPEN_PATHS`], which then may answer `401`;
//! - the answers the server's layers give to any request, whatever the
//!   handler: `400` (a request that cannot be parsed, a path that is not
//!   UTF-8), `431` (a head over [`MAX_HEAD_BYTES`]), and for operations that
//!   take a body, `408` (slower than the body timeout) and `413` (over the
//!   limit);
//! - every error answer is a problem document, `application/problem+json`,
//!   with `Retry-After` on a `503` or `507`.

use utoipa::openapi::content::Content;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::{Modify, ToSchema};

use super::ApiConfig;
use super::error::{PROBLEM_JSON, Problem};
use super::server::MAX_HEAD_BYTES;

/// The paths served without the token.
pub(super) const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// The name of the token's security scheme.
pub(super) const BEARER: &str = "bearer";

/// The conventions of every operation (the module's documentation).
pub(super) struct Conventions<'a> {
    /// The limits the descriptions name.
    pub config: &'a ApiConfig,
}

impl Modify for Conventions<'_> {
    fn modify(&self, api: &mut OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(
            "`Authorization: Bearer <token>`: `DECKHAND_TOKEN`, or the `api-token` file the \
             server keeps in its data directory"
                .into(),
        );
        components.add_security_scheme(BEARER, SecurityScheme::Http(http));
        let problem = Problem::name().into_owned();
        if !components.schemas.contains_key(&problem) {
            components.schemas.insert(
                problem.clone(),
                <Problem as utoipa::PartialSchema>::schema(),
            );
        }
        for (path, item) in api.paths.paths.iter_mut() {
            let open = OPEN_PATHS.contains(&path.as_str());
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for op in operations.into_iter().flatten() {
                self.apply(op, open, &problem);
            }
        }
    }
}

impl Conventions<'_> {
    fn apply(&self, op: &mut Operation, open: bool, problem: &str) {
        let c = self.config;
        let mut shared: Vec<(&str, String)> = vec![
            (
                "400",
                "The request cannot be parsed (`malformed-request`), or its path is not UTF-8 \
                 (`invalid-path`)"
                    .into(),
            ),
            (
                "431",
                format!(
                    "The request's head is larger than {MAX_HEAD_BYTES} bytes \
                     (`headers-too-large`)"
                ),
            ),
        ];
        if op.request_body.is_some() {
            let limit = if op.operation_id.as_deref() == Some("upload_plugin") {
                c.max_plugin_bytes
            } else {
                c.max_body_bytes
            };
            shared.push((
                "408",
                format!(
                    "The body did not arrive in full within {} s (`body-timeout`)",
                    c.body_timeout.as_secs()
                ),
            ));
            shared.push((
                "413",
                format!("The body is larger than {limit} bytes (`body-too-large`)"),
            ));
        }
        if !open {
            op.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
            let mut unauthorized =
                Response::new("No valid `Authorization: Bearer <token>` header (`unauthorized`)");
            unauthorized
                .headers
                .insert("WWW-Authenticate".into(), Header::default());
            op.responses
                .responses
                .entry("401".into())
                .or_insert(RefOr::T(unauthorized));
        }
        for (status, description) in shared {
            op.responses
                .responses
                .entry(status.into())
                .or_insert_with(|| RefOr::T(Response::new(description)));
        }
        for (status, response) in op.responses.responses.iter_mut() {
            let RefOr::T(response) = response else {
                continue;
            };
            let error = status.starts_with('4') || status.starts_with('5');
            if !error {
                continue;
            }
            problem_content(response, problem);
            if matches!(status.as_str(), "503" | "507") {
                response
                    .headers
                    .entry("Retry-After".into())
                    .or_insert_with(|| {
                        let mut h = Header::new(
                            ObjectBuilder::new()
                                .schema_type(Type::Integer)
                                .minimum(Some(0)),
                        );
                        h.description = Some("Seconds to wait before trying again".into());
                        h
                    });
            }
        }
    }
}

/// An error answer's body is a problem document: one declared as JSON of
/// the [`Problem`] schema, or with no body declared, becomes one.
fn problem_content(response: &mut Response, problem: &str) {
    let reference = format!("#/components/schemas/{problem}");
    let is_problem =
        |c: &Content| matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location == reference);
    if response.content.is_empty() {
        response.content.insert(
            PROBLEM_JSON.into(),
            Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::new(reference)))),
        );
        return;
    }
    if let Some(json) = response.content.get("application/json")
        && is_problem(json)
    {
        let json = response
            .content
            .shift_remove("application/json")
            .expect("present");
        response.content.insert(PROBLEM_JSON.into(), json);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn doc() -> Value {
        serde_json::to_value(super::super::openapi(&ApiConfig::default())).unwrap()
    }

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                out.push((path.clone(), method.clone(), op.clone()));
            }
        }
        out
    }

    /// Every `$ref` in `v`.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = doc();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "dangling {r}"
            );
        }
    }

    #[test]
    fn parameters_are_where_the_server_reads_them() {
        let doc = doc();
        for (path, method, op) in operations(&doc) {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                let in_path = path.contains(&format!("{{{name}}}"));
                match p["in"].as_str().unwrap() {
                    "path" => assert!(in_path && p["required"] == true, "{method} {path} {name}"),
                    "query" | "header" => assert!(!in_path, "{method} {path} {name}"),
                    other => panic!("{method} {path} {name} in {other}"),
                }
                assert!(
                    !p["schema"]["type"]
                        .as_array()
                        .is_some_and(|t| t.contains(&"null".into())),
                    "{method} {path} {name}: a parameter is never null"
                );
            }
        }
        let list = &doc["paths"]["/v1/jobs"]["get"]["parameters"];
        for p in list.as_array().unwrap() {
            assert_eq!(p["in"], "query", "{p}");
            assert_eq!(p["required"], false, "{p}");
        }
        let upload = &doc["paths"]["/v1/plugins"]["post"]["parameters"][0];
        assert_eq!(
            (&upload["name"], &upload["in"]),
            (&"name".into(), &"query".into())
        );
    }

    #[test]
    fn the_token_is_required_by_every_operation_but_the_open_ones() {
        let doc = doc();
        let scheme = &doc["components"]["securitySchemes"][BEARER];
        assert_eq!(
            (&scheme["type"], &scheme["scheme"]),
            (&"http".into(), &"bearer".into())
        );
        for (path, method, op) in operations(&doc) {
            if OPEN_PATHS.contains(&path.as_str()) {
                assert!(op.get("security").is_none(), "{method} {path}");
                assert!(op["responses"].get("401").is_none(), "{method} {path}");
            } else {
                assert_eq!(
                    op["security"],
                    serde_json::json!([{BEARER: []}]),
                    "{method} {path}"
                );
                assert!(op["responses"].get("401").is_some(), "{method} {path}");
            }
        }
    }

    #[test]
    fn errors_are_problem_documents_and_bodies_have_their_limits() {
        let doc = doc();
        for (path, method, op) in operations(&doc) {
            let responses = op["responses"].as_object().unwrap();
            for status in ["400", "431"] {
                assert!(responses.contains_key(status), "{method} {path} {status}");
            }
            let takes_body = op.get("requestBody").is_some();
            for status in ["408", "413", "415"] {
                assert_eq!(
                    responses.contains_key(status),
                    takes_body,
                    "{method} {path} {status}"
                );
            }
            for (status, r) in responses {
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                let content = r["content"].as_object().unwrap();
                if path == "/readyz" && status == "503" {
                    // Its report, as with `200`.
                    assert!(content.contains_key("application/json"), "{status}");
                    assert!(r["headers"].get("Retry-After").is_some());
                    continue;
                }
                assert_eq!(
                    content.keys().collect::<Vec<_>>(),
                    [PROBLEM_JSON],
                    "{method} {path} {status}"
                );
                assert_eq!(
                    content[PROBLEM_JSON]["schema"]["$ref"],
                    "#/components/schemas/Problem"
                );
                if status == "503" || status == "507" {
                    assert!(
                        r["headers"].get("Retry-After").is_some(),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }

    #[test]
    fn names_have_their_patterns_and_the_component_is_binary() {
        let doc = doc();
        let target = "^[a-z0-9][a-z0-9_.-]{0,62}$";
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["CreateJob"]["properties"]["target"]["pattern"],
            target
        );
        assert_eq!(
            schemas["CreateJob"]["properties"]["workflow"]["pattern"],
            "^[a-z][a-z0-9-]{0,62}$"
        );
        let name = &doc["paths"]["/v1/targets/{name}"]["get"]["parameters"][0];
        assert_eq!(name["schema"]["pattern"], target);
        let body = &doc["paths"]["/v1/plugins"]["post"]["requestBody"]["content"];
        let component = body["application/wasm"]["schema"]["$ref"].as_str().unwrap();
        let component = &schemas[component.rsplit('/').next().unwrap()];
        assert_eq!(
            (
                &component["type"],
                &component["format"],
                &component["contentMediaType"]
            ),
            (
                &"string".into(),
                &"binary".into(),
                &"application/wasm".into()
            )
        );
        let states = &schemas["JobState"]["enum"];
        let all: Vec<&str> = crate::journal::JobState::ALL
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(states, &serde_json::json!(all));
    }
}
