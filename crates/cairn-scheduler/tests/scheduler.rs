//! Behaviour of the scheduler, one test per rule, driven through `handle` and asserted on the actions.

mod rig;

use cairn_scheduler::*;
use rig::*;

#[test]
fn composite_job_completes_when_every_segment_is_verified() {
    let mut r = Rig::fifo();
    r.node(1, cap(20, false, 1));
    r.node(2, cap(20, false, 1));
    r.submit(1, composite(18));
    let a = r.segment(1, 0);
    assert_eq!(assigns(&a), vec![(task(1, 0), NodeId(1))]);
    let a = r.segment(1, 1);
    assert_eq!(assigns(&a), vec![(task(1, 1), NodeId(2))]);
    let a = r.finish_exec(1, 2);
    assert!(a.is_empty(), "{a:?}");
    let a = r.verify(1, task(1, 0));
    assert_eq!(rewards(&a), vec![(task(1, 0), NodeId(1), 100)]);
    assert!(finished(&a).is_empty());
    let a = r.verify(2, task(1, 1));
    assert_eq!(
        finished(&a),
        vec![(JobId(1), JobOutcome::Completed { root: None })]
    );
    let st = r.s.job_status(JobId(1)).unwrap();
    assert_eq!(st.state, JobState::Completed);
    assert!(st
        .tasks
        .iter()
        .all(|t| t.state == TaskState::Verified && t.winner.is_some()));
    r.s.ledger().check_conservation().unwrap();
}

#[test]
fn join_tree_joins_start_before_execution_ends_and_root_completes_the_job() {
    let mut r = Rig::fifo();
    for n in 1..=3 {
        r.node(n, cap(20, true, 1));
    }
    r.submit(1, JobSpec::new(18));
    r.segment(1, 0);
    r.segment(1, 1);
    r.verify(1, task(1, 0));
    // The join of segments 0 and 1 is only assignable once both are verified.
    assert!(assigns(&r.log).iter().all(|(t, _)| !t.is_join()));
    let a = r.verify(2, task(1, 1));
    let j0 = assigns(&a);
    assert_eq!(j0.len(), 1);
    assert_eq!(j0[0].0, join(1, 0));
    // Execution has not finished yet: the join runs while segments still arrive.
    assert_eq!(r.s.job_status(JobId(1)).unwrap().segments_total, None);
    match r
        .log
        .iter()
        .find(|a| matches!(a, Action::Assign { task, .. } if *task == join(1, 0)))
    {
        Some(Action::Assign {
            kind: TaskKind::Join { left, right },
            ..
        }) => {
            assert_eq!((*left, *right), (task(1, 0), task(1, 1)));
        }
        other => panic!("{other:?}"),
    }
    r.segment(1, 2);
    r.finish_exec(1, 3);
    let st = r.s.job_status(JobId(1)).unwrap();
    // 3 segments: join(0,1) then root = join(J0, seg 2).
    assert_eq!(st.tasks_total, 5);
    assert_eq!(st.root, Some(join(1, 1)));
    let n0 = j0[0].1 .0;
    r.verify(n0, join(1, 0));
    let seg2 = assigns(&r.log)
        .into_iter()
        .find(|(t, _)| *t == task(1, 2))
        .unwrap()
        .1
         .0;
    let a = r.verify(seg2, task(1, 2));
    let root = assigns(&a);
    assert_eq!(root.len(), 1);
    assert_eq!(root[0].0, join(1, 1));
    let a = r.verify(root[0].1 .0, join(1, 1));
    assert_eq!(
        finished(&a),
        vec![(
            JobId(1),
            JobOutcome::Completed {
                root: Some(join(1, 1))
            }
        )]
    );
    let st = r.s.job_status(JobId(1)).unwrap();
    assert_eq!(st.tasks_verified, 5);
    assert_eq!(rewards(&r.log).len(), 5);
}

#[test]
fn single_segment_job_tree_root_is_the_segment() {
    let mut r = Rig::fifo();
    r.node(1, cap(20, true, 1));
    r.submit(1, JobSpec::new(18));
    r.segment(1, 0);
    r.finish_exec(1, 1);
    let a = r.verify(1, task(1, 0));
    assert_eq!(
        finished(&a),
        vec![(
            JobId(1),
            JobOutcome::Completed {
                root: Some(task(1, 0))
            }
        )]
    );
}

#[test]
fn out_of_order_segments_are_planned_in_order() {
    let mut r = Rig::fifo();
    for n in 1..=4 {
        r.node(n, cap(20, true, 1));
    }
    r.submit(1, JobSpec::new(18));
    r.segment(1, 1);
    r.segment(1, 0);
    r.segment(1, 3);
    r.segment(1, 2);
    for (t, n) in assigns(&r.log.clone()) {
        r.verify(n.0, t);
    }
    let joins: Vec<_> = assigns(&r.log)
        .into_iter()
        .filter(|(t, _)| t.is_join())
        .collect();
    // (0,1) and (2,3) then (J0,J1), all before execution finished.
    assert_eq!(joins.len(), 2);
    let kinds: Vec<_> = r
        .log
        .iter()
        .filter_map(|a| match a {
            Action::Assign {
                kind: TaskKind::Join { left, right },
                ..
            } => Some((left.index, right.index)),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, vec![(0, 1), (2, 3)]);
}

#[test]
fn work_goes_only_to_nodes_it_fits() {
    let mut r = Rig::fifo();
    r.node(1, cap(16, true, 1)); // too small
    r.node(2, cap(22, false, 1)); // no recursion
    r.submit(1, JobSpec::new(18)); // join tree: Prove also lifts, needs recursion
    let a = r.segment(1, 0);
    assert!(assigns(&a).is_empty(), "{a:?}");
    // A fitting node joins: it gets the queued task at once.
    let a = r.node(3, cap(18, true, 1));
    assert_eq!(assigns(&a), vec![(task(1, 0), NodeId(3))]);
    // Composite segments do not need recursion.
    r.submit(2, composite(20));
    let a = r.segment(2, 0);
    assert_eq!(assigns(&a), vec![(task(2, 0), NodeId(2))]);
}

#[test]
fn joins_need_recursion() {
    let mut r = Rig::fifo();
    r.node(1, cap(20, true, 2));
    r.node(2, cap(24, false, 4));
    r.submit(1, JobSpec::new(18));
    r.segment(1, 0);
    r.segment(1, 1);
    r.finish_exec(1, 2);
    r.verify(1, task(1, 0));
    r.input(Input::NodeJoined {
        node: NodeId(1),
        capacity: cap(20, true, 0),
    }); // busy elsewhere: no slot
    let a = r.verify(1, task(1, 1));
    assert!(
        assigns(&a).is_empty(),
        "the big node has no recursion: {a:?}"
    );
    let a = r.node(1, cap(20, true, 1));
    assert_eq!(assigns(&a), vec![(join(1, 0), NodeId(1))]);
}

#[test]
fn slots_and_per_node_cap_are_respected_and_freed_slots_are_reused() {
    let cfg = SchedulerConfig {
        per_node_in_flight_cap: 2,
        ..quiet_config()
    };
    let mut r = Rig::new(cfg, "fifo");
    r.node(1, cap(20, false, 8));
    r.submit(1, composite(18));
    for s in 0..4 {
        r.segment(1, s);
    }
    assert_eq!(assigns(&r.log).len(), 2);
    let a = r.verify(1, task(1, 0));
    assert_eq!(assigns(&a), vec![(task(1, 2), NodeId(1))]);
}

#[test]
fn job_in_flight_cap_applies_backpressure() {
    let mut r = Rig::fifo();
    for n in 1..=10 {
        r.node(n, cap(20, false, 1));
    }
    r.submit(
        1,
        JobSpec {
            max_in_flight: 2,
            ..composite(18)
        },
    );
    for s in 0..5 {
        r.segment(1, s);
    }
    assert_eq!(assigns(&r.log).len(), 2);
    assert_eq!(r.s.backlog(JobId(1)), Some(3));
    let a = r.verify(1, task(1, 0));
    assert_eq!(assigns(&a).len(), 1);
    assert_eq!(
        r.s.job_status(JobId(1))
            .unwrap()
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Throttled)
            .count(),
        2
    );
}

#[test]
fn redundancy_gives_distinct_nodes_first_verified_wins_and_late_duplicates_are_ignored() {
    let mut r = Rig::fifo();
    for n in 1..=3 {
        r.node(n, cap(20, false, 2));
    }
    r.submit(
        1,
        JobSpec {
            redundancy: 3,
            ..composite(18)
        },
    );
    let a = r.segment(1, 0);
    let mut nodes: Vec<_> = assigns(&a).into_iter().map(|(_, n)| n).collect();
    nodes.sort();
    assert_eq!(nodes, vec![NodeId(1), NodeId(2), NodeId(3)]);
    r.finish_exec(1, 1);
    let a = r.verify(2, task(1, 0));
    assert_eq!(rewards(&a), vec![(task(1, 0), NodeId(2), 100)]);
    let mut c = cancels(&a);
    c.sort();
    assert_eq!(c, vec![(task(1, 0), NodeId(1)), (task(1, 0), NodeId(3))]);
    assert_eq!(finished(&a).len(), 1);
    // A losing copy that finished anyway: not accepted, not paid, no second completion.
    let a = r.verify(1, task(1, 0));
    assert!(a.is_empty(), "{a:?}");
    let a = r.verify(2, task(1, 0));
    assert!(a.is_empty(), "{a:?}");
    assert_eq!(r.s.ledger().totals().rewards_paid, 1);
    assert!(r.s.ledger().totals().redundant_ms == 0, "no time passed");
}

