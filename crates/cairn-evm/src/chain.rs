//! Which chain a block belongs to: its chain id, when each hard fork activates, its blob schedule and its
//! deposit contract. Mainnet, Sepolia, Holesky and Hoodi are built in (from `alloy-hardforks`); any other
//! chain comes as a [`CustomChain`], from a genesis file's `config` (geth's format) or from the name of an
//! Ethereum test network ("Cancun", "ShanghaiToCancunAtTime15k", ...).
//!
//! The guest reads a [`Chain`] in its input and commits [`Chain::digest`] in its journal, so a proof says
//! which rules the block was held to: a verifier compares the chain id and that digest with the chain it
//! expects.

use std::fmt;

use alloy_eips::eip7840::BlobParams;
use alloy_evm::eth::spec::EthExecutorSpec;
use alloy_hardforks::{EthereumChainHardforks, EthereumHardfork, EthereumHardforks, ForkCondition};
use alloy_primitives::{address, Address, U256};
use serde::{Deserialize, Serialize};

/// A chain, as the guest's input names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Chain {
    Mainnet,
    Sepolia,
    Holesky,
    Hoodi,
    Custom(CustomChain),
}

/// When a fork activates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    Block(u64),
    Timestamp(u64),
    /// The merge (Paris): the first block past the terminal total difficulty.
    Merge {
        block: u64,
    },
}

/// One fork's blob parameters (EIP-7840's `blobSchedule` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobSchedule {
    pub target: u64,
    pub max: u64,
    pub update_fraction: u64,
}

/// A chain that is not built in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomChain {
    pub chain_id: u64,
    /// Forks by name (`EthereumHardfork`'s names: "London", "Cancun", "Bpo1", ...) with their activation.
    pub forks: Vec<(String, Activation)>,
    /// Blob parameters by fork name, where they differ from the fork's defaults.
    pub blob_schedule: Vec<(String, BlobSchedule)>,
    /// The EIP-6110 deposit contract (Prague on); `None`: deposits are not read from logs.
    pub deposit_contract: Option<Address>,
}

/// Why a chain description cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainError {
    UnknownFork(String),
    UnknownNetwork(String),
    /// The rules before the merge (proof of work: difficulty, ommers, block rewards) are not validated.
    PreMerge(String),
    Genesis(String),
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainError::UnknownFork(name) => write!(f, "unknown hard fork `{name}`"),
            ChainError::UnknownNetwork(name) => write!(
                f,
                "unknown network `{name}` (built in: mainnet, sepolia, holesky, hoodi; test networks: Paris, \
                 Shanghai, Cancun, Prague, Osaka and transitions like ShanghaiToCancunAtTime15k)"
            ),
            ChainError::PreMerge(what) => write!(
                f,
                "{what}: blocks before the merge (proof of work) are not supported; Cairn validates \
                 proof-of-stake blocks (Paris and later)"
            ),
            ChainError::Genesis(msg) => write!(f, "genesis config: {msg}"),
        }
    }
}

impl std::error::Error for ChainError {}

/// The forks, oldest first, as they follow each other on Ethereum.
const ORDER: [EthereumHardfork; 19] = [
    EthereumHardfork::Frontier,
    EthereumHardfork::Homestead,
    EthereumHardfork::Tangerine,
    EthereumHardfork::SpuriousDragon,
    EthereumHardfork::Byzantium,
    EthereumHardfork::Constantinople,
    EthereumHardfork::Petersburg,
    EthereumHardfork::Istanbul,
    EthereumHardfork::Berlin,
    EthereumHardfork::London,
    EthereumHardfork::Paris,
    EthereumHardfork::Shanghai,
    EthereumHardfork::Cancun,
    EthereumHardfork::Prague,
    EthereumHardfork::Osaka,
    EthereumHardfork::Bpo1,
    EthereumHardfork::Bpo2,
    EthereumHardfork::Bpo3,
    EthereumHardfork::Bpo4,
];

