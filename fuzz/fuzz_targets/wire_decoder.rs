//! The peer-wire decoder on arbitrary bytes, against a small blob's
//! geometry chosen from the first bytes. Every message that comes out must
//! encode and decode back to itself, and a refused frame ends the input,
//! as it ends the connection.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shoal_swarm::wire::{Decoder, Geometry, encode};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    // Geometry: blob length 1..=65536 bytes, piece length 1..=256 * 64.
    let length = u64::from(u16::from_le_bytes([data[0], data[1]])) + 1;
    let piece_length = (u32::from(data[2]) + 1) * 64;
    let Some(geometry) = Geometry::new(length, piece_length) else {
        return;
    };
    let mut decoder = Decoder::new();
    decoder.set_geometry(geometry);
    let mut buf = BytesMut::from(&data[3..]);
    loop {
        let before = buf.len();
        match decoder.decode(&mut buf) {
            Ok(Some(message)) => {
                assert!(buf.len() < before, "a message consumed no bytes");
                let mut encoded = BytesMut::new();
                encode(&message, &mut encoded).expect("a decoded message encodes");
                // Re-decode with a fresh decoder: anything but a handshake
                // needs one first, after which a bitfield is allowed too.
                let mut again = Decoder::new();
                again.set_geometry(geometry);
                if !matches!(message, shoal_swarm::wire::Message::Handshake(_)) {
                    let mut hs = BytesMut::new();
                    encode(
                        &shoal_swarm::wire::Message::Handshake(shoal_swarm::wire::Handshake {
                            version: shoal_swarm::wire::PROTOCOL_VERSION,
                            digest: shoal_swarm::Digest::of(b""),
                            peer_id: shoal_swarm::PeerId::from_array([0; shoal_swarm::PeerId::LEN]),
                        }),
                        &mut hs,
                    )
                    .expect("a handshake encodes");
                    again.decode(&mut hs).expect("the handshake decodes");
                }
                let round = again
                    .decode(&mut encoded)
                    .expect("an encoded message decodes")
                    .expect("an encoded message is complete");
                assert_eq!(round, message, "decode -> encode -> decode changed it");
                assert!(encoded.is_empty(), "the encoding had trailing bytes");
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "an incomplete frame consumed bytes");
                break;
            }
            Err(_) => break,
        }
    }
});
