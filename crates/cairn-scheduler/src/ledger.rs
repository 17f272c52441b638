//! Stake, rewards, penalties and reputation.
//!
//! Value model (all amounts are integer ledger units):
//! - a node's **stake** comes from [`Ledger::deposit`] (counted in `deposits`);
//! - a verified task **mints** its reward into the winner's **balance** (counted in `minted`); rewards are only
//!   ever credited by the scheduler on a verified, winning result;
//! - a **slash** takes value from the node's stake, then its balance (never below zero); a share goes to the
//!   task's **escrow** (paid to whoever then proves that task), the rest is **burned**; escrow of a task that is
//!   never proved is burned when its job ends;
//! - [`Ledger::withdraw`] moves balance out (counted in `withdrawn`).
//!
//! Conservation, checked by [`Ledger::check_conservation`]:
//! `sum(stake + balance) + escrow + burned + withdrawn == deposits + minted`.
//!
//! Reputation is Aztec's activity score, updated at every epoch boundary:
//! `x <- min(max(0, x - decay) + inc * [proved in epoch], upper)`, with an extra drop of `rep_slash` at every
//! penalty (an extension, so a failing node loses its rank before the next epoch).

use std::collections::BTreeMap;

use crate::idmap::NodeMap;

use serde::{Deserialize, Serialize};

use crate::config::LedgerConfig;
use crate::types::{NodeId, PenaltyCause, RejectReason, TaskId, Time};

/// Ledger errors (only the operations a driver calls can fail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("{node} has a balance of {balance}, cannot withdraw {requested}")]
    InsufficientBalance {
        node: NodeId,
        balance: u64,
        requested: u64,
    },
    #[error("{node} has a stake of {stake}, cannot unstake {requested}")]
    InsufficientStake {
        node: NodeId,
        stake: u64,
        requested: u64,
    },
    #[error(
        "value not conserved: held {held} + escrow {escrow} + burned {burned} + withdrawn {withdrawn} != \
         deposits {deposits} + minted {minted}"
    )]
    NotConserved {
        held: u128,
        escrow: u128,
        burned: u128,
        withdrawn: u128,
        deposits: u128,
        minted: u128,
    },
}

/// Count and amount of penalties, per cause.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PenaltyTally {
    pub silence: CountAmount,
    pub invalid_proof: CountAmount,
    pub wrong_claim: CountAmount,
    pub not_provers_own: CountAmount,
    pub malformed: CountAmount,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountAmount {
    pub count: u64,
    pub amount: u64,
}

impl PenaltyTally {
    fn slot(&mut self, cause: PenaltyCause) -> &mut CountAmount {
        match cause {
            PenaltyCause::Silence => &mut self.silence,
            PenaltyCause::Invalid(RejectReason::InvalidProof) => &mut self.invalid_proof,
            PenaltyCause::Invalid(RejectReason::WrongClaim) => &mut self.wrong_claim,
            PenaltyCause::Invalid(RejectReason::NotProversOwn) => &mut self.not_provers_own,
            PenaltyCause::Invalid(RejectReason::Malformed) => &mut self.malformed,
        }
    }

    pub fn get(&self, cause: PenaltyCause) -> CountAmount {
        let mut copy = self.clone();
        *copy.slot(cause)
    }

    pub fn total_count(&self) -> u64 {
        self.silence.count
            + self.invalid_proof.count
            + self.wrong_claim.count
            + self.not_provers_own.count
            + self.malformed.count
    }
}

/// One node's account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub stake: u64,
    pub balance: u64,
    /// Everything ever credited (task rewards, bounties, epoch rewards).
    pub earned: u64,
    /// Everything ever slashed.
    pub slashed: u64,
    pub tasks_won: u64,
    pub penalties: PenaltyTally,
    /// Activity score.
    pub reputation: u64,
    /// Whether the node proved something in the current epoch.
    pub proved_this_epoch: bool,
    /// Compute time (ms) this node spent on copies that lost, failed or were rejected.
    pub wasted_ms: u64,
    /// Compute time (ms) this node spent on winning copies.
    pub useful_ms: u64,
}