#[test]
fn redundancy_cost_is_counted() {
    let mut r = Rig::fifo();
    r.node(1, cap(20, false, 1));
    r.node(2, cap(20, false, 1));
    r.submit(
        1,
        JobSpec {
            redundancy: 2,
            ..composite(18)
        },
    );
    r.segment(1, 0);
    r.now = 500;
    r.verify(1, task(1, 0));
    let t = r.s.ledger().totals();
    assert_eq!((t.useful_ms, t.redundant_ms), (500, 500));
    assert!((t.compute_overhead() - 2.0).abs() < 1e-9);
}

#[test]
fn deadline_miss_penalizes_cancels_and_reassigns_elsewhere() {
    let mut r = Rig::fifo();
    r.node(1, cap(20, false, 1));
    r.node(2, cap(20, false, 1));
    r.submit(1, composite(18));
    r.segment(1, 0);
    let (deadline, attempt) = match &r.log[0] {
        Action::Assign {
            deadline,
            attempt,
            node,
            ..
        } => {
            assert_eq!(*node, NodeId(1));
            (*deadline, *attempt)
        }
        a => panic!("{a:?}"),
    };
    // 60 s slack + 10,000 cycles at 10 kHz.
    assert_eq!((deadline, attempt), (61_000, 1));
    assert_eq!(r.s.next_deadline(), Some(61_000));
    assert!(r.tick_at(60_999).is_empty());
    let a = r.tick_at(61_000);
    assert_eq!(
        penalties(&a),
        vec![(task(1, 0), NodeId(1), PenaltyCause::Silence)]
    );
    assert_eq!(cancels(&a), vec![(task(1, 0), NodeId(1))]);
    assert_eq!(assigns(&a), vec![(task(1, 0), NodeId(2))]);
    assert!(a.iter().any(|x| matches!(
        x,
        Action::Assign {
            attempt: 2,
            deadline: 122_000,
            ..
        }
    )));
    let st = r.s.job_status(JobId(1)).unwrap();
    assert_eq!(st.tasks[0].failures, 1);
    assert_eq!(st.tasks[0].excluded, vec![NodeId(1)]);
    assert!(st.needed_fallback);
}

#[test]
fn a_task_whose_last_other_candidate_is_quarantined_goes_back_to_the_node_that_failed_it() {
    let mut r = Rig::fifo();
    r.node(1, cap(20, false, 1)); // will lie
    r.node(2, cap(20, false, 1)); // honest, but its first fetch fails
    r.submit(1, composite(14));
    assert_eq!(assigns(&r.segment(1, 0)), vec![(task(1, 0), NodeId(1))]);
    assert_eq!(assigns(&r.segment(1, 1)), vec![(task(1, 1), NodeId(2))]);
    r.finish_exec(1, 2);
    // Node 2 gives up task 1 while node 1, its only other candidate, is still live: no second chance yet.
    let a = r.fail(2, task(1, 1));
    assert!(assigns(&a).is_empty(), "{a:?}");
    // Node 1 is caught lying and quarantined: node 2 is now the only node, so both tasks go to it.
    let a = r.reject(1, task(1, 0), RejectReason::InvalidProof);
    let first = assigns(&a);
    assert_eq!(first.len(), 1, "{a:?}");
    assert_eq!(first[0].1, NodeId(2));
    let a = r.verify(2, first[0].0);
    let second = assigns(&a);
    assert_eq!(second.len(), 1, "{a:?}");
    assert_eq!(second[0].1, NodeId(2));
    let a = r.verify(2, second[0].0);
    assert_eq!(
        finished(&a),
        vec![(JobId(1), JobOutcome::Completed { root: None })]
    );
}

fn assigned_deadline(actions: &[Action], to: u64) -> Option<Time> {
    actions.iter().find_map(|a| match a {
        Action::Assign { node, deadline, .. } if *node == NodeId(to) => Some(*deadline),
        _ => None,
    })
}

#[test]
fn a_slow_node_that_missed_its_deadline_gets_one_it_can_meet_on_the_retry() {
    let learning = SchedulerConfig {
        learn_speed: true,
        ..quiet_config()
    };
    let mut r = Rig::new(learning, "fifo");
    // Claims 10 kHz; really 2 kHz. The only node: retries go back to it.
    r.node(1, cap(20, false, 1));
    r.submit(1, composite(18));
    let a = r.segment(1, 0);
    assert_eq!(assigned_deadline(&a, 1), Some(61_000));
    // Its first result takes 5 s: its deadlines now follow 2 kHz (60 s slack + 5 s).
    r.now = 5_000;
    let a = r.segment(1, 1);
    assert!(assigns(&a).is_empty());
    let a = r.verify(1, task(1, 0));
    assert_eq!(assigned_deadline(&a, 1), Some(5_000 + 60_000 + 5_000));
    // This one it cannot finish in time (the machine got busy): the retry allows what it has shown it needs,
    // not the same 65 s again (the cap: a quarter of its delivered speed, so 20 s on top of the slack).
    let a = r.tick_at(70_000);
    assert_eq!(
        penalties(&a),
        vec![(task(1, 1), NodeId(1), PenaltyCause::Silence)]
    );
    assert_eq!(assigned_deadline(&a, 1), Some(70_000 + 60_000 + 20_000));
    r.now = 140_000;
    let a = r.verify(1, task(1, 1));
    let paid: Vec<_> = rewards(&a).into_iter().map(|(t, n, _)| (t, n)).collect();
    assert_eq!(paid, vec![(task(1, 1), NodeId(1))]);

    // A node that never delivered earns nothing by missing deadlines: a silent node that keeps
    // heartbeating would otherwise hold every retry twice as long as the last.
    let learning = SchedulerConfig {
        learn_speed: true,
        ..quiet_config()
    };
    let mut r = Rig::new(learning, "fifo");
    r.node(1, cap(20, false, 1));
    r.submit(1, composite(18));
    r.segment(1, 0);
    let a = r.tick_at(61_000);
    assert_eq!(assigned_deadline(&a, 1), Some(61_000 + 61_000));
    let a = r.tick_at(122_000);
    assert_eq!(assigned_deadline(&a, 1), Some(122_000 + 61_000));
}

/// Node 1 claims 80 kHz but takes 100 s per segment; node 2 claims 10 kHz and delivers in 1 s; node 3 is idle
/// at 10 kHz. Returns who gets the first join.
fn join_after_measuring(learn_speed: bool) -> NodeId {
    let cfg = SchedulerConfig {
        learn_speed,
        ..quiet_config()
    };
    let mut r = Rig::new(cfg, "fifo");
    r.node(1, speed(20, 80_000.0));
    r.node(2, speed(20, 10_000.0));
    r.submit(1, JobSpec::new(18));
    assert_eq!(assigns(&r.segment(1, 0)), vec![(task(1, 0), NodeId(1))]);
    assert_eq!(assigns(&r.segment(1, 1)), vec![(task(1, 1), NodeId(2))]);
    r.node(3, speed(20, 10_000.0));
    r.now = 1_000;
    r.verify(2, task(1, 1));
    r.now = 100_000;
    let a = r.verify(1, task(1, 0));
    let j = assigns(&a);
    assert_eq!(j.len(), 1, "{a:?}");
    assert_eq!(j[0].0, join(1, 0));
    j[0].1
}

#[test]
fn joins_go_to_the_node_that_proved_fast_not_the_one_that_claimed_it() {
    assert_eq!(join_after_measuring(true), NodeId(2));
    assert_eq!(join_after_measuring(false), NodeId(1));
}

#[test]
fn late_result_of_a_timed_out_copy_is_still_accepted_if_nobody_won() {
    let mut r = Rig::fifo();
    r.node(1, cap(20, false, 1));
    r.node(2, cap(20, false, 1));
    r.submit(1, composite(18));
    r.segment(1, 0);
    r.finish_exec(1, 1);
    r.tick_at(61_000);
    let a = r.verify(1, task(1, 0));
    assert_eq!(rewards(&a).len(), 1);
    assert_eq!(cancels(&a), vec![(task(1, 0), NodeId(2))]);
    assert_eq!(
        finished(&a),
        vec![(JobId(1), JobOutcome::Completed { root: None })]
    );
}

#[test]
fn bounded_attempts_then_the_job_fails_with_a_reason() {
    let mut r = Rig::fifo();
    for n in 1..=5 {
        r.node(n, cap(20, false, 1));
    }
    r.submit(
        1,
        JobSpec {
            max_attempts: 2,
            ..composite(18)
        },
    );
    r.segment(1, 0);
    r.segment(1, 1);
    r.fail(1, task(1, 0));
    let a = r.reject(3, task(1, 0), RejectReason::InvalidProof);
    let f = finished(&a);
    assert_eq!(f.len(), 1);
    match &f[0].1 {
        JobOutcome::Failed { reason } => assert!(reason.contains("failed 2 attempts"), "{reason}"),
        o => panic!("{o:?}"),
    }
    // The other task in flight is cancelled.
    assert_eq!(cancels(&a), vec![(task(1, 1), NodeId(2))]);
    // Everything after is ignored.
    assert!(r.verify(2, task(1, 1)).is_empty());
    assert!(r.segment(1, 2).is_empty());
}

