//! RTCP logic that needs no I/O: receiver statistics for our receiver
//! reports, NTP time, RTT from a report block, NACK packing, the keyframe
//! request limiter (one PLI per 500 ms) and the aggregator that batches the
//! NACKs the cache could not answer before asking the publisher.
//!
//! Every struct takes `now` as an argument, so the tests run faster than real
//! time.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use webrtc::rtcp::transport_feedbacks::transport_layer_nack::NackPair;

use super::packetcache::seq_diff;

/// Maps monotonic instants to 64-bit NTP timestamps (RFC 3550 §4).
#[derive(Debug, Clone, Copy)]
pub struct NtpClock {
    base: Instant,
    base_ntp: u64,
}

/// Seconds between 1900 (NTP epoch) and 1970 (Unix epoch).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

impl NtpClock {
    pub fn new() -> Self {
        let since_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        NtpClock {
            base: Instant::now(),
            base_ntp: duration_to_ntp(since_unix + Duration::from_secs(NTP_UNIX_OFFSET)),
        }
    }

    /// A clock whose `base` instant is NTP time `base_ntp`, for tests.
    #[cfg(test)]
    pub fn with_base(base: Instant, base_ntp: u64) -> Self {
        NtpClock { base, base_ntp }
    }

    pub fn ntp(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.base);
        self.base_ntp.wrapping_add(duration_to_ntp(d))
    }
}

impl Default for NtpClock {
    fn default() -> Self {
        Self::new()
    }
}

pub fn duration_to_ntp(d: Duration) -> u64 {
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (d.as_secs() << 32) | frac
}

/// The middle 32 bits of an NTP timestamp, as carried in LSR.
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// RTT from a report block echoing one of our SRs (RFC 3550 §6.4.1):
/// `now - LSR - DLSR`, all in 1/65536 s. `None` when the block echoes none
/// or the result is absurd (clock trouble or a forged report).
pub fn rtt_from_report(now_ntp: u64, lsr: u32, dlsr: u32) -> Option<Duration> {
    if lsr == 0 {
        return None;
    }
    let rtt = ntp_middle(now_ntp).wrapping_sub(lsr).wrapping_sub(dlsr);
    // More than a minute is not an RTT.
    if rtt > 60 << 16 {
        return None;
    }
    Some(Duration::from_micros((u64::from(rtt) * 1_000_000) >> 16))
}

/// What a receiver report block says about one incoming stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReceptionStats {
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24 bits).
    pub total_lost: u32,
    /// Extended highest sequence number received.
    pub ext_highest: u32,
}

/// Loss accounting of an incoming stream (RFC 3550 A.3).
#[derive(Debug, Clone, Default)]
pub struct ReceiverStats {
    started: bool,
    max_seq: u16,
    cycles: u32,
    base_ext: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
}

impl ReceiverStats {
    pub fn on_packet(&mut self, seq: u16) {
        if !self.started {
            self.started = true;
            self.max_seq = seq;
            self.base_ext = u32::from(seq);
            self.received = 1;
            return;
        }
        let d = seq_diff(seq, self.max_seq);
        if d > 0 && d <= 0x1000 {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(1 << 16);
            }
            self.max_seq = seq;
        } else if !(-0x1000..=0x1000).contains(&d) {
            // The sender restarted its sequence: start counting afresh.
            *self = ReceiverStats::default();
            self.on_packet(seq);
            return;
        }
        self.received = self.received.wrapping_add(1);
    }

    pub fn ext_highest(&self) -> u32 {
        self.cycles | u32::from(self.max_seq)
    }

    /// The numbers for a report block; starts a new reporting interval.
    pub fn report(&mut self) -> ReceptionStats {
        if !self.started {
            return ReceptionStats::default();
        }
        let ext = self.ext_highest();
        let expected = ext.wrapping_sub(self.base_ext).wrapping_add(1);
        let total_lost = expected.saturating_sub(self.received).min(0x7F_FFFF);
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        ReceptionStats {
            fraction_lost,
            total_lost,
            ext_highest: ext,
        }
    }
}

