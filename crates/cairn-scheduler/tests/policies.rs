//! Each selection policy, driven through the scheduler.

mod rig;

use cairn_scheduler::*;
use rig::*;

fn run_job_to_completion(policy: &str, seed: u64) -> (Vec<(TaskId, NodeId)>, JobOutcome) {
    let mut r = Rig {
        s: Scheduler::new(quiet_config(), policy_by_name(policy, seed).unwrap()),
        now: 0,
        log: vec![],
    };
    for n in 1..=12 {
        r.node(n, cap(16 + (n % 6) as u8, n % 3 != 0, 1 + (n % 2) as u32));
    }
    r.submit(1, JobSpec::new(17));
    for s in 0..9 {
        r.segment(1, s);
    }
    r.finish_exec(1, 9);
    // Verify whatever is running, until done.
    for _ in 0..100 {
        let running: Vec<_> =
            r.s.job_status(JobId(1))
                .unwrap()
                .tasks
                .iter()
                .flat_map(|t| t.assignees.iter().map(move |a| (t.task, a.node)))
                .collect();
        if running.is_empty() {
            // Auction: wait for the price to rise.
            match r.s.next_deadline() {
                Some(t) => {
                    r.tick_at(t);
                    continue;
                }
                None => break,
            }
        }
        for (t, n) in running {
            r.verify(n.0, t);
        }
    }
    let outcome =
        r.s.job_status(JobId(1))
            .unwrap()
            .outcome
            .expect("job finished");
    for a in &r.log {
        if let Action::Assign { node, kind, .. } = a {
            let c = r.s.node_capacity(*node).unwrap();
            assert!(c.recursion, "{policy}: join-tree work needs recursion");
            assert!(c.max_po2 >= kind.po2());
        }
    }
    r.s.ledger().check_conservation().unwrap();
    (assigns(&r.log), outcome)
}

#[test]
fn every_policy_completes_a_join_tree_job_on_fitting_nodes() {
    for name in POLICY_NAMES {
        let (_, outcome) = run_job_to_completion(name, 1);
        assert!(
            matches!(outcome, JobOutcome::Completed { root: Some(_) }),
            "{name}: {outcome:?}"
        );
    }
}

#[test]
fn policies_are_deterministic_for_a_seed() {
    for name in POLICY_NAMES {
        assert_eq!(
            run_job_to_completion(name, 5).0,
            run_job_to_completion(name, 5).0,
            "{name}"
        );
    }
}

#[test]
fn unknown_policy_is_a_typed_error() {
    let e = policy_by_name("lottery", 0).err().unwrap();
    assert_eq!(e, UnknownPolicy("lottery".into()));
    assert!(e.to_string().contains("fifo, vrf"));
    for name in POLICY_NAMES {
        assert_eq!(policy_by_name(name, 0).unwrap().name(), name);
    }
}

#[test]
fn vrf_output_is_verifiable_and_seed_bound() {
    let p = VrfPolicy::from_seed(3);
    let t = task(4, 2);
    let (out, preout, proof) = p.prove(t, 0);
    assert_eq!(out, p.output(t, 0));
    assert_eq!(
        VrfPolicy::verify(&p.public_key(), &p.beacon(), t, 0, &preout, &proof),
        Some(out)
    );
    // Another task, round or beacon does not verify.
    assert_eq!(
        VrfPolicy::verify(&p.public_key(), &p.beacon(), task(4, 3), 0, &preout, &proof),
        None
    );
    assert_eq!(
        VrfPolicy::verify(&p.public_key(), &[0; 32], t, 0, &preout, &proof),
        None
    );
    assert_ne!(VrfPolicy::from_seed(4).output(t, 0), out);
}

fn vrf_rig() -> Rig {
    let mut r = Rig::new(quiet_config(), "vrf");
    for n in 1..=6 {
        r.node(n, cap(20, true, 1));
    }
    r.submit(1, JobSpec::new(18));
    r.segment(1, 0);
    r.segment(1, 1);
    r
}

fn holder(r: &Rig, t: TaskId) -> NodeId {
    r.s.job_status(t.job)
        .unwrap()
        .tasks
        .iter()
        .find(|s| s.task == t)
        .unwrap()
        .assignees[0]
        .node
}

#[test]
fn vrf_gives_the_join_to_a_childs_prover() {
    let mut r = vrf_rig();
    let (a, b) = (holder(&r, task(1, 0)), holder(&r, task(1, 1)));
    r.verify(a.0, task(1, 0));
    let out = r.verify(b.0, task(1, 1));
    assert_eq!(assigns(&out), vec![(join(1, 0), a)]);
}

#[test]
fn vrf_sibling_steps_in_when_a_leaf_fails() {
    let mut r = vrf_rig();
    let (a, b) = (holder(&r, task(1, 0)), holder(&r, task(1, 1)));
    r.verify(b.0, task(1, 1));
    let out = r.fail(a.0, task(1, 0));
    assert_eq!(assigns(&out), vec![(task(1, 0), b)]);
}

