//! Policy expressions: any text must compile to an expression or an error, and a compiled
//! expression must evaluate to a value or an error, never a panic. Also runs
//! `expression_end` (which the policy XML reader calls on raw text) at every offset.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico::policy::context::Context;
use portico::policy::expr::{expression_end, Expr, Template};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cx = Context::default();
    if let Ok(e) = Expr::parse(text) {
        let _ = e.eval(&cx);
        let _ = e.eval_string(&cx);
        let _ = e.eval_bool(&cx);
    }
    if let Ok(e) = Expr::parse_block(text) {
        let _ = e.eval(&cx);
    }
    if let Ok(t) = Template::parse(text) {
        let _ = t.eval_string(&cx);
    }
    for i in 0..text.len().min(256) {
        let _ = expression_end(text, i);
    }
});