/// Pack sequence numbers into NACK pairs (a seqno and a bitmap of the 16
/// following ones). Input order does not matter; duplicates are merged.
/// Seqnos are ordered modulo 2^16 from `reference`, which must not be newer
/// than any of them.
pub fn pack_nacks(seqs: &[u16], reference: u16) -> Vec<NackPair> {
    let mut offsets: Vec<u16> = seqs.iter().map(|s| s.wrapping_sub(reference)).collect();
    offsets.sort_unstable();
    offsets.dedup();
    let mut pairs: Vec<NackPair> = vec![];
    let mut first_offset = 0u16;
    for off in offsets {
        if let Some(last) = pairs.last_mut() {
            let d = off - first_offset;
            if (1..=16).contains(&d) {
                last.lost_packets |= 1 << (d - 1);
                continue;
            }
        }
        first_offset = off;
        pairs.push(NackPair {
            packet_id: reference.wrapping_add(off),
            lost_packets: 0,
        });
    }
    pairs
}

/// At most one keyframe request upstream per interval; requests made in
/// between are merged into one, sent when the interval ends, and dropped
/// if a keyframe arrives first.
#[derive(Debug, Clone)]
pub struct KeyframeLimiter {
    interval: Duration,
    last_sent: Option<Instant>,
    pending: bool,
}

pub const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

impl KeyframeLimiter {
    pub fn new(interval: Duration) -> Self {
        KeyframeLimiter {
            interval,
            last_sent: None,
            pending: false,
        }
    }

    fn may_send(&self, now: Instant) -> bool {
        self.last_sent
            .is_none_or(|t| now.saturating_duration_since(t) >= self.interval)
    }

    /// A keyframe is wanted. Returns true if a PLI must be sent now.
    pub fn request(&mut self, now: Instant) -> bool {
        if self.may_send(now) {
            self.last_sent = Some(now);
            self.pending = false;
            true
        } else {
            self.pending = true;
            false
        }
    }

    pub fn keyframe_received(&mut self) {
        self.pending = false;
    }

    /// Returns true if a merged request is due now.
    pub fn poll(&mut self, now: Instant) -> bool {
        if self.pending && self.may_send(now) {
            self.pending = false;
            self.last_sent = Some(now);
            return true;
        }
        false
    }

    pub fn deadline(&self) -> Option<Instant> {
        match (self.pending, self.last_sent) {
            (true, Some(t)) => Some(t + self.interval),
            _ => None,
        }
    }
}

/// Collects the seqnos subscribers asked for that the cache lacked, and
/// releases them as one NACK after a short delay (Galène waits 50 ms), so
/// that several subscribers losing the same packet cause one request.
#[derive(Debug, Clone)]
pub struct NackAggregator {
    delay: Duration,
    pending: Vec<u16>,
    deadline: Option<Instant>,
}

pub const NACK_AGGREGATION_DELAY: Duration = Duration::from_millis(50);
/// At most this many pairs in one upstream NACK (Galène's limit).
pub const MAX_NACK_PAIRS: usize = 240;

impl NackAggregator {
    pub fn new(delay: Duration) -> Self {
        NackAggregator {
            delay,
            pending: vec![],
            deadline: None,
        }
    }

