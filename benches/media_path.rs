//! Micro-benchmarks of the per-packet work Cinnabar does itself (as opposed
//! to socket I/O): the packet cache, the per-subscriber header rewrite, NACK
//! bookkeeping, keyframe detection and our send path's SRTP encryption.
//!
//! Run with `cargo bench --bench media_path`; a report per benchmark lands
//! in `target/criterion/`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cinnabar::media::internals::{
    CachedPacket, Codec, NackAggregator, PacketCache, Rewriter, Sealer, is_keyframe, pack_nacks,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use webrtc::util::Marshal;

/// A typical video packet: a VP8 payload descriptor with a 15-bit PictureID,
/// then 1150 bytes of frame data.
fn vp8_payload(keyframe: bool) -> Bytes {
    let mut payload = vec![0x90, 0x80, 0x80, 0x01, if keyframe { 0x10 } else { 0x11 }];
    payload.resize(1160, 0xAB);
    Bytes::from(payload)
}

fn packet(seq: u16, keyframe: bool) -> CachedPacket {
    CachedPacket {
        seq,
        timestamp: u32::from(seq / 4) * 3000,
        marker: seq % 4 == 3,
        keyframe,
        payload: vp8_payload(keyframe),
    }
}

fn packet_cache(c: &mut Criterion) {
    let mut group = c.benchmark_group("packet_cache");
    group.throughput(Throughput::Elements(1));
    let payload = vp8_payload(false);

    group.bench_function("store", |b| {
        let mut cache = PacketCache::new(512);
        let mut seq = 0u16;
        b.iter(|| {
            seq = seq.wrapping_add(1);
            black_box(cache.store(CachedPacket {
                seq,
                timestamp: u32::from(seq) * 750,
                marker: false,
                keyframe: false,
                payload: payload.clone(),
            }))
        });
    });

    // A subscriber's NACK: the packet 20 behind the newest, answered from the cache.
    group.bench_function("lookup", |b| {
        let mut cache = PacketCache::new(512);
        for seq in 0..1000u16 {
            cache.store(packet(seq, false));
        }
        let mut seq = 980u16;
        b.iter(|| {
            seq = if seq == 999 { 980 } else { seq + 1 };
            black_box(cache.get(black_box(seq)).map(|p| p.payload.clone()))
        });
    });

    // A new subscriber: the GOP since the last keyframe (32 packets).
    group.bench_function("keyframe_replay", |b| {
        let mut cache = PacketCache::new(512);
        for seq in 0..1000u16 {
            cache.store(packet(seq, (968..972).contains(&seq)));
        }
        b.iter(|| black_box(cache.keyframe_replay()));
    });
    group.finish();
}

/// Copies of `source` with consecutive sequence numbers, one per call: the
/// input of each rewrite, made outside the timed part.
fn numbered_copies(source: &CachedPacket) -> impl FnMut() -> CachedPacket + '_ {
    let mut seq = 0u16;
    move || {
        seq = seq.wrapping_add(1);
        CachedPacket {
            seq,
            ..source.clone()
        }
    }
}

fn down_track_rewrite(c: &mut Criterion) {
    let mut group = c.benchmark_group("down_track");
    group.throughput(Throughput::Elements(1));
    let source = packet(7, false);

    group.bench_function("rewrite", |b| {
        let mut rewriter = Rewriter::new(0x1234, 0x89AB_CDEF);
        b.iter_batched(
            numbered_copies(&source),
            |p| black_box(rewriter.rewrite(p, 96, 0xDEAD_BEEF)),
            BatchSize::SmallInput,
        );
    });

    // What webrtc-rs does next with each rewritten packet before SRTP: serialise it.
    group.bench_function("rewrite_and_marshal", |b| {
        let mut rewriter = Rewriter::new(0x1234, 0x89AB_CDEF);
        b.iter_batched(
            numbered_copies(&source),
            |p| {
                rewriter
                    .rewrite(p, 96, 0xDEAD_BEEF)
                    .and_then(|rewritten| rewritten.marshal().ok())
            },
            BatchSize::SmallInput,
        );
    });

    // A subscriber NACKs 17 packets: their publisher seqnos.
    group.bench_function("nack_translation_17", |b| {
        let mut rewriter = Rewriter::new(0x1234, 0x89AB_CDEF);
        for seq in 0..1000u16 {
            rewriter.rewrite(packet(seq, false), 96, 1);
        }
        let nacked: Vec<u16> = (960..977u16).map(|s| s.wrapping_add(0x1234)).collect();
        b.iter(|| {
            black_box(
                nacked
                    .iter()
                    .filter_map(|&s| rewriter.original_seq(s))
                    .count(),
            )
        });
    });
    group.finish();
}

