//! Policy documents of all four scopes compiled into one pipeline per operation (and
//! per product that contains its API, since a product's policies apply only to calls
//! made with that product's subscription). Named values `{{name}}` are substituted
//! first; a document is read from the config inline (it starts with '<') or from a file
//! next to the config. Errors name the item and the line; secret values never appear
//! in them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::access::Access;
use super::{Api, Errors};
use crate::config::model::Document;
use crate::policy::builtin::{self, CompileCx, CompileEnv};
use crate::policy::document::{self, Scope, ScopeDoc};
use crate::policy::pipeline::{Pipeline, Section};
use crate::policy::xml;

/// The pipelines of one operation.
#[derive(Debug)]
pub struct OpPipelines {
    /// For calls without a product subscription.
    pub default: Arc<Pipeline>,
    /// For calls with a subscription to a product (product index, pipeline).
    pub by_product: Vec<(usize, Arc<Pipeline>)>,
}

/// Every operation's pipelines, indexed by API and operation.
#[derive(Debug, Default)]
pub struct Pipelines {
    per_api: Vec<Vec<OpPipelines>>,
}

impl Pipelines {
    /// The pipeline for a call to `op` of `api` under `product`.
    pub fn get(&self, api: usize, op: usize, product: Option<usize>) -> Option<&Arc<Pipeline>> {
        let ops = self.per_api.get(api)?.get(op)?;
        if let Some(p) = product {
            if let Some((_, pipeline)) = ops.by_product.iter().find(|(i, _)| *i == p) {
                return Some(pipeline);
            }
        }
        Some(&ops.default)
    }
}

pub fn compile_policies(
    doc: &Document,
    apis: &[Api],
    access: &Access,
    env: &CompileEnv<'_>,
    base_dir: Option<&Path>,
    errors: &mut Errors,
) -> Pipelines {
    let named = named_values(doc, errors);
    // Values are substituted before the XML is read, so any error that quotes an
    // attribute or text could quote a secret: every message is redacted.
    let secrets: Vec<(String, String)> = doc
        .named_values
        .iter()
        .filter(|nv| nv.secret && !nv.value.is_empty())
        .map(|nv| (nv.name.clone(), nv.value.clone()))
        .collect();
    let redact = |message: String| -> String {
        let mut out = message;
        for (name, value) in &secrets {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), &format!("{{{{{name}}}}}"));
            }
        }
        out
    };
    let mut read = |at: String, text: &Option<String>| -> Option<ScopeDoc> {
        let text = text.as_ref()?;
        let raw = match policy_text(text, base_dir) {
            Ok(t) => t,
            Err(e) => {
                errors.push(at, e);
                return None;
            }
        };
        let substituted = match substitute(&raw, &named) {
            Ok(t) => t,
            Err(e) => {
                errors.push(at, e);
                return None;
            }
        };
        match ScopeDoc::parse(&substituted) {
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(at, redact(e));
                None
            }
        }
    };
    let global = read("policies".into(), &doc.policies);
    let products: Vec<Option<ScopeDoc>> = doc
        .products
        .iter()
        .enumerate()
        .map(|(i, p)| read(format!("products[{i}].policies"), &p.policies))
        .collect();
    let api_docs: Vec<Option<ScopeDoc>> = doc
        .apis
        .iter()
        .enumerate()
        .map(|(i, a)| read(format!("apis[{i}].policies"), &a.policies))
        .collect();
    let op_docs: Vec<Vec<Option<ScopeDoc>>> = doc
        .apis
        .iter()
        .enumerate()
        .map(|(i, a)| {
            a.operations
                .iter()
                .enumerate()
                .map(|(j, o)| read(format!("apis[{i}].operations[{j}].policies"), &o.policies))
                .collect()
        })
        .collect();

    let forward = xml::parse("<forward-request/>").expect("built-in element");
    let mut seen_errors: Vec<String> = Vec::new();
    let mut per_api = Vec::with_capacity(apis.len());
    for api in apis {
        let mut ops = Vec::with_capacity(api.operations.len());
        for op in &api.operations {
            let op_doc = op_docs
                .get(api.index)
                .and_then(|v| v.get(op.index))
                .and_then(Option::as_ref);
            let api_doc = api_docs.get(api.index).and_then(Option::as_ref);
            let mut build = |product: Option<usize>| -> Pipeline {
                let product_doc = product
                    .and_then(|p| products.get(p))
                    .and_then(Option::as_ref);
                let scopes = [
                    (Scope::Global, global.as_ref()),
                    (Scope::Product, product_doc),
                    (Scope::Api, api_doc),
                    (Scope::Operation, op_doc),
                ];
                let scope_id = |s: Scope| -> String {
                    match s {
                        Scope::Global => String::new(),
                        Scope::Product => product
                            .and_then(|p| access.products.get(p))
                            .map(|p| p.id.clone())
                            .unwrap_or_default(),
                        Scope::Api => api.id.clone(),
                        Scope::Operation => format!("{}/{}", api.id, op.id),
                    }
                };
                let mut pipeline = Pipeline::default();
                for section in Section::ALL {
                    let placed = match document::merge(&scopes, section, &forward) {
                        Ok(p) => p,
                        Err(e) => {
                            let at = format!("apis[{}]", api.index);
                            report(&mut seen_errors, errors, &at, redact(e));
                            continue;
                        }
                    };
                    let mut compiled = Vec::with_capacity(placed.len());
                    for p in placed {
                        let id = scope_id(p.scope);
                        let cx = CompileCx {
                            section,
                            scope: p.scope,
                            scope_id: &id,
                            index: p.index,
                            mock: op.mock.as_ref(),
                            env,
                        };
                        match builtin::compile(p.element, &cx) {
                            Ok(policy) => compiled.push(policy),
                            Err(e) => {
                                let at = match p.scope {
                                    Scope::Global => "policies".to_string(),
                                    Scope::Product => {
                                        format!("products[{}].policies", product.unwrap_or(0))
                                    }
                                    Scope::Api => format!("apis[{}].policies", api.index),
                                    Scope::Operation => format!(
                                        "apis[{}].operations[{}].policies",
                                        api.index, op.index
                                    ),
                                };
                                report(
                                    &mut seen_errors,
                                    errors,
                                    &at,
                                    redact(format!("<{}> {e}", section.name())),
                                );
                            }
                        }
                    }
                    match section {
                        Section::Inbound => pipeline.inbound = compiled,
                        Section::Backend => pipeline.backend = compiled,
                        Section::Outbound => pipeline.outbound = compiled,
                        Section::OnError => pipeline.on_error = compiled,
                    }
                }
                pipeline
            };
            let default = Arc::new(build(None));
            let by_product = access
                .products_of(api.index)
                .map(|p| (p.index, Arc::new(build(Some(p.index)))))
                .collect();
            ops.push(OpPipelines {
                default,
                by_product,
            });
        }
        per_api.push(ops);
    }
    Pipelines { per_api }
}