    pub fn add(&mut self, seq: u16, now: Instant) {
        if self.pending.len() >= MAX_NACK_PAIRS * 17 || self.pending.contains(&seq) {
            return;
        }
        self.pending.push(seq);
        self.deadline.get_or_insert(now + self.delay);
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// When due, the pairs to send: seqnos older than `oldest_useful` (the
    /// last keyframe, past which nobody can use them) and those for which
    /// `arrived` is true are dropped.
    pub fn poll(
        &mut self,
        now: Instant,
        oldest_useful: u16,
        arrived: impl Fn(u16) -> bool,
    ) -> Vec<NackPair> {
        match self.deadline {
            Some(d) if now >= d => {}
            _ => return vec![],
        }
        self.deadline = None;
        let mut seqs = std::mem::take(&mut self.pending);
        seqs.retain(|&s| seq_diff(s, oldest_useful) >= 0 && !arrived(s));
        let mut pairs = pack_nacks(&seqs, oldest_useful);
        pairs.truncate(MAX_NACK_PAIRS);
        pairs
    }
}

/// Decides when losses are worth a slow-link report (Janus's `slowlink`): many
/// packets lost within a second, at most one report per interval.
#[derive(Debug, Clone, Default)]
pub struct SlowLink {
    last: Option<Instant>,
}

/// Packets lost within a second that make a slow link worth reporting.
pub const SLOW_LINK_LOSSES: u32 = 10;
/// At most one slow-link report per track in this time.
pub const SLOW_LINK_INTERVAL: Duration = Duration::from_secs(5);

impl SlowLink {
    /// Whether `lost` packets in the last second should be reported now.
    pub fn report(&mut self, lost: u32, now: Instant) -> bool {
        let quiet = self
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= SLOW_LINK_INTERVAL);
        if lost >= SLOW_LINK_LOSSES && quiet {
            self.last = Some(now);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(pairs: &[NackPair]) -> Vec<u16> {
        pairs.iter().flat_map(|p| p.packet_list()).collect()
    }

    #[test]
    fn ntp() {
        let base = Instant::now();
        let clock = NtpClock::with_base(base, 10 << 32);
        assert_eq!(clock.ntp(base), 10 << 32);
        assert_eq!(
            clock.ntp(base + Duration::from_millis(500)),
            (10 << 32) | (1 << 31)
        );
        assert_eq!(ntp_middle(0x1234_5678_9ABC_DEF0), 0x5678_9ABC);
        let real = NtpClock::new().ntp(Instant::now()) >> 32;
        // After 2020 and before 2100, in NTP seconds.
        assert!(real > 3_786_825_600 && real < 6_311_433_600, "{real}");
    }

    #[test]
    fn rtt() {
        let now = (100u64 << 32) | (1 << 31); // 100.5 s
        let lsr = ntp_middle(100u64 << 32); // SR sent at 100 s
        // The receiver held it 0.25 s: RTT is 0.25 s.
        let dlsr = 1 << 14;
        assert_eq!(
            rtt_from_report(now, lsr, dlsr),
            Some(Duration::from_millis(250))
        );
        assert_eq!(rtt_from_report(now, 0, dlsr), None);
        // A DLSR larger than the elapsed time wraps to a huge value.
        assert_eq!(rtt_from_report(now, lsr, 1 << 16), None);
    }

    #[test]
    fn receiver_stats() {
        // (seqnos received, expected report) per interval.
        let cases: &[(&[u16], ReceptionStats)] = &[
            (
                &[65530, 65531, 65532, 65533, 65534, 65535],
                ReceptionStats {
                    fraction_lost: 0,
                    total_lost: 0,
                    ext_highest: 65535,
                },
            ),
            // 0..=9 with 2 and 3 lost: 2/10 lost.
            (
                &[0, 1, 4, 5, 6, 7, 8, 9],
                ReceptionStats {
                    fraction_lost: 51,
                    total_lost: 2,
                    ext_highest: 65536 + 9,
                },
            ),
            // The lost packets arrive (retransmitted) with 10, 11: nothing
            // lost in this interval, the total goes back to 0.
            (
                &[2, 3, 10, 11],
                ReceptionStats {
                    fraction_lost: 0,
                    total_lost: 0,
                    ext_highest: 65536 + 11,
                },
            ),
            // Reordering only.
            (
                &[13, 12, 14],
                ReceptionStats {
                    fraction_lost: 0,
                    total_lost: 0,
                    ext_highest: 65536 + 14,
                },
            ),
            // Everything in this interval lost but the last: 9/10.
            (
                &[24],
                ReceptionStats {
                    fraction_lost: 230,
                    total_lost: 9,
                    ext_highest: 65536 + 24,
                },
            ),
            // Nothing received: nothing expected, nothing lost.
            (
                &[],
                ReceptionStats {
                    fraction_lost: 0,
                    total_lost: 9,
                    ext_highest: 65536 + 24,
                },
            ),
        ];
        let mut s = ReceiverStats::default();
        assert_eq!(s.report(), ReceptionStats::default());
        for (i, (seqs, expected)) in cases.iter().enumerate() {
            for &seq in *seqs {
                s.on_packet(seq);
            }
            assert_eq!(s.report(), *expected, "interval {i}");
        }
        // A jump far ahead or behind is a restart, not a loss.
        s.on_packet(30000);
        assert_eq!(
            s.report(),
            ReceptionStats {
                fraction_lost: 0,
                total_lost: 0,
                ext_highest: 30000
            }
        );
        s.on_packet(20000);
        assert_eq!(s.report().ext_highest, 20000);
    }

    #[test]
    fn nack_packing() {
        // (seqnos, reference, expected pairs)
        type Case<'a> = (&'a [u16], u16, &'a [(u16, u16)]);
        let cases: &[Case] = &[
            (&[], 0, &[]),
            (&[5], 0, &[(5, 0)]),
            (&[5, 6, 8], 5, &[(5, 0b101)]),
            (&[8, 5, 6, 6], 2, &[(5, 0b101)]),
            (&[5, 21, 22], 0, &[(5, 1 << 15), (22, 0)]),
            (&[65535, 0, 1], 65000, &[(65535, 0b11)]),
            (&[1, 65534], 65534, &[(65534, 0b100)]),
        ];
        for (seqs, reference, expected) in cases {
            let pairs = pack_nacks(seqs, *reference);
            let got: Vec<(u16, u16)> = pairs
                .iter()
                .map(|p| (p.packet_id, p.lost_packets))
                .collect();
            assert_eq!(&got, expected, "{seqs:?}");
        }
        // Galène's bitmap vector round-trips through packing.
        let value = 0xcdd58f1e035379c0u64;
        let missing: Vec<u16> = (0..64)
            .filter(|i| value & (1 << i) == 0)
            .map(|i| 42 + i)
            .collect();
        assert_eq!(list(&pack_nacks(&missing, 42)), missing);
    }

    #[test]
    fn keyframe_limiter() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut k = KeyframeLimiter::new(KEYFRAME_INTERVAL);
        // Ten requests within 500 ms: one PLI now, one merged request pending.
        let sent: Vec<bool> = (0..10).map(|i| k.request(ms(i * 40))).collect();
        assert_eq!(sent.iter().filter(|&&s| s).count(), 1);
        assert!(sent[0]);
        assert_eq!(k.deadline(), Some(ms(500)));
        assert!(!k.poll(ms(499)));
        // The keyframe arrives: the merged request is dropped.
        k.keyframe_received();
        assert!(!k.poll(ms(500)));
        assert_eq!(k.deadline(), None);
        // No keyframe this time: the merged request goes out at the deadline.
        assert!(k.request(ms(600)));
        assert!(!k.request(ms(700)));
        assert!(!k.poll(ms(1099)));
        assert!(k.poll(ms(1100)));
        assert!(!k.poll(ms(1700)), "sent once");
        assert!(k.request(ms(1700)));
    }

