#![no_main]
use libfuzzer_sys::fuzz_target;

// Application documents (jambonz verbs, SWML in JSON or YAML): every input is accepted or
// refused with at least one problem; nothing panics.
fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(problems) = baton_proto::parse_document(text) {
        assert!(!problems.is_empty());
    }
});
