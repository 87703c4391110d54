//! Whole runs on small swarms: determinism, completion, churn, and the
//! other scenarios. Small on purpose (tens of agents, a few MiB) so that the
//! suite stays fast on two shared cores; scale runs live in RESULTS.md.

use shoal_sim::{Params, Report, Scenario, run};

fn small(scenario: Scenario, agents: u32, mib: u64, seed: u64) -> Params {
    Params {
        scenario,
        agents,
        blob_bytes: mib << 20,
        seed,
        ..Params::default()
    }
}

/// Everything but the wall-clock figures.
fn virtual_figures(r: &Report) -> (usize, usize, u32, [u64; 6], u64) {
    (
        r.completed,
        r.incomplete,
        r.departed,
        [
            r.p50_s.to_bits(),
            r.p99_s.to_bits(),
            r.max_s.to_bits(),
            r.origin_egress_f.to_bits(),
            r.wasted_nf.to_bits(),
            r.virtual_s.to_bits(),
        ],
        r.events,
    )
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    let a = run(small(Scenario::FlashCrowd, 30, 8, 7)).unwrap();
    let b = run(small(Scenario::FlashCrowd, 30, 8, 7)).unwrap();
    assert_eq!(virtual_figures(&a), virtual_figures(&b));
    let c = run(small(Scenario::FlashCrowd, 30, 8, 8)).unwrap();
    assert_ne!(virtual_figures(&a), virtual_figures(&c));
}

#[test]
fn a_small_flash_crowd_completes_near_the_bound() {
    let r = run(small(Scenario::FlashCrowd, 40, 16, 1)).unwrap();
    // Completion comes only from the torrent's `Completed`, i.e. every
    // piece of every agent verified.
    assert_eq!((r.completed, r.incomplete), (40, 0), "{}", r.table());
    assert!(r.max_s >= r.bound_s, "faster than physics: {}", r.table());
    // 16 pieces among 40 agents: start-up (announce, handshakes) dominates.
    assert!(r.ratio_max < 5.0, "{}", r.table());
    assert!(r.origin_egress_f >= 1.0, "every byte left an origin once");
    assert!(r.events > 0 && r.virtual_s > 0.0);
}

#[test]
fn churned_agents_do_not_block_the_others() {
    let r = run(small(Scenario::Churn, 50, 32, 3)).unwrap();
    assert_eq!(r.departed, 5, "{}", r.table());
    assert_eq!(r.incomplete, 0, "{}", r.table());
    assert_eq!(r.completed, 45, "{}", r.table());
}

#[test]
fn hetero_staggered_multi_blob_and_one_origin_complete() {
    for scenario in [
        Scenario::Hetero,
        Scenario::Staggered,
        Scenario::MultiBlob,
        Scenario::OneOrigin,
    ] {
        let r = run(small(scenario, 20, 8, 5)).unwrap();
        assert_eq!((r.completed, r.incomplete), (20, 0), "{}", r.table());
        assert!(r.max_s > 0.0);
    }
    let image = run(small(Scenario::MultiBlob, 10, 8, 5)).unwrap();
    assert_eq!(image.blobs, 5);
    let one = run(small(Scenario::OneOrigin, 10, 8, 5)).unwrap();
    assert_eq!(one.origins, 1);
}

#[test]
fn bad_parameters_are_errors_not_panics() {
    let p = Params {
        upload_bps: 0.0,
        ..Params::default()
    };
    assert!(run(p).is_err());
    let p = Params {
        churn_fraction: 1.5,
        ..Params::default()
    };
    assert!(run(p).is_err());
}