fn nack(c: &mut Criterion) {
    let mut group = c.benchmark_group("nack");
    let payload = vp8_payload(false);

    // Upstream loss of one packet in 10: per packet, store it and ask the
    // loss bitmap for a hole old enough to NACK.
    group.throughput(Throughput::Elements(1));
    group.bench_function("store_with_loss_and_take_nack", |b| {
        let mut cache = PacketCache::new(512);
        let mut seq = 0u16;
        b.iter(|| {
            seq = seq.wrapping_add(1);
            if seq.is_multiple_of(10) {
                seq = seq.wrapping_add(1);
            }
            cache.store(CachedPacket {
                seq,
                timestamp: u32::from(seq) * 750,
                marker: false,
                keyframe: false,
                payload: payload.clone(),
            });
            black_box(cache.take_nack(4))
        });
    });

    group.bench_function("pack_17_seqnos", |b| {
        let seqs: Vec<u16> = (0..17u16).map(|i| 65_530u16.wrapping_add(i * 3)).collect();
        b.iter(|| black_box(pack_nacks(black_box(&seqs), 65_500)));
    });

    // Cache misses of several subscribers gathered for 50 ms, then sent upstream.
    group.bench_function("aggregate_and_poll_16", |b| {
        let start = Instant::now();
        b.iter(|| {
            let mut aggregator = NackAggregator::new(Duration::from_millis(50));
            for seq in 100..116u16 {
                aggregator.add(seq, start);
            }
            black_box(aggregator.poll(start + Duration::from_millis(60), 90, |s| s % 5 == 0))
        });
    });
    group.finish();
}

fn keyframe_detection(c: &mut Criterion) {
    let mut group = c.benchmark_group("keyframe_detection");
    group.throughput(Throughput::Elements(1));
    let vp8_key = vp8_payload(true);
    let vp8_delta = vp8_payload(false);
    // STAP-A holding an SPS and a PPS, as browsers send before an IDR.
    let h264_stap = [
        0x18, 0x00, 0x04, 0x67, 0x42, 0xC0, 0x1F, 0x00, 0x02, 0x68, 0xCE,
    ];
    // FU-A fragment of a non-IDR slice.
    let h264_fu = [0x7C, 0x01, 0xAA, 0xBB];
    // AV1: a sequence header OBU then a key frame OBU.
    let av1_key = [0x28, 0x02, 0x08, 0x00, 0x30, 0x10, 0xAA];
    for (name, codec, payload) in [
        ("vp8_keyframe", Codec::Vp8, &vp8_key[..]),
        ("vp8_delta", Codec::Vp8, &vp8_delta[..]),
        ("h264_stap_a", Codec::H264, &h264_stap[..]),
        ("h264_fu_a", Codec::H264, &h264_fu[..]),
        ("av1_keyframe", Codec::Av1, &av1_key[..]),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(is_keyframe(black_box(codec), black_box(payload))))
        });
    }
    group.finish();
}

/// Our send path's encryption of one rewritten video packet, with each SRTP profile
/// browsers negotiate.
fn srtp_seal(c: &mut Criterion) {
    use webrtc::rtp::header::Header;
    use webrtc::srtp::protection_profile::ProtectionProfile;
    let mut group = c.benchmark_group("send_path");
    group.throughput(Throughput::Elements(1));
    let payload = vp8_payload(false);
    for (name, profile) in [
        ("seal_aead_aes128_gcm", ProtectionProfile::AeadAes128Gcm),
        (
            "seal_aes128_cm_hmac_sha1_80",
            ProtectionProfile::Aes128CmHmacSha1_80,
        ),
    ] {
        let key = vec![7u8; profile.key_len()];
        let salt = vec![9u8; profile.salt_len()];
        let mut sealer = Sealer::new(profile, &key, &salt).expect("sealer");
        let mut header = Header {
            version: 2,
            payload_type: 96,
            ssrc: 0x1234_5678,
            ..Default::default()
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                header.sequence_number = header.sequence_number.wrapping_add(1);
                black_box(sealer.seal(&header, &payload).expect("sealed"))
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    packet_cache,
    down_track_rewrite,
    nack,
    keyframe_detection,
    srtp_seal
);
criterion_main!(benches);
