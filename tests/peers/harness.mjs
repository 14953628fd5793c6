// Test support for the real-client tests of /janus: the real server on a free port (plain
// HTTP), minijanus sessions over WebSocket or HTTP long polls, media from wrtc's synthetic
// sources, and the browser globals naf-janus-adapter expects, stood in for in Node.

import assert from 'node:assert/strict';
import {createSign} from 'node:crypto';
import {readFileSync} from 'node:fs';
import Module, {createRequire} from 'node:module';
import {dirname, join} from 'node:path';
import {fileURLToPath} from 'node:url';

import {eventually, repo, startServer as start} from './server.mjs';

export {eventually};

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));

// Never skipped: without its packages a test fails, saying how to get them.
export let WebSocket, wrtc, minijanus;
try {
    WebSocket = require('ws');
    wrtc = require('@roamhq/wrtc');
    minijanus = require('minijanus/minijanus.js');
    require.resolve('naf-janus-adapter');
} catch (error) {
    console.error(`janus tests: packages missing (run \`npm ci\` in ${here}; ./test.sh does): ${error.message}`);
    throw error;
}

export const OPEN_ROOM = JSON.stringify({
    'wildcard-user': {password: {type: 'wildcard'}, permissions: 'present'},
});

/** The server with an open room `hub`; `base` is its URL, `janus` its Janus WebSocket. */
export async function startServer({groups = {hub: OPEN_ROOM}, ...options} = {}) {
    const server = await start({groups, ...options});
    return {...server, base: server.url, janus: `ws://127.0.0.1:${server.port}/janus`};
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A minijanus session over a WebSocket with the subprotocol `janus-protocol`, as
 * naf-janus-adapter makes it. `messages` records everything the server sent.
 */
export async function wsSession(url, options = {}, socketOptions = {}) {
    const ws = new WebSocket(url, 'janus-protocol', socketOptions);
    const session = new minijanus.JanusSession(ws.send.bind(ws), {timeoutMs: 15000, ...options});
    const messages = [];
    ws.on('message', (data) => {
        const message = JSON.parse(data.toString());
        messages.push(message);
        session.receive(message);
    });
    await new Promise((resolveOpen, reject) => {
        ws.once('open', resolveOpen);
        ws.once('error', reject);
    });
    const closed = new Promise((r) => ws.once('close', r));
    return {
        ws, session, messages, closed,
        close() {
            session.dispose();
            ws.close();
        },
    };
}

/**
 * A minijanus session over Janus's HTTP transport: requests are POSTed (their reply is the
 * response) and events come from a long-poll loop, as janus.js does it.
 */
export function httpSession(base) {
    let session;
    const messages = [];
    let polling = false;
    const receive = (message) => {
        messages.push(message);
        session.receive(message);
    };
    const output = (text) => {
        const request = JSON.parse(text);
        const path = request.session_id
            ? `/janus/${request.session_id}${request.handle_id ? `/${request.handle_id}` : ''}`
            : '/janus';
        fetch(base + path, {method: 'POST', body: text, headers: {'content-type': 'application/json'}})
            .then((r) => r.json())
            .then(receive)
            .catch((e) => console.error('janus POST failed:', e.message));
    };
    session = new minijanus.JanusSession(output, {timeoutMs: 15000, keepaliveMs: 0});
    async function poll() {
        while (polling) {
            try {
                const r = await fetch(`${base}/janus/${session.id}?maxev=10&rid=${Date.now()}`);
                const body = await r.json();
                for (const m of Array.isArray(body) ? body : [body]) {
                    if (m.janus !== 'keepalive') receive(m);
                }
            } catch {
                // The server went away (the test is over) or a hiccup: poll again.
                await sleep(200);
            }
        }
    }
    return {
        session, messages,
        async create() {
            await session.create();
            polling = true;
            poll();
        },
        stop() {
            polling = false;
            session.dispose();
        },
    };
}

/** A handle attached to janus.plugin.sfu, with a peer connection that trickles to it. */
export async function sfuHandle(session) {
    const handle = new minijanus.JanusPluginHandle(session);
    await handle.attach('janus.plugin.sfu');
    const pc = new wrtc.RTCPeerConnection({iceServers: []});
    pc.addEventListener('icecandidate', (e) => handle.sendTrickle(e.candidate || null).catch(() => {}));
    const webrtcup = new Promise((r) => handle.on('webrtcup', r));
    return {handle, pc, webrtcup};
}

/** Synthetic audio (a 440 Hz tone) and VP8-encodable video from wrtc's sources. */
export function fakeMedia() {
    const audio = new wrtc.nonstandard.RTCAudioSource();
    const video = new wrtc.nonstandard.RTCVideoSource();
    const tracks = {audio: audio.createTrack(), video: video.createTrack()};
    const width = 320, height = 240;
    const frame = {width, height, data: new Uint8ClampedArray(width * height * 1.5)};
    const samples = new Int16Array(480);
    let t = 0, n = 0;
    const timer = setInterval(() => {
        for (let i = 0; i < samples.length; i++) samples[i] = Math.sin(2 * Math.PI * 440 * (t++) / 48000) * 8000;
        audio.onData({samples, sampleRate: 48000, bitsPerSample: 16, channelCount: 1, numberOfFrames: 480});
        // A moving pattern at 33 fps, so every frame differs.
        if (n++ % 3 === 0) {
            frame.data.fill((n * 7) & 0xff, 0, width * height);
            video.onFrame(frame);
        }
    }, 10);
    return {
        tracks,
        stream: new wrtc.MediaStream([tracks.audio, tracks.video]),
        stop() {
            clearInterval(timer);
            tracks.audio.stop();
            tracks.video.stop();
        },
    };
}

/** Counts the video frames and audio buffers decoded from what a connection receives. */
export function countDecoded(pc) {
    const counts = {video: 0, audio: 0, width: 0};
    const sinks = [];
    pc.addEventListener('track', (e) => {
        if (e.track.kind === 'video') {
            const sink = new wrtc.nonstandard.RTCVideoSink(e.track);
            sink.onframe = ({frame}) => {
                counts.video++;
                counts.width = frame.width;
            };
            sinks.push(sink);
        } else {
            const sink = new wrtc.nonstandard.RTCAudioSink(e.track);
            sink.ondata = () => counts.audio++;
            sinks.push(sink);
        }
    });
    counts.stop = () => sinks.forEach((s) => s.stop());
    return counts;
}

/** Publishes audio and video on a new handle, with the offer in the `join` itself. */
export async function publish(session, room, user, {token} = {}) {
    const {handle, pc, webrtcup} = await sfuHandle(session);
    const media = fakeMedia();
    pc.addTrack(media.tracks.audio, media.stream);
    pc.addTrack(media.tracks.video, media.stream);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const reply = await handle.send('message', {
        body: {kind: 'join', room_id: room, user_id: user, subscribe: {notifications: true, data: true}, token},
        jsep: pc.localDescription,
    });
    assert.equal(reply.plugindata.data.success, true, JSON.stringify(reply.plugindata.data));
    assert.equal(reply.jsep.type, 'answer');
    await pc.setRemoteDescription(reply.jsep);
    await webrtcup;
    return {handle, pc, media, reply, stop() { media.stop(); pc.close(); }};
}

/**
 * Joins with `subscribe` and an offer of one data channel, `reliable`, as
 * naf-janus-adapter's does; resolves once the channel is open. `received` collects what
 * arrives on it.
 */
export async function dataHandle(session, room, user, subscribe) {
    const {handle, pc, webrtcup} = await sfuHandle(session);
    const channel = pc.createDataChannel('reliable', {ordered: true});
    const received = [];
    channel.addEventListener('message', (e) => received.push(JSON.parse(e.data)));
    const open = new Promise((r) => channel.addEventListener('open', r, {once: true}));
    await pc.setLocalDescription(await pc.createOffer());
    const reply = await handle.send('message', {
        body: {kind: 'join', room_id: room, user_id: user, subscribe},
        jsep: pc.localDescription,
    });
    assert.equal(reply.plugindata.data.success, true, JSON.stringify(reply.plugindata.data));
    await pc.setRemoteDescription(reply.jsep);
    await webrtcup;
    await open;
    return {handle, pc, channel, received, stop() { pc.close(); }};
}

/** Joins as a subscriber of `target`'s media and answers the offer; counts what it decodes. */
export async function subscribe(session, room, user, target) {
    const {handle, pc, webrtcup} = await sfuHandle(session);
    const counts = countDecoded(pc);
    const offers = [];
    // Offers pushed later (the publisher renegotiated) are answered too, as clients do.
    handle.on('event', async (ev) => {
        if (ev.jsep?.type === 'offer' && !ev.transaction) {
            offers.push(ev.jsep);
            await pc.setRemoteDescription(ev.jsep);
            const answer = await pc.createAnswer();
            await pc.setLocalDescription(answer);
            await handle.sendJsep(pc.localDescription);
        }
    });
    const reply = await handle.sendMessage({kind: 'join', room_id: room, user_id: user, subscribe: {media: target}});
    assert.equal(reply.plugindata.data.success, true, JSON.stringify(reply.plugindata.data));
    assert.equal(reply.jsep?.type, 'offer', 'the join answers with an offer of the media');
    await pc.setRemoteDescription(reply.jsep);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await handle.sendJsep(pc.localDescription);
    await webrtcup;
    return {handle, pc, counts, reply, offers, stop() { counts.stop(); pc.close(); }};
}

/** An RS256 JWT signed with a PEM private key. */
export function signJwt(claims, privateKeyPem) {
    const encode = (object) => Buffer.from(JSON.stringify(object)).toString('base64url');
    const unsigned = `${encode({alg: 'RS256', typ: 'JWT'})}.${encode(claims)}`;
    const signature = createSign('RSA-SHA256').update(unsigned).sign(privateKeyPem).toString('base64url');
    return `${unsigned}.${signature}`;
}

export const fixture = (name) => readFileSync(join(repo, 'tests', 'fixtures', name));

let Adapter;
/**
 * naf-janus-adapter@4.0.1 in Node: it is written for browsers, so this provides what it
 * touches there (WebSocket, RTCPeerConnection, MediaStream, document, navigator, NAF)
 * and maps its `require("minijanus")` to the file minijanus ships.
 */
function nafAdapterClass(base) {
    if (!Adapter) {
        const resolveFilename = Module._resolveFilename;
        Module._resolveFilename = function (request, ...rest) {
            return resolveFilename.call(this, request === 'minijanus' ? 'minijanus/minijanus.js' : request, ...rest);
        };
        globalThis.WebSocket = WebSocket;
        globalThis.RTCPeerConnection = wrtc.RTCPeerConnection;
        globalThis.MediaStream = wrtc.MediaStream;
        Object.defineProperty(globalThis, 'navigator', {value: {userAgent: 'node'}, configurable: true});
        globalThis.NAF = {adapters: {register() {}, IS_CONNECTED: 'IS_CONNECTED', NOT_CONNECTED: 'NOT_CONNECTED'}};
    }
    // The adapter syncs its clock with a HEAD request to the page's own address.
    globalThis.document = {
        createElement: () => ({canPlayType: () => ''}),
        location: {href: `${base}/`},
        body: {dispatchEvent: () => true},
    };
    Adapter ??= require('naf-janus-adapter');
    return Adapter;
}

/**
 * A naf-janus-adapter client in `room`, connecting to every occupant it learns of, as
 * networked-aframe makes it. `received` collects the messages its app gets; `events` the
 * plugin events its publisher handle gets.
 */
export function nafClient(base, room, clientId) {
    const NafAdapter = nafAdapterClass(base);
    const adapter = new NafAdapter();
    const received = [];
    const events = [];
    adapter.setServerUrl(`${base.replace('http', 'ws')}/janus`);
    adapter.setRoom(room);
    adapter.setClientId(clientId);
    adapter.setPeerConnectionConfig({iceServers: []});
    const serverConnected = new Promise((res, rej) => adapter.setServerConnectListeners(res, rej));
    adapter.setRoomOccupantListener(() => {});
    adapter.setDataChannelListeners(() => {}, () => {}, (_, dataType, data, source) => {
        received.push({dataType, data, source});
    });
    // networked-aframe asks to connect to every available occupant.
    const sync = setInterval(() => adapter.syncOccupants([...adapter.availableOccupants]), 100);
    const connected = adapter.connect().then(() => serverConnected).then(() => {
        adapter.publisher.handle.on('event', (ev) => events.push(ev.plugindata.data));
    });
    return {
        adapter,
        received,
        events,
        connected,
        disconnect() {
            clearInterval(sync);
            adapter.disconnect();
        },
    };
}
