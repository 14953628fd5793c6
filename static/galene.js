// The group page: login, people, chat and operator actions.

import {ServerConnection} from './protocol.js';

const $ = (id) => document.getElementById(id);
const groupName = decodeURIComponent(location.pathname.replace(/^\/group\//, '').replace(/\/$/, ''));
let connection = null;
let leaving = false;

function socketUrl(status) {
    if (status && status.endpoint) return status.endpoint;
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
}

async function groupStatus() {
    try {
        const response = await fetch('.status', {cache: 'no-store'});
        if (response.ok) return await response.json();
    } catch (_) { /* the login still works without it */ }
    return null;
}

function showLoginError(text) {
    const p = $('login-error');
    p.textContent = text;
    p.hidden = !text;
}

function setConnectionState(text) {
    $('connection-state').textContent = text;
}

// ---- people --------------------------------------------------------------

function renderUsers() {
    const list = $('users');
    list.replaceChildren();
    const users = [...connection.users.entries()].sort((a, b) => a[1].username.localeCompare(b[1].username));
    for (const [id, user] of users) {
        const item = document.createElement('li');
        item.className = 'user';
        item.dataset.id = id;
        const name = document.createElement('span');
        name.className = 'user-name';
        name.textContent = (user.username || '(anonymous)') + (id === connection.id ? ' (you)' : '');
        item.append(name);
        if (user.data && user.data.raisehand) {
            const hand = document.createElement('span');
            hand.className = 'hand';
            hand.textContent = '✋';
            hand.title = 'hand raised';
            item.append(hand);
        }
        const badges = document.createElement('span');
        badges.className = 'perms';
        badges.textContent = user.permissions.filter((p) => p === 'op' || p === 'present').join(' ');
        item.append(badges);
        if (connection.permissions.includes('op') && id !== connection.id) {
            item.append(userMenu(id, user));
        }
        list.append(item);
    }
}

function userMenu(id, user) {
    const select = document.createElement('select');
    select.className = 'user-actions';
    select.setAttribute('aria-label', `Actions for ${user.username || 'this user'}`);
    const options = [['', 'Actions…'],
        user.permissions.includes('op') ? ['unop', 'Remove operator'] : ['op', 'Make operator'],
        user.permissions.includes('present') ? ['unpresent', 'Forbid presenting'] : ['present', 'Allow presenting'],
        user.permissions.includes('message') ? ['shutup', 'Forbid chatting'] : ['unshutup', 'Allow chatting'],
        ['identify', 'Identify'], ['kick', 'Kick out']];
    for (const [value, label] of options) {
        const option = document.createElement('option');
        option.value = value;
        option.textContent = label;
        select.append(option);
    }
    select.addEventListener('change', () => {
        if (select.value) connection.userAction(select.value, id);
        select.value = '';
    });
    return select;
}

// ---- chat ------------------------------------------------------------------

function formatTime(time) {
    const date = time ? new Date(time) : new Date();
    return date.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'});
}

function addMessage({id, source, username, dest, kind, value, time, privileged}, {system = false} = {}) {
    const item = document.createElement('li');
    item.className = 'message' + (system ? ' system' : '') + (dest ? ' private' : '');
    if (id) item.dataset.id = id;
    if (source) item.dataset.source = source;
    const stamp = document.createElement('time');
    stamp.textContent = formatTime(time);
    if (time) stamp.dateTime = time;
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    if (kind === 'me') {
        const body = document.createElement('span');
        body.className = 'body me';
        body.textContent = `* ${username || 'someone'} ${text}`;
        item.append(stamp, body);
    } else {
        const who = document.createElement('span');
        who.className = 'from' + (privileged ? ' op' : '');
        let label = username || (system ? '' : '(anonymous)');
        if (dest) {
            const to = dest === connection.id ? 'you' : (connection.users.get(dest)?.username || dest);
            label += ` → ${to}`;
        }
        who.textContent = label;
        const body = document.createElement('span');
        body.className = 'body';
        body.textContent = text;
        item.append(stamp, who, body);
    }
    const list = $('messages');
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.append(item);
    if (atBottom) list.scrollTop = list.scrollHeight;
}

function systemMessage(text) {
    addMessage({value: text, username: ''}, {system: true});
}

function clearChat(value) {
    for (const item of [...$('messages').children]) {
        if (!value ||
            (value.id && item.dataset.id === value.id && (!value.userId || item.dataset.source === value.userId)) ||
            (!value.id && value.userId && item.dataset.source === value.userId)) {
            item.remove();
        }
    }
}

function findUser(name) {
    for (const [id, user] of connection.users) if (user.username === name) return id;
    return null;
}

const commands = {
    help: ['', 'show this help', () => {
        systemMessage(Object.entries(commands)
            .map(([name, [args, help]]) => `/${name}${args ? ' ' + args : ''}: ${help}`).join('\n'));
    }],
    me: ['text', 'say something in the third person', (rest) => connection.chat(rest, {kind: 'me'})],
    msg: ['user text', 'send a private message', (rest) => {
        const [name, ...words] = rest.split(' ');
        const id = findUser(name);
        if (!id) throw new Error(`no such user: ${name}`);
        connection.chat(words.join(' '), {dest: id});
    }],
    raise: ['', 'raise your hand', () => connection.setMyData({raisehand: true})],
    unraise: ['', 'lower your hand', () => connection.setMyData({raisehand: null})],
    leave: ['', 'leave the group', () => leave()],
    clear: ['', 'clear the chat for everyone (operators)', () => connection.groupAction('clearchat')],
    lock: ['[message]', 'lock the group (operators)', (rest) => connection.groupAction('lock', rest || undefined)],
    unlock: ['', 'unlock the group (operators)', () => connection.groupAction('unlock')],
    subgroups: ['', 'list subgroups (operators)', () => connection.groupAction('subgroups')],
};
for (const action of ['op', 'unop', 'present', 'unpresent', 'shutup', 'unshutup', 'identify']) {
    commands[action] = ['user', `${action} a user (operators)`, (rest) => {
        const id = findUser(rest.trim());
        if (!id) throw new Error(`no such user: ${rest.trim()}`);
        connection.userAction(action, id);
    }];
}
commands.kick = ['user [reason]', 'kick a user out (operators)', (rest) => {
    const [name, ...words] = rest.trim().split(' ');
    const id = findUser(name);
    if (!id) throw new Error(`no such user: ${name}`);
    connection.userAction('kick', id, words.join(' ') || undefined);
}];

function handleInput(text) {
    if (text.startsWith('/') && !text.startsWith('//')) {
        const space = text.indexOf(' ');
        const name = (space < 0 ? text.slice(1) : text.slice(1, space)).toLowerCase();
        const rest = space < 0 ? '' : text.slice(space + 1);
        const command = commands[name];
        if (!command) throw new Error(`unknown command /${name}; try /help`);
        command[2](rest);
        return;
    }
    connection.chat(text.startsWith('//') ? text.slice(1) : text);
}

// ---- connection ------------------------------------------------------------

async function join(username, password) {
    const status = await groupStatus();
    connection = new ServerConnection();
    leaving = false;
    connection.onjoined = (kind, group, permissions, st, data, m) => {
        switch (kind) {
        case 'join':
            $('login').hidden = true;
            $('meeting').hidden = false;
            $('messages').replaceChildren();
            $('meeting-title').textContent = st.displayName || group;
            document.title = `${st.displayName || group} · Cinnabar`;
            setConnectionState('connected');
            break;
        case 'change':
            setConnectionState(st.locked ? 'connected · locked' : 'connected');
            renderUsers();
            break;
        case 'fail':
            showLoginError(m.value || 'could not join');
            connection.close();
            break;
        case 'redirect':
            location.href = m.value;
            break;
        case 'leave':
            connection.close();
            break;
        }
    };
    connection.onuser = () => renderUsers();
    connection.onchat = (m) => addMessage(m);
    connection.onclearchat = (value) => clearChat(value);
    connection.onusermessage = (m) => {
        if (m.kind === 'error' || m.kind === 'warning') {
            systemMessage(`${m.kind === 'error' ? 'Error' : 'Warning'}: ${m.value}`);
        } else if (m.kind === 'kicked') {
            leaving = true;
            backToLogin(`You were kicked out${m.username ? ' by ' + m.username : ''}: ${m.value}`);
        } else if (m.kind === 'userinfo' && m.value) {
            systemMessage(`${m.value.username || m.value.id} is at ${m.value.address || 'an unknown address'}`);
        } else if (m.kind === 'info') {
            systemMessage(String(m.value));
        }
    };
    connection.onclose = (code, reason) => {
        if (leaving) return;
        if (!$('meeting').hidden) {
            backToLogin(reason ? `Disconnected: ${reason}` : 'The connection to the server was lost.');
        }
    };
    try {
        await connection.connect(socketUrl(status));
    } catch (e) {
        showLoginError(e.message);
        return;
    }
    connection.join(groupName, username, password);
}

function backToLogin(text) {
    $('meeting').hidden = true;
    $('login').hidden = false;
    showLoginError(text);
}

function leave() {
    leaving = true;
    if (connection) {
        try { connection.leave(); } catch (_) { /* already closed */ }
        connection.close();
    }
    backToLogin('');
}

async function init() {
    const status = await groupStatus();
    if (status) {
        $('group-title').textContent = status.displayName || status.name;
        if (status.description) {
            $('group-description').textContent = status.description;
            $('group-description').hidden = false;
        }
        document.title = `${status.displayName || status.name} · Cinnabar`;
    }
    $('login-form').addEventListener('submit', (event) => {
        event.preventDefault();
        showLoginError('');
        join($('username').value.trim(), $('password').value);
    });
    $('leave').addEventListener('click', leave);
    $('chat-form').addEventListener('submit', (event) => {
        event.preventDefault();
        const input = $('chat-input');
        const text = input.value.trim();
        if (!text) return;
        try {
            handleInput(text);
            input.value = '';
        } catch (e) {
            systemMessage(e.message);
        }
    });
    $('chat-input').addEventListener('keydown', (event) => {
        if (event.key === 'Enter' && !event.shiftKey) {
            event.preventDefault();
            $('chat-form').requestSubmit();
        }
    });
}

init();
