// The real cinnabar server for the Node tests (tests/peers and tests/browser): started on
// a free port with its own groups and data directories, stopped by the test. Uses Node's
// own modules only.

import {spawn} from 'node:child_process';
import {mkdtempSync, mkdirSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {dirname, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const binary = process.env.CINNABAR_BIN
    || join(process.env.CARGO_TARGET_DIR || join(repo, 'target'), 'debug', 'cinnabar');

/**
 * Starts the server with these group files (name → JSON text), `data/config.json` (an
 * object), extra files in the data directory and extra arguments; over HTTPS with its
 * generated certificate when `secure`. Resolves once it listens.
 */
export async function startServer({groups = {}, config, dataFiles = {}, args = [], secure = false} = {}) {
    const dir = mkdtempSync(join(tmpdir(), 'cinnabar-node-'));
    mkdirSync(join(dir, 'groups'));
    mkdirSync(join(dir, 'data'));
    for (const [name, text] of Object.entries(groups)) {
        writeFileSync(join(dir, 'groups', `${name}.json`), text);
    }
    if (config) writeFileSync(join(dir, 'data', 'config.json'), JSON.stringify(config));
    for (const [name, content] of Object.entries(dataFiles)) {
        writeFileSync(join(dir, 'data', name), content);
    }
    const child = spawn(binary, [
        '--http', '127.0.0.1:0', '--udp-range', '0',
        '--data', join(dir, 'data'), '--groups', join(dir, 'groups'), '--static', join(repo, 'static'),
        ...(secure ? [] : ['--insecure']),
        ...args,
    ], {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: {...process.env, RUST_LOG: process.env.CINNABAR_TEST_RUST_LOG || 'info,webrtc=warn,webrtc_ice=warn'},
    });
    const log = [];
    const scheme = secure ? 'https' : 'http';
    const port = await new Promise((resolvePort, reject) => {
        const timer = setTimeout(() => reject(new Error(`server did not start:\n${log.join('')}`)), 30000);
        child.stderr.on('data', (chunk) => {
            const text = chunk.toString();
            log.push(text);
            if (process.env.CINNABAR_TEST_LOG) process.stderr.write(`server: ${text}`);
            const m = text.match(new RegExp(`listening on ${scheme}://127\\.0\\.0\\.1:(\\d+)/`));
            if (m) {
                clearTimeout(timer);
                resolvePort(Number(m[1]));
            }
        });
        child.on('error', reject);
        child.on('exit', (code) => reject(new Error(`server exited (${code}):\n${log.join('')}`)));
    });
    return {
        port,
        /** The server's base URL, `http(s)://127.0.0.1:PORT`. */
        url: `${scheme}://127.0.0.1:${port}`,
        log,
        async stop() {
            child.kill('SIGTERM');
            await new Promise((r) => { child.once('exit', r); setTimeout(r, 5000); });
            rmSync(dir, {recursive: true, force: true});
        },
    };
}

/** Waits until `check()` returns a truthy value; returns it. */
export async function eventually(check, {timeout = 30000, interval = 100, what = 'condition'} = {}) {
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
        try {
            last = await check();
            if (last) return last;
        } catch (e) {
            last = e;
        }
        if (Date.now() > deadline) {
            const seen = last instanceof Error ? last.message : JSON.stringify(last);
            throw new Error(`timed out waiting for ${what} (last: ${seen})`);
        }
        await new Promise((r) => setTimeout(r, interval));
    }
}
