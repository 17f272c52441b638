//! `cairn gateway`: the Bonsai REST API in front of a Cairn network, until Ctrl-C or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_backend::fake::FakeBackend;
use cairn_backend::ProvingBackend;
use cairn_gateway::{ApiKeys, Gateway, GatewayConfig};
use cairn_node::coordinator::{JobSettings, Service, ServiceConfig};
use cairn_node::lock::ProcessLock;
use cairn_risc0::RiscZeroBackend;

use super::network::{job_size, lock_client, net_config, scheduler_config};
use crate::cli::{BackendKind, GatewayArgs};

pub fn run(args: &GatewayArgs) -> anyhow::Result<ExitCode> {
    // One gateway per session directory, and its coordinator's data directory and job database like any
    // client's, held until it exits.
    let _gateway_lock =
        ProcessLock::dir(&args.gateway_dir, "the gateway directory", "--gateway-dir")?;
    let _client_locks = lock_client(&args.net)?;
    let mut keys = ApiKeys::default();
    if let Some(f) = &args.keys_file {
        keys.merge(ApiKeys::from_file(f)?)?;
    }
    if let Some(list) = &args.keys {
        keys.merge(ApiKeys::parse_list(list)?)?;
    }
    anyhow::ensure!(
        !keys.is_empty(),
        "no API keys: pass --keys-file keys.toml or --keys name:key (or set CAIRN_GATEWAY_KEYS)"
    );
    let backend: Arc<dyn ProvingBackend> = match args.backend {
        BackendKind::Risc0 => Arc::new(RiscZeroBackend::new()),
        BackendKind::Fake => Arc::new(FakeBackend::new(0.001)),
    };
    let n = &args.net;
    let service_cfg = ServiceConfig {
        net: net_config(n)?,
        db_path: n.db.clone(),
        policy: n.policy.clone(),
        scheduler: scheduler_config(n),
        status_addr: n.status_addr,
    };
    let (po2, aggregation, auto) = job_size(n, args.po2, &*backend)?;
    let job = JobSettings {
        po2,
        redundancy: n.redundancy,
        max_attempts: n.max_attempts,
        task_slack: Duration::from_secs(n.task_slack_secs),
        timeout: Duration::from_secs(n.job_timeout_secs),
        aggregation,
        cycle_limit: args.cycle_limit,
        auto,
    };
    let cfg = GatewayConfig {
        listen: args.http,
        data_dir: args.gateway_dir.clone(),
        public_url: args.public_url.clone(),
        keys,
        job,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let service = Service::start(service_cfg, backend.clone())
            .await
            .context("starting the coordinator")?;
        let gateway = Gateway::start(cfg, service.clone(), backend)
            .await
            .context("starting the gateway")?;
        let addr = gateway.addr();
        eprintln!(
            "gateway: serving the Bonsai API for risc0-zkvm {} at http://{addr} (dashboard: http://{addr}/)",
            cairn_gateway::RISC0_VERSION
        );
        eprintln!("gateway: client peer {} listening on {}", service.info().peer_id, service.info().listen.join(", "));
        eprintln!("gateway: point a host at it with BONSAI_API_URL=http://{addr} BONSAI_API_KEY=<one of its keys>");
        if args.print_addr {
            println!("gateway http://{addr}");
        }
        shutdown_signal().await;
        eprintln!("gateway: stopping; running sessions resume at the next start");
        gateway.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    /// The version the gateway announces (and checks clients against) is the risc0-zkvm it links.
    #[test]
    fn the_gateway_announces_the_risc0_version_it_links() {
        assert_eq!(cairn_gateway::RISC0_VERSION, risc0_zkvm::VERSION);
    }
}