/// Ledger-wide totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub deposits: u128,
    pub minted: u128,
    /// Of `minted`, the part paid as epoch rewards.
    pub minted_epoch: u128,
    pub burned: u128,
    pub escrow: u128,
    pub withdrawn: u128,
    pub rewards_paid: u64,
    pub penalties: PenaltyTally,
    /// Compute time (ms) of winning copies.
    pub useful_ms: u128,
    /// Compute time (ms) of losing redundant copies and backups (cancelled, or verified after the winner).
    pub redundant_ms: u128,
    /// Compute time (ms) of copies that failed, timed out, were abandoned or were rejected.
    pub failed_ms: u128,
}

impl Totals {
    /// (useful + redundant + failed) / useful: 1.0 means no compute was wasted.
    pub fn compute_overhead(&self) -> f64 {
        if self.useful_ms == 0 {
            return 1.0;
        }
        (self.useful_ms + self.redundant_ms + self.failed_ms) as f64 / self.useful_ms as f64
    }
}

/// How a copy's compute ended, for the cost counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ComputeKind {
    Useful,
    Redundant,
    Failed,
}

/// Stake, balances, rewards, penalties by cause, reputation and totals.
#[derive(Debug, Clone)]
pub struct Ledger {
    cfg: LedgerConfig,
    /// Indexed by id (a tree's lookups on every reward and every recorded computation were 3 % of simulating
    /// 100,000 nodes); `accounts()` lists them in id order.
    accounts: NodeMap<Account>,
    escrow: BTreeMap<TaskId, u64>,
    asks: BTreeMap<NodeId, u64>,
    totals: Totals,
    epoch: u64,
    /// Reputation at the 75th percentile over all accounts, as of the last epoch boundary (or account creation).
    top_quartile: u64,
}

impl Ledger {
    pub fn new(cfg: LedgerConfig) -> Self {
        Self {
            cfg,
            accounts: NodeMap::default(),
            escrow: BTreeMap::new(),
            asks: BTreeMap::new(),
            totals: Totals::default(),
            epoch: 0,
            top_quartile: 0,
        }
    }

    pub fn config(&self) -> &LedgerConfig {
        &self.cfg
    }

    /// Creates the node's account if it does not exist.
    pub fn open_account(&mut self, node: NodeId) -> &mut Account {
        let initial = self.cfg.rep_initial;
        self.accounts.get_or_insert_with(node, || Account {
            reputation: initial,
            ..Account::default()
        })
    }

    /// Bond `amount` as the node's stake.
    pub fn deposit(&mut self, node: NodeId, amount: u64) {
        let acct = self.open_account(node);
        acct.stake = acct.stake.saturating_add(amount);
        self.totals.deposits += amount as u128;
    }

    /// Move unbonded stake back to the node's balance.
    pub fn unstake(&mut self, node: NodeId, amount: u64) -> Result<(), LedgerError> {
        let acct = self.open_account(node);
        if acct.stake < amount {
            return Err(LedgerError::InsufficientStake {
                node,
                stake: acct.stake,
                requested: amount,
            });
        }
        acct.stake -= amount;
        acct.balance += amount;
        Ok(())
    }

    /// Pay out `amount` of the node's balance (it leaves the ledger).
    pub fn withdraw(&mut self, node: NodeId, amount: u64) -> Result<(), LedgerError> {
        let acct = self.open_account(node);
        if acct.balance < amount {
            return Err(LedgerError::InsufficientBalance {
                node,
                balance: acct.balance,
                requested: amount,
            });
        }
        acct.balance -= amount;
        self.totals.withdrawn += amount as u128;
        Ok(())
    }

    /// Record the price a node asks per task (used by the auction policy).
    pub fn set_ask(&mut self, node: NodeId, price: u64) {
        self.asks.insert(node, price);
    }

    pub fn ask(&self, node: NodeId) -> Option<u64> {
        self.asks.get(&node).copied()
    }

