//! What a closing connection owes the peer (PROTOCOL.md §5.9, §6.6): its
//! CLOSE frame, and when that frame is due again.

use crate::wire::CloseKind;

/// Longest reason a CLOSE frame carries (§5.9).
const MAX_REASON_LEN: usize = 256;

/// A CLOSE frame we must (re)send while closing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PendingClose {
    pub(super) kind: CloseKind,
    pub(super) code: u64,
    pub(super) reason: Vec<u8>,
}

/// The CLOSE this side sent, and the rate at which it answers the peer's
/// packets with it again.
#[derive(Debug)]
pub(super) struct Closer {
    frame: Option<PendingClose>,
    /// A CLOSE goes out at the next transmit.
    due: bool,
    /// Packets received since CLOSING began, and the count at which the
    /// next one is answered.
    received: u64,
    next_reply: u64,
}

impl Default for Closer {
    fn default() -> Self {
        Self {
            frame: None,
            due: false,
            received: 0,
            next_reply: 1,
        }
    }
}

impl Closer {
    /// Keeps the CLOSE frame (its reason cut to §5.9's 256 bytes) and
    /// makes it due.
    pub(super) fn start(&mut self, kind: CloseKind, code: u64, reason: &str) {
        let reason = reason.as_bytes();
        self.frame = Some(PendingClose {
            kind,
            code,
            reason: reason[..reason.len().min(MAX_REASON_LEN)].to_vec(),
        });
        self.due = true;
    }

    /// A new packet arrived in CLOSING. §6.6: it is answered with our
    /// CLOSE again only if it is the 1st, 2nd, 4th, 8th... since CLOSING
    /// began (RFC 9000 §10.2.1), so a peer cannot make us a reflector.
    pub(super) fn on_packet(&mut self) {
        self.received += 1;
        if self.received >= self.next_reply {
            self.next_reply = self.received.saturating_mul(2);
            self.due = true;
        }
    }

    /// The CLOSE frame to send now, if one is due; it is no longer due
    /// afterwards, whether or not it could be sent.
    pub(super) fn take_due(&mut self) -> Option<PendingClose> {
        if !std::mem::take(&mut self.due) {
            return None;
        }
        self.frame.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_close_answers_the_first_second_fourth_and_eighth_packet() {
        let mut c = Closer::default();
        assert_eq!(c.take_due(), None, "nothing before the close");
        c.on_packet();
        assert_eq!(c.take_due(), None, "no CLOSE to repeat yet");
        let mut c = Closer::default();
        c.start(CloseKind::Application, 7, "bye");
        let sent = c.take_due().expect("due once started");
        assert_eq!((sent.code, &sent.reason[..]), (7, &b"bye"[..]));
        assert_eq!(c.take_due(), None, "once");
        let answered: Vec<u64> = (1..=20)
            .filter(|_| {
                c.on_packet();
                c.take_due().is_some()
            })
            .collect();
        assert_eq!(answered, [1, 2, 4, 8, 16]);
    }

    #[test]
    fn a_long_reason_is_cut_to_256_bytes() {
        let mut c = Closer::default();
        c.start(CloseKind::Transport, 1, &"x".repeat(300));
        let sent = c.take_due().expect("due");
        assert_eq!(sent.reason.len(), MAX_REASON_LEN);
    }
}
