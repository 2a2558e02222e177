//! Policy documents from arbitrary text: reading (rawxml protection, XML), section
//! merging and compiling every policy must never panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico::policy::builtin::{compile, CompileCx, CompileEnv};
use portico::policy::document::{merge, Scope, ScopeDoc};
use portico::policy::pipeline::Section;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = ScopeDoc::parse(text) else {
        return;
    };
    let Ok(forward) = portico::policy::xml::parse("<forward-request/>") else {
        return;
    };
    for section in Section::ALL {
        let Ok(placed) = merge(&[(Scope::Api, Some(&doc))], section, &forward) else {
            continue;
        };
        for p in placed {
            let cx = CompileCx {
                section,
                scope: p.scope,
                scope_id: "fuzz",
                index: p.index,
                mock: None,
                env: &CompileEnv::EMPTY,
            };
            let _ = compile(p.element, &cx);
        }
    }
});
