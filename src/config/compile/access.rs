//! `products:` and `subscriptions:` compiled into the lookup the data plane uses to
//! admit a request: subscription keys are kept only as SHA-256 digests (a key given in
//! clear in the document is hashed here and never stored), each mapped to its
//! subscription, its scope and its state.

use std::collections::HashMap;

use super::{Api, Errors};
use crate::config::model::{ProductDoc, SubscriptionDoc};
use sha2::{Digest, Sha256};

/// A compiled product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub index: usize,
    pub id: String,
    pub name: String,
    pub subscription_required: bool,
    /// Indexes of its APIs.
    pub apis: Vec<usize>,
}

/// What a subscription gives access to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionScope {
    AllApis,
    Product(usize),
    Api(usize),
}

/// A compiled subscription (its keys live only as digests in [`Access`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: String,
    pub name: String,
    pub scope: SubscriptionScope,
    pub active: bool,
}

/// Products and subscriptions, ready for request-time lookups.
#[derive(Debug, Default)]
pub struct Access {
    pub products: Vec<Product>,
    pub subscriptions: Vec<Subscription>,
    by_key: HashMap<[u8; 32], usize>,
}

/// What a presented key came to for one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck<'a> {
    /// Valid and active; `product` is set for a product-scoped subscription.
    Valid {
        subscription: &'a Subscription,
        product: Option<&'a Product>,
    },
    /// Known but suspended.
    Suspended,
    /// Unknown, or not valid for this API.
    Invalid,
}

impl Access {
    /// Checks `key` against the subscriptions that cover `api`.
    pub fn check_key(&self, key: &str, api: usize) -> KeyCheck<'_> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let Some(sub) = self.by_key.get(&digest).map(|&i| &self.subscriptions[i]) else {
            return KeyCheck::Invalid;
        };
        let product = match sub.scope {
            SubscriptionScope::AllApis => None,
            SubscriptionScope::Api(a) if a == api => None,
            SubscriptionScope::Api(_) => return KeyCheck::Invalid,
            SubscriptionScope::Product(p) => {
                let product = &self.products[p];
                if !product.apis.contains(&api) {
                    return KeyCheck::Invalid;
                }
                Some(product)
            }
        };
        if !sub.active {
            return KeyCheck::Suspended;
        }
        KeyCheck::Valid {
            subscription: sub,
            product,
        }
    }

    /// Products that contain `api`.
    pub fn products_of(&self, api: usize) -> impl Iterator<Item = &Product> {
        self.products.iter().filter(move |p| p.apis.contains(&api))
    }
}

