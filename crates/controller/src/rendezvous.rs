//! Rendezvous (highest-random-weight) hashing: which member owns a key.
//!
//! Every replica computes the same answer from the same member set, with no
//! coordination beyond agreeing on the members: each (member, key) pair gets
//! a pseudo-random weight and the member with the highest weight owns the
//! key. When a member leaves, only its keys move (each to the member with
//! the next-highest weight); when one joins, it takes about `1/n` of the
//! keys, each from a single former owner — the minimal movement.
//!
//! The weight is a fixed, documented function (FNV-1a 64 of `member`, a
//! `0xff` separator and `key`, then the SplitMix64 finalizer), not
//! `std::hash::DefaultHasher`, whose output may change between Rust
//! releases: replicas of different builds (a rolling upgrade) must agree.

/// The weight of `key` for `member` (higher wins).
pub fn weight(member: &str, key: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    // 0xff never occurs in UTF-8, so ("ab", "c") and ("a", "bc") differ.
    for b in member.bytes().chain([0xff]).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    // SplitMix64's finalizer spreads FNV's weak low bits over the word.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The member that owns `key` among `members` (None when there is none).
/// Ties (astronomically rare) go to the greater member name, so every
/// replica still agrees.
pub fn owner<'a, I>(key: &str, members: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    members.into_iter().max_by_key(|m| (weight(m, key), *m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn members(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("tidegate-controller-{i}")).collect()
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("env-{i}")).collect()
    }

    fn assign(keys: &[String], members: &[String]) -> BTreeMap<String, String> {
        keys.iter()
            .map(|k| {
                let o = owner(k, members.iter().map(String::as_str)).expect("a member");
                (k.clone(), o.to_string())
            })
            .collect()
    }

    #[test]
    fn every_key_has_one_owner_whatever_the_order_of_members() {
        let ms = members(5);
        let mut reversed = ms.clone();
        reversed.reverse();
        for k in keys(200) {
            assert_eq!(
                owner(&k, ms.iter().map(String::as_str)),
                owner(&k, reversed.iter().map(String::as_str)),
                "{k}"
            );
        }
        assert_eq!(owner("env", std::iter::empty()), None);
    }

    #[test]
    fn the_weight_is_fixed_across_builds() {
        // Replicas of different builds must agree: pinned values.
        assert_ne!(weight("ab", "c"), weight("a", "bc"));
        // Computed independently (Python) from the definition above.
        assert_eq!(weight("replica-a", "prod"), 0xaa8c_7a27_b40b_6109);
        assert_eq!(weight("replica-b", "prod"), 0x0ec4_223d_4a42_b9b6);
    }

    #[test]
    fn keys_are_spread_evenly() {
        let ks = keys(10_000);
        for n in [2usize, 3, 5, 10] {
            let ms = members(n);
            let a = assign(&ks, &ms);
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for o in a.values() {
                *counts.entry(o.as_str()).or_default() += 1;
            }
            let ideal = ks.len() / n;
            for (m, c) in &counts {
                // Within 10% of the ideal share (binomial spread is ~1-3%).
                assert!(
                    c.abs_diff(ideal) * 10 <= ideal,
                    "{n} members: {m} owns {c}, ideal {ideal}"
                );
            }
            assert_eq!(counts.len(), n, "every member owns some keys");
        }
    }

    #[test]
    fn adding_a_member_moves_about_one_nth_and_only_to_it() {
        let ks = keys(10_000);
        for n in [1usize, 2, 3, 9] {
            let before = assign(&ks, &members(n));
            let grown = members(n + 1);
            let newcomer = &grown[n];
            let after = assign(&ks, &grown);
            let moved: Vec<_> = ks.iter().filter(|k| before[*k] != after[*k]).collect();
            for k in &moved {
                assert_eq!(&after[*k], newcomer, "{k} moved to an old member");
            }
            let ideal = ks.len() / (n + 1);
            println!(
                "{n} → {} members: {} of {} keys moved (ideal {ideal}, ratio {:.3})",
                n + 1,
                moved.len(),
                ks.len(),
                moved.len() as f64 / ideal as f64
            );
            assert!(
                moved.len().abs_diff(ideal) * 10 <= ideal,
                "{} moved, ideal {ideal}",
                moved.len()
            );
        }
    }

    #[test]
    fn removing_a_member_moves_only_its_keys() {
        let ks = keys(10_000);
        let ms = members(4);
        let before = assign(&ks, &ms);
        let gone = &ms[1];
        let rest: Vec<String> = ms.iter().filter(|m| *m != gone).cloned().collect();
        let after = assign(&ks, &rest);
        let mut moved = 0usize;
        for k in &ks {
            if before[k] == *gone {
                moved += 1;
                assert_ne!(&after[k], gone);
            } else {
                assert_eq!(before[k], after[k], "{k} moved though its owner stayed");
            }
        }
        let ideal = ks.len() / 4;
        println!(
            "4 → 3 members: {moved} of {} keys moved (ideal {ideal})",
            ks.len()
        );
        assert!(moved.abs_diff(ideal) * 10 <= ideal);
    }
}
