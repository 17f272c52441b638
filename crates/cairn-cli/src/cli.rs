//! Command-line types (clap). Parsing only: the commands live in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Cairn proves RISC Zero programs in parallel, segment by segment, and checks every proof it is given.
///
/// Start with `cairn prove --local` (proves the bundled `sha-chain` program on this machine), then
/// `cairn verify cairn-out/receipt.bin --program sha-chain`. `cairn programs` lists the bundled programs.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log filter (tracing env-filter syntax, e.g. `info`, `cairn=debug`).
    #[arg(long, global = true, env = "CAIRN_LOG", default_value = "warn")]
    pub log: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Execute a program once (no proving): cycles, segments, and how segment size inflates the work.
    Execute(ExecuteArgs),
    /// Prove a program: execute once, prove every segment, verify each, and assemble the final receipt.
    Prove(ProveArgs),
    /// Run a prover node: offer this machine's spare capacity to Cairn clients. `cairn node status` asks a
    /// running node what it is doing.
    Node(NodeArgs),
    /// Run a public relay and bootstrap node: nodes behind NAT reserve a slot on it and are dialled through
    /// it (then upgraded to a direct connection by hole punching where the NATs allow).
    Relay(RelayArgs),
    /// Start N prover nodes and a client as separate processes on this machine, prove a bundled program
    /// across them, verify the receipt, and stop everything.
    Devnet(DevnetArgs),
    /// Run a devnet under chaos for a set time (provers killed, stalled and cut off, lying provers, the client
    /// killed mid-job) while submitting jobs, then check that every job ended with a verifying receipt, no
    /// invalid result was accepted, nothing verified was given out again, and nothing leaked.
    Soak(cairn_lab::soak::SoakArgs),
    /// Serve the Bonsai REST API in front of a Cairn network: a stock RISC Zero host proves through it with
    /// BONSAI_API_URL and BONSAI_API_KEY set, unchanged. A live dashboard is at its address.
    Gateway(GatewayArgs),
    /// Verify a receipt file against a program or an image id.
    Verify(VerifyArgs),
    /// List the bundled programs.
    Programs,
    /// Simulate a network of thousands of provers (scenario files in scenarios/) with the real scheduler.
    Sim(cairn_sim::cli::SimArgs),
    /// Benchmarks that print measured figures.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Ethereum blocks for the bundled `eth-block` program: import real blocks with their witness, generate
    /// synthetic ones, or validate one natively.
    #[command(subcommand)]
    Block(BlockCommand),
}