#[test]
fn rejected_result_penalizes_by_cause_excludes_and_reassigns() {
    let mut r = Rig::fifo();
    r.node(1, cap(20, false, 1));
    r.s.ledger_mut().deposit(NodeId(1), 5_000);
    r.submit(1, composite(18));
    r.segment(1, 0);
    let a = r.reject(1, task(1, 0), RejectReason::NotProversOwn);
    assert_eq!(
        penalties(&a),
        vec![(
            task(1, 0),
            NodeId(1),
            PenaltyCause::Invalid(RejectReason::NotProversOwn)
        )]
    );
    assert!(
        assigns(&a).is_empty(),
        "node 1 is excluded from this task: {a:?}"
    );
    assert_eq!(r.s.ledger().stake(NodeId(1)), 4_000);
    assert_eq!(r.s.ledger().totals().penalties.not_provers_own.count, 1);
    let a = r.node(2, cap(20, false, 1));
    assert_eq!(assigns(&a), vec![(task(1, 0), NodeId(2))]);
    // Half the slash waits in escrow for the node that finishes the work.
    let a = r.verify(2, task(1, 0));
    assert_eq!(rewards(&a), vec![(task(1, 0), NodeId(2), 600)]);
    r.s.ledger().check_conservation().unwrap();
}

#[test]
fn declined_task_is_reassigned_without_penalty() {
    let mut r = Rig::fifo();
    r.node(1, cap(20, false, 1));
    r.node(2, cap(20, false, 1));
    r.submit(1, composite(18));
    r.segment(1, 0);
    let a = r.fail(1, task(1, 0));
    assert!(penalties(&a).is_empty());
    assert_eq!(assigns(&a), vec![(task(1, 0), NodeId(2))]);
    // A failure report for a copy the node does not hold is ignored.
    assert!(r.fail(1, task(1, 0)).is_empty());
}

#[test]
fn node_leaving_gets_its_tasks_reassigned_without_penalty() {
    let mut r = Rig::fifo();
    r.node(1, cap(20, false, 2));
    r.node(2, cap(20, false, 2));
    r.submit(1, composite(18));
    r.segment(1, 0);
    r.segment(1, 1);
    r.segment(1, 2);
    let a = r.input(Input::NodeLeft { node: NodeId(1) });
    assert!(penalties(&a).is_empty());
    let mut got = assigns(&a);
    got.sort();
    // Node 1 held segments 0 and 2; node 2 has one free slot left.
    assert_eq!(got, vec![(task(1, 0), NodeId(2))]);
    let a = r.node(3, cap(20, false, 1));
    assert_eq!(assigns(&a), vec![(task(1, 2), NodeId(3))]);
}

#[test]
fn silent_node_is_dropped_penalized_and_its_work_reassigned() {
    let cfg = SchedulerConfig {
        heartbeat_timeout_ms: Some(30_000),
        ..quiet_config()
    };
    let mut r = Rig::new(cfg, "fifo");
    r.node(1, cap(20, false, 1));
    r.node(2, cap(20, false, 1));
    r.submit(1, composite(18));
    r.segment(1, 0);
    r.segment(1, 1);
    assert_eq!(r.s.next_deadline(), Some(30_000));
    r.now = 20_000;
    r.input(Input::Heartbeat { node: NodeId(2) });
    let a = r.tick_at(30_000);
    assert_eq!(
        penalties(&a),
        vec![(task(1, 0), NodeId(1), PenaltyCause::Silence)]
    );
    assert_eq!(cancels(&a), vec![(task(1, 0), NodeId(1))]);
    assert!(assigns(&a).is_empty(), "node 2 is busy");
    assert!(r.s.node_capacity(NodeId(1)).is_none());
    assert_eq!(
        r.s.next_deadline(),
        Some(50_000),
        "node 2's liveness check moved with its heartbeat"
    );
    let a = r.verify(2, task(1, 1));
    assert_eq!(assigns(&a), vec![(task(1, 0), NodeId(2))]);
}

#[test]
fn a_burst_of_silences_is_excused_once_and_the_still_silent_leave_without_penalty() {
    // Issue 30: on an overloaded machine the client heard from 15 honest provers late at the same instant
    // and penalized them all. Three or more nodes with work going silent together is excused once.
    let cfg = SchedulerConfig {
        heartbeat_timeout_ms: Some(30_000),
        ..quiet_config()
    };
    let mut r = Rig::new(cfg, "fifo");
    for n in 1..=4 {
        r.node(n, cap(20, false, 1));
    }
    r.submit(1, composite(18));
    for seg in 0..4 {
        r.segment(1, seg);
    }
    r.now = 20_000;
    r.input(Input::Heartbeat { node: NodeId(4) });
    // Nodes 1-3, last heard from at 0, time out together at 30 s.
    let a = r.tick_at(30_000);
    assert!(penalties(&a).is_empty(), "{a:?}");
    assert!(cancels(&a).is_empty(), "{a:?}");
    assert!(assigns(&a).is_empty(), "{a:?}");
    for n in 1..=3 {
        assert!(r.s.node_capacity(NodeId(n)).is_some(), "node {n} kept");
    }
    assert_eq!(r.s.stats().silences_excused, 3);
    // Node 1 is heard from again and delivers; nodes 2 and 3 stay silent through their excuse.
    r.now = 40_000;
    r.input(Input::Heartbeat { node: NodeId(1) });
    r.input(Input::Heartbeat { node: NodeId(4) });
    let a = r.tick_at(60_000);
    assert!(
        penalties(&a).is_empty(),
        "no penalty after an excuse: {a:?}"
    );
    assert!(r.s.node_capacity(NodeId(2)).is_none());
    assert!(r.s.node_capacity(NodeId(3)).is_none());
    assert!(r.s.node_capacity(NodeId(1)).is_some());
    assert_eq!(r.s.stats().excused_gone, 2);
    // Their tasks went back to the queue: node 1 takes one when it is free.
    let a = r.verify(1, task(1, 0));
    assert_eq!(assigns(&a).len(), 1, "{a:?}");
    // Node 1 was heard from after its excuse (its result, at 60 s): its next silence, with node 4's only, is
    // no burst and is judged as usual.
    r.input(Input::Heartbeat { node: NodeId(4) });
    let a = r.tick_at(90_000);
    let silent: Vec<NodeId> = penalties(&a).iter().map(|p| p.1).collect();
    assert!(silent.contains(&NodeId(1)), "{a:?}");
    assert_eq!(r.s.stats().silences_excused, 3);
}

#[test]
fn two_silences_together_are_no_burst_and_are_penalized() {
    let cfg = SchedulerConfig {
        heartbeat_timeout_ms: Some(30_000),
        ..quiet_config()
    };
    let mut r = Rig::new(cfg, "fifo");
    for n in 1..=3 {
        r.node(n, cap(20, false, 1));
    }
    r.submit(1, composite(18));
    for seg in 0..3 {
        r.segment(1, seg);
    }
    r.now = 20_000;
    r.input(Input::Heartbeat { node: NodeId(3) });
    let a = r.tick_at(30_000);
    let mut p = penalties(&a);
    p.sort_by_key(|(t, n, _)| (*t, *n));
    assert_eq!(
        p,
        vec![
            (task(1, 0), NodeId(1), PenaltyCause::Silence),
            (task(1, 1), NodeId(2), PenaltyCause::Silence)
        ]
    );
    assert_eq!(r.s.stats().silences_excused, 0);
}

#[test]
fn cancel_stops_every_copy_and_later_inputs_are_ignored() {
    let mut r = Rig::fifo();
    r.node(1, cap(20, false, 1));
    r.node(2, cap(20, false, 1));
    r.submit(1, composite(18));
    r.segment(1, 0);
    r.segment(1, 1);
    r.segment(1, 2);
    let a = r.input(Input::CancelJob { job: JobId(1) });
    let mut c = cancels(&a);
    c.sort();
    assert_eq!(c, vec![(task(1, 0), NodeId(1)), (task(1, 1), NodeId(2))]);
    assert_eq!(finished(&a), vec![(JobId(1), JobOutcome::Cancelled)]);
    assert!(r.verify(1, task(1, 0)).is_empty());
    assert!(r.segment(1, 3).is_empty());
    assert!(r.input(Input::CancelJob { job: JobId(1) }).is_empty());
    assert!(r.node(3, cap(20, false, 1)).is_empty());
    assert_eq!(r.s.next_deadline(), None);
    assert_eq!(r.s.ledger().totals().rewards_paid, 0);
    // The freed nodes take other work.
    r.submit(2, composite(18));
    assert_eq!(assigns(&r.segment(2, 0)).len(), 1);
}

#[test]
fn unknown_jobs_nodes_and_tasks_are_ignored() {
    let mut r = Rig::fifo();
    r.node(1, cap(20, false, 1));
    assert!(r.segment(9, 0).is_empty());
    assert!(r.finish_exec(9, 3).is_empty());
    assert!(r.verify(1, task(9, 0)).is_empty());
    assert!(r.verify(7, task(9, 0)).is_empty());
    assert!(r.reject(7, task(9, 0), RejectReason::Malformed).is_empty());
    assert!(r.fail(7, task(9, 0)).is_empty());
    assert!(r.input(Input::NodeLeft { node: NodeId(42) }).is_empty());
    assert!(r.input(Input::Heartbeat { node: NodeId(42) }).is_empty());
    assert!(r.input(Input::CancelJob { job: JobId(9) }).is_empty());
    r.submit(1, composite(18));
    r.segment(1, 0);
    // A node that was never given the task cannot answer it, nor be judged on it.
    assert!(r.verify(5, task(1, 0)).is_empty());
    assert!(r.reject(5, task(1, 0), RejectReason::WrongClaim).is_empty());
    assert!(r.verify(1, task(1, 77)).is_empty());
    assert!(r.input(Input::Tick).is_empty());
}

