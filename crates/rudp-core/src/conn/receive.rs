//! Receiving (PROTOCOL.md §6, §7, §10): a checked packet is opened
//! (pre-shared key), its frames decoded whole, then applied in order.

use super::ack::Arrival;
use super::{
    initial_frames_allowed, secure, Body, Connection, Event, Side, State, StreamId, PN_WINDOW,
};
use crate::error::{ConnectionError, TransportCode, VarInt};
use crate::wire::{
    frame, CloseKind, Frame, HandshakeParams, Header, PacketType, Protection, CHECKSUM_LEN,
};
#[cfg(feature = "trace")]
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

impl Connection {
    /// Whether a packet from `from` may be processed (§10 step 7): from the
    /// peer's address always; from another only once the handshake is
    /// confirmed and the connection is open, when it may start a path
    /// validation (§6.9).
    pub fn accepts_from(&self, from: SocketAddr) -> bool {
        from == self.remote
            || self.confirmed && matches!(self.state, State::Established | State::Lingering)
            || self.side == Side::Server && self.state == State::Handshake
    }

    /// Takes one packet from `from` addressed to this connection whose
    /// header the endpoint already checked (§10 says in which order).
    pub fn handle_packet(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &Header,
        payload: &[u8],
    ) {
        if !self.accepts_from(from) {
            return;
        }
        // §3.5: every packet of a connection carries its version; a server
        // takes the version of the first INITIAL (the endpoint checked
        // that it speaks it).
        if self.version == 0 && header.ty == PacketType::Initial {
            self.version = header.version;
        }
        if header.version != self.version {
            self.stats.received.malformed_dropped += 1;
            return;
        }
        // §4.2: a number far from the largest received is forged or stale.
        if let Some(largest) = self.acks.largest() {
            if header.pn.abs_diff(largest) > PN_WINDOW {
                self.stats.received.out_of_window_dropped += 1;
                return;
            }
        }
        let checksum = if header.has_checksum() {
            CHECKSUM_LEN
        } else {
            0
        };
        let wire_len = header.ty.header_len() + payload.len() + checksum;
        let mut plain = std::mem::take(&mut self.plain_buf);
        let body = if self.version == crate::wire::VERSION_3 {
            self.unprotect_secure(now, header, payload, &mut plain)
        } else {
            self.unprotect(header, payload, &mut plain)
        };
        match body {
            Some(Body::Clear) => self.on_payload(now, from, header, wire_len, payload),
            Some(Body::Opened) => self.on_payload(now, from, header, wire_len, &plain),
            None => self.stats.received.unauthenticated_dropped += 1,
        }
        self.plain_buf = plain;
    }

    /// §3.7: checks a packet's protection against ours and opens a sealed
    /// payload into `plain`. `None` if the packet must be dropped.
    pub(super) fn unprotect(
        &mut self,
        header: &Header,
        payload: &[u8],
        plain: &mut Vec<u8>,
    ) -> Option<Body> {
        match (self.keys.is_some(), header.protection) {
            (false, Protection::Clear) => Some(Body::Clear),
            (false, Protection::Sealed) => None,
            (true, Protection::Sealed) => {
                let key = self.open_key(header)?;
                key.open_packet(header, payload, plain).ok()?;
                Some(Body::Opened)
            }
            (true, Protection::Clear) => {
                // The one clear packet a keyed client accepts: a server
                // without a key refusing it, so the user learns why.
                let refused = TransportCode::ConnectionRefused.to_u64();
                let refusal = self.side == Side::Client
                    && self.state == State::Handshake
                    && header.ty == PacketType::Accept
                    && matches!(frame::decode_all(payload).as_deref(),
                        Ok([Frame::Close(c)]) if c.kind == CloseKind::Transport && c.code == refused);
                refusal.then_some(Body::Clear)
            }
        }
    }