#[derive(Debug, Subcommand)]
pub enum BlockCommand {
    /// Turn a real block and its execution witness into the `eth-block` program's input, and validate it
    /// natively (the guest's own code): prints the journal a proof of it must carry, or why the block is
    /// invalid. Sources: a block (`eth_getBlockByNumber(n, true)` JSON, or `debug_getRawBlock` RLP as hex or
    /// binary) with `--witness` (`debug_executionWitness` JSON); a node's JSON-RPC (`--rpc URL --number N`);
    /// an ethrex-replay cache file (`--cache`); or a BlockchainTests file (`--test`).
    Import(BlockImportArgs),
    /// Generate a deterministic synthetic block (signed ETH and ERC-20 transfers, swaps through
    /// constant-product pools, contract deployments) up to a gas target, as Ethereum encodes it, with a Merkle
    /// witness of the state it touches. Writes the input for `--program eth-block` and prints the journal a
    /// proof of it must carry.
    Gen(BlockGenArgs),
    /// Validate a block input natively (the same code as the guest) and print its journal, or why the block
    /// is invalid: check your own inputs before proving them.
    Show {
        /// A block input file (`cairn block import` or `cairn block gen`).
        input: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct BlockImportArgs {
    /// The block: JSON (an `eth_getBlockByNumber(n, true)` result, or a whole JSON-RPC response holding
    /// one), or its RLP (`debug_getRawBlock`) as hex or binary.
    #[arg(long, conflicts_with_all = ["rpc", "cache", "test"], requires = "witness")]
    pub block: Option<PathBuf>,
    /// The block's witness: a `debug_executionWitness` result (or a JSON-RPC response holding one).
    #[arg(long)]
    pub witness: Option<PathBuf>,
    /// Fetch the block and its witness from this node's JSON-RPC (it must serve `debug_executionWitness`:
    /// reth, Nethermind, Erigon, geth).
    #[arg(long, requires = "number", conflicts_with_all = ["cache", "test"])]
    pub rpc: Option<String>,
    /// The block number to fetch with `--rpc`.
    #[arg(long)]
    pub number: Option<u64>,
    /// An ethrex-replay cache file (`{blocks, witness, network}`).
    #[arg(long, conflicts_with = "test")]
    pub cache: Option<PathBuf>,
    /// A BlockchainTests file of ethereum/tests: its single-block case `--case` (default: the first).
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// The case to take from `--test`.
    #[arg(long, requires = "test")]
    pub case: Option<String>,
    /// The chain: mainnet, sepolia, holesky, hoodi (or its chain id). Default: from the source (the node's
    /// `eth_chainId`, the cache's network, the test's network).
    #[arg(long, conflicts_with = "genesis")]
    pub chain: Option<String>,
    /// Any other chain: its genesis file (geth's `genesis.json`, or its `config` object).
    #[arg(long)]
    pub genesis: Option<PathBuf>,
    /// Where to write the input.
    #[arg(long, short, default_value = "block.bin")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct BlockGenArgs {
    /// Gas target, also the block's gas limit: `30M`, `1M`, `500k`.
    #[arg(long, default_value = "1M")]
    pub gas: String,
    /// Seed: the same seed and settings give the same block, byte for byte.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Transaction mix by count: `eth=40,erc20=30,swap=27,create=3` (the default), or one kind alone
    /// (`eth`, `erc20`, `swap`, `create`).
    #[arg(long, default_value = "eth=40,erc20=30,swap=27,create=3")]
    pub mix: String,
    /// Users that send and receive.
    #[arg(long, default_value_t = 2000)]
    pub accounts: usize,
    /// ERC-20 tokens deployed at genesis.
    #[arg(long, default_value_t = 8)]
    pub tokens: usize,
    /// Constant-product pools (neighbouring pools share a token, so some swaps take two hops).
    #[arg(long, default_value_t = 12)]
    pub pools: usize,
    /// Where to write the block input.
    #[arg(long, short, default_value = "block.bin")]
    pub out: PathBuf,
}

/// Which program to run and on what input.
#[derive(Debug, Clone, Args)]
pub struct ProgramArgs {
    /// A bundled program name (`sha-chain`, `seed-bench`, `eth-block`) or a path to a RISC-V ELF built for
    /// riscv32im-risc0-zkvm-elf or a RISC Zero program binary.
    #[arg(long, short, env = "CAIRN_PROGRAM", default_value = "sha-chain")]
    pub program: String,

    /// File whose bytes are the guest's stdin. Default for bundled programs: a small built-in input.
    #[arg(long, short, env = "CAIRN_INPUT", conflicts_with = "input_hex")]
    pub input: Option<PathBuf>,

    /// The guest's stdin as hex (e.g. `e803000000000000` = 1000 as u64 LE for sha-chain).
    #[arg(long, env = "CAIRN_INPUT_HEX")]
    pub input_hex: Option<String>,

    /// For `sha-chain`: iterations of SHA-256 (sets the cycle count; ~4.7 K cycles each).
    #[arg(long, env = "CAIRN_ITERATIONS", conflicts_with_all = ["input", "input_hex"])]
    pub iterations: Option<u64>,
}

/// Which backend proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// RISC Zero's CPU prover (real proofs).
    Risc0,
    /// A fast fake for trying the pipeline: its receipts are NOT RISC Zero receipts.
    Fake,
}

#[derive(Debug, Args)]
pub struct ExecuteArgs {
    #[command(flatten)]
    pub program: ProgramArgs,

    /// Segment size as log2 of cycles (RISC Zero accepts 14..=22); `auto` (which chooses by a network's provers,
    /// as for `cairn prove --network`) executes at 18 here.
    #[arg(long, env = "CAIRN_PO2", default_value = "18")]
    pub po2: Po2Arg,

    /// Also execute at every po2 from 14 to 22 but 15 and print segments, total cycles and inflation per po2.
    #[arg(long, env = "CAIRN_SWEEP")]
    pub sweep: bool,

    /// With --sweep, execute at po2 15 too. RISC Zero 3.x leaves 3,655 cycles of a po2 15 segment to the guest,
    /// so it makes tens to hundreds of times the segments of po2 14 and can take many minutes (seed-bench: 14 min
    /// on 2 cores, against ~3 s for each other size).
    #[arg(long, env = "CAIRN_SWEEP_PO2_15", requires = "sweep")]
    pub sweep_po2_15: bool,
}

#[derive(Debug, Args)]
pub struct ProveArgs {
    #[command(flatten)]
    pub program: ProgramArgs,

    /// Prove on this machine with a pool of worker threads.
    #[arg(
        long,
        env = "CAIRN_LOCAL",
        required_unless_present = "network",
        conflicts_with = "network"
    )]
    pub local: bool,

    /// Prove with the provers of a Cairn network (see `cairn node`); needs --bootstrap or mDNS on the LAN.
    #[arg(long, env = "CAIRN_NETWORK")]
    pub network: bool,

    #[command(flatten)]
    pub net: NetworkClientArgs,

    /// Segment size as log2 of cycles (14..=22), or `auto` (with --network): the size the client predicts
    /// fastest on the provers it hears, from one execution of the program (the prediction of every size is
    /// printed before proving). Memory per proof doubles with each step: po2 18 needs ~2.4 GB per worker,
    /// po2 20 ~9.6 GB.
    #[arg(long, env = "CAIRN_PO2", default_value = "18")]
    pub po2: Po2Arg,

    /// Proving worker threads (default: one per core).
    #[arg(long, env = "CAIRN_WORKERS")]
    pub workers: Option<usize>,

    /// Ask for a succinct receipt (lift + join). Needs RISC Zero's recursion programs in this build.
    #[arg(long, env = "CAIRN_SUCCINCT")]
    pub succinct: bool,

    /// Where to write the receipt (bincode `risc0_zkvm::Receipt`); a JSON summary is written beside it.
    #[arg(
        long,
        short,
        env = "CAIRN_OUT",
        default_value = "cairn-out/receipt.bin"
    )]
    pub out: PathBuf,

    /// Proving backend.
    #[arg(long, env = "CAIRN_BACKEND", value_enum, default_value_t = BackendKind::Risc0)]
    pub backend: BackendKind,

    /// Do not draw progress bars.
    #[arg(long, env = "CAIRN_NO_PROGRESS")]
    pub no_progress: bool,
}