#[test]
fn inconsistent_or_invalid_jobs_fail_with_a_reason() {
    let mut r = Rig::fifo();
    let a = r.submit(
        1,
        JobSpec {
            redundancy: 0,
            ..composite(18)
        },
    );
    assert!(
        matches!(&finished(&a)[0].1, JobOutcome::Failed { reason } if reason.contains("redundancy"))
    );
    r.submit(2, composite(18));
    r.segment(2, 5);
    let a = r.finish_exec(2, 3);
    assert!(
        matches!(&finished(&a)[0].1, JobOutcome::Failed { reason } if reason.contains("segment 5"))
    );
    r.submit(3, composite(18));
    let a = r.finish_exec(3, 0);
    assert!(
        matches!(&finished(&a)[0].1, JobOutcome::Failed { reason } if reason.contains("no segments"))
    );
    r.submit(4, composite(18));
    let a = r.input(Input::ExecutionFailed {
        job: JobId(4),
        reason: "guest panicked".into(),
    });
    assert!(
        matches!(&finished(&a)[0].1, JobOutcome::Failed { reason } if reason.contains("guest panicked"))
    );
}

#[test]
fn a_task_no_node_can_ever_take_fails_the_job_after_the_stall_timeout() {
    let cfg = SchedulerConfig {
        stall_timeout_ms: Some(10_000),
        ..quiet_config()
    };
    let mut r = Rig::new(cfg, "fifo");
    r.node(1, cap(16, true, 1));
    r.submit(1, JobSpec::new(20));
    r.segment(1, 0);
    assert_eq!(r.s.next_deadline(), Some(10_000));
    let a = r.tick_at(10_000);
    match &finished(&a)[..] {
        [(_, JobOutcome::Failed { reason })] => {
            assert!(reason.contains("needs po2 >= 20"), "{reason}")
        }
        f => panic!("{f:?}"),
    }
}

#[test]
fn a_task_waiting_only_because_nodes_are_busy_does_not_stall_the_job() {
    let cfg = SchedulerConfig {
        stall_timeout_ms: Some(10_000),
        ..quiet_config()
    };
    let mut r = Rig::new(cfg, "fifo");
    r.node(1, cap(20, false, 1));
    r.submit(
        1,
        JobSpec {
            task_timeout_ms: 1_000_000,
            ..composite(18)
        },
    );
    r.segment(1, 0);
    r.segment(1, 1);
    let a = r.tick_at(10_000);
    assert!(finished(&a).is_empty());
    // Rechecks back off exponentially.
    assert_eq!(r.s.next_deadline(), Some(30_000));
}

#[test]
fn straggler_gets_one_backup_and_first_verified_wins() {
    let cfg = SchedulerConfig {
        speculative: SpeculativeConfig {
            enabled: true,
            tail_tasks: 0,
            slow_factor: Some(2.0),
            max_backups_per_task: 1,
            ..SpeculativeConfig::default()
        },
        ..quiet_config()
    };
    let mut r = Rig::new(cfg, "fifo");
    r.node(1, cap(20, false, 1));
    r.submit(1, composite(18));
    r.segment(1, 0);
    r.finish_exec(1, 1);
    // Expected 1,000 ms: at 2,000 ms it is a straggler, but no node is free.
    assert_eq!(r.s.next_deadline(), Some(2_000));
    assert!(assigns(&r.tick_at(2_000)).is_empty());
    // A node frees up: the backup goes there.
    let a = r.node(2, cap(20, false, 1));
    assert_eq!(assigns(&a), vec![(task(1, 0), NodeId(2))]);
    assert!(matches!(a[0], Action::Assign { attempt: 2, .. }));
    let st = r.s.job_status(JobId(1)).unwrap();
    assert_eq!(st.backups, 1);
    assert!(st.tasks[0].assignees.iter().any(|c| c.backup));
    // No second backup.
    assert!(assigns(&r.node(3, cap(20, false, 1))).is_empty());
    let a = r.verify(2, task(1, 0));
    assert_eq!(cancels(&a), vec![(task(1, 0), NodeId(1))]);
    assert_eq!(finished(&a).len(), 1);
}

#[test]
fn tail_of_a_job_gets_backups_on_idle_nodes() {
    let cfg = SchedulerConfig {
        speculative: SpeculativeConfig {
            enabled: true,
            tail_tasks: 2,
            slow_factor: None,
            max_backups_per_task: 1,
            ..SpeculativeConfig::default()
        },
        ..quiet_config()
    };
    let mut r = Rig::new(cfg, "fifo");
    for n in 1..=6 {
        r.node(n, cap(20, false, 1));
    }
    r.submit(1, composite(18));
    for s in 0..4 {
        r.segment(1, s);
    }
    let a = r.finish_exec(1, 4);
    assert!(assigns(&a).is_empty(), "4 tasks remain > tail of 2");
    r.verify(1, task(1, 0));
    let a = r.verify(2, task(1, 1));
    // 2 remain, both running: each gets a backup on the idle nodes.
    let mut b = assigns(&a);
    b.sort();
    assert_eq!(b.len(), 2);
    assert_eq!(
        b.iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![task(1, 2), task(1, 3)]
    );
    assert!(b.iter().all(|(_, n)| n.0 != 3 && n.0 != 4));
}

/// Issue 29, item 2 (receipt tricklers): a copy whose proof is done but whose receipt arrives slowly looks
/// punctual to every timer (its node is fast, its deadline far), so nothing raced it and the job waited on the
/// transfer. The driver's `ResultSlow` backs the task up at once, even where a backup would not be expected
/// to finish first and past the usual count, and the first verified result wins.
#[test]
fn item2_a_result_arriving_slowly_is_backed_up_at_once() {
    let cfg = SchedulerConfig {
        speculative: SpeculativeConfig {
            enabled: true,
            tail_tasks: 0,
            slow_factor: Some(2.0),
            max_backups_per_task: 0,
            ..SpeculativeConfig::default()
        },
        ..quiet_config()
    };
    let mut r = Rig::new(cfg, "fifo");
    r.node(1, cap(20, false, 1));
    r.submit(1, composite(18));
    r.segment(1, 0);
    r.finish_exec(1, 1);
    let a = r.node(2, cap(20, false, 1));
    assert!(
        assigns(&a).is_empty(),
        "no backup before the result is slow"
    );
    r.now = 300;
    let a = r.input(Input::ResultSlow {
        node: NodeId(1),
        task: task(1, 0),
    });
    assert_eq!(assigns(&a), vec![(task(1, 0), NodeId(2))]);
    let a = r.verify(2, task(1, 0));
    assert_eq!(cancels(&a), vec![(task(1, 0), NodeId(1))]);
    assert_eq!(finished(&a).len(), 1);
}

/// Gives `node` a slow-result record an earlier run kept: two strikes, one bench, `bench_left_ms` of it left.
fn remember_bench(r: &mut Rig, node: u64, bench_left_ms: Time) {
    r.s.remember_slow(
        0,
        NodeId(node),
        SlowStanding {
            strikes: 2,
            benches: 1,
            bench_left_ms,
        },
    );
}

/// Speeds learned, finish-time placement, and one backup per task only when a result arrives slowly: what the
/// slow-result tests need.
fn slow_result_config() -> SchedulerConfig {
    SchedulerConfig {
        learn_speed: true,
        finish_time_placement: true,
        speculative: SpeculativeConfig {
            enabled: true,
            tail_tasks: 0,
            slow_factor: None,
            idle_backups: false,
            max_backups_per_task: 1,
            ..SpeculativeConfig::default()
        },
        ..quiet_config()
    }
}

/// The soak's gateway met the receipt trickler in 207 of its 475 sessions: its copies always lost to the
/// backups a slow result starts, so the scheduler never saw it deliver late and kept its claimed speed, and
/// kept handing it tasks. A slow result now teaches the scheduler that the node delivers no faster than the
/// task's cycles over the time it has held the task, so a faster free node is preferred.
#[test]
fn a_node_whose_result_arrived_slowly_is_passed_over_where_a_faster_one_is_free() {
    let mut r = Rig::new(slow_result_config(), "fifo");
    r.node(1, cap(20, false, 1));
    r.node(2, cap(20, false, 1));
    r.submit(1, composite(18));
    assert_eq!(assigns(&r.segment(1, 0)), vec![(task(1, 0), NodeId(1))]);
    assert_eq!(assigns(&r.segment(1, 1)), vec![(task(1, 1), NodeId(2))]);
    r.now = 900;
    r.verify(2, task(1, 1));
    // Node 1's receipt is still arriving 8 s after it took a 1 s task: backed up on node 2, which answers.
    r.now = 8_000;
    let a = r.input(Input::ResultSlow {
        node: NodeId(1),
        task: task(1, 0),
    });
    assert_eq!(assigns(&a), vec![(task(1, 0), NodeId(2))]);
    r.now = 8_900;
    let a = r.verify(2, task(1, 0));
    assert_eq!(cancels(&a), vec![(task(1, 0), NodeId(1))]);
    // Both free; the next two segments go to node 2, the second when it is free again, none to node 1.
    let mut given = assigns(&r.segment(1, 2));
    given.extend(assigns(&r.segment(1, 3)));
    assert!(
        given.iter().all(|(_, n)| *n == NodeId(2)),
        "the node that trickled got work while a faster one was free: {given:?}"
    );
}

