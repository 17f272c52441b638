//! The journal the `evm-block` guest commits: a fixed 148-byte layout.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | format (1) |
//! | 1 | 1 | commitment (0 SHA-256 sorted, 1 Merkle-Patricia) |
//! | 2 | 1 | signatures checked (0 no, 1 yes) |
//! | 3 | 1 | reserved (0) |
//! | 4 | 4 | transactions (u32 LE) |
//! | 8 | 4 | of them reverted or halted (u32 LE; they still pay gas) |
//! | 12 | 8 | gas used (u64 LE) |
//! | 20 | 32 | pre-state commitment |
//! | 52 | 32 | post-state commitment |
//! | 84 | 32 | SHA-256 of the logs (`docs/EVM.md`) |
//! | 116 | 32 | SHA-256 of the input bytes |

/// Size of the journal in bytes.
pub const JOURNAL_LEN: usize = 148;

/// What a proved block says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    pub commitment: u8,
    pub signatures_checked: bool,
    pub tx_count: u32,
    pub reverted: u32,
    pub gas_used: u64,
    pub pre_state: [u8; 32],
    pub post_state: [u8; 32],
    pub logs_digest: [u8; 32],
    pub input_digest: [u8; 32],
}

impl Journal {
    pub fn to_bytes(&self) -> [u8; JOURNAL_LEN] {
        let mut out = [0u8; JOURNAL_LEN];
        out[0] = crate::input::FORMAT as u8;
        out[1] = self.commitment;
        out[2] = self.signatures_checked as u8;
        out[4..8].copy_from_slice(&self.tx_count.to_le_bytes());
        out[8..12].copy_from_slice(&self.reverted.to_le_bytes());
        out[12..20].copy_from_slice(&self.gas_used.to_le_bytes());
        out[20..52].copy_from_slice(&self.pre_state);
        out[52..84].copy_from_slice(&self.post_state);
        out[84..116].copy_from_slice(&self.logs_digest);
        out[116..148].copy_from_slice(&self.input_digest);
        out
    }

    /// Reads a journal; `None` if it is not 148 bytes of format 1 with known flags.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != JOURNAL_LEN
            || bytes[0] != crate::input::FORMAT as u8
            || bytes[1] > 1
            || bytes[2] > 1
            || bytes[3] != 0
        {
            return None;
        }
        let arr = |at: usize| -> [u8; 32] { bytes[at..at + 32].try_into().unwrap() };
        Some(Journal {
            commitment: bytes[1],
            signatures_checked: bytes[2] == 1,
            tx_count: u32::from_le_bytes(bytes[4..8].try_into().unwrap()),
            reverted: u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
            gas_used: u64::from_le_bytes(bytes[12..20].try_into().unwrap()),
            pre_state: arr(20),
            post_state: arr(52),
            logs_digest: arr(84),
            input_digest: arr(116),
        })
    }
}

impl core::fmt::Display for Journal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let hex = |b: &[u8; 32]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        writeln!(
            f,
            "transactions: {} ({} reverted)",
            self.tx_count, self.reverted
        )?;
        writeln!(f, "gas used:     {}", self.gas_used)?;
        writeln!(
            f,
            "commitment:   {}{}",
            if self.commitment == 1 {
                "Merkle-Patricia"
            } else {
                "SHA-256 sorted"
            },
            if self.signatures_checked {
                ", signatures checked"
            } else {
                ""
            }
        )?;
        writeln!(f, "pre-state:    {}", hex(&self.pre_state))?;
        writeln!(f, "post-state:   {}", hex(&self.post_state))?;
        writeln!(f, "logs:         {}", hex(&self.logs_digest))?;
        write!(f, "input:        {}", hex(&self.input_digest))
    }
}
