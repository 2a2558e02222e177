//! `backends:` as written: named backends that policies refer to by id
//! (`set-backend-service backend-id`).

use serde::Deserialize;

/// One entry of `backends:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendDoc {
    pub id: String,
    /// `http://host[:port][/path]`, as `serviceUrl`.
    pub url: String,
    /// Free text for people reading the document.
    pub description: Option<String>,
}
