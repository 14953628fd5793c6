// The real clients of janus.plugin.sfu against /janus: naf-janus-adapter@4.0.1 and
// minijanus@0.6.2 in Node, with media from @roamhq/wrtc@0.10.0 (VP8, Opus, data channels).
// Each test starts its own server, which stops with the test.

import {test} from 'node:test';
import assert from 'node:assert/strict';

import {
    dataHandle, eventually, fakeMedia, fixture, httpSession, nafClient, publish, signJwt, sleep,
    sfuHandle, startServer, subscribe, wsSession,
} from './harness.mjs';

test('two naf-janus-adapter clients see each other and exchange reliable and unreliable data; a third that blocked one gets nothing from it', async (t) => {
    const server = await startServer();
    t.after(() => server.stop());
    const alice = nafClient(server.base, 'hub', 'alice');
    t.after(() => alice.disconnect());
    await alice.connected;
    const bob = nafClient(server.base, 'hub', 'bob');
    t.after(() => bob.disconnect());
    await bob.connected;
    await eventually(() => alice.adapter.occupants.bob && bob.adapter.occupants.alice,
        {what: 'alice and bob connected to each other as occupants'});

    alice.adapter.sendDataGuaranteed('bob', 'u', {n: 1});
    alice.adapter.sendData('bob', 'u', {n: 2});
    await eventually(() => bob.received.some((m) => m.source === 'janus-reliable' && m.data.n === 1)
        && bob.received.some((m) => m.source === 'janus-unreliable' && m.data.n === 2),
    {what: 'bob receiving on both channels'});
    assert.ok(!alice.received.some((m) => m.data.n === 1), 'a message does not come back to its sender');

    const carol = nafClient(server.base, 'hub', 'carol');
    t.after(() => carol.disconnect());
    await carol.connected;
    await eventually(() => carol.adapter.occupants.alice && carol.adapter.occupants.bob,
        {what: 'carol connected to both'});
    await carol.adapter.block('alice');
    await eventually(() => alice.events.some((e) => e.event === 'blocked' && e.by === 'carol'),
        {what: 'alice told she is blocked'});

    alice.adapter.broadcastDataGuaranteed('u', {n: 3});
    carol.adapter.broadcastDataGuaranteed('u', {n: 4});
    await eventually(() => bob.received.some((m) => m.data.n === 3) && bob.received.some((m) => m.data.n === 4),
        {what: 'bob getting both messages'});

    // After the unblock, what alice sends reaches carol again, on the same ordered channel:
    // had the blocked message been relayed, it would have come first.
    await carol.adapter.unblock('alice');
    await eventually(() => alice.events.some((e) => e.event === 'unblocked' && e.by === 'carol'),
        {what: 'alice told she is unblocked'});
    alice.adapter.broadcastDataGuaranteed('u', {n: 5});
    carol.adapter.broadcastDataGuaranteed('u', {n: 6});
    await eventually(() => carol.received.some((m) => m.data.n === 5) && alice.received.some((m) => m.data.n === 6),
        {what: 'messages flowing between alice and carol again'});
    assert.ok(!carol.received.some((m) => m.data.n === 3), 'carol got nothing from alice while she blocked her');
    assert.ok(!alice.received.some((m) => m.data.n === 4), 'alice got nothing from carol while she was blocked');
});