/// Options of `cairn prove --network`.
#[derive(Debug, Args)]
pub struct NetworkClientArgs {
    /// Addresses of peers to connect to, each ending in /p2p/<peer id> (comma-separated or repeated).
    #[arg(long, env = "CAIRN_BOOTSTRAP", value_delimiter = ',')]
    pub bootstrap: Vec<String>,
    /// Addresses to listen on (multiaddrs).
    #[arg(
        long,
        env = "CAIRN_LISTEN",
        value_delimiter = ',',
        default_value = "/ip4/0.0.0.0/tcp/0"
    )]
    pub listen: Vec<String>,
    /// Discover provers on the LAN with mDNS.
    #[arg(long, env = "CAIRN_MDNS")]
    pub mdns: bool,
    #[command(flatten)]
    pub reach: ReachArgs,
    /// Job database (SQLite). Rerunning the same job with the same database resumes it.
    #[arg(long, env = "CAIRN_DB", default_value = "cairn-out/jobs.sqlite")]
    pub db: PathBuf,
    /// Directory for the client's blob store and identity.
    #[arg(long, env = "CAIRN_CLIENT_DIR", default_value = "cairn-out/client")]
    pub data_dir: PathBuf,
    /// Provers per task; the first verified result wins.
    #[arg(long, env = "CAIRN_REDUNDANCY", default_value_t = 1)]
    pub redundancy: u32,
    /// Attempts per task before the job fails.
    #[arg(long, env = "CAIRN_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
    /// Seconds of slack on top of a task's expected proving time before it is reassigned.
    #[arg(long, env = "CAIRN_TASK_SLACK_SECS", default_value_t = 30)]
    pub task_slack_secs: u64,
    /// Seconds without a heartbeat after which a prover counts as gone.
    #[arg(long, env = "CAIRN_HEARTBEAT_TIMEOUT_SECS", default_value_t = 20)]
    pub heartbeat_timeout_secs: u64,
    /// Prover selection policy: fifo, vrf, reputation, stake, auction.
    #[arg(long, env = "CAIRN_POLICY", default_value = "fifo")]
    pub policy: String,
    /// Serve job status (GET /status, JSON) and Prometheus metrics (GET /metrics) on this address.
    #[arg(long, env = "CAIRN_STATUS_ADDR")]
    pub status_addr: Option<std::net::SocketAddr>,
    /// Give up after this many seconds (rerun the same command to resume).
    #[arg(long, env = "CAIRN_JOB_TIMEOUT_SECS", default_value_t = 3600)]
    pub job_timeout_secs: u64,
    /// How segment receipts become one receipt: `join-tree` (provers lift and join; a small succinct
    /// receipt; needs RISC Zero's recursion programs here and on provers), `composite` (assembled here; grows
    /// with the segment count), or `auto` (join-tree where recursion is installed here, else composite; with
    /// `--po2 auto`, whichever the prediction finds faster within `--max-receipt-mb`).
    #[arg(long, env = "CAIRN_AGGREGATION", value_enum, default_value_t = AggregationArg::Auto)]
    pub aggregation: AggregationArg,
    /// With `--po2 auto`: leave out segment sizes whose final receipt would be larger than this many MB (a
    /// composite receipt holds one ~200-280 KB segment receipt per segment; a succinct one is ~230 KB).
    #[arg(long, env = "CAIRN_MAX_RECEIPT_MB")]
    pub max_receipt_mb: Option<f64>,
    /// Speculative backup copies: a second prover races a straggler, and the last tasks of a job, and the
    /// first verified result wins. `off` where the provers share one machine's cores (as `cairn devnet`'s
    /// do): there a backup only slows the copy it races.
    #[arg(long, env = "CAIRN_BACKUPS", value_enum, default_value_t = OnOff::On)]
    pub backups: OnOff,
}

/// A segment size (`--po2`): a number from 14 to 22, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Po2Arg {
    Fixed(u8),
    Auto,
}

impl Po2Arg {
    /// The size, or an error naming the command that cannot choose one itself.
    pub fn fixed(self, what: &str) -> anyhow::Result<u8> {
        match self {
            Self::Fixed(p) => Ok(p),
            Self::Auto => anyhow::bail!(
                "--po2 auto predicts from a network's provers: {what} needs a number (14..=22)"
            ),
        }
    }
}

