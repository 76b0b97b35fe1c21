#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((code, _)) = baton_proto::sip::status_line(data) {
        assert!((100..=699).contains(&code));
    }
});
