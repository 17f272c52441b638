//! A deterministic builder of synthetic blocks (`cairn block gen`), encoded, signed and witnessed as
//! Ethereum's own, so they go through exactly the path real blocks take.
//!
//! 1. **Genesis** (native revm, not part of the block): a deployer deploys `tokens` CairnTokens, a
//!    CairnRouter and `pools` CairnPairs, seeds every pool with liquidity, and gives every one of `accounts`
//!    users ETH and each token; each user approves the router for each token. That state, as a
//!    Merkle-Patricia trie, is the parent's state; a synthetic parent header carries its root.
//! 2. **The block**: EIP-1559 transactions drawn by the mix (ETH transfers, some to new addresses; ERC-20
//!    transfers; swaps through one or two pools; deployments of a new CairnToken), each signed with its
//!    sender's secp256k1 key and run as it is added, until the gas target. Once the drawn kind no longer fits,
//!    ETH transfers fill the rest.
//! 3. **The witness**: Merkle proofs (from the full pre-state trie) of every account and slot the block
//!    touched, the code it ran, and the parent header; nodes a deletion needs to collapse the trie are added
//!    as the stateless validation asks for them.
//! 4. **The header**: the fields only execution gives (gas used, receipts root, logs bloom, state root) come
//!    from [`crate::execute_input`] on the block itself; then the block is validated once more, as the guest
//!    will, which gives the journal a proof must carry.
//!
//! The chain: chain id 59144 (Linea's; these are meant to look like L2 blocks) with Ethereum's rules up to
//! Cancun. Same config and seed, same bytes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use alloy_consensus::{
    Block, BlockBody, Header, SignableTransaction, Signed, TxEip1559, TxEnvelope,
};
use alloy_eips::eip4788::BEACON_ROOTS_ADDRESS;
use alloy_eips::eip4895::Withdrawals;
use alloy_evm::eth::EthEvmFactory;
use alloy_evm::Evm;
use alloy_evm::{EvmEnv, EvmFactory, FromRecoveredTx};
use alloy_primitives::{keccak256, Address, Bytes, Signature, TxKind, B256, U256};
use alloy_trie::proof::ProofRetainer;
use alloy_trie::{HashBuilder, Nibbles, EMPTY_ROOT_HASH};
use k256::ecdsa::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use revm::context::TxEnv;
use revm::context_interface::result::ExecutionResult;
use revm::database::{CacheDB, EmptyDB};
use revm::state::AccountInfo;
use revm::DatabaseCommit;

use crate::chain::{Chain, CustomChain};
use crate::error::BlockError;
use crate::import::{block_rlp, FullAccount};
use crate::input::{StatelessInput, Witness};
use crate::journal::Journal;
use crate::validate::header_rlp;
use crate::{host_sha256, WitnessError};

/// The contracts' creation bytecode (hex), compiled from `contracts/*.sol` by `contracts/build.sh`.
pub mod contracts {
    pub const TOKEN_HEX: &str = include_str!("../contracts/bin/CairnToken.hex");
    pub const PAIR_HEX: &str = include_str!("../contracts/bin/CairnPair.hex");
    pub const ROUTER_HEX: &str = include_str!("../contracts/bin/CairnRouter.hex");
}

/// Transaction kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Eth,
    Erc20,
    Swap,
    Create,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Eth, Kind::Erc20, Kind::Swap, Kind::Create];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Eth => "eth",
            Kind::Erc20 => "erc20",
            Kind::Swap => "swap",
            Kind::Create => "create",
        }
    }

    /// The gas limit the generator gives a transaction of this kind (generous; unused gas is not charged).
    fn gas_limit(self) -> u64 {
        match self {
            Kind::Eth => 21_000,
            Kind::Erc20 => 80_000,
            Kind::Swap => 400_000,
            Kind::Create => 600_000,
        }
    }
}

/// Relative weights of the transaction kinds, by count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    pub eth: u32,
    pub erc20: u32,
    pub swap: u32,
    pub create: u32,
}

impl Default for Mix {
    /// Roughly a busy L2 block by count: transfers, token transfers and swaps, a few deployments.
    fn default() -> Self {
        Mix {
            eth: 40,
            erc20: 30,
            swap: 27,
            create: 3,
        }
    }
}