    /// A RETRY answering our INITIAL (§6.8): the server wants its token back
    /// before it keeps any state. Accepted once, during the handshake.
    pub fn handle_retry(&mut self, now: Instant, header: &Header, payload: &[u8]) {
        if self.side != Side::Client || self.state != State::Handshake || self.peer.is_some() {
            self.stats.received.malformed_dropped += 1;
            return;
        }
        let mut plain = std::mem::take(&mut self.plain_buf);
        // Version 3's RETRY is in clear (a client without keys takes it as
        // such): its token, and the key a client asked for (§16.4).
        let body = match self.unprotect(header, payload, &mut plain) {
            Some(Body::Clear) => payload,
            Some(Body::Opened) => &plain[..],
            None => {
                self.stats.received.unauthenticated_dropped += 1;
                self.plain_buf = plain;
                return;
            }
        };
        let (mut token, mut server_key, mut unreadable) = (None, None, None);
        if let Ok(frames) = frame::decode_all(body) {
            for f in &frames {
                match f {
                    Frame::Token(t) => token = Some(t.to_vec()),
                    Frame::ServerKey(k) => server_key = Some(*k),
                    Frame::Unreadable(e) => unreadable = Some(*e),
                    _ => {}
                }
            }
        }
        self.plain_buf = plain;
        // One RETRY with a token is taken, so a RETRY cannot keep the
        // client from completing. In version 3 a RETRY may instead carry
        // only the server's key (§16.4): the one we asked for, or a sign
        // that the server could not read our first message; it can start,
        // end or (if the verifier accepts the key) restart the handshake.
        let keyed = self.version == crate::wire::VERSION_3 && server_key.is_some();
        if !keyed && (token.is_none() || self.retry_token.is_some()) {
            self.stats.received.malformed_dropped += 1;
            return;
        }
        if keyed && !self.on_server_key(server_key, unreadable) {
            return;
        }
        if let Some(token) = token.filter(|_| self.retry_token.is_none()) {
            debug_log!(cid = %self.local_cid, "retry: echoing the server's token");
            traced! {
                self.trace(now, "rudp:retry", || json!({ "token_length": token.len() }));
            }
            self.retry_token = Some(token);
        }
        self.stats.received.retries += 1;
        // The server kept nothing: our INITIALs so far will never be
        // acknowledged, and are not lost either. Start the handshake again
        // at once, with the token or the key.
        self.recovery.restart();
        self.handshake_pending = true;
        self.timers.idle = now + self.effective_idle_timeout();
        self.set_loss_timer();
    }

    pub(super) fn on_payload(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &Header,
        wire_len: usize,
        payload: &[u8],
    ) {
        if self.amplification_limited() {
            self.path.amplification.received += wire_len as u64;
        }
        let frames = match frame::decode_all(payload) {
            Ok(f) => f,
            Err(_) => {
                self.stats.received.malformed_dropped += 1;
                return;
            }
        };
        self.on_frames(now, from, header, wire_len, &frames);
    }

