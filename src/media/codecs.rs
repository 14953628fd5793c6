//! Codec facts and payload inspection.
//!
//! The SDP parameters of the eight codecs Cinnabar forwards (fixed payload
//! types, as Galène), keyframe detection for VP8, VP9, AV1 and H.264, and a
//! VP8 payload descriptor parser. Everything here works on byte slices and
//! never panics on malformed input: a truncated payload gives `None`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Audio,
    Video,
}

/// A codec a group may allow. Names are Galène's (`"vp8"`, `"opus"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Vp8,
    Vp9,
    Av1,
    H264,
    Opus,
    G722,
    Pcmu,
    Pcma,
}

/// The string did not name a codec Cinnabar knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown codec \"{0}\" (known: vp8, vp9, av1, h264, opus, g722, pcmu, pcma)")]
pub struct UnknownCodec(pub String);

impl Codec {
    pub const ALL: [Codec; 8] = [
        Codec::Vp8,
        Codec::Vp9,
        Codec::Av1,
        Codec::H264,
        Codec::Opus,
        Codec::G722,
        Codec::Pcmu,
        Codec::Pcma,
    ];

    /// Galène's name for the codec.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Vp8 => "vp8",
            Codec::Vp9 => "vp9",
            Codec::Av1 => "av1",
            Codec::H264 => "h264",
            Codec::Opus => "opus",
            Codec::G722 => "g722",
            Codec::Pcmu => "pcmu",
            Codec::Pcma => "pcma",
        }
    }

    pub fn kind(self) -> MediaKind {
        match self {
            Codec::Vp8 | Codec::Vp9 | Codec::Av1 | Codec::H264 => MediaKind::Video,
            Codec::Opus | Codec::G722 | Codec::Pcmu | Codec::Pcma => MediaKind::Audio,
        }
    }

    /// The payload type we use in our own offers.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Vp8 => 96,
            Codec::Vp9 => 98,
            Codec::Av1 => 35,
            Codec::H264 => 102,
            Codec::Opus => 111,
            Codec::G722 => 9,
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    pub fn mime_type(self) -> &'static str {
        match self {
            Codec::Vp8 => "video/VP8",
            Codec::Vp9 => "video/VP9",
            Codec::Av1 => "video/AV1",
            Codec::H264 => "video/H264",
            Codec::Opus => "audio/opus",
            Codec::G722 => "audio/G722",
            Codec::Pcmu => "audio/PCMU",
            Codec::Pcma => "audio/PCMA",
        }
    }

    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48000,
            Codec::G722 | Codec::Pcmu | Codec::Pcma => 8000,
            _ => 90000,
        }
    }

    pub fn channels(self) -> u16 {
        match self {
            Codec::Opus => 2,
            Codec::G722 | Codec::Pcmu | Codec::Pcma => 1,
            _ => 0,
        }
    }

    pub fn fmtp(self) -> &'static str {
        match self {
            Codec::Vp9 => "profile-id=0",
            Codec::H264 => "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
            Codec::Opus => "minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1",
            _ => "",
        }
    }

    /// The codec whose MIME type is `mime` (case-insensitive).
    pub fn from_mime(mime: &str) -> Option<Codec> {
        Codec::ALL
            .into_iter()
            .find(|c| c.mime_type().eq_ignore_ascii_case(mime))
    }
}

impl FromStr for Codec {
    type Err = UnknownCodec;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Codec::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownCodec(s.to_owned()))
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `payload` (an RTP payload of `codec`) starts a keyframe.
/// `None` when it cannot be told (truncated, or a codec without keyframes).
pub fn is_keyframe(codec: Codec, payload: &[u8]) -> Option<bool> {
    match codec {
        Codec::Vp8 => vp8_keyframe(payload),
        Codec::Vp9 => vp9_keyframe(payload),
        Codec::Av1 => av1_keyframe(payload),
        Codec::H264 => h264_keyframe(payload),
        _ => None,
    }
}

/// The fields of a VP8 payload descriptor (RFC 7741 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp8Descriptor {
    /// Non-reference frame (N).
    pub non_reference: bool,
    /// Start of a VP8 partition (S).
    pub start: bool,
    /// Partition index (PID).
    pub partition: u8,
    /// PictureID and whether it is the 15-bit form.
    pub picture_id: Option<(u16, bool)>,
    pub tl0_pic_idx: Option<u8>,
    /// Temporal layer index (TID).
    pub tid: Option<u8>,
    /// Layer sync (Y).
    pub layer_sync: bool,
    pub key_idx: Option<u8>,
    /// Length of the descriptor: the VP8 payload starts here.
    pub len: usize,
}

