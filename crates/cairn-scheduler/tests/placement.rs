//! Finish-time placement, retries on proven nodes, idle-capacity backups and stuck tasks' backups before
//! queued work (issue 14), each against the scheduler without it.

mod rig;

use cairn_scheduler::*;
use rig::*;

fn speed(cycles_per_sec: f64) -> NodeCapacity {
    NodeCapacity {
        cycles_per_sec,
        ..cap(20, false, 1)
    }
}

fn ftp(on: bool) -> SchedulerConfig {
    SchedulerConfig {
        finish_time_placement: on,
        ..quiet_config()
    }
}

/// Node 1 proves a segment in 250 ms, node 2 in 2,000 ms; segment 0 arrives, then segment 1 while node 1 is busy.
fn fast_busy_slow_free(cfg: SchedulerConfig) -> (Rig, Vec<Action>) {
    let mut r = Rig::new(cfg, "fifo");
    r.node(1, speed(40_000.0));
    r.node(2, speed(5_000.0));
    r.submit(1, composite(18));
    assert_eq!(assigns(&r.segment(1, 0)), vec![(task(1, 0), NodeId(1))]);
    let a = r.segment(1, 1);
    (r, a)
}

#[test]
fn a_slow_free_node_is_left_idle_when_a_busy_fast_one_would_finish_first() {
    // Greedy: the slow node takes segment 1 at once and finishes it at 2,000 ms.
    let (_, a) = fast_busy_slow_free(ftp(false));
    assert_eq!(assigns(&a), vec![(task(1, 1), NodeId(2))]);

    // Finish-time placement: node 1 is expected free at 312 ms (250 ms and a quarter of slack) and would be
    // done at 562 ms, under half the slow node's time: segment 1 waits for it.
    let (mut r, a) = fast_busy_slow_free(ftp(true));
    assert!(assigns(&a).is_empty(), "{a:?}");
    assert_eq!(r.s.stats().held, 1);
    r.now = 250;
    let a = r.verify(1, task(1, 0));
    assert_eq!(assigns(&a), vec![(task(1, 1), NodeId(1))]);

    // Against a node only a little slower (1,000 ms) waiting gains less than the default factor of 2: no hold.
    let mut r = Rig::new(ftp(true), "fifo");
    r.node(1, speed(40_000.0));
    r.node(2, speed(10_000.0));
    r.submit(1, composite(18));
    r.segment(1, 0);
    assert_eq!(assigns(&r.segment(1, 1)), vec![(task(1, 1), NodeId(2))]);
}

#[test]
fn a_held_task_stops_waiting_for_a_slot_past_its_expected_end() {
    let (mut r, a) = fast_busy_slow_free(ftp(true));
    assert!(assigns(&a).is_empty());
    // Node 1 says nothing. Once its slot was expected free (312 ms) the scheduler looks again, no longer counts
    // on it, and the slow node takes the segment.
    let mut placed = Vec::new();
    while placed.is_empty() {
        let at = r.s.next_deadline().expect("a recheck is due");
        assert!(at <= 312, "{at}");
        placed = assigns(&r.tick_at(at));
    }
    assert_eq!(placed, vec![(task(1, 1), NodeId(2))]);
    assert_eq!(r.now, 312);
}

#[test]
fn a_long_queue_uses_the_slow_nodes_too() {
    // Ten segments at once on one fast and one slow node: the fast node cannot do them all before the slow
    // one would have finished one, so both work.
    let mut r = Rig::new(ftp(true), "fifo");
    r.node(1, speed(40_000.0));
    r.node(2, speed(10_000.0));
    r.submit(1, composite(18));
    for s in 0..10 {
        r.segment(1, s);
    }
    let mut nodes: Vec<u64> = assigns(&r.log).iter().map(|(_, n)| n.0).collect();
    nodes.sort();
    assert_eq!(nodes, vec![1, 2]);
}

fn proven(on: bool) -> SchedulerConfig {
    SchedulerConfig {
        proven_retries: on,
        learn_speed: true,
        ..quiet_config()
    }
}

/// Three equal nodes; node 1 proves segment 0, node 2 returns an invalid proof of segment 1. Who gets the retry?
fn retry_of_a_rejected_segment(cfg: SchedulerConfig) -> NodeId {
    let mut r = Rig::new(cfg, "fifo");
    for n in 1..=3 {
        r.node(n, cap(20, false, 1));
    }
    r.submit(1, composite(18));
    assert_eq!(assigns(&r.segment(1, 0)), vec![(task(1, 0), NodeId(1))]);
    r.now = 1_000;
    r.verify(1, task(1, 0));
    assert_eq!(assigns(&r.segment(1, 1)), vec![(task(1, 1), NodeId(2))]);
    r.now = 1_100;
    let a = r.reject(2, task(1, 1), RejectReason::InvalidProof);
    let retry = assigns(&a);
    assert_eq!(retry.len(), 1, "{a:?}");
    retry[0].1
}

