// The real client library rtc-lib@0.5.7 against /calling?dialect=rtc-lib: two clients
// register in a namespace, meet in a room and exchange a `signaling` offer and answer
// through room_peer_to; a third is invited and accepts. Only rtc-lib's signalling is used.
//
// Starts the server itself (CINNABAR_BIN, or target/debug/cinnabar), stops by itself,
// prints "N passed, N failed" and exits non-zero on any failure.

import {createRequire} from 'node:module';
import {dirname} from 'node:path';
import {fileURLToPath} from 'node:url';
import assert from 'node:assert/strict';

import {startServer as start} from './server.mjs';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));

// Never skipped: without its packages the test fails, saying how to get them.
let WebSocket;
try {
    WebSocket = (await import('ws')).default;
    require.resolve('rtc-lib/dist/cjs/signaling/index.js');
} catch (error) {
    console.error(`calling-rtc-lib: FAILED, packages missing (run \`npm ci\` in ${here}; ./test.sh does): ${error.message}`);
    process.exit(1);
}
// rtc-lib is written for browsers. Node 20 has no WebSocket: `ws` stands in for it.
globalThis.WebSocket = WebSocket;
// An invitation makes rtc-lib build a Room, whose peers each construct an
// RTCPeerConnection (never used here: no media is negotiated). This stub is all of it
// that rtc-lib touches until a peer connects.
globalThis.RTCPeerConnection = class {
    close() {}
};

const {Calling, WebSocketChannel} = require('rtc-lib/dist/cjs/signaling/index.js');

/** Resolves with the arguments of the next `event` on `emitter`. */
function next(emitter, event) {
    return new Promise((resolvePromise) => emitter.once(event, (...args) => resolvePromise(args)));
}

async function startServer() {
    const server = await start({args: ['--calling-rooms', 'any']});
    return {url: `ws://127.0.0.1:${server.port}/calling?dialect=rtc-lib`, stop: () => server.stop()};
}

const clients = [];

/** A connected rtc-lib client that asks the server for remote pings and a timeout. */
async function client(url) {
    const calling = new Calling(new WebSocketChannel(url), {}, {remotePing: 1000, remoteTimeout: 20000, pingInterval: 5000});
    clients.push(calling);
    await calling.connect();
    assert.equal(calling.state, 'connected');
    assert.ok(calling.id, 'hello gave an id');
    return calling;
}

async function namespaceRoomAndOffer(url) {
    const alice = await client(url);
    const bob = await client(url);

    // Alice announces herself in a namespace; Bob, subscribed, sees her.
    await alice.setStatus({name: 'Alice'});
    await alice.register('lobby');
    const lobby = await bob.subscribe('lobby');
    assert.deepEqual(lobby.users[alice.id].status, {name: 'Alice'});

    // Alice opens a room and lists it in the namespace.
    const aliceRoom = alice.room_signaling('meeting');
    aliceRoom.peer_status = {camera: true};
    await aliceRoom.connect();
    assert.equal(aliceRoom.id, 'meeting');
    const listed = next(lobby, 'room_registered');
    await aliceRoom.register('lobby');
    const [room] = await listed;
    assert.equal(room.id, 'meeting');
    assert.deepEqual(Object.keys(room.peers), [alice.id]);

    // Alice claims the room with a compare-and-set status.
    await aliceRoom.setRoomStatusSafe('owner', alice.id, undefined);
    await assert.rejects(aliceRoom.setRoomStatusSafe('owner', 'someone', undefined), /Status not in expected state/);

    // Bob joins: he sees Alice and the room status, Alice and the namespace see him.
    const joined = next(aliceRoom, 'peer_joined');
    const seen = next(lobby, 'room_peer_joined');
    const bobRoom = bob.room_signaling('meeting');
    await bobRoom.connect();
    assert.deepEqual(Object.keys(bobRoom.peers), [alice.id]);
    assert.deepEqual(bobRoom.peers[alice.id].status, {name: 'Alice', camera: true});
    assert.equal(bobRoom.status.owner, alice.id);
    const [bobAtAlice] = await joined;
    assert.equal(bobAtAlice.id, bob.id);
    const [, seenPeer] = await seen;
    assert.equal(seenPeer.id, bob.id);

    // An offer from Alice reaches Bob through room_peer_to / room_peer_from, and back.
    const offer = {type: 'offer', sdp: 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n', streams: {}, channels: {}};
    const offered = next(bobRoom.peers[alice.id], 'signaling');
    await bobAtAlice.send('signaling', offer);
    const [gotOffer] = await offered;
    assert.deepEqual(gotOffer, offer);
    const answer = {type: 'answer', sdp: 'v=0\r\n', streams: {}, channels: {}};
    const answered = next(bobAtAlice, 'signaling');
    await bobRoom.peers[alice.id].send('signaling', answer);
    assert.deepEqual((await answered)[0], answer);

    // Bob's peer status reaches Alice.
    const changed = next(bobAtAlice, 'status_changed');
    await bobRoom.setStatus({muted: true});
    assert.deepEqual((await changed)[0], {muted: true});

    // Bob leaves: Alice sees him go.
    const left = next(aliceRoom, 'peer_left');
    await bobRoom.close();
    assert.equal((await left)[0].id, bob.id);
}

async function invitation(url) {
    const alice = await client(url);
    const carol = await client(url);
    const room = alice.room_signaling('call');
    await room.connect();

    const invited = next(carol, 'invitation');
    const pendingPeer = next(room, 'peer_joined');
    const outgoing = await room.invite(carol.id, {reason: 'standup'});
    const [incoming] = await invited;
    assert.equal(incoming.sender_id, alice.id);
    assert.deepEqual(incoming.data, {reason: 'standup'});
    assert.equal(incoming.signaling.id, 'call');
    const [carolAtAlice] = await pendingPeer;
    assert.equal(carolAtAlice.pending, true);

    // Carol accepts; Alice's invitation resolves and Carol's peer is no longer pending.
    await incoming.connect();
    assert.equal(await outgoing.response(), true);
    await carolAtAlice.accepted();
    assert.deepEqual(Object.keys(incoming.signaling.peers), [alice.id]);

    const delivered = next(incoming.signaling.peers[alice.id], 'message');
    await carolAtAlice.send('message', {text: 'welcome'});
    assert.deepEqual((await delivered)[0], {text: 'welcome'});
}

const watchdog = setTimeout(() => {
    console.error('calling-rtc-lib: timed out');
    process.exit(1);
}, 60000);

let passed = 0;
let failed = 0;
const server = await startServer();
for (const [name, run] of [
    ['namespace, room and a signaling offer', namespaceRoomAndOffer],
    ['an invitation accepted', invitation],
]) {
    try {
        await run(server.url);
        passed += 1;
        console.log(`ok - ${name}`);
    } catch (error) {
        failed += 1;
        console.log(`not ok - ${name}\n${error.stack}`);
    }
}
for (const calling of clients) {
    await calling.close().catch(() => {});
}
await server.stop();
clearTimeout(watchdog);
console.log(`${passed} passed, ${failed} failed`);
// rtc-lib keeps its own liveness timers running after close.
process.exit(failed === 0 ? 0 : 1);