/// A gateway's coordinator cannot see the work its honest provers do for other clients: while they are busy,
/// a receipt trickler is the free node that looks fastest, so the 30-minute soak's gateway still handed it
/// tasks in 92 of 304 sessions (each then waited for the backup; sessions took 1.93x their quiet time). Here
/// one honest node, loaded by other clients' work, takes 2 s to deliver each task and declines offers every
/// other 5 s; segments come faster than it can take them; node 1 reports every result at once and trickles it
/// out (`ResultSlow` 2.5 s after it took the task, so the speed it seems to deliver at is close to node 2's).
/// After its second slow result node 1 gets nothing for a minute (no penalty), then one task to try it again,
/// then nothing for two minutes. Without the bench it got a task each time it looked fastest (at 125 s here).
#[test]
fn a_node_whose_receipts_keep_arriving_slowly_is_benched_while_the_others_are_busy() {
    let mut r = Rig::new(slow_result_config(), "fifo");
    r.node(1, cap(20, false, 1));
    r.node(2, cap(20, false, 1));
    // (due, node, task, slow): node 2 verifies 2 s after it is given a task, node 1 is slow 2.5 s after.
    let mut due: Vec<(Time, u64, TaskId, bool)> = Vec::new();
    let mut given_to_1: Vec<Time> = Vec::new();
    let mut done = 0;
    let mut next = [0u32; 2];
    for job in [1u64, 2] {
        r.submit(job, composite(18));
    }
    let mut t: Time = 0;
    while t <= 300_000 {
        r.now = t;
        let mut out = Vec::new();
        // Job 1: a segment every 3 s for 60 s (node 2, declining half the time, proves one in 4 s on
        // average); job 2: the same from 125 s.
        for (i, (job, from)) in [(1u64, 0u64), (2, 125_000)].into_iter().enumerate() {
            if t >= from && t < from + 60_000 && (t - from).is_multiple_of(3_000) {
                out.extend(r.segment(job, next[i]));
                next[i] += 1;
            } else if t == from + 60_000 {
                out.extend(r.finish_exec(job, next[i]));
            }
        }
        let now_due: Vec<_> = due.iter().copied().filter(|d| d.0 == t).collect();
        due.retain(|d| d.0 != t);
        for (_, node, task, slow) in now_due {
            out.extend(if slow {
                r.input(Input::ResultSlow {
                    node: NodeId(node),
                    task,
                })
            } else {
                r.verify(node, task)
            });
        }
        out.extend(r.tick_at(t));
        // Offers made while node 2 is busy with another client's work (every other 5 s) are declined.
        let mut offers = assigns(&out);
        while let Some((task, node)) = offers.pop() {
            if node == NodeId(1) {
                given_to_1.push(t);
                due.push((t + 2_500, 1, task, true));
            } else if (t / 5_000) % 2 == 1 {
                let a = r.input(Input::TaskDeclined {
                    node,
                    task,
                    reason: "busy".into(),
                });
                offers.extend(assigns(&a));
                done += finished(&a).len();
            } else {
                due.push((t + 2_000, 2, task, false));
            }
        }
        for (task, node) in cancels(&out) {
            due.retain(|d| !(d.2 == task && NodeId(d.1) == node));
        }
        done += finished(&out).len();
        t += 100;
    }
    assert_eq!(done, 2, "both jobs finish");
    // Two slow results, then none for a minute, one try, none for two minutes, one try.
    assert_eq!(
        given_to_1.len(),
        4,
        "node 1 was given tasks at {given_to_1:?} (ms)"
    );
    assert!(
        given_to_1[2] >= given_to_1[1] + 2_500 + 60_000
            && given_to_1[3] >= given_to_1[2] + 2_500 + 120_000,
        "node 1 was given tasks at {given_to_1:?} (ms)"
    );
    assert_eq!(r.s.stats().benched, 3);
}

/// The one-hour soak's command-line jobs took 1.72x their quiet time: each job is a new client process, and the
/// bench of stop 36 lived in the process, so 102 of 189 jobs met the receipt trickler afresh. A driver now keeps
/// each node's slow record ([`Scheduler::slow_standing`]) and gives it to the next run
/// ([`Scheduler::remember_slow`]): the node stays out for what is left of its bench, and its strikes carry
/// over, so one more slow result benches it again at once, for twice as long.
#[test]
fn a_bench_remembered_from_an_earlier_run_keeps_the_node_out_until_it_ends_and_its_record_carries_over(
) {
    let mut r = Rig::new(slow_result_config(), "fifo");
    remember_bench(&mut r, 1, 20_000);
    r.node(1, cap(20, false, 1));
    r.node(2, cap(20, false, 1));
    r.submit(1, composite(18));
    assert_eq!(assigns(&r.segment(1, 0)), vec![(task(1, 0), NodeId(2))]);
    // Node 2 is busy and node 1 is benched: segment 1 waits.
    assert!(assigns(&r.segment(1, 1)).is_empty());
    r.now = 15_000;
    assert!(assigns(&r.tick_at(15_000)).is_empty());
    let left = r.s.slow_standing(15_000, NodeId(1)).expect("a record");
    assert_eq!(
        (left.strikes, left.benches, left.bench_left_ms),
        (2, 1, 5_000)
    );
    // The bench ends at 20 s: node 1 is tried again.
    r.now = 20_000;
    assert_eq!(assigns(&r.tick_at(20_000)), vec![(task(1, 1), NodeId(1))]);
    // One more slow result and it is benched at once, for two minutes (its second bench).
    r.now = 25_000;
    r.input(Input::ResultSlow {
        node: NodeId(1),
        task: task(1, 1),
    });
    assert_eq!(r.s.stats().benched, 1);
    let s = r.s.slow_standing(25_000, NodeId(1)).expect("a record");
    assert_eq!((s.strikes, s.benches, s.bench_left_ms), (3, 2, 120_000));
    // A node with no slow record has none to keep.
    assert!(r.s.slow_standing(25_000, NodeId(2)).is_none());
}

/// A remembered bench must not leave a client with nothing: the trickler may be the first (or the only) prover
/// a new client hears of. While every live node is benched none is; the bench holds again once another node is
/// live, for what is left of it.
#[test]
fn a_remembered_bench_gives_way_while_the_node_is_the_only_live_one() {
    let mut r = Rig::new(slow_result_config(), "fifo");
    remember_bench(&mut r, 1, 600_000);
    r.node(1, cap(20, false, 2));
    r.submit(1, composite(18));
    assert_eq!(assigns(&r.segment(1, 0)), vec![(task(1, 0), NodeId(1))]);
    r.node(2, cap(20, false, 1));
    assert_eq!(assigns(&r.segment(1, 1)), vec![(task(1, 1), NodeId(2))]);
    // Node 1 has a free slot, but node 2 is live now: segment 2 waits for node 2.
    assert!(assigns(&r.segment(1, 2)).is_empty());
    // Node 2 leaves: node 1 is the only live node again and gets the waiting work.
    let a = r.input(Input::NodeLeft { node: NodeId(2) });
    let given = assigns(&a);
    assert!(
        given.iter().all(|(_, n)| *n == NodeId(1)) && given.len() == 1,
        "{given:?}"
    );
    assert_eq!(
        r.s.slow_standing(r.now, NodeId(1)).map(|s| s.bench_left_ms),
        Some(600_000),
        "the bench itself still runs"
    );
    // A prompt result clears its strikes, not the bench running: the record a driver keeps still has it.
    r.now = 2_000;
    r.verify(1, task(1, 0));
    assert_eq!(
        r.s.slow_standing(2_000, NodeId(1)),
        Some(SlowStanding {
            strikes: 0,
            benches: 0,
            bench_left_ms: 598_000
        })
    );
}

/// Benches given way while every live node was benched hold again as soon as one of them ends: nodes 1 and 2
/// are benched (for 20 s and 600 s), node 3 leaves, so both take work; at 20 s node 1's bench ends, and node
/// 2, still benched, must get nothing while node 1 is there. (The end of a bench once released only its own
/// node, and node 2 took work for the rest of its bench.)
#[test]
fn when_one_bench_ends_the_benches_that_gave_way_hold_again() {
    let mut r = Rig::new(slow_result_config(), "fifo");
    remember_bench(&mut r, 1, 20_000);
    remember_bench(&mut r, 2, 600_000);
    r.node(1, cap(20, false, 2));
    r.node(2, cap(20, false, 2));
    r.node(3, cap(20, false, 1));
    r.submit(1, composite(18));
    assert_eq!(assigns(&r.segment(1, 0)), vec![(task(1, 0), NodeId(3))]);
    // Node 3 leaves: nodes 1 and 2 are all there is, and both take work.
    r.now = 1_000;
    r.input(Input::NodeLeft { node: NodeId(3) });
    r.segment(1, 1);
    r.segment(1, 2);
    let given: Vec<NodeId> = assigns(&r.log).iter().skip(1).map(|(_, n)| *n).collect();
    assert!(
        given.contains(&NodeId(1)) && given.contains(&NodeId(2)),
        "{given:?}"
    );
    // Node 1's bench ends at 20 s: node 2's holds again.
    r.now = 20_000;
    r.tick_at(20_000);
    let before = assigns(&r.log).len();
    r.now = 21_000;
    for i in 3..6 {
        r.segment(1, i);
    }
    let later: Vec<(TaskId, NodeId)> = assigns(&r.log).into_iter().skip(before).collect();
    assert!(
        later.iter().all(|(_, n)| *n == NodeId(1)),
        "node 2 is still benched but got work: {later:?}"
    );
}

