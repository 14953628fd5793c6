// Test support: the real cinnabar server on a free port (over HTTPS with its generated
// certificate; started by tests/peers/server.mjs, which uses Node's own modules only), and
// headless Chromium with fake camera and microphone.

import {mkdirSync} from 'node:fs';
import {join as joinPath} from 'node:path';
import {chromium} from 'playwright-core';

import {eventually, repo, startServer as start} from '../peers/server.mjs';

export {eventually, repo};
export const artifacts = joinPath(repo, 'tests', 'artifacts');
mkdirSync(artifacts, {recursive: true});

const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

export const DEMO = JSON.stringify({
    public: true,
    displayName: 'Demo',
    description: 'A public room for the browser tests',
    users: {boss: {password: 'secret', permissions: 'op'}},
    'wildcard-user': {password: {type: 'wildcard'}, permissions: 'present'},
});

/** Starts the server (over HTTPS) with these group files; resolves once it listens. */
export function startServer(groups = {demo: DEMO}) {
    return start({groups, secure: true});
}

/** Headless Chromium with fake devices that answers every permission prompt with yes. */
export async function launchBrowser() {
    return chromium.launch({
        executablePath: chromiumPath,
        headless: true,
        args: [
            '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync',
            '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
            '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
            '--auto-accept-this-tab-capture', '--autoplay-policy=no-user-gesture-required',
            '--disable-features=WebRtcHideLocalIpsWithMdns',
            '--ignore-certificate-errors',
        ],
    });
}

/** A new page (its own context: own storage, like another person's browser). */
export async function newPage(browser, {width = 1280, height = 800} = {}) {
    const context = await browser.newContext({
        ignoreHTTPSErrors: true,
        viewport: {width, height},
        permissions: ['camera', 'microphone'],
    });
    const page = await context.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    return page;
}

/** Opens the group page and logs in. */
export async function join(page, server, {group = 'demo', username, password = '', presentation = 'camera'}) {
    await page.goto(`${server.url}/group/${group}/`);
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill(password);
    await page.locator(`input[name="presentation"][value="${presentation}"]`).check();
    await page.getByRole('button', {name: 'Join'}).click();
}

/**
 * Makes the page note when its `joined` (kind `join`) arrives, as `window.joinedAt`
 * (performance.now()); call before the page loads the client.
 */
export async function noteJoinTime(page) {
    await page.addInitScript(() => {
        const NativeWebSocket = window.WebSocket;
        window.WebSocket = class extends NativeWebSocket {
            constructor(...args) {
                super(...args);
                this.addEventListener('message', (e) => {
                    if (window.joinedAt !== undefined || typeof e.data !== 'string') return;
                    try {
                        const m = JSON.parse(e.data);
                        if (m.type === 'joined' && m.kind === 'join') window.joinedAt = performance.now();
                    } catch { /* not JSON: not ours to judge */ }
                });
            }
        };
    });
}

/**
 * Milliseconds from the page's `joined` (see noteJoinTime) to the first decoded frame of
 * `source`'s video, polled every 5 ms in the page.
 */
export async function firstFrameAfterJoin(page, source, timeout = 20000) {
    return page.evaluate(async ({source, timeout}) => {
        const started = performance.now();
        while (performance.now() - started < timeout) {
            for (const stream of window.cinnabar.connection.down.values()) {
                if (stream.source !== source) continue;
                let decoded = 0;
                (await stream.pc.getStats()).forEach((r) => {
                    if (r.type === 'inbound-rtp' && r.kind === 'video') decoded += r.framesDecoded || 0;
                });
                if (decoded > 0 && window.joinedAt !== undefined) return performance.now() - window.joinedAt;
            }
            await new Promise((resolve) => setTimeout(resolve, 5));
        }
        throw new Error(`no frame of ${source} decoded within ${timeout} ms`);
    }, {source, timeout});
}

/** Statistics of the streams a page receives, by kind, summed over its connections. */
export async function inboundStats(page) {
    return page.evaluate(async () => {
        const out = {video: [], audio: []};
        for (const stream of window.cinnabar.connection.down.values()) {
            const stats = await stream.pc.getStats();
            stats.forEach((r) => {
                if (r.type === 'inbound-rtp') {
                    out[r.kind].push({
                        stream: stream.id, label: stream.label, source: stream.source,
                        packets: r.packetsReceived || 0, framesDecoded: r.framesDecoded || 0,
                        frameWidth: r.frameWidth || 0, frameHeight: r.frameHeight || 0,
                    });
                }
            });
        }
        return out;
    });
}