impl Mix {
    /// Only one kind.
    pub fn only(kind: Kind) -> Self {
        let mut mix = Mix {
            eth: 0,
            erc20: 0,
            swap: 0,
            create: 0,
        };
        *mix.weight_mut(kind) = 1;
        mix
    }

    fn weight_mut(&mut self, kind: Kind) -> &mut u32 {
        match kind {
            Kind::Eth => &mut self.eth,
            Kind::Erc20 => &mut self.erc20,
            Kind::Swap => &mut self.swap,
            Kind::Create => &mut self.create,
        }
    }

    fn weight(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Eth => self.eth,
            Kind::Erc20 => self.erc20,
            Kind::Swap => self.swap,
            Kind::Create => self.create,
        }
    }

    /// Parses `eth=40,erc20=30,swap=27,create=3` (kinds left out weigh 0), or one kind's name alone.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(kind) = Kind::ALL.into_iter().find(|k| k.name() == s) {
            return Ok(Mix::only(kind));
        }
        if s == "mix" || s == "default" {
            return Ok(Mix::default());
        }
        let mut mix = Mix {
            eth: 0,
            erc20: 0,
            swap: 0,
            create: 0,
        };
        for part in s.split(',') {
            let (name, weight) = part.split_once('=').ok_or_else(|| {
                format!("`{part}` is not kind=weight (kinds: eth, erc20, swap, create)")
            })?;
            let kind = Kind::ALL
                .into_iter()
                .find(|k| k.name() == name.trim())
                .ok_or_else(|| {
                    format!("unknown transaction kind `{name}` (kinds: eth, erc20, swap, create)")
                })?;
            *mix.weight_mut(kind) = weight
                .trim()
                .parse()
                .map_err(|_| format!("weight of `{name}` is not a whole number"))?;
        }
        if Kind::ALL.iter().all(|k| mix.weight(*k) == 0) {
            return Err("every weight in the mix is 0".into());
        }
        Ok(mix)
    }

    fn draw(&self, rng: &mut impl Rng) -> Kind {
        let total: u32 = Kind::ALL.iter().map(|k| self.weight(*k)).sum();
        let mut pick = rng.random_range(0..total);
        for kind in Kind::ALL {
            let w = self.weight(kind);
            if pick < w {
                return kind;
            }
            pick -= w;
        }
        unreachable!("pick < total")
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "eth={},erc20={},swap={},create={}",
            self.eth, self.erc20, self.swap, self.create
        )
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Gas target (and the block's gas limit).
    pub gas: u64,
    pub seed: u64,
    pub mix: Mix,
    /// Users (senders and recipients).
    pub accounts: usize,
    pub tokens: usize,
    pub pools: usize,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            gas: 30_000_000,
            seed: 1,
            mix: Mix::default(),
            accounts: 2_000,
            tokens: 8,
            pools: 12,
        }
    }
}

/// A generated block.
#[derive(Debug, Clone)]
pub struct Generated {
    pub input: StatelessInput,
    /// The journal a correct proof commits (from [`crate::validate`] on the host).
    pub journal: Journal,
    /// Per kind: (transactions, gas used).
    pub by_kind: BTreeMap<Kind, (u64, u64)>,
}

/// Why a block could not be generated (a bug in the generator or its contracts, not in the user's input).
#[derive(Debug)]
pub struct GenError(pub String);

impl std::fmt::Display for GenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "block generation failed: {}", self.0)
    }
}

impl std::error::Error for GenError {}

/// Parses a gas amount: `30M`, `1.5M`, `500k`, `21000`.
pub fn parse_gas(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().last() {
        Some((i, 'M' | 'm')) => (&s[..i], 1_000_000.0),
        Some((i, 'k' | 'K')) => (&s[..i], 1_000.0),
        Some((i, 'G' | 'g')) => (&s[..i], 1_000_000_000.0),
        _ => (s, 1.0),
    };
    let v: f64 = num
        .replace('_', "")
        .parse()
        .map_err(|_| format!("`{s}` is not a gas amount (e.g. 30M, 500k)"))?;
    if v.is_nan() || v <= 0.0 {
        return Err(format!("gas amount `{s}` must be positive"));
    }
    Ok((v * mul).round() as u64)
}

