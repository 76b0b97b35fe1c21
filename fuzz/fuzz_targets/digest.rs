#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(challenge) = baton_proto::sip::Challenge::parse(text) {
        let answer = challenge.answer("user", "pass", "REFER", "sip:a@b", "cnonce");
        assert!(answer.starts_with("Digest username=\"user\""));
    }
});
