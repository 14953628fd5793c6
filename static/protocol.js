// Galène's WebSocket protocol, client side (shared/protocols/galene.md).
// This module knows the wire format and WebRTC, and nothing of the page. It speaks only
// what the protocol document defines, so it works against Galène's own server too.

/** A random id, as Galène's own client makes them. */
export function newId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * A stream this client publishes: one RTCPeerConnection, sendonly, offered by us.
 * Callbacks: onstatus(state), onclose(reason), onabort().
 */
export class UpStream {
    constructor(connection, id, label, stream) {
        this.connection = connection;
        this.id = id;
        this.label = label;
        this.stream = stream;
        this.pc = new RTCPeerConnection(connection.rtcConfiguration || {});
        this.senders = [];
        this.pendingCandidates = [];
        this.closed = false;
        this.state = 'new';
        this.onstatus = null;
        this.onclose = null;
        this.pc.onicecandidate = (e) => {
            if (e.candidate) connection.send({type: 'ice', id: this.id, candidate: e.candidate});
        };
        this.pc.onconnectionstatechange = () => this.setState(this.pc.connectionState);
        for (const track of stream.getTracks()) {
            this.senders.push(this.pc.addTransceiver(track, {direction: 'sendonly', streams: [stream]}).sender);
        }
    }

    setState(state) {
        this.state = state;
        if (this.onstatus) this.onstatus(state);
    }

    /** Sends our offer (again, with an ICE restart, when `restart`). */
    async negotiate({restart = false, replace = null} = {}) {
        const offer = await this.pc.createOffer({iceRestart: restart});
        await this.pc.setLocalDescription(offer);
        const m = {
            type: 'offer', id: this.id, label: this.label, sdp: this.pc.localDescription.sdp,
            source: this.connection.id, username: this.connection.username,
        };
        if (replace) m.replace = replace;
        this.connection.send(m);
    }

    async gotAnswer(sdp) {
        await this.pc.setRemoteDescription({type: 'answer', sdp});
        for (const c of this.pendingCandidates.splice(0)) await this.addCandidate(c);
    }

    async addCandidate(candidate) {
        if (!this.pc.remoteDescription) {
            this.pendingCandidates.push(candidate);
            return;
        }
        try { await this.pc.addIceCandidate(candidate); } catch (e) { console.warn('candidate', e); }
    }

    /** Limits the video bitrate (bits per second; 0 or null for no limit). */
    async setMaxBitrate(bitrate) {
        for (const sender of this.senders) {
            if (!sender.track || sender.track.kind !== 'video') continue;
            const parameters = sender.getParameters();
            if (!parameters.encodings || parameters.encodings.length === 0) parameters.encodings = [{}];
            for (const encoding of parameters.encodings) {
                if (bitrate) encoding.maxBitrate = bitrate; else delete encoding.maxBitrate;
            }
            try { await sender.setParameters(parameters); } catch (e) { console.warn('setParameters', e); }
        }
    }

    /** Closes the stream; tells the server unless it asked us to. */
    close(reason = null, {tell = true} = {}) {
        if (this.closed) return;
        this.closed = true;
        if (tell && this.connection.connected) this.connection.send({type: 'close', id: this.id, source: this.connection.id});
        this.pc.close();
        this.connection.up.delete(this.id);
        this.setState('closed');
        if (this.onclose) this.onclose(reason);
    }
}

/**
 * A stream this client receives: one RTCPeerConnection, offered by the server.
 * Callbacks: ontrack(stream), onstatus(state), onclose().
 */
export class DownStream {
    constructor(connection, id, label, source, username) {
        this.connection = connection;
        this.id = id;
        this.label = label;
        this.source = source;
        this.username = username;
        this.stream = new MediaStream();
        this.pc = new RTCPeerConnection(connection.rtcConfiguration || {});
        this.pendingCandidates = [];
        this.closed = false;
        this.state = 'new';
        this.ontrack = null;
        this.onstatus = null;
        this.onclose = null;
        this.pc.onicecandidate = (e) => {
            if (e.candidate) connection.send({type: 'ice', id: this.id, candidate: e.candidate});
        };
        this.pc.ontrack = (e) => {
            this.stream.addTrack(e.track);
            if (this.ontrack) this.ontrack(this.stream);
        };
        this.pc.onconnectionstatechange = () => {
            this.state = this.pc.connectionState;
            if (this.onstatus) this.onstatus(this.state);
            // A failed subscription is restarted by asking the server for a new offer.
            if (this.state === 'failed' && connection.connected) connection.send({type: 'renegotiate', id: this.id});
        };
    }

