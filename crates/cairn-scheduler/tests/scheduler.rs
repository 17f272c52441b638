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
