//! Verbs and methods that need a media engine. baton carries no media, so a document
//! naming one is refused, unless the operator chose `--media skip`: then each is passed
//! over where it stands, and logged the first time any call passes it (docs/behaviour.md §3.4).

use std::sync::atomic::{AtomicU64, Ordering};

/// What a document naming a media verb gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Media {
    /// Refused, naming the verb (the default).
    #[default]
    Refuse,
    /// Loaded; the verb is skipped when the call reaches it.
    Skip,
}

/// Verbs of the jambonz dialect that need media.
pub(super) const JAMBONZ: &[&str] = &[
    "say",
    "play",
    "gather",
    "listen",
    "stream",
    "dial",
    "transcribe",
    "conference",
    "enqueue",
    "dequeue",
    "leave",
    "lex",
    "rasa",
    "dialogflow",
    "llm",
    "dub",
    "dtmf",
    "record",
    "s2s",
    "message",
    "alert",
    "siprec",
];

/// SWML methods that need media.
pub(super) const SWML: &[&str] = &[
    "play",
    "prompt",
    "record",
    "record_call",
    "stop_record_call",
    "receive_fax",
    "send_fax",
    "send_digits",
    "connect",
    "denoise",
    "stop_denoise",
    "detect_machine",
    "live_transcribe",
    "live_translate",
    "ai",
    "amazon_bedrock",
    "pay",
    "tap",
    "stop_tap",
    "join_room",
    "join_conference",
    "enter_queue",
    "send_sms",
    "user_event",
];

/// The list's own copy of `name`, when it is a media verb of that dialect.
pub(super) fn find(list: &'static [&'static str], name: &str) -> Option<&'static str> {
    list.iter().copied().find(|m| *m == name)
}

/// One bit per name of both lists: which have been logged.
static LOGGED: AtomicU64 = AtomicU64::new(0);

/// A call passed over `name`: the first time in this process, the log says so.
pub(crate) fn skipped(name: &'static str) {
    let position =
        JAMBONZ.iter().position(|m| *m == name).or_else(|| SWML.iter().position(|m| *m == name).map(|i| 32 + i));
    let Some(bit) = position.map(|i| 1u64 << i) else { return };
    if LOGGED.fetch_or(bit, Ordering::Relaxed) & bit == 0 {
        tracing::info!(verb = name, "media verb skipped (--media skip); logged once");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_lists_fit_their_bits() {
        assert!(JAMBONZ.len() <= 32 && SWML.len() <= 32);
        assert_eq!(find(SWML, "play"), Some("play"));
        assert_eq!(find(JAMBONZ, "sip:refer"), None);
    }
}
