// Test support: the real cinnabar server on a free port (over HTTPS with its generated
// certificate), and headless Chromium with fake camera and microphone.

import {spawn} from 'node:child_process';
import {mkdtempSync, mkdirSync, writeFileSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join as joinPath, dirname, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';
import {chromium} from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, '..', '..');
export const artifacts = joinPath(repo, 'tests', 'artifacts');
mkdirSync(artifacts, {recursive: true});

const binary = process.env.CINNABAR_BIN || joinPath(repo, 'target', 'debug', 'cinnabar');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

export const DEMO = JSON.stringify({
    public: true,
    displayName: 'Demo',
    description: 'A public room for the browser tests',
    users: {boss: {password: 'secret', permissions: 'op'}},
    'wildcard-user': {password: {type: 'wildcard'}, permissions: 'present'},
});

/** Starts the server with these group files; resolves once it listens. */
export async function startServer(groups = {demo: DEMO}) {
    const dir = mkdtempSync(joinPath(tmpdir(), 'cinnabar-browser-'));
    mkdirSync(joinPath(dir, 'groups'));
    mkdirSync(joinPath(dir, 'data'));
    for (const [name, text] of Object.entries(groups)) {
        writeFileSync(joinPath(dir, 'groups', `${name}.json`), text);
    }
    const child = spawn(binary, [
        '--http', '127.0.0.1:0', '--udp-range', '0',
        '--data', joinPath(dir, 'data'), '--groups', joinPath(dir, 'groups'), '--static', joinPath(repo, 'static'),
    ], {stdio: ['ignore', 'ignore', 'pipe'], env: {...process.env, RUST_LOG: 'info,webrtc=warn,webrtc_ice=warn'}});
    const log = [];
    const port = await new Promise((resolvePort, reject) => {
        const timer = setTimeout(() => reject(new Error(`server did not start:\n${log.join('')}`)), 30000);
        child.stderr.on('data', (chunk) => {
            const text = chunk.toString();
            log.push(text);
            if (process.env.CINNABAR_TEST_LOG) process.stderr.write(`server: ${text}`);
            const m = text.match(/listening on https:\/\/127\.0\.0\.1:(\d+)\//);
            if (m) {
                clearTimeout(timer);
                resolvePort(Number(m[1]));
            }
        });
        child.on('exit', (code) => reject(new Error(`server exited (${code}):\n${log.join('')}`)));
    });
    return {
        port,
        url: `https://127.0.0.1:${port}`,
        log,
        async stop() {
            child.kill('SIGTERM');
            await new Promise((r) => { child.once('exit', r); setTimeout(r, 5000); });
            rmSync(dir, {recursive: true, force: true});
        },
    };
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

/** Waits until `check()` returns a truthy value; returns it. */
export async function eventually(check, {timeout = 30000, interval = 250, what = 'condition'} = {}) {
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
        try {
            last = await check();
            if (last) return last;
        } catch (e) {
            last = e;
        }
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
        await new Promise((r) => setTimeout(r, interval));
    }
}
