// One meeting across protocols: the bundled web client in headless Chromium and minijanus
// clients with wrtc media (tests/peers) in the same group. The Janus clients' packages
// are the ones installed under tests/peers.

import {test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {join as joinPath} from 'node:path';

import {startServer, launchBrowser, newPage, join, inboundStats, eventually, artifacts} from './harness.mjs';
import {publish, subscribe, wsSession} from '../peers/harness.mjs';

let server;
let browser;

before(async () => {
    server = await startServer();
    browser = await launchBrowser();
});

after(async () => {
    if (browser) await browser.close();
    if (server) await server.stop();
});

/** A minijanus session on the server's /janus (its certificate is self-signed). */
async function janusSession() {
    const url = `${server.url.replace('https', 'wss')}/janus`;
    const session = await wsSession(url, {}, {rejectUnauthorized: false});
    await session.session.create();
    return session;
}

test('the web client decodes a Janus publisher\'s video, and a Janus subscriber decodes the web client\'s camera', async (t) => {
    const page = await newPage(browser);
    t.after(() => page.context().close());
    await join(page, server, {username: 'galene-user'});
    const pageId = await page.evaluate(() => window.cinnabar.connection.id);
    await eventually(() => page.evaluate(() => [...window.cinnabar.connection.up.values()]
        .some((s) => s.pc.connectionState === 'connected')), {what: 'the page\'s camera connected'});

    const pubSession = await janusSession();
    t.after(() => pubSession.close());
    const publisher = await publish(pubSession.session, 'demo', 'janus-publisher');
    t.after(() => publisher.stop());
    // The web client's camera counts as a user of the room for Janus clients.
    assert.deepEqual(publisher.reply.plugindata.data.response.users, {demo: [pageId]});

    // The page is offered the Janus client's stream like any other, and decodes it.
    const first = await eventually(async () => {
        const stats = await inboundStats(page);
        return stats.video.find((v) => v.source === 'janus-publisher' && v.label === 'camera' && v.framesDecoded > 0);
    }, {what: 'the Janus publisher\'s video in the page'});
    await eventually(async () => {
        const stats = await inboundStats(page);
        const now = stats.video.find((v) => v.stream === first.stream);
        return now && now.framesDecoded > first.framesDecoded + 20 && now.frameWidth === 320;
    }, {what: 'frames to keep coming at the publisher\'s size'});
    await eventually(async () => (await page.locator('.tile:not(.local) figcaption').allInnerTexts())
        .some((name) => /janus-publisher/.test(name)), {what: 'a tile named after the Janus user'});
    assert.match(await page.locator('#users').innerText(), /janus-publisher/, 'the Janus user is in the people list');

    const subSession = await janusSession();
    t.after(() => subSession.close());
    const subscriber = await subscribe(subSession.session, 'demo', 'janus-viewer', pageId);
    t.after(() => subscriber.stop());
    await eventually(() => subscriber.counts.video > 30 && subscriber.counts.audio > 30,
        {what: `the web client's camera and microphone at the Janus subscriber (${JSON.stringify(subscriber.counts)})`});
    // Browsers start small and grow as the subscriber's bandwidth estimate allows.
    await eventually(() => subscriber.counts.width === 640,
        {what: `full resolution at the Janus subscriber (the fake camera is 640 wide; now ${subscriber.counts.width})`, timeout: 60000});
    await page.screenshot({path: joinPath(artifacts, 'janus-in-web-client.png')});
});
