//! Per-caller instruction quotas: charged within a window, refused once spent with the time
//! until the window ends, a new window after it, one caller's use never another's, and the usage
//! kept across an upgrade (saved by pre_upgrade, read by a new heap on the same stable memory).

use candid::Principal;
use ic_stable_structures::DefaultMemoryImpl;
use inference_engine::quota::{Quota, Usage};
use inference_engine::stable::StableLayout;

const QUOTA: Quota = Quota { instructions: 100, window_ns: 1_000 };

fn who(n: u8) -> Principal {
    Principal::from_slice(&[n, 3])
}

#[test]
fn a_spent_quota_is_refused_until_its_window_ends_even_across_an_upgrade() {
    let memory = DefaultMemoryImpl::default();
    let mut usage = Usage::init(&StableLayout::init(memory.clone()));
    assert_eq!(usage.check(who(1), QUOTA, 10), Ok(()), "nothing used yet");
    usage.charge(who(1), 60, QUOTA, 10);
    assert_eq!(usage.check(who(1), QUOTA, 20), Ok(()), "60 of 100");
    usage.charge(who(1), 60, QUOTA, 20);
    assert_eq!(usage.check(who(1), QUOTA, 30), Err(980), "spent: the window began at 10");
    assert_eq!(usage.check(who(2), QUOTA, 30), Ok(()), "another caller's quota is its own");
    // Saved by pre_upgrade, a new heap on the same memory (post_upgrade) knows what was used.
    usage.save();
    let mut usage = Usage::init(&StableLayout::init(memory.clone()));
    assert_eq!(usage.of(who(1)), Some((10, 120)));
    assert_eq!(usage.check(who(1), QUOTA, 1_009), Err(1));
    assert_eq!(usage.check(who(1), QUOTA, 1_010), Ok(()), "the window is over");
    usage.charge(who(1), 5, QUOTA, 1_010);
    assert_eq!(usage.of(who(1)), Some((1_010, 5)), "a new window starts at the first charge after");
    // Saving again replaces what was saved.
    usage.save();
    assert_eq!(Usage::init(&StableLayout::init(memory)).of(who(1)), Some((1_010, 5)));
}
