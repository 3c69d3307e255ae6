//! A store on a SQLite file in a temporary folder, made once per fuzzing process, and a runtime
//! to drive its async API from the synchronous fuzz loop.

use std::sync::OnceLock;

use patron_store::{Store, StoreError};

pub struct Fixture {
    pub rt: tokio::runtime::Runtime,
    pub store: Store,
    _dir: tempfile::TempDir,
}

pub fn fixture(setup: impl FnOnce(&tokio::runtime::Runtime, &Store)) -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = format!("sqlite://{}", dir.path().join("fuzz.db").display());
        let store = rt.block_on(Store::connect(&url)).expect("store");
        setup(&rt, &store);
        Fixture { rt, store, _dir: dir }
    })
}

/// What client input may never cause: the server answers these with a 5xx (or they are bugs).
pub fn assert_client_error(what: &str, e: &StoreError) {
    if matches!(e, StoreError::Internal(_) | StoreError::Database(_)) {
        panic!("{what}: client input caused a server-side error: {e:?}");
    }
}
