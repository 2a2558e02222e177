//! `apis:` entries of the document and their operations, as written.

use serde::Deserialize;

use super::DurationValue;

/// One entry of `apis:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiDoc {
    pub id: String,
    pub name: Option<String>,
    pub path: Option<String>,
    pub hostnames: Option<Vec<String>>,
    pub service_url: Option<String>,
    pub timeout: Option<DurationValue>,
    pub max_request_body_size: Option<u64>,
    /// Whether a subscription key is required (default false; APIM's default is true).
    pub subscription_required: Option<bool>,
    pub subscription_key_parameter_names: Option<super::KeyNamesDoc>,
    /// Inline policy XML, or a path to an `.xml` file.
    pub policies: Option<String>,
    #[serde(default)]
    pub operations: Vec<OperationDoc>,
}

/// One entry of `apis[].operations:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OperationDoc {
    pub id: String,
    pub method: String,
    pub url_template: String,
    pub mock: Option<MockDoc>,
    /// Inline policy XML, or a path to an `.xml` file.
    pub policies: Option<String>,
}

/// `apis[].operations[].mock:` an answer given by the gateway itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MockDoc {
    pub status_code: Option<u16>,
    pub content_type: Option<String>,
    pub body: Option<String>,
}
