//! The packet cache of one up track.
//!
//! A ring of recent packets indexed by sequence number (slot = seqno modulo
//! capacity, so lookups for NACKs are O(1)), the position of the last
//! keyframe (for replaying a GOP to a new subscriber), and a loss bitmap
//! that finds the holes to NACK upstream. Payloads are `Bytes`, shared with
//! every down track queue, so storing a packet copies nothing.
//!
//! Owned by the up track's reader task: no lock.

use bytes::Bytes;

use super::rtcp::NackPair;

/// Sequence number comparison modulo 2^16: `a - b` as a signed distance.
pub fn seq_diff(a: u16, b: u16) -> i16 {
    a.wrapping_sub(b) as i16
}

/// A packet as the cache keeps it: what a down track needs to rewrite it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPacket {
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub keyframe: bool,
    pub payload: Bytes,
}

/// A GOP is replayed to a new subscriber only if its keyframe is at most this
/// many packets old (Galène's value); otherwise a fresh keyframe is asked for.
pub const REPLAY_MAX_PACKETS: u16 = 40;

pub const MIN_VIDEO_CAPACITY: usize = 128;
pub const MIN_AUDIO_CAPACITY: usize = 24;
pub const MAX_CAPACITY: usize = 1024;

#[derive(Debug)]
pub struct PacketCache {
    slots: Vec<Option<CachedPacket>>,
    newest: Option<u16>,
    last_keyframe: Option<u16>,
    bytes: usize,
    bitmap: LossBitmap,
}

/// What `store` learnt about a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Newer than anything seen so far (possibly after a hole).
    InOrder,
    /// Older than the newest packet: a reordered packet or a retransmission.
    Late,
    /// Already in the cache.
    Duplicate,
}

impl PacketCache {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, MAX_CAPACITY);
        PacketCache {
            slots: vec![None; capacity],
            newest: None,
            last_keyframe: None,
            bytes: 0,
            bitmap: LossBitmap::default(),
        }
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Bytes of payload held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn newest(&self) -> Option<u16> {
        self.newest
    }

    pub fn last_keyframe(&self) -> Option<u16> {
        self.last_keyframe
    }

    fn slot(&self, seq: u16) -> usize {
        usize::from(seq) % self.slots.len()
    }

    /// Store a packet, updating the keyframe position and the loss bitmap.
    pub fn store(&mut self, packet: CachedPacket) -> Arrival {
        let seq = packet.seq;
        let arrival = match self.newest {
            None => Arrival::InOrder,
            Some(n) if seq_diff(seq, n) > 0 => Arrival::InOrder,
            Some(_) if self.get(seq).is_some() => return Arrival::Duplicate,
            Some(_) => Arrival::Late,
        };
        if arrival == Arrival::Late {
            if let Some(n) = self.newest {
                // Too old to fit without evicting newer packets.
                if i32::from(seq_diff(n, seq)) >= self.slots.len() as i32 {
                    self.bitmap.set(seq);
                    return Arrival::Late;
                }
            }
        } else {
            self.newest = Some(seq);
        }
        if packet.keyframe
            && self
                .last_keyframe
                .is_none_or(|k| seq_diff(seq, k) > 0 || self.get(k).is_none())
        {
            self.last_keyframe = Some(seq);
        }
        self.bitmap.set(seq);
        let i = self.slot(seq);
        self.bytes += packet.payload.len();
        if let Some(old) = self.slots[i].replace(packet) {
            self.bytes -= old.payload.len();
        }
        arrival
    }

    /// The packet with this sequence number, if still cached.
    pub fn get(&self, seq: u16) -> Option<&CachedPacket> {
        self.slots[self.slot(seq)].as_ref().filter(|p| p.seq == seq)
    }

    /// The packets from the last keyframe to the newest, if that keyframe is
    /// recent enough and still cached. Missing packets are skipped.
    pub fn keyframe_replay(&self) -> Option<Vec<CachedPacket>> {
        let (k, n) = (self.last_keyframe?, self.newest?);
        let span = seq_diff(n, k);
        if span < 0 || span as u16 >= REPLAY_MAX_PACKETS {
            return None;
        }
        self.get(k)?;
        Some(
            (0..=span as u16)
                .filter_map(|i| self.get(k.wrapping_add(i)).cloned())
                .collect(),
        )
    }

    /// Change the capacity, keeping the newest packets.
    pub fn resize(&mut self, capacity: usize) {
        let capacity = capacity.clamp(1, MAX_CAPACITY);
        if capacity == self.slots.len() {
            return;
        }
        let old = std::mem::replace(&mut self.slots, vec![None; capacity]);
        self.bytes = 0;
        let Some(newest) = self.newest else { return };
        for p in old.into_iter().flatten() {
            if i32::from(seq_diff(newest, p.seq)) < capacity as i32 {
                self.bytes += p.payload.len();
                let i = self.slot(p.seq);
                self.slots[i] = Some(p);
            }
        }
    }

    /// Resize only when the capacity is far from `target` (Galène's
    /// hysteresis: below 3/4 of it or at least twice it).
    pub fn resize_towards(&mut self, target: usize) -> bool {
        let target = target.clamp(1, MAX_CAPACITY);
        let current = self.slots.len();
        if current * 4 < target * 3 || current >= target * 2 {
            self.resize(target);
            return true;
        }
        false
    }

    /// The oldest hole that is at least `age` packets behind the newest
    /// packet, as one NACK pair (the hole and up to 16 more after it, all as
    /// old). Each hole is reported once.
    pub fn take_nack(&mut self, age: u16) -> Option<NackPair> {
        self.bitmap.take_nack(age)
    }
}

