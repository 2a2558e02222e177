//! Routing over compiled documents: API choice by host and path, operation choice
//! by method and template precedence, trailing slashes, queries, suffixes.

use crate::config::testutil::load;
use crate::config::{CompiledConfig, RouteMatch};

/// (api id, operation id) or a marker for the two misses.
fn hit(config: &CompiledConfig, host: &str, path: &str, method: &str) -> String {
    match config.route(host, path, method) {
        RouteMatch::NoApi => "no-api".to_owned(),
        RouteMatch::NoOperation { api } => format!("{}:no-op", api.id),
        RouteMatch::Found { api, operation, .. } => format!("{}:{}", api.id, operation.id),
    }
}

const APIS: &str = r#"
apis:
  - id: root
    path: ""
    operations:
      - { id: any, method: "*", urlTemplate: "/*", mock: {} }
  - id: echo
    path: echo
    operations:
      - { id: any, method: "*", urlTemplate: "/*", mock: {} }
  - id: echo-v2
    path: echo/v2
    operations:
      - { id: get, method: GET, urlTemplate: "/items/{id}", mock: {} }
"#;

#[test]
fn longest_api_path_on_a_segment_boundary() {
    let c = load(APIS);
    assert_eq!(hit(&c, "h", "/echo", "GET"), "echo:any");
    assert_eq!(hit(&c, "h", "/echo/", "GET"), "echo:any");
    assert_eq!(hit(&c, "h", "/echo/x", "GET"), "echo:any");
    assert_eq!(hit(&c, "h", "/echoes", "GET"), "root:any");
    assert_eq!(hit(&c, "h", "/", "GET"), "root:any");
    assert_eq!(hit(&c, "h", "/other/thing", "GET"), "root:any");
    assert_eq!(hit(&c, "h", "/echo/v2/items/1", "GET"), "echo-v2:get");
    assert_eq!(hit(&c, "h", "/echo/v2x/items/1", "GET"), "echo:any");
    // The longest API wins even without a matching operation: no fall back.
    assert_eq!(hit(&c, "h", "/echo/v2/other", "GET"), "echo-v2:no-op");
    assert_eq!(hit(&c, "h", "/echo/v2/items/1", "POST"), "echo-v2:no-op");
    // Case matters (RFC 3986 paths are case-sensitive).
    assert_eq!(hit(&c, "h", "/ECHO/x", "GET"), "root:any");
    // Not an origin-form path.
    assert_eq!(hit(&c, "h", "*", "OPTIONS"), "no-api");
    assert_eq!(hit(&c, "h", "", "GET"), "no-api");
}

#[test]
fn suffix_and_params() {
    let c = load(APIS);
    let RouteMatch::Found { suffix, params, .. } = c.route("h", "/echo/v2/items/a%20b?x=1", "GET")
    else {
        panic!("expected a match");
    };
    assert_eq!(suffix, "/items/a%20b");
    assert_eq!(params, [("id", "a%20b")]);
    let RouteMatch::Found { suffix, params, .. } = c.route("h", "/echo", "GET") else {
        panic!("expected a match");
    };
    assert_eq!(suffix, "");
    assert!(params.is_empty());
    let RouteMatch::Found { api, suffix, .. } = c.route("h", "/x/y", "GET") else {
        panic!("expected a match");
    };
    assert_eq!((api.id.as_str(), suffix), ("root", "/x/y"));
}

#[test]
fn no_apis_means_no_api() {
    let c = load("apis: []");
    assert_eq!(hit(&c, "h", "/", "GET"), "no-api");
    let c = load("apis:\n  - { id: a, path: a, operations: [ { id: x, method: GET, urlTemplate: /, mock: {} } ] }\n");
    assert_eq!(hit(&c, "h", "/", "GET"), "no-api");
    assert_eq!(hit(&c, "h", "/b", "GET"), "no-api");
    assert_eq!(hit(&c, "h", "/a", "GET"), "a:x");
}

#[test]
fn operation_precedence() {
    let c = load(
        r#"
apis:
  - id: a
    path: a
    operations:
      - { id: wild,      method: "*",   urlTemplate: "/*", mock: {} }
      - { id: rest,      method: GET,   urlTemplate: "/items/{*rest}", mock: {} }
      - { id: by-id,     method: GET,   urlTemplate: "/items/{id}", mock: {} }
      - { id: any-by-id, method: "*",   urlTemplate: "/items/{id}", mock: {} }
      - { id: new,       method: GET,   urlTemplate: "/items/new", mock: {} }
      - { id: list,      method: GET,   urlTemplate: "/items", mock: {} }
      - { id: sub,       method: GET,   urlTemplate: "/{kind}/sub", mock: {} }
      - { id: lit-first, method: GET,   urlTemplate: "/items/{id}/sub", mock: {} }
"#,
    );
    assert_eq!(hit(&c, "h", "/a/items/new", "GET"), "a:new");
    assert_eq!(hit(&c, "h", "/a/items/42", "GET"), "a:by-id");
    assert_eq!(hit(&c, "h", "/a/items/42", "DELETE"), "a:any-by-id");
    assert_eq!(hit(&c, "h", "/a/items/new", "PUT"), "a:any-by-id");
    assert_eq!(hit(&c, "h", "/a/items", "GET"), "a:list");
    assert_eq!(hit(&c, "h", "/a/items/", "GET"), "a:list");
    assert_eq!(hit(&c, "h", "/a/items/1/2", "GET"), "a:rest");
    assert_eq!(hit(&c, "h", "/a/items/1/2", "POST"), "a:wild");
    // Literal beats parameter at the first segment where they differ.
    assert_eq!(hit(&c, "h", "/a/items/42/sub", "GET"), "a:lit-first");
    assert_eq!(hit(&c, "h", "/a/things/sub", "GET"), "a:sub");
    assert_eq!(hit(&c, "h", "/a", "GET"), "a:wild");
    // Methods are case-sensitive.
    assert_eq!(hit(&c, "h", "/a/items", "get"), "a:wild");
}

