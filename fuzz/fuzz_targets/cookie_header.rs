//! Cookie-header parsing and unsigning, as the session middleware does it.
#![no_main]

#[path = "../checks/cookie_header.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
