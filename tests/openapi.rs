//! The OpenAPI description (`docs/openapi.json`, served at
//! `/v2/openapi.json`) against the router and the running server: every
//! route is described and every described operation is routed, with the
//! same methods; a sample request to every operation answers a documented
//! status, content type and body shape.

mod common;

use common::{Server, User};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

const SPEC_FILE: &str = include_str!("../docs/openapi.json");
const ROUTER: &str = include_str!("../src/web/router.rs");
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

fn spec() -> Value {
    serde_json::from_str(SPEC_FILE).expect("docs/openapi.json is JSON")
}

/// `/v2/users/{user_id}/gifts` → `/v2/users/{}/gifts`.
fn shape(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// The routes of `src/web/router.rs`: path shape → methods. Each match arm
/// starts with a slice pattern (`["v2", "users", id] =>`); its methods are
/// the `("GET", …)` pairs up to the next arm. The admin page is not API.
fn router_routes() -> BTreeMap<String, BTreeSet<String>> {
    let mut routes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in ROUTER.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') && trimmed.contains("] =>") {
            let pattern = &trimmed[1..trimmed.find("] =>").unwrap()];
            current = if pattern.contains("..") {
                None
            } else {
                let segs: Vec<String> = pattern
                    .split(',')
                    .map(str::trim)
                    .map(
                        |s| match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                            Some(literal) => literal.to_string(),
                            None => "{}".to_string(),
                        },
                    )
                    .collect();
                let path = format!("/{}", segs.join("/"));
                routes.entry(path.clone()).or_default();
                Some(path)
            };
        } else if trimmed.starts_with("_ =>") {
            current = None;
        }
        if let Some(path) = &current {
            for m in METHODS {
                if line.contains(&format!("(\"{m}\",")) {
                    routes.get_mut(path).unwrap().insert(m.to_string());
                }
            }
        }
    }
    routes
}

/// The described operations: path shape → methods.
fn spec_routes(spec: &Value) -> BTreeMap<String, BTreeSet<String>> {
    spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, ops)| {
            let methods = ops
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| METHODS.contains(&k.to_uppercase().as_str()))
                .map(|k| k.to_uppercase())
                .collect();
            (shape(path), methods)
        })
        .collect()
}

#[test]
fn the_description_is_openapi_3_1_with_a_complete_shape() {
    let spec = spec();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        spec["openapi"]
    );
    assert!(spec["info"]["title"].is_string() && spec["info"]["version"].is_string());
    let schemes = spec["components"]["securitySchemes"].as_object().unwrap();
    for (name, header) in [
        ("UserEmail", "X-User-Email"),
        ("UserToken", "X-User-Token"),
        ("MerchantKey", "X-Merchant-Key"),
        ("MerchantSecret", "X-Merchant-Secret"),
    ] {
        assert_eq!(schemes[name]["type"], "apiKey");
        assert_eq!(schemes[name]["in"], "header");
        assert_eq!(schemes[name]["name"], header);
    }
    // Every $ref points at something that exists.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&spec, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').expect("local $ref");
        assert!(spec.pointer(pointer).is_some(), "dangling $ref {r}");
    }
    // Every operation: an id, a security requirement, and the responses
    // every route can give.
    let mut ids = BTreeSet::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
            assert!(op["security"].is_array(), "{method} {path}: security");
            let responses = op["responses"].as_object().unwrap();
            for status in ["400", "401", "406", "429"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path}: no {status}"
                );
            }
            if path.contains('{') {
                assert!(responses.contains_key("404"), "{method} {path}: no 404");
            }
            if op.get("requestBody").is_some() {
                assert!(responses.contains_key("413"), "{method} {path}: no 413");
            }
        }
    }
    let too_many = &spec["components"]["responses"]["TooManyRequests"];
    assert!(too_many["headers"]["Retry-After"].is_object());
}

