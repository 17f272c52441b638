//! Blocking worker threads for CPU-bound proving, kept off any async runtime.

use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of OS threads running submitted closures in FIFO order. A closure that panics does not take
/// its thread with it. Dropping the pool lets queued work finish and joins the threads.
#[derive(Debug)]
pub struct WorkerPool {
    tx: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

/// The pool is shutting down and takes no more work.
#[derive(Debug, thiserror::Error)]
#[error("worker pool is shut down")]
pub struct WorkerPoolClosed;

impl WorkerPool {
    /// Starts `workers` threads (at least one) named `{name}-{i}`.
    pub fn new(name: &str, workers: usize) -> Self {
        let (tx, rx): (Sender<Job>, Receiver<Job>) = crossbeam_channel::unbounded();
        let threads = (0..workers.max(1))
            .map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || {
                        while let Ok(job) = rx.recv() {
                            // A job that panics loses only itself: the thread takes the next one, so a pool
                            // never shrinks while its owner still counts on its workers. Callers that need to
                            // know catch the panic inside the job.
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        Self {
            tx: Some(tx),
            threads,
        }
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.threads.len()
    }

    /// Queues `job` to run on a worker thread.
    pub fn spawn(&self, job: impl FnOnce() + Send + 'static) -> Result<(), WorkerPoolClosed> {
        self.tx
            .as_ref()
            .ok_or(WorkerPoolClosed)?
            .send(Box::new(job))
            .map_err(|_| WorkerPoolClosed)
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.tx.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13, item 8: a panic while proving fails that job only; the worker thread lives on.
    #[test]
    fn a_panicking_job_leaves_its_worker_alive() {
        let pool = WorkerPool::new("test", 1);
        pool.spawn(|| panic!("crafted to panic")).unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        pool.spawn(move || tx.send(42).unwrap()).unwrap();
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(10)),
            Ok(42),
            "the only worker died with the panicking job"
        );
    }
}
