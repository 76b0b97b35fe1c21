//! The refer subscription (RFC 3515 §2.4.4, RFC 6665): an accepted REFER creates it, named
//! by the REFER's CSeq (the `id` of the NOTIFYs' Event header); it outlives its verb so a
//! late NOTIFY still gets its 200, and ends with `Subscription-State: terminated`.

use super::verbs::Running;
use super::{Call, Ctx};
use crate::app::{Step, Verb};
use crate::event::{Event, Kind};
use crate::hook::Payload;
use crate::sip::header::{param, Name};
use crate::sip::parse::{Core, Message};
use crate::sip::sipfrag;
use crate::sip::uri::starts_with_ci;
use crate::transport::Flow;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// The CSeq of the REFER that created it.
    pub id: u32,
    terminated: bool,
}

/// How to answer a NOTIFY, and what it means when it is ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not a NOTIFY of this subscription: answered so, nothing else happens.
    Refuse { code: u16, extra: &'static [(&'static str, &'static str)] },
    /// Answered 200: its body is the transfer's progress.
    Accept { id: u32, terminated: bool },
}

impl Subscription {
    pub fn new(id: u32) -> Subscription {
        Subscription { id, terminated: false }
    }

    /// Whether no NOTIFY of it is expected any more.
    pub fn is_over(&self) -> bool {
        self.terminated
    }

    /// Judges a NOTIFY by its `Event` and `Subscription-State` headers, ending the
    /// subscription when the NOTIFY says so.
    pub fn notify(sub: &mut Option<Subscription>, event: Option<&str>, state: Option<&str>) -> Verdict {
        let Some(event) = event else { return Verdict::Refuse { code: 400, extra: &[] } };
        let (package, params) = event.split_once(';').unwrap_or((event, ""));
        if !package.trim().eq_ignore_ascii_case("refer") {
            return Verdict::Refuse { code: 489, extra: &[("Allow-Events", "refer")] };
        }
        let id = param(params, "id").map(|id| id.parse::<u32>());
        let Some(live) = sub.as_mut().filter(|s| !s.terminated && id.is_none_or(|id| id == Ok(s.id))) else {
            return Verdict::Refuse { code: 481, extra: &[] };
        };
        let terminated = state.is_some_and(|s| starts_with_ci(s.trim_start(), "terminated"));
        live.terminated = terminated;
        Verdict::Accept { id: live.id, terminated }
    }
}

impl Call {
    pub(super) fn on_notify(&mut self, ctx: &mut Ctx<'_>, msg: &Message<'_>, core: &Core<'_>, src: Flow) {
        let verdict = Subscription::notify(&mut self.sub, msg.get(Name::Event), msg.get(Name::SubscriptionState));
        let (id, terminated) = match verdict {
            Verdict::Refuse { code, extra } => return self.reply(ctx, msg, core, src, code, extra),
            Verdict::Accept { id, terminated } => (id, terminated),
        };
        self.reply(ctx, msg, core, src, 200, &[]);
        let status = sipfrag::status_line(msg.body).map(|(code, _)| code);
        let Running::Refer { transfer, since, .. } = &mut self.running else { return };
        if transfer.cseq != id {
            return;
        }
        let was_accepted = transfer.accepted();
        let effect = transfer.on_notify(ctx.now, core.cseq.seq, status, terminated);
        super::transfer::count_acceptance(ctx, was_accepted, transfer, *since);
        let refer_code = transfer.refer_status();
        if let Some(code) = effect.progress {
            self.fire_event_hook(ctx, code);
            self.swml_status(ctx, refer_code, Some(code));
        }
        if let Some(outcome) = effect.outcome {
            self.complete_refer(ctx, outcome, false);
        }
    }

    pub(super) fn fire_event_hook(&mut self, ctx: &mut Ctx<'_>, code: u16) {
        let Some(Step { id, verb: Verb::Refer(r) }) = self.current.as_deref() else { return };
        let Some(hook) = r.event_hook.clone() else { return };
        let body = Event(Kind::TransferStatus { call_sid: self.sid.clone(), code, verb_id: id.clone() });
        self.hook(ctx, &hook, Payload::Event(body), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_notifies_of_the_live_subscription_are_accepted() {
        let mut none = None;
        assert_eq!(Subscription::notify(&mut none, Some("refer"), None), Verdict::Refuse { code: 481, extra: &[] });
        let mut sub = Some(Subscription::new(7));
        assert_eq!(Subscription::notify(&mut sub, None, None), Verdict::Refuse { code: 400, extra: &[] });
        assert!(matches!(Subscription::notify(&mut sub, Some("dialog"), None), Verdict::Refuse { code: 489, .. }));
        assert!(matches!(Subscription::notify(&mut sub, Some("refer;id=8"), None), Verdict::Refuse { code: 481, .. }));
        let active = Subscription::notify(&mut sub, Some("Refer ; id=7"), Some("active;expires=60"));
        assert_eq!(active, Verdict::Accept { id: 7, terminated: false });
        assert!(!sub.is_some_and(|s| s.is_over()));
        let last = Subscription::notify(&mut sub, Some("refer"), Some(" Terminated;reason=noresource"));
        assert_eq!(last, Verdict::Accept { id: 7, terminated: true });
        assert!(sub.is_some_and(|s| s.is_over()));
        let late = Subscription::notify(&mut sub, Some("refer;id=7"), Some("terminated"));
        assert_eq!(late, Verdict::Refuse { code: 481, extra: &[] }, "nothing after the end");
    }
}