#[test]
fn the_router_and_the_description_agree() {
    let routed = router_routes();
    let described = spec_routes(&spec());
    assert!(routed.len() > 30, "router not parsed: {routed:?}");
    let only_routed: Vec<_> = routed
        .iter()
        .filter(|(p, m)| described.get(*p) != Some(m))
        .collect();
    let only_described: Vec<_> = described
        .iter()
        .filter(|(p, m)| routed.get(*p) != Some(m))
        .collect();
    assert!(
        only_routed.is_empty() && only_described.is_empty(),
        "routed but not described (or other methods): {only_routed:?}\n\
         described but not routed (or other methods): {only_described:?}"
    );
}

// ------------------------------------------------------------ the server

/// A small JSON Schema check (the keywords the description uses, without
/// `pattern` and `format`): the problems found, with their JSON pointers.
fn check(spec: &Value, schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let target = spec.pointer(r.trim_start_matches('#')).unwrap();
        return check(spec, target, v, at, out);
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            out.push(format!("{at}: {v} is not {t}"));
            return;
        }
    }
    if let Some(c) = schema.get("const") {
        if c != v {
            out.push(format!("{at}: {v} is not {c}"));
        }
    }
    if let Some(Value::Array(e)) = schema.get("enum") {
        if !e.contains(v) {
            out.push(format!("{at}: {v} is not one of {e:?}"));
        }
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), v.as_f64()) {
        if n < min {
            out.push(format!("{at}: {n} < {min}"));
        }
    }
    if let (Some(max), Some(n)) = (schema["maximum"].as_f64(), v.as_f64()) {
        if n > max {
            out.push(format!("{at}: {n} > {max}"));
        }
    }
    if let Some(Value::Array(options)) = schema.get("oneOf") {
        let passing = options
            .iter()
            .filter(|o| {
                let mut e = Vec::new();
                check(spec, o, v, at, &mut e);
                e.is_empty()
            })
            .count();
        if passing != 1 {
            out.push(format!("{at}: matches {passing} of oneOf"));
        }
    }
    if let Some(Value::Array(options)) = schema.get("anyOf") {
        let any = options.iter().any(|o| {
            let mut e = Vec::new();
            check(spec, o, v, at, &mut e);
            e.is_empty()
        });
        if !any {
            out.push(format!("{at}: matches none of anyOf"));
        }
    }
    if let Value::Object(obj) = v {
        let props = schema["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        if let Some(Value::Array(req)) = schema.get("required") {
            for r in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    out.push(format!("{at}: {r} is missing"));
                }
            }
        }
        for (k, val) in obj {
            match props.get(k) {
                Some(s) => check(spec, s, val, &format!("{at}/{k}"), out),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => out.push(format!("{at}: {k} is not described")),
                    Some(s @ Value::Object(_)) => check(spec, s, val, &format!("{at}/{k}"), out),
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (v, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(spec, s, item, &format!("{at}/{i}"), out);
        }
        if let Some(min) = schema["minItems"].as_u64() {
            if (items.len() as u64) < min {
                out.push(format!("{at}: fewer than {min} items"));
            }
        }
    }
}

/// The described response of `op` for `status`, `$ref` resolved.
fn documented<'a>(spec: &'a Value, op: &'a Value, status: u16) -> Option<&'a Value> {
    let r = op["responses"].get(status.to_string())?;
    match r["$ref"].as_str() {
        Some(p) => spec.pointer(p.trim_start_matches('#')),
        None => Some(r),
    }
}