#[test]
fn trailing_slash_rules() {
    let c = load(
        r#"
apis:
  - id: a
    path: a
    operations:
      - { id: list, method: GET, urlTemplate: "/items", mock: {} }
      - { id: one,  method: GET, urlTemplate: "/items/{id}", mock: {} }
      - { id: root, method: GET, urlTemplate: "/", mock: {} }
"#,
    );
    assert_eq!(hit(&c, "h", "/a/items", "GET"), "a:list");
    assert_eq!(hit(&c, "h", "/a/items/", "GET"), "a:list");
    assert_eq!(hit(&c, "h", "/a/items/7/", "GET"), "a:one");
    assert_eq!(hit(&c, "h", "/a/items//", "GET"), "a:no-op");
    assert_eq!(hit(&c, "h", "/a", "GET"), "a:root");
    assert_eq!(hit(&c, "h", "/a/", "GET"), "a:root");
    assert_eq!(hit(&c, "h", "/a//", "GET"), "a:no-op");
}

const HOSTS: &str = r#"
apis:
  - id: generic
    path: ""
    operations: [ { id: op, method: "*", urlTemplate: "/*", mock: {} } ]
  - id: generic-echo
    path: echo
    operations: [ { id: op, method: "*", urlTemplate: "/*", mock: {} } ]
  - id: exact
    path: ""
    hostnames: [api.example.org]
    operations: [ { id: op, method: "*", urlTemplate: "/*", mock: {} } ]
  - id: wild
    path: ""
    hostnames: ["*.example.com"]
    operations: [ { id: op, method: "*", urlTemplate: "/*", mock: {} } ]
  - id: wild-echo
    path: echo
    hostnames: ["*.example.com"]
    operations: [ { id: op, method: "*", urlTemplate: "/*", mock: {} } ]
  - id: v6
    path: ""
    hostnames: ["[::1]", 10.0.0.1]
    operations: [ { id: op, method: "*", urlTemplate: "/*", mock: {} } ]
"#;

#[test]
fn hostname_routing() {
    let c = load(HOSTS);
    let api = |host: &str, path: &str| {
        hit(&c, host, path, "GET")
            .trim_end_matches(":op")
            .to_owned()
    };
    // Exact hostname, wildcard, and the APIs without hostnames for anyone else.
    assert_eq!(api("other.org", "/x"), "generic");
    assert_eq!(api("other.org", "/echo/x"), "generic-echo");
    assert_eq!(api("", "/echo/x"), "generic-echo");
    assert_eq!(api("api.example.org", "/x"), "exact");
    assert_eq!(api("API.example.ORG:8080", "/echo/x"), "exact");
    assert_eq!(api("x.api.example.org", "/x"), "generic");
    assert_eq!(api("x.example.com", "/x"), "wild");
    assert_eq!(api("a.b.example.com", "/x"), "wild");
    assert_eq!(api("x.example.com", "/echo/x"), "wild-echo");
    // The port is ignored, and so is case and one trailing dot.
    assert_eq!(api("X.Example.COM:8443", "/x"), "wild");
    assert_eq!(api("x.example.com.:80", "/x"), "wild");
    // "*." needs at least one label.
    assert_eq!(api("example.com", "/x"), "generic");
    // IP literals.
    assert_eq!(api("[::1]:8080", "/x"), "v6");
    assert_eq!(api("10.0.0.1:8080", "/x"), "v6");
    assert_eq!(api("10.0.0.2", "/x"), "generic");
}

#[test]
fn host_specific_apis_win_over_longer_generic_paths() {
    let c = load(
        r#"
apis:
  - id: generic-echo
    path: echo
    operations: [ { id: op, method: "*", urlTemplate: "/*", mock: {} } ]
  - id: site
    path: ""
    hostnames: [api.example.com]
    operations: [ { id: op, method: "*", urlTemplate: "/*", mock: {} } ]
  - id: site-echo
    path: echo/deep
    hostnames: [api.example.com]
    operations: [ { id: op, method: "*", urlTemplate: "/*", mock: {} } ]
"#,
    );
    assert_eq!(hit(&c, "api.example.com", "/echo/x", "GET"), "site:op");
    assert_eq!(
        hit(&c, "api.example.com", "/echo/deep/x", "GET"),
        "site-echo:op"
    );
    assert_eq!(hit(&c, "other", "/echo/deep/x", "GET"), "generic-echo:op");
    assert_eq!(hit(&c, "other", "/x", "GET"), "no-api");
}

#[test]
fn exact_and_wildcard_hosts_cannot_share_a_path() {
    // Overlapping patterns on one path are rejected, so routing never has to
    // choose between an exact name and a wildcard that covers it.
    let text = HOSTS.replace("api.example.org", "api.example.com");
    let paths = crate::config::testutil::error_paths(&text);
    assert_eq!(paths, ["apis[3].hostnames[0]"]);
}

#[test]
fn deep_request_paths_are_cheap_and_correct() {
    let c = load(APIS);
    let deep = format!("/echo/v2/items/1{}", "/x".repeat(4000));
    assert_eq!(hit(&c, "h", &deep, "GET"), "echo-v2:no-op");
    let deep = format!("/zz{}", "/x".repeat(4000));
    assert_eq!(hit(&c, "h", &deep, "GET"), "root:any");
}
