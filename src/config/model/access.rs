//! `products:`, `subscriptions:`, `namedValues:` and the policy fields, as written.

use serde::Deserialize;

/// One entry of `products:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProductDoc {
    pub id: String,
    pub name: Option<String>,
    /// Ids of the APIs in the product.
    #[serde(default)]
    pub apis: Vec<String>,
    pub subscription_required: Option<bool>,
    /// Inline policy XML, or a path to an `.xml` file.
    pub policies: Option<String>,
}

/// One entry of `subscriptions:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SubscriptionDoc {
    pub id: String,
    pub name: Option<String>,
    /// `all`, `product:<id>` or `api:<id>` (also APIM's `/apis`, `/products/<id>`, `/apis/<id>`).
    pub scope: String,
    pub primary_key: Option<String>,
    pub secondary_key: Option<String>,
    /// Hex SHA-256 of the key, so that the document never holds a usable key.
    pub primary_key_sha256: Option<String>,
    pub secondary_key_sha256: Option<String>,
    /// `active` (default) or `suspended`.
    pub state: Option<String>,
}

/// One entry of `namedValues:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamedValueDoc {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub secret: bool,
}

/// `apis[].subscriptionKeyParameterNames`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyNamesDoc {
    pub header: Option<String>,
    pub query: Option<String>,
}