#[test]
fn every_operation_is_served_and_answers_as_described() {
    let s = Server::start();
    let spec = spec();

    // Served exactly as committed.
    let r = s.get("/v2/openapi.json", &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(r.text, SPEC_FILE);
    assert_eq!(r.body["openapi"], spec["openapi"]);

    // Something real behind every path parameter.
    let shop = common::shop(&s, "Spec Shop", true);
    let user = s.user("spec@example.com");
    let leaver = s.user("leaver@example.com");
    let mh = shop.merchant.headers();
    let issued = s.post(
        "/v2/certificates",
        &mh,
        json!({"certificate": {"product_option_id": shop.option_id, "quantity": 3, "recipient_email": user.email}}),
    );
    assert_eq!(issued.status, 201, "{}", issued.text);
    let cert = |i: usize| {
        issued.body["certificates"][i]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let code = issued.body["certificates"][2]["claim_code"]
        .as_str()
        .unwrap()
        .to_string();
    let redeemed = s.post(
        &format!("/v2/certificates/{}/redemptions", cert(0)),
        &mh,
        json!({"amount_to_redeem_cents": 1000}),
    );
    assert_eq!(redeemed.status, 201, "{}", redeemed.text);
    let gift = s.post(
        &format!("/v2/certificates/{}/gifts", cert(1)),
        &user.headers(),
        json!({"gift": {"sender_name": "Spec", "recipient_email": "friend@example.com"}}),
    );
    assert_eq!(gift.status, 201, "{}", gift.text);
    let params: BTreeMap<&str, String> = BTreeMap::from([
        ("merchant_id", shop.merchant.id.clone()),
        ("location_id", shop.location_id.clone()),
        ("product_id", shop.product_id.clone()),
        ("product_option_id", shop.option_id.clone()),
        ("user_id", user.id.clone()),
        ("certificate_id", cert(2)),
        ("claim_code", code),
        (
            "redemption_id",
            redeemed.body["redemptions"][0]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        ),
        (
            "gift_id",
            gift.body["gifts"][0]["id"].as_str().unwrap().to_string(),
        ),
    ]);

    let user_headers = |u: &User| u.headers();
    let mut problems = Vec::new();
    let mut requests = 0;
    let mut ops: Vec<(String, String, Value)> = Vec::new();
    for (path, methods) in spec["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            ops.push((path.clone(), method.to_uppercase(), op.clone()));
        }
    }
    // Writes last, so the reads see the seeded state; `DELETE /v2/tokens`
    // as a user of its own.
    ops.sort_by_key(|(_, m, _)| m != "GET");
    for (path, method, op) in &ops {
        let url = path
            .split('/')
            .map(
                |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => params
                        .get(name)
                        .unwrap_or_else(|| panic!("no sample for {name}"))
                        .clone(),
                    None => seg.to_string(),
                },
            )
            .collect::<Vec<_>>()
            .join("/");
        let schemes: Vec<String> = op["security"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|req| req.as_object().unwrap().keys().cloned())
            .collect();
        let mut callers: Vec<Vec<(String, String)>> = Vec::new();
        if schemes.iter().any(|s| s.starts_with("User")) {
            callers.push(if path == "/v2/tokens" && method == "DELETE" {
                user_headers(&leaver)
            } else {
                user_headers(&user)
            });
        }
        if schemes.iter().any(|s| s.starts_with("Merchant")) {
            callers.push(mh.clone());
        }
        if callers.is_empty() {
            callers.push(Vec::new());
        }
        for headers in callers {
            let body = op.get("requestBody").map(|_| json!({}));
            let r = s.req(method, &url, &headers, body.as_ref());
            requests += 1;
            let what = format!("{method} {url} ({path}) -> {}: {}", r.status, r.text);
            if r.status == 404 && r.text.contains("No route") || r.status == 405 {
                problems.push(format!("not routed: {what}"));
                continue;
            }
            let Some(doc) = documented(&spec, op, r.status) else {
                problems.push(format!("undocumented status: {what}"));
                continue;
            };
            let content_type = r.header("content-type").unwrap_or("");
            match doc.get("content").and_then(Value::as_object) {
                None => {
                    if !r.text.is_empty() {
                        problems.push(format!("a body where none is documented: {what}"));
                    }
                }
                Some(content) => {
                    let (media, media_doc) = content.iter().next().unwrap();
                    if !content_type.starts_with(media.as_str()) {
                        problems.push(format!("content type {content_type}, not {media}: {what}"));
                    } else if media == "application/json" {
                        let mut errors = Vec::new();
                        check(&spec, &media_doc["schema"], &r.body, "", &mut errors);
                        if !errors.is_empty() {
                            problems.push(format!("breaks the schema {errors:?}: {what}"));
                        }
                    }
                }
            }
        }
    }
    assert!(requests >= 48, "{requests}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn described_paths_refuse_other_methods_with_the_documented_allow() {
    let s = Server::start();
    let spec = spec();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        let url = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let mut allowed: BTreeSet<String> = ops
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        // HEAD is served wherever GET is.
        if allowed.contains("GET") {
            allowed.insert("HEAD".to_string());
        }
        for m in METHODS.iter().filter(|m| !allowed.contains(**m)) {
            let r = s.req(m, &url, &[], None);
            assert_eq!(r.status, 405, "{m} {url}: {}", r.text);
            let allow: BTreeSet<String> = r
                .header("allow")
                .unwrap_or("")
                .split(',')
                .map(|x| x.trim().to_string())
                .collect();
            assert_eq!(allow, allowed, "{m} {url}");
            let mut errors = Vec::new();
            check(
                &spec,
                &json!({"$ref": "#/components/schemas/Errors"}),
                &r.body,
                "",
                &mut errors,
            );
            assert!(errors.is_empty(), "{errors:?}");
        }
    }
}

