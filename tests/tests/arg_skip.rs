//! `skip`: on a method of a `#[traced]` impl block, leaves that method untraced; its calls still
//! run, and the methods it calls are still traced.

mod common;

use common::*;
use tracer_runtime::traced;

struct Store {
    items: Vec<u32>,
}

#[traced]
impl Store {
    fn get(&self, i: usize) -> Option<u32> {
        self.items.get(i).copied()
    }
    #[traced(skip)]
    fn first(&self) -> Option<u32> {
        self.get(0)
    }
    #[traced(skip)]
    fn len(&self) -> usize {
        self.items.len()
    }
}

#[test]
fn a_skipped_method_has_no_span_and_the_rest_still_do() {
    let store = Store { items: vec![4, 5] };
    let (out, spans) = in_root(|| (store.first(), store.len(), store.get(1)));
    assert_eq!(out, (Some(4), 2, Some(5)));
    assert_eq!(names(&spans), ["Store::get", "Store::get", "test-root"]);
    for s in spans.iter().filter(|s| s.name == "Store::get") {
        assert_child_of(s, root(&spans));
    }
}