test('only room members speak on the data channels: what a handle that joined without data sends goes nowhere', async (t) => {
    const server = await startServer();
    t.after(() => server.stop());
    const naf = nafClient(server.base, 'hub', 'listener');
    t.after(() => naf.disconnect());
    await naf.connected;
    const sessions = [];
    for (let i = 0; i < 2; i++) {
        const s = await wsSession(server.janus);
        t.after(() => s.close());
        await s.session.create();
        sessions.push(s.session);
    }
    const outsider = await dataHandle(sessions[0], 'hub', 'outsider', {notifications: true});
    t.after(() => outsider.stop());
    const member = await dataHandle(sessions[1], 'hub', 'member', {notifications: true, data: true});
    t.after(() => member.stop());
    await eventually(() => naf.adapter.occupants.member, {what: 'the member among naf\'s occupants'});
    assert.ok(!naf.adapter.availableOccupants.includes('outsider'), 'the outsider is no user of the room');

    outsider.channel.send(JSON.stringify({dataType: 'u', data: {from: 'outsider'}}));
    await eventually(() => outsider.channel.bufferedAmount === 0, {what: 'the outsider\'s message sent'});
    await sleep(300);
    member.channel.send(JSON.stringify({dataType: 'u', data: {from: 'member'}}));
    await eventually(() => naf.received.some((m) => m.data.from === 'member'), {what: 'the member\'s message relayed'});
    naf.adapter.broadcastDataGuaranteed('u', {from: 'listener'});
    await eventually(() => member.received.some((m) => m.data.from === 'listener'), {what: 'the listener\'s message at the member'});
    await sleep(500);
    assert.ok(!naf.received.some((m) => m.data.from === 'outsider'), 'nothing from the outsider reached a member');
    assert.ok(!member.received.some((m) => m.data.from === 'outsider'), 'nor the other member');
    assert.ok(!outsider.received.length, 'and the outsider gets no room data');
});

test('a minijanus subscriber decodes the audio and VP8 video of a minijanus publisher; a block stops them and an unblock brings them back', async (t) => {
    const server = await startServer();
    t.after(() => server.stop());
    const pubSession = await wsSession(server.janus);
    t.after(() => pubSession.close());
    await pubSession.session.create();
    const publisher = await publish(pubSession.session, 'hub', 'speaker');
    t.after(() => publisher.stop());
    assert.match(publisher.reply.jsep.sdp, /a=rtpmap:\d+ VP8\/90000/, 'VP8 is negotiated');
    assert.match(publisher.reply.jsep.sdp, /a=candidate:/, 'the answer carries our candidates (Janus does not trickle)');

    const subSession = await wsSession(server.janus);
    t.after(() => subSession.close());
    await subSession.session.create();
    const subscriber = await subscribe(subSession.session, 'hub', 'listener', 'speaker');
    t.after(() => subscriber.stop());
    assert.deepEqual(subscriber.reply.plugindata.data.response.users, {hub: ['speaker']});
    await eventually(() => subscriber.counts.video > 30 && subscriber.counts.audio > 30,
        {what: `decoded media (${JSON.stringify(subscriber.counts)})`});
    assert.equal(subscriber.counts.width, 320, 'the publisher\'s frames arrive whole');

    const block = await subscriber.handle.sendMessage({kind: 'block', whom: 'speaker'});
    assert.deepEqual(block.plugindata.data, {success: true, response: {}});
    await sleep(500);
    const frozen = subscriber.counts.video;
    await sleep(1500);
    assert.ok(subscriber.counts.video - frozen < 3, `no video while blocked (${subscriber.counts.video - frozen} frames)`);

    await subscriber.handle.sendMessage({kind: 'unblock', whom: 'speaker'});
    await eventually(() => subscriber.counts.video > frozen + 30, {what: 'video again after the unblock'});
});

test('a naf-janus-adapter client that adds its camera after joining is received by a minijanus subscriber', async (t) => {
    // naf offers data channels first and adds its tracks once they are open: the
    // subscriber's connection is offered again when the publisher's tracks come.
    const server = await startServer();
    t.after(() => server.stop());
    const media = fakeMedia();
    t.after(() => media.stop());
    const naf = nafClient(server.base, 'hub', 'naf-user');
    t.after(() => naf.disconnect());
    await naf.connected;
    const session = await wsSession(server.janus);
    t.after(() => session.close());
    await session.session.create();
    const subscriber = await subscribe(session.session, 'hub', 'watcher', 'naf-user');
    t.after(() => subscriber.stop());
    assert.equal(subscriber.counts.video, 0);
    await naf.adapter.setLocalMediaStream(media.stream);
    await eventually(() => subscriber.offers.length > 0, {what: 'a new offer once naf sends media'});
    await eventually(() => subscriber.counts.video > 30 && subscriber.counts.audio > 30,
        {what: `decoded media (${JSON.stringify(subscriber.counts)})`});
});