    async gotOffer(sdp) {
        await this.pc.setRemoteDescription({type: 'offer', sdp});
        for (const c of this.pendingCandidates.splice(0)) await this.addCandidate(c);
        const answer = await this.pc.createAnswer();
        await this.pc.setLocalDescription(answer);
        this.connection.send({type: 'answer', id: this.id, sdp: this.pc.localDescription.sdp, source: this.connection.id});
    }

    async addCandidate(candidate) {
        if (!this.pc.remoteDescription) {
            this.pendingCandidates.push(candidate);
            return;
        }
        try { await this.pc.addIceCandidate(candidate); } catch (e) { console.warn('candidate', e); }
    }

    close() {
        if (this.closed) return;
        this.closed = true;
        this.pc.close();
        this.connection.down.delete(this.id);
        if (this.onclose) this.onclose();
    }
}

/**
 * One connection to the server. Set the `on*` callbacks, then call `connect`.
 */
export class ServerConnection {
    constructor() {
        this.id = newId();
        this.socket = null;
        this.group = null;
        this.username = null;
        this.permissions = [];
        this.rtcConfiguration = null;
        this.users = new Map();
        this.up = new Map();
        this.down = new Map();
        // Callbacks, all optional.
        this.onclose = null;          // (code, reason)
        this.onjoined = null;         // (kind, group, permissions, status, data, message)
        this.onuser = null;           // (id, kind)
        this.onchat = null;           // (message, isHistory)
        this.onusermessage = null;    // (message)
        this.onclearchat = null;      // (value)
        this.ondownstream = null;     // (DownStream): a new stream to receive
        this.onupabort = null;        // (UpStream): the server closed one of our streams
        this.lastServerMessage = 0;
        this.keepalive = null;
    }

    connect(url) {
        return new Promise((resolve, reject) => {
            let opened = false;
            const socket = new WebSocket(url);
            this.socket = socket;
            socket.onopen = () => {
                opened = true;
                this.send({type: 'handshake', version: ['2'], id: this.id});
                this.lastServerMessage = Date.now();
                // Ping when the server has been quiet, so dead links are noticed.
                this.keepalive = setInterval(() => {
                    const silent = Date.now() - this.lastServerMessage;
                    if (silent > 60000) socket.close(4000, 'the server stopped answering');
                    else if (silent > 15000 && this.connected) this.send({type: 'ping'});
                }, 5000);
                resolve();
            };
            socket.onerror = () => { if (!opened) reject(new Error('cannot connect to the server')); };
            socket.onclose = (e) => {
                clearInterval(this.keepalive);
                for (const s of [...this.up.values()]) s.close(null, {tell: false});
                for (const s of [...this.down.values()]) s.close();
                this.users.clear();
                this.group = null;
                if (!opened) reject(new Error('cannot connect to the server'));
                else if (this.onclose) this.onclose(e.code, e.reason);
            };
            socket.onmessage = (e) => {
                this.lastServerMessage = Date.now();
                let message;
                try { message = JSON.parse(e.data); } catch (_) { return; }
                this.dispatch(message).catch((err) => console.error(err));
            };
        });
    }

    get connected() {
        return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
    }

    send(message) {
        if (!this.connected) throw new Error('not connected');
        this.socket.send(JSON.stringify(message));
    }

    close() {
        if (this.socket) this.socket.close(1000);
    }

