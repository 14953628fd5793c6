// The list of people in the group, with their permissions, raised hands, and the
// operators' actions on them.

const $ = (id) => document.getElementById(id);

const HAND_ICON = '<svg viewBox="0 0 24 24" width="16" height="16" fill="none" stroke="currentColor" ' +
    'stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"><path d="M7 12V6a1.5 1.5 0 0 1 3 0v5' +
    'M10 11V4.5a1.5 1.5 0 0 1 3 0V11M13 11V5.5a1.5 1.5 0 0 1 3 0V12M16 12V8.5a1.5 1.5 0 0 1 3 0V14a7 7 0 0 1-7 7' +
    'h-1a6 6 0 0 1-5-3l-2.5-4.5a1.5 1.5 0 0 1 2.5-1.5L7 13"/></svg>';

export class Users {
    constructor(app) {
        this.app = app;
        this.list = $('users');
        this.speaking = new Map(); // user id -> set of stream ids speaking
    }

    setSpeaking(userId, streamId, speaking) {
        let set = this.speaking.get(userId);
        if (!set) {
            set = new Set();
            this.speaking.set(userId, set);
        }
        const before = set.size > 0;
        if (speaking) set.add(streamId); else set.delete(streamId);
        if (before !== set.size > 0) {
            const item = this.list.querySelector(`[data-id="${CSS.escape(userId)}"]`);
            if (item) item.classList.toggle('speaking', set.size > 0);
        }
    }

    render() {
        const connection = this.app.connection;
        if (!connection) return;
        const amOp = connection.permissions.includes('op');
        $('op-tools').hidden = !amOp;
        const users = [...connection.users.entries()]
            .sort((a, b) => a[1].username.localeCompare(b[1].username));
        $('user-count').textContent = `(${users.length})`;
        this.list.replaceChildren();
        for (const [id, user] of users) {
            const item = document.createElement('li');
            item.className = 'user';
            item.dataset.id = id;
            if ((this.speaking.get(id) || new Set()).size > 0) item.classList.add('speaking');
            const name = document.createElement('span');
            name.className = 'user-name';
            name.textContent = (user.username || '(anonymous)') + (id === connection.id ? ' (you)' : '');
            item.append(name);
            if (user.data && user.data.raisehand) {
                const hand = document.createElement('span');
                hand.className = 'hand';
                hand.innerHTML = HAND_ICON;
                hand.title = 'hand raised';
                hand.setAttribute('role', 'img');
                hand.setAttribute('aria-label', 'hand raised');
                item.append(hand);
            }
            const badges = document.createElement('span');
            badges.className = 'perms';
            const shown = [];
            if (user.permissions.includes('op')) shown.push('operator');
            if (user.permissions.includes('present')) shown.push('presenter');
            if (!user.permissions.includes('message')) shown.push('silent');
            badges.textContent = shown.join(' · ');
            item.append(badges);
            if (id !== connection.id) item.append(this.menu(id, user, amOp));
            this.list.append(item);
        }
    }

    menu(id, user, amOp) {
        const select = document.createElement('select');
        select.className = 'user-actions';
        select.setAttribute('aria-label', `Actions for ${user.username || 'this user'}`);
        const options = [['', '⋯'], ['msg', 'Private message']];
        if (amOp) {
            options.push(
                user.permissions.includes('op') ? ['unop', 'Remove operator'] : ['op', 'Make operator'],
                user.permissions.includes('present') ? ['unpresent', 'Forbid presenting'] : ['present', 'Allow presenting'],
                user.permissions.includes('message') ? ['shutup', 'Forbid chatting'] : ['unshutup', 'Allow chatting'],
                ['identify', 'Identify'],
                ['kick', 'Kick out'],
            );
        }
        for (const [value, label] of options) {
            const option = document.createElement('option');
            option.value = value;
            option.textContent = label;
            select.append(option);
        }
        select.addEventListener('change', () => {
            const action = select.value;
            select.value = '';
            if (action === 'msg') {
                const input = $('chat-input');
                input.value = `/msg ${user.username} `;
                input.focus();
            } else if (action) {
                this.app.connection.userAction(action, id);
            }
        });
        return select;
    }
}
