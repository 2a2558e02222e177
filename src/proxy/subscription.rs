//! Subscription keys: read from the API's header (`Ocp-Apim-Subscription-Key`) or query
//! parameter (`subscription-key`), checked against the compiled subscriptions, and
//! removed before the request is forwarded. Missing or invalid keys on an API that
//! requires one are refused with APIM's messages.

use super::respond::Failure;
use crate::config::compile::{KeyCheck, Product, Subscription};
use crate::config::{Api, CompiledConfig};
use crate::http::{headers, RequestHead};

/// A valid subscription presented with a request.
pub struct Presented<'a> {
    pub subscription: &'a Subscription,
    pub product: Option<&'a Product>,
    pub key: String,
}

/// Where the key was found, so it can be removed before forwarding.
#[derive(Default)]
pub struct KeyPlace {
    pub in_header: bool,
    pub in_query: bool,
}

/// Checks the request's key for `api`.
pub fn check<'c>(
    config: &'c CompiledConfig,
    api: &Api,
    head: &RequestHead,
) -> Result<(Option<Presented<'c>>, KeyPlace), Failure> {
    let mut place = KeyPlace::default();
    let key = match headers::get(&head.headers, &api.key_header) {
        Some(v) => {
            place.in_header = true;
            Some(String::from_utf8_lossy(v).trim().to_string())
        }
        None => query_value(head.query(), &api.key_query).inspect(|_| place.in_query = true),
    };
    // Even a key the API does not need is removed: it must never reach a backend.
    place.in_query = place.in_query || query_value(head.query(), &api.key_query).is_some();
    let Some(key) = key else {
        return if api.subscription_required {
            Err(Failure::SubscriptionMissing)
        } else {
            Ok((None, place))
        };
    };
    match config.access.check_key(&key, api.index) {
        KeyCheck::Valid {
            subscription,
            product,
        } => Ok((
            Some(Presented {
                subscription,
                product,
                key,
            }),
            place,
        )),
        _ if !api.subscription_required => Ok((None, place)),
        KeyCheck::Suspended => Err(Failure::SubscriptionInactive),
        KeyCheck::Invalid => Err(Failure::SubscriptionInvalid),
    }
}

fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| v.to_string())
    })
}