const GWEI: u128 = 1_000_000_000;
/// Linea's chain id: these are meant to look like L2 blocks.
pub const CHAIN_ID: u64 = 59_144;

/// The chain synthetic blocks belong to: chain id 59144, Ethereum's rules up to Cancun from genesis.
pub fn chain() -> Chain {
    let Chain::Custom(test) = Chain::test_network("Cancun").expect("Cancun is a known network")
    else {
        unreachable!("test networks are custom chains")
    };
    Chain::Custom(CustomChain {
        chain_id: CHAIN_ID,
        forks: test.forks,
        blob_schedule: vec![],
        deposit_contract: None,
    })
}

fn ether(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

fn selector(signature: &str) -> [u8; 4] {
    keccak256(signature.as_bytes())[..4].try_into().unwrap()
}

fn word_address(a: Address) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[12..].copy_from_slice(a.as_slice());
    w
}

fn call(signature: &str, words: &[[u8; 32]]) -> Vec<u8> {
    let mut data = selector(signature).to_vec();
    for w in words {
        data.extend_from_slice(w);
    }
    data
}

fn u(v: U256) -> [u8; 32] {
    v.to_be_bytes::<32>()
}

/// A user: a secp256k1 key and its address, derived from the seed.
struct User {
    key: SigningKey,
    address: Address,
    nonce: u64,
}

fn derive_user(seed: u64, index: u64) -> User {
    let mut counter = 0u64;
    loop {
        let material = [
            b"cairn-evm/user".as_slice(),
            &seed.to_le_bytes(),
            &index.to_le_bytes(),
            &counter.to_le_bytes(),
        ]
        .concat();
        if let Ok(key) = SigningKey::from_slice(keccak256(&material).as_slice()) {
            let point = key.verifying_key().to_encoded_point(false);
            let address = Address::from_slice(&keccak256(&point.as_bytes()[1..])[12..]);
            return User {
                key,
                address,
                nonce: 0,
            };
        }
        counter += 1;
    }
}

/// The genesis world: contracts deployed and funded, users funded and approved.
struct World {
    db: CacheDB<EmptyDB>,
    users: Vec<User>,
    tokens: Vec<Address>,
    pools: Vec<(Address, Address, Address)>, // (pair, token0, token1)
    router: Address,
}

/// An EVM environment for `header` under the synthetic chain's rules.
fn env_for(header: &Header) -> EvmEnv {
    let spec = chain().spec().expect("the synthetic chain is valid");
    let blob = spec.blob_params_at(header.timestamp);
    EvmEnv::for_eth_block(header, &spec, CHAIN_ID, blob)
}

