//! getrandom's custom backend for this project's canisters (`.cargo/config.toml` selects it
//! for wasm32; each canister links it with `use canister_entropy as _;`).
//!
//! The IC replicates every computation: a canister has no entropy of its own, and whatever it
//! computes must be the same on every node. In the text front canister, ahash seeds the hash
//! maps of the tokenizer (`tokenizers`) once per instance and panics without seeds; a fixed
//! stream serves it. In the inference canister, tract's `rand` links getrandom but nothing
//! calls it: job ids derive from the management canister's `raw_rand`, and models with random
//! operators are refused at upload. Nothing secret or meant to be unpredictable comes from
//! here. A fixed seed lets whoever knows it craft colliding words, which only slows the
//! crafting caller's own tokenization.
//!
//! getrandom 0.3 (tokenizers' ahash) and 0.4 (tract's `rand`) both call this one symbol, by
//! design of getrandom.

#![cfg(target_arch = "wasm32")]

/// SplitMix64 from a fixed start: well-spread bytes, the same on every node and every call.
fn fill(dest: &mut [u8]) {
    let mut state: u64 = 0x6a09_e667_f3bc_c908;
    for chunk in dest.chunks_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
}

/// # Safety
/// getrandom calls it with `dest` valid for writes of `len` bytes.
#[no_mangle]
unsafe extern "Rust" fn __getrandom_v03_custom(dest: *mut u8, len: usize) -> Result<(), getrandom::Error> {
    // SAFETY: getrandom passes a pointer to `len` writable bytes it owns for this call.
    fill(unsafe { std::slice::from_raw_parts_mut(dest, len) });
    Ok(())
}
