//! Arbitrary bytes → header + frames (as plaintext). Must not panic, and every accepted frame
//! must re-encode to exactly its input bytes (`roundtrip_oracle`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    jetstream_core::proto::packet::roundtrip_oracle(data);
});
