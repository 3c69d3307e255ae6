//! The importer (CSV and JSON lines, UTF-8 and GB18030, every kind) on arbitrary bytes: it may
//! refuse a file or reject rows, never panic and never fail as a server-side error; a report
//! that says "written" has no rejected rows unless invalid rows were to be skipped.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use patron_store::import::{Format, ImportKind, ImportOptions};
use patron_store::users::Actor;

fuzz_target!(|data: &[u8]| {
    let Some((&control, file)) = data.split_first() else { return };
    let f = common::fixture(|_, _| {});
    let kind = [ImportKind::Customers, ImportKind::Contacts, ImportKind::Orders, ImportKind::Interactions, ImportKind::Tickets]
        [usize::from(control % 5)];
    let mut opts = ImportOptions::new(kind, "fuzz.csv");
    opts.format = Some(if control & 0x08 != 0 { Format::Jsonl } else { Format::Csv });
    opts.skip_invalid = control & 0x10 != 0;
    // Mostly dry runs, so the database stays small and every iteration sees the same state.
    opts.dry_run = control & 0x60 != 0x60;
    if control & 0x80 != 0 {
        opts.encoding = Some(patron_store::import::Encoding::Gb18030);
    }
    let input: Box<dyn std::io::Read + Send> = Box::new(std::io::Cursor::new(file.to_vec()));
    match f.rt.block_on(f.store.import(&Actor::cli(), input, &opts, &|_| {})) {
        Ok(r) => {
            assert!(!r.committed || r.rejected == 0 || opts.skip_invalid, "written with rejections: {r:?}");
            assert!(r.created + r.updated + r.unchanged + r.rejected <= r.rows_read.max(1) * 2, "{r:?}");
        }
        Err(e) => common::assert_client_error("import", &e),
    }
});
