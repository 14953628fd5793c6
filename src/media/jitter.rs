//! Interarrival jitter (RFC 3550 §6.4.1 and A.8).

use std::time::Instant;

/// Jitter of one incoming stream, in timestamp units.
#[derive(Debug, Clone)]
pub struct Jitter {
    clock_rate: u32,
    base: Option<Instant>,
    last_transit: Option<u32>,
    /// Jitter scaled by 16, as in RFC 3550 A.8.
    scaled: u32,
}

impl Jitter {
    pub fn new(clock_rate: u32) -> Self {
        Jitter {
            clock_rate: clock_rate.max(1),
            base: None,
            last_transit: None,
            scaled: 0,
        }
    }

    /// Account for a packet with RTP timestamp `ts` that arrived at `now`.
    /// Call it for packets in sequence order only: a retransmission's
    /// arrival time says nothing about the network's jitter.
    pub fn update(&mut self, ts: u32, now: Instant) {
        let base = *self.base.get_or_insert(now);
        let elapsed = now.saturating_duration_since(base);
        let arrival = (elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as u32;
        let transit = arrival.wrapping_sub(ts);
        if let Some(last) = self.last_transit.replace(transit) {
            let d = (transit.wrapping_sub(last) as i32).unsigned_abs();
            // J += (|D| - J) / 16, with J kept scaled by 16.
            self.scaled = self
                .scaled
                .wrapping_add(d)
                .wrapping_sub((self.scaled + 8) >> 4);
        }
    }

    /// The jitter in timestamp units, as carried in a report block.
    pub fn jitter(&self) -> u32 {
        self.scaled >> 4
    }

    /// The jitter in milliseconds.
    pub fn millis(&self) -> f64 {
        f64::from(self.jitter()) * 1000.0 / f64::from(self.clock_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3550() {
        let t0 = Instant::now();
        // (send time in ms, arrival delay in ms) at 48 kHz, 20 ms packets.
        let delays = [0u64, 0, 0, 10, 0, 0, 30, 5, 5, 5, 0, 0, 0, 0, 0];
        let mut j = Jitter::new(48000);
        let mut reference = 0.0f64;
        let mut last: Option<f64> = None;
        for (i, delay) in delays.iter().enumerate() {
            let sent = i as u64 * 20;
            let ts = ((sent * 48) as u32).wrapping_add(0xFFFF_0000); // near the wrap
            j.update(ts, t0 + Duration::from_millis(sent + delay));
            let transit = (sent + delay) as f64 * 48.0 - sent as f64 * 48.0;
            if let Some(l) = last {
                reference += ((transit - l).abs() - reference) / 16.0;
            }
            last = Some(transit);
            assert!(
                (f64::from(j.jitter()) - reference).abs() <= 1.0,
                "packet {i}: {} vs {reference}",
                j.jitter()
            );
        }
        assert!(j.jitter() > 0);
        assert!((j.millis() - f64::from(j.jitter()) / 48.0).abs() < 1e-9);
    }

    #[test]
    fn steady_stream_has_no_jitter() {
        let t0 = Instant::now();
        let mut j = Jitter::new(90000);
        for i in 0..100u32 {
            j.update(
                i.wrapping_mul(3000).wrapping_add(u32::MAX - 50_000),
                t0 + Duration::from_micros(u64::from(i) * 33_333),
            );
        }
        assert!(j.jitter() <= 1, "{}", j.jitter());
    }
}
