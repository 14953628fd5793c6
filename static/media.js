// Local media (camera, microphone, screen shares), the video grid and the speaking
// indicator.

const $ = (id) => document.getElementById(id);

/** What the receive setting asks of the server. */
export function requestFor(receive) {
    switch (receive) {
    case 'nothing': return {};
    case 'audio': return {'': ['audio']};
    default: return {'': ['audio', 'video']};
    }
}

/** A readable text for a getUserMedia / getDisplayMedia failure. */
function mediaErrorText(e, what) {
    switch (e && e.name) {
    case 'NotAllowedError':
    case 'SecurityError':
        return `The browser refused access to the ${what}. Allow it in the address bar and try again.`;
    case 'NotFoundError':
    case 'OverconstrainedError':
        return `No ${what} was found.`;
    case 'NotReadableError':
        return `The ${what} is in use by another program.`;
    default:
        return `Cannot use the ${what}: ${e && e.message ? e.message : e}`;
    }
}

/** The grid of video tiles. */
export class Grid {
    constructor(container) {
        this.container = container;
        this.tiles = new Map();
        new ResizeObserver(() => this.layout()).observe(container);
    }

    /** Adds (or returns) the tile for stream `id`. */
    tile(id, {name, label, local = false}) {
        let tile = this.tiles.get(id);
        if (tile) return tile;
        const figure = document.createElement('figure');
        figure.className = 'tile' + (local ? ' local' : '');
        figure.dataset.stream = id;
        figure.dataset.label = label;
        const video = document.createElement('video');
        video.autoplay = true;
        video.playsInline = true;
        video.muted = local;
        const avatar = document.createElement('div');
        avatar.className = 'avatar';
        avatar.textContent = (name || '?').slice(0, 1).toUpperCase();
        avatar.setAttribute('aria-hidden', 'true');
        const caption = document.createElement('figcaption');
        const who = document.createElement('span');
        who.className = 'who';
        who.textContent = name + (label === 'screenshare' ? ' (screen)' : '') + (local ? ' (you)' : '');
        const state = document.createElement('span');
        state.className = 'state';
        state.setAttribute('role', 'status');
        caption.append(who, state);
        figure.append(video, avatar, caption);
        figure.setAttribute('aria-label', who.textContent);
        this.container.append(figure);
        tile = {figure, video, state, stop: null};
        this.tiles.set(id, tile);
        this.layout();
        return tile;
    }

    setStream(id, stream) {
        const tile = this.tiles.get(id);
        if (!tile) return;
        if (tile.video.srcObject !== stream) tile.video.srcObject = stream;
        const hasVideo = stream.getVideoTracks().length > 0;
        tile.figure.classList.toggle('audio-only', !hasVideo);
        // Re-evaluate when tracks arrive later.
        tile.video.play().catch(() => {});
    }

    setState(id, state) {
        const tile = this.tiles.get(id);
        if (!tile) return;
        tile.figure.dataset.state = state;
        tile.state.textContent = state === 'connected' ? '' : state;
    }

    setSpeaking(id, speaking) {
        const tile = this.tiles.get(id);
        if (tile) tile.figure.classList.toggle('speaking', speaking);
    }

    /** Adds a button on the tile (to stop a screen share, for example). */
    addAction(id, text, action) {
        const tile = this.tiles.get(id);
        if (!tile) return;
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'tile-action';
        button.textContent = text;
        button.addEventListener('click', action);
        tile.figure.append(button);
    }

    remove(id) {
        const tile = this.tiles.get(id);
        if (!tile) return;
        tile.video.srcObject = null;
        tile.figure.remove();
        this.tiles.delete(id);
        this.layout();
    }

    clear() {
        for (const id of [...this.tiles.keys()]) this.remove(id);
    }

    /** Picks the number of columns that makes 4:3 tiles as large as the area allows. */
    layout() {
        const n = this.tiles.size;
        $('no-video').hidden = n > 0;
        if (n === 0) return;
        const gap = 8;
        const width = this.container.clientWidth;
        const height = this.container.clientHeight;
        let best = {columns: 1, tile: 0, score: 0};
        for (let columns = 1; columns <= n; columns++) {
            const rows = Math.ceil(n / columns);
            const byWidth = (width - gap * (columns - 1)) / columns;
            const byHeight = ((height - gap * (rows - 1)) / rows) * 4 / 3;
            const tile = Math.min(byWidth, byHeight);
            // Side by side reads better than stacked when sizes are close.
            const score = tile * (columns >= rows ? 1.1 : 1);
            if (score > best.score) best = {columns, tile, score};
        }
        this.container.style.setProperty('--columns', String(best.columns));
        this.container.style.setProperty('--tile-width', `${Math.max(80, Math.floor(best.tile))}px`);
    }
}