pub fn compile_access(
    products: &[ProductDoc],
    subscriptions: &[SubscriptionDoc],
    apis: &[Api],
    errors: &mut Errors,
) -> Access {
    let api_index: HashMap<&str, usize> = apis.iter().map(|a| (a.id.as_str(), a.index)).collect();
    let mut access = Access::default();
    let mut product_ids: HashMap<&str, usize> = HashMap::new();
    for (i, doc) in products.iter().enumerate() {
        let at = format!("products[{i}]");
        if let Err(e) = crate::config::syntax::check_id(&doc.id) {
            errors.push(format!("{at}.id"), e);
        }
        if product_ids.insert(&doc.id, i).is_some() {
            errors.push(
                format!("{at}.id"),
                format!("duplicate product id {:?}", doc.id),
            );
        }
        let mut members = Vec::new();
        for (k, id) in doc.apis.iter().enumerate() {
            match api_index.get(id.as_str()) {
                Some(&a) if !members.contains(&a) => members.push(a),
                Some(_) => errors.push(
                    format!("{at}.apis[{k}]"),
                    format!("API {id:?} listed twice"),
                ),
                None => errors.push(format!("{at}.apis[{k}]"), format!("no API with id {id:?}")),
            }
        }
        access.products.push(Product {
            index: i,
            id: doc.id.clone(),
            name: doc.name.clone().unwrap_or_else(|| doc.id.clone()),
            subscription_required: doc.subscription_required.unwrap_or(true),
            apis: members,
        });
    }
    let mut sub_ids: HashMap<&str, usize> = HashMap::new();
    for (i, doc) in subscriptions.iter().enumerate() {
        let at = format!("subscriptions[{i}]");
        if sub_ids.insert(&doc.id, i).is_some() {
            errors.push(
                format!("{at}.id"),
                format!("duplicate subscription id {:?}", doc.id),
            );
        }
        let scope = match parse_scope(&doc.scope) {
            Some(ScopeRef::All) => Some(SubscriptionScope::AllApis),
            Some(ScopeRef::Product(id)) => match product_ids.get(id) {
                Some(&p) => Some(SubscriptionScope::Product(p)),
                None => {
                    errors.push(format!("{at}.scope"), format!("no product with id {id:?}"));
                    None
                }
            },
            Some(ScopeRef::Api(id)) => match api_index.get(id) {
                Some(&a) => Some(SubscriptionScope::Api(a)),
                None => {
                    errors.push(format!("{at}.scope"), format!("no API with id {id:?}"));
                    None
                }
            },
            None => {
                errors.push(
                    format!("{at}.scope"),
                    format!("{:?}: expected all, product:<id> or api:<id>", doc.scope),
                );
                None
            }
        };
        let active = match doc.state.as_deref().unwrap_or("active") {
            "active" => true,
            "suspended" => false,
            other => {
                errors.push(
                    format!("{at}.state"),
                    format!("{other:?}: expected active or suspended"),
                );
                true
            }
        };
        let mut digests = Vec::new();
        for (field, clear, hashed) in [
            ("primaryKey", &doc.primary_key, &doc.primary_key_sha256),
            (
                "secondaryKey",
                &doc.secondary_key,
                &doc.secondary_key_sha256,
            ),
        ] {
            match (clear, hashed) {
                (Some(_), Some(_)) => errors.push(
                    format!("{at}.{field}"),
                    format!("give either {field} or {field}Sha256, not both"),
                ),
                (Some(key), None) => {
                    if key.len() < 8 {
                        errors.push(
                            format!("{at}.{field}"),
                            "a key must have at least 8 characters",
                        );
                    }
                    digests.push(Sha256::digest(key.as_bytes()).into());
                }
                (None, Some(hex_digest)) => match hex::decode(hex_digest.trim()) {
                    Ok(bytes) if bytes.len() == 32 => {
                        let mut d = [0u8; 32];
                        d.copy_from_slice(&bytes);
                        digests.push(d);
                    }
                    _ => errors.push(
                        format!("{at}.{field}Sha256"),
                        "must be 64 hex digits (the SHA-256 of the key)",
                    ),
                },
                (None, None) => {}
            }
        }
        if digests.is_empty() {
            errors.push(format!("{at}.primaryKey"), "a subscription needs a key");
        }
        let index = access.subscriptions.len();
        for d in digests {
            if access.by_key.insert(d, index).is_some() {
                errors.push(at.clone(), "a key is shared with another subscription");
            }
        }
        access.subscriptions.push(Subscription {
            id: doc.id.clone(),
            name: doc.name.clone().unwrap_or_else(|| doc.id.clone()),
            scope: scope.unwrap_or(SubscriptionScope::AllApis),
            active,
        });
    }
    access
}

enum ScopeRef<'a> {
    All,
    Product(&'a str),
    Api(&'a str),
}

fn parse_scope(text: &str) -> Option<ScopeRef<'_>> {
    let t = text.trim();
    if t == "all" || t == "/apis" {
        return Some(ScopeRef::All);
    }
    if let Some(id) = t
        .strip_prefix("product:")
        .or_else(|| t.strip_prefix("/products/"))
    {
        return (!id.is_empty()).then_some(ScopeRef::Product(id));
    }
    if let Some(id) = t.strip_prefix("api:").or_else(|| t.strip_prefix("/apis/")) {
        return (!id.is_empty()).then_some(ScopeRef::Api(id));
    }
    None
}