    /// Server: the INITIAL that made this connection, whose frames the
    /// endpoint opened and decoded to admit it (§6.2, §6.3; version 3: the
    /// client's parameters from its first Noise message, §16.3). Handed
    /// over once: they are not opened or decoded again.
    pub(crate) fn handle_first_initial(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &Header,
        wire_len: usize,
        frames: &[Frame<'_>],
    ) {
        if self.side != Side::Server || (self.version != 0 && self.version != header.version) {
            self.stats.received.malformed_dropped += 1;
            return;
        }
        self.version = header.version;
        if self.amplification_limited() {
            self.path.amplification.received += wire_len as u64;
        }
        self.on_frames(now, from, header, wire_len, frames);
    }

    /// Applies a packet's frames, checked whole first (§5, §10).
    fn on_frames(
        &mut self,
        now: Instant,
        from: SocketAddr,
        header: &Header,
        wire_len: usize,
        frames: &[Frame<'_>],
    ) {
        if matches!(self.state, State::Closed | State::Draining { .. }) {
            return;
        }
        // §15.8: version 1 has none of version 2's frames; §16.3: no
        // version but 3 has NOISE, and SERVER_KEY travels only in RETRY.
        let v1_violation =
            self.version == crate::wire::VERSION_1 && frames.iter().any(Frame::is_version_2);
        let v3_violation = frames.iter().any(|f| match f {
            Frame::Noise(_) | Frame::Ciphers(_) => self.version != crate::wire::VERSION_3,
            Frame::ServerKey(_) | Frame::Unreadable(_) => true,
            _ => false,
        });
        if v1_violation
            || v3_violation
            || !self.packet_type_allowed(header.ty)
            || !initial_frames_allowed(header.ty, frames)
        {
            self.stats.received.malformed_dropped += 1;
            return;
        }
        if from != self.remote {
            // §6.9: from an address not (yet) validated, only path
            // validation's frames count. The packet is not recorded as
            // received either, so its sender resends what it carried once
            // the connection has moved: nobody who merely knows the CID can
            // inject frames from an address of their own.
            if self.side == Side::Server && header.ty == PacketType::Data && !self.confirmed {
                // The client had our ACCEPT (only it told our CID) and moved
                // before its first DATA arrived: the handshake is confirmed
                // at its first address, and the new one is validated like
                // any other (§6.2 step 5, §6.9).
                self.confirm_by_data(now);
            }
            if !self.confirmed {
                self.stats.migration.packets_unvalidated += 1;
                return;
            }
            let newest = self.acks.largest().is_none_or(|l| header.pn > l);
            self.on_packet_from_new_address(now, from, wire_len, newest);
            for f in frames {
                match f {
                    Frame::PathChallenge(data) => self.migration.on_challenge(from, *data),
                    Frame::PathResponse(data) => self.on_path_response(now, *data),
                    _ => {}
                }
            }
            return;
        }
        let eliciting = frames.iter().any(Frame::is_ack_eliciting);
        let max_ack_delay = self.config.max_ack_delay;
        if self
            .acks
            .on_packet(now, header.pn, eliciting, max_ack_delay)
            == Arrival::Duplicate
        {
            self.stats.received.duplicates_discarded += 1;
            traced! {
                let pn = header.pn;
                self.trace(
                    now,
                    "transport:packet_dropped",
                    || json!({ "header": { "packet_number": pn }, "trigger": "duplicate" }),
                );
            }
            return;
        }
        if let State::Closing { .. } = self.state {
            // §6.6: new packets are answered with our CLOSE, at a falling
            // rate.
            self.closer.on_packet();
            return;
        }
        traced! {
            if let Some(t) = self.tracer.as_mut() {
                t.packet_frames(
                    now,
                    "transport:packet_received",
                    header,
                    wire_len,
                    frames,
                    json!({}),
                );
            }
        }
        self.stats.received.packets += 1;
        self.stats.received.bytes += wire_len as u64;
        let idle = self.effective_idle_timeout();
        self.timers.on_received(now, idle);

        // Handshake progress (§6.2). The client completes on an ACCEPT that
        // carries the server's parameters (every valid one does).
        let carries_params = frames.iter().any(|f| matches!(f, Frame::Handshake(_)));
        match (self.side, header.ty) {
            (Side::Client, PacketType::Accept)
                if self.state == State::Handshake && carries_params =>
            {
                self.remote_cid = header.scid.unwrap_or_default();
                self.confirmed = true;
                self.set_state(now, State::Established);
                self.handshake_pending = false;
                self.acks.request_immediate();
                self.emit(Event::Connected);
            }
            (Side::Server, PacketType::Data) if !self.confirmed => self.confirm_by_data(now),
            (_, PacketType::Initial | PacketType::Accept) => self.acks.request_immediate(),
            _ => {}
        }

        for f in frames {
            // §15.8.1: STREAM_PARAMETERS counts only with HANDSHAKE.
            if matches!(f, Frame::StreamParams(_)) && header.ty == PacketType::Data {
                continue;
            }
            if let Err((code, reason)) = self.on_frame(now, from, f) {
                self.close_for_violation(now, code, reason);
                return;
            }
            if self.outcome.is_some() {
                return;
            }
        }
        self.check_graceful_end(now);
        // §7.2: a FIN, and anything that arrives once we are lingering, is
        // acknowledged at once, so closes complete without a delayed ACK
        // (and a process that exits after its close has sent it).
        let carries_fin = frames.iter().any(|f| match f {
            Frame::Stream(s) => s.fin,
            Frame::StreamN(s) => s.fin,
            Frame::ResetStream { .. } => true,
            _ => false,
        });
        if carries_fin || self.state == State::Lingering {
            self.acks.request_immediate();
        }
    }

    /// Server: the client's first DATA packet confirms the handshake: it
    /// names the CID only our ACCEPT told (§6.2 step 5).
    fn confirm_by_data(&mut self, now: Instant) {
        self.confirmed = true;
        self.handshake_pending = false;
        // No ACCEPT will be sent again: its NOISE frame is not needed.
        self.handshake = secure::Handshake::Idle;
        if self.state == State::Handshake {
            self.set_state(now, State::Established);
            self.emit(Event::Connected);
        }
    }

    pub(super) fn packet_type_allowed(&self, ty: PacketType) -> bool {
        match (self.side, ty) {
            (Side::Server, PacketType::Accept) | (Side::Client, PacketType::Initial) => false,
            // RETRY is stateless and goes to `handle_retry`.
            (_, PacketType::Retry) => false,
            // A client that has no ACCEPT yet cannot use DATA packets: it does
            // not know the server's parameters.
            (Side::Client, PacketType::Data) => self.state != State::Handshake,
            _ => true,
        }
    }

    pub(super) fn on_frame(
        &mut self,
        now: Instant,
        from: SocketAddr,
        f: &Frame<'_>,
    ) -> Result<(), (TransportCode, String)> {
        match f {
            // The endpoint read the TOKEN before creating us (§6.8); a
            // NOISE frame is read before the frames are (§16.3), and the
            // CIPHERS of its payload when the keys were made (§16.5).
            Frame::Padding(_)
            | Frame::Ping
            | Frame::Token(_)
            | Frame::Noise(_)
            | Frame::Ciphers(_) => {}
            // Refused with the packet (above): they travel in RETRY only.
            Frame::ServerKey(_) | Frame::Unreadable(_) => {}
            Frame::Ack(ack) => self.on_ack(now, ack)?,
            Frame::Handshake(p) => self.on_handshake(p)?,
            // Version 1's encoding of stream 0's data and limit (§15.2).
            Frame::Stream(s) => self.on_stream_data(&frame::StreamNFrame {
                id: StreamId::FIRST.0,
                offset: s.offset,
                message_start: None,
                data: s.data,
                fin: s.fin,
            })?,
            Frame::MaxData(max) => self.streams.first_mut().send.set_max_data(*max),
            Frame::PathChallenge(data) => self.migration.on_challenge(from, *data),
            Frame::PathResponse(data) => self.on_path_response(now, *data),
            Frame::StreamParams(_)
            | Frame::StreamN(_)
            | Frame::MaxStreamData { .. }
            | Frame::MaxStreams(_)
            | Frame::MaxStreamsData(_)
            | Frame::ResetStream { .. }
            | Frame::StopSending { .. }
            | Frame::Skip(_)
            | Frame::Datagram(_) => self.on_stream_frame(f)?,
            Frame::Close(c) => {
                // §5.7: the reason is for people, and may be printed:
                // escape anything a terminal would act on.
                let reason = crate::text::printable_bytes(c.reason);
                let err = match c.kind {
                    CloseKind::Application => ConnectionError::PeerAborted {
                        // A decoded varint always fits.
                        code: VarInt::from_u64(c.code).unwrap_or(VarInt::MAX),
                        reason,
                    },
                    CloseKind::Transport => ConnectionError::PeerTransportClose {
                        code: TransportCode::from_u64(c.code),
                        reason,
                    },
                };
                let until = now + self.pto() * 3;
                self.set_state(now, State::Draining { until });
                self.finish(Err(err));
            }
        }
        Ok(())
    }

    pub(super) fn on_handshake(
        &mut self,
        p: &HandshakeParams,
    ) -> Result<(), (TransportCode, String)> {
        if self.peer.is_some() {
            return Ok(()); // Repeated in every INITIAL/ACCEPT; the first counts.
        }
        if p.max_datagram_size < crate::config::MIN_DATAGRAM_SIZE as u64
            || p.max_message_size == 0
            || p.idle_timeout_millis == 0
            || p.max_ack_delay_micros > 1_000_000
            || p.initial_max_data < p.max_message_size.saturating_add(8)
        {
            return Err((
                TransportCode::InvalidParameters,
                format!("unacceptable transport parameters {p:?}"),
            ));
        }
        self.peer = Some(*p);
        self.start_mtu_search();
        self.timers.idle_timeout = self
            .timers
            .idle_timeout
            .min(Duration::from_millis(p.idle_timeout_millis));
        self.streams
            .first_mut()
            .send
            .set_max_data(p.initial_max_data);
        Ok(())
    }

    /// The server answered our INITIAL with a version negotiation packet that
    /// excludes our version (§3.5): the client falls back to version 1 if
    /// the server speaks it and we offered 2; otherwise the connection
    /// cannot be made.
    pub fn on_version_negotiation(&mut self, theirs: Vec<u8>) {
        if self.side == Side::Client && self.state == State::Handshake {
            if self.version == crate::wire::VERSION_2 && theirs.contains(&crate::wire::VERSION_1) {
                self.version = crate::wire::VERSION_1;
                self.handshake_pending = true;
                self.stats.streams.version_fallbacks += 1;
                // §3.5: the version-2 INITIALs in flight were answered, not
                // lost: they leave flight without counting as losses or as
                // congestion, and what they carried goes again in version 1.
                for (_, answered) in self.recovery.sent.take_range(0..self.next_pn) {
                    self.requeue(&answered.frames);
                }
                return;
            }
            self.finish(Err(ConnectionError::VersionMismatch {
                ours: self.version,
                theirs,
            }));
            self.state = State::Closed;
            let at = self.created;
            self.trace_state(at);
        }
    }
}
