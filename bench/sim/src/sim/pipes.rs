//! Moving bytes: each connection direction is a FIFO. Control messages at
//! its head leave at once and arrive one latency later; a served block at
//! its head is a flow of the network model, and when it is fully sent the
//! sender's torrent hears `handle_served` (as the session's writer task
//! reports a block handed to the socket) and the `Piece` arrives one
//! latency later.

use shoal_swarm::wire::Message;

use super::Sim;
use crate::conn::Outgoing;
use crate::events::{ConnId, Event, HostId, Wire};

/// Bytes a piece frame adds to its payload on the wire: length prefix,
/// type, header length and the small protobuf header.
pub(super) const PIECE_FRAME_OVERHEAD: u64 = 17;

/// TCP payload per Ethernet frame (MSS with timestamps at MTU 1500).
const TCP_SEGMENT: u64 = 1448;
/// Ethernet, IPv4 and TCP headers (with timestamps) around each segment:
/// what a shaper such as tbf counts on top of the payload (4.6%).
const TCP_FRAME_HEADERS: u64 = 66;

/// Bytes a piece frame of `bytes` occupies on the link: with
/// `tcp_headers`, as a tbf-shaped veth counts them.
fn on_the_link(bytes: u64, tcp_headers: bool) -> u64 {
    if tcp_headers {
        bytes + bytes.div_ceil(TCP_SEGMENT) * TCP_FRAME_HEADERS
    } else {
        bytes
    }
}

impl Sim {
    /// Queues `outgoing` on `host`'s pipe of `conn` and starts it moving if
    /// the pipe was idle.
    pub(super) fn enqueue(&mut self, conn: ConnId, host: HostId, outgoing: Outgoing) {
        let c = &mut self.conns[conn as usize];
        let side = c.side_of(host);
        let pipe = &mut c.pipes[usize::from(side)];
        // With control_first no message is ever queued, so messages keep
        // their order among themselves and only pass blocks.
        if let (true, Outgoing::Message(message)) = (self.params.control_first, &outgoing) {
            let at = self.now.after(self.latency);
            let event = Event::Deliver {
                conn,
                from: side,
                message: message.clone(),
            };
            self.queue.push(at, event);
            return;
        }
        if pipe.sending.is_some() {
            pipe.queue.push_back(outgoing);
        } else {
            // An idle pipe has an empty queue: send at once, without the
            // round trip through the queue's buffer.
            self.pump(conn, side, Some(outgoing));
        }
    }

    /// Sends `first`, then from the head of the pipe, until a block is in
    /// transit or the pipe is empty (then its flow ends).
    fn pump(&mut self, conn: ConnId, side: u8, mut first: Option<Outgoing>) {
        let pipe_id = conn * 2 + u32::from(side);
        let mut out = std::mem::take(&mut self.reschedules);
        out.clear();
        loop {
            let pipe = &mut self.conns[conn as usize].pipes[usize::from(side)];
            if pipe.sending.is_some() {
                break;
            }
            match first.take().or_else(|| pipe.queue.pop_front()) {
                Some(Outgoing::Message(message)) => {
                    let at = self.now.after(self.latency);
                    let event = Event::Deliver {
                        conn,
                        from: side,
                        message,
                    };
                    self.queue.push(at, event);
                }
                Some(Outgoing::Serve(block)) => {
                    pipe.sending = Some(block);
                    let frame = u64::from(block.length) + PIECE_FRAME_OVERHEAD;
                    let bytes = on_the_link(frame, self.params.tcp_headers);
                    self.net.send_block(pipe_id, bytes, self.now, &mut out);
                }
                None => {
                    self.net.idle(pipe_id, self.now, &mut out);
                    break;
                }
            }
        }
        self.apply(&out);
        self.reschedules = out;
    }

    /// Stops `side`'s pipe of a closing connection.
    pub(super) fn stop_pipe(&mut self, conn: ConnId, side: u8) {
        let mut out = std::mem::take(&mut self.reschedules);
        out.clear();
        self.net
            .idle(conn * 2 + u32::from(side), self.now, &mut out);
        self.apply(&out);
        self.reschedules = out;
    }

    fn apply(&mut self, out: &[crate::network::Reschedule]) {
        for r in out {
            let event = Event::FlowDone {
                conn: r.pipe / 2,
                from: (r.pipe % 2) as u8,
                version: r.version,
            };
            self.queue.push(r.at, event);
        }
    }

    /// A block is fully sent: it arrives one latency later, the sender's
    /// torrent frees the request slot, and the pipe moves on.
    pub(super) fn on_flow_done(&mut self, conn: ConnId, from: u8, version: u32) {
        let pipe_id = conn * 2 + u32::from(from);
        if !self.net.is_current(pipe_id, version) {
            return;
        }
        self.net.block_sent(pipe_id, self.now);
        let c = &mut self.conns[conn as usize];
        let Some(block) = c.pipes[usize::from(from)].sending.take() else {
            return;
        };
        let (sender, blob, key) = (c.ends[usize::from(from)], c.blob, c.key(from));
        self.hosts[sender as usize].sent += u64::from(block.length);
        self.queue.push(
            self.now.after(self.latency),
            Event::Deliver {
                conn,
                from,
                message: Wire::Piece(block),
            },
        );
        if let Some(key) = key {
            let now = self.instant();
            if let Some(swarm) = self.swarm_mut(sender, blob) {
                swarm.torrent.handle_served(now, key, block);
                self.drain(sender, blob);
            }
        }
        if self.conns[conn as usize].pipes[usize::from(from)]
            .sending
            .is_none()
        {
            self.pump(conn, from, None);
        }
    }

    /// A message arrives at the other end, if that end is still open.
    pub(super) fn on_deliver(&mut self, conn: ConnId, from: u8, message: Wire) {
        let c = &self.conns[conn as usize];
        let to = 1 - from;
        let (Some(key), host, blob) = (c.key(to), c.ends[usize::from(to)], c.blob) else {
            return;
        };
        let counts = &mut self.messages;
        match message {
            Wire::Have(_) => counts.have += 1,
            Wire::Request(_) => counts.request += 1,
            Wire::Piece(_) => counts.piece += 1,
            Wire::Other(_) => counts.other += 1,
        }
        let now = self.instant();
        if let Some(swarm) = self.swarm_mut(host, blob) {
            swarm
                .torrent
                .handle_message(now, key, Message::from(message));
            self.drain(host, blob);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_headers_add_one_header_per_segment() {
        assert_eq!(on_the_link(1448, false), 1448);
        assert_eq!(on_the_link(1448, true), 1448 + 66);
        assert_eq!(on_the_link(1449, true), 1449 + 2 * 66);
        let block = (256 << 10) + PIECE_FRAME_OVERHEAD;
        let overhead = on_the_link(block, true) as f64 / block as f64;
        assert!((overhead - 1.0456).abs() < 0.001, "{overhead}");
    }
}
