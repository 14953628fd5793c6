//! Sequence number remapping for one down track.
//!
//! Forwarding every packet keeps the mapping the identity. When a down track
//! drops packets on purpose (a layer the subscriber does not get), later
//! packets are shifted down so the subscriber sees no gap, and the VP8
//! PictureID is shifted alike when whole frames are dropped. The map keeps
//! the shifts of recent ranges so late packets (reordering, retransmissions)
//! and the subscriber's NACKs can be translated both ways. A jump of more
//! than 8192 resets it (the publisher restarted its sequence).
//!
//! The down writer adds its own random per-subscriber offset on top.

use super::packetcache::seq_diff;

const MAX_ENTRIES: usize = 128;
const RESET_DISTANCE: u16 = 8192;
/// Entries never cover more than this, so ranges compare safely mod 2^16.
const MAX_SPAN: u16 = 16384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    first: u16,
    count: u16,
    delta: u16,
    pid_delta: u16,
}

impl Entry {
    fn contains(&self, seq: u16) -> bool {
        let d = seq_diff(seq, self.first);
        d >= 0 && (d as u16) < self.count
    }
}

#[derive(Debug, Clone, Default)]
pub struct PacketMap {
    next: u16,
    next_pid: u16,
    delta: u16,
    pid_delta: u16,
    /// Ring of ranges; `last` is the newest.
    entries: Vec<Entry>,
    last: usize,
}

impl PacketMap {
    fn identity(&self) -> bool {
        self.delta == 0 && self.entries.is_empty()
    }

    fn reset(&mut self, seq: u16, pid: u16) {
        *self = PacketMap {
            next: seq.wrapping_add(1),
            next_pid: pid,
            ..Default::default()
        };
    }

    /// Map a packet with seqno `seq` and (VP8) PictureID `pid`: returns the
    /// target seqno and the PictureID shift, or `None` if the packet falls
    /// in no known range (it must not be sent).
    pub fn map(&mut self, seq: u16, pid: u16) -> Option<(u16, u16)> {
        let ahead = seq_diff(seq, self.next) >= 0;
        let distance = if ahead {
            seq.wrapping_sub(self.next)
        } else {
            self.next.wrapping_sub(seq)
        };
        if self.identity() {
            if ahead || distance > RESET_DISTANCE {
                self.next = seq.wrapping_add(1);
                self.next_pid = pid;
            }
            return Some((seq, 0));
        }
        if distance > RESET_DISTANCE {
            self.reset(seq, pid);
            return Some((seq, 0));
        }
        if ahead {
            self.extend(seq);
            self.next = seq.wrapping_add(1);
            self.next_pid = pid;
            return Some((seq.wrapping_add(self.delta), self.pid_delta));
        }
        self.direct(seq)
    }

    /// Record that `seq` is dropped on purpose. Only the next expected
    /// packet can be dropped; returns false otherwise (the caller must send
    /// it). For layer selection, not used yet: every packet is forwarded.
    #[allow(dead_code)]
    pub fn drop(&mut self, seq: u16, pid: u16) -> bool {
        if seq != self.next {
            return false;
        }
        if self.entries.is_empty() {
            // Everything before the first drop went out unshifted.
            self.entries.push(Entry {
                first: seq.wrapping_sub(RESET_DISTANCE),
                count: RESET_DISTANCE,
                delta: 0,
                pid_delta: 0,
            });
            self.last = 0;
        }
        self.pid_delta = self.pid_delta.wrapping_add(pid.wrapping_sub(self.next_pid));
        self.next_pid = pid;
        self.delta = self.delta.wrapping_sub(1);
        self.next = seq.wrapping_add(1);
        true
    }

    /// Extend the newest range to `seq`, or start a new one if the shift
    /// changed since.
    fn extend(&mut self, seq: u16) {
        let Some(e) = self.entries.get_mut(self.last) else {
            return;
        };
        if e.delta == self.delta && e.pid_delta == self.pid_delta {
            let count = seq.wrapping_sub(e.first).wrapping_add(1);
            if count > MAX_SPAN {
                e.first = seq.wrapping_sub(MAX_SPAN - 1);
                e.count = MAX_SPAN;
            } else {
                e.count = count;
            }
            return;
        }
        // Start the new range right after the old one, so seqnos lost in
        // between map with the new shift, unless their targets would
        // collide with the old range's.
        let end = e.first.wrapping_add(e.count);
        let gap_first = end.wrapping_add(e.delta.wrapping_sub(self.delta));
        let first =
            if e.delta.wrapping_sub(self.delta) < RESET_DISTANCE && seq_diff(gap_first, seq) < 0 {
                gap_first
            } else {
                seq
            };
        let entry = Entry {
            first,
            count: seq.wrapping_sub(first).wrapping_add(1),
            delta: self.delta,
            pid_delta: self.pid_delta,
        };
        if self.entries.len() < MAX_ENTRIES {
            self.entries.push(entry);
            self.last = self.entries.len() - 1;
        } else {
            self.last = (self.last + 1) % MAX_ENTRIES;
            self.entries[self.last] = entry;
        }
    }