fn fork_by_name(name: &str) -> Result<EthereumHardfork, ChainError> {
    name.parse::<EthereumHardfork>()
        .map_err(|_| ChainError::UnknownFork(name.to_string()))
}

impl Chain {
    /// A built-in chain by name (case-insensitive) or chain id.
    pub fn named(name: &str) -> Option<Chain> {
        match name.to_ascii_lowercase().as_str() {
            "mainnet" | "1" => Some(Chain::Mainnet),
            "sepolia" | "11155111" => Some(Chain::Sepolia),
            "holesky" | "17000" => Some(Chain::Holesky),
            "hoodi" | "560048" => Some(Chain::Hoodi),
            _ => None,
        }
    }

    /// The chain of an Ethereum test network (`network` in ethereum/tests): chain id 1, every fork up to the
    /// named one active from genesis; `XToYAtTimeNk` and `XToYAtTime15k` switch at timestamp N*1000.
    pub fn test_network(network: &str) -> Result<Chain, ChainError> {
        let (first, then) = match network.split_once("To") {
            Some((a, b)) => {
                let (fork, at) = b
                    .split_once("AtTime")
                    .ok_or_else(|| ChainError::UnknownNetwork(network.to_string()))?;
                let k = at
                    .strip_suffix('k')
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| ChainError::UnknownNetwork(network.to_string()))?;
                (a, Some((fork, k * 1000)))
            }
            None => (network, None),
        };
        let last = match first {
            "Merge" | "Paris" => EthereumHardfork::Paris,
            other => fork_by_name(other).map_err(|_| ChainError::UnknownNetwork(network.into()))?,
        };
        let pos = ORDER
            .iter()
            .position(|f| *f == last)
            .ok_or_else(|| ChainError::UnknownNetwork(network.to_string()))?;
        if pos
            < ORDER
                .iter()
                .position(|f| *f == EthereumHardfork::Paris)
                .unwrap()
        {
            return Err(ChainError::PreMerge(format!("test network `{network}`")));
        }
        let mut forks: Vec<(String, Activation)> = ORDER[..=pos]
            .iter()
            .map(|f| {
                let at = match f {
                    EthereumHardfork::Paris => Activation::Merge { block: 0 },
                    f if is_timestamp_fork(*f) => Activation::Timestamp(0),
                    _ => Activation::Block(0),
                };
                (f.name().to_string(), at)
            })
            .collect();
        if let Some((next, at)) = then {
            let next =
                fork_by_name(next).map_err(|_| ChainError::UnknownNetwork(network.into()))?;
            let npos = ORDER
                .iter()
                .position(|f| *f == next)
                .ok_or_else(|| ChainError::UnknownNetwork(network.to_string()))?;
            if npos != pos + 1 || !is_timestamp_fork(next) {
                return Err(ChainError::UnknownNetwork(network.to_string()));
            }
            forks.push((next.name().to_string(), Activation::Timestamp(at)));
        }
        Ok(Chain::Custom(CustomChain {
            chain_id: 1,
            forks,
            blob_schedule: Vec::new(),
            deposit_contract: Some(MAINNET_DEPOSIT_CONTRACT),
        }))
    }

    /// A chain from a genesis file (geth's `genesis.json`, or only its `config` object): `chainId`,
    /// `<fork>Block` / `<fork>Time` keys, `terminalTotalDifficulty`, `depositContractAddress`, `blobSchedule`.
    #[cfg(feature = "host")]
    pub fn from_genesis_json(json: &serde_json::Value) -> Result<Chain, ChainError> {
        let config = json.get("config").unwrap_or(json);
        let num = |v: &serde_json::Value| -> Option<u64> {
            v.as_u64().or_else(|| {
                v.as_str().and_then(|s| match s.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16).ok(),
                    None => s.parse().ok(),
                })
            })
        };
        let chain_id = config
            .get("chainId")
            .and_then(num)
            .ok_or_else(|| ChainError::Genesis("no `chainId`".into()))?;
        let keys: [(EthereumHardfork, &str); 19] = [
            (EthereumHardfork::Frontier, "frontierBlock"),
            (EthereumHardfork::Homestead, "homesteadBlock"),
            (EthereumHardfork::Tangerine, "eip150Block"),
            (EthereumHardfork::SpuriousDragon, "eip158Block"),
            (EthereumHardfork::Byzantium, "byzantiumBlock"),
            (EthereumHardfork::Constantinople, "constantinopleBlock"),
            (EthereumHardfork::Petersburg, "petersburgBlock"),
            (EthereumHardfork::Istanbul, "istanbulBlock"),
            (EthereumHardfork::Berlin, "berlinBlock"),
            (EthereumHardfork::London, "londonBlock"),
            (EthereumHardfork::Paris, "mergeNetsplitBlock"),
            (EthereumHardfork::Shanghai, "shanghaiTime"),
            (EthereumHardfork::Cancun, "cancunTime"),
            (EthereumHardfork::Prague, "pragueTime"),
            (EthereumHardfork::Osaka, "osakaTime"),
            (EthereumHardfork::Bpo1, "bpo1Time"),
            (EthereumHardfork::Bpo2, "bpo2Time"),
            (EthereumHardfork::Bpo3, "bpo3Time"),
            (EthereumHardfork::Bpo4, "bpo4Time"),
        ];
        let mut forks = Vec::new();
        for (fork, key) in keys {
            let at = config.get(key).and_then(num);
            match (fork, at) {
                (EthereumHardfork::Frontier, _) => forks.push((fork, Activation::Block(0))),
                (EthereumHardfork::Paris, _) => {
                    let ttd = config.get("terminalTotalDifficulty");
                    let merged_at_genesis = ttd.and_then(num) == Some(0)
                        || config.get("terminalTotalDifficultyPassed") == Some(&true.into());
                    match (merged_at_genesis, at) {
                        (_, Some(block)) => forks.push((fork, Activation::Merge { block })),
                        (true, None) => forks.push((fork, Activation::Merge { block: 0 })),
                        (false, None) if ttd.is_some() => {
                            return Err(ChainError::PreMerge(
                                "a terminal total difficulty without the block it was reached at \
                                 (`mergeNetsplitBlock`)"
                                    .into(),
                            ))
                        }
                        (false, None) => {}
                    }
                }
                (f, Some(at)) if is_timestamp_fork(f) => forks.push((f, Activation::Timestamp(at))),
                (f, Some(at)) => forks.push((f, Activation::Block(at))),
                (_, None) => {}
            }
        }
        let mut blob_schedule = Vec::new();
        if let Some(schedule) = config.get("blobSchedule").and_then(|s| s.as_object()) {
            for (name, entry) in schedule {
                let fork = fork_by_name(name)?;
                let field = |k: &str| {
                    entry.get(k).and_then(num).ok_or_else(|| {
                        ChainError::Genesis(format!("blobSchedule.{name} has no `{k}`"))
                    })
                };
                blob_schedule.push((
                    fork.name().to_string(),
                    BlobSchedule {
                        target: field("target")?,
                        max: field("max")?,
                        update_fraction: field("baseFeeUpdateFraction")?,
                    },
                ));
            }
        }
        blob_schedule.sort();
        let deposit_contract = match config.get("depositContractAddress") {
            Some(v) => Some(
                v.as_str()
                    .and_then(|s| s.parse::<Address>().ok())
                    .ok_or_else(|| ChainError::Genesis("bad `depositContractAddress`".into()))?,
            ),
            None => None,
        };
        Ok(Chain::Custom(CustomChain {
            chain_id,
            forks: forks
                .into_iter()
                .map(|(f, a)| (f.name().to_string(), a))
                .collect(),
            blob_schedule,
            deposit_contract,
        }))
    }

    /// The chain's rules, ready to validate with.
    pub fn spec(&self) -> Result<ChainSpec, ChainError> {
        let (chain_id, hardforks, deposit, overrides) = match self {
            Chain::Mainnet => (
                1,
                EthereumChainHardforks::mainnet(),
                Some(MAINNET_DEPOSIT_CONTRACT),
                vec![],
            ),
            Chain::Sepolia => (
                11_155_111,
                EthereumChainHardforks::sepolia(),
                Some(address!("0x7f02c3e3c98b133055b8b348b2ac625669ed295d")),
                vec![],
            ),
            Chain::Holesky => (
                17_000,
                EthereumChainHardforks::holesky(),
                Some(address!("0x4242424242424242424242424242424242424242")),
                vec![],
            ),
            Chain::Hoodi => (
                560_048,
                EthereumChainHardforks::hoodi(),
                Some(address!("0x00000000219ab540356cBB839Cbe05303d7705Fa")),
                vec![],
            ),
            Chain::Custom(c) => {
                let mut forks = Vec::with_capacity(c.forks.len());
                for (name, at) in &c.forks {
                    let fork = fork_by_name(name)?;
                    let cond = match *at {
                        Activation::Block(b) => ForkCondition::Block(b),
                        Activation::Timestamp(t) => ForkCondition::Timestamp(t),
                        Activation::Merge { block } => ForkCondition::TTD {
                            activation_block_number: block,
                            fork_block: None,
                            total_difficulty: U256::ZERO,
                        },
                    };
                    forks.push((fork, cond));
                }
                let mut overrides = Vec::new();
                for (name, b) in &c.blob_schedule {
                    overrides.push((
                        fork_by_name(name)?,
                        BlobParams {
                            target_blob_count: b.target,
                            max_blob_count: b.max,
                            update_fraction: b.update_fraction as u128,
                            ..default_blob_params(fork_by_name(name)?)
                                .unwrap_or_else(BlobParams::cancun)
                        },
                    ));
                }
                (
                    c.chain_id,
                    EthereumChainHardforks::new(forks),
                    c.deposit_contract,
                    overrides,
                )
            }
        };
        Ok(ChainSpec {
            chain_id,
            hardforks,
            deposit_contract: deposit,
            blob_overrides: overrides,
        })
    }

    /// SHA-256 of the chain's canonical encoding (bincode of this value): the journal's chain digest.
    pub fn digest(&self, sha256: crate::Sha256Fn) -> [u8; 32] {
        sha256(&bincode::serialize(self).expect("a chain always serializes"))
    }
}