impl Vp8Descriptor {
    /// First packet of a frame: start of partition 0.
    pub fn frame_start(&self) -> bool {
        self.start && self.partition == 0
    }
}

/// Parse a VP8 payload descriptor. `None` if truncated.
pub fn parse_vp8(payload: &[u8]) -> Option<Vp8Descriptor> {
    let b0 = *payload.first()?;
    let mut d = Vp8Descriptor {
        non_reference: b0 & 0x20 != 0,
        start: b0 & 0x10 != 0,
        partition: b0 & 0x07,
        ..Default::default()
    };
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let x = *payload.get(i)?;
        i += 1;
        if x & 0x80 != 0 {
            let p = *payload.get(i)?;
            i += 1;
            if p & 0x80 != 0 {
                let p2 = *payload.get(i)?;
                i += 1;
                d.picture_id = Some(((u16::from(p & 0x7F) << 8) | u16::from(p2), true));
            } else {
                d.picture_id = Some((u16::from(p & 0x7F), false));
            }
        }
        if x & 0x40 != 0 {
            d.tl0_pic_idx = Some(*payload.get(i)?);
            i += 1;
        }
        if x & 0x30 != 0 {
            let t = *payload.get(i)?;
            i += 1;
            if x & 0x20 != 0 {
                d.tid = Some(t >> 6);
                d.layer_sync = t & 0x20 != 0;
            }
            if x & 0x10 != 0 {
                d.key_idx = Some(t & 0x1F);
            }
        }
    }
    d.len = i;
    Some(d)
}

fn vp8_keyframe(payload: &[u8]) -> Option<bool> {
    let d = parse_vp8(payload)?;
    let first = *payload.get(d.len)?;
    // P bit of the VP8 frame tag: 0 means keyframe.
    Some(d.frame_start() && first & 0x01 == 0)
}

/// Length of a VP9 payload descriptor (RFC 9628 §4.2), with its B and P bits.
fn vp9_descriptor(payload: &[u8]) -> Option<(usize, bool)> {
    let b0 = *payload.first()?;
    let (i_bit, p_bit, l_bit, f_bit) = (
        b0 & 0x80 != 0,
        b0 & 0x40 != 0,
        b0 & 0x20 != 0,
        b0 & 0x10 != 0,
    );
    let b_bit = b0 & 0x08 != 0;
    let v_bit = b0 & 0x02 != 0;
    let mut i = 1;
    if i_bit {
        let m = *payload.get(i)? & 0x80 != 0;
        i += if m { 2 } else { 1 };
    }
    if l_bit {
        i += 1;
        if !f_bit {
            i += 1; // TL0PICIDX
        }
    }
    if f_bit && p_bit {
        // Up to three reference indices, chained by the N bit.
        for _ in 0..3 {
            let r = *payload.get(i)?;
            i += 1;
            if r & 0x01 == 0 {
                break;
            }
        }
    }
    if v_bit {
        let ss = *payload.get(i)?;
        i += 1;
        let layers = usize::from(ss >> 5) + 1;
        if ss & 0x10 != 0 {
            i += 4 * layers;
        }
        if ss & 0x08 != 0 {
            let groups = *payload.get(i)?;
            i += 1;
            for _ in 0..groups {
                let g = *payload.get(i)?;
                i += 1 + usize::from((g >> 2) & 0x03);
            }
        }
    }
    if i > payload.len() {
        return None;
    }
    Some((i, b_bit))
}

fn vp9_keyframe(payload: &[u8]) -> Option<bool> {
    let (len, begin) = vp9_descriptor(payload)?;
    if !begin {
        return Some(false);
    }
    let h = *payload.get(len)?;
    // Uncompressed header: frame_marker (2 bits) must be 0b10.
    if h & 0xC0 != 0x80 {
        return None;
    }
    let profile = ((h >> 5) & 0x01) | (((h >> 4) & 0x01) << 1);
    // show_existing_frame == 0 and frame_type == KEY_FRAME (0); profile 3
    // has one reserved bit before them.
    let mask = if profile == 3 { 0x06 } else { 0x0C };
    Some(h & mask == 0)
}