impl Po2Arg {
    /// The size, or `default` with a note on stderr for a command that has no network to choose by (a
    /// `CAIRN_PO2=auto` exported for `cairn prove --network` must not break the others).
    pub fn fixed_or(self, what: &str, default: u8) -> u8 {
        match self {
            Self::Fixed(p) => p,
            Self::Auto => {
                eprintln!(
                    "note: --po2 auto chooses by a network's provers; {what} has none and uses po2 {default} \
                     (give a number to choose)"
                );
                default
            }
        }
    }
}

impl std::str::FromStr for Po2Arg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Self::Auto);
        }
        let po2: u8 = s
            .parse()
            .map_err(|_| format!("`{s}` is neither a po2 (14..=22) nor `auto`"))?;
        cairn_backend::check_po2(po2).map_err(|e| e.to_string())?;
        Ok(Self::Fixed(po2))
    }
}

impl std::fmt::Display for Po2Arg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(p) => write!(f, "{p}"),
            Self::Auto => f.write_str("auto"),
        }
    }
}

/// A switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// See `--aggregation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AggregationArg {
    Auto,
    Composite,
    JoinTree,
}

/// How a node or client is reached from behind NAT (shared by `cairn node`, `cairn prove --network` and
/// `cairn gateway`).
#[derive(Debug, Args, Clone)]
pub struct ReachArgs {
    /// Relays to hold a reservation on, each ending in /p2p/<relay peer id> (see `cairn relay`). Behind a
    /// home router this is how clients reach the node; hole punching then tries a direct connection.
    #[arg(long, env = "CAIRN_RELAY", value_delimiter = ',')]
    pub relay: Vec<String>,
    /// What to advertise: `auto` (public interface addresses at once, private ones once a peer could dial
    /// back, relay circuits), `public` (every listen address: a public host or a one-machine devnet),
    /// `private` (behind NAT: relay circuits and --external-addr only).
    #[arg(long, env = "CAIRN_REACHABILITY", default_value = "auto")]
    pub reachability: cairn_net::Reachability,
    /// Addresses others can dial this node at that it cannot see itself (a forwarded port on the router, a
    /// public IP), advertised as given.
    #[arg(long, env = "CAIRN_EXTERNAL_ADDR", value_delimiter = ',')]
    pub external_addr: Vec<String>,
    /// Let reachability checks count private address ranges (192.168/16, 10/8, 203.0.113/24, ...) as
    /// reachable: for networks entirely on one LAN, and the NAT test lab.
    #[arg(long, env = "CAIRN_AUTONAT_PRIVATE_IPS")]
    pub autonat_private_ips: bool,
    /// Also relay for nodes behind NAT, as `cairn relay` does (a node or gateway on a public address).
    #[arg(long, env = "CAIRN_SERVE_RELAY")]
    pub serve_relay: bool,
    /// Inbound connections one IP address may hold (loopback exempt): identities are free, addresses are
    /// not. Raise it where many nodes share one address (a campus or carrier-grade NAT).
    #[arg(long, env = "CAIRN_MAX_CONNS_PER_IP", default_value_t = 8)]
    pub max_conns_per_ip: u32,
    /// Above this many connected peers, close idle ones down to two thirds of it (never bootstrap peers,
    /// relays, or peers that worked with this node in the last 10 minutes; gossip mesh peers last). 0, the
    /// default, keeps every connection (docs/LAB.md measured trimming at 48: less memory, more CPU).
    #[arg(long, env = "CAIRN_PEERS_HIGH_WATER", default_value_t = 0)]
    pub peers_high_water: u32,
}

/// `cairn relay`.
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// Addresses to listen on.
    #[arg(
        long,
        env = "CAIRN_LISTEN",
        value_delimiter = ',',
        default_value = "/ip4/0.0.0.0/tcp/4001,/ip4/0.0.0.0/udp/4001/quic-v1"
    )]
    pub listen: Vec<String>,
    /// Other relays or bootstrap peers to connect to.
    #[arg(long, env = "CAIRN_BOOTSTRAP", value_delimiter = ',')]
    pub bootstrap: Vec<String>,
    /// Public addresses of this relay, where its interfaces do not show them (behind a 1:1 NAT, a cloud VM).
    #[arg(long, env = "CAIRN_EXTERNAL_ADDR", value_delimiter = ',')]
    pub external_addr: Vec<String>,
    /// Directory for the relay's identity key (its peer id stays the same across restarts).
    #[arg(long, env = "CAIRN_DATA_DIR", default_value = "cairn-relay")]
    pub data_dir: PathBuf,
    /// Nodes that may hold a reservation at once.
    #[arg(long, env = "CAIRN_RELAY_MAX_RESERVATIONS", default_value_t = 1024)]
    pub max_reservations: usize,
    /// Relayed connections at once (each carries one client-prover pair's segments and receipts until
    /// hole punching moves them to a direct connection).
    #[arg(long, env = "CAIRN_RELAY_MAX_CIRCUITS", default_value_t = 256)]
    pub max_circuits: usize,
    /// Answer reachability probes from nodes at private addresses (the NAT test lab, a LAN).
    #[arg(long, env = "CAIRN_AUTONAT_PRIVATE_IPS")]
    pub autonat_private_ips: bool,
    /// Inbound connections one IP address may hold (loopback exempt). Raise it where many nodes share one
    /// address (a campus or carrier-grade NAT).
    #[arg(long, env = "CAIRN_MAX_CONNS_PER_IP", default_value_t = 8)]
    pub max_conns_per_ip: u32,
    /// Print each listen address as `listening <addr>` on stdout (for scripts).
    #[arg(long, env = "CAIRN_PRINT_ADDR")]
    pub print_addr: bool,
}