/// With backups off, a slow result changes nothing (the user chose no second copies).
#[test]
fn a_slow_result_with_backups_off_launches_nothing() {
    let mut r = Rig::fifo();
    r.node(1, cap(20, false, 1));
    r.submit(1, composite(18));
    r.segment(1, 0);
    r.finish_exec(1, 1);
    r.node(2, cap(20, false, 1));
    let a = r.input(Input::ResultSlow {
        node: NodeId(1),
        task: task(1, 0),
    });
    assert!(assigns(&a).is_empty());
}

#[test]
fn speculation_off_launches_no_backup() {
    let mut r = Rig::fifo();
    for n in 1..=4 {
        r.node(n, cap(20, false, 1));
    }
    r.submit(1, composite(18));
    r.segment(1, 0);
    r.finish_exec(1, 1);
    r.tick_at(5_000);
    assert_eq!(assigns(&r.log).len(), 1);
}

#[test]
fn next_deadline_is_exact_after_results() {
    let mut r = Rig::fifo();
    r.node(1, cap(20, false, 2));
    r.submit(1, composite(18));
    r.segment(1, 0);
    r.now = 100;
    r.segment(1, 1);
    assert_eq!(r.s.next_deadline(), Some(61_000));
    r.verify(1, task(1, 0));
    assert_eq!(r.s.next_deadline(), Some(61_100));
    r.verify(1, task(1, 1));
    assert_eq!(r.s.next_deadline(), None);
}

#[test]
fn jobs_are_served_in_submission_order_and_joins_first_within_a_job() {
    let mut r = Rig::fifo();
    r.submit(1, JobSpec::new(18));
    r.submit(2, JobSpec::new(18));
    r.segment(2, 0);
    r.segment(1, 0);
    r.segment(1, 1);
    let a = r.node(1, cap(20, true, 1));
    assert_eq!(assigns(&a), vec![(task(1, 0), NodeId(1))]);
}

#[test]
fn job_status_is_serializable_and_tells_the_story() {
    let mut r = Rig::fifo();
    r.node(1, cap(20, true, 1));
    r.submit(1, JobSpec::new(18));
    r.segment(1, 0);
    r.segment(1, 1);
    let st = r.s.job_status(JobId(1)).unwrap();
    assert_eq!(st.tasks.len(), 3);
    assert_eq!(st.tasks[0].state, TaskState::Running);
    assert_eq!(st.tasks[1].state, TaskState::Queued);
    assert_eq!(st.tasks[2].state, TaskState::WaitingForInputs);
    assert_eq!(st.tasks[0].assignees[0].node, NodeId(1));
    let json = serde_json::to_string(&st).unwrap();
    let back: JobStatus = serde_json::from_str(&json).unwrap();
    assert_eq!(back, st);
    assert!(r.s.job_status(JobId(5)).is_none());
}

#[test]
fn restored_segments_are_never_assigned_and_the_job_completes_without_them() {
    let mut rig = Rig::fifo();
    rig.node(1, cap(20, false, 4));
    rig.submit(7, composite(14));
    // Segments 0 and 2 were verified before a restart; only 1 and 3 need provers.
    let mut assigned = Vec::new();
    for s in 0..4u32 {
        let actions = if s % 2 == 0 {
            rig.input(Input::SegmentRestored {
                job: JobId(7),
                segment: s,
                cycles: 100,
            })
        } else {
            rig.segment(7, s)
        };
        assigned.extend(assigns(&actions));
    }
    rig.finish_exec(7, 4);
    assert_eq!(
        assigned.iter().map(|(t, _)| t.index).collect::<Vec<_>>(),
        vec![1, 3]
    );
    rig.verify(1, task(7, 1));
    let done = rig.verify(1, task(7, 3));
    assert!(done.iter().any(|a| matches!(
        a,
        Action::JobFinished {
            outcome: JobOutcome::Completed { .. },
            ..
        }
    )));
    // Restored segments earn nobody a reward.
    let rewards = done
        .iter()
        .filter(|a| matches!(a, Action::Reward { .. }))
        .count();
    assert_eq!(rewards, 1);
}

#[test]
fn a_fully_restored_job_completes_at_once() {
    let mut rig = Rig::fifo();
    rig.submit(8, composite(14));
    for s in 0..3u32 {
        rig.input(Input::SegmentRestored {
            job: JobId(8),
            segment: s,
            cycles: 100,
        });
    }
    let done = rig.finish_exec(8, 3);
    assert!(done.iter().any(|a| matches!(
        a,
        Action::JobFinished {
            outcome: JobOutcome::Completed { root: None },
            ..
        }
    )));
}

#[test]
fn a_node_with_a_rejected_result_is_quarantined_and_its_other_work_reassigned() {
    let mut rig = Rig::fifo();
    rig.node(1, cap(20, false, 2)); // the liar, first in pull order
    rig.submit(3, composite(14));
    let a0 = rig.segment(3, 0);
    let a1 = rig.segment(3, 1);
    assert_eq!(assigns(&a0), vec![(task(3, 0), NodeId(1))]);
    assert_eq!(assigns(&a1), vec![(task(3, 1), NodeId(1))]);
    rig.node(2, cap(20, false, 2));
    let after = rig.reject(1, task(3, 0), RejectReason::InvalidProof);
    // Its other copy is cancelled, and both tasks go to the honest node.
    assert!(
        cancels(&after).contains(&(task(3, 1), NodeId(1))),
        "{after:?}"
    );
    let mut moved = assigns(&after);
    moved.sort();
    assert_eq!(
        moved,
        vec![(task(3, 0), NodeId(2)), (task(3, 1), NodeId(2))]
    );
    // Rejoining during the quarantine changes nothing: no work for it.
    rig.node(1, cap(20, false, 2));
    let a2 = rig.segment(3, 2);
    assert!(assigns(&a2).iter().all(|(_, n)| *n != NodeId(1)), "{a2:?}");
}

fn speed(max_po2: u8, cycles_per_sec: f64) -> NodeCapacity {
    NodeCapacity {
        cycles_per_sec,
        ..cap(max_po2, true, 1)
    }
}

/// Weak nodes 1, 2 and 4, a fast node 3 that joined last: after segments 0 and 1 are proved by 1 and 2, pull
/// order is 4, 3, 1, 2. Returns who gets the join.
fn join_goes_to(cfg: SchedulerConfig, fast: f64, node4: f64) -> (Rig, NodeId) {
    let mut r = Rig::new(cfg, "fifo");
    r.node(1, speed(20, 10_000.0));
    r.node(2, speed(20, 10_000.0));
    r.submit(1, JobSpec::new(18));
    assert_eq!(assigns(&r.segment(1, 0)), vec![(task(1, 0), NodeId(1))]);
    assert_eq!(assigns(&r.segment(1, 1)), vec![(task(1, 1), NodeId(2))]);
    r.node(4, speed(20, node4));
    r.node(3, speed(20, fast));
    r.verify(1, task(1, 0));
    let a = r.verify(2, task(1, 1));
    let j = assigns(&a);
    assert_eq!(j.len(), 1, "{a:?}");
    assert_eq!(j[0].0, join(1, 0));
    (r, j[0].1)
}

#[test]
fn joins_go_to_the_fastest_free_node_not_the_longest_waiting() {
    // Default: joins prefer fast nodes.
    let (_, n) = join_goes_to(quiet_config(), 80_000.0, 10_000.0);
    assert_eq!(n, NodeId(3));
    // Without the preference, FIFO hands it to the weak node that waited longest.
    let cfg = SchedulerConfig {
        prefer_fast: PreferFastConfig {
            joins: false,
            ..PreferFastConfig::default()
        },
        ..quiet_config()
    };
    let (_, n) = join_goes_to(cfg, 80_000.0, 10_000.0);
    assert_eq!(n, NodeId(4));
}

#[test]
fn within_the_fast_tier_the_policy_still_decides() {
    // Node 4 is within 1.5x of the fastest (80k / 60k < 1.5): both are candidates and FIFO takes the one that
    // waited longest.
    let (_, n) = join_goes_to(quiet_config(), 80_000.0, 60_000.0);
    assert_eq!(n, NodeId(4));
    // With no tolerance only the fastest is a candidate.
    let cfg = SchedulerConfig {
        prefer_fast: PreferFastConfig {
            within: 1.0,
            ..PreferFastConfig::default()
        },
        ..quiet_config()
    };
    let (_, n) = join_goes_to(cfg, 80_000.0, 60_000.0);
    assert_eq!(n, NodeId(3));
}

#[test]
fn the_fast_tier_skips_nodes_excluded_from_the_task_and_nodes_that_do_not_fit() {
    let mut r = Rig::fifo();
    r.node(1, speed(20, 10_000.0));
    r.node(2, speed(20, 10_000.0));
    r.submit(1, JobSpec::new(18));
    r.segment(1, 0);
    r.segment(1, 1);
    // The fastest nodes cannot take a join (no recursion) ...
    r.node(
        5,
        NodeCapacity {
            recursion: false,
            ..speed(20, 500_000.0)
        },
    );
    r.node(3, speed(20, 80_000.0));
    r.node(4, speed(20, 40_000.0));
    r.verify(1, task(1, 0));
    let a = r.verify(2, task(1, 1));
    assert_eq!(assigns(&a), vec![(join(1, 0), NodeId(3))]);
    // ... and a node that failed the join is excluded: the retry goes to the next fastest.
    let a = r.fail(3, join(1, 0));
    assert_eq!(assigns(&a), vec![(join(1, 0), NodeId(4))]);
}