fn leb128(data: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, b) in data.iter().take(8).enumerate() {
        value |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn av1_keyframe(payload: &[u8]) -> Option<bool> {
    let agg = *payload.first()?;
    // Z=0 (not a continuation) and N=1 (first packet of a coded video sequence).
    if agg & 0x88 != 0x08 {
        return Some(false);
    }
    let count = usize::from((agg >> 4) & 0x03);
    let mut rest = &payload[1..];
    let mut index = 0;
    while !rest.is_empty() {
        index += 1;
        // The last element has no length field when W is set.
        let obu = if count != 0 && index == count {
            let o = rest;
            rest = &[];
            o
        } else {
            let (len, n) = leb128(rest)?;
            let end = n.checked_add(len)?;
            if end > rest.len() {
                return None;
            }
            let o = &rest[n..end];
            rest = &rest[end..];
            o
        };
        let header = *obu.first()?;
        let obu_type = (header >> 3) & 0x0F;
        let mut body = 1 + usize::from(header & 0x04 != 0);
        if header & 0x02 != 0 {
            let (_, n) = leb128(obu.get(body..)?)?;
            body += n;
        }
        match (index, obu_type) {
            // A keyframe's first OBU is the sequence header.
            (1, t) if t != 1 => return Some(false),
            (_, 3) | (_, 6) => {
                let b = *obu.get(body)?;
                if b & 0x80 != 0 {
                    return Some(false); // show_existing_frame
                }
                return Some(b & 0x60 == 0);
            }
            _ => {}
        }
    }
    None
}

fn h264_keyframe(payload: &[u8]) -> Option<bool> {
    let nalu = *payload.first()? & 0x1F;
    match nalu {
        0 => None,
        // A single NAL unit: a keyframe starts with its SPS.
        1..=23 => Some(nalu == 7),
        24..=27 => {
            let mut i = if nalu == 24 { 1 } else { 3 };
            let offset = match nalu {
                26 => 3,
                27 => 4,
                _ => 0,
            };
            while i < payload.len() {
                let len = usize::from(u16::from_be_bytes([*payload.get(i)?, *payload.get(i + 1)?]));
                i += 2;
                if i + len > payload.len() || offset >= len {
                    return None;
                }
                match payload[i + offset] & 0x1F {
                    7 => return Some(true),
                    n if n >= 24 => return None,
                    _ => {}
                }
                i += len;
            }
            Some(false)
        }
        28 | 29 => {
            let fu = *payload.get(1)?;
            Some(fu & 0x80 != 0 && fu & 0x1F == 7)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc::rtp::packet::Packet;
    use webrtc::util::Unmarshal;

    fn payload(raw: &[u8]) -> Vec<u8> {
        let p = Packet::unmarshal(&mut &raw[..]).expect("test vector parses");
        p.payload.to_vec()
    }

    // Keyframe vectors from Galène's codecs_test.go: the first packet of
    // each pair starts a keyframe, the second does not.
    const VP8: [&[u8]; 2] = [
        &[
            0x80, 0xe0, 0x71, 0x3e, 0x5d, 0x6f, 0x3c, 0xc5, 0x75, 0xc, 0x80, 0x96, 0x90, 0x80,
            0xb0, 0x4c, 0x90, 0x2, 0x0, 0x9d, 0x1, 0x2a, 0x10, 0x0, 0x10, 0x0, 0x39, 0x3, 0x0, 0x0,
            0x1c, 0x22, 0x16, 0x16, 0x22, 0x66, 0x12, 0x20, 0x4, 0x90, 0x40, 0x4e, 0x9e, 0x8d,
            0xe9, 0x40, 0xfe, 0xff, 0xab, 0x59, 0x72, 0x30, 0xd1, 0xaf, 0xe4, 0x6a, 0x11, 0x3,
            0xfd, 0x15, 0xe9, 0x2, 0x2e, 0xdf, 0xd9, 0xd1, 0xb8, 0x0, 0x0,
        ],
        &[
            0x80, 0x6f, 0x61, 0x8f, 0xd5, 0x36, 0xdc, 0x15, 0x1b, 0x4a, 0xb5, 0x29, 0x78, 0x9,
            0xa1, 0x93, 0xa0, 0x5b, 0xd8, 0xf1, 0xde, 0x87, 0x23, 0x5a, 0xb9, 0x19, 0x97, 0xb7,
            0xbd, 0xbf, 0xf7, 0x6e, 0xad, 0x82, 0xc4, 0x70, 0x1c, 0xc9, 0x3a, 0xb4, 0x1f, 0x13,
            0x45, 0xb5, 0xf1, 0x0, 0xa5, 0xa5, 0xa9, 0xd0, 0xa5, 0xdf, 0x67, 0x88, 0x26, 0x30,
            0x32,
        ],
    ];

    const VP9: [&[u8]; 2] = [
        &[
            0x80, 0xe2, 0x6c, 0xb9, 0xcd, 0xa2, 0x77, 0x5c, 0xea, 0xf0, 0x14, 0xe9, 0x8f, 0xbd,
            0x90, 0x18, 0x0, 0x10, 0x0, 0x10, 0x1, 0x4, 0x1, 0x82, 0x49, 0x83, 0x42, 0x0, 0x0,
            0xf0, 0x0, 0xf4, 0x2, 0x38, 0x24, 0x1c, 0x18, 0x10, 0x0, 0x0, 0x20, 0x40, 0x0, 0x22,
            0x9b, 0xff, 0xff, 0xd7, 0xe6, 0xc0, 0xa, 0xf2, 0x32, 0xd4, 0xdd, 0xa3, 0x69, 0xc6,
            0xca, 0xd1, 0x50, 0xeb, 0x1c, 0x1, 0x50, 0x91, 0xf6, 0x64, 0xc7, 0x35, 0xe9, 0x0, 0xfe,
            0x76, 0xb2, 0xb, 0x4d, 0xd7, 0x35, 0x23, 0xf3, 0x9f, 0x7f, 0x86, 0x37, 0xb9, 0x65,
            0x3a, 0xf9, 0x66, 0xa0, 0x6a, 0xb2, 0x9b, 0xb3, 0x36, 0x5b, 0x47, 0xf2, 0x26, 0x5c,
            0xe2, 0x23, 0x4f, 0xff, 0xff, 0xff, 0xfe, 0xc3, 0x49, 0x6b, 0x14, 0x58, 0x4d, 0xdc,
            0xd8, 0xf5, 0x76, 0x81, 0x2e, 0xb3, 0x7f, 0xff, 0xfe, 0x18, 0xc8, 0xf8, 0x1b, 0xf6,
            0xee, 0xc3, 0xc, 0x6f, 0x23, 0x34, 0x80,
        ],
        &[
            0x80, 0xe2, 0x4a, 0xb5, 0x1a, 0x33, 0x3f, 0x7b, 0x9c, 0xda, 0x7b, 0xd0, 0x8d, 0xec,
            0x14, 0x86, 0x0, 0x40, 0x92, 0x88, 0x2c, 0x50, 0x83, 0x30, 0x10, 0x1c, 0x6, 0x3, 0x0,
            0x82, 0x99, 0x15, 0xc8, 0x0, 0x0, 0x0, 0x0, 0x18, 0x70, 0x0, 0x0, 0x4c, 0x4, 0xa0,
        ],
    ];

    const H264: [&[u8]; 2] = [
        &[
            0x80, 0xe6, 0xf, 0xae, 0xfa, 0x86, 0x3b, 0x49, 0x59, 0xbd, 0x79, 0xe7, 0x78, 0x0, 0xc,
            0x67, 0x42, 0xc0, 0xc, 0x8c, 0x8d, 0x4e, 0x40, 0x3c, 0x22, 0x11, 0xa8, 0x0, 0x4, 0x68,
            0xce, 0x3c, 0x80, 0x0, 0x1a, 0x65, 0xb8, 0x0, 0x4, 0x0, 0x0, 0x9, 0xe3, 0x31, 0x40,
            0x0, 0x46, 0x76, 0x38, 0x0, 0x8, 0x2, 0x47, 0x0, 0x2, 0x7f, 0x3f, 0x77, 0x6f, 0x67,
            0x80,
        ],
        &[
            0x80, 0xe6, 0xf, 0xaf, 0xfa, 0x86, 0x46, 0x89, 0x59, 0xbd, 0x79, 0xe7, 0x61, 0xe0, 0x0,
            0x40, 0x0, 0xbe, 0x40, 0x9e, 0xa0,
        ],
    ];

    #[test]
    fn keyframe_vectors() {
        for (codec, vectors) in [(Codec::Vp8, VP8), (Codec::Vp9, VP9), (Codec::H264, H264)] {
            for (i, raw) in vectors.iter().enumerate() {
                let p = payload(raw);
                assert_eq!(is_keyframe(codec, &p), Some(i == 0), "{codec} vector {i}");
            }
        }
    }

    #[test]
    fn av1_keyframes() {
        // N=1, W=2: a sequence header OBU then an OBU_FRAME with frame_type KEY.
        let key = [0x28, 0x02, 0x08, 0x00, 0x30, 0x10, 0xAA];
        assert_eq!(is_keyframe(Codec::Av1, &key), Some(true));
        // Same but frame_type INTER (1 << 5).
        let inter = [0x28, 0x02, 0x08, 0x00, 0x30, 0x30, 0xAA];
        assert_eq!(is_keyframe(Codec::Av1, &inter), Some(false));
        // N=0: not the start of a coded video sequence.
        assert_eq!(is_keyframe(Codec::Av1, &[0x20, 0x30, 0x10]), Some(false));
        // Z=1: a continuation.
        assert_eq!(is_keyframe(Codec::Av1, &[0x88, 0x30]), Some(false));
        // Truncated length field.
        assert_eq!(is_keyframe(Codec::Av1, &[0x08, 0x85]), None);
    }

    #[test]
    fn h264_variants() {
        let cases: &[(&[u8], Option<bool>)] = &[
            (&[], None),
            (&[0x00], None),
            (&[0x67, 0x42], Some(true)),       // SPS
            (&[0x65, 0x88], Some(false)),      // IDR slice alone: no SPS
            (&[0x7C, 0x87], Some(true)),       // FU-A start of an SPS
            (&[0x7C, 0x07], Some(false)),      // FU-A continuation
            (&[0x7C], None),                   // truncated FU-A
            (&[0x78, 0x00, 0x05, 0x67], None), // STAP-A length past the end
            (&[0x78, 0x00, 0x01, 0x61], Some(false)),
        ];
        for (payload, expected) in cases {
            assert_eq!(is_keyframe(Codec::H264, payload), *expected, "{payload:x?}");
        }
    }

    #[test]
    fn vp8_descriptor() {
        // Galène's PacketFlags vector: X, S, I with 15-bit PictureID 57.
        let d = parse_vp8(&[0x90, 0x80, 0x80, 57, 0, 0, 0, 0]).expect("parses");
        assert!(d.frame_start());
        assert_eq!(d.picture_id, Some((57, true)));
        assert_eq!(d.tid, None);
        assert_eq!(d.len, 4);
        assert_eq!(
            is_keyframe(Codec::Vp8, &[0x90, 0x80, 0x80, 57, 0]),
            Some(true)
        );

        // Galène's empty VP8 vector: no start, no extension.
        let d = parse_vp8(&[0x00]).expect("parses");
        assert!(!d.frame_start());
        assert_eq!(d.len, 1);
        assert_eq!(is_keyframe(Codec::Vp8, &[0x00]), None);

        // All extension fields: 7-bit PictureID, TL0PICIDX, TID/Y/KEYIDX.
        let d = parse_vp8(&[0xB0, 0xF0, 0x05, 0x09, 0xA3, 0x00]).expect("parses");
        assert!(d.non_reference);
        assert_eq!(d.picture_id, Some((5, false)));
        assert_eq!(d.tl0_pic_idx, Some(9));
        assert_eq!(d.tid, Some(2));
        assert!(d.layer_sync);
        assert_eq!(d.key_idx, Some(3));
        assert_eq!(d.len, 5);

        for truncated in [
            &[][..],
            &[0x80],
            &[0x80, 0x80],
            &[0x80, 0x80, 0x80],
            &[0x80, 0x40],
        ] {
            assert_eq!(parse_vp8(truncated), None, "{truncated:x?}");
        }
    }

    #[test]
    fn vp9_truncated() {
        assert_eq!(is_keyframe(Codec::Vp9, &[]), None);
        assert_eq!(is_keyframe(Codec::Vp9, &[0x8A]), None);
        // B=0: not a frame start.
        assert_eq!(is_keyframe(Codec::Vp9, &[0x00, 0x80]), Some(false));
        // Flexible mode with reference indices, then a keyframe header.
        assert_eq!(is_keyframe(Codec::Vp9, &[0x18, 0x82]), Some(true));
    }

    #[test]
    fn names() {
        for c in Codec::ALL {
            assert_eq!(c.name().parse::<Codec>(), Ok(c));
            assert_eq!(Codec::from_mime(&c.mime_type().to_uppercase()), Some(c));
            let json = serde_json::to_string(&c).expect("serialises");
            assert_eq!(json, format!("\"{}\"", c.name()));
        }
        assert_eq!("VP8".parse::<Codec>(), Ok(Codec::Vp8));
        assert!("theora".parse::<Codec>().is_err());
    }
}
