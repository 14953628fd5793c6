#!/usr/bin/python3
"""A GStreamer webrtcbin peer speaking GStreamer's signalling protocol, for Cinnabar's /gst.

It sends a test VP8 video and Opus audio to each remote peer and decodes what each remote
peer sends. Once it has decoded --frames video frames and --audio audio buffers from a
remote peer, it tells that peer {"done": true}; it exits 0 when it is done with every
expected peer and each of them has said it is done too, printing one line
`RESULT {"id": ..., "peers": {uid: {"video": n, "audio": m}}}`. Any ERROR from the server,
a pipeline error, a peer leaving early or --timeout seconds passing makes it exit non-zero.

Modes (after HELLO):
  --call UID            SESSION with UID; makes the offer, or with --remote-offerer sends
                        OFFER_REQUEST so that the callee makes it.
  (neither)             wait to be called; answer an offer, or make one on OFFER_REQUEST.
  --room ID --expect N  join room ID and exchange media with N other peers: offer to those
                        listed in ROOM_OK, answer those who join later.

libnice gathers no loopback candidates by itself: --local-address 127.0.0.1 gives it that
address explicitly, so that the media of a test never leaves the machine's loopback.

`gst_peer.py --check` only checks that GStreamer, its elements and the Python modules the
peer needs are installed, and prints what is missing.
"""

import argparse
import asyncio
import json
import ssl
import sys

# What the peer needs, by Debian package: checked by --check, so that a test can say what
# is missing instead of failing obscurely.
MODULES = {
    "gi": "python3-gi",
    "Gst": "python3-gst-1.0",
    "GstWebRTC": "gir1.2-gst-plugins-bad-1.0",
    "GstSdp": "gir1.2-gst-plugins-base-1.0",
    "websockets": "python3-websockets",
}
ELEMENTS = {
    "webrtcbin": "gstreamer1.0-plugins-bad",
    "dtlssrtpenc": "gstreamer1.0-plugins-bad",
    "srtpenc": "gstreamer1.0-plugins-bad",
    "nicesrc": "gstreamer1.0-nice",
    "rtpbin": "gstreamer1.0-plugins-good",
    "vp8enc": "gstreamer1.0-plugins-good",
    "vp8dec": "gstreamer1.0-plugins-good",
    "rtpvp8pay": "gstreamer1.0-plugins-good",
    "rtpvp8depay": "gstreamer1.0-plugins-good",
    "rtpopuspay": "gstreamer1.0-plugins-good",
    "rtpopusdepay": "gstreamer1.0-plugins-good",
    "opusenc": "gstreamer1.0-plugins-base",
    "opusdec": "gstreamer1.0-plugins-base",
    "videotestsrc": "gstreamer1.0-plugins-base",
    "audiotestsrc": "gstreamer1.0-plugins-base",
    "audioconvert": "gstreamer1.0-plugins-base",
    "audioresample": "gstreamer1.0-plugins-base",
    "decodebin": "gstreamer1.0-plugins-base",
}


def check():
    """Prints what is missing, one `MISSING <what> (<Debian package>)` a line; 0 if nothing."""
    missing = []
    try:
        import gi

        for module in ("Gst", "GstWebRTC", "GstSdp"):
            try:
                gi.require_version(module, "1.0")
                __import__("gi.repository." + module)
            except (ImportError, ValueError):
                missing.append((module, MODULES[module]))
    except ImportError:
        missing.append(("gi", MODULES["gi"]))
    try:
        import websockets  # noqa: F401
    except ImportError:
        missing.append(("websockets", MODULES["websockets"]))
    if not any(m[0] in ("gi", "Gst") for m in missing):
        from gi.repository import Gst

        Gst.init(None)
        for element, package in ELEMENTS.items():
            if Gst.ElementFactory.find(element) is None:
                missing.append((f"element {element}", package))
    for what, package in missing:
        print(f"MISSING {what} ({package})", flush=True)
    return 1 if missing else 0


if __name__ == "__main__" and sys.argv[1:] == ["--check"]:
    sys.exit(check())

