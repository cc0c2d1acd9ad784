//! `TokenSet::authenticate`: the per-request cost, and that it does not
//! grow with the number of tokens (a lookup by id, not a scan). Reported as
//! the ratio 3,000 tokens / 1 token in the same run.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tidegate_auth::token::generate;
use tidegate_auth::{Roles, TokenRecord, TokenSet};

fn set_of(n: usize) -> (TokenSet, String) {
    let mut records = Vec::with_capacity(n);
    let mut last = String::new();
    for i in 0..n {
        let (value, hash) = generate().expect("token");
        records.push(TokenRecord {
            id: value.id().clone(),
            name: format!("user-{i}"),
            roles: Roles::parse(["*=viewer"]).expect("roles"),
            hash,
            created_at: 0,
            created_by: "bench".into(),
            expires_at: None,
            revoked_at: None,
            revoked_by: None,
        });
        last = value.expose().to_string();
    }
    (TokenSet::new(records), last)
}

fn authenticate(c: &mut Criterion) {
    let mut group = c.benchmark_group("authenticate");
    for n in [1, 3_000] {
        let (set, token) = set_of(n);
        group.bench_function(format!("{n}_tokens"), |b| {
            b.iter(|| black_box(set.authenticate(black_box(&token), 1)).expect("valid"))
        });
    }
    group.finish();
}

criterion_group!(benches, authenticate);
criterion_main!(benches);
