//! The event trace (docs/trace.md): what a connection did, event by event,
//! in qlog's vocabulary (draft-ietf-quic-qlog-main-schema) where it fits.
//!
//! Tracing is off unless enabled per connection; when off, no event is
//! built. Events carry their time in milliseconds since the connection was
//! created, so a trace needs no clock of its own.

use crate::wire::{frame, Frame, Header};
use serde::Serialize;
use serde_json::{json, Value};
use std::time::Instant;

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceEvent {
    /// Milliseconds since the connection was created.
    pub time: f64,
    /// `category:event`, e.g. `transport:packet_sent`.
    pub name: &'static str,
    /// The event's fields, in qlog's vocabulary where it has one (docs/trace.md).
    pub data: Value,
}

/// The trace of one connection: a queue the driver drains.
#[derive(Debug)]
pub(crate) struct Tracer {
    start: Instant,
    events: std::collections::VecDeque<TraceEvent>,
}

impl Tracer {
    pub(crate) fn new(start: Instant) -> Self {
        Self {
            start,
            events: Default::default(),
        }
    }

    pub(crate) fn event(&mut self, now: Instant, name: &'static str, data: Value) {
        self.events.push_back(TraceEvent {
            time: now.saturating_duration_since(self.start).as_secs_f64() * 1000.0,
            name,
            data,
        });
    }

    /// A packet just built: its header, and its frames' bytes before any
    /// sealing, decoded again for the trace.
    pub(crate) fn packet(
        &mut self,
        now: Instant,
        name: &'static str,
        header: &Header,
        frames: &[u8],
        length: usize,
        extra: Value,
    ) {
        let frames = frame::decode_all(frames).unwrap_or_default();
        self.packet_frames(now, name, header, length, &frames, extra);
    }

    /// A packet with its header and frames already decoded.
    pub(crate) fn packet_frames(
        &mut self,
        now: Instant,
        name: &'static str,
        header: &Header,
        length: usize,
        frames: &[Frame<'_>],
        extra: Value,
    ) {
        let frames: Vec<Value> = frames.iter().map(frame_json).collect();
        let mut data = json!({
            "header": {
                "packet_type": format!("{:?}", header.ty).to_lowercase(),
                "packet_number": header.pn,
                "dcid": header.dcid.to_string(),
            },
            "raw": { "length": length },
            "frames": frames,
        });
        if let (Some(obj), Value::Object(more)) = (data.as_object_mut(), extra) {
            obj.extend(more);
        }
        self.event(now, name, data);
    }

    pub(crate) fn pop(&mut self) -> Option<TraceEvent> {
        self.events.pop_front()
    }
}

fn frame_json(f: &Frame<'_>) -> Value {
    match f {
        Frame::Padding(n) => json!({"frame_type": "padding", "length": n}),
        Frame::Ping => json!({"frame_type": "ping"}),
        Frame::Ack(a) => json!({
            "frame_type": "ack",
            "ack_delay": a.delay_micros as f64 / 1000.0,
            // qlog's ranges: [smallest, largest], both included.
            "acked_ranges": a.ranges.iter().rev().map(|r| [r.start, r.end - 1]).collect::<Vec<_>>(),
        }),
        Frame::Handshake(p) => json!({
            "frame_type": "handshake",
            "max_ack_delay_us": p.max_ack_delay_micros,
            "idle_timeout_ms": p.idle_timeout_millis,
            "initial_max_data": p.initial_max_data,
            "max_message_size": p.max_message_size,
            "max_datagram_size": p.max_datagram_size,
        }),
        Frame::Stream(s) => json!({
            "frame_type": "stream", "stream_id": 0, "offset": s.offset,
            "length": s.data.len(), "fin": s.fin,
        }),
        Frame::StreamN(s) => json!({
            "frame_type": "stream", "stream_id": s.id, "offset": s.offset,
            "length": s.data.len(), "fin": s.fin, "message_start": s.message_start,
        }),
        Frame::StreamParams(p) => json!({
            "frame_type": "stream_parameters",
            "max_streams": p.max_streams,
            "stream_window": p.stream_window,
            "streams_window": p.streams_window,
            "max_datagram_payload": p.max_datagram_payload,
        }),
        Frame::MaxStreamData { id, max } => {
            json!({"frame_type": "max_stream_data", "stream_id": id, "maximum": max})
        }
        Frame::MaxStreams(m) => json!({"frame_type": "max_streams", "maximum": m}),
        Frame::MaxStreamsData(m) => json!({"frame_type": "max_streams_data", "maximum": m}),
        Frame::ResetStream {
            id,
            code,
            final_size,
        } => json!({
            "frame_type": "reset_stream", "stream_id": id, "error_code": code,
            "final_size": final_size,
        }),
        Frame::StopSending { id, code } => {
            json!({"frame_type": "stop_sending", "stream_id": id, "error_code": code})
        }
        Frame::Skip(k) => json!({
            "frame_type": "skip", "stream_id": k.id, "offset": k.offset, "length": k.len,
            "messages": k.messages,
        }),
        Frame::Datagram(d) => json!({"frame_type": "datagram", "length": d.len()}),
        Frame::Noise(m) => json!({"frame_type": "noise", "length": m.len()}),
        Frame::Ciphers(ids) => json!({"frame_type": "ciphers", "ids": ids}),
        Frame::ServerKey(_) => json!({"frame_type": "server_key"}),
        Frame::Unreadable(_) => json!({"frame_type": "unreadable"}),
        Frame::MaxData(m) => json!({"frame_type": "max_data", "maximum": m}),
        Frame::Token(t) => json!({"frame_type": "token", "length": t.len()}),
        Frame::PathChallenge(d) => json!({
            "frame_type": "path_challenge", "data": format!("{:016x}", u64::from_be_bytes(*d)),
        }),
        Frame::PathResponse(d) => json!({
            "frame_type": "path_response", "data": format!("{:016x}", u64::from_be_bytes(*d)),
        }),
        Frame::Close(c) => json!({
            "frame_type": "connection_close",
            "error_space": match c.kind {
                crate::wire::CloseKind::Transport => "transport",
                crate::wire::CloseKind::Application => "application",
            },
            "error_code": c.code,
            "reason": String::from_utf8_lossy(c.reason),
        }),
    }
}
