// One meeting across protocols: the bundled web client in headless Chromium and a scripted
// Room Signals app (room-signals-client.js, real WebRTC in a second Chromium page) in the
// same group, each decoding the other's camera. The protocol is README's "Room Signals
// (`/room-signals`)".

import {test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import {join as joinPath} from 'node:path';

import {startServer, launchBrowser, newPage, join, inboundStats, eventually, artifacts, repo} from './harness.mjs';

const clientScript = joinPath(repo, 'tests', 'browser', 'room-signals-client.js');

let server;
let browser;

before(async () => {
    // The demo group has a file admitting anyone without a password (a wildcard user with
    // `present`), so the default `--room-signals-rooms existing` lets the app in.
    server = await startServer();
    browser = await launchBrowser();
});

after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
});

/**
 * A page of the server running the app: a secure context at the server's origin, so
 * getUserMedia works and Chromium's local-network checks let it open the WebSocket (a page
 * made up with page.route at that address may not). The path is none of the server's: the
 * page is its "not found" answer, which runs no script of its own.
 */
async function roomSignalsPage() {
    const page = await newPage(browser);
    page.on('console', (m) => {
        if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) console.error('room signals page:', m.text());
    });
    await page.goto(`${server.url}/room-signals-test-page`);
    // Evaluated rather than added as a <script>: the server's CSP forbids inline scripts.
    await page.evaluate(readFileSync(clientScript, 'utf8'));
    return page;
}

const report = (page) => page.evaluate(() => window.roomSignals.report());

/** What the app saw, shortened for a failure message. */
function summary(r) {
    return JSON.stringify({
        role: r.role, publishState: r.publishState, offerAck: r.offerAck, errors: r.errors,
        lists: r.lists.slice(-3), heartbeatsSent: r.heartbeatsSent, heartbeatAcks: r.heartbeatAcks, iceIn: r.iceIn, iceOut: r.iceOut,
        watches: r.watches, closed: r.closed, lastFrames: r.frames.slice(-6),
    });
}

