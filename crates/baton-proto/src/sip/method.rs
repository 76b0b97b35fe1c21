//! SIP methods, read once from the start line so the rest of the core matches on an enum.

/// A request method. Methods are case-sensitive (RFC 3261 §7.1): `invite` is not INVITE
/// but an extension method, [`Method::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// Starts a call (RFC 3261).
    Invite,
    /// Acknowledges a final answer to an INVITE.
    Ack,
    /// Cancels a pending INVITE.
    Cancel,
    /// Ends a dialog.
    Bye,
    /// Asks what a UA supports.
    Options,
    /// Reports the state of a subscription (RFC 6665): a transfer's progress.
    Notify,
    /// Asks the far end to call a third party (RFC 3515).
    Refer,
    /// Changes session parameters before or after the answer (RFC 3311).
    Update,
    /// Carries application information inside a dialog (RFC 6086).
    Info,
    /// Acknowledges a reliable provisional response (RFC 3262).
    Prack,
    /// Creates a subscription (RFC 6665).
    Subscribe,
    /// Registers a contact (RFC 3261 §10).
    Register,
    /// An instant message (RFC 3428).
    Message,
    /// Publishes event state (RFC 3903).
    Publish,
    /// Any other token: read the raw method from the message.
    Other,
}

impl Method {
    /// Every method but [`Method::Other`], as written on the wire.
    const KNOWN: [(&'static str, Method); 14] = [
        ("INVITE", Method::Invite),
        ("ACK", Method::Ack),
        ("CANCEL", Method::Cancel),
        ("BYE", Method::Bye),
        ("OPTIONS", Method::Options),
        ("NOTIFY", Method::Notify),
        ("REFER", Method::Refer),
        ("UPDATE", Method::Update),
        ("INFO", Method::Info),
        ("PRACK", Method::Prack),
        ("SUBSCRIBE", Method::Subscribe),
        ("REGISTER", Method::Register),
        ("MESSAGE", Method::Message),
        ("PUBLISH", Method::Publish),
    ];

    /// The method a token names (a `match`: the compiler dispatches on length first).
    pub fn of(token: &str) -> Method {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "CANCEL" => Method::Cancel,
            "BYE" => Method::Bye,
            "OPTIONS" => Method::Options,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "UPDATE" => Method::Update,
            "INFO" => Method::Info,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "REGISTER" => Method::Register,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            _ => Method::Other,
        }
    }

    /// As written on the wire; `None` for [`Method::Other`].
    pub fn as_str(self) -> Option<&'static str> {
        Method::KNOWN.iter().find(|&&(_, m)| m == self).map(|&(name, _)| name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_case_sensitive_and_round_trip() {
        for (name, method) in Method::KNOWN {
            assert_eq!((Method::of(name), method.as_str()), (method, Some(name)));
        }
        assert_eq!(Method::of("invite"), Method::Other);
        assert_eq!(Method::of("FOO").as_str(), None);
    }
}