#[test]
fn a_retry_goes_to_a_node_that_has_delivered_before() {
    // FIFO alone gives the retry to node 3, which has waited longest and has never been tried.
    assert_eq!(retry_of_a_rejected_segment(proven(false)), NodeId(3));
    assert_eq!(retry_of_a_rejected_segment(proven(true)), NodeId(1));
}

fn idle(on: bool) -> SchedulerConfig {
    let q = quiet_config();
    SchedulerConfig {
        speculative: SpeculativeConfig {
            enabled: true,
            tail_tasks: 0,
            slow_factor: None,
            idle_backups: on,
            ..q.speculative.clone()
        },
        ..q
    }
}

/// Node 1 (claims `slow`) takes segment 0, node 2 (10,000 cycles/s: 1,000 ms) segment 1; execution is over and
/// node 2 delivers at `at`. What does node 2 get next?
fn after_the_queue_ran_dry(cfg: SchedulerConfig, slow: f64, at: Time) -> Vec<(TaskId, NodeId)> {
    let mut r = Rig::new(cfg, "fifo");
    r.node(1, speed(slow));
    r.node(2, speed(10_000.0));
    r.submit(1, composite(18));
    r.segment(1, 0);
    r.segment(1, 1);
    r.finish_exec(1, 2);
    assert_eq!(
        assigns(&r.log),
        vec![(task(1, 0), NodeId(1)), (task(1, 1), NodeId(2))]
    );
    r.now = at;
    assigns(&r.verify(2, task(1, 1)))
}

#[test]
fn an_idle_fast_node_backs_up_what_a_slow_node_holds() {
    // Node 1 needs 4,000 ms; node 2, free at 1,000 ms, would be done at 2,000 ms.
    assert_eq!(
        after_the_queue_ran_dry(idle(true), 2_500.0, 1_000),
        vec![(task(1, 0), NodeId(2))]
    );
    // Without the idle trigger nothing happens until the tail or straggler triggers (off here).
    assert!(after_the_queue_ran_dry(idle(false), 2_500.0, 1_000).is_empty());
    // Equal nodes on time do not copy each other: node 2 would finish at 1,600 ms, node 1 at 1,000 ms.
    assert!(after_the_queue_ran_dry(idle(true), 10_000.0, 600).is_empty());
}

#[test]
fn a_backup_nobody_could_win_starts_when_the_copy_passes_its_expected_end_with_no_input_in_between()
{
    // Node 1 (8,000 cycles/s) is expected to be done at 1,250 ms; node 2, free at 600 ms, would need until
    // 1,600 ms: no backup then. Once node 1's copy is past its expected end any node is worth a backup, and the
    // scheduler asks to be woken for it (before, only the next input, often a heartbeat, would have found it).
    let mut r = Rig::new(idle(true), "fifo");
    r.node(1, speed(8_000.0));
    r.node(2, speed(10_000.0));
    r.submit(1, composite(18));
    r.segment(1, 0);
    r.segment(1, 1);
    r.finish_exec(1, 2);
    r.now = 600;
    assert!(assigns(&r.verify(2, task(1, 1))).is_empty());
    assert_eq!(r.s.next_deadline(), Some(1_250));
    assert_eq!(assigns(&r.tick_at(1_250)), vec![(task(1, 0), NodeId(2))]);
}

fn proven_backups(on: bool) -> SchedulerConfig {
    let q = quiet_config();
    SchedulerConfig {
        learn_speed: true,
        proven_retries: on,
        speculative: SpeculativeConfig {
            enabled: true,
            tail_tasks: 0,
            slow_factor: None,
            idle_backups: true,
            ..q.speculative.clone()
        },
        ..q
    }
}

