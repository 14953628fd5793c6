//! The trailer every synthetic payload ends with.

use std::time::{SystemTime, UNIX_EPOCH};

const MAGIC: u32 = 0x434e_4252; // "CNBR"

/// What a receiver learns from a synthetic packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Index of the packet in its track, from 0, never reused.
    pub index: u32,
    /// Frame number (video) or packet number (audio).
    pub frame: u32,
    /// Wall-clock send time, microseconds since the Unix epoch.
    pub sent_micros: u64,
    pub flags: u8,
}

impl Probe {
    pub const LEN: usize = 21;
    pub const KEYFRAME: u8 = 1;
    pub const FRAME_START: u8 = 2;
    pub const FRAME_END: u8 = 4;

    pub fn keyframe_start(&self) -> bool {
        self.flags & (Self::KEYFRAME | Self::FRAME_START) == Self::KEYFRAME | Self::FRAME_START
    }

    pub fn append_to(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&MAGIC.to_be_bytes());
        buf.extend_from_slice(&self.index.to_be_bytes());
        buf.extend_from_slice(&self.frame.to_be_bytes());
        buf.extend_from_slice(&self.sent_micros.to_be_bytes());
        buf.push(self.flags);
    }

    /// The probe at the end of `payload`, if there is one.
    pub fn parse(payload: &[u8]) -> Option<Probe> {
        let t = payload.get(payload.len().checked_sub(Self::LEN)?..)?;
        let word = |i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
        if word(0) != MAGIC {
            return None;
        }
        let mut micros = [0u8; 8];
        micros.copy_from_slice(&t[12..20]);
        Some(Probe {
            index: word(4),
            frame: word(8),
            sent_micros: u64::from_be_bytes(micros),
            flags: t[20],
        })
    }
}

pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = Probe {
            index: 7,
            frame: 3,
            sent_micros: 1_700_000_000_000_000,
            flags: Probe::KEYFRAME | Probe::FRAME_START,
        };
        let mut buf = vec![0x90, 0x80, 1, 2];
        p.append_to(&mut buf);
        assert_eq!(Probe::parse(&buf), Some(p));
        assert!(p.keyframe_start());
        assert_eq!(Probe::parse(&buf[1..buf.len() - 1]), None);
        assert_eq!(Probe::parse(&[]), None);
    }
}