fn build_world(cfg: &GenConfig, template: &Header) -> Result<World, GenError> {
    let err = |what: &str, r: &ExecutionResult| GenError(format!("genesis: {what} failed: {r:?}"));
    let mut db = CacheDB::new(EmptyDB::default());
    let deployer = derive_user(cfg.seed, u64::MAX);
    let mut users: Vec<User> = (0..cfg.accounts as u64)
        .map(|i| derive_user(cfg.seed, i))
        .collect();
    for who in std::iter::once(&deployer).chain(users.iter()) {
        db.insert_account_info(
            who.address,
            AccountInfo {
                balance: ether(1_000),
                ..Default::default()
            },
        );
    }
    // Genesis runs with no base fee and no limit: nothing here is part of the block.
    let genesis_header = Header {
        base_fee_per_gas: Some(0),
        gas_limit: 1 << 40,
        ..template.clone()
    };
    let mut env = env_for(&genesis_header);
    env.cfg_env.tx_gas_limit_cap = Some(u64::MAX);
    let mut evm = EthEvmFactory::default().create_evm(db, env);
    let mut deployer_nonce = 0u64;
    let run = |evm: &mut alloy_evm::EthEvm<CacheDB<EmptyDB>, _, _>,
               from: Address,
               nonce: &mut u64,
               to: Option<Address>,
               data: Vec<u8>|
     -> Result<ExecutionResult, GenError> {
        let tx = TxEnv::builder()
            .caller(from)
            .nonce(*nonce)
            .kind(to.map_or(TxKind::Create, TxKind::Call))
            .gas_limit(5_000_000)
            .gas_price(0)
            .chain_id(Some(CHAIN_ID))
            .data(data.into())
            .build()
            .map_err(|e| GenError(format!("genesis: {e:?}")))?;
        *nonce += 1;
        evm.transact_commit(tx)
            .map_err(|e| GenError(format!("genesis: {e}")))
    };
    let hex_bytes =
        |h: &str| alloy_primitives::hex::decode(h.trim()).expect("committed contract hex is valid");
    let supply = ether(1_000_000_000_000);
    let mut tokens = Vec::new();
    for _ in 0..cfg.tokens {
        let mut init = hex_bytes(contracts::TOKEN_HEX);
        init.extend_from_slice(&u(supply));
        let r = run(&mut evm, deployer.address, &mut deployer_nonce, None, init)?;
        tokens.push(
            r.created_address()
                .ok_or_else(|| err("token deployment", &r))?,
        );
    }
    let r = run(
        &mut evm,
        deployer.address,
        &mut deployer_nonce,
        None,
        hex_bytes(contracts::ROUTER_HEX),
    )?;
    let router = r
        .created_address()
        .ok_or_else(|| err("router deployment", &r))?;
    let mut pools = Vec::new();
    let t = cfg.tokens;
    for p in 0..cfg.pools {
        // Pools i:i+1, then i:i+2, ...: neighbouring pools share a token, so two-hop routes exist.
        let a = p % t;
        let b = (a + 1 + p / t) % t;
        if a == b {
            continue;
        }
        let mut init = hex_bytes(contracts::PAIR_HEX);
        init.extend_from_slice(&word_address(tokens[a]));
        init.extend_from_slice(&word_address(tokens[b]));
        let r = run(&mut evm, deployer.address, &mut deployer_nonce, None, init)?;
        let pair = r
            .created_address()
            .ok_or_else(|| err("pool deployment", &r))?;
        for token in [tokens[a], tokens[b]] {
            let data = call(
                "transfer(address,uint256)",
                &[word_address(pair), u(ether(1_000_000))],
            );
            let r = run(
                &mut evm,
                deployer.address,
                &mut deployer_nonce,
                Some(token),
                data,
            )?;
            if !r.is_success() {
                return Err(err("seeding a pool", &r));
            }
        }
        let r = run(
            &mut evm,
            deployer.address,
            &mut deployer_nonce,
            Some(pair),
            call("sync()", &[]),
        )?;
        if !r.is_success() {
            return Err(err("pool sync", &r));
        }
        pools.push((pair, tokens[a], tokens[b]));
    }
    for user in users.iter_mut() {
        for &token in &tokens {
            let data = call(
                "transfer(address,uint256)",
                &[word_address(user.address), u(ether(10_000))],
            );
            let r = run(
                &mut evm,
                deployer.address,
                &mut deployer_nonce,
                Some(token),
                data,
            )?;
            if !r.is_success() {
                return Err(err("funding a user", &r));
            }
            let data = call(
                "approve(address,uint256)",
                &[word_address(router), u(U256::MAX)],
            );
            let r = run(&mut evm, user.address, &mut user.nonce, Some(token), data)?;
            if !r.is_success() {
                return Err(err("approval", &r));
            }
        }
    }
    let (db, _) = evm.finish();
    Ok(World {
        db,
        users,
        tokens,
        pools,
        router,
    })
}

/// The whole genesis state, account by account.
fn full_state(db: &CacheDB<EmptyDB>) -> BTreeMap<Address, FullAccount> {
    let mut out = BTreeMap::new();
    for (address, account) in &db.cache.accounts {
        let info = &account.info;
        let code = if info.code_hash == alloy_trie::KECCAK_EMPTY {
            vec![]
        } else {
            db.cache.contracts[&info.code_hash]
                .original_bytes()
                .to_vec()
        };
        let storage: BTreeMap<U256, U256> = account
            .storage
            .iter()
            .filter(|(_, v)| !v.is_zero())
            .map(|(k, v)| (*k, *v))
            .collect();
        let acc = FullAccount {
            nonce: info.nonce,
            balance: info.balance,
            code,
            storage,
        };
        if acc != FullAccount::default() {
            out.insert(*address, acc);
        }
    }
    out
}

