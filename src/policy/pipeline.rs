//! A compiled pipeline: the four sections of APIM (inbound, backend, outbound, on-error)
//! as lists of compiled policies, and the synchronous runner that applies a section to
//! a request's [`Context`]. Policies that must wait (forward-request, retry,
//! limit-concurrency) are interpreted by the proxy; everything else runs here without
//! I/O, in the order the merged document gives.
//!
//! ```text
//! inbound (global -> product -> API -> operation, as <base/> places them)
//!    | return-response / error ------------------------------+
//!    v                                                       |
//! backend (forward-request: the proxy sends the request)     |
//!    v                                                       |
//! outbound                                                   |
//!    v                                                       v
//! response to client                  on-error (context.LastError set), then response
//! ```

use super::builtin::Policy;
use super::context::{Context, LastError};
use super::services::Services;

/// APIM's policy sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Inbound,
    Backend,
    Outbound,
    OnError,
}

impl Section {
    pub const ALL: [Section; 4] = [
        Section::Inbound,
        Section::Backend,
        Section::Outbound,
        Section::OnError,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Section::Inbound => "inbound",
            Section::Backend => "backend",
            Section::Outbound => "outbound",
            Section::OnError => "on-error",
        }
    }
}

/// A compiled pipeline for one operation (and product).
#[derive(Debug, Default)]
pub struct Pipeline {
    pub inbound: Vec<Policy>,
    pub backend: Vec<Policy>,
    pub outbound: Vec<Policy>,
    pub on_error: Vec<Policy>,
}

impl Pipeline {
    pub fn section(&self, s: Section) -> &[Policy] {
        match s {
            Section::Inbound => &self.inbound,
            Section::Backend => &self.backend,
            Section::Outbound => &self.outbound,
            Section::OnError => &self.on_error,
        }
    }

    /// True when the pipeline only forwards the request: the proxy can take its fast
    /// path and never build a [`Context`].
    pub fn is_passthrough(&self) -> bool {
        self.inbound.is_empty()
            && self.outbound.is_empty()
            && self.on_error.is_empty()
            && self.backend.len() == 1
            && matches!(self.backend[0], Policy::ForwardRequest(ref f) if f.is_default())
    }
}

/// What running a list of policies came to.
#[derive(Debug, PartialEq)]
pub enum Flow {
    /// Carry on with the next section.
    Continue,
    /// Answer with `context.response` now (return-response, mock-response, cors
    /// preflight); the remaining sections are skipped.
    Respond,
    /// `context.response` is the answer (a cache hit): the rest of inbound and the
    /// backend are skipped, outbound runs on it.
    SkipToOutbound,
    /// A policy failed: on-error runs with this error, then the error response (or
    /// what on-error put in `context.response`) goes out.
    Error(PolicyFailure),
}

/// A policy's failure: the status and message the client gets unless on-error
/// changes them, and the `context.LastError` on-error sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFailure {
    pub status: u16,
    pub message: String,
    pub error: LastError,
    /// Extra response headers (e.g. Retry-After for 429).
    pub headers: Vec<(String, String)>,
}

impl PolicyFailure {
    pub fn new(status: u16, source: &str, reason: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        PolicyFailure {
            status,
            error: LastError {
                source: source.to_string(),
                reason: reason.to_string(),
                message: message.clone(),
                ..LastError::default()
            },
            message,
            headers: Vec::new(),
        }
    }
}

/// Runs `policies` in order over `cx`.
pub fn run(policies: &[Policy], section: Section, cx: &mut Context, svc: &mut Services) -> Flow {
    for policy in policies {
        match policy.apply(section, cx, svc) {
            Flow::Continue => {}
            Flow::Error(mut failure) => {
                if failure.error.section.is_empty() {
                    failure.error.section = section.name().to_string();
                }
                return Flow::Error(failure);
            }
            other => return other,
        }
    }
    Flow::Continue
}
