// The landing page: public groups with their client counts, and a field to type a name.

const form = document.getElementById('join-form');
const input = document.getElementById('group-name');

form.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = input.value.trim().replace(/^\/+|\/+$/g, '');
    if (name) {
        location.href = '/group/' + name.split('/').map(encodeURIComponent).join('/') + '/';
    }
});

function describeCount(n) {
    return n === 1 ? '1 person' : `${n} people`;
}

async function listPublicGroups() {
    const list = document.getElementById('public-groups');
    let groups;
    try {
        const response = await fetch('/public-groups.json', {cache: 'no-store'});
        if (!response.ok) throw new Error(response.statusText);
        groups = await response.json();
    } catch (e) {
        document.getElementById('public-error').hidden = false;
        return;
    }
    list.replaceChildren();
    document.getElementById('public-empty').hidden = groups.length > 0;
    for (const group of groups) {
        const item = document.createElement('li');
        const link = document.createElement('a');
        link.href = group.location || `/group/${group.name}/`;
        link.className = 'group-link';
        const title = document.createElement('span');
        title.className = 'group-title';
        title.textContent = group.displayName || group.name;
        link.append(title);
        const meta = document.createElement('span');
        meta.className = 'group-meta';
        meta.dataset.group = group.name;
        const parts = [describeCount(group.clientCount || 0)];
        if (group.locked) parts.push('locked');
        meta.textContent = parts.join(' · ');
        link.append(meta);
        if (group.description) {
            const description = document.createElement('span');
            description.className = 'group-description';
            description.textContent = group.description;
            link.append(description);
        }
        item.append(link);
        list.append(item);
    }
}

listPublicGroups();
// Keep the counts fresh while the page is open.
setInterval(() => { if (!document.hidden) listPublicGroups(); }, 15000);