/**
 * This client's own media: the camera stream (camera and microphone) and screen shares.
 */
export class LocalMedia {
    constructor(app) {
        this.app = app;
        this.camera = null;     // {stream, up} of the camera stream
        this.wantCamera = false;
        this.wantMic = false;
        this.muted = false;
        this.screens = new Map(); // up id -> {stream, up}
        this.cameraDevice = localStorage.getItem('cinnabar.camera') || '';
        this.micDevice = localStorage.getItem('cinnabar.mic') || '';
        this.maxBitrate = Number(localStorage.getItem('cinnabar.sendRate') || 700000);
    }

    get connection() {
        return this.app.connection;
    }

    mayPresent() {
        return this.connection && this.connection.permissions.includes('present');
    }

    /** Captures and publishes what `wantCamera`/`wantMic` say, replacing the old stream. */
    async updateCamera() {
        const old = this.camera;
        this.camera = null;
        if (old) old.stream.getTracks().forEach((t) => t.stop());
        if ((!this.wantCamera && !this.wantMic) || !this.mayPresent()) {
            if (old && old.up) old.up.close();
            if (old) this.app.grid.remove(old.tileId);
            this.app.refreshControls();
            return;
        }
        let stream;
        try {
            stream = await navigator.mediaDevices.getUserMedia({
                audio: this.wantMic ? (this.micDevice ? {deviceId: {exact: this.micDevice}} : true) : false,
                video: this.wantCamera ? (this.cameraDevice ? {deviceId: {exact: this.cameraDevice}} : true) : false,
            });
        } catch (e) {
            const what = this.wantCamera ? 'camera' : 'microphone';
            this.app.notify(mediaErrorText(e, what), 'error');
            this.wantCamera = false;
            this.wantMic = false;
            if (old && old.up) old.up.close();
            if (old) this.app.grid.remove(old.tileId);
            this.app.refreshControls();
            return;
        }
        for (const t of stream.getAudioTracks()) t.enabled = !this.muted;
        const up = await this.connection.publish(stream, 'camera', {
            replace: old && old.up ? old.up.id : null,
            maxBitrate: this.maxBitrate,
        });
        if (old && old.up) {
            // The server drops the replaced stream itself; just forget it here.
            old.up.close(null, {tell: false});
            this.app.grid.remove(old.tileId);
        }
        this.camera = {stream, up, tileId: up.id};
        this.showLocal(up, stream, this.connection.username);
        this.app.refreshControls();
        this.app.rememberDevices();
    }

    showLocal(up, stream, name) {
        const grid = this.app.grid;
        grid.tile(up.id, {name, label: up.label, local: true});
        grid.setStream(up.id, stream);
        grid.setState(up.id, up.state);
        up.onstatus = (state) => grid.setState(up.id, state);
        up.onclose = () => grid.remove(up.id);
    }

    async toggleCamera() {
        this.wantCamera = !this.wantCamera;
        await this.updateCamera();
    }

    /** The microphone button: acquires the microphone, or mutes and unmutes it. */
    async toggleMic() {
        if (!this.wantMic || !this.camera || this.camera.stream.getAudioTracks().length === 0) {
            this.wantMic = true;
            this.muted = false;
            await this.updateCamera();
            return;
        }
        this.muted = !this.muted;
        for (const t of this.camera.stream.getAudioTracks()) t.enabled = !this.muted;
        this.app.refreshControls();
    }

    async shareScreen() {
        if (!navigator.mediaDevices.getDisplayMedia) {
            this.app.notify('This browser cannot share the screen.', 'error');
            return;
        }
        let stream;
        try {
            stream = await navigator.mediaDevices.getDisplayMedia({video: true, audio: true});
        } catch (e) {
            if (e && e.name === 'NotAllowedError') return; // the user cancelled
            this.app.notify(mediaErrorText(e, 'screen'), 'error');
            return;
        }
        const up = await this.connection.publish(stream, 'screenshare', {maxBitrate: this.maxBitrate ? this.maxBitrate * 2 : null});
        for (const track of stream.getVideoTracks()) {
            track.contentHint = 'detail';
            track.addEventListener('ended', () => this.stopScreen(up.id));
        }
        this.screens.set(up.id, {stream, up});
        this.showLocal(up, stream, this.connection.username);
        this.app.grid.addAction(up.id, 'Stop sharing', () => this.stopScreen(up.id));
        const close = up.onclose;
        up.onclose = (reason) => {
            close(reason);
            this.forgetScreen(up.id);
        };
    }