#[test]
fn prove_tasks_follow_the_policy_unless_join_tree_proves_prefer_fast_too() {
    let run = |cfg: SchedulerConfig| {
        let mut r = Rig::new(cfg, "fifo");
        r.node(1, speed(20, 10_000.0));
        r.node(2, speed(20, 80_000.0));
        r.submit(1, JobSpec::new(18));
        assigns(&r.segment(1, 0))
    };
    assert_eq!(run(quiet_config()), vec![(task(1, 0), NodeId(1))]);
    let cfg = SchedulerConfig {
        prefer_fast: PreferFastConfig {
            join_tree_proves: true,
            ..PreferFastConfig::default()
        },
        ..quiet_config()
    };
    assert_eq!(run(cfg), vec![(task(1, 0), NodeId(2))]);
}

#[test]
fn every_policy_places_joins_on_the_fast_tier() {
    for policy in POLICY_NAMES {
        let mut r = Rig::new(quiet_config(), policy);
        for n in 1..=9 {
            // Asks at the auction's opening price: it places at once.
            r.s.ledger_mut().set_ask(NodeId(n), 50);
        }
        for n in 1..=8 {
            r.node(n, speed(20, 10_000.0));
        }
        r.submit(1, JobSpec::new(18));
        r.segment(1, 0);
        r.segment(1, 1);
        r.node(9, speed(20, 80_000.0));
        let provers: Vec<_> = assigns(&r.log.clone());
        for (t, n) in provers {
            r.verify(n.0, t);
        }
        let first_join = assigns(&r.log).into_iter().find(|(t, _)| t.is_join());
        assert_eq!(first_join, Some((join(1, 0), NodeId(9))), "{policy}");
    }
}

fn straggler_config(reference_quantile: Option<f64>) -> SchedulerConfig {
    SchedulerConfig {
        speculative: SpeculativeConfig {
            enabled: true,
            tail_tasks: 0,
            slow_factor: Some(1.5),
            reference_quantile,
            // The straggler trigger alone (the idle trigger has its own tests in placement.rs).
            idle_backups: false,
            ..SpeculativeConfig::default()
        },
        ..quiet_config()
    }
}

/// A slow but honest node 1 (expected 4,000 ms) and two median nodes (1,000 ms) on a three-segment job; the
/// median nodes finish at 1,000 ms.
fn slow_honest_node(cfg: SchedulerConfig, slow: f64) -> Rig {
    let mut r = Rig::new(cfg, "fifo");
    let mut c = cap(20, false, 1);
    c.cycles_per_sec = slow;
    r.node(1, c);
    r.node(2, cap(20, false, 1));
    r.node(3, cap(20, false, 1));
    r.submit(1, composite(18));
    assert_eq!(assigns(&r.segment(1, 0)), vec![(task(1, 0), NodeId(1))]);
    r.segment(1, 1);
    r.segment(1, 2);
    r.finish_exec(1, 3);
    r.now = 1_000;
    r.verify(2, task(1, 1));
    r.verify(3, task(1, 2));
    r
}

#[test]
fn a_slow_but_honest_node_is_backed_up_against_the_median_node() {
    let mut r = slow_honest_node(straggler_config(Some(0.5)), 2_500.0);
    // 1.5 x the median node's 1,000 ms, not 1.5 x its own 4,000 ms.
    assert_eq!(r.s.next_deadline(), Some(1_500));
    let a = r.tick_at(1_500);
    assert_eq!(assigns(&a), vec![(task(1, 0), NodeId(2))]);
    let st = r.s.job_status(JobId(1)).unwrap();
    assert_eq!(st.backups, 1);
    // The backup (done at ~2,500 ms) wins; the slow copy is cancelled.
    r.now = 2_500;
    let a = r.verify(2, task(1, 0));
    assert_eq!(cancels(&a), vec![(task(1, 0), NodeId(1))]);
    assert_eq!(finished(&a).len(), 1);
}

#[test]
fn against_its_own_expected_time_only_the_slow_node_is_never_backed_up() {
    // The scheduler before the median reference: the trigger is at 1.5 x its own 4,000 ms, and the copy
    // finishes at 4,000 ms, so no backup ever starts.
    let mut r = slow_honest_node(straggler_config(None), 2_500.0);
    assert_eq!(r.s.next_deadline(), Some(6_000));
    assert!(assigns(&r.tick_at(1_500)).is_empty());
    r.now = 4_000;
    let a = r.verify(1, task(1, 0));
    assert_eq!(finished(&a).len(), 1);
    assert_eq!(r.s.stats().backups_launched, 0);
}

#[test]
fn a_straggler_backup_that_would_not_finish_first_is_not_launched() {
    // Node 1 is only a bit slow: expected 1,667 ms. At 1,500 ms a median node would need until 2,500 ms.
    let mut r = slow_honest_node(straggler_config(Some(0.5)), 6_000.0);
    assert_eq!(r.s.next_deadline(), Some(1_500));
    assert!(assigns(&r.tick_at(1_500)).is_empty());
    let st = r.s.stats();
    assert_eq!((st.backups_launched, st.backups_skipped), (0, 1));
    // But a copy past its own expected time might never finish: then any free node is worth a backup.
    let mut r = slow_honest_node(straggler_config(None), 6_000.0);
    // 1.5 x 1,667 ms.
    assert_eq!(r.s.next_deadline(), Some(2_501));
    assert_eq!(assigns(&r.tick_at(2_501)), vec![(task(1, 0), NodeId(2))]);
}

#[test]
fn when_every_live_node_failed_a_task_they_get_another_chance() {
    let mut rig = Rig::fifo();
    rig.node(1, cap(20, false, 1));
    rig.submit(4, composite(14));
    let a = rig.segment(4, 0);
    assert_eq!(assigns(&a), vec![(task(4, 0), NodeId(1))]);
    // The only node declines once (busy for a moment): the task goes back to it, not into a stall.
    let again = rig.fail(1, task(4, 0));
    assert_eq!(assigns(&again), vec![(task(4, 0), NodeId(1))], "{again:?}");
}

#[test]
fn a_busy_decline_costs_no_attempt_and_holds_the_slot_briefly() {
    let mut rig = Rig::fifo();
    rig.node(1, cap(20, false, 1));
    let mut spec = composite(14);
    spec.max_attempts = 1;
    rig.submit(5, spec);
    let a = rig.segment(5, 0);
    assert_eq!(assigns(&a), vec![(task(5, 0), NodeId(1))]);
    // Declined as busy: no new offer right away (the slot is held), and the job does not fail.
    let d = rig.input(Input::TaskDeclined {
        node: NodeId(1),
        task: task(5, 0),
        reason: "busy".into(),
    });
    assert!(assigns(&d).is_empty(), "{d:?}");
    assert!(
        !d.iter().any(|a| matches!(a, Action::JobFinished { .. })),
        "{d:?}"
    );
    // After the backoff the same node gets it again, even with max_attempts = 1.
    let later = rig.tick_at(10_000);
    assert_eq!(assigns(&later), vec![(task(5, 0), NodeId(1))], "{later:?}");
}

