//! Bytes read through a table of 256 (a QDQ model's requantization or activation of int8
//! values, which tract folds into a `LookupTable`): `ys[i] = table[xs[i]]`, an i8 read as its
//! byte.
//!
//! tract 0.23.9 copies the input, then looks each byte up in a scalar loop behind two calls per
//! chunk: about 12 of the IC's instructions a byte (`benchmarks/profile.md`, `LookupTable`, a
//! QDQ transformer's). Here sixteen bytes a turn, each a byte load, a load from the table (at a
//! fixed address on wasm, so that the table's address is the load's offset) and a byte store,
//! the turn's pointers opaque so that each keeps a constant offset.

/// `ys[i] = table[xs[i]]` for every i < `xs.len()` (`ys` at least as long).
pub fn look_up(table: &[u8; 256], xs: &[u8], ys: &mut [u8]) {
    let n = xs.len();
    assert!(ys.len() >= n);
    #[cfg(target_arch = "wasm32")]
    let table = fixed::fill(table);
    let (from, to) = (xs.as_ptr(), ys.as_mut_ptr());
    let mut i = 0;
    while i + 16 <= n {
        let (f, t) = (crate::kernels::opaque(from.wrapping_add(i)), crate::kernels::opaque(to.wrapping_add(i)));
        // SAFETY: i + 16 <= n: the sixteen bytes read are xs[i..i + 16] and the sixteen written
        // ys[i..i + 16] (ys at least n long, asserted); each entry is table[byte], within its 256.
        unsafe {
            // Spelled out: at the canister's opt-level LLVM does not unroll a loop.
            macro_rules! bytes {
                ($($k:literal)*) => { $( *t.add($k) = *table.get_unchecked(*f.add($k) as usize); )* };
            }
            bytes!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
        }
        i += 16;
    }
    while i < n {
        ys[i] = table[xs[i] as usize];
        i += 1;
    }
}

/// The table copied to a static, whose address LLVM folds into each load's offset.
#[cfg(target_arch = "wasm32")]
mod fixed {
    pub(super) struct Table(core::cell::UnsafeCell<[u8; 256]>);

    #[cfg(target_feature = "atomics")]
    compile_error!("the byte table's static assumes a wasm module without threads");

    // SAFETY: the canister's wasm has one thread (no atomics, refused above); the table is filled
    // by `fill` and read by the `look_up` call that filled it, which calls nothing that fills it
    // again.
    unsafe impl Sync for Table {}

    static TABLE: Table = Table(core::cell::UnsafeCell::new([0; 256]));

    /// `table` copied into the static; valid until the next call.
    pub(super) fn fill(table: &[u8; 256]) -> &'static [u8; 256] {
        // SAFETY: the static is this call's alone (Table's Sync), and its reference lives only
        // as long as the caller's use of it, before any other call fills it.
        unsafe {
            *TABLE.0.get() = *table;
            &*TABLE.0.get()
        }
    }
}

/// [`look_up`] against indexing the table byte by byte, on lengths around whole turns and every
/// byte value, with a table whose entries all differ.
pub fn check() -> Result<(), String> {
    let table: [u8; 256] = core::array::from_fn(|i| (i as u8).wrapping_mul(167).wrapping_add(13));
    for len in [0usize, 1, 15, 16, 17, 33, 256, 300] {
        let xs: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let mut ys = vec![0u8; len + 3];
        look_up(&table, &xs, &mut ys);
        if let Some(i) = (0..len).find(|&i| ys[i] != table[xs[i] as usize]) {
            return Err(format!("byte table: byte {i} of {len} is {}, not {}", ys[i], table[xs[i] as usize]));
        }
        if ys[len..] != [0, 0, 0] {
            return Err(format!("byte table: bytes past {len} written"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_lookup_reads_each_bytes_entry() {
        super::check().unwrap();
    }
}