test('sessions time out without keepalives and live on with them', async (t) => {
    const server = await startServer({config: {janus: {sessionTimeout: 2}}});
    t.after(() => server.stop());
    const kept = await wsSession(server.janus, {keepaliveMs: 500});
    t.after(() => kept.close());
    const silent = await wsSession(server.janus, {keepaliveMs: 0});
    t.after(() => silent.close());
    await kept.session.create();
    await silent.session.create();
    const id = silent.session.id;
    await eventually(() => silent.messages.some((m) => m.janus === 'timeout' && m.session_id === id),
        {timeout: 6000, what: 'the silent session\'s timeout'});
    await assert.rejects(silent.session.send('keepalive'), (error) => {
        assert.equal(error.error.code, 458);
        assert.equal(error.error.reason, `No such session ${id}`);
        return true;
    });
    await sleep(1500);
    const attached = await kept.session.send('attach', {plugin: 'janus.plugin.sfu'});
    assert.equal(attached.janus, 'success', 'the session with keepalives is alive');
});

test('errors carry Janus\'s codes and reasons; the plugin says what is wrong', async (t) => {
    const server = await startServer();
    t.after(() => server.stop());
    const {session, messages, close} = await wsSession(server.janus);
    t.after(close);
    await session.create();
    const fails = (promise, code, reason) => assert.rejects(promise, (error) => {
        assert.deepEqual(error.error, {code, reason});
        return true;
    });
    await fails(session.send('attach', {plugin: 'janus.plugin.videoroom'}), 460, 'No such plugin \'janus.plugin.videoroom\'');
    await fails(session.send('message', {handle_id: 4242, body: {}}), 459, `No such handle 4242 in session ${session.id}`);
    await fails(session.send('fiddle'), 453, 'Unknown request \'fiddle\'');
    await fails(session.send('attach', {}), 456, 'Missing mandatory element (plugin)');
    await fails(session.send('attach', {plugin: 7}), 467, 'Invalid element type (plugin should be a string)');
    const handle = (await session.send('attach', {plugin: 'janus.plugin.sfu'})).data.id;
    await fails(session.send('message', {handle_id: handle}), 456, 'Missing mandatory element (body)');
    // The reason names the SDP parser's complaint.
    const badSdp = await session.send('message', {handle_id: handle, body: {}, jsep: {type: 'offer', sdp: 'nonsense'}})
        .catch((e) => e);
    assert.equal(badSdp.error.code, 465);
    await fails(session.send('message', {handle_id: handle, body: {}, jsep: {type: 'rollback', sdp: ''}}), 464, 'JSEP error: unknown message type \'rollback\'');
    await fails(session.send('trickle', {handle_id: handle}), 456, 'Missing mandatory element (candidate|candidates)');
    await fails(session.send('detach'), 457, 'Unhandled request \'detach\' at this path');

    const plugin = async (body) => (await session.send('message', {handle_id: handle, body})).plugindata.data;
    assert.deepEqual(await plugin({kind: 'block', whom: 'x'}), {success: false, error: {msg: 'Cannot block when not in a room.'}});
    assert.deepEqual(await plugin({kind: 'join', room_id: 'hub'}), {success: false, error: {msg: 'missing field `user_id`'}});
    assert.deepEqual(await plugin({kind: 'join', room_id: 'hub', user_id: 'u', subscribe: {media: 'nobody'}}),
        {success: false, error: {msg: 'Can\'t subscribe to a nonexistent publisher.'}});
    assert.deepEqual(await plugin({kind: 'join', room_id: 'hub', user_id: 'u'}), {success: false, error: {msg: 'Handles may only join once!'}});
    assert.deepEqual(await plugin({kind: 'kick', room_id: 'hub', user_id: 'u'}),
        {success: false, error: {msg: 'Kicking needs a token with kick_users, and this server has no key to check one.'}});
    const other = (await session.send('attach', {plugin: 'janus.plugin.sfu'})).data.id;
    const missing = (await session.send('message', {handle_id: other, body: {kind: 'join', room_id: 'no-such-room', user_id: 'v'}})).plugindata.data;
    assert.deepEqual(missing, {success: false, error: {msg: 'Cannot join room no-such-room: group does not exist'}});

    const detached = await session.send('detach', {handle_id: other});
    assert.equal(detached.janus, 'success');
    await eventually(() => messages.some((m) => m.janus === 'detached' && m.sender === other),
        {what: 'detached after the success'});
    assert.ok(messages.findIndex((m) => m.janus === 'detached' && m.sender === other)
        > messages.findIndex((m) => m.janus === 'success' && m.transaction === detached.transaction));
});