const MAINNET_DEPOSIT_CONTRACT: Address = address!("0x00000000219ab540356cBB839Cbe05303d7705Fa");

fn is_timestamp_fork(f: EthereumHardfork) -> bool {
    ORDER.iter().position(|x| *x == f) > ORDER.iter().position(|x| *x == EthereumHardfork::Paris)
}

fn default_blob_params(fork: EthereumHardfork) -> Option<BlobParams> {
    Some(match fork {
        EthereumHardfork::Cancun => BlobParams::cancun(),
        EthereumHardfork::Prague => BlobParams::prague(),
        EthereumHardfork::Osaka => BlobParams::osaka(),
        EthereumHardfork::Bpo1 => BlobParams::bpo1(),
        EthereumHardfork::Bpo2 => BlobParams::bpo2(),
        _ => return None,
    })
}

/// A chain's rules: what [`Chain::spec`] builds.
#[derive(Debug, Clone)]
pub struct ChainSpec {
    pub chain_id: u64,
    hardforks: EthereumChainHardforks,
    deposit_contract: Option<Address>,
    blob_overrides: Vec<(EthereumHardfork, BlobParams)>,
}

impl ChainSpec {
    /// The blob parameters in force at `timestamp`: those of the latest active fork that has any (`None`
    /// before Cancun).
    pub fn blob_params_at(&self, timestamp: u64) -> Option<BlobParams> {
        let mut found = None;
        for fork in ORDER {
            if !self
                .hardforks
                .ethereum_fork_activation(fork)
                .active_at_timestamp(timestamp)
            {
                continue;
            }
            let params = self
                .blob_overrides
                .iter()
                .find(|(f, _)| *f == fork)
                .map(|(_, p)| *p)
                .or_else(|| default_blob_params(fork));
            if let Some(mut p) = params {
                // EIP-7918's blob base cost and EIP-7594's per-transaction cap are Osaka's, not a BPO's.
                if self.is_osaka_active_at_timestamp(timestamp) {
                    let osaka = BlobParams::osaka();
                    p.blob_base_cost = osaka.blob_base_cost;
                    p.max_blobs_per_tx = osaka.max_blobs_per_tx;
                }
                found = Some(p);
            }
        }
        found
    }

