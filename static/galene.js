// The group page: login, then the meeting. Wires the connection to the chat, the people
// list and the media, and reconnects when the socket drops.

import {ServerConnection} from './protocol.js';
import {Chat} from './chat.js';
import {Users} from './users.js';
import {Grid, LocalMedia, SpeakingIndicator, requestFor} from './media.js';

const $ = (id) => document.getElementById(id);
const groupName = decodeURIComponent(location.pathname.replace(/^\/group\//, '').replace(/\/$/, ''));

/** Delays between reconnection attempts, in milliseconds. */
const RECONNECT_DELAYS = [1000, 2000, 4000, 8000, 10000];

class App {
    constructor() {
        this.connection = null;
        this.credentials = null;     // {username, password} of the current session
        this.status = null;
        this.leaving = false;
        this.joinedOnce = false;
        this.reconnectAttempt = 0;
        this.reconnectTimer = null;
        this.receive = localStorage.getItem('cinnabar.receive') || 'everything';
        this.grid = new Grid($('videos'));
        this.chat = new Chat(this);
        this.users = new Users(this);
        this.media = new LocalMedia(this);
        this.speaking = new SpeakingIndicator(this);
    }

    // ---- feedback ---------------------------------------------------------

    notify(text, kind = 'info') {
        const toast = document.createElement('div');
        toast.className = `toast ${kind}`;
        toast.textContent = text;
        $('toasts').append(toast);
        setTimeout(() => toast.remove(), kind === 'error' ? 8000 : 5000);
        if (kind === 'error') this.chat.system(text);
    }

    banner(text) {
        $('banner').textContent = text || '';
        $('banner').hidden = !text;
    }

    showLoginError(text) {
        $('login-error').textContent = text || '';
        $('login-error').hidden = !text;
    }

    setUserSpeaking(userId, streamId, speaking) {
        this.users.setSpeaking(userId, streamId, speaking);
    }

    /** Brings the toolbar in line with the state of the media and permissions. */
    refreshControls() {
        const media = this.media;
        const mayPresent = media.mayPresent();
        const micOn = !!(media.camera && media.camera.stream.getAudioTracks().length > 0 && !media.muted);
        const camOn = !!(media.camera && media.camera.stream.getVideoTracks().length > 0);
        const set = (id, pressed, label) => {
            $(id).setAttribute('aria-pressed', String(pressed));
            $(id).querySelector('.label').textContent = label;
            $(id).disabled = !mayPresent;
        };
        set('mic', micOn, micOn ? 'Mute' : (media.camera && media.camera.stream.getAudioTracks().length ? 'Unmute' : 'Microphone'));
        set('camera', camOn, camOn ? 'Stop camera' : 'Start camera');
        $('share').disabled = !mayPresent || !navigator.mediaDevices.getDisplayMedia;
        const hand = !!(this.connection && this.connection.users.get(this.connection.id)?.data?.raisehand);
        $('hand').setAttribute('aria-pressed', String(hand));
        $('hand').querySelector('.label').textContent = hand ? 'Lower hand' : 'Raise hand';
        if (this.status) $('lock').textContent = this.status.locked ? 'Unlock group' : 'Lock group';
    }

    rememberDevices() {
        localStorage.setItem('cinnabar.camera', this.media.cameraDevice);
        localStorage.setItem('cinnabar.mic', this.media.micDevice);
    }

    // ---- connection -------------------------------------------------------

    socketUrl() {
        if (this.status && this.status.endpoint) return this.status.endpoint;
        return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
    }

    async fetchStatus() {
        try {
            const response = await fetch('.status', {cache: 'no-store'});
            if (response.ok) this.status = await response.json();
        } catch (_) { /* the login still works without it */ }
        return this.status;
    }

    async join(username, password, presentation) {
        this.credentials = {username, password};
        this.leaving = false;
        this.joinedOnce = false;
        this.media.wantCamera = presentation === 'camera';
        this.media.wantMic = presentation === 'camera' || presentation === 'mic';
        this.media.muted = false;
        $('connect').disabled = true;
        try {
            await this.connect();
        } finally {
            $('connect').disabled = false;
        }
    }

    async connect() {
        const connection = new ServerConnection();
        this.connection = connection;
        connection.onjoined = (kind, group, permissions, status, data, m) => this.onJoined(kind, status, m);
        connection.onuser = (id, kind) => {
            this.users.render();
            if (id === connection.id) this.refreshControls();
            if (this.joinedOnce && id !== connection.id && kind === 'add') {
                this.chat.system(`${connection.users.get(id)?.username || 'someone'} joined`);
            }
        };
        connection.onchat = (m) => this.chat.add(m);
        connection.onclearchat = (value) => this.chat.clearFromServer(value);
        connection.onusermessage = (m) => this.onUserMessage(m);
        connection.ondownstream = (stream) => this.onDownStream(stream);
        connection.onupabort = (up) => this.media.onAbort(up);
        connection.onclose = (code, reason) => this.onClose(code, reason);
        await this.fetchStatus();
        try {
            await connection.connect(this.socketUrl());
        } catch (e) {
            if (this.joinedOnce) {
                this.scheduleReconnect();
            } else {
                this.showLoginError(e.message);
            }
            return;
        }
        connection.join(groupName, this.credentials.username, this.credentials.password);
    }

    async onJoined(kind, status, m) {
        const connection = this.connection;
        switch (kind) {
        case 'join': {
            const reconnected = this.joinedOnce;
            this.joinedOnce = true;
            this.reconnectAttempt = 0;
            this.banner('');
            this.status = {...this.status, ...status};
            $('login').hidden = true;
            $('meeting').hidden = false;
            // The server replays the history on every join, reconnections included.
            this.chat.clear();
            $('meeting-title').textContent = status.displayName || groupName;
            document.title = `${status.displayName || groupName} · Cinnabar`;
            $('connection-state').textContent = status.locked ? 'connected · locked' : 'connected';
            connection.request(requestFor(this.receive));
            this.speaking.start();
            if (reconnected) {
                this.notify('Reconnected.');
                await this.media.republish();
            } else if ((this.media.wantCamera || this.media.wantMic) && this.media.mayPresent()) {
                await this.media.updateCamera();
            }
            this.refreshControls();
            this.users.render();
            break;
        }
        case 'change':
            this.status = {...this.status, ...status};
            $('connection-state').textContent = status.locked ? 'connected · locked' : 'connected';
            this.users.render();
            this.refreshControls();
            break;
        case 'fail':
            this.leaving = true;
            connection.close();
            this.backToLogin(m.value || 'The server refused the connection.');
            break;
        case 'redirect':
            this.leaving = true;
            location.href = m.value;
            break;
        case 'leave':
            this.leaving = true;
            connection.close();
            break;
        }
    }

    onUserMessage(m) {
        switch (m.kind) {
        case 'error':
            this.notify(String(m.value), 'error');
            break;
        case 'warning':
            if (m.privileged || !m.source) this.notify(String(m.value), 'warning');
            break;
        case 'info':
            this.notify(String(m.value));
            break;
        case 'kicked':
            this.leaving = true;
            this.backToLogin(`You were kicked out${m.username ? ' by ' + m.username : ''}: ${m.value}`);
            break;
        case 'userinfo':
            if (m.value) this.chat.system(`${m.value.username || m.value.id} is at ${m.value.address || 'an unknown address'}`);
            break;
        case 'mute':
            // Only operators may mute others; the protocol leaves enforcement to clients.
            if (m.privileged && this.media.camera && !this.media.muted) {
                this.media.muted = true;
                for (const t of this.media.camera.stream.getAudioTracks()) t.enabled = false;
                this.refreshControls();
                this.notify(`${m.username || 'An operator'} muted your microphone.`, 'warning');
            }
            break;
        default:
            break;
        }
    }

    onDownStream(stream) {
        const grid = this.grid;
        grid.tile(stream.id, {name: stream.username || '(anonymous)', label: stream.label});
        grid.setState(stream.id, 'connecting');
        stream.onstatus = (state) => grid.setState(stream.id, state);
        stream.ontrack = (mediaStream) => grid.setStream(stream.id, mediaStream);
        stream.onclose = () => {
            grid.remove(stream.id);
            this.users.setSpeaking(stream.source, stream.id, false);
        };
    }

    onClose(code, reason) {
        this.speaking.stop();
        this.grid.clear();
        if (this.leaving) return;
        if (code === 1000 || code === 1002 || code === 1011) {
            // Closed on purpose by the server: reconnecting would not help.
            this.backToLogin(reason ? `Disconnected: ${reason}` : 'The server closed the connection.');
            return;
        }
        if (!this.joinedOnce) {
            this.backToLogin('The connection to the server was lost.');
            return;
        }
        this.scheduleReconnect();
    }

    scheduleReconnect() {
        const delay = RECONNECT_DELAYS[Math.min(this.reconnectAttempt, RECONNECT_DELAYS.length - 1)];
        this.reconnectAttempt += 1;
        this.banner(`Connection lost. Reconnecting in ${Math.round(delay / 1000)} s…`);
        $('connection-state').textContent = 'reconnecting';
        clearTimeout(this.reconnectTimer);
        this.reconnectTimer = setTimeout(() => {
            if (this.leaving) return;
            this.banner('Reconnecting…');
            this.connect();
        }, delay);
    }

    backToLogin(text) {
        clearTimeout(this.reconnectTimer);
        this.speaking.stop();
        this.media.stopAll();
        this.grid.clear();
        this.banner('');
        $('meeting').hidden = true;
        $('login').hidden = false;
        this.showLoginError(text);
    }

    leave() {
        this.leaving = true;
        clearTimeout(this.reconnectTimer);
        if (this.connection) {
            try { this.connection.leave(); } catch (_) { /* already closed */ }
            this.connection.close();
        }
        this.backToLogin('');
    }

    // ---- settings ------------------------------------------------------------

    async fillDevices() {
        let devices = [];
        try { devices = await navigator.mediaDevices.enumerateDevices(); } catch (_) { /* none */ }
        for (const [kind, id, current] of [
            ['videoinput', 'camera-select', this.media.cameraDevice],
            ['audioinput', 'mic-select', this.media.micDevice],
        ]) {
            const select = $(id);
            select.replaceChildren();
            const fallback = document.createElement('option');
            fallback.value = '';
            fallback.textContent = 'Default';
            select.append(fallback);
            let n = 0;
            for (const d of devices.filter((d) => d.kind === kind)) {
                n += 1;
                const option = document.createElement('option');
                option.value = d.deviceId;
                option.textContent = d.label || `${kind === 'videoinput' ? 'Camera' : 'Microphone'} ${n}`;
                select.append(option);
            }
            select.value = current;
        }
        $('send-rate').value = String(this.media.maxBitrate);
        $('receive').value = this.receive;
    }

    wire() {
        for (const input of document.querySelectorAll('input[name="presentation"]')) {
            if (input.value === (localStorage.getItem('cinnabar.presentation') || 'camera')) input.checked = true;
        }
        $('login-form').addEventListener('submit', (event) => {
            event.preventDefault();
            this.showLoginError('');
            const presentation = document.querySelector('input[name="presentation"]:checked').value;
            localStorage.setItem('cinnabar.presentation', presentation);
            this.join($('username').value.trim(), $('password').value, presentation);
        });
        $('leave').addEventListener('click', () => this.leave());
        $('mic').addEventListener('click', () => this.media.toggleMic());
        $('camera').addEventListener('click', () => this.media.toggleCamera());
        $('share').addEventListener('click', () => this.media.shareScreen());
        $('hand').addEventListener('click', () => {
            const raised = $('hand').getAttribute('aria-pressed') === 'true';
            this.connection.setMyData({raisehand: raised ? null : true});
        });
        $('lock').addEventListener('click', () => {
            if (this.status && this.status.locked) this.connection.groupAction('unlock');
            else this.connection.groupAction('lock');
        });
        $('clear-chat').addEventListener('click', () => this.connection.groupAction('clearchat'));
        $('panel-button').addEventListener('click', () => {
            const open = !document.body.classList.contains('panel-open');
            document.body.classList.toggle('panel-open', open);
            $('panel-button').setAttribute('aria-pressed', String(open));
        });
        $('settings-button').addEventListener('click', async () => {
            await this.fillDevices();
            $('settings').showModal();
        });
        $('camera-select').addEventListener('change', () =>
            this.media.setDevices($('camera-select').value, this.media.micDevice));
        $('mic-select').addEventListener('change', () =>
            this.media.setDevices(this.media.cameraDevice, $('mic-select').value));
        $('send-rate').addEventListener('change', () => this.media.setSendRate(Number($('send-rate').value)));
        $('receive').addEventListener('change', () => {
            this.receive = $('receive').value;
            localStorage.setItem('cinnabar.receive', this.receive);
            if (this.connection && this.connection.connected) this.connection.request(requestFor(this.receive));
        });
        // Keyboard shortcuts outside text fields: m (microphone), v (camera).
        document.addEventListener('keydown', (event) => {
            const typing = ['INPUT', 'TEXTAREA', 'SELECT'].includes(document.activeElement.tagName);
            if (typing || event.ctrlKey || event.metaKey || event.altKey || $('meeting').hidden) return;
            if (event.key === 'm' && !$('mic').disabled) $('mic').click();
            if (event.key === 'v' && !$('camera').disabled) $('camera').click();
        });
        this.chat.wire();
    }

    async init() {
        const status = await this.fetchStatus();
        if (status) {
            $('group-title').textContent = status.displayName || status.name;
            if (status.description) {
                $('group-description').textContent = status.description;
                $('group-description').hidden = false;
            }
            document.title = `${status.displayName || status.name} · Cinnabar`;
        }
        this.wire();
    }
}

const app = new App();
window.cinnabar = app; // for debugging from the console
app.init();