import gi  # noqa: E402

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import Gst, GstSdp, GstWebRTC  # noqa: E402

import websockets  # noqa: E402

# One pipeline per remote peer, with its own sources and encoders, as in GStreamer's
# sendrecv example: built whole before it plays, so that no element is added to a running
# pipeline on the sending side (a sink added later makes a live pipeline lose its state and
# can stall a source for every remote). Frequent keyframes let decoding start at once.
PIPELINE = """
webrtcbin name=webrtc bundle-policy=max-bundle
videotestsrc is-live=true pattern=ball
  ! video/x-raw,width=160,height=120,framerate=15/1
  ! vp8enc deadline=1 keyframe-max-dist=15 ! rtpvp8pay pt=96
  ! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000
  ! queue ! webrtc.
audiotestsrc is-live=true wave=sine
  ! audioconvert ! audioresample ! opusenc ! rtpopuspay pt=97
  ! application/x-rtp,media=audio,encoding-name=OPUS,payload=97,clock-rate=48000
  ! queue ! webrtc.
"""


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


class Remote:
    """One remote peer: its webrtcbin, what was decoded from it, and the done handshake."""

    def __init__(self, peer, uid, offerer):
        self.peer = peer
        self.uid = uid
        self.counts = {"video": 0, "audio": 0}
        self.done_sent = False
        self.done_received = False
        self.left = False
        self.pipeline = Gst.parse_launch(PIPELINE)
        self.webrtc = self.pipeline.get_by_name("webrtc")
        if peer.local_address:
            # Kept referenced: the binding does not hold the agent for us.
            self.agent = self.webrtc.get_property("ice-agent")
            self.agent.emit("add-local-ip-address", peer.local_address)
        self.webrtc.connect("on-ice-candidate", self.on_ice_candidate)
        self.webrtc.connect("pad-added", self.on_incoming_pad)
        self.webrtc.connect("notify::ice-connection-state", self.on_ice_state)
        if offerer:
            self.webrtc.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.pipeline.set_state(Gst.State.PLAYING)

    # Outgoing: called on GStreamer's threads.

    def on_negotiation_needed(self, webrtc):
        promise = Gst.Promise.new_with_change_func(self.on_offer_created, None)
        webrtc.emit("create-offer", None, promise)

    def on_offer_created(self, promise, _):
        promise.wait()
        # The reply owns the description: keep it referenced while the description is used
        # (a temporary reply is freed at once and the description with it).
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        # Queued before it is applied, so that no candidate overtakes it.
        self.send({"sdp": {"type": "offer", "sdp": offer.sdp.as_text()}})
        self.webrtc.emit("set-local-description", offer, Gst.Promise.new())

    def on_answer_created(self, promise, _):
        promise.wait()
        # The reply owns the description: keep it referenced while the description is used
        # (a temporary reply is freed at once and the description with it).
        reply = promise.get_reply()
        answer = reply.get_value("answer")
        self.send({"sdp": {"type": "answer", "sdp": answer.sdp.as_text()}})
        self.webrtc.emit("set-local-description", answer, Gst.Promise.new())

    def on_ice_state(self, webrtc, _spec):
        state = webrtc.get_property("ice-connection-state")
        log(f"{self.peer.args.id}: ICE with {self.uid}: {state.value_nick}")

    def on_ice_candidate(self, _webrtc, mline, candidate):
        self.send({"ice": {"candidate": candidate, "sdpMLineIndex": mline}})

    def send(self, message):
        self.peer.send_to(self.uid, json.dumps(message))

    # Incoming.

    def on_message(self, text):
        try:
            message = json.loads(text)
        except ValueError:
            self.peer.fail(f"not JSON from {self.uid}: {text[:80]!r}")
            return
        if "sdp" in message:
            sdp = message["sdp"]
            log(f"{self.peer.args.id}: {sdp['type']} from {self.uid}")
            _, sdpmsg = GstSdp.SDPMessage.new_from_text(sdp["sdp"])
            if sdp["type"] == "offer":
                offer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.OFFER, sdpmsg)
                self.webrtc.emit("set-remote-description", offer, Gst.Promise.new())
                promise = Gst.Promise.new_with_change_func(self.on_answer_created, None)
                self.webrtc.emit("create-answer", None, promise)
            else:
                answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdpmsg)
                self.webrtc.emit("set-remote-description", answer, Gst.Promise.new())
        elif "ice" in message:
            ice = message["ice"]
            self.webrtc.emit("add-ice-candidate", ice["sdpMLineIndex"], ice["candidate"])
        elif message.get("done"):
            self.done_received = True
        else:
            self.peer.fail(f"unexpected message from {self.uid}: {text[:80]!r}")

    def on_incoming_pad(self, _webrtc, pad):
        if pad.direction != Gst.PadDirection.SRC:
            return
        decodebin = Gst.ElementFactory.make("decodebin", None)
        decodebin.connect("pad-added", self.on_decoded_pad)
        self.pipeline.add(decodebin)
        decodebin.sync_state_with_parent()
        pad.link(decodebin.get_static_pad("sink"))

    def on_decoded_pad(self, _decodebin, pad):
        caps = pad.get_current_caps() or pad.query_caps(None)
        kind = "video" if caps.to_string().startswith("video/") else "audio"
        sink = Gst.ElementFactory.make("fakesink", None)
        sink.set_property("sync", False)
        # A sink added to a playing pipeline must not preroll: an async one makes the
        # pipeline lose its state, which can hold the other branches in PAUSED.
        sink.set_property("async", False)
        self.pipeline.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))

        def count(_pad, _info):
            self.counts[kind] += 1
            return Gst.PadProbeReturn.OK

        pad.add_probe(Gst.PadProbeType.BUFFER, count)

    def satisfied(self, frames, audio):
        return self.counts["video"] >= frames and self.counts["audio"] >= audio