#[test]
fn the_original_spellings_reach_the_same_operations() {
    let s = Server::start();
    let shop = common::shop(&s, "Alias Shop", true);
    let user = s.user("alias@example.com");
    let u = user.headers();
    let m = shop.merchant.headers();
    let r = s.post(
        "/v2/certificates",
        &m,
        json!({"certificate": {"product_option_id": shop.option_id, "recipient_email": user.email}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let cert_id = r.first("certificates")["id"].as_str().unwrap().to_string();
    let code = r.first("certificates")["claim_code"]
        .as_str()
        .unwrap()
        .to_string();
    // Each alias answers exactly what its canonical path answers: the same
    // operation on the same resource, not merely some route.
    for (alias, canonical, headers) in [
        (
            format!("/v2/user/{}/certificates", user.id),
            format!("/v2/users/{}/certificates", user.id),
            &u,
        ),
        (
            format!("/v2/merchant/{}/locations", shop.merchant.id),
            format!("/v2/merchants/{}/locations", shop.merchant.id),
            &m,
        ),
        (
            format!("/v2/product/{}/product_options", shop.product_id),
            format!("/v2/products/{}/product_options", shop.product_id),
            &m,
        ),
        (
            format!("/v2/claim_code/{code}"),
            format!("/v2/claim_codes/{code}"),
            &m,
        ),
        (
            format!("/v2/certficates/{cert_id}"),
            format!("/v2/certificates/{cert_id}"),
            &u,
        ),
    ] {
        let want = s.get(&canonical, headers);
        assert_eq!(want.status, 200, "{canonical}: {}", want.text);
        let got = s.get(&alias, headers);
        assert_eq!(
            (got.status, &got.body),
            (want.status, &want.body),
            "{alias} differs from {canonical}"
        );
    }
    // A write through a misspelling reaches the same operation too.
    let r = s.post(
        &format!("/v2/certficates/{cert_id}/redemptions"),
        &u,
        json!({"amount_to_redeem_cents": 2500}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.first("redemptions")["amount_cents"], 2500);
    assert_eq!(
        r.first("redemptions")["links"]["certificate"],
        json!(cert_id)
    );
    let r = s.post("/v2/certficates/nope/redemptions", &m, json!({}));
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(!r.text.contains("No route"), "{}", r.text);
    // The description names the canonical spellings only.
    let spec = spec();
    let paths: Map<String, Value> = spec["paths"].as_object().unwrap().clone();
    assert!(paths.keys().all(|p| !p.contains("/certficates")
        && !p.starts_with("/v2/user/")
        && !p.starts_with("/v2/claim_code/")));
}
