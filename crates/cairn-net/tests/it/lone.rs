//! A node alone on its network (the first node of a network, a LAN that mDNS has not found yet): normal, so
//! nothing tells its owner that something is wrong.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_net::{Config, Network};
use tracing_subscriber::layer::SubscriberExt;

/// Records every event's target, level and message.
struct Record(Arc<Mutex<Vec<(String, tracing::Level, String)>>>);

struct Message<'a>(&'a mut String);

impl tracing::field::Visit for Message<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Record {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut msg = String::new();
        event.record(&mut Message(&mut msg));
        let m = event.metadata();
        self.0
            .lock()
            .unwrap()
            .push((m.target().to_string(), *m.level(), msg));
    }
}

/// Kademlia's own periodic bootstrap warned "Failed to trigger bootstrap: No known peers" every five minutes
/// on a lone node. Cairn bootstraps on its own timer instead and says nothing where there is nobody yet: here
/// several periodic bootstraps come and go (each finding no peers, at debug level), and no warning is printed.
#[test]
fn a_lone_node_does_not_warn_its_owner_that_it_has_no_peers() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Record(seen.clone()));
    tracing::subscriber::with_default(subscriber, || {
        // One thread: the event loop's events are recorded by this thread's subscriber.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = Config::loopback(dir.path());
            assert!(cfg.kademlia);
            cfg.kad_bootstrap_every = Duration::from_millis(400);
            let (client, _events, event_loop) = Network::new(cfg).await.unwrap();
            tokio::spawn(event_loop.run());
            tokio::time::sleep(Duration::from_secs(3)).await;
            client.shutdown().await;
        });
    });
    let seen = seen.lock().unwrap();
    let attempts = seen
        .iter()
        .filter(|(t, _, m)| t == "cairn_net" && m.contains("no Kademlia bootstrap"))
        .count();
    assert!(
        attempts >= 3,
        "the periodic bootstrap did not run ({attempts} attempts): {seen:?}"
    );
    let warnings: Vec<_> = seen
        .iter()
        .filter(|(_, level, _)| *level <= tracing::Level::WARN)
        .collect();
    assert!(warnings.is_empty(), "a lone node warned: {warnings:?}");
}
