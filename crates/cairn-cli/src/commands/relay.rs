//! `cairn relay`: a public relay and bootstrap node for nodes behind NAT.

use std::process::ExitCode;
use std::time::Duration;

use cairn_net::{Event, Network, Reachability, RelayServerConfig};

use super::node::parse_addrs;
use crate::cli::RelayArgs;

pub fn run(args: &RelayArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.data_dir)?;
    let mut net = cairn_net::Config::new(&args.data_dir, 0);
    net.listen = parse_addrs(&args.listen)?;
    net.bootstrap = parse_addrs(&args.bootstrap)?;
    net.external_addrs = parse_addrs(&args.external_addr)?;
    // A relay is public by definition: its listen addresses are what nodes behind NAT dial.
    net.reachability = Reachability::Public;
    net.autonat_private_ips = args.autonat_private_ips;
    net.mdns = false;
    // It holds connections for nodes that have nothing to say for long stretches.
    net.idle_connection_timeout = Duration::from_secs(600);
    net.limits.max_established = (args.max_reservations as u32 * 2).max(256);
    net.limits.inbound.per_ip = args.max_conns_per_ip.max(1);
    net.relay_server = Some(RelayServerConfig {
        max_reservations: args.max_reservations,
        max_circuits: args.max_circuits,
        ..RelayServerConfig::default()
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (client, mut events, event_loop) = Network::new(net).await?;
        tokio::spawn(event_loop.run());
        let addrs = client.listen_addrs().await?;
        for a in &addrs {
            if args.print_addr {
                println!("listening {a}");
            } else {
                eprintln!("cairn relay: nodes can reserve at {a}");
            }
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let mut report = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                e = events.recv() => match e {
                    // The relay proves nothing: it answers requests plainly.
                    Some(Event::InboundRequest { responder, .. }) => responder.respond(
                        cairn_net::protocol::Response::Error(cairn_net::protocol::ErrorReply::new(
                            cairn_net::protocol::ErrorCode::Refused,
                            "this node is a relay; it takes no tasks",
                        )),
                    ),
                    Some(_) => {}
                    None => break,
                },
                _ = report.tick() => {
                    if let Ok(r) = client.reachability().await {
                        tracing::info!(peers = r.connected_peers, "relay up");
                    }
                }
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        client.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
