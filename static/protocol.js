// Galène's WebSocket protocol, client side (shared/protocols/galene.md).
// This module knows the wire format and nothing of the page.

/** A random client id, as Galène's own client makes them. */
export function newId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
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
        // Callbacks, all optional.
        this.onconnected = null;      // ()
        this.onclose = null;          // (code, reason)
        this.onjoined = null;         // (kind, group, permissions, status, data, message)
        this.onuser = null;           // (id, kind)
        this.onchat = null;           // (message, isHistory)
        this.onusermessage = null;    // (message)
        this.onclearchat = null;      // (value)
        this.onmessage = null;        // (message): anything else (media signalling)
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
                    if (Date.now() - this.lastServerMessage > 15000) this.send({type: 'ping'});
                }, 5000);
                if (this.onconnected) this.onconnected();
                resolve();
            };
            socket.onerror = () => { if (!opened) reject(new Error('cannot connect to the server')); };
            socket.onclose = (e) => {
                clearInterval(this.keepalive);
                this.users.clear();
                this.group = null;
                if (this.onclose) this.onclose(e.code, e.reason);
                if (!opened) reject(new Error('cannot connect to the server'));
            };
            socket.onmessage = (e) => {
                this.lastServerMessage = Date.now();
                let message;
                try { message = JSON.parse(e.data); } catch (_) { return; }
                this.dispatch(message);
            };
        });
    }

    get connected() {
        return this.socket && this.socket.readyState === WebSocket.OPEN;
    }

    send(message) {
        if (!this.connected) throw new Error('not connected');
        this.socket.send(JSON.stringify(message));
    }

    close() {
        if (this.socket) this.socket.close(1000);
    }

    dispatch(m) {
        switch (m.type) {
        case 'handshake':
            break;
        case 'ping':
            this.send({type: 'pong'});
            break;
        case 'pong':
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
        default:
            if (this.onmessage) this.onmessage(m);
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