/// `cairn node status`.
#[derive(Debug, Subcommand)]
pub enum NodeAction {
    /// Ask the node running with this data directory what it is doing: tasks in hand and done, results
    /// refused and why, and whether clients can reach it.
    Status(NodeStatusArgs),
}

#[derive(Debug, Args)]
pub struct NodeStatusArgs {
    /// The node's data directory (where it recorded its status address).
    #[arg(long, env = "CAIRN_DATA_DIR", default_value = "cairn-node")]
    pub data_dir: PathBuf,
    /// The node's status address, instead of reading it from the data directory.
    #[arg(long)]
    pub addr: Option<std::net::SocketAddr>,
    /// Print the raw JSON.
    #[arg(long)]
    pub json: bool,
}

/// `cairn node`. Settings come from flags, then environment variables, then the file given with `--config`
/// (keys are the long flag names: `max-po2 = 18`, `relay = ["/ip4/.../p2p/..."]`; `docs/NODE.md`).
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub action: Option<NodeAction>,
    /// A TOML file of settings (keys are the long flag names). Flags win over environment variables, which
    /// win over the file.
    #[arg(long, env = "CAIRN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Addresses to listen on (multiaddrs), e.g. /ip4/0.0.0.0/tcp/4011,/ip4/0.0.0.0/udp/4011/quic-v1.
    #[arg(
        long,
        env = "CAIRN_LISTEN",
        value_delimiter = ',',
        default_value = "/ip4/0.0.0.0/tcp/4011,/ip4/0.0.0.0/udp/4011/quic-v1"
    )]
    pub listen: Vec<String>,
    /// Peers to connect to at start and stay connected to (redialled when the connection drops), each ending
    /// in /p2p/<peer id>: a client, a gateway or a relay. A node behind NAT gets work over these connections.
    #[arg(long, env = "CAIRN_BOOTSTRAP", value_delimiter = ',')]
    pub bootstrap: Vec<String>,
    #[command(flatten)]
    pub reach: ReachArgs,
    /// Serve this node's status page (read by `cairn node status`) here; port 0 picks one, recorded in the
    /// data directory.
    #[arg(long, env = "CAIRN_STATUS_ADDR", default_value = "127.0.0.1:0")]
    pub status_addr: std::net::SocketAddr,
    /// Re-announce this node's capacity every this many seconds, so clients that joined since hear of it.
    #[arg(long, env = "CAIRN_ANNOUNCE_SECS", default_value_t = 30)]
    pub announce_secs: u64,
    /// Disable mDNS discovery on the LAN.
    #[arg(long, env = "CAIRN_NO_MDNS")]
    pub no_mdns: bool,
    /// Directory for the node's identity key and blob store (kept across restarts).
    #[arg(long, env = "CAIRN_DATA_DIR", default_value = "cairn-node")]
    pub data_dir: PathBuf,
    /// Proving slots: tasks this node proves at once (default 1). RISC Zero already spreads one proof over
    /// every core, so more slots on the same cores do not prove faster: each proof gets its share of the
    /// cores and takes longer. The speed the node advertises is per slot with every slot busy, so clients
    /// set deadlines it meets. More slots help only with more cores than one proof can use, or memory for
    /// several small segments while a large one waits.
    #[arg(long, env = "CAIRN_WORKERS")]
    pub workers: Option<usize>,
    /// Proving threads per slot (default: the cores divided among the slots). All slots share one pool of
    /// slots x threads threads; asking for more than the cores is allowed, and then the advertised speed
    /// assumes the slots share the cores.
    #[arg(long, env = "CAIRN_THREADS")]
    pub threads: Option<usize>,
    /// Pin this node to these CPU cores (comma-separated list, e.g. 0 or 0,1), via taskset.
    #[arg(long, env = "CAIRN_CORES")]
    pub cores: Option<String>,
    /// Memory to offer, in MB (default: what the OS reports available).
    #[arg(long, env = "CAIRN_MEMORY_MB")]
    pub memory_mb: Option<u64>,
    /// Cap the largest segment size accepted (po2).
    #[arg(long, env = "CAIRN_MAX_PO2")]
    pub max_po2: Option<u8>,
    /// Disk for blobs (segments, receipts), in MB: least recently used blobs are evicted beyond it.
    #[arg(long, env = "CAIRN_MAX_DISK_MB", default_value_t = 8192)]
    pub max_disk_mb: u64,
    /// Take new work only in these hours of the day, local time: `22-7` is 22:00 to 06:59. Tasks in hand
    /// finish; outside the hours offers are declined as busy, at no cost to the node's reputation.
    #[arg(long, env = "CAIRN_HOURS")]
    pub hours: Option<cairn_node::availability::HourWindow>,
    /// Take new work only while other programs use less than this share of the CPU, in percent (say 25):
    /// the node steps aside while its owner uses the machine.
    #[arg(long, env = "CAIRN_IDLE_BELOW_PERCENT")]
    pub idle_below_percent: Option<f64>,
    /// Seconds between heartbeats to clients.
    #[arg(long, env = "CAIRN_HEARTBEAT_SECS", default_value_t = 5)]
    pub heartbeat_secs: u64,
    /// Proving backend.
    #[arg(long, env = "CAIRN_BACKEND", value_enum, default_value_t = BackendKind::Risc0)]
    pub backend: BackendKind,
    /// Skip the start-up proving benchmark and advertise the speed of RISC Zero's calibrated cost model
    /// instead (clients still learn the real speed from the results).
    #[arg(long, env = "CAIRN_NO_BENCHMARK")]
    pub no_benchmark: bool,
    /// Run the start-up benchmark even if an earlier result for the same settings is saved in --data-dir.
    #[arg(long, env = "CAIRN_REBENCHMARK", conflicts_with = "no_benchmark")]
    pub rebenchmark: bool,
    /// Print each listen address as `listening <addr>` on stdout (for scripts and `cairn devnet`).
    #[arg(long, env = "CAIRN_PRINT_ADDR")]
    pub print_addr: bool,
    /// (testing) Misbehave: silent, garbage, replay, other-job, trickle, copy:DIR.
    #[arg(long, env = "CAIRN_MISBEHAVE", hide = true, default_value = "honest")]
    pub misbehave: String,
    /// (testing) Write every receipt into DIR too (the colluding half of the copy test).
    #[arg(long, env = "CAIRN_SHARE_RESULTS", hide = true)]
    pub share_results: Option<PathBuf>,
    /// (testing, `--backend fake`) How long a fake proof takes, as a share of the cost model's time for a real
    /// one (po2 14: 8.2 s): 0.5 makes a fake po2 14 proof take 4.1 s.
    #[arg(
        long,
        env = "CAIRN_FAKE_TIME_SCALE",
        hide = true,
        default_value_t = 0.001
    )]
    pub fake_time_scale: f64,
}