    stopScreen(id) {
        const screen = this.screens.get(id);
        if (!screen) return;
        screen.up.close();
        this.forgetScreen(id);
    }

    forgetScreen(id) {
        const screen = this.screens.get(id);
        if (!screen) return;
        screen.stream.getTracks().forEach((t) => t.stop());
        this.screens.delete(id);
        this.app.grid.remove(id);
    }

    /** The server closed one of our streams (permission withdrawn, for example). */
    onAbort(up) {
        if (this.camera && this.camera.up === up) {
            this.camera.stream.getTracks().forEach((t) => t.stop());
            this.camera = null;
            this.wantCamera = false;
            this.wantMic = false;
        }
        this.forgetScreen(up.id);
        this.app.grid.remove(up.id);
        this.app.refreshControls();
    }

    async setSendRate(bitrate) {
        this.maxBitrate = bitrate;
        localStorage.setItem('cinnabar.sendRate', String(bitrate));
        if (this.camera && this.camera.up) await this.camera.up.setMaxBitrate(bitrate || null);
        for (const s of this.screens.values()) await s.up.setMaxBitrate(bitrate ? bitrate * 2 : null);
    }

    async setDevices(cameraDevice, micDevice) {
        const changed = cameraDevice !== this.cameraDevice || micDevice !== this.micDevice;
        this.cameraDevice = cameraDevice;
        this.micDevice = micDevice;
        if (changed && this.camera) await this.updateCamera();
    }

    /** After a reconnection: publish again what was being sent. */
    async republish() {
        const screens = [...this.screens.values()];
        this.screens.clear();
        if (this.camera) {
            this.camera.stream.getTracks().forEach((t) => t.stop());
            this.camera = null;
        }
        if (this.wantCamera || this.wantMic) await this.updateCamera();
        for (const s of screens) {
            const live = s.stream.getVideoTracks().some((t) => t.readyState === 'live');
            if (!live) continue;
            const up = await this.connection.publish(s.stream, 'screenshare', {maxBitrate: this.maxBitrate ? this.maxBitrate * 2 : null});
            this.screens.set(up.id, {stream: s.stream, up});
            this.showLocal(up, s.stream, this.connection.username);
            this.app.grid.addAction(up.id, 'Stop sharing', () => this.stopScreen(up.id));
        }
    }

    /** Stops everything (leaving). */
    stopAll() {
        if (this.camera) this.camera.stream.getTracks().forEach((t) => t.stop());
        for (const s of this.screens.values()) s.stream.getTracks().forEach((t) => t.stop());
        this.camera = null;
        this.screens.clear();
    }
}

/**
 * Polls the audio levels of every stream and marks the tiles of those who speak.
 * Levels come from WebRTC statistics, so no audio graph is needed.
 */
export class SpeakingIndicator {
    constructor(app) {
        this.app = app;
        this.lastLoud = new Map();
        this.timer = null;
    }

    start() {
        if (this.timer) return;
        this.timer = setInterval(() => this.poll().catch(() => {}), 250);
    }

    stop() {
        clearInterval(this.timer);
        this.timer = null;
    }

    async poll() {
        const connection = this.app.connection;
        if (!connection) return;
        const now = Date.now();
        const streams = [...connection.down.values(), ...connection.up.values()];
        for (const s of streams) {
            if (s.closed) continue;
            let level = 0;
            const stats = await s.pc.getStats();
            stats.forEach((report) => {
                const audio = report.kind === 'audio' &&
                    (report.type === 'inbound-rtp' || report.type === 'media-source');
                if (audio && typeof report.audioLevel === 'number') level = Math.max(level, report.audioLevel);
            });
            const muted = s === (this.app.media.camera && this.app.media.camera.up) && this.app.media.muted;
            if (level > 0.04 && !muted) this.lastLoud.set(s.id, now);
            const speaking = now - (this.lastLoud.get(s.id) || 0) < 700;
            this.app.grid.setSpeaking(s.id, speaking);
            this.app.setUserSpeaking(s.source || connection.id, s.id, speaking);
        }
    }
}