/// The same scope document is compiled once per operation and product; report each
/// problem once.
fn report(seen: &mut Vec<String>, errors: &mut Errors, at: &str, message: String) {
    let key = format!("{at}: {message}");
    if !seen.contains(&key) {
        seen.push(key);
        errors.push(at.to_string(), message);
    }
}

fn named_values(doc: &Document, errors: &mut Errors) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (i, nv) in doc.named_values.iter().enumerate() {
        if nv.name.is_empty()
            || !nv
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            errors.push(
                format!("namedValues[{i}].name"),
                format!("{:?}: letters, digits, '.', '_' and '-' only", nv.name),
            );
            continue;
        }
        if out.insert(nv.name.clone(), nv.value.clone()).is_some() {
            errors.push(
                format!("namedValues[{i}].name"),
                format!("duplicate named value {:?}", nv.name),
            );
        }
    }
    out
}

/// Replaces every `{{name}}` with its value. Unknown names are errors; values are never
/// quoted in errors (they may be secrets).
pub fn substitute(text: &str, named: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let name = after[..close].trim();
        match named.get(name) {
            Some(v) => out.push_str(v),
            None => return Err(format!("unknown named value {{{{{name}}}}}")),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A policy given inline (starts with '<') or as a path to a file next to the config.
fn policy_text(value: &str, base_dir: Option<&Path>) -> Result<String, String> {
    let trimmed = value.trim_start();
    if trimmed.starts_with('<') {
        return Ok(value.to_string());
    }
    let path = Path::new(value.trim());
    let full = match base_dir {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    };
    std::fs::read_to_string(&full).map_err(|e| format!("cannot read {}: {e}", full.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_values_are_substituted() {
        let named: HashMap<String, String> = [
            ("a".to_string(), "1".to_string()),
            ("b.c".to_string(), "x".to_string()),
        ]
        .into();
        assert_eq!(
            substitute("{{a}}-{{ b.c }}-{{a}}", &named).unwrap(),
            "1-x-1"
        );
        let e = substitute("{{missing}}", &named).unwrap_err();
        assert!(e.contains("missing"), "{e}");
        assert_eq!(substitute("{{a", &named).unwrap(), "{{a");
    }
}