#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// Prover nodes to start.
    #[arg(long, env = "CAIRN_DEVNET_NODES", default_value_t = 2)]
    pub nodes: usize,
    #[command(flatten)]
    pub program: ProgramArgs,
    /// Segment size (po2), or `auto`: the client predicts every size on the devnet's provers and proves at
    /// the fastest (see `cairn prove --po2`).
    #[arg(long, env = "CAIRN_PO2", default_value = "14")]
    pub po2: Po2Arg,
    /// Proving threads per node (RISC Zero's internal parallelism): 1 makes scaling measurable on few cores.
    #[arg(long, env = "CAIRN_DEVNET_THREADS", default_value_t = 1)]
    pub threads_per_node: usize,
    /// Pin node i to core i mod cores (taskset).
    #[arg(long, env = "CAIRN_DEVNET_PIN")]
    pub pin_cores: bool,
    /// Provers per task.
    #[arg(long, env = "CAIRN_REDUNDANCY", default_value_t = 1)]
    pub redundancy: u32,
    /// Speculative backup copies of stragglers and of a job's last tasks (see `cairn prove --backups`). Off
    /// by default here: the devnet's provers share this machine's cores, so a backup only halves the speed of
    /// the copy it races (a po2 18 segment proved twice at once took twice as long).
    #[arg(long, env = "CAIRN_DEVNET_BACKUPS", value_enum, default_value_t = OnOff::Off)]
    pub backups: OnOff,
    /// Where the receipt goes (a JSON summary and the job database are written beside it).
    #[arg(
        long,
        short,
        env = "CAIRN_OUT",
        default_value = "cairn-out/devnet/receipt.bin"
    )]
    pub out: PathBuf,
    /// Proving backend.
    #[arg(long, env = "CAIRN_BACKEND", value_enum, default_value_t = BackendKind::Risc0)]
    pub backend: BackendKind,
    /// Instead of proving one bundled program, serve the Bonsai API on this address in front of the nodes
    /// (`cairn gateway`) until Ctrl-C: point a stock RISC Zero host at it with the printed BONSAI_API_URL
    /// and BONSAI_API_KEY.
    #[arg(long, env = "CAIRN_DEVNET_GATEWAY")]
    pub gateway: Option<std::net::SocketAddr>,
    /// The API key of the devnet's gateway.
    #[arg(
        long,
        env = "CAIRN_DEVNET_GATEWAY_KEY",
        default_value = "devnet-local-key"
    )]
    pub gateway_key: String,
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Where the REST API and the dashboard listen (port 0 picks one; the address is printed).
    #[arg(long, env = "CAIRN_GATEWAY_HTTP", default_value = "127.0.0.1:8080")]
    pub http: std::net::SocketAddr,
    /// Uploaded programs, inputs, receipts and the session database (kept across restarts: running
    /// sessions resume).
    #[arg(long, env = "CAIRN_GATEWAY_DIR", default_value = "cairn-gateway")]
    pub gateway_dir: PathBuf,
    /// API keys as a TOML file (`[[key]]` tables with name, key and optional max_sessions, max_upload_mb).
    #[arg(long, env = "CAIRN_GATEWAY_KEYS_FILE")]
    pub keys_file: Option<PathBuf>,
    /// API keys as `name:key,name:key` (each gets 4 concurrent sessions and 256 MB uploads).
    #[arg(long, env = "CAIRN_GATEWAY_KEYS", hide_env_values = true)]
    pub keys: Option<String>,
    /// The URL clients reach this gateway at, for the upload and receipt URLs it hands out (default: from
    /// each request's Host header).
    #[arg(long, env = "CAIRN_GATEWAY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Segment size (po2) of every session: provers must have the memory for it (po2 18: ~2.4 GB). `auto`:
    /// each session's size is predicted on the provers heard when it starts (see `cairn prove --po2`);
    /// execute-only sessions, which prove nothing, report their segments at po2 18.
    #[arg(long, env = "CAIRN_PO2", default_value = "18")]
    pub po2: Po2Arg,
    #[command(flatten)]
    pub net: NetworkClientArgs,
    /// The most cycles any session may execute (its guest stopped and the session FAILED past it); a
    /// session's own `exec_cycle_limit` can lower it, never raise it. Default: no limit beyond the session's.
    #[arg(long, env = "CAIRN_GATEWAY_CYCLE_LIMIT")]
    pub cycle_limit: Option<u64>,
    /// Proving backend (the fake one's receipts are NOT RISC Zero receipts: for trying the API only).
    #[arg(long, env = "CAIRN_BACKEND", value_enum, default_value_t = BackendKind::Risc0)]
    pub backend: BackendKind,
    /// Print the listen address on stdout as `gateway http://ADDR` once serving (for scripts).
    #[arg(long)]
    pub print_addr: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The receipt file (bincode `risc0_zkvm::Receipt`).
    pub receipt: PathBuf,

    /// The program the receipt must prove: bundled name or path (its image id is computed).
    #[arg(
        long,
        short,
        env = "CAIRN_VERIFY_PROGRAM",
        required_unless_present = "image_id"
    )]
    pub program: Option<String>,

    /// The image id the receipt must prove (64 hex characters).
    #[arg(long, env = "CAIRN_IMAGE_ID", conflicts_with = "program")]
    pub image_id: Option<String>,

    /// For bundled programs: also check the journal against the host-side reference for this input.
    #[command(flatten)]
    pub expect: ExpectArgs,
}