/// Merkle proofs of `targets` (hashed keys) in the trie of `leaves`: every node on their paths.
fn proofs(leaves: &BTreeMap<B256, Vec<u8>>, targets: &BTreeSet<B256>) -> Vec<Vec<u8>> {
    if leaves.is_empty() {
        return vec![];
    }
    let retainer = ProofRetainer::new(targets.iter().map(|k| Nibbles::unpack(k)).collect());
    let mut hb = HashBuilder::default().with_proof_retainer(retainer);
    for (k, v) in leaves {
        hb.add_leaf(Nibbles::unpack(k), v);
    }
    hb.root();
    hb.take_proof_nodes()
        .nodes_sorted()
        .into_iter()
        .map(|(_, n)| n.to_vec())
        .collect()
}

fn sign(user: &User, tx: TxEip1559) -> Result<TxEnvelope, GenError> {
    let hash = tx.signature_hash();
    let (sig, recovery) = user
        .key
        .sign_prehash_recoverable(hash.as_slice())
        .map_err(|e| GenError(format!("signing: {e}")))?;
    let sig = Signature::from_signature_and_parity(sig, recovery.is_y_odd());
    Ok(TxEnvelope::Eip1559(Signed::new_unhashed(tx, sig)))
}

/// Generates a block.
pub fn generate(cfg: &GenConfig) -> Result<Generated, GenError> {
    if cfg.accounts < 2 || cfg.tokens < 2 || cfg.pools < 1 {
        return Err(GenError(
            "need at least 2 accounts, 2 tokens and 1 pool".into(),
        ));
    }
    if cfg.gas < 21_000 {
        return Err(GenError(format!(
            "a gas target of {} is less than one transfer (21000)",
            cfg.gas
        )));
    }
    let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed);
    let number = 1_000_000 + cfg.seed % 1_000_000;
    let timestamp = 1_767_225_600 + cfg.seed % 1_000_000;
    let base_fee = 7u64;
    let mut template = Header {
        number,
        timestamp,
        gas_limit: cfg.gas,
        base_fee_per_gas: Some(base_fee),
        beneficiary: {
            let mut c = [0u8; 20];
            c[..4].copy_from_slice(b"cain");
            Address::from(c)
        },
        mix_hash: keccak256(cfg.seed.to_le_bytes()),
        withdrawals_root: Some(EMPTY_ROOT_HASH),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(keccak256(
            [b"beacon".as_slice(), &cfg.seed.to_le_bytes()].concat(),
        )),
        ..Header::default()
    };
    let World {
        db: genesis,
        mut users,
        tokens,
        pools,
        router,
    } = build_world(cfg, &template)?;
    let pre_state = full_state(&genesis);

    // The block, over a cache in front of genesis (which then holds exactly what the block touched).
    let mut evm = EthEvmFactory::default().create_evm(CacheDB::new(&genesis), env_for(&template));
    let mut txs = Vec::new();
    let mut kinds = Vec::new();
    let mut gas_used = 0u64;
    let mut fresh = 0u64;
    loop {
        let left = cfg.gas - gas_used;
        if left < Kind::Eth.gas_limit() {
            break;
        }
        let mut kind = cfg.mix.draw(&mut rng);
        if kind.gas_limit() > left {
            kind = Kind::Eth; // fill the rest with transfers
        }
        let n = users.len();
        let sender = rng.random_range(0..n);
        let (to, value, data) = match kind {
            Kind::Eth => {
                let to = if rng.random_ratio(1, 10) {
                    fresh += 1;
                    Address::from_slice(
                        &keccak256(
                            [
                                b"fresh".as_slice(),
                                &cfg.seed.to_le_bytes(),
                                &fresh.to_le_bytes(),
                            ]
                            .concat(),
                        )[12..],
                    )
                } else {
                    users[(sender + 1 + rng.random_range(0..n - 1)) % n].address
                };
                let wei = U256::from(rng.random_range(1u64..1_000_000))
                    * U256::from(1_000_000_000_000u64);
                (Some(to), wei, vec![])
            }
            Kind::Erc20 => {
                let token = tokens[rng.random_range(0..tokens.len())];
                let to = users[(sender + 1 + rng.random_range(0..n - 1)) % n].address;
                let amount = U256::from(rng.random_range(1u64..1_000_000))
                    * U256::from(1_000_000_000_000u64);
                (
                    Some(token),
                    U256::ZERO,
                    call("transfer(address,uint256)", &[word_address(to), u(amount)]),
                )
            }
            Kind::Swap => {
                let amount = U256::from(rng.random_range(1u64..1_000_000))
                    * U256::from(1_000_000_000_000u64);
                let first = rng.random_range(0..pools.len());
                let (pair, t0, t1) = pools[first];
                let token_in = if rng.random_bool(0.5) { t0 } else { t1 };
                let token_mid = if token_in == t0 { t1 } else { t0 };
                let me = users[sender].address;
                // Two hops when another pool holds the token this one gives out.
                let second = pools
                    .iter()
                    .position(|&(p, a, b)| p != pair && (a == token_mid || b == token_mid));
                let data = match second {
                    Some(i) if rng.random_bool(0.4) => call(
                        "swap2(uint256,uint256,address,address,address,address)",
                        &[
                            u(amount),
                            u(U256::ZERO),
                            word_address(pair),
                            word_address(pools[i].0),
                            word_address(token_in),
                            word_address(me),
                        ],
                    ),
                    _ => call(
                        "swap1(uint256,uint256,address,address,address)",
                        &[
                            u(amount),
                            u(U256::ZERO),
                            word_address(pair),
                            word_address(token_in),
                            word_address(me),
                        ],
                    ),
                };
                (Some(router), U256::ZERO, data)
            }
            Kind::Create => {
                let mut init = alloy_primitives::hex::decode(contracts::TOKEN_HEX.trim())
                    .expect("committed contract hex is valid");
                init.extend_from_slice(&u(ether(rng.random_range(1u64..1_000_000))));
                (None, U256::ZERO, init)
            }
        };
        let user = &mut users[sender];
        let tx = sign(
            user,
            TxEip1559 {
                chain_id: CHAIN_ID,
                nonce: user.nonce,
                gas_limit: kind.gas_limit(),
                max_fee_per_gas: 2 * GWEI,
                max_priority_fee_per_gas: GWEI / 10,
                to: to.map_or(TxKind::Create, TxKind::Call),
                value,
                access_list: Default::default(),
                input: Bytes::from(data),
            },
        )?;
        let result = evm
            .transact(TxEnv::from_recovered_tx(&tx, user.address))
            .map_err(|e| GenError(format!("{} transaction {}: {e}", kind.name(), txs.len())))?;
        if !result.result.is_success() {
            return Err(GenError(format!(
                "{} transaction {} failed: {:?}",
                kind.name(),
                txs.len(),
                result.result
            )));
        }
        let gas = result.result.tx_gas_used();
        evm.db_mut().commit(result.state);
        user.nonce += 1;
        gas_used += gas;
        kinds.push((kind, gas));
        txs.push(tx);
    }

    // What the block touched: accounts (and the beacon-roots system contract, whose absence the system
    // call checks) and, per account, its slots.
    let (touched, _) = evm.finish();
    let mut touched_accounts: BTreeSet<Address> = touched.cache.accounts.keys().copied().collect();
    touched_accounts.insert(BEACON_ROOTS_ADDRESS);
    let mut account_leaves = BTreeMap::new();
    let mut storage_nodes = Vec::new();
    let mut codes = BTreeSet::new();
    for (address, acc) in &pre_state {
        let storage: BTreeMap<B256, Vec<u8>> = acc
            .storage
            .iter()
            .map(|(k, v)| (keccak256(k.to_be_bytes::<32>()), alloy_rlp::encode(v)))
            .collect();
        let storage_root = if storage.is_empty() {
            EMPTY_ROOT_HASH
        } else {
            let mut hb = HashBuilder::default();
            for (k, v) in &storage {
                hb.add_leaf(Nibbles::unpack(k), v);
            }
            hb.root()
        };
        if touched_accounts.contains(address) {
            let slots: BTreeSet<B256> = touched
                .cache
                .accounts
                .get(address)
                .map(|a| {
                    a.storage
                        .keys()
                        .map(|k| keccak256(k.to_be_bytes::<32>()))
                        .collect()
                })
                .unwrap_or_default();
            if !slots.is_empty() {
                storage_nodes.extend(proofs(&storage, &slots));
            }
            if !acc.code.is_empty() {
                codes.insert(acc.code.clone());
            }
        }
        let code_hash = if acc.code.is_empty() {
            alloy_trie::KECCAK_EMPTY
        } else {
            keccak256(&acc.code)
        };
        account_leaves.insert(
            keccak256(address),
            alloy_rlp::encode(alloy_trie::TrieAccount {
                nonce: acc.nonce,
                balance: acc.balance,
                storage_root,
                code_hash,
            }),
        );
    }
    let mut hb = HashBuilder::default();
    for (k, v) in &account_leaves {
        hb.add_leaf(Nibbles::unpack(k), v);
    }
    let pre_root = hb.root();
    let account_targets: BTreeSet<B256> = touched_accounts.iter().map(keccak256).collect();
    let mut state: Vec<Vec<u8>> = proofs(&account_leaves, &account_targets);
    state.extend(storage_nodes);
    state.sort();
    state.dedup();

    // The parent: gas used at the target, so the block's base fee is the parent's.
    let parent = Header {
        number: number - 1,
        timestamp: timestamp - 12,
        gas_limit: cfg.gas,
        gas_used: cfg.gas / 2,
        base_fee_per_gas: Some(base_fee),
        state_root: pre_root,
        withdrawals_root: Some(EMPTY_ROOT_HASH),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(B256::ZERO),
        ..Header::default()
    };
    template.parent_hash = parent.hash_slow();
    template.transactions_root = alloy_consensus::proofs::calculate_transaction_root(&txs);
    let mut block = Block {
        header: template,
        body: BlockBody {
            transactions: txs,
            ommers: vec![],
            withdrawals: Some(Withdrawals::new(vec![])),
        },
    };
    let mut witness = Witness {
        state,
        codes: codes.into_iter().collect(),
        headers: vec![header_rlp(&parent)],
    };

    // Fill in what execution gives, adding the nodes a deletion needs (siblings that collapse) from the
    // full pre-state as the validation asks for them.
    let all_nodes: HashMap<B256, Vec<u8>> = {
        let (root, w) = crate::import::full_witness(&pre_state);
        if root != pre_root {
            return Err(GenError(format!(
                "Cairn's trie gives {root}, alloy-trie {pre_root}, for the same state"
            )));
        }
        w.state.into_iter().map(|n| (keccak256(&n), n)).collect()
    };
    let executed = loop {
        let input = StatelessInput::new(chain(), block_rlp(&block), witness.clone());
        match crate::execute_input(&input, host_sha256, &mut |_| {}) {
            Ok((executed, _)) => break executed,
            Err(BlockError::Witness(WitnessError::MissingNode { node, .. }))
                if all_nodes.contains_key(&node) =>
            {
                witness.state.push(all_nodes[&node].clone());
            }
            Err(e) => {
                return Err(GenError(format!(
                    "the generated block does not execute from its own witness: {e}"
                )))
            }
        }
    };
    if executed.tx_gas.iter().map(|(g, _)| *g).collect::<Vec<_>>()
        != kinds.iter().map(|(_, g)| *g).collect::<Vec<_>>()
    {
        return Err(GenError(
            "the block's gas differs between generation and stateless execution".into(),
        ));
    }
    let h = &mut block.header;
    h.gas_used = executed.gas_used;
    h.receipts_root = executed.receipts_root;
    h.logs_bloom = executed.logs_bloom;
    h.state_root = executed.post_state_root;
    let input = StatelessInput::new(chain(), block_rlp(&block), witness);
    let validated = crate::validate_input(&input, host_sha256, &mut |_| {})
        .map_err(|e| GenError(format!("the generated block does not validate: {e}")))?;
    let mut by_kind = BTreeMap::new();
    for (kind, gas) in kinds {
        let e = by_kind.entry(kind).or_insert((0, 0));
        e.0 += 1;
        e.1 += gas;
    }
    Ok(Generated {
        input,
        journal: validated.journal,
        by_kind,
    })
}