#[test]
fn reputation_runs_an_emergency_race_after_a_failure() {
    let mut r = Rig::new(quiet_config(), "reputation");
    for n in 1..=8 {
        r.node(n, cap(20, false, 1));
    }
    r.submit(1, composite(18));
    let first = assigns(&r.segment(1, 0));
    assert_eq!(first.len(), 1);
    let out = r.fail(first[0].1 .0, task(1, 0));
    let race = assigns(&out);
    assert_eq!(race.len(), 3, "{out:?}");
    assert!(race.iter().all(|(_, n)| *n != first[0].1));
    // First valid proof wins; the rest of the race is cancelled.
    let out = r.verify(race[1].1 .0, task(1, 0));
    assert_eq!(cancels(&out).len(), 2);
    assert_eq!(rewards(&out).len(), 1);
}

#[test]
fn reputation_prefers_the_top_quartile() {
    let cfg = SchedulerConfig {
        ledger: LedgerConfig {
            epoch_ms: 1_000,
            ..LedgerConfig::default()
        },
        ..quiet_config()
    };
    let mut r = Rig::new(cfg, "reputation");
    for n in 1..=8 {
        r.node(n, cap(20, false, 1));
    }
    // Nodes 1 and 2 prove in epoch 0; at the boundary they are the top quarter.
    r.submit(1, composite(18));
    r.segment(1, 0);
    r.segment(1, 1);
    for (t, n) in assigns(&r.log.clone()) {
        r.verify(n.0, t);
    }
    let winners: Vec<NodeId> = rewards(&r.log).iter().map(|x| x.1).collect();
    r.tick_at(1_000);
    assert_eq!(r.s.ledger().top_quartile_reputation(), 125_000);
    for j in 2..40 {
        r.submit(j, composite(18));
        let a = assigns(&r.segment(j, 0));
        assert!(winners.contains(&a[0].1), "job {j} went to {:?}", a[0].1);
        r.verify(a[0].1 .0, a[0].0);
    }
}

#[test]
fn stake_lottery_favours_stake() {
    let mut r = Rig::new(quiet_config(), "stake");
    for n in 1..=10 {
        r.node(n, cap(20, false, 1));
        r.s.ledger_mut()
            .deposit(NodeId(n), if n == 1 { 1_000_000 } else { 1_000 });
    }
    let mut wins = 0;
    for j in 1..=200 {
        r.submit(j, composite(18));
        let a = assigns(&r.segment(j, 0));
        if a[0].1 == NodeId(1) {
            wins += 1;
        }
        r.verify(a[0].1 .0, a[0].0);
    }
    // Stake share ~0.99: nearly every slot.
    assert!(wins > 180, "{wins}");
    // With no stake at all, the fallback is uniform: everyone gets some.
    let mut r = Rig::new(quiet_config(), "stake");
    for n in 1..=4 {
        r.node(n, cap(20, false, 1));
    }
    let mut seen = std::collections::BTreeSet::new();
    for j in 1..=60 {
        r.submit(j, composite(18));
        let a = assigns(&r.segment(j, 0));
        seen.insert(a[0].1);
        r.verify(a[0].1 .0, a[0].0);
    }
    assert_eq!(seen.len(), 4);
}

#[test]
fn auction_waits_for_the_price_to_reach_an_ask_and_pays_that_price() {
    let mut r = Rig::new(quiet_config(), "auction");
    r.node(1, cap(20, false, 1));
    r.s.ledger_mut().set_ask(NodeId(1), 120);
    r.submit(1, composite(18)); // reward 100: price ramps 50 -> 200 over 60 s
    assert!(assigns(&r.segment(1, 0)).is_empty());
    assert_eq!(r.s.next_deadline(), Some(28_000));
    let a = r.tick_at(28_000);
    assert_eq!(assigns(&a), vec![(task(1, 0), NodeId(1))]);
    assert_eq!(
        r.s.job_status(JobId(1)).unwrap().tasks[0].assignees[0].price,
        Some(120)
    );
    r.now = 29_000;
    let a = r.verify(1, task(1, 0));
    assert_eq!(rewards(&a), vec![(task(1, 0), NodeId(1), 120)]);
}

#[test]
fn auction_lowest_ask_locks_first() {
    let mut r = Rig::new(quiet_config(), "auction");
    for (n, ask) in [(1, 150), (2, 60), (3, 90)] {
        r.node(n, cap(20, false, 1));
        r.s.ledger_mut().set_ask(NodeId(n), ask);
    }
    r.submit(1, composite(18));
    r.segment(1, 0);
    let a = r.tick_at(r.s.next_deadline().unwrap());
    assert_eq!(assigns(&a), vec![(task(1, 0), NodeId(2))]);
}