#[test]
fn a_task_that_fails_the_same_way_on_two_provers_ends_the_job_at_once() {
    let mut rig = Rig::fifo();
    rig.node(1, cap(20, false, 1));
    rig.node(2, cap(20, false, 1));
    let mut spec = composite(14);
    spec.max_attempts = 10;
    rig.submit(6, spec);
    let a = rig.segment(6, 0);
    let first = assigns(&a)[0].1;
    let error = "segment could not be decoded: unexpected end of file";
    let errored = |node: NodeId| Input::TaskErrored {
        node,
        task: task(6, 0),
        error: error.into(),
    };
    // One prover's error may be its own: the task goes to the other one.
    let again = rig.input(errored(first));
    let second = assigns(&again)[0].1;
    assert_ne!(first, second, "{again:?}");
    assert!(finished(&again).is_empty());
    // The same error from a second prover: no prover can do it, and the job ends now with that error,
    // not after ten attempts.
    let end = rig.input(errored(second));
    let outcome = finished(&end);
    assert_eq!(outcome.len(), 1, "{end:?}");
    match &outcome[0].1 {
        JobOutcome::Failed { reason } => {
            assert!(reason.contains(error), "{reason}");
            assert!(reason.contains("2 different provers"), "{reason}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Issue 12 (hostile peers): failure reports from nodes that do not hold the task are ignored, so two peers
/// cannot end someone's job by reporting the same made-up error, nor take a task from its prover.
#[test]
fn failures_reported_by_nodes_not_holding_the_task_change_nothing() {
    let mut rig = Rig::fifo();
    rig.node(1, cap(20, false, 1));
    rig.node(2, cap(20, false, 1));
    rig.node(3, cap(20, false, 1));
    let mut spec = composite(14);
    spec.max_attempts = 10;
    rig.submit(8, spec);
    let a = rig.segment(8, 0);
    let holder = assigns(&a)[0].1;
    let others: Vec<NodeId> = [1, 2, 3]
        .into_iter()
        .map(NodeId)
        .filter(|n| *n != holder)
        .collect();
    for node in &others {
        let out = rig.input(Input::TaskErrored {
            node: *node,
            task: task(8, 0),
            error: "segment could not be decoded".into(),
        });
        assert!(finished(&out).is_empty(), "{out:?}");
        assert!(assigns(&out).is_empty(), "{out:?}");
        let out = rig.input(Input::TaskFailed {
            node: *node,
            task: task(8, 0),
            reason: "gave up".into(),
        });
        assert!(
            assigns(&out).is_empty(),
            "the task was taken from its holder: {out:?}"
        );
    }
    // The holder's own report still counts, and one report alone does not end the job.
    let out = rig.input(Input::TaskErrored {
        node: holder,
        task: task(8, 0),
        error: "segment could not be decoded".into(),
    });
    assert!(finished(&out).is_empty(), "{out:?}");
    assert_eq!(assigns(&out).len(), 1, "{out:?}");
}

#[test]
fn different_errors_from_different_provers_are_retried() {
    let mut rig = Rig::fifo();
    rig.node(1, cap(20, false, 1));
    rig.node(2, cap(20, false, 1));
    rig.submit(7, composite(14));
    let a = rig.segment(7, 0);
    let first = assigns(&a)[0].1;
    let again = rig.input(Input::TaskErrored {
        node: first,
        task: task(7, 0),
        error: "out of memory".into(),
    });
    let second = assigns(&again)[0].1;
    let retry = rig.input(Input::TaskErrored {
        node: second,
        task: task(7, 0),
        error: "disk full".into(),
    });
    assert!(finished(&retry).is_empty(), "{retry:?}");
    assert_eq!(assigns(&retry).len(), 1, "{retry:?}");
}

/// Liveness on (heartbeats within 5 s), nothing else that could act on its own.
fn live_config() -> SchedulerConfig {
    SchedulerConfig {
        heartbeat_timeout_ms: Some(5_000),
        ..quiet_config()
    }
}

fn deadline_of(actions: &[Action]) -> Time {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Assign { deadline, .. } => Some(*deadline),
            _ => None,
        })
        .expect("an assignment")
}

/// Issue 8: an honest node that is slower than it claimed, and says so by heartbeating, misses its deadline:
/// it is given more time (no penalty, no cancel) and its result is accepted and rewarded.
#[test]
fn an_honest_node_slower_than_claimed_is_given_time_not_punished() {
    let mut rig = Rig::new(live_config(), "fifo");
    rig.node(1, cap(20, false, 1));
    let mut spec = composite(14);
    spec.task_timeout_ms = 1_000;
    rig.submit(8, spec);
    let deadline = deadline_of(&rig.segment(8, 0));
    // Heartbeats all along, past the deadline.
    let mut t = 0;
    while t < deadline + 3_000 {
        t += 1_000;
        let mut a = rig.run_until(t);
        a.extend(rig.input(Input::Heartbeat { node: NodeId(1) }));
        assert!(penalties(&a).is_empty(), "penalized at {t} ms: {a:?}");
        assert!(cancels(&a).is_empty(), "cancelled at {t} ms: {a:?}");
    }
    assert!(rig.s.stats().extensions >= 1);
    let done = rig.verify(1, task(8, 0));
    assert_eq!(rewards(&done).len(), 1, "{done:?}");
    assert!(penalties(&rig.log).is_empty(), "{:?}", penalties(&rig.log));
}

/// The same node when it stops answering: silence is still penalized and the work taken back.
#[test]
fn a_node_that_stops_answering_still_misses_its_deadline() {
    let mut rig = Rig::new(
        SchedulerConfig {
            heartbeat_timeout_ms: Some(500),
            ..quiet_config()
        },
        "fifo",
    );
    rig.node(1, cap(20, false, 1));
    rig.node(2, cap(20, false, 1));
    let mut spec = composite(14);
    spec.task_timeout_ms = 1_000;
    rig.submit(9, spec);
    let first = assigns(&rig.segment(9, 0))[0].1;
    let deadline = deadline_of(&rig.log);
    // Only the other node heartbeats.
    let other = if first == NodeId(1) { 2 } else { 1 };
    let mut t = 0;
    while t <= deadline {
        t += 250;
        rig.run_until(t);
        rig.input(Input::Heartbeat {
            node: NodeId(other),
        });
    }
    let silenced: Vec<_> = penalties(&rig.log)
        .into_iter()
        .filter(|(_, n, c)| *n == first && *c == PenaltyCause::Silence)
        .collect();
    assert!(!silenced.is_empty(), "{:?}", rig.log);
}

/// A 5-segment job submitted behind a 1,000-segment one takes turns with it instead of waiting for all of it
/// (fair queueing across jobs), and it finishes within a dozen rounds of the two nodes.
#[test]
fn a_small_job_behind_a_huge_one_takes_turns_with_it() {
    let mut r = Rig::fifo();
    r.node(1, cap(20, false, 1));
    r.node(2, cap(20, false, 1));
    let mut big = composite(18);
    big.max_in_flight = 2_000;
    r.submit(1, big);
    for s in 0..1_000 {
        r.segment(1, s);
    }
    r.finish_exec(1, 1_000);
    r.submit(2, composite(18));
    for s in 0..5 {
        r.segment(2, s);
    }
    r.finish_exec(2, 5);
    // Prove whatever is assigned, one node at a time, until the small job is done.
    let mut rounds = 0;
    let mut small_done = false;
    let mut running: Vec<(TaskId, NodeId)> = assigns(&r.log);
    while !small_done {
        rounds += 1;
        assert!(rounds <= 12, "the small job waited behind the big one");
        let (t, n) = running
            .iter()
            .copied()
            .find(|(t, _)| {
                r.s.job_status(t.job).unwrap().tasks[t.index as usize].state != TaskState::Verified
            })
            .expect("something is running");
        let a = r.verify(n.0, t);
        small_done = finished(&a).iter().any(|(j, _)| *j == JobId(2));
        running.extend(assigns(&a));
    }
    // The big job kept going too: it was not starved in turn.
    let big = r.s.job_status(JobId(1)).unwrap();
    assert!(big.tasks_verified >= 4, "{}", big.tasks_verified);
}

/// A speed learned in an earlier run (persisted by the driver) sets a node's deadlines from its first task:
/// a node that claims 10,000 cycles/s but delivered 1,000 gets ten times the time, not a deadline it misses.
#[test]
fn a_speed_learned_in_an_earlier_run_sets_the_first_deadline() {
    let deadline_with = |remembered: Option<f64>| {
        let cfg = SchedulerConfig {
            learn_speed: true,
            ..quiet_config()
        };
        let mut r = Rig::new(cfg, "fifo");
        if let Some(s) = remembered {
            r.s.remember_speed(NodeId(1), s, 4);
        }
        r.node(1, cap(20, false, 1));
        r.submit(1, composite(14));
        match r.segment(1, 0).as_slice() {
            [Action::Assign { deadline, .. }] => *deadline,
            other => panic!("{other:?}"),
        }
    };
    let claimed = deadline_with(None);
    let learned = deadline_with(Some(1_000.0));
    // The rig's segments are 10,000 cycles: 1 s at the claimed speed, 10 s at the learned one (same slack).
    assert!(
        learned >= claimed + 8_000,
        "claimed {claimed} ms, learned {learned} ms"
    );
}

/// Deadlines grow a little faster than a segment's cycles (issue 8): a node's speed is measured at po2 14,
/// and a po2 18 segment (16x the cycles) takes ~16 x 1.06 as long on it, as measured with RISC Zero.
#[test]
fn a_larger_segment_gets_more_than_its_share_of_cycles_in_time() {
    let deadline_for = |cycles: u64, growth: f64| {
        let cfg = SchedulerConfig {
            po2_step_growth: growth,
            ..quiet_config()
        };
        let mut r = Rig::new(cfg, "fifo");
        r.node(1, cap(20, false, 1));
        let mut spec = composite(18);
        spec.task_timeout_ms = 0;
        r.submit(1, spec);
        match r
            .input(Input::SegmentReady {
                job: JobId(1),
                segment: 0,
                cycles,
            })
            .as_slice()
        {
            [Action::Assign { deadline, .. }] => *deadline,
            other => panic!("{other:?}"),
        }
    };
    let small = deadline_for(1 << 14, 1.015);
    let large = deadline_for(1 << 18, 1.015);
    let linear = deadline_for(1 << 18, 1.0);
    let by_cycles = linear as f64 / small as f64;
    assert!(
        (15.99..16.01).contains(&by_cycles),
        "cycles alone: {small} -> {linear}"
    );
    let ratio = large as f64 / small as f64;
    assert!((16.9..17.1).contains(&ratio), "po2 18 / po2 14 = {ratio}");
}

/// A node that declined an offer was never given the task: a result it sends for it anyway is not taken, and
/// `was_given` says so to the driver before it fetches anything (issue 13, item 10).
#[test]
fn a_node_that_declined_a_task_cannot_deliver_it() {
    let mut r = Rig::fifo();
    r.node(1, cap(20, false, 1));
    r.submit(1, composite(18));
    let a = r.segment(1, 0);
    assert_eq!(assigns(&a), vec![(task(1, 0), NodeId(1))]);
    assert!(r.s.was_given(task(1, 0), NodeId(1)));
    r.input(Input::TaskDeclined {
        node: NodeId(1),
        task: task(1, 0),
        reason: "busy".into(),
    });
    assert!(!r.s.was_given(task(1, 0), NodeId(1)));
    let a = r.verify(1, task(1, 0));
    assert!(rewards(&a).is_empty(), "{a:?}");
}
