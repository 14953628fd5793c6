// A scripted Room Signals app (README, "Room Signals (`/room-signals`)") for
// room-signals.test.mjs: plain browser JavaScript, loaded into a blank page at the server's
// origin, that joins a room, publishes the fake camera and microphone, and watches every
// web-client (host "Web") camera that appears in PUBLISH_LIST_CHANGED. The test drives it
// through `window.roomSignals` and reads what it saw with `roomSignals.report()`.

(() => {
    const uuid = () => crypto.randomUUID().toUpperCase();
    /** The frames as sent and received, SDPs shortened, for failure messages. */
    const shorten = (v) => JSON.parse(JSON.stringify(v, (k, x) =>
        (k === 'sdp' && typeof x === 'string' && x.length > 60 ? `${x.slice(0, 40)}…(${x.length} chars)` : x)));

    const state = {
        ss: null, rid: null, ch: null,
        joinAck: null, joinAckAt: null, role: null,
        offerAck: null, publishState: 'new',
        lists: [],             // every PUBLISH_LIST_CHANGED b, in order
        heartbeatsSent: 0, heartbeatAcks: 0, lastHeartbeatAck: null,
        errors: [],            // every frame whose c is not 200
        iceIn: {own: 0, watch: 0, unmatched: []},
        iceOut: 0,
        watches: {},           // entry id → what its watch connection saw
        closed: null,
        frames: [],            // the last frames received, for diagnostics
    };
    let socket;
    let publishPc;
    const waiters = [];        // {s, resolve, reject}: the next frame with that s
    const watchPcs = new Map(); // publisher id (entry id and entry sessionId) → watch
    const pendingIce = new Map(); // publisher id → candidates that came before its watch

    function send(action, signal) {
        const data = {ch: state.ch, rid: state.rid, ss: state.ss, ...signal};
        socket.send(JSON.stringify({action, data}));
    }

    /** The next frame with `s` (an ack or an error for that signal). */
    function next(s, timeout = 15000) {
        return new Promise((resolve, reject) => {
            const w = {s, resolve, reject};
            waiters.push(w);
            setTimeout(() => {
                const i = waiters.indexOf(w);
                if (i >= 0) {
                    waiters.splice(i, 1);
                    reject(new Error(`no ${s} reply within ${timeout} ms; last frames: ${JSON.stringify(state.frames.slice(-5))}`));
                }
            }, timeout);
        });
    }

    function onFrame(text) {
        let m;
        try {
            m = JSON.parse(text);
        } catch (e) {
            state.errors.push({notJson: text.slice(0, 200)});
            return;
        }
        state.frames.push(shorten(m));
        if (state.frames.length > 30) state.frames.shift();
        if (m.c !== 200) state.errors.push(shorten(m));
        const i = waiters.findIndex((w) => w.s === m.s);
        if (i >= 0 && (m.s !== 'ICE' && m.s !== 'PUBLISH_LIST_CHANGED')) {
            const [w] = waiters.splice(i, 1);
            w.resolve(m);
            return;
        }
        if (m.c !== 200) return;
        switch (m.s) {
        case 'PUBLISH_LIST_CHANGED':
            state.lists.push(m.b);
            watchWebPublishers(m.b.pps || []);
            break;
        case 'ICE':
            onServerCandidate(m.b);
            break;
        case 'HEARTBEAT':
            state.heartbeatAcks++;
            state.lastHeartbeatAck = shorten(m.b);
            break;
        default:
            break;
        }
    }

    function candidateOf(b) {
        return {candidate: b.sdp, sdpMid: b.sdpMid, sdpMLineIndex: b.sdpMLineIndex};
    }

    async function addCandidate(pc, b, where) {
        try {
            await pc.addIceCandidate(candidateOf(b));
        } catch (e) {
            state.errors.push({addIceCandidate: where, candidate: b, error: String(e)});
        }
    }

    /** A server candidate: for our own offer's connection, or for the watch of publisher b.id. */
    function onServerCandidate(b) {
        if (b.id === state.ss.sessionId) {
            state.iceIn.own++;
            if (publishPc) addCandidate(publishPc, b, 'publish');
            return;
        }
        const watch = watchPcs.get(b.id);
        if (watch) {
            state.iceIn.watch++;
            watch.candidates.push(b);
            if (watch.pc.remoteDescription) addCandidate(watch.pc, b, `watch ${b.id}`);
            return;
        }
        if (!pendingIce.has(b.id)) pendingIce.set(b.id, []);
        pendingIce.get(b.id).push(b);
        state.iceIn.unmatched.push({id: b.id, sdp: b.sdp});
    }

    /** Joins room `rid` of type `ch`; resolves with the ack. */
    async function join({url, rid, ch = 'm2m', userId, sessionId = uuid(), deviceId = uuid(), roomCreating = true}) {
        state.ss = {userId, sessionId, host: 'Web', category: 'stream', deviceId};
        state.rid = rid;
        state.ch = ch;
        socket = new WebSocket(url);
        socket.onmessage = (event) => onFrame(event.data);
        socket.onclose = (event) => { state.closed = {code: event.code, reason: event.reason}; };
        await new Promise((resolve, reject) => {
            socket.onopen = resolve;
            socket.onerror = () => reject(new Error(`the WebSocket to ${url} did not open`));
        });
        const ack = next('JOIN');
        send('join', {s: 'JOIN', ve: true, ae: true, eg: 'native', op: {roomCreating}});
        const m = await ack;
        state.joinAck = shorten(m);
        if (m.c !== 200) return state.joinAck;
        state.joinAckAt = performance.now();
        state.role = m.b.pt;
        state.iceServers = ((m.b.es && m.b.es.icfg && m.b.es.icfg.is) || []).map((u) => ({urls: u}));
        const heartbeat = () => {
            state.heartbeatsSent++;
            send('heartbeat', {s: 'HEARTBEAT', bid: uuid(), send_ack: true});
        };
        heartbeat();
        setInterval(heartbeat, 3000);
        watchWebPublishers(m.b.pps || []);
        return state.joinAck;
    }

    /** Publishes the fake camera and microphone; resolves with the OFFER's ack. */
    async function publish() {
        const media = await navigator.mediaDevices.getUserMedia({video: true, audio: true});
        const pc = new RTCPeerConnection({iceServers: state.iceServers});
        publishPc = pc;
        for (const track of media.getTracks()) pc.addTrack(track, media);
        pc.onconnectionstatechange = () => { state.publishState = pc.connectionState; };
        let offerSent = false;
        const early = [];
        const trickle = (c) => {
            state.iceOut++;
            send('iceCandidate', {s: 'ICE', sdp: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex});
        };
        pc.onicecandidate = (e) => {
            if (!e.candidate || !e.candidate.candidate) return;
            if (offerSent) trickle(e.candidate); else early.push(e.candidate);
        };
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        const ack = next('OFFER');
        send('offer', {s: 'OFFER', sdp: offer.sdp});
        offerSent = true;
        early.splice(0).forEach(trickle);
        const m = await ack;
        state.offerAck = shorten(m);
        if (m.c !== 200) return state.offerAck;
        await pc.setRemoteDescription({type: 'answer', sdp: m.b.sdp});
        return state.offerAck;
    }

    /** WATCHes every flowing web-client camera not watched yet. */
    function watchWebPublishers(pps) {
        for (const entry of pps) {
            if (entry.host !== 'Web' || entry.category !== 'stream' || !entry.publish) continue;
            if (entry.sessionId === state.ss.sessionId || state.watches[entry.id]) continue;
            watch(entry).catch((e) => {
                state.watches[entry.id].error = String(e && e.message || e);
            });
        }
    }

    async function watch(entry) {
        const seen = {entry, sentAt: performance.now(), ack: null, state: 'new',
            framesDecoded: 0, firstFrameAt: null, frameWidth: 0, audioPackets: 0, answerAck: null, error: null};
        state.watches[entry.id] = seen;
        const to = {userId: entry.userId, sessionId: entry.sessionId};
        const pc = new RTCPeerConnection({iceServers: state.iceServers});
        const w = {pc, candidates: []};
        for (const key of new Set([entry.id, entry.sessionId])) {
            watchPcs.set(key, w);
            for (const b of pendingIce.get(key) || []) w.candidates.push(b);
            pendingIce.delete(key);
        }
        pc.onconnectionstatechange = () => { seen.state = pc.connectionState; };
        let answered = false;
        const early = [];
        const trickle = (c) => {
            state.iceOut++;
            send('iceCandidate', {s: 'ICE', to, sdp: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex});
        };
        pc.onicecandidate = (e) => {
            if (!e.candidate || !e.candidate.candidate) return;
            if (answered) trickle(e.candidate); else early.push(e.candidate);
        };
        const ack = next('WATCH');
        send('watch', {s: 'WATCH', to});
        const m = await ack;
        seen.ack = shorten(m);
        if (m.c !== 200) return;
        const offer = (m.b.pps || []).find((p) => p.id === entry.id || p.id === entry.sessionId) || (m.b.pps || [])[0];
        if (!offer) throw new Error(`WATCH ack without an offer: ${JSON.stringify(seen.ack)}`);
        await pc.setRemoteDescription({type: 'offer', sdp: offer.sdp});
        for (const b of w.candidates) addCandidate(pc, b, `watch ${entry.id} (buffered)`);
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        const answerAck = next('ANSWER');
        send('answer', {s: 'ANSWER', to, sdp: answer.sdp});
        answered = true;
        answerAck.then((a) => { seen.answerAck = shorten(a); }, (e) => { seen.error = String(e.message); });
        early.splice(0).forEach(trickle);
        // Counts decoded frames until the page goes away.
        for (;;) {
            const stats = await pc.getStats();
            stats.forEach((r) => {
                if (r.type !== 'inbound-rtp') return;
                if (r.kind === 'video') {
                    seen.framesDecoded = r.framesDecoded || 0;
                    seen.frameWidth = r.frameWidth || 0;
                    if (seen.framesDecoded > 0 && seen.firstFrameAt === null) seen.firstFrameAt = performance.now();
                } else if (r.kind === 'audio') {
                    seen.audioPackets = r.packetsReceived || 0;
                }
            });
            await new Promise((r) => setTimeout(r, 50));
        }
    }

    /** What the app saw, as plain data. */
    function report() {
        const ms = (t) => (t === null || state.joinAckAt === null ? null : Math.round(t - state.joinAckAt));
        const watches = {};
        for (const [id, w] of Object.entries(state.watches)) {
            watches[id] = {...w, sentAfterJoinMs: ms(w.sentAt), firstFrameAfterJoinMs: ms(w.firstFrameAt),
                firstFrameAfterWatchMs: w.firstFrameAt === null ? null : Math.round(w.firstFrameAt - w.sentAt)};
            delete watches[id].sentAt;
            delete watches[id].firstFrameAt;
        }
        return {...state, joinAckAt: undefined, sinceJoinMs: ms(performance.now()), watches};
    }

    window.roomSignals = {join, publish, report};
})();
