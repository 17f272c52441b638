//! secp256k1 public-key recovery on RISC Zero's bigint2 accelerator (`risc0-bigint2`, proved inside the
//! rv32im circuit), installed for transaction senders (alloy's crypto backend) and the ECRECOVER precompile
//! (revm's crypto provider). The same algorithm as k256's, with the field and curve operations accelerated:
//! R = (r, y) with y = sqrt(r^3 + 7) of the signature's parity, then Q = (-z/r)G + (s/r)R.
//! Pure-Rust k256 costs ~12 M cycles per recovery in the zkVM; `cairn bench evm` measures both.

use cairn_evm::alloy_consensus::crypto::backend::CryptoProvider;
use cairn_evm::alloy_consensus::crypto::RecoveryError;
use cairn_evm::alloy_primitives::{keccak256, Address};
use cairn_evm::revm::precompile::{Crypto, PrecompileHalt};
use risc0_bigint2::ec::{AffinePoint, Secp256k1Curve};
use risc0_bigint2::field::{modadd_256, modinv_256, modmul_256};

/// 256-bit numbers as eight 32-bit words, least significant first (bigint2's layout).
type W = [u32; 8];
type Point = AffinePoint<8, Secp256k1Curve>;

const P: W = [
    0xFFFFFC2F, 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF,
];
const N: W = [
    0xD0364141, 0xBFD25E8C, 0xAF48A03B, 0xBAAEDCE6, 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF,
];
/// (p + 1) / 4: p = 3 mod 4, so a square root is a power.
const SQRT_EXP: W = [
    0xBFFFFF0C, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0x3FFFFFFF,
];
const GX: W = [
    0x16F81798, 0x59F2815B, 0x2DCE28D9, 0x029BFCDB, 0xCE870B07, 0x55A06295, 0xF9DCBBAC, 0x79BE667E,
];
const GY: W = [
    0xFB10D4B8, 0x9C47D08F, 0xA6855419, 0xFD17B448, 0x0E1108A8, 0x5DA4FBFC, 0x26A3C465, 0x483ADA77,
];
const ONE: W = [1, 0, 0, 0, 0, 0, 0, 0];
const SEVEN: W = [7, 0, 0, 0, 0, 0, 0, 0];

fn from_be(b: &[u8]) -> W {
    let mut w = [0u32; 8];
    for (i, word) in w.iter_mut().enumerate() {
        let at = 28 - 4 * i;
        *word = u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    }
    w
}

fn to_be(w: &W, out: &mut [u8]) {
    for (i, word) in w.iter().enumerate() {
        let at = 28 - 4 * i;
        out[at..at + 4].copy_from_slice(&word.to_be_bytes());
    }
}

fn less(a: &W, b: &W) -> bool {
    for i in (0..8).rev() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
    }
    false
}

fn is_zero(a: &W) -> bool {
    a.iter().all(|w| *w == 0)
}

/// a - b for a >= b.
fn sub(a: &W, b: &W) -> W {
    let mut out = [0u32; 8];
    let mut borrow = 0u64;
    for i in 0..8 {
        let d = (a[i] as u64).wrapping_sub(b[i] as u64).wrapping_sub(borrow);
        out[i] = d as u32;
        borrow = (d >> 63) & 1;
    }
    out
}

fn mul(a: &W, b: &W, m: &W) -> W {
    let mut out = [0u32; 8];
    modmul_256(a, b, m, &mut out);
    out
}

fn pow(base: &W, exp: &W, m: &W) -> W {
    let mut acc = ONE;
    for i in (0..256).rev() {
        acc = mul(&acc, &acc, m);
        if (exp[i / 32] >> (i % 32)) & 1 == 1 {
            acc = mul(&acc, base, m);
        }
    }
    acc
}

/// The uncompressed public key (x || y, big-endian) that signed `msg` with (r, s, parity), or `None` where
/// no key did (r or s out of range, r no curve point's x, the point at infinity).
pub fn recover(r_be: &[u8], s_be: &[u8], parity: u8, msg: &[u8; 32]) -> Option<[u8; 64]> {
    let r = from_be(r_be);
    let s = from_be(s_be);
    if parity > 1 || is_zero(&r) || is_zero(&s) || !less(&r, &N) || !less(&s, &N) {
        return None;
    }
    // R = (r, y), y^2 = r^3 + 7 mod p (r < n < p).
    let r3 = mul(&mul(&r, &r, &P), &r, &P);
    let mut rhs = [0u32; 8];
    modadd_256(&r3, &SEVEN, &P, &mut rhs);
    let y = pow(&rhs, &SQRT_EXP, &P);
    if mul(&y, &y, &P) != rhs {
        return None;
    }
    let y = if (y[0] & 1) as u8 == parity { y } else { sub(&P, &y) };
    let big_r = Point::new_unchecked(r, y);
    // u1 = -z / r, u2 = s / r (mod n).
    let mut z = from_be(msg);
    if !less(&z, &N) {
        z = sub(&z, &N);
    }
    let neg_z = if is_zero(&z) { z } else { sub(&N, &z) };
    let mut r_inv = [0u32; 8];
    modinv_256(&r, &N, &mut r_inv);
    let u1 = mul(&neg_z, &r_inv, &N);
    let u2 = mul(&s, &r_inv, &N);
    let g = Point::new_unchecked(GX, GY);
    let mut a = Point::IDENTITY;
    g.mul(&u1, &mut a);
    let mut b = Point::IDENTITY;
    big_r.mul(&u2, &mut b);
    let mut q = Point::IDENTITY;
    a.add(&b, &mut q);
    let [x, y] = q.as_u32s()?;
    let mut out = [0u8; 64];
    to_be(x, &mut out[..32]);
    to_be(y, &mut out[32..]);
    Some(out)
}

fn address(public: &[u8; 64]) -> Address {
    Address::from_slice(&keccak256(public)[12..])
}

/// The accelerated recovery, for alloy's transaction senders and revm's ECRECOVER.
#[derive(Debug)]
pub struct Accelerated;

impl CryptoProvider for Accelerated {
    fn recover_signer_unchecked(&self, sig: &[u8; 65], msg: &[u8; 32]) -> Result<Address, RecoveryError> {
        recover(&sig[..32], &sig[32..64], sig[64], msg)
            .map(|p| address(&p))
            .ok_or_else(RecoveryError::new)
    }

    fn verify_and_compute_signer_unchecked(
        &self,
        pubkey: &[u8; 65],
        sig: &[u8; 64],
        msg: &[u8; 32],
    ) -> Result<Address, RecoveryError> {
        for parity in 0..2 {
            if let Some(p) = recover(&sig[..32], &sig[32..], parity, msg) {
                if p[..] == pubkey[1..] {
                    return Ok(address(&p));
                }
            }
        }
        Err(RecoveryError::new())
    }
}

impl Crypto for Accelerated {
    fn secp256k1_ecrecover(&self, sig: &[u8; 64], recid: u8, msg: &[u8; 32]) -> Result<[u8; 32], PrecompileHalt> {
        let p = recover(&sig[..32], &sig[32..], recid, msg).ok_or(PrecompileHalt::Secp256k1RecoverFailed)?;
        let mut out = keccak256(p).0;
        out[..12].fill(0);
        Ok(out)
    }
}
