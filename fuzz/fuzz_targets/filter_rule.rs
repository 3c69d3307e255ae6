//! The segment filter language on arbitrary text: a rule is refused with a message, or it is
//! accepted and then its SQL runs on the database (count and preview) without a database error.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use patron_store::users::Actor;

fuzz_target!(|data: &[u8]| {
    let Ok(rule) = std::str::from_utf8(data) else { return };
    let checked = patron_store::segments::check_rule(rule);
    let f = common::fixture(|_, _| {});
    match f.rt.block_on(f.store.segment_count(&Actor::cli(), rule)) {
        Ok(n) => {
            assert!(checked.is_ok(), "counted a rule the checker refuses: {rule:?}");
            assert!(n >= 0);
            if let Err(e) = f.rt.block_on(f.store.segment_preview(&Actor::cli(), rule, 5)) {
                common::assert_client_error("preview", &e);
            }
        }
        Err(e) => common::assert_client_error("count", &e),
    }
});