    /// Newest range first.
    fn ranges(&self) -> impl Iterator<Item = &Entry> {
        let n = self.entries.len();
        (0..n).map(move |i| &self.entries[(self.last + n - i) % n])
    }

    fn direct(&self, seq: u16) -> Option<(u16, u16)> {
        for e in self.ranges() {
            if seq_diff(seq, e.first) >= 0 {
                return e
                    .contains(seq)
                    .then(|| (seq.wrapping_add(e.delta), e.pid_delta));
            }
        }
        None
    }

    /// The seqno a target seqno was mapped from (for the subscriber's
    /// NACKs), and the PictureID shift that was applied.
    pub fn reverse(&self, target: u16) -> Option<(u16, u16)> {
        if self.entries.is_empty() {
            return (self.delta == 0).then_some((target, 0));
        }
        for e in self.ranges() {
            let first = e.first.wrapping_add(e.delta);
            if seq_diff(target, first) >= 0 {
                let seq = target.wrapping_sub(e.delta);
                return e.contains(seq).then_some((seq, e.pid_delta));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Galène's packetmap vectors.

    #[test]
    fn no_drops() {
        let mut m = PacketMap::default();
        for (seq, pid) in [(42, 1001), (43, 1001), (44, 1002), (40, 1000)] {
            assert_eq!(m.map(seq, pid), Some((seq, 0)));
        }
        assert!(m.identity());
        assert_eq!(m.reverse(40), Some((40, 0)));
    }

    #[test]
    fn drops() {
        let mut m = PacketMap::default();
        assert_eq!(m.map(42, 1001), Some((42, 0)));
        assert!(m.drop(43, 1001));
        assert_eq!(m.pid_delta, 0);
        assert_eq!(m.map(44, 1001), Some((43, 0)));
        assert_eq!(m.map(45, 1002), Some((44, 0)));
        assert!(m.drop(46, 1003));
        assert_eq!(m.pid_delta, 1);
        assert_eq!(m.map(47, 1003), Some((45, 1)));
        assert!(m.drop(48, 1003));
        assert_eq!(m.pid_delta, 1);
        assert_eq!(m.map(49, 1003), Some((46, 1)));
        assert_eq!(m.map(60, 1007), Some((57, 1)));
        // Galène cannot map 13 (before the first drop); we can, unshifted,
        // since packets before the first drop went out unchanged.
        assert_eq!(m.map(13, 1000), Some((13, 0)));
        assert_eq!(m.map(44, 1001), Some((43, 0)));
        assert_eq!(m.map(45, 1002), Some((44, 0)));
        assert_eq!(m.map(48, 3), None, "48 was dropped");
        assert_eq!(m.direct(1000), None);
        assert_eq!(m.reverse(44), Some((45, 0)));
        assert_eq!(m.reverse(57), Some((60, 1)));
        assert_eq!(m.reverse(42), Some((42, 0)));
        assert!(!m.drop(50, 1003), "only the next packet can be dropped");
    }

    #[test]
    fn wraparound() {
        let mut m = PacketMap::default();
        assert_eq!(m.map(0, 0), Some((0, 0)));
        assert_eq!(m.map(1, 0), Some((1, 0)));
        assert!(m.drop(2, 1));
        assert_eq!(m.pid_delta, 1);
        assert!(m.drop(3, 1));
        assert_eq!(m.pid_delta, 1);
        for i in 4..256_000u32 {
            let seq = i as u16;
            assert_eq!(
                m.map(seq, ((i / 2) & 0x7FFF) as u16),
                Some((seq.wrapping_sub(2), 1)),
                "{i}"
            );
            if i % 1000 == 0 {
                // Late packets and NACKs still translate after many wraps.
                let old = seq.wrapping_sub(500);
                assert_eq!(m.map(old, 0), Some((old.wrapping_sub(2), 1)));
                assert_eq!(m.reverse(old.wrapping_sub(2)), Some((old, 1)));
            }
        }
    }

    #[test]
    fn reset() {
        let mut m = PacketMap::default();
        assert_eq!(m.map(42, 1001), Some((42, 0)));
        assert!(m.drop(43, 1001));
        assert_eq!(m.map(44, 1001), Some((43, 0)));
        assert_eq!(m.map(40000, 2001), Some((40000, 0)));
        assert!(m.identity(), "reset");
        assert_eq!(m.map(40001, 2001), Some((40001, 0)));
    }

    #[test]
    fn gap_then_drop() {
        // 11 is lost upstream, then 12 is dropped: 11 arriving late keeps the
        // old shift, 13 gets the new one.
        let mut m = PacketMap::default();
        assert_eq!(m.map(10, 0), Some((10, 0)));
        assert!(!m.drop(12, 0), "12 is not next: 11 is missing");
        assert_eq!(m.map(12, 0), Some((12, 0)));
        assert!(m.drop(13, 0));
        assert_eq!(m.map(14, 0), Some((13, 0)));
        assert_eq!(m.map(11, 0), Some((11, 0)));
        assert_eq!(m.reverse(13), Some((14, 0)));
    }
}