    pub fn account(&self, node: NodeId) -> Option<&Account> {
        self.accounts.get(&node)
    }

    pub fn accounts(&self) -> impl Iterator<Item = (NodeId, &Account)> {
        self.accounts.iter()
    }

    pub fn stake(&self, node: NodeId) -> u64 {
        self.accounts.get(&node).map_or(0, |a| a.stake)
    }

    pub fn balance(&self, node: NodeId) -> u64 {
        self.accounts.get(&node).map_or(0, |a| a.balance)
    }

    pub fn reputation(&self, node: NodeId) -> u64 {
        self.accounts
            .get(&node)
            .map_or(self.cfg.rep_initial, |a| a.reputation)
    }

    /// Reputation a node needs to be in the top quarter of all accounts (as of the last epoch boundary).
    pub fn top_quartile_reputation(&self) -> u64 {
        self.top_quartile
    }

    pub fn total_stake(&self) -> u128 {
        self.accounts.values().map(|a| a.stake as u128).sum()
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Held in escrow for whoever proves `task`.
    pub fn escrow_for(&self, task: TaskId) -> u64 {
        self.escrow.get(&task).copied().unwrap_or(0)
    }

    /// Current epoch number (`now / epoch_ms` at the last update).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Aztec's share function of an activity score.
    pub fn shares(&self, x: u64) -> u64 {
        let c = &self.cfg;
        if x > c.share_h {
            return c.share_k;
        }
        let d = (c.share_h - x) as u128 / c.rep_inc.max(1) as u128;
        let drop = (c.share_a as u128).saturating_mul(d * d);
        (c.share_k as u128)
            .saturating_sub(drop)
            .max(c.share_m as u128) as u64
    }

    /// Checks `sum(stake + balance) + escrow + burned + withdrawn == deposits + minted`.
    pub fn check_conservation(&self) -> Result<(), LedgerError> {
        let held: u128 = self
            .accounts
            .values()
            .map(|a| a.stake as u128 + a.balance as u128)
            .sum();
        let escrow: u128 = self.escrow.values().map(|v| *v as u128).sum();
        let t = &self.totals;
        if escrow != t.escrow || held + escrow + t.burned + t.withdrawn != t.deposits + t.minted {
            return Err(LedgerError::NotConserved {
                held,
                escrow,
                burned: t.burned,
                withdrawn: t.withdrawn,
                deposits: t.deposits,
                minted: t.minted,
            });
        }
        Ok(())
    }

    // ---- called by the scheduler only ----

    /// Pay the winner of a verified task: the reward (minted) plus any escrow held for the task.
    /// Returns the total credited.
    pub(crate) fn reward(&mut self, node: NodeId, task: TaskId, amount: u64) -> u64 {
        let bounty = self.escrow.remove(&task).unwrap_or(0);
        self.totals.escrow -= bounty as u128;
        self.totals.minted += amount as u128;
        self.totals.rewards_paid += 1;
        let acct = self.open_account(node);
        let total = amount.saturating_add(bounty);
        acct.balance = acct.balance.saturating_add(total);
        acct.earned = acct.earned.saturating_add(total);
        acct.tasks_won += 1;
        acct.proved_this_epoch = true;
        total
    }

    /// Slash `node` for `cause` on `task`. Returns the amount actually taken.
    pub(crate) fn slash(&mut self, node: NodeId, task: TaskId, cause: PenaltyCause) -> u64 {
        let wanted = match cause {
            PenaltyCause::Silence => self.cfg.slash_silence,
            PenaltyCause::Invalid(_) => self.cfg.slash_invalid,
        };
        let rep_slash = self.cfg.rep_slash;
        let acct = self.open_account(node);
        let from_stake = wanted.min(acct.stake);
        acct.stake -= from_stake;
        let from_balance = (wanted - from_stake).min(acct.balance);
        acct.balance -= from_balance;
        let taken = from_stake + from_balance;
        acct.slashed += taken;
        acct.penalties.slot(cause).count += 1;
        acct.penalties.slot(cause).amount += taken;
        acct.reputation = acct.reputation.saturating_sub(rep_slash);
        let slot = self.totals.penalties.slot(cause);
        slot.count += 1;
        slot.amount += taken;
        let to_escrow =
            (taken as u128 * self.cfg.slash_to_finisher_permille.min(1000) as u128 / 1000) as u64;
        if to_escrow > 0 {
            *self.escrow.entry(task).or_insert(0) += to_escrow;
            self.totals.escrow += to_escrow as u128;
        }
        self.totals.burned += (taken - to_escrow) as u128;
        taken
    }

    /// Burn the escrow of a task that will never be proved.
    pub(crate) fn burn_escrow(&mut self, task: TaskId) {
        if let Some(v) = self.escrow.remove(&task) {
            self.totals.escrow -= v as u128;
            self.totals.burned += v as u128;
        }
    }

    pub(crate) fn record_compute(&mut self, node: NodeId, ms: u64, kind: ComputeKind) {
        let acct = self.open_account(node);
        match kind {
            ComputeKind::Useful => {
                acct.useful_ms += ms;
                self.totals.useful_ms += ms as u128;
            }
            ComputeKind::Redundant => {
                acct.wasted_ms += ms;
                self.totals.redundant_ms += ms as u128;
            }
            ComputeKind::Failed => {
                acct.wasted_ms += ms;
                self.totals.failed_ms += ms as u128;
            }
        }
    }

    /// Apply every epoch boundary up to `now`.
    pub(crate) fn advance_to(&mut self, now: Time) {
        let epoch_ms = self.cfg.epoch_ms.max(1);
        let target = now / epoch_ms;
        if target <= self.epoch {
            return;
        }
        let c = self.cfg.clone();
        // The epoch that just ended: activity counts.
        let mut shares_total: u128 = 0;
        if c.epoch_reward > 0 {
            for a in self.accounts.values().filter(|a| a.proved_this_epoch) {
                shares_total += self.shares(a.reputation) as u128;
            }
        }
        let mut paid: u128 = 0;
        let shares: Vec<u64> = if c.epoch_reward > 0 {
            self.accounts
                .values()
                .map(|a| {
                    if a.proved_this_epoch {
                        self.shares(a.reputation)
                    } else {
                        0
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        for (i, a) in self.accounts.values_mut().enumerate() {
            if c.epoch_reward > 0 && shares_total > 0 && a.proved_this_epoch {
                let pay = (shares[i] as u128 * c.epoch_reward as u128 / shares_total) as u64;
                a.balance = a.balance.saturating_add(pay);
                a.earned = a.earned.saturating_add(pay);
                paid += pay as u128;
            }
            let inc = if a.proved_this_epoch { c.rep_inc } else { 0 };
            a.reputation = (a.reputation.saturating_sub(c.rep_decay) + inc).min(c.rep_upper);
            a.proved_this_epoch = false;
        }
        self.totals.minted += paid;
        self.totals.minted_epoch += paid;
        // Epochs after it passed with no activity at all: pure decay, in closed form.
        let idle = target - self.epoch - 1;
        if idle > 0 {
            let drop = c.rep_decay.saturating_mul(idle);
            for a in self.accounts.values_mut() {
                a.reputation = a.reputation.saturating_sub(drop);
            }
        }
        self.epoch = target;
        self.recompute_quartile();
    }

    pub(crate) fn recompute_quartile(&mut self) {
        let mut reps: Vec<u64> = self.accounts.values().map(|a| a.reputation).collect();
        if reps.is_empty() {
            self.top_quartile = 0;
            return;
        }
        // Index of the 75th percentile: the smallest score still inside the top quarter.
        let k = reps.len() - reps.len().div_ceil(4);
        let (_, v, _) = reps.select_nth_unstable(k);
        self.top_quartile = *v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(i: u32) -> TaskId {
        TaskId::new(crate::types::JobId(1), i)
    }

    #[test]
    fn slash_splits_between_escrow_and_burn_and_conserves() {
        let mut l = Ledger::new(LedgerConfig::default());
        l.deposit(NodeId(1), 1_500);
        let taken = l.slash(
            NodeId(1),
            t(0),
            PenaltyCause::Invalid(RejectReason::InvalidProof),
        );
        assert_eq!(taken, 1_000);
        assert_eq!(l.stake(NodeId(1)), 500);
        assert_eq!(l.escrow_for(t(0)), 500);
        assert_eq!(l.totals().burned, 500);
        l.check_conservation().unwrap();
        // The finisher gets reward + escrow.
        assert_eq!(l.reward(NodeId(2), t(0), 100), 600);
        assert_eq!(l.escrow_for(t(0)), 0);
        l.check_conservation().unwrap();
        // Slashing more than is held takes only what is there.
        assert_eq!(l.slash(NodeId(1), t(1), PenaltyCause::Silence), 100);
        assert_eq!(l.slash(NodeId(3), t(1), PenaltyCause::Silence), 0);
        l.burn_escrow(t(1));
        l.check_conservation().unwrap();
        assert_eq!(l.totals().penalties.silence.count, 2);
        assert_eq!(l.totals().penalties.invalid_proof.amount, 1_000);
    }

    #[test]
    fn withdraw_and_unstake_are_checked() {
        let mut l = Ledger::new(LedgerConfig::default());
        l.deposit(NodeId(1), 10);
        assert!(l.withdraw(NodeId(1), 1).is_err());
        l.unstake(NodeId(1), 4).unwrap();
        assert!(l.unstake(NodeId(1), 7).is_err());
        l.withdraw(NodeId(1), 4).unwrap();
        assert_eq!(l.balance(NodeId(1)), 0);
        l.check_conservation().unwrap();
    }

    #[test]
    fn activity_score_follows_aztec_formula() {
        let cfg = LedgerConfig {
            epoch_ms: 1_000,
            ..LedgerConfig::default()
        };
        let mut l = Ledger::new(cfg);
        l.open_account(NodeId(1));
        l.open_account(NodeId(2));
        // Epoch 0: node 1 proves.
        l.reward(NodeId(1), t(0), 1);
        l.advance_to(1_000);
        assert_eq!(l.reputation(NodeId(1)), 125_000);
        assert_eq!(l.reputation(NodeId(2)), 0);
        // Epoch 1 idle, epochs 2..=4 idle too: 4 decays of 100,000 floor at 0.
        l.advance_to(5_500);
        assert_eq!(l.epoch(), 5);
        assert_eq!(l.reputation(NodeId(1)), 0);
        // The cap holds.
        for e in 6..1000 {
            l.reward(NodeId(1), t(e), 1);
            l.advance_to(e as u64 * 1_000);
        }
        assert_eq!(l.reputation(NodeId(1)), 15_000_000);
    }

    #[test]
    fn epoch_reward_split_by_shares_conserves() {
        let cfg = LedgerConfig {
            epoch_ms: 1_000,
            epoch_reward: 1_000,
            ..LedgerConfig::default()
        };
        let mut l = Ledger::new(cfg);
        l.reward(NodeId(1), t(0), 0);
        l.reward(NodeId(2), t(1), 0);
        l.advance_to(1_000);
        assert_eq!(l.balance(NodeId(1)), 500);
        assert_eq!(l.balance(NodeId(2)), 500);
        l.check_conservation().unwrap();
        assert_eq!(l.shares(15_000_000), 1_000_000);
        assert_eq!(l.shares(0), 100_000);
    }

    #[test]
    fn top_quartile() {
        let mut l = Ledger::new(LedgerConfig::default());
        for i in 0..8u64 {
            l.open_account(NodeId(i)).reputation = i * 10;
        }
        l.recompute_quartile();
        // Top quarter of 8 is 2 nodes: scores 70 and 60.
        assert_eq!(l.top_quartile_reputation(), 60);
    }
}
