//! Policy documents at the four scopes and their merging. Each scope's document gives
//! its sections; `<base/>` in a section stands for the enclosing scope's section at that
//! point, and a section without `<base/>` cuts inheritance, exactly as in APIM. A scope
//! without a document, or a document without a section, inherits that section whole.
//! The outermost base of the backend section is `<forward-request/>`.

use super::pipeline::Section;
use super::xml::{self, Element, Node};

/// One scope's parsed document: its sections as element lists.
#[derive(Debug, Clone, Default)]
pub struct ScopeDoc {
    sections: [Option<Vec<Element>>; 4],
}

/// Where a scope sits, outermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    Product,
    Api,
    Operation,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Product => "product",
            Scope::Api => "api",
            Scope::Operation => "operation",
        }
    }
}

impl ScopeDoc {
    /// Reads `<policies>` with its sections. Errors carry the line.
    pub fn parse(text: &str) -> Result<ScopeDoc, String> {
        let root = xml::parse(text).map_err(|e| e.to_string())?;
        if root.name != "policies" {
            return Err(format!(
                "line {}: the root element must be <policies>, not <{}>",
                root.line, root.name
            ));
        }
        if let Some((name, _)) = root.attrs.first() {
            return Err(format!(
                "line {}: <policies> takes no attributes ({name})",
                root.line
            ));
        }
        let mut doc = ScopeDoc::default();
        for node in &root.children {
            let el = match node {
                Node::Element(el) => el,
                Node::Text(t) if t.trim().is_empty() => continue,
                Node::Text(_) => return Err("text directly inside <policies>".into()),
            };
            let Some(section) = Section::ALL.iter().find(|s| s.name() == el.name) else {
                return Err(format!(
                    "line {}: <{}> is not a section (inbound, backend, outbound, on-error)",
                    el.line, el.name
                ));
            };
            let slot = &mut doc.sections[*section as usize];
            if slot.is_some() {
                return Err(format!("line {}: <{}> given twice", el.line, el.name));
            }
            let mut policies = Vec::new();
            for child in &el.children {
                match child {
                    Node::Element(p) => policies.push(p.clone()),
                    Node::Text(t) if t.trim().is_empty() => {}
                    Node::Text(_) => {
                        return Err(format!("line {}: text inside <{}>", el.line, el.name))
                    }
                }
            }
            *slot = Some(policies);
        }
        Ok(doc)
    }

    fn section(&self, s: Section) -> Option<&[Element]> {
        self.sections[s as usize].as_deref()
    }
}

/// A policy element of the merged section and the scope it came from.
#[derive(Debug, Clone)]
pub struct Placed<'a> {
    pub element: &'a Element,
    pub scope: Scope,
    /// Position of the element in its scope's section (for stable limit identities).
    pub index: usize,
}

/// Merges `section` across `scopes` (outermost first; `None` = no document there).
/// Returns the flat policy list, or an error for a misplaced `<base/>`.
pub fn merge<'a>(
    scopes: &[(Scope, Option<&'a ScopeDoc>)],
    section: Section,
    default_backend: &'a Element,
) -> Result<Vec<Placed<'a>>, String> {
    fn expand<'a>(
        scopes: &[(Scope, Option<&'a ScopeDoc>)],
        level: usize,
        section: Section,
        default_backend: &'a Element,
        out: &mut Vec<Placed<'a>>,
    ) -> Result<(), String> {
        let Some(&(scope, doc)) = scopes.get(level) else {
            return Ok(());
        };
        let inherit = |out: &mut Vec<Placed<'a>>| -> Result<(), String> {
            if level == 0 {
                if section == Section::Backend {
                    out.push(Placed {
                        element: default_backend,
                        scope,
                        index: 0,
                    });
                }
                Ok(())
            } else {
                expand(scopes, level - 1, section, default_backend, out)
            }
        };
        match doc.and_then(|d| d.section(section)) {
            None => inherit(out),
            Some(elements) => {
                let mut bases = 0;
                for (index, element) in elements.iter().enumerate() {
                    if element.name == "base" {
                        bases += 1;
                        if bases > 1 {
                            return Err(format!(
                                "{} scope, <{}> line {}: <base/> given twice",
                                scope.name(),
                                section.name(),
                                element.line
                            ));
                        }
                        inherit(out)?;
                    } else {
                        out.push(Placed {
                            element,
                            scope,
                            index,
                        });
                    }
                }
                Ok(())
            }
        }
    }
    let mut out = Vec::new();
    if scopes.is_empty() {
        return Ok(out);
    }
    expand(scopes, scopes.len() - 1, section, default_backend, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(placed: &[Placed<'_>]) -> Vec<String> {
        placed
            .iter()
            .map(|p| format!("{}:{}", p.scope.name(), p.element.name))
            .collect()
    }

    fn fwd() -> Element {
        xml::parse("<forward-request/>").unwrap()
    }

    #[test]
    fn base_places_the_enclosing_scope() {
        let global = ScopeDoc::parse("<policies><inbound><a/></inbound></policies>").unwrap();
        let api =
            ScopeDoc::parse("<policies><inbound><b/><base/><c/></inbound></policies>").unwrap();
        let op = ScopeDoc::parse("<policies><inbound><base/><d/></inbound></policies>").unwrap();
        let f = fwd();
        let scopes = [
            (Scope::Global, Some(&global)),
            (Scope::Product, None),
            (Scope::Api, Some(&api)),
            (Scope::Operation, Some(&op)),
        ];
        let merged = merge(&scopes, Section::Inbound, &f).unwrap();
        assert_eq!(
            names(&merged),
            ["api:b", "global:a", "api:c", "operation:d"]
        );
        // No backend anywhere: the default forward-request.
        let backend = merge(&scopes, Section::Backend, &f).unwrap();
        assert_eq!(names(&backend), ["global:forward-request"]);
    }

    #[test]
    fn leaving_out_base_cuts_inheritance() {
        let global = ScopeDoc::parse("<policies><inbound><a/></inbound></policies>").unwrap();
        let op =
            ScopeDoc::parse("<policies><inbound><d/></inbound><backend><x/></backend></policies>")
                .unwrap();
        let f = fwd();
        let scopes = [
            (Scope::Global, Some(&global)),
            (Scope::Operation, Some(&op)),
        ];
        assert_eq!(
            names(&merge(&scopes, Section::Inbound, &f).unwrap()),
            ["operation:d"]
        );
        assert_eq!(
            names(&merge(&scopes, Section::Backend, &f).unwrap()),
            ["operation:x"]
        );
    }

    #[test]
    fn document_errors() {
        assert!(ScopeDoc::parse("<policy/>").is_err());
        assert!(ScopeDoc::parse("<policies><inbound/><inbound/></policies>").is_err());
        assert!(ScopeDoc::parse("<policies><outbnd/></policies>").is_err());
        let twice =
            ScopeDoc::parse("<policies><inbound><base/><base/></inbound></policies>").unwrap();
        let f = fwd();
        assert!(merge(&[(Scope::Api, Some(&twice))], Section::Inbound, &f).is_err());
    }
}