test('the HTTP transport with long polls: a janus.js-style publisher is received over the WebSocket', async (t) => {
    const server = await startServer();
    t.after(() => server.stop());
    const info = await (await fetch(`${server.base}/janus/info`)).json();
    assert.equal(info.janus, 'server_info');
    assert.ok(info.plugins['janus.plugin.sfu'], 'the plugin is listed');

    const http = httpSession(server.base);
    t.after(() => http.stop());
    await http.create();
    const publisher = await publish(http.session, 'hub', 'over-http');
    t.after(() => publisher.stop());
    assert.ok(http.messages.some((m) => m.janus === 'webrtcup'), 'webrtcup came through the long poll');

    const ws = await wsSession(server.janus);
    t.after(() => ws.close());
    await ws.session.create();
    const subscriber = await subscribe(ws.session, 'hub', 'over-ws', 'over-http');
    t.after(() => subscriber.stop());
    await eventually(() => subscriber.counts.video > 30 && subscriber.counts.audio > 30,
        {what: `decoded media (${JSON.stringify(subscriber.counts)})`});
    await eventually(() => http.messages.some((m) => m.janus === 'media' && m.type === 'video' && m.receiving === true),
        {what: 'a media event for the publisher'});

    const unknown = await (await fetch(`${server.base}/janus/12345`)).json();
    assert.deepEqual(unknown.error, {code: 458, reason: 'No such session 12345'});
});

test('JWT tokens: joins need one that names the room, and kick_users lets a moderator kick', async (t) => {
    const server = await startServer({
        config: {janus: {authKey: 'janus.pub.pem'}},
        dataFiles: {'janus.pub.pem': fixture('janus-test-key.pub.pem')},
    });
    t.after(() => server.stop());
    const key = fixture('janus-test-key.pem');
    const exp = Math.floor(Date.now() / 1000) + 600;
    const member = signJwt({join_hub: true, room_ids: ['hub'], exp}, key);
    const moderator = signJwt({join_hub: true, kick_users: true, exp}, key);
    const elsewhere = signJwt({join_hub: true, room_ids: ['other'], exp}, key);

    const victim = await wsSession(server.janus);
    t.after(() => victim.close());
    await victim.session.create();
    const vh = await sfuHandle(victim.session);
    const join = (handle, token) => handle.sendMessage({kind: 'join', room_id: 'hub', user_id: 'victim',
        subscribe: {notifications: true, data: true}, token});
    assert.equal((await join(vh.handle)).plugindata.data.error.msg, 'Rejecting anonymous join!');
    const forged = member.slice(0, -4) + (member.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    assert.equal((await join(vh.handle, forged)).plugindata.data.error.msg, 'Rejecting join with invalid token!');
    assert.equal((await join(vh.handle, elsewhere)).plugindata.data.error.msg, 'Rejecting join without permission!');
    assert.equal((await join(vh.handle, member)).plugindata.data.success, true);

    const mod = await wsSession(server.janus);
    t.after(() => mod.close());
    await mod.session.create();
    const publisher = await publish(mod.session, 'hub', 'moderator', {token: moderator});
    t.after(() => publisher.stop());
    assert.deepEqual(publisher.reply.plugindata.data.response.users, {hub: ['victim']});

    const refused = await vh.handle.sendMessage({kind: 'kick', room_id: 'hub', user_id: 'moderator', token: member});
    assert.equal(refused.plugindata.data.error.msg, 'Rejecting kick without permission!');
    const kicked = await publisher.handle.sendMessage({kind: 'kick', room_id: 'hub', user_id: 'victim', token: moderator});
    assert.deepEqual(kicked.plugindata.data, {success: true, response: {}});
    await eventually(() => victim.messages.some((m) => m.janus === 'detached' && m.sender === vh.handle.id),
        {what: 'the victim\'s handle detached'});
    await eventually(() => mod.messages.some((m) => m.plugindata?.data.event === 'leave' && m.plugindata.data.user_id === 'victim'),
        {what: 'the moderator told the victim left'});
});