/// Received packets in a 64-packet window. Bit i stands for `base + i`.
#[derive(Debug, Default, Clone)]
struct LossBitmap {
    base: u16,
    bits: u64,
}

impl LossBitmap {
    fn set(&mut self, seq: u16) {
        if self.bits == 0 {
            self.base = seq;
            self.bits = 1;
            return;
        }
        let d = seq_diff(seq, self.base);
        if d < 0 {
            // Older than the window: either long reported, or a reset.
            if d < -1024 {
                self.base = seq;
                self.bits = 1;
            }
            return;
        }
        let d = d as u32;
        if d >= 64 {
            if d >= 64 + 1024 {
                self.base = seq;
                self.bits = 1;
                return;
            }
            // Slide so that seq becomes the last bit; older holes are given up.
            let shift = d - 63;
            self.bits = if shift >= 64 { 0 } else { self.bits >> shift };
            self.base = self.base.wrapping_add(shift as u16);
            self.bits |= 1 << 63;
        } else {
            self.bits |= 1 << d;
        }
        self.trim();
    }

    /// Drop the received prefix so that bit 0 is the oldest hole (or the
    /// newest packet when there is none).
    fn trim(&mut self) {
        let ones = self.bits.trailing_ones();
        let newest = 63 - self.bits.leading_zeros();
        let shift = ones.min(newest);
        self.bits >>= shift;
        self.base = self.base.wrapping_add(shift as u16);
    }

    fn take_nack(&mut self, age: u16) -> Option<NackPair> {
        if self.bits == 0 {
            return None;
        }
        let newest = 63 - self.bits.leading_zeros();
        let limit = newest.checked_sub(u32::from(age))?;
        // Eligible positions are 0..=limit.
        let eligible = if limit >= 63 {
            u64::MAX
        } else {
            (1u64 << (limit + 1)) - 1
        };
        let holes = !self.bits & eligible;
        if holes == 0 {
            return None;
        }
        let first = holes.trailing_zeros();
        let rest = (holes >> (first + 1)) & 0xFFFF;
        let pair = NackPair {
            packet_id: self.base.wrapping_add(first as u16),
            lost_packets: rest as u16,
        };
        // Reported: mark them so they are not reported again.
        self.bits |= 1 << first;
        self.bits |= rest << (first + 1);
        self.trim();
        Some(pair)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16, len: usize) -> CachedPacket {
        CachedPacket {
            seq,
            timestamp: u32::from(seq) * 3000,
            marker: false,
            keyframe: false,
            payload: Bytes::from(vec![seq as u8; len]),
        }
    }

    fn keyframe(seq: u16) -> CachedPacket {
        CachedPacket {
            keyframe: true,
            ..packet(seq, 10)
        }
    }

    #[test]
    fn store_and_get() {
        let mut c = PacketCache::new(16);
        assert_eq!(c.store(packet(13, 100)), Arrival::InOrder);
        assert_eq!(c.store(packet(17, 200)), Arrival::InOrder);
        assert_eq!(c.get(13).map(|p| p.payload.len()), Some(100));
        assert_eq!(c.get(17).map(|p| p.payload.len()), Some(200));
        assert!(c.get(42).is_none(), "creation ex nihilo");
        assert!(c.get(13 + 16).is_none(), "same slot, other seqno");
        assert_eq!(c.store(packet(15, 50)), Arrival::Late);
        assert_eq!(c.store(packet(15, 50)), Arrival::Duplicate);
        assert_eq!(c.bytes(), 350);
        assert_eq!(c.newest(), Some(17));
    }

    #[test]
    fn overflow_keeps_newest() {
        // Galène's TestCacheOverflow: 32 packets in 16 slots.
        let mut c = PacketCache::new(16);
        for i in 0..32u16 {
            c.store(packet(i, 1));
        }
        for i in 0..32u16 {
            assert_eq!(c.get(i).is_some(), i >= 16, "seqno {i}");
        }
        assert_eq!(c.bytes(), 16);
        // A packet older than the window does not evict a newer one.
        assert_eq!(c.store(packet(3, 1)), Arrival::Late);
        assert!(c.get(19).is_some());
        assert!(c.get(3).is_none());
    }