test('the web client decodes a Room Signals publisher\'s video, and the Room Signals app decodes the web client\'s camera', {timeout: 90000}, async (t) => {
    const rs = await roomSignalsPage();
    t.after(() => rs.context().close());
    const userId = 'rs-app';
    const sessionId = 'RS-' + Math.random().toString(36).slice(2, 10).toUpperCase();

    // The app creates the room (nobody is in the demo group yet), so it is the admin.
    const joinAck = await rs.evaluate((o) => window.roomSignals.join(o), {
        url: `${server.url.replace('https', 'wss')}/room-signals`, rid: 'demo', ch: 'm2m', userId, sessionId,
    });
    assert.equal(joinAck.c, 200, `JOIN with op.roomCreating into the empty demo group: expected an ack with c 200, got ${JSON.stringify(joinAck)}`);
    assert.equal(joinAck.s, 'JOIN', `the JOIN ack's s: ${JSON.stringify(joinAck)}`);
    assert.equal(joinAck.b.rid, 'demo', `the JOIN ack's rid: ${JSON.stringify(joinAck)}`);
    assert.equal(joinAck.b.pt, 'admin', `the room's creator should be its admin; JOIN ack: ${JSON.stringify(joinAck)}`);
    assert.equal(joinAck.b.eg, 'native', `the JOIN ack's eg: ${JSON.stringify(joinAck)}`);
    assert.ok(joinAck.b.es && joinAck.b.es.icfg && Array.isArray(joinAck.b.es.icfg.is),
        `the JOIN ack should carry es.icfg.is (a list); got ${JSON.stringify(joinAck)}`);

    const offerAck = await rs.evaluate(() => window.roomSignals.publish());
    assert.equal(offerAck.c, 200, `OFFER of camera and microphone: expected an ack with our answer, got ${JSON.stringify(offerAck)}`);
    assert.match(offerAck.b.sdp || '', /^v=0/, `the OFFER ack's sdp should be an SDP answer: ${JSON.stringify(offerAck)}`);
    await eventually(async () => (await report(rs)).publishState === 'connected',
        {what: 'the app\'s publishing connection to be connected'}).catch(async (e) => {
        throw new Error(`${e.message}; the app saw ${summary(await report(rs))}`);
    });

    // The web client joins the same group with its camera on.
    const web = await newPage(browser);
    t.after(() => web.context().close());
    await join(web, server, {username: 'web-user'});

    // Web client ← Room Signals: the app's stream (source: its sessionId) decodes in the page.
    const first = await eventually(async () => {
        const s = await inboundStats(web);
        return s.video.find((v) => v.source === sessionId && v.framesDecoded > 0);
    }, {what: `the Room Signals app's video (source ${sessionId}) decoding in the web client`}).catch(async (e) => {
        throw new Error(`${e.message}; the page receives ${JSON.stringify(await inboundStats(web))}`);
    });
    const flowing = await eventually(async () => {
        const s = await inboundStats(web);
        const now = s.video.find((v) => v.stream === first.stream);
        return now && now.framesDecoded > first.framesDecoded + 30 ? now : null;
    }, {what: `frames of the Room Signals app's video to keep coming in the web client (first seen: ${JSON.stringify(first)})`});
    assert.ok(flowing.frameWidth > 0, `the web client decodes frames of some size: ${JSON.stringify(flowing)}`);
    // Its tile's video element shows the frames, under the app's userId.
    const tile = web.locator(`.tile[data-stream="${first.stream}"]`);
    await eventually(async () => (await tile.count()) === 1
        && await tile.locator('video').evaluate((v) => v.videoWidth > 0 && v.currentTime > 0),
    {what: `the tile of stream ${first.stream} to play video`});
    assert.match(await tile.locator('figcaption').innerText(), new RegExp(userId),
        'the tile of the app\'s stream is named after its userId');
    await eventually(async () => (await web.locator(`.user[data-id="${sessionId}"]`).count()) === 1,
        {what: `the app (id ${sessionId}) in the web client's people list`}).catch(async (e) => {
        throw new Error(`${e.message}; the list shows ${JSON.stringify(await web.locator('#users').innerText())}`);
    });

    // Room Signals ← web client: the page's camera appears in PUBLISH_LIST_CHANGED (host
    // "Web"), the app WATCHes it, ANSWERs, and decodes it.
    const watched = await eventually(async () => {
        const r = await report(rs);
        const w = Object.values(r.watches).find((x) => x.entry.userId === 'web-user');
        return w && w.framesDecoded > 30 ? {w, r} : null;
    }, {what: 'the web client\'s camera decoding (more than 30 frames) in the Room Signals app'}).catch(async (e) => {
        throw new Error(`${e.message}; the app saw ${summary(await report(rs))}`);
    });
    const {w, r} = watched;
    console.log(`Room Signals app: JOIN ack → first decoded frame of the web client's camera: ${w.firstFrameAfterJoinMs} ms `
        + `(WATCH sent ${w.sentAfterJoinMs} ms after the JOIN ack; WATCH → first frame ${w.firstFrameAfterWatchMs} ms)`);
    assert.equal(w.answerAck && w.answerAck.c, 200, `ANSWER to the WATCH's offer should be acked: ${JSON.stringify(w)}`);
    // The web client's camera entry as README describes entries of other protocols.
    assert.equal(w.entry.role, 'publisher', `the web client's entry: ${JSON.stringify(w.entry)}`);
    assert.equal(w.entry.username, 'web-user', `the web client's entry: ${JSON.stringify(w.entry)}`);
    const webStreams = await web.evaluate(() => [...window.cinnabar.connection.up.keys()]);
    assert.ok(webStreams.includes(w.entry.id),
        `the web client's entry id should be its camera stream's id (${JSON.stringify(webStreams)}): ${JSON.stringify(w.entry)}`);
    // The app's own entry says it is the admin, publishing.
    assert.ok(r.lists.length > 0, 'the app received PUBLISH_LIST_CHANGED');
    const own = (r.lists.at(-1).pps || []).find((p) => p.id === sessionId);
    assert.ok(own && own.role === 'admin' && own.publish === true && own.host === 'Web' && own.userId === userId,
        `the last PUBLISH_LIST_CHANGED should list the app (id ${sessionId}) as a publishing admin: ${JSON.stringify(r.lists.at(-1))}`);
    assert.ok(r.iceIn.own > 0 && r.iceIn.watch > 0,
        `server candidates should reach both connections (ICE pushes with b.id = own sessionId / the watched id): ${JSON.stringify(r.iceIn)}`);
    assert.deepEqual(r.errors, [], `no error frames and no refused candidates; got ${JSON.stringify(r.errors)}`);
    assert.equal(r.closed, null, 'the app\'s socket stays open');

    // The web client's camera keeps coming at the app.
    await eventually(async () => {
        const x = Object.values((await report(rs)).watches).find((y) => y.entry.userId === 'web-user');
        return x.framesDecoded > w.framesDecoded + 30 ? x : null;
    }, {what: 'frames of the web client\'s camera to keep coming at the app'});
    // HEARTBEATs (one at JOIN, then every 3 s) with send_ack: true are acked, and keep the
    // app in the room past the 10 s a silent session is allowed: its video still plays.
    await eventually(async () => (await report(rs)).sinceJoinMs > 12000, {what: '12 s after the JOIN ack'});
    const later = await report(rs);
    assert.ok(later.heartbeatAcks > 0 && later.heartbeatAcks >= later.heartbeatsSent - 1,
        `HEARTBEATs with send_ack: true should be acked: ${later.heartbeatsSent} sent, ${later.heartbeatAcks} acks`);
    assert.equal(later.closed, null, `the app's socket should stay open while it sends HEARTBEATs: ${summary(later)}`);
    assert.deepEqual(later.errors, [], `no error frames; got ${JSON.stringify(later.errors)}`);
    const repeated = later.lists.findIndex((l, i) => i > 0 && JSON.stringify(l) === JSON.stringify(later.lists[i - 1]));
    assert.equal(repeated, -1, `PUBLISH_LIST_CHANGED should never come twice with the same list: ${JSON.stringify(later.lists)}`);
    const stillThere = (await inboundStats(web)).video.find((v) => v.stream === first.stream);
    await eventually(async () => {
        const now = (await inboundStats(web)).video.find((v) => v.stream === first.stream);
        return now && now.framesDecoded > (stillThere ? stillThere.framesDecoded : 0) + 10;
    }, {what: `the app's video to keep playing in the web client 12 s after its JOIN (was ${JSON.stringify(stillThere)})`});
    await web.screenshot({path: joinPath(artifacts, 'room-signals-in-web-client.png')});
});
