//! The text commands of GStreamer's signalling protocol, parsed without I/O.

/// One message from a peer, split into its command and arguments. Whether it is valid
/// depends on the peer's state (registered, in a session, in a room), decided by the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `HELLO <uid>`; the uid may be empty or malformed.
    Hello(&'a str),
    /// `SESSION <uid>`.
    Session(&'a str),
    OfferRequest,
    /// `ROOM <room id>`; the id may be empty or contain whitespace.
    Room(&'a str),
    /// `ROOM_PEER_MSG <uid> <message>`; the message may be empty.
    RoomPeerMsg {
        peer: &'a str,
        message: &'a str,
    },
    /// `ROOM_PEER_LIST`, with nothing after it.
    RoomPeerList,
    /// Anything else; carries the first word, for the error message.
    Unknown(&'a str),
}

/// Splits a message into its command and what follows, the way the original server
/// does (`split(maxsplit=1)`): whitespace after the command is skipped, the rest is kept.
fn split_command(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(at) => (&text[..at], text[at..].trim_start()),
        None => (text, ""),
    }
}

pub fn parse(text: &str) -> Command<'_> {
    let (command, rest) = split_command(text);
    match command {
        "HELLO" => Command::Hello(rest),
        "SESSION" => Command::Session(rest),
        "OFFER_REQUEST" if rest.is_empty() => Command::OfferRequest,
        "ROOM" => Command::Room(rest),
        "ROOM_PEER_MSG" => {
            let (peer, message) = split_command(rest);
            Command::RoomPeerMsg { peer, message }
        }
        "ROOM_PEER_LIST" if rest.is_empty() => Command::RoomPeerList,
        _ => Command::Unknown(command),
    }
}

/// Longest peer uid accepted, in bytes (the core's limit on client ids).
const MAX_UID: usize = 256;

/// A peer uid: 1 to 256 bytes, no whitespace, no control character.
pub fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= MAX_UID
        && !uid.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A room id: not empty, not `session` (the original server's state name), no whitespace.
/// Whether it is also a legal group name is the core's decision.
pub fn valid_room_id(id: &str) -> bool {
    !id.is_empty() && id != "session" && !id.chars().any(char::is_whitespace)
}

/// Client input echoed in an error, quoted and cut short so that an error line stays small.
pub fn quote(text: &str) -> String {
    const MAX: usize = 64;
    let mut end = text.len().min(MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let ellipsis = if end < text.len() { "..." } else { "" };
    // Control characters are escaped so that an error stays one printable line; quotes
    // are kept as they are, so that JSON reads naturally.
    let mut quoted = String::with_capacity(end + 8);
    quoted.push('\'');
    for c in text[..end].chars() {
        if c.is_control() {
            quoted.extend(c.escape_debug());
        } else {
            quoted.push(c);
        }
    }
    quoted.push_str(ellipsis);
    quoted.push('\'');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse("HELLO 123"), Command::Hello("123"));
        assert_eq!(parse("HELLO"), Command::Hello(""));
        assert_eq!(parse("HELLO  a b"), Command::Hello("a b"));
        assert_eq!(parse("SESSION bob"), Command::Session("bob"));
        assert_eq!(parse("OFFER_REQUEST"), Command::OfferRequest);
        assert_eq!(parse("OFFER_REQUEST x"), Command::Unknown("OFFER_REQUEST"));
        assert_eq!(parse("ROOM r1"), Command::Room("r1"));
        assert_eq!(parse("ROOM r1 "), Command::Room("r1 "));
        assert_eq!(
            parse("ROOM_PEER_MSG bob {\"sdp\": 1}"),
            Command::RoomPeerMsg {
                peer: "bob",
                message: "{\"sdp\": 1}"
            }
        );
        assert_eq!(
            parse("ROOM_PEER_MSG bob"),
            Command::RoomPeerMsg {
                peer: "bob",
                message: ""
            }
        );
        assert_eq!(parse("ROOM_PEER_LIST"), Command::RoomPeerList);
        assert_eq!(
            parse("ROOM_PEER_LISTX"),
            Command::Unknown("ROOM_PEER_LISTX")
        );
        assert_eq!(parse("SESSIONX bob"), Command::Unknown("SESSIONX"));
        assert_eq!(parse(""), Command::Unknown(""));
        assert_eq!(parse("{\"sdp\": {}}"), Command::Unknown("{\"sdp\":"));
    }

    #[test]
    fn uids_and_room_ids() {
        assert!(valid_uid("123"));
        assert!(valid_uid("peer-é"));
        for bad in ["", "a b", "a\tb", "a\u{0}b", &"x".repeat(257)] {
            assert!(!valid_uid(bad), "{bad:?}");
        }
        assert!(valid_room_id("room/1"));
        for bad in ["", "session", "a b", "a\n"] {
            assert!(!valid_room_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn quoting_is_short_and_safe() {
        assert_eq!(quote("bob"), "'bob'");
        assert_eq!(quote("a\nb"), "'a\\nb'");
        assert_eq!(quote("{\"sdp\": 'x'}"), "'{\"sdp\": 'x'}'");
        let long = "é".repeat(100);
        let quoted = quote(&long);
        assert!(quoted.len() < 80 && quoted.ends_with("...'"), "{quoted}");
    }
}
