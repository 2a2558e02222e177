//! Configuration errors: each names the item it is about by its path in the
//! document (`apis[2].operations[0].urlTemplate`), and a failed load reports them all.

use std::fmt;

/// One problem in a document. `path` is empty when the problem is not about one item
/// (a YAML syntax error at the top, say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Shown(self))]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

/// Every problem found in a document, in document order as far as possible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Lines(&self.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Whether some error is at exactly `path`.
    pub fn has(&self, path: &str) -> bool {
        self.0.iter().any(|e| e.path == path)
    }
}

struct Shown<'a>(&'a ConfigError);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.path.is_empty() {
            f.write_str(&self.0.message)
        } else {
            write!(f, "{}: {}", self.0.path, self.0.message)
        }
    }
}

struct Lines<'a>(&'a [ConfigError]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display() {
        let a = ConfigError {
            path: "apis[0].id".into(),
            message: "must not be empty".into(),
        };
        let b = ConfigError {
            path: String::new(),
            message: "bad YAML".into(),
        };
        assert_eq!(a.to_string(), "apis[0].id: must not be empty");
        assert_eq!(b.to_string(), "bad YAML");
        assert_eq!(
            ConfigErrors(vec![a, b]).to_string(),
            "apis[0].id: must not be empty\nbad YAML"
        );
    }
}