class Peer:
    def __init__(self, args):
        self.args = args
        self.local_address = args.local_address
        self.remotes = {}
        self.failure = None
        self.loop = asyncio.get_running_loop()
        self.outbox = asyncio.Queue()
        self.finished = asyncio.Event()

    def fail(self, why):
        """Ends the run with an error (callable from any thread)."""

        def set_failure():
            if self.failure is None:
                self.failure = why
                self.finished.set()

        self.loop.call_soon_threadsafe(set_failure)

    def send_to(self, uid, text):
        """Queues a message for a remote peer (callable from any thread)."""
        if self.args.room:
            text = f"ROOM_PEER_MSG {uid} {text}"
        self.loop.call_soon_threadsafe(self.outbox.put_nowait, text)

    def add_remote(self, uid, offerer):
        if uid not in self.remotes:
            log(f"{self.args.id}: remote {uid}, {'offering' if offerer else 'answering'}")
            self.remotes[uid] = Remote(self, uid, offerer)
        return self.remotes[uid]

    async def sender(self, ws):
        while True:
            await ws.send(await self.outbox.get())

    async def watch(self):
        """Checks the pipeline's bus and the decoded counts until the run is over."""
        expected = 1 if not self.args.room else self.args.expect
        while not self.finished.is_set():
            for remote in self.remotes.values():
                message = remote.pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
                if message:
                    error, debug = message.parse_error()
                    self.fail(f"pipeline error with {remote.uid}: {error.message} ({debug})")
            for remote in self.remotes.values():
                if not remote.done_sent and remote.satisfied(self.args.frames, self.args.audio):
                    remote.done_sent = True
                    remote.send({"done": True})
            finished = [r for r in self.remotes.values() if r.done_sent and r.done_received]
            if len(finished) >= expected:
                self.finished.set()
            await asyncio.sleep(0.2)

    async def on_line(self, ws, line):
        args = self.args
        if line.startswith("ERROR"):
            self.fail(f"server said {line!r}")
        elif args.room:
            await self.on_room_line(line)
        elif args.call:
            self.remotes[args.call].on_message(line)
        else:
            # Called: the caller's first message makes the session.
            caller = "caller"
            if caller not in self.remotes:
                self.add_remote(caller, offerer=line == "OFFER_REQUEST")
            if line != "OFFER_REQUEST":
                self.remotes[caller].on_message(line)

    async def on_room_line(self, line):
        command, _, rest = line.partition(" ")
        if command == "ROOM_OK":
            for uid in rest.split():
                self.add_remote(uid, offerer=True)
        elif command == "ROOM_PEER_JOINED":
            self.add_remote(rest.strip(), offerer=False)
        elif command == "ROOM_PEER_LEFT":
            remote = self.remotes.get(rest.strip())
            if remote and not (remote.done_sent and remote.done_received):
                self.fail(f"{remote.uid} left before we were done")
        elif command == "ROOM_PEER_MSG":
            uid, _, text = rest.partition(" ")
            self.add_remote(uid, offerer=False).on_message(text)
        else:
            self.fail(f"unexpected line {line[:80]!r}")

    async def run(self):
        args = self.args
        options = {}
        if args.server.startswith("wss://"):
            # As in gst-examples: the server's certificate is often self-signed.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            options["ssl"] = context
        async with websockets.connect(args.server, **options) as ws:
            await ws.send(f"HELLO {args.id}")
            if await ws.recv() != "HELLO":
                raise RuntimeError("no HELLO from the server")
            if args.call:
                await ws.send(f"SESSION {args.call}")
                reply = await ws.recv()
                if reply != "SESSION_OK":
                    raise RuntimeError(f"SESSION answered {reply!r}")
                self.add_remote(args.call, offerer=not args.remote_offerer)
                if args.remote_offerer:
                    await ws.send("OFFER_REQUEST")
            elif args.room:
                await ws.send(f"ROOM {args.room}")
            print(f"READY {args.id}", flush=True)

            async def reader():
                try:
                    async for line in ws:
                        await self.on_line(ws, line)
                except websockets.ConnectionClosed:
                    pass
                # The server closes a session when the other side left.
                self.loop.call_soon(self.finished.set)

            tasks = [asyncio.create_task(t) for t in (reader(), self.sender(ws), self.watch())]
            try:
                await asyncio.wait_for(self.finished.wait(), args.timeout)
            except asyncio.TimeoutError:
                self.failure = self.failure or f"timed out after {args.timeout} s"
            # Let what is queued (a last "done") reach the server before leaving.
            for _ in range(50):
                if self.outbox.empty():
                    break
                await asyncio.sleep(0.02)
            for task in tasks:
                task.cancel()
        for remote in self.remotes.values():
            remote.pipeline.set_state(Gst.State.NULL)
        result = {uid: dict(r.counts) for uid, r in self.remotes.items()}
        print("RESULT " + json.dumps({"id": args.id, "peers": result}), flush=True)
        expected = 1 if not args.room else args.expect
        complete = [r for r in self.remotes.values() if r.done_sent and r.done_received]
        if self.failure is None and len(complete) < expected:
            self.failure = f"done with {len(complete)} of {expected} peers"
        if self.failure:
            log(f"{args.id}: FAILED: {self.failure}")
            return 1
        return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--server", required=True, help="ws://host:port/gst, or wss:// (certificate not checked)"
    )
    parser.add_argument("--id", required=True)
    parser.add_argument("--call", help="peer to call")
    parser.add_argument("--remote-offerer", action="store_true", help="ask the callee to offer")
    parser.add_argument("--room")
    parser.add_argument("--expect", type=int, default=1, help="other peers expected in the room")
    parser.add_argument("--frames", type=int, default=30, help="video frames to decode per peer")
    parser.add_argument("--audio", type=int, default=50, help="audio buffers to decode per peer")
    parser.add_argument("--timeout", type=float, default=150.0)
    parser.add_argument("--local-address", help="the only address ICE may use")
    args = parser.parse_args()
    Gst.init(None)

    async def start():
        return await Peer(args).run()

    sys.exit(asyncio.run(start()))


if __name__ == "__main__":
    main()