    /// Whether the block at (number, timestamp) is past the merge.
    pub fn is_merged(&self, number: u64) -> bool {
        self.hardforks
            .ethereum_fork_activation(EthereumHardfork::Paris)
            .active_at_block(number)
    }
}

impl EthereumHardforks for ChainSpec {
    fn ethereum_fork_activation(&self, fork: EthereumHardfork) -> ForkCondition {
        self.hardforks.ethereum_fork_activation(fork)
    }
}

impl EthExecutorSpec for ChainSpec {
    fn deposit_contract_address(&self) -> Option<Address> {
        self.deposit_contract
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hoodi_is_prague_at_block_1265656_and_osaka_later() {
        let spec = Chain::Hoodi.spec().unwrap();
        assert_eq!(spec.chain_id, 560_048);
        let t = 0x68d1422c;
        assert!(spec.is_prague_active_at_timestamp(t));
        assert!(!spec.is_osaka_active_at_timestamp(t));
        assert_eq!(spec.blob_params_at(t), Some(BlobParams::prague()));
        assert!(spec.is_merged(1_265_656));
    }

    #[test]
    fn test_networks_activate_every_fork_up_to_theirs() {
        let spec = Chain::test_network("Cancun").unwrap().spec().unwrap();
        assert!(spec.is_cancun_active_at_timestamp(0));
        assert!(!spec.is_prague_active_at_timestamp(u64::MAX));
        assert!(spec.is_london_active_at_block(0));
        assert_eq!(spec.blob_params_at(5), Some(BlobParams::cancun()));
        let t = Chain::test_network("ShanghaiToCancunAtTime15k")
            .unwrap()
            .spec()
            .unwrap();
        assert!(!t.is_cancun_active_at_timestamp(14_999));
        assert!(t.is_cancun_active_at_timestamp(15_000));
        assert!(matches!(
            Chain::test_network("London"),
            Err(ChainError::PreMerge(_))
        ));
        assert!(matches!(
            Chain::test_network("Fusaka"),
            Err(ChainError::UnknownNetwork(_))
        ));
    }

    #[test]
    fn a_genesis_config_gives_its_forks_and_blob_schedule() {
        let json: serde_json::Value = serde_json::from_str(
            r#"{"config": {"chainId": 7, "homesteadBlock": 0, "londonBlock": 0, "terminalTotalDifficulty": 0,
                "shanghaiTime": 0, "cancunTime": 10, "pragueTime": 20,
                "blobSchedule": {"cancun": {"target": 3, "max": 6, "baseFeeUpdateFraction": 3338477},
                                 "prague": {"target": 4, "max": 8, "baseFeeUpdateFraction": 5007716}}}}"#,
        )
        .unwrap();
        let chain = Chain::from_genesis_json(&json).unwrap();
        let spec = chain.spec().unwrap();
        assert_eq!(spec.chain_id, 7);
        assert!(spec.is_merged(0));
        assert!(!spec.is_cancun_active_at_timestamp(9));
        assert_eq!(spec.blob_params_at(15).unwrap().max_blob_count, 6);
        assert_eq!(spec.blob_params_at(25).unwrap().max_blob_count, 8);
    }
}
