//! Scheduler throughput with a minimal driver: N nodes, J jobs streaming S segments each, every copy answered
//! at its expected time. Usage: `cargo run -p cairn-scheduler --example stress [nodes] [jobs] [segments] [policy]`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use cairn_scheduler::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let nodes: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let jobs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let segments: u32 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(32);
    let policy = args.get(4).cloned().unwrap_or_else(|| "fifo".into());
    let cfg = SchedulerConfig {
        heartbeat_timeout_ms: None,
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(cfg, policy_by_name(&policy, 1).unwrap());
    let start = Instant::now();
    let mut inputs = 0u64;
    let mut events = Events::default();
    let push = |events: &mut Events, t: Time, i: Input| events.push(t, i);
    for n in 0..nodes {
        let capacity = NodeCapacity {
            memory_bytes: 8 << 30,
            max_po2: 16 + (n % 7) as u8,
            cycles_per_sec: 1_000.0 + (n % 13) as f64 * 500.0,
            slots: 1 + (n % 2) as u32,
            recursion: n % 10 < 7,
        };
        push(
            &mut events,
            0,
            Input::NodeJoined {
                node: NodeId(n),
                capacity,
            },
        );
    }
    for j in 0..jobs {
        let t0 = j * 1_000;
        let job = JobId(j);
        push(
            &mut events,
            t0,
            Input::SubmitJob {
                job,
                spec: JobSpec::new(18),
            },
        );
        for seg in 0..segments {
            push(
                &mut events,
                t0 + 1 + seg as u64 * 200,
                Input::SegmentReady {
                    job,
                    segment: seg,
                    cycles: 1 << 18,
                },
            );
        }
        push(
            &mut events,
            t0 + 1 + segments as u64 * 200,
            Input::ExecutionFinished { job, segments },
        );
    }
    let (mut done, mut failed) = (0, 0);
    let mut now = 0;
    loop {
        let next_event = events.peek();
        let next_tick = s.next_deadline();
        let (t, input) = match (next_event, next_tick) {
            (Some(e), Some(d)) if d < e => (d, Input::Tick),
            (Some(_), _) => events.pop().unwrap(),
            (None, Some(d)) => (d, Input::Tick),
            (None, None) => break,
        };
        now = t;
        inputs += 1;
        for a in s.handle(t, input) {
            match a {
                Action::Assign {
                    task,
                    node,
                    deadline,
                    ..
                } => {
                    // Answer a bit before the deadline's slack runs out: at the expected time.
                    let slack = 60_000;
                    let at = deadline.saturating_sub(slack).max(t + 1);
                    push(&mut events, at, Input::ResultVerified { node, task });
                }
                Action::JobFinished { outcome, .. } => match outcome {
                    JobOutcome::Completed { .. } => done += 1,
                    _ => failed += 1,
                },
                _ => {}
            }
        }
    }
    let el = start.elapsed();
    let t = s.ledger().totals();
    println!(
        "{policy}: {nodes} nodes, {jobs} jobs x {segments} segments: {done} completed, {failed} failed, {inputs} inputs, \
         simulated {:.0} s, wall {:.2} s ({:.1} us/input), overhead {:.3}",
        now as f64 / 1000.0,
        el.as_secs_f64(),
        el.as_secs_f64() * 1e6 / inputs as f64,
        t.compute_overhead()
    );
}

#[derive(Default)]
struct Events {
    heap: BinaryHeap<Reverse<(Time, usize)>>,
    slab: Vec<Option<Input>>,
}

impl Events {
    fn push(&mut self, t: Time, i: Input) {
        self.heap.push(Reverse((t, self.slab.len())));
        self.slab.push(Some(i));
    }

    fn peek(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    fn pop(&mut self) -> Option<(Time, Input)> {
        let Reverse((t, k)) = self.heap.pop()?;
        Some((t, self.slab[k].take().expect("once")))
    }
}
