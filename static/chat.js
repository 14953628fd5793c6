// The chat: messages with timestamps, history, private messages, and slash commands.

const $ = (id) => document.getElementById(id);

function formatTime(time) {
    const date = time ? new Date(time) : new Date();
    if (Number.isNaN(date.getTime())) return '';
    const today = new Date().toDateString() === date.toDateString();
    const options = today ? {hour: '2-digit', minute: '2-digit'}
        : {month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit'};
    return date.toLocaleString([], options);
}

export class Chat {
    constructor(app) {
        this.app = app;
        this.list = $('messages');
    }

    clear() {
        this.list.replaceChildren();
    }

    /** Adds a message as the server sent it (chat or chathistory). */
    add({id, source, username, dest, kind, value, time, privileged}, {system = false} = {}) {
        const connection = this.app.connection;
        const item = document.createElement('li');
        item.className = 'message' + (system ? ' system' : '') + (dest ? ' private' : '');
        if (id) item.dataset.id = id;
        if (source) item.dataset.source = source;
        const stamp = document.createElement('time');
        stamp.textContent = formatTime(time);
        if (time) stamp.dateTime = time;
        const text = typeof value === 'string' ? value : JSON.stringify(value);
        const body = document.createElement('span');
        body.className = 'body';
        if (kind === 'me') {
            body.classList.add('me');
            body.textContent = `* ${username || 'someone'} ${text}`;
            item.append(stamp, body);
        } else {
            const who = document.createElement('span');
            who.className = 'from' + (privileged ? ' op' : '');
            let label = username || (system ? '' : '(anonymous)');
            if (kind === 'caption') label += ' (caption)';
            if (dest && connection) {
                const to = dest === connection.id ? 'you' : (connection.users.get(dest)?.username || dest);
                label += ` → ${to}`;
            }
            who.textContent = label;
            body.textContent = text;
            item.append(stamp, who, body);
        }
        const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
        this.list.append(item);
        if (atBottom) this.list.scrollTop = this.list.scrollHeight;
    }

    system(text) {
        this.add({value: text, username: ''}, {system: true});
    }

    /** Applies a `clearchat` from an operator: everything, one user's or one message. */
    clearFromServer(value) {
        for (const item of [...this.list.children]) {
            if (item.classList.contains('system')) continue;
            const all = !value || (!value.id && !value.userId);
            const byUser = value && !value.id && value.userId && item.dataset.source === value.userId;
            const one = value && value.id && item.dataset.id === value.id &&
                (!value.userId || item.dataset.source === value.userId);
            if (all || byUser || one) item.remove();
        }
    }

    findUser(name) {
        for (const [id, user] of this.app.connection.users) if (user.username === name) return id;
        throw new Error(`no such user: ${name}`);
    }

    /** Slash commands: [arguments, help, action]. */
    commands() {
        const c = this.app.connection;
        const commands = {
            help: ['', 'show this help', () => {
                this.system(Object.entries(this.commands())
                    .map(([name, [args, help]]) => `/${name}${args ? ' ' + args : ''}: ${help}`).join('\n'));
            }],
            me: ['text', 'say something in the third person', (rest) => c.chat(rest, {kind: 'me'})],
            msg: ['user text', 'send a private message', (rest) => {
                const [name, ...words] = rest.trim().split(' ');
                c.chat(words.join(' '), {dest: this.findUser(name)});
            }],
            raise: ['', 'raise your hand', () => c.setMyData({raisehand: true})],
            unraise: ['', 'lower your hand', () => c.setMyData({raisehand: null})],
            leave: ['', 'leave the group', () => this.app.leave()],
            clear: ['', 'clear the chat for everyone (operators)', () => c.groupAction('clearchat')],
            lock: ['[message]', 'lock the group (operators)', (rest) => c.groupAction('lock', rest || undefined)],
            unlock: ['', 'unlock the group (operators)', () => c.groupAction('unlock')],
            subgroups: ['', 'list subgroups (operators)', () => c.groupAction('subgroups')],
            kick: ['user [reason]', 'kick a user out (operators)', (rest) => {
                const [name, ...words] = rest.trim().split(' ');
                c.userAction('kick', this.findUser(name), words.join(' ') || undefined);
            }],
        };
        for (const action of ['op', 'unop', 'present', 'unpresent', 'shutup', 'unshutup', 'identify']) {
            commands[action] = ['user', `${action} a user (operators)`,
                (rest) => c.userAction(action, this.findUser(rest.trim()))];
        }
        return commands;
    }

    /** Sends what was typed: a command or a message (`//` escapes a leading slash). */
    submit(text) {
        if (text.startsWith('/') && !text.startsWith('//')) {
            const space = text.indexOf(' ');
            const name = (space < 0 ? text.slice(1) : text.slice(1, space)).toLowerCase();
            const rest = space < 0 ? '' : text.slice(space + 1);
            const command = this.commands()[name];
            if (!command) throw new Error(`unknown command /${name}; try /help`);
            command[2](rest);
            return;
        }
        this.app.connection.chat(text.startsWith('//') ? text.slice(1) : text);
    }

    wire() {
        $('chat-form').addEventListener('submit', (event) => {
            event.preventDefault();
            const input = $('chat-input');
            const text = input.value.trim();
            if (!text) return;
            try {
                this.submit(text);
                input.value = '';
            } catch (e) {
                this.system(e.message);
            }
        });
        $('chat-input').addEventListener('keydown', (event) => {
            if (event.key === 'Enter' && !event.shiftKey) {
                event.preventDefault();
                $('chat-form').requestSubmit();
            }
        });
    }
}
