//! The configuration document as plain serde data. Every struct mirrors the YAML/JSON
//! document one to one (`camelCase` field names, unknown fields rejected) and holds
//! values exactly as written: nothing here validates, resolves or interprets. Turning
//! this into something the gateway can run is `compile`'s job, which is why durations,
//! URLs and templates are still strings here. Add a file per new concern (products,
//! subscriptions, named values, policies, backends) and a field on [`Document`].

mod access;
mod api;
mod backends;
mod duration;
mod gateway;

use serde::Deserialize;

pub use access::{KeyNamesDoc, NamedValueDoc, ProductDoc, SubscriptionDoc};
pub use api::{ApiDoc, MockDoc, OperationDoc};
pub use backends::BackendDoc;
pub use duration::DurationValue;
pub use gateway::{GatewayDoc, LimitsDoc, TimeoutsDoc, UpstreamDoc};

/// The root of a configuration document.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Document {
    /// Process-wide settings of the gateway.
    #[serde(default)]
    pub gateway: GatewayDoc,
    /// The APIs this gateway serves.
    #[serde(default)]
    pub apis: Vec<ApiDoc>,
    /// The global policy document (inline XML or a path to an `.xml` file).
    pub policies: Option<String>,
    #[serde(default)]
    pub named_values: Vec<NamedValueDoc>,
    #[serde(default)]
    pub products: Vec<ProductDoc>,
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionDoc>,
    /// Named backends for `set-backend-service backend-id`.
    #[serde(default)]
    pub backends: Vec<BackendDoc>,
}