#[derive(Debug, Args)]
pub struct ExpectArgs {
    /// Input file the receipt was proved with, to check the journal against the host reference.
    #[arg(long = "expect-input", env = "CAIRN_EXPECT_INPUT")]
    pub input: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Reproduce the seed's Tables 1 and 2 on this machine: per po2, segments, cycles, inflation, proving time,
    /// peak memory and receipt size of one segment, next to the seed's numbers; plus the local pipeline
    /// against RISC Zero's own single-process prover on the same program.
    Segments(BenchSegmentsArgs),
    /// The devnet (N single-threaded provers on this machine) against RISC Zero's own prover restricted to one
    /// thread, on the same program: speedup, overhead per segment, and the critical-path bound.
    Devnet(BenchDevnetArgs),
    /// `--po2 auto` against the devnet: the same program proved at each fixed po2 and with `--po2 auto`, each
    /// measured time next to the time the client predicted for that po2.
    Po2Auto(BenchPo2AutoArgs),
    /// Ethereum blocks' cycles per gas: a real Hoodi block, Ethereum's own test blocks and synthetic blocks,
    /// executed in the zkVM by the eth-block guest; prints user and total cycles, cycles per gas by stage
    /// (decode, header, witness, senders, execute, receipts, post-state), segments and paging per po2, and
    /// accelerated against pure-Rust signature recovery; next to published figures.
    Evm(BenchEvmArgs),
    /// (internal) Prove one serialized segment in this process and print JSON with time and peak memory.
    #[command(hide = true)]
    ProveOne { segment: PathBuf },
    /// (internal) Time risc0's own `prove()` on sha-chain in this process and print JSON.
    #[command(hide = true)]
    Risc0Baseline {
        #[arg(long)]
        iterations: u64,
        #[arg(long)]
        po2: u8,
    },
}

