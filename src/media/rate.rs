//! Rate estimation and rate control.
//!
//! [`RateEstimator`] measures a stream's bitrate and packet rate over a
//! window. [`LossEstimator`] is Galène's loss-based estimate of what a
//! subscriber can take, and [`subscriber_limit`]/[`publisher_limit`] combine
//! the subscribers' estimates and REMBs into the one REMB sent upstream.

use std::time::{Duration, Instant};

/// Bitrate and packet rate over a sliding window of `interval`.
#[derive(Debug, Clone)]
pub struct RateEstimator {
    interval: Duration,
    start: Option<Instant>,
    bytes: u64,
    packets: u32,
    bitrate: u64,
    packet_rate: u32,
}

impl RateEstimator {
    pub fn new(interval: Duration) -> Self {
        RateEstimator {
            interval,
            start: None,
            bytes: 0,
            packets: 0,
            bitrate: 0,
            packet_rate: 0,
        }
    }

    fn roll(&mut self, now: Instant) {
        let start = *self.start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed < self.interval {
            return;
        }
        let secs = elapsed.as_secs_f64();
        if elapsed >= self.interval * 2 && self.bytes == 0 {
            self.bitrate = 0;
            self.packet_rate = 0;
        } else {
            self.bitrate = (self.bytes as f64 * 8.0 / secs) as u64;
            self.packet_rate = (f64::from(self.packets) / secs).round() as u32;
        }
        self.start = Some(now);
        self.bytes = 0;
        self.packets = 0;
    }

    pub fn accumulate(&mut self, bytes: usize, now: Instant) {
        self.roll(now);
        self.bytes += bytes as u64;
        self.packets += 1;
    }

    /// (bits per second, packets per second) over the last full window.
    pub fn estimate(&mut self, now: Instant) -> (u64, u32) {
        self.roll(now);
        (self.bitrate, self.packet_rate)
    }
}

/// The smallest REMB we ever send: Galène's floor.
pub const MIN_BITRATE: u64 = 200 * 1024;
/// The loss-based estimate before any receiver report, or once reports
/// stopped for [`REPORT_TIMEOUT`].
pub const DEFAULT_LOSS_RATE: u64 = 512 * 1024;
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(30);
const LOSS_RATE_MIN: u64 = 9600;
const LOSS_RATE_MAX: u64 = 1 << 30;

/// Loss-based estimate of what one subscriber can receive.
#[derive(Debug, Clone)]
pub struct LossEstimator {
    rate: u64,
    last_report: Option<Instant>,
}

impl Default for LossEstimator {
    fn default() -> Self {
        LossEstimator {
            rate: DEFAULT_LOSS_RATE,
            last_report: None,
        }
    }
}

impl LossEstimator {
    /// A receiver report said `fraction_lost`/256 of the packets were lost
    /// while we were sending at `sending` bits per second.
    pub fn on_report(&mut self, fraction_lost: u8, sending: u64, now: Instant) {
        let loss = u64::from(fraction_lost);
        if self.expired(now) {
            self.rate = DEFAULT_LOSS_RATE;
        }
        if loss < 5 && sending >= self.rate * 3 / 4 {
            // Little loss while actually using the estimate: grow ~5%.
            self.rate = self.rate * 269 / 256;
        } else if loss > 25 {
            self.rate = self.rate * (512 - loss) / 512;
        }
        self.rate = self.rate.clamp(LOSS_RATE_MIN, LOSS_RATE_MAX);
        self.last_report = Some(now);
    }

    fn expired(&self, now: Instant) -> bool {
        self.last_report
            .is_none_or(|t| now.saturating_duration_since(t) > REPORT_TIMEOUT)
    }

    pub fn rate(&self, now: Instant) -> u64 {
        if self.expired(now) {
            DEFAULT_LOSS_RATE
        } else {
            self.rate
        }
    }
}

/// What one subscriber can take: its loss-based estimate, lowered by its
/// REMB if it sent one, never below the floor.
pub fn subscriber_limit(loss_rate: u64, remb: Option<u64>) -> u64 {
    loss_rate.min(remb.unwrap_or(u64::MAX)).max(MIN_BITRATE)
}

/// The REMB for one up track: the smallest of its subscribers' limits. When
/// nobody watches it is what a new subscriber starts with (Galène sends its
/// floor instead): browsers pick their resolution from the first estimates and
/// are slow to raise it, so the first person in a room would stay blurry long
/// after others arrive.
pub fn publisher_limit(limits: impl IntoIterator<Item = u64>) -> u64 {
    limits
        .into_iter()
        .min()
        .unwrap_or(DEFAULT_LOSS_RATE)
        .clamp(MIN_BITRATE, LOSS_RATE_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimator() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut r = RateEstimator::new(Duration::from_secs(1));
        assert_eq!(r.estimate(t0), (0, 0));
        // 100 packets of 1000 bytes in one second: 800 kbit/s, 100 pps.
        for i in 0..100 {
            r.accumulate(1000, ms(i * 10));
        }
        assert_eq!(r.estimate(ms(999)), (0, 0), "window not full yet");
        let (bitrate, pps) = r.estimate(ms(1000));
        assert_eq!((bitrate, pps), (800_000, 100));
        // The estimate holds during the next window...
        assert_eq!(r.estimate(ms(1500)), (800_000, 100));
        // ...and falls to zero once the stream stopped.
        assert_eq!(r.estimate(ms(3100)), (0, 0));
    }

    #[test]
    fn loss_estimator() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut e = LossEstimator::default();
        assert_eq!(e.rate(t0), DEFAULT_LOSS_RATE);
        // (fraction lost, sending rate, expected estimate)
        let cases = [
            (0u8, 100_000u64, DEFAULT_LOSS_RATE), // no loss but not using it: hold
            (0, 500_000, DEFAULT_LOSS_RATE * 269 / 256), // using it: grow
            (10, 600_000, DEFAULT_LOSS_RATE * 269 / 256), // moderate loss: hold
            (128, 600_000, DEFAULT_LOSS_RATE * 269 / 256 * 384 / 512), // heavy: shrink
        ];
        for (i, (loss, sending, expected)) in cases.into_iter().enumerate() {
            e.on_report(loss, sending, s(i as u64));
            assert_eq!(e.rate(s(i as u64)), expected, "report {i}");
        }
        for i in 0..100 {
            e.on_report(255, 0, s(10 + i));
        }
        assert_eq!(e.rate(s(110)), LOSS_RATE_MIN);
        assert_eq!(e.rate(s(200)), DEFAULT_LOSS_RATE, "reports stopped");
    }

    #[test]
    fn limits() {
        assert_eq!(subscriber_limit(512_000, None), 512_000);
        assert_eq!(subscriber_limit(512_000, Some(300_000)), 300_000);
        assert_eq!(subscriber_limit(512_000, Some(1_000_000)), 512_000);
        assert_eq!(subscriber_limit(512_000, Some(10_000)), MIN_BITRATE);
        // Two subscribers at REMB 300k and 1M, default loss estimate.
        let limits = [
            subscriber_limit(DEFAULT_LOSS_RATE, Some(300_000)),
            subscriber_limit(DEFAULT_LOSS_RATE, Some(1_000_000)),
        ];
        assert_eq!(publisher_limit(limits), 300_000);
        assert_eq!(publisher_limit([]), DEFAULT_LOSS_RATE);
    }
}