    #[test]
    fn nack_aggregator() {
        let t0 = Instant::now();
        let mut a = NackAggregator::new(NACK_AGGREGATION_DELAY);
        assert_eq!(a.deadline(), None);
        a.add(100, t0);
        a.add(101, t0 + Duration::from_millis(10));
        a.add(100, t0 + Duration::from_millis(20));
        a.add(90, t0 + Duration::from_millis(20));
        a.add(105, t0 + Duration::from_millis(30));
        assert_eq!(a.deadline(), Some(t0 + NACK_AGGREGATION_DELAY));
        assert!(
            a.poll(t0 + Duration::from_millis(49), 95, |_| false)
                .is_empty()
        );
        // 90 is older than the last keyframe (95), 101 arrived meanwhile.
        let pairs = a.poll(t0 + NACK_AGGREGATION_DELAY, 95, |s| s == 101);
        assert_eq!(list(&pairs), vec![100, 105]);
        assert_eq!(pairs.len(), 1);
        assert_eq!(a.deadline(), None);
        assert!(
            a.poll(t0 + Duration::from_secs(1), 95, |_| false)
                .is_empty()
        );
    }

    #[test]
    fn slow_links_are_reported_at_most_every_interval() {
        let start = Instant::now();
        let mut slow = SlowLink::default();
        assert!(
            !slow.report(SLOW_LINK_LOSSES - 1, start),
            "a few losses are no slow link"
        );
        assert!(slow.report(SLOW_LINK_LOSSES, start));
        assert!(
            !slow.report(100, start + Duration::from_secs(1)),
            "once per interval"
        );
        assert!(slow.report(100, start + SLOW_LINK_INTERVAL));
    }
}