#[derive(Debug, Args)]
pub struct BenchEvmArgs {
    /// Which blocks: `hoodi` (Hoodi block 1,265,656 with reth's witness), `tests` (a few of Ethereum's
    /// BlockchainTests blocks), `gen` (synthetic blocks of `--kinds` at `--gas`), or `all`.
    #[arg(long, value_delimiter = ',', default_value = "hoodi,tests,gen")]
    pub blocks: Vec<String>,
    /// Also measure these block inputs (`cairn block import` / `gen` files).
    #[arg(long, value_delimiter = ',')]
    pub input: Vec<PathBuf>,
    /// Gas sizes of the synthetic blocks.
    #[arg(long, value_delimiter = ',', default_value = "1M,10M")]
    pub gas: Vec<String>,
    /// Synthetic block kinds: transaction kinds alone (`eth`, `erc20`, `swap`, `create`) and `mix`.
    #[arg(long, value_delimiter = ',', default_value = "eth,mix")]
    pub kinds: Vec<String>,
    /// Segment sizes to execute every block at (total cycles, segments and paging per po2).
    #[arg(long, value_delimiter = ',', default_value = "18,20")]
    pub po2: Vec<u8>,
    /// Also execute each block with this other build of eth-block (at the largest po2) and compare: for
    /// pure-Rust k256 signature recovery instead of the bigint2 accelerator, build it with
    /// `scripts/build-guests.sh --eth-block-k256 DIR` and pass DIR/eth-block-k256.bin.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Write the table as CSV here too.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Prove this many segments, evenly sampled, of the Hoodi block at `--sample-po2` and report proving
    /// seconds per segment and for the whole block on this machine (0: no proving).
    #[arg(long, default_value_t = 0)]
    pub prove_sample: usize,
    /// Segment size of the sampled proofs.
    #[arg(long, default_value_t = 18)]
    pub sample_po2: u8,
}

#[derive(Debug, Args)]
pub struct BenchDevnetArgs {
    /// Prover nodes (each single-threaded).
    #[arg(long, env = "CAIRN_BENCH_NODES", default_value_t = 2)]
    pub nodes: usize,
    /// sha-chain iterations (sets the number of segments).
    #[arg(long, env = "CAIRN_BENCH_ITERATIONS", default_value_t = 1)]
    pub iterations: u64,
    /// Segment size; `auto` (`CAIRN_PO2=auto` exported for `cairn prove`) runs at 14: the prediction is
    /// checked by `cairn bench po2-auto`.
    #[arg(long, env = "CAIRN_PO2", default_value = "14")]
    pub po2: Po2Arg,
    /// Pin node i to core i (taskset).
    #[arg(long, env = "CAIRN_BENCH_PIN")]
    pub pin_cores: bool,
    /// Devnet runs, to show the spread (the risc0 baseline and the one-segment sample run once).
    #[arg(long, env = "CAIRN_BENCH_RUNS", default_value_t = 1)]
    pub runs: usize,
    /// Write the table as Markdown to this file too.
    #[arg(long, env = "CAIRN_BENCH_MARKDOWN")]
    pub markdown: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchPo2AutoArgs {
    /// Prover nodes (each single-threaded).
    #[arg(long, default_value_t = 2)]
    pub nodes: usize,
    /// sha-chain iterations (12: 15 segments at po2 14, 3 at 16, 1 at 17).
    #[arg(long, default_value_t = 12)]
    pub iterations: u64,
    /// Fixed segment sizes to measure beside `auto`.
    #[arg(long, value_delimiter = ',', default_value = "14,16,17")]
    pub po2: Vec<u8>,
    /// Rounds (each: every fixed po2, then auto).
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Proving backend (`fake` checks the pipeline in seconds; its times are the cost model's own).
    #[arg(long, value_enum, default_value_t = BackendKind::Risc0)]
    pub backend: BackendKind,
    /// Write the table as Markdown to this file too.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchSegmentsArgs {
    /// Smallest po2 to measure.
    #[arg(long, env = "CAIRN_BENCH_PO2_MIN", default_value_t = 14)]
    pub po2_min: u8,
    /// Largest po2 to measure (po2 20 takes ~10 minutes and ~10 GB for one segment here).
    #[arg(long, env = "CAIRN_BENCH_PO2_MAX", default_value_t = 20)]
    pub po2_max: u8,
    /// Segments proved per po2 (the first full-size ones).
    #[arg(long, env = "CAIRN_BENCH_SAMPLES", default_value_t = 1)]
    pub samples: usize,
    /// Stop executing at a po2 once it has produced this many segments and report "over N" (RISC Zero 3.x
    /// splits po2 15 into tens of thousands of segments).
    #[arg(long, env = "CAIRN_BENCH_MAX_SEGMENTS", default_value_t = 5_000)]
    pub max_segments: u32,
    /// Words generated by `seed-bench` for the per-po2 table (default: the guest's default, 131300 words =
    /// 65.6 M user cycles, the seed's program size).
    #[arg(long, env = "CAIRN_BENCH_WORDS")]
    pub words: Option<u32>,
    /// po2 of the baseline comparison (Cairn local pipeline vs risc0's prover on the same program).
    #[arg(long, env = "CAIRN_BENCH_BASELINE_PO2", default_value_t = 14)]
    pub baseline_po2: u8,
    /// sha-chain iterations for the baseline comparison.
    #[arg(long, env = "CAIRN_BENCH_BASELINE_ITERATIONS", default_value_t = 1)]
    pub baseline_iterations: u64,
    /// Skip the baseline comparison.
    #[arg(long, env = "CAIRN_BENCH_NO_BASELINE")]
    pub no_baseline: bool,
    /// Write the tables as Markdown to this file too.
    #[arg(long, env = "CAIRN_BENCH_MARKDOWN")]
    pub markdown: Option<PathBuf>,
}