    #[test]
    fn wraparound() {
        let mut c = PacketCache::new(16);
        for i in 0..40u16 {
            c.store(packet(65530u16.wrapping_add(i), 1));
        }
        let newest = 65530u16.wrapping_add(39);
        assert_eq!(c.newest(), Some(newest));
        for back in 0..16u16 {
            assert!(c.get(newest.wrapping_sub(back)).is_some());
        }
        assert!(c.get(newest.wrapping_sub(16)).is_none());
    }

    #[test]
    fn resize() {
        // Galène's grow and shrink cases, by content rather than layout:
        // 24 packets went into 16 slots, so 8..24 are cached.
        for (capacity, first) in [(32, 8u16), (12, 12), (16, 8)] {
            let mut c = PacketCache::new(16);
            for i in 0..24u16 {
                c.store(packet(i, 1));
            }
            c.resize(capacity);
            let present: Vec<u16> = (0..24).filter(|&i| c.get(i).is_some()).collect();
            assert_eq!(
                present,
                (first..24).collect::<Vec<u16>>(),
                "capacity {capacity}"
            );
            assert_eq!(c.bytes(), usize::from(24 - first));
        }
        let mut c = PacketCache::new(128);
        assert!(!c.resize_towards(150));
        assert!(c.resize_towards(200));
        assert_eq!(c.capacity(), 200);
        assert!(!c.resize_towards(101));
        assert!(c.resize_towards(100));
        assert_eq!(c.capacity(), 100);
        assert!(c.resize_towards(100_000));
        assert_eq!(c.capacity(), MAX_CAPACITY);
    }

    #[test]
    fn keyframe_replay() {
        let mut c = PacketCache::new(128);
        assert!(c.keyframe_replay().is_none(), "empty cache");
        for i in 0..10 {
            c.store(packet(i, 1));
        }
        assert!(c.keyframe_replay().is_none(), "no keyframe");
        c.store(keyframe(10));
        for i in 11..20 {
            if i != 15 {
                c.store(packet(i, 1));
            }
        }
        let replay = c.keyframe_replay().expect("recent keyframe");
        let seqs: Vec<u16> = replay.iter().map(|p| p.seq).collect();
        assert_eq!(seqs, vec![10, 11, 12, 13, 14, 16, 17, 18, 19]);
        // A late retransmission of an older keyframe packet does not move it.
        c.store(keyframe(5));
        assert_eq!(c.last_keyframe(), Some(10));
        for i in 20..(10 + REPLAY_MAX_PACKETS) {
            c.store(packet(i, 1));
        }
        assert!(c.keyframe_replay().is_some(), "39 packets back");
        c.store(packet(10 + REPLAY_MAX_PACKETS, 1));
        assert!(c.keyframe_replay().is_none(), "keyframe too old");
    }

    /// Galène's bitmap vector: packets 42+i for every bit i set.
    const VALUE: u64 = 0xcdd58f1e035379c0;

    fn nacked(pairs: &[NackPair]) -> Vec<u16> {
        pairs.iter().flat_map(|p| p.packet_list()).collect()
    }

    #[test]
    fn loss_bitmap() {
        for start in [42u16, 65530] {
            let mut c = PacketCache::new(128);
            let mut stored = vec![];
            for i in 0..64u16 {
                if VALUE & (1 << i) != 0 {
                    c.store(packet(start.wrapping_add(i), 1));
                    stored.push(i);
                }
            }
            let (first, last) = (stored[0], *stored.last().expect("some"));
            let mut pairs = vec![];
            while let Some(p) = c.take_nack(0) {
                pairs.push(p);
            }
            let expected: Vec<u16> = (first..=last)
                .filter(|i| VALUE & (1 << i) == 0)
                .map(|i| start.wrapping_add(i))
                .collect();
            assert_eq!(nacked(&pairs), expected, "start {start}");
            assert!(c.take_nack(0).is_none(), "each hole once");
        }
    }

    #[test]
    fn nack_age() {
        let mut c = PacketCache::new(128);
        for s in [100u16, 101, 103, 104, 105] {
            c.store(packet(s, 1));
        }
        // Hole 102 is 3 packets behind 105.
        assert!(c.take_nack(4).is_none());
        c.store(packet(106, 1));
        let p = c.take_nack(4).expect("hole old enough");
        assert_eq!(p.packet_list(), vec![102]);
        // The hole arriving late changes nothing.
        c.store(packet(102, 1));
        assert!(c.take_nack(0).is_none());
        // A jump far ahead resets the window instead of NACKing thousands.
        c.store(packet(30000, 1));
        c.store(packet(30002, 1));
        assert_eq!(c.take_nack(0).map(|p| p.packet_list()), Some(vec![30001]));
    }
}