    async dispatch(m) {
        switch (m.type) {
        case 'handshake':
        case 'pong':
            break;
        case 'ping':
            this.send({type: 'pong'});
            break;
        case 'joined':
            if (m.kind === 'join' || m.kind === 'change') {
                this.group = m.group;
                this.username = m.username;
                this.permissions = m.permissions || [];
                this.rtcConfiguration = m.rtcConfiguration || null;
            } else if (m.kind === 'leave') {
                this.group = null;
                this.users.clear();
            }
            if (this.onjoined) this.onjoined(m.kind, m.group, m.permissions || [], m.status || {}, m.data || {}, m);
            break;
        case 'user':
            if (m.kind === 'delete') {
                this.users.delete(m.id);
            } else {
                this.users.set(m.id, {
                    username: m.username || '',
                    permissions: m.permissions || [],
                    data: m.data || {},
                });
            }
            if (this.onuser) this.onuser(m.id, m.kind);
            break;
        case 'chat':
        case 'chathistory':
            if (this.onchat) this.onchat(m, m.type === 'chathistory');
            break;
        case 'usermessage':
            if (m.kind === 'clearchat' && m.privileged) {
                if (this.onclearchat) this.onclearchat(m.value);
            } else if (this.onusermessage) {
                this.onusermessage(m);
            }
            break;
        case 'offer': {
            if (m.replace) {
                const old = this.down.get(m.replace);
                if (old) old.close();
            }
            let stream = this.down.get(m.id);
            if (!stream) {
                stream = new DownStream(this, m.id, m.label || '', m.source || '', m.username || '');
                this.down.set(m.id, stream);
                if (this.ondownstream) this.ondownstream(stream);
            }
            try {
                await stream.gotOffer(m.sdp);
            } catch (e) {
                console.error('cannot answer', e);
                this.send({type: 'abort', id: m.id, source: this.id});
                stream.close();
            }
            break;
        }
        case 'answer': {
            const stream = this.up.get(m.id);
            if (stream) await stream.gotAnswer(m.sdp);
            break;
        }
        case 'ice': {
            const stream = this.up.get(m.id) || this.down.get(m.id);
            if (stream && m.candidate) await stream.addCandidate(m.candidate);
            break;
        }
        case 'renegotiate': {
            // The server asks for an ICE restart of a stream we publish.
            const stream = this.up.get(m.id);
            if (stream) await stream.negotiate({restart: true});
            break;
        }
        case 'close': {
            const stream = this.down.get(m.id);
            if (stream) stream.close();
            break;
        }
        case 'abort': {
            // The server will not take (or keeps no longer) a stream we publish.
            const stream = this.up.get(m.id);
            if (stream) {
                stream.close('aborted by the server');
                if (this.onupabort) this.onupabort(stream);
            }
            break;
        }
        default:
            console.debug('unexpected message', m);
        }
    }

    join(group, username, password) {
        const m = {type: 'join', kind: 'join', group, username};
        if (password) m.password = password;
        this.send(m);
    }

    leave() {
        if (this.group) this.send({type: 'join', kind: 'leave', group: this.group, username: this.username});
    }

    /** What to receive: a map from labels ('' for the rest) to lists of 'audio', 'video', 'video-low'. */
    request(what) {
        this.send({type: 'request', request: what});
    }

    /** Publishes `stream` under `label`; `replace` names a stream of ours it replaces. */
    async publish(stream, label, {replace = null, maxBitrate = null} = {}) {
        const up = new UpStream(this, newId(), label, stream);
        this.up.set(up.id, up);
        if (maxBitrate) await up.setMaxBitrate(maxBitrate);
        await up.negotiate({replace});
        return up;
    }

    chat(value, {kind = '', dest = null} = {}) {
        const m = {type: 'chat', source: this.id, username: this.username, kind, value};
        if (dest) m.dest = dest;
        this.send(m);
    }

    userMessage(kind, dest, value) {
        const m = {type: 'usermessage', source: this.id, username: this.username, kind, value};
        if (dest) m.dest = dest;
        this.send(m);
    }

    userAction(kind, dest, value) {
        const m = {type: 'useraction', source: this.id, username: this.username, kind, dest};
        if (value !== undefined) m.value = value;
        this.send(m);
    }

    groupAction(kind, value) {
        const m = {type: 'groupaction', source: this.id, username: this.username, kind};
        if (value !== undefined) m.value = value;
        this.send(m);
    }

    setMyData(data) {
        this.userAction('setdata', this.id, data);
    }
}