/// Nodes 1-3 take segments 0-2; node 1 delivers at 1,000 ms (proven) and takes segment 3; node 4, never
/// tried, joins free; execution ends. The copies on nodes 2 and 3 are at their expected end: any node would
/// win a backup. Returns the assignments after that, and the rig.
fn backup_with_an_untried_node_free(cfg: SchedulerConfig) -> (Rig, Vec<(TaskId, NodeId)>) {
    let mut r = Rig::new(cfg, "fifo");
    for n in 1..=3 {
        r.node(n, cap(20, false, 1));
    }
    r.submit(1, composite(18));
    for s in 0..3 {
        r.segment(1, s);
    }
    r.now = 1_000;
    r.verify(1, task(1, 0));
    assert_eq!(assigns(&r.segment(1, 3)), vec![(task(1, 3), NodeId(1))]);
    let mut a = r.node(4, cap(20, false, 1));
    a.extend(r.finish_exec(1, 4));
    (r, assigns(&a))
}

#[test]
fn a_backup_waits_for_a_proven_node_rather_than_try_an_untried_one() {
    let (_, a) = backup_with_an_untried_node_free(proven_backups(false));
    assert_eq!(a, vec![(task(1, 1), NodeId(4))]);
    let (mut r, a) = backup_with_an_untried_node_free(proven_backups(true));
    assert!(a.is_empty(), "{a:?}");
    // Node 1 delivers segment 3 and takes the backup of segment 1.
    r.now = 2_000;
    let a = assigns(&r.verify(1, task(1, 3)));
    assert_eq!(a, vec![(task(1, 1), NodeId(1))]);
}

#[test]
fn a_fast_node_the_policy_refuses_does_not_hold_a_task_for_ever() {
    // Finish-time placement narrows the candidates to node 1, whose ask no auction price ever reaches; the
    // policy then chooses among all free nodes and the slow node 2 takes the segment.
    let mut r = Rig::new(ftp(true), "auction");
    r.node(1, speed(40_000.0));
    r.node(2, speed(5_000.0));
    r.s.ledger_mut().set_ask(NodeId(1), 1_000_000);
    r.s.ledger_mut().set_ask(NodeId(2), 0);
    r.submit(1, composite(18));
    assert_eq!(assigns(&r.segment(1, 0)), vec![(task(1, 0), NodeId(2))]);
}

/// Idle backups with the straggler trigger on (1.5 x a copy's own expected time), and stuck tasks first or not.
fn stuck_first(on: bool) -> SchedulerConfig {
    let base = idle(true);
    SchedulerConfig {
        speculative: SpeculativeConfig {
            slow_factor: Some(1.5),
            reference_quantile: None,
            stuck_first: on,
            ..base.speculative.clone()
        },
        ..base
    }
}

/// Two nodes of 1,000 ms a segment, two jobs of two segments, job 2 queued behind job 1. Node 1 holds job 1's
/// segment 0 and never answers; node 2 delivers job 1's segment 1 at 900 ms and job 2's segment 0 at `at`.
/// What does node 2 get then?
fn a_loaded_network_with_a_stuck_copy(cfg: SchedulerConfig, at: Time) -> Vec<(TaskId, NodeId)> {
    let mut r = Rig::new(cfg, "fifo");
    r.node(1, speed(10_000.0));
    r.node(2, speed(10_000.0));
    r.submit(1, composite(18));
    r.segment(1, 0);
    r.segment(1, 1);
    r.finish_exec(1, 2);
    r.submit(2, composite(18));
    r.segment(2, 0);
    r.segment(2, 1);
    r.finish_exec(2, 2);
    r.now = 900;
    assert_eq!(
        assigns(&r.verify(2, task(1, 1))),
        vec![(task(2, 0), NodeId(2))]
    );
    // The straggler trigger asks for a backup of job 1's segment 0 (1.5 x its 1,000 ms); nobody is free.
    assert!(assigns(&r.tick_at(1_500)).is_empty());
    r.now = at;
    assigns(&r.verify(2, task(2, 0)))
}

#[test]
fn a_stuck_task_is_backed_up_before_queued_work() {
    // 31 s after its expected end job 1's segment is stuck, and job 1 waits on nothing else: it gets node 2
    // before job 2's next segment does.
    assert_eq!(
        a_loaded_network_with_a_stuck_copy(stuck_first(true), 31_000),
        vec![(task(1, 0), NodeId(2))]
    );
    // Without it the backup gets only what queued work leaves: nothing, while job 2 has segments queued.
    assert_eq!(
        a_loaded_network_with_a_stuck_copy(stuck_first(false), 31_000),
        vec![(task(2, 1), NodeId(2))]
    );
    // 0.9 s past its expected end a copy is only late (transfers are not in the expected time): queued work first.
    assert_eq!(
        a_loaded_network_with_a_stuck_copy(stuck_first(true), 1_900),
        vec![(task(2, 1), NodeId(2))]
    );
}
