// The console's pages: Sync, Status (the room check, the budget, the outage breaker,
// rooms at risk and gaps), Rooms (and a room's tasks, files, members and messages),
// Companies (with the open link suggestions, and a company's page with its rooms, open
// tasks and summary drafts), Jobs (and a job's detail), Schedules (the
// scheduled tasks and a task's runs). A page draws what
// the caller's role can use (the API enforces it regardless) and returns a cleanup for
// its timers. Everything from the API is written as text.

import { api, download, withQuery } from './api.js';
import { h, fill, field, badge, readableMarkup } from './dom.js';
import { t, time, minute, day, bytes, duration, number } from './i18n.js';
import { statusCharts } from './charts.js';

const POLL_MS = 2000;
const STATUS_POLL_MS = 10000;
const SYNC_TYPES = ['chatwork_rooms_sync', 'chatwork_messages_sync'];
const OPEN = ['queued', 'processing'];
const ROOM_NAMES = 'cwsync.roomNames';

const isAdmin = (ctx) => ctx.me.role === 'admin';
const isWriter = (ctx) => ctx.me.role === 'admin' || ctx.me.role === 'writer';
const typeLabel = (type) => t(`type.${type}`);
const statusBadge = (status) => badge(t(`status.${status}`),
  status === 'completed' ? 'ok' : status === 'failed' ? 'bad' : status === 'canceled' ? 'warn' : 'info');

function rememberRoomNames(rooms) {
  const names = JSON.parse(sessionStorage.getItem(ROOM_NAMES) || '{}');
  for (const room of rooms) names[room.roomId] = room.name;
  sessionStorage.setItem(ROOM_NAMES, JSON.stringify(names));
}

function roomName(roomId) {
  const names = JSON.parse(sessionStorage.getItem(ROOM_NAMES) || '{}');
  return names[roomId] || `#${roomId}`;
}

/** Runs `tick` every `ms` (2 s) while it says to go on and the tab is visible. */
function poller(tick, ms = POLL_MS) {
  let timer = null;
  let stopped = false;
  const schedule = () => {
    clearTimeout(timer);
    if (!stopped && !document.hidden) timer = setTimeout(run, ms);
  };
  const run = async () => {
    let goOn = false;
    try { goOn = await tick(); } catch (_) { goOn = true; }
    if (goOn) schedule(); else stopped = true;
  };
  const onVisibility = () => { if (!document.hidden && !stopped) run(); };
  document.addEventListener('visibilitychange', onVisibility);
  schedule();
  return () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener('visibilitychange', onVisibility);
  };
}

/** A card with a job's status, progress bar, counts, error and its buttons. */
function jobCard(ctx, job, onChange) {
  const p = job.progress || { total: job.totalItems, finished: job.totalItems - job.openItems, completed: 0, unchanged: 0, failed: 0 };
  const total = p.total || job.totalItems || 0;
  const percent = total ? Math.round((p.finished / total) * 100) : (OPEN.includes(job.status) ? 0 : 100);
  const mine = ctx.me.role === 'admin' || job.userId === ctx.me.userId;
  const open = OPEN.includes(job.status);
  const unit = job.type === 'chatwork_messages_sync' ? t('job.unitRooms') : t('job.unitItems');
  const buttons = [];
  if (open && mine) {
    buttons.push(h('button', {
      type: 'button', class: 'danger', 'data-action': 'cancel',
      onclick: async () => {
        try { await api('POST', `/api/jobs/${job.id}/cancel`); ctx.notify(t('job.canceled')); onChange && onChange(); } catch (e) { ctx.fail(e); }
      },
    }, t('job.cancel')));
  }
  if (!open && mine && p.failed > 0) {
    buttons.push(h('button', {
      type: 'button', class: 'secondary', 'data-action': 'retry',
      onclick: async () => {
        try {
          const { data } = await api('POST', `/api/jobs/${job.id}/retry`);
          ctx.notify(t('job.retried', p.failed));
          ctx.go(`#/jobs/${data.id}`);
        } catch (e) { ctx.fail(e); }
      },
    }, t('job.retry')));
  }
  // A sync of all rooms starts with a room check, whose rooms then join this same job.
  const checking = open && job.payload && job.payload.scope === 'all' && !(job.result && job.result.check);
  return h('section', { class: 'card job-card', 'data-job': job.id, 'data-status': job.status, 'aria-label': typeLabel(job.type) },
    h('div', { class: 'row' }, h('strong', {}, typeLabel(job.type)), statusBadge(job.status),
      h('a', { href: `#/jobs/${job.id}` }, t('job.open'))),
    checking ? h('p', { class: 'muted', 'data-state': 'checking' }, t('job.checking')) : null,
    h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': percent, 'aria-label': typeLabel(job.type) },
      h('div', { style: null, 'data-percent': percent })),
    h('div', { class: 'row muted' },
      h('span', { class: 'progress-text' }, `${percent} % · ${t('job.progress', number(p.finished), number(total), unit)}`),
      h('span', {}, t('job.success', number(p.completed + p.unchanged))),
      h('span', {}, t('job.failure', number(p.failed)))),
    job.error ? h('p', { class: 'error-text' }, `${job.error.name}: ${job.error.message}`) : null,
    buttons.length ? h('div', { class: 'row' }, buttons) : null);
}

// The bar's width is set through the CSSOM (no inline style attribute under the CSP).
function sizeBars(root) {
  for (const bar of root.querySelectorAll('[data-percent]')) bar.style.width = `${bar.dataset.percent}%`;
}

/** Watches `jobId` in `box`: redraws every 2 s while open; `onEnd(job)` once it ends. */
function watchJob(ctx, box, jobId, onEnd) {
  let ended = false;
  const draw = async () => {
    const { data: job } = await api('GET', `/api/jobs/${jobId}`);
    fill(box, jobCard(ctx, job, () => draw()));
    sizeBars(box);
    if (!OPEN.includes(job.status) && !ended) {
      ended = true;
      onEnd && onEnd(job);
    }
    return OPEN.includes(job.status);
  };
  let stop = () => {};
  draw().then((open) => { if (open) stop = poller(draw); }).catch(ctx.fail);
  return () => stop();
}

function jobsTable(jobs, showBy) {
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, t('job.type')), h('th', {}, t('job.status')), h('th', {}, t('job.created')),
      showBy ? h('th', { class: 'hide-narrow' }, t('job.by')) : null, h('th', {}, t('job.items')))),
    h('tbody', {}, jobs.map((job) => h('tr', { 'data-job': job.id },
      h('td', {}, h('a', { href: `#/jobs/${job.id}` }, typeLabel(job.type))),
      h('td', {}, statusBadge(job.status)),
      h('td', {}, time(job.createdAt)),
      showBy ? h('td', { class: 'hide-narrow' }, job.userId || t('job.schedule')) : null,
      h('td', {}, `${number(job.totalItems - job.openItems)} / ${number(job.totalItems)}`))))));
}

async function syncPage(ctx) {
  const card = h('div', { id: 'active-job' });
  const recent = h('div', {});
  let stopWatch = () => {};
  const loadRecent = async () => {
    const lists = await Promise.all(SYNC_TYPES.map((type) => api('GET', withQuery('/api/jobs', { type, limit: 5 }))));
    const jobs = lists.flatMap((l) => l.data.items).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    fill(recent, jobs.length ? jobsTable(jobs, isAdmin(ctx)) : h('p', { class: 'muted' }, t('sync.none')));
    return jobs;
  };
  const watch = (jobId) => {
    stopWatch();
    stopWatch = watchJob(ctx, card, jobId, (job) => {
      ctx.notify(t('job.ended', typeLabel(job.type), t(`status.${job.status}`)));
      loadRecent().catch(ctx.fail);
    });
  };
  const startButton = (id, label, path) => h('button', {
    type: 'button', id,
    onclick: async () => {
      try {
        const { status, data } = await api('POST', path, {});
        ctx.notify(status === 202 ? t('job.started', typeLabel(data.type)) : t('job.already', typeLabel(data.type)));
        watch(data.id);
        loadRecent().catch(ctx.fail);
      } catch (e) { ctx.fail(e); }
    },
  }, label);
  fill(ctx.main,
    h('h1', {}, t('sync.title')),
    h('p', { class: 'muted' }, t('sync.intro')),
    isAdmin(ctx)
      ? h('div', { class: 'row' }, startButton('sync-rooms', t('sync.rooms'), '/api/chatwork/rooms/sync'),
        startButton('sync-messages', t('sync.messages'), '/api/chatwork/messages/sync'))
      : h('p', { class: 'muted' }, t('sync.adminOnly')),
    card,
    h('h2', {}, t('sync.recent')),
    recent);
  const jobs = await loadRecent();
  const active = jobs.find((job) => OPEN.includes(job.status));
  if (active) watch(active.id);
  return () => stopWatch();
}

function select(options, value) {
  return h('select', {}, options.map(([v, label]) => h('option', { value: v, selected: v === value }, label)));
}

async function roomsPage(ctx) {
  const search = h('input', { type: 'search', id: 'room-search' });
  const active = select([['', t('rooms.any')], ['true', t('rooms.yes')], ['false', t('rooms.no')]], '');
  const linked = select([['', t('rooms.any')], ['true', t('rooms.yes')], ['false', t('rooms.no')]], '');
  const body = h('tbody', {});
  const more = h('button', { type: 'button', class: 'secondary', hidden: true, id: 'rooms-more' }, t('rooms.more'));
  const empty = h('p', { class: 'muted', hidden: true }, t('rooms.none'));
  let cursor = null;
  let companies = {};
  try {
    const { data } = await api('GET', withQuery('/api/companies', { limit: 100 }));
    companies = Object.fromEntries(data.items.map((c) => [c.id, c.name]));
  } catch (_) { /* names are a nicety */ }

  const row = (room) => {
    const toggle = h('input', {
      type: 'checkbox', checked: room.isActive, 'aria-label': t('rooms.activeToggle', room.name), 'data-action': 'toggle',
      onchange: async () => {
        try {
          const { data } = await api('PATCH', `/api/chatwork/rooms/${room.roomId}`, { isActive: toggle.checked });
          ctx.notify(t('rooms.updated', data.name, data.isActive ? t('rooms.on') : t('rooms.off')));
        } catch (e) { toggle.checked = !toggle.checked; ctx.fail(e); }
      },
    });
    return h('tr', { 'data-room': room.roomId },
      h('td', { 'data-label': t('rooms.name') }, h('span', { class: 'room-name' }, room.name), ' ',
        room.leftAt ? badge(t('rooms.left'), 'warn') : null,
        room.gapDetectedAt ? badge(t('rooms.gap', room.gapMissedEstimate ?? '?'), 'bad') : null),
      h('td', { class: 'hide-narrow', 'data-label': t('rooms.type') }, room.roomType),
      h('td', { 'data-label': t('rooms.active') }, toggle),
      h('td', { class: 'hide-narrow', 'data-label': t('rooms.companies') }, room.companyIds.map((id) => h('a', { href: `#/companies/${id}`, class: 'badge info' }, companies[id] || id.slice(0, 8)))),
      h('td', { 'data-label': t('rooms.messages') }, number(room.messageCount)),
      h('td', { 'data-label': t('rooms.lastSync') }, room.lastSyncAt ? time(room.lastSyncAt) : t('rooms.never')),
      h('td', { class: 'error-text', 'data-label': t('rooms.lastError') }, room.lastErrorAt ? `${room.lastErrorStatus ?? ''} ${room.lastErrorMessage ?? ''}`.trim() : null),
      h('td', { 'data-label': t('rooms.actions') }, h('div', { class: 'row' },
        h('button', {
          type: 'button', class: 'secondary', 'data-action': 'sync-room',
          onclick: async () => {
            try {
              const { data } = await api('POST', '/api/chatwork/messages/sync', { roomId: room.roomId });
              ctx.notify(t('job.started', typeLabel(data.type)));
              ctx.go(`#/jobs/${data.id}`);
            } catch (e) { ctx.fail(e); }
          },
        }, t('rooms.syncNow')),
        h('a', { href: `#/room/${room.roomId}` }, t('rooms.show')))));
  };

  const load = async (reset) => {
    if (reset) { cursor = null; body.replaceChildren(); }
    const { data } = await api('GET', withQuery('/api/chatwork/rooms', {
      q: search.value.trim(), active: active.value, linked: linked.value, cursor, limit: 50,
    }));
    rememberRoomNames(data.items);
    for (const room of data.items) body.appendChild(row(room));
    cursor = data.nextCursor;
    more.hidden = !cursor;
    empty.hidden = body.children.length > 0;
  };
  more.addEventListener('click', () => load(false).catch(ctx.fail));
  const form = h('form', {
    class: 'row card', role: 'search',
    onsubmit: (event) => { event.preventDefault(); load(true).catch(ctx.fail); },
  }, field(t('rooms.search'), search), field(t('rooms.active'), active), field(t('rooms.linked'), linked),
  h('button', { type: 'submit' }, t('jobs.filter')));
  fill(ctx.main, h('h1', {}, t('rooms.title')), form,
    h('div', { class: 'table-wrap' }, h('table', { id: 'rooms-table' },
      h('thead', {}, h('tr', {}, [t('rooms.name'), t('rooms.type'), t('rooms.active'), t('rooms.companies'), t('rooms.messages'),
        t('rooms.lastSync'), t('rooms.lastError'), t('rooms.actions')].map((label, i) =>
        h('th', {}, label)))), body)),
    empty, h('div', { class: 'pager' }, more));
  await load(true);
}

/** A task's deadline: an instant in the browser's zone, a Chatwork day (Tokyo's) alone. */
function deadlineText(task) {
  if (task.limitType === 'none' || !task.limitTime) return t('tasks.noDeadline');
  return task.limitType === 'date' ? day(task.limitTime) : minute(task.limitTime);
}

function taskBadge(task) {
  if (task.overdue) return badge(t('tasks.overdue'), 'bad');
  return task.status === 'done' ? badge(t('tasks.done'), 'ok') : badge(t('tasks.open'), 'info');
}

/** Rows of tasks for a table whose head `taskHead` draws; `withRoom` adds the room. */
function taskRows(tasks, withRoom) {
  return tasks.map((task) => h('tr', { 'data-task': task.taskId, class: task.overdue ? 'overdue' : null },
    h('td', { 'data-label': t('tasks.deadline') }, deadlineText(task)),
    h('td', { 'data-label': t('tasks.status') }, taskBadge(task)),
    h('td', { class: 'task-body', 'data-label': t('tasks.body') }, readableMarkup(task.body)),
    h('td', { 'data-label': t('tasks.assignee') }, task.accountName),
    h('td', { class: 'hide-narrow', 'data-label': t('tasks.assignedBy') }, task.assignedByAccountName ?? '—'),
    withRoom ? h('td', { 'data-label': t('tasks.room') }, h('a', { href: `#/room/${task.roomId}` }, task.roomName)) : null));
}

function taskHead(withRoom) {
  return h('thead', {}, h('tr', {}, [t('tasks.deadline'), t('tasks.status'), t('tasks.body'), t('tasks.assignee'),
    t('tasks.assignedBy'), withRoom ? t('tasks.room') : null].filter(Boolean).map((label) => h('th', {}, label))));
}

/** When a list was last synced, and what an empty one means: nothing there, or not
 * synced yet. */
function syncedNote(at, empty, none) {
  if (at) return h('p', { class: 'muted' }, t('room.synced', time(at)), empty ? ` · ${none}` : null);
  return empty ? h('p', { class: 'muted' }, t('room.notSynced')) : null;
}

/** A room: its tasks, files and members (anyone who may read a company it is linked to),
 * and its stored messages (admins). */
async function roomPage(ctx, roomId) {
  const base = `/api/chatwork/rooms/${encodeURIComponent(roomId)}`;

  const taskBody = h('tbody', {});
  const taskNote = h('div', {});
  const taskMore = h('button', { type: 'button', class: 'secondary', hidden: true, id: 'tasks-more' }, t('tasks.more'));
  const status = select([['', t('tasks.all')], ['open', t('tasks.open')], ['done', t('tasks.done')]], '');
  status.id = 'task-status';
  const sort = select([['newest', t('tasks.newest')], ['deadline', t('tasks.byDeadline')]], 'newest');
  sort.id = 'task-sort';
  let taskCursor = null;
  const loadTasks = async (reset) => {
    if (reset) { taskCursor = null; taskBody.replaceChildren(); }
    const { data } = await api('GET', withQuery(`${base}/tasks`, {
      status: status.value, sort: sort.value, cursor: taskCursor, limit: 50,
    }));
    for (const row of taskRows(data.items, false)) taskBody.appendChild(row);
    taskCursor = data.nextCursor;
    taskMore.hidden = !taskCursor;
    fill(taskNote, syncedNote(data.syncedAt, !taskBody.children.length, t('tasks.none')));
  };
  status.addEventListener('change', () => loadTasks(true).catch(ctx.fail));
  sort.addEventListener('change', () => loadTasks(true).catch(ctx.fail));
  taskMore.addEventListener('click', () => loadTasks(false).catch(ctx.fail));

  const fileBody = h('tbody', {});
  const fileNote = h('div', {});
  const fileMore = h('button', { type: 'button', class: 'secondary', hidden: true, id: 'files-more' }, t('files.more'));
  let fileCursor = null;
  const fileRow = (file) => {
    const kind = { stored: 'ok', pending: 'info', too_large: 'warn', failed: 'bad' }[file.storageState] || 'info';
    const name = file.contentPath
      ? h('a', {
        href: file.contentPath, class: 'file-download', 'data-action': 'download',
        onclick: (event) => { event.preventDefault(); download(file.contentPath, file.filename).catch(ctx.fail); },
      }, file.filename)
      : h('span', {}, file.filename);
    return h('tr', { 'data-file': file.fileId, 'data-state': file.storageState },
      h('td', { 'data-label': t('files.name') }, name),
      h('td', { 'data-label': t('files.size') }, bytes(file.filesize)),
      h('td', { 'data-label': t('files.by') }, file.accountName),
      h('td', { class: 'hide-narrow', 'data-label': t('files.at') }, time(file.uploadTime)),
      h('td', { 'data-label': t('files.state') }, badge(t(`files.state.${file.storageState}`), kind),
        file.storageError ? h('span', { class: 'error-text' }, file.storageError) : null));
  };
  const loadFiles = async (reset) => {
    if (reset) { fileCursor = null; fileBody.replaceChildren(); }
    const { data } = await api('GET', withQuery(`${base}/files`, { cursor: fileCursor, limit: 50 }));
    for (const file of data.items) fileBody.appendChild(fileRow(file));
    fileCursor = data.nextCursor;
    fileMore.hidden = !fileCursor;
    fill(fileNote, syncedNote(data.syncedAt, !fileBody.children.length, t('files.none')));
  };
  fileMore.addEventListener('click', () => loadFiles(false).catch(ctx.fail));

  const members = h('div', { id: 'members' });
  const loadMembers = async () => {
    const { data } = await api('GET', `${base}/members`);
    fill(members, syncedNote(data.syncedAt, !data.items.length, t('members.none')),
      data.items.length ? h('div', { class: 'table-wrap' }, h('table', { id: 'members-table' },
      h('thead', {}, h('tr', {}, [t('members.name'), t('members.organization'), t('members.department'), t('members.role')]
        .map((label) => h('th', {}, label)))),
      h('tbody', {}, data.items.map((m) => h('tr', { 'data-member': m.accountId },
        h('td', { 'data-label': t('members.name') }, m.name),
        h('td', { 'data-label': t('members.organization') }, m.organizationName ?? '—'),
        h('td', { class: 'hide-narrow', 'data-label': t('members.department') }, m.department ?? '—'),
        h('td', { 'data-label': t('members.role') }, m.role)))))) : null);
  };

  const list = h('div', { id: 'messages' });
  const older = h('button', { type: 'button', class: 'secondary', hidden: true }, t('room.older'));
  let cursor = null;
  const loadMessages = async () => {
    const { data } = await api('GET', withQuery(`${base}/messages`, { limit: 30, cursor }));
    for (const m of data.items) {
      list.appendChild(h('article', { class: 'message', 'data-message': m.messageId },
        h('div', { class: 'row muted' }, h('strong', {}, m.accountName ?? `ID:${m.accountId}`), h('span', {}, time(m.sendTime))),
        h('div', { class: 'body' }, readableMarkup(m.body))));
    }
    if (!list.children.length) list.appendChild(h('p', { class: 'muted' }, t('room.none')));
    cursor = data.nextCursor;
    older.hidden = !cursor;
  };
  older.addEventListener('click', () => loadMessages().catch(ctx.fail));

  const back = isAdmin(ctx) ? '#/rooms' : '#/companies';
  fill(ctx.main, h('p', {}, h('a', { href: back }, t('back'))), h('h1', {}, t('room.page', roomName(roomId))),
    h('section', { id: 'room-tasks' }, h('h2', {}, t('room.tasks')),
      h('div', { class: 'row' }, field(t('tasks.filter'), status), field(t('tasks.sort'), sort)),
      h('div', { class: 'table-wrap' }, h('table', { id: 'tasks-table' }, taskHead(false), taskBody)),
      taskNote, h('div', { class: 'pager' }, taskMore)),
    h('section', { id: 'room-files' }, h('h2', {}, t('room.files')),
      h('div', { class: 'table-wrap' }, h('table', { id: 'files-table' },
        h('thead', {}, h('tr', {}, [t('files.name'), t('files.size'), t('files.by'), t('files.at'), t('files.state')]
          .map((label) => h('th', {}, label)))), fileBody)),
      fileNote, h('div', { class: 'pager' }, fileMore)),
    h('section', { id: 'room-members' }, h('h2', {}, t('room.members')), members),
    isAdmin(ctx) ? h('section', {}, h('h2', {}, t('room.messages')), list, h('div', { class: 'pager' }, older)) : null);
  await Promise.all([loadTasks(true), loadFiles(true), loadMembers(), isAdmin(ctx) ? loadMessages() : null]);
}

/** The open suggestions to link a room to a company, for an admin to decide. */
function suggestionsCard(ctx) {
  const box = h('section', { class: 'card', id: 'suggestions' });
  const load = async () => {
    const { data } = await api('GET', '/api/companies/suggestions');
    const decide = (s, verb) => async () => {
      try {
        await api('POST', `/api/companies/${s.companyId}/suggestions/${s.roomId}/${verb}`);
        ctx.notify(verb === 'accept' ? t('suggestions.accepted', s.roomName, s.companyName) : t('suggestions.dismissed', s.roomName));
        await load();
      } catch (e) { ctx.fail(e); }
    };
    fill(box, h('h2', {}, t('suggestions.title')), h('p', { class: 'muted' }, t('suggestions.intro')),
      data.items.length ? h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, [t('suggestions.room'), t('suggestions.company'), t('suggestions.organization'),
          t('suggestions.members'), t('rooms.actions')].map((label) => h('th', {}, label)))),
        h('tbody', {}, data.items.map((s) => h('tr', { 'data-suggestion': `${s.companyId}:${s.roomId}` },
          h('td', {}, h('a', { href: `#/room/${s.roomId}` }, s.roomName)),
          h('td', {}, h('a', { href: `#/companies/${s.companyId}` }, s.companyName)),
          h('td', {}, s.organizationName), h('td', {}, number(s.members)),
          h('td', {}, h('div', { class: 'row' },
            h('button', { type: 'button', 'data-action': 'accept', onclick: decide(s, 'accept') }, t('suggestions.accept')),
            h('button', { type: 'button', class: 'secondary', 'data-action': 'dismiss', onclick: decide(s, 'dismiss') }, t('suggestions.dismiss')))))))))
        : h('p', { class: 'muted' }, t('suggestions.none')));
  };
  load().catch(ctx.fail);
  return box;
}

async function companiesPage(ctx) {
  const search = h('input', { type: 'search', id: 'company-search' });
  const body = h('tbody', {});
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, t('rooms.more'));
  const empty = h('p', { class: 'muted', hidden: true }, t('companies.none'));
  let cursor = null;
  const load = async (reset) => {
    if (reset) { cursor = null; body.replaceChildren(); }
    const { data } = await api('GET', withQuery('/api/companies', { q: search.value.trim(), cursor, limit: 50 }));
    for (const c of data.items) {
      body.appendChild(h('tr', { 'data-company': c.id },
        h('td', {}, h('a', { href: `#/companies/${c.id}` }, c.name)), h('td', {}, time(c.createdAt))));
    }
    cursor = data.nextCursor;
    more.hidden = !cursor;
    empty.hidden = body.children.length > 0;
  };
  more.addEventListener('click', () => load(false).catch(ctx.fail));
  const name = h('input', { type: 'text', id: 'company-name', maxlength: 200, required: true });
  const create = isAdmin(ctx) ? h('form', {
    class: 'card row',
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        const { data } = await api('POST', '/api/companies', { name: name.value });
        ctx.notify(t('companies.created', data.name));
        ctx.go(`#/companies/${data.id}`);
      } catch (e) { ctx.fail(e); }
    },
  }, field(t('companies.name'), name), h('button', { type: 'submit', id: 'company-create' }, t('companies.create'))) : null;
  fill(ctx.main, h('h1', {}, t('companies.title')), create, isAdmin(ctx) ? suggestionsCard(ctx) : null,
    h('form', { class: 'row', role: 'search', onsubmit: (e) => { e.preventDefault(); load(true).catch(ctx.fail); } },
      field(t('companies.search'), search), h('button', { type: 'submit' }, t('jobs.filter'))),
    h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, t('companies.name')), h('th', {}, t('job.created')))), body)),
    empty, h('div', { class: 'pager' }, more));
  await load(true);
}

function dateInput(value, id) {
  return h('input', { type: 'date', value, id, required: true });
}

async function companyPage(ctx, companyId) {
  const { data: company } = await api('GET', `/api/companies/${encodeURIComponent(companyId)}`);
  const rooms = h('div', {});
  const drafts = h('div', { id: 'drafts' });
  const draftJob = h('div', { id: 'draft-job' });
  let stops = [];

  const loadRooms = async () => {
    const { data } = await api('GET', `/api/companies/${company.id}/chatwork-rooms`);
    rememberRoomNames(data.items);
    fill(rooms, data.items.length ? h('div', { class: 'table-wrap' }, h('table', { id: 'linked-rooms' },
      h('thead', {}, h('tr', {}, h('th', {}, t('rooms.name')), h('th', {}, t('rooms.messages')), h('th', {}, t('rooms.lastSync')),
        isWriter(ctx) ? h('th', {}, t('rooms.actions')) : null)),
      h('tbody', {}, data.items.map((room) => h('tr', { 'data-room': room.roomId },
        h('td', {}, h('a', { href: `#/room/${room.roomId}` }, room.name)), h('td', {}, number(room.messageCount)), h('td', {}, room.lastSyncAt ? time(room.lastSyncAt) : t('rooms.never')),
        isWriter(ctx) ? h('td', {}, h('button', {
          type: 'button', class: 'secondary', 'data-action': 'unlink', 'aria-label': `${t('company.unlink')}: ${room.name}`,
          onclick: async () => {
            try {
              await api('DELETE', `/api/companies/${company.id}/chatwork-rooms/${room.roomId}`);
              ctx.notify(t('company.unlinked', room.name));
              await loadRooms();
            } catch (e) { ctx.fail(e); }
          },
        }, t('company.unlink'))) : null)))))
      : h('p', { class: 'muted' }, t('company.noRooms')));
    return data.items;
  };

  const linkForm = () => {
    const search = h('input', { type: 'search', id: 'link-search' });
    const choice = h('select', { id: 'link-room' });
    const find = async () => {
      const { data } = await api('GET', withQuery('/api/chatwork/rooms', { q: search.value.trim(), limit: 50 }));
      const available = data.items.filter((r) => !r.companyIds.includes(company.id));
      fill(choice, available.map((r) => h('option', { value: String(r.roomId) }, r.name)));
    };
    search.addEventListener('input', () => { find().catch(ctx.fail); });
    find().catch(ctx.fail);
    return h('form', {
      class: 'card row',
      onsubmit: async (event) => {
        event.preventDefault();
        if (!choice.value) return;
        try {
          await api('POST', `/api/companies/${company.id}/chatwork-rooms`, { roomId: Number(choice.value) });
          ctx.notify(t('company.linked', choice.selectedOptions[0].textContent));
          await loadRooms();
          await find();
        } catch (e) { ctx.fail(e); }
      },
    }, field(t('company.pick'), search), field(t('company.available'), choice), h('button', { type: 'submit', id: 'link-submit' }, t('company.link')));
  };

  const tasks = h('div', { id: 'company-tasks' });
  const loadTasks = async () => {
    const { data } = await api('GET', withQuery(`/api/companies/${company.id}/tasks`, { status: 'open' }));
    fill(tasks, data.items.length ? h('div', { class: 'table-wrap' }, h('table', { id: 'open-tasks' },
      taskHead(true), h('tbody', {}, taskRows(data.items, true))))
      : h('p', { class: 'muted' }, t('tasks.noneOpen')));
  };

  const loadDrafts = async () => {
    const { data } = await api('GET', `/api/companies/${company.id}/summaries`);
    fill(drafts, data.items.length ? data.items.map((d) => {
      const content = h('div', { class: 'draft-body', hidden: true },
        h('div', { class: 'draft-content' }, d.content),
        h('h3', {}, t('drafts.sources')),
        h('ul', {}, (d.sourceLinks || []).map((link) => h('li', {},
          h('a', { href: link.url, target: '_blank', rel: 'noopener noreferrer' }, `${roomName(link.roomId)} · ${link.messageId}`)))),
        h('p', { class: 'muted' }, `${t('drafts.model')}: ${d.model}`));
      const read = h('button', {
        type: 'button', class: 'secondary', 'data-action': 'read-draft', 'aria-expanded': 'false',
        onclick: () => {
          content.hidden = !content.hidden;
          read.setAttribute('aria-expanded', String(!content.hidden));
          read.textContent = content.hidden ? t('drafts.read') : t('drafts.hide');
        },
      }, t('drafts.read'));
      return h('article', { class: 'card', 'data-draft': d.id },
        h('div', { class: 'row' }, h('strong', {}, t('drafts.period', time(d.periodStart), time(d.periodEnd))),
          h('span', { class: 'muted' }, time(d.createdAt)), read), content);
    }) : h('p', { class: 'muted' }, t('drafts.none')));
  };

  const today = new Date();
  const monthAgo = new Date(today.getTime() - 30 * 86400000);
  const iso = (d) => d.toISOString().slice(0, 10);
  const from = dateInput(iso(monthAgo), 'draft-from');
  const to = dateInput(iso(new Date(today.getTime() + 86400000)), 'draft-to');
  const requestForm = isWriter(ctx) ? h('form', {
    class: 'card row',
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        // The chosen days in the browser's time zone.
        const { data } = await api('POST', `/api/companies/${company.id}/summaries/draft`, {
          periodStart: new Date(`${from.value}T00:00:00`).toISOString(),
          periodEnd: new Date(`${to.value}T00:00:00`).toISOString(),
        });
        stops.push(watchJob(ctx, draftJob, data.id, () => loadDrafts().catch(ctx.fail)));
      } catch (e) { ctx.fail(e); }
    },
  }, field(t('drafts.from'), from), field(t('drafts.to'), to), h('button', { type: 'submit', id: 'draft-request' }, t('drafts.request'))) : null;

  fill(ctx.main, h('p', {}, h('a', { href: '#/companies' }, t('back'))),
    h('h1', { id: 'company-title' }, company.name),
    h('h2', {}, t('company.rooms')), rooms, isAdmin(ctx) ? linkForm() : null,
    h('h2', {}, t('company.tasks')), h('p', { class: 'muted' }, t('company.tasksIntro')), tasks,
    h('h2', {}, t('drafts.title')), h('p', { class: 'muted' }, t('drafts.tasksNote')), requestForm, draftJob, drafts);
  await Promise.all([loadRooms(), loadTasks(), loadDrafts()]);
  return () => stops.forEach((stop) => stop());
}

async function jobsPage(ctx) {
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const type = select([['', t('jobs.all')], ...['chatwork_rooms_sync', 'chatwork_messages_sync', 'summary_draft'].map((v) => [v, typeLabel(v)])], params.get('type') || '');
  type.id = 'jobs-type';
  const status = select([['', t('jobs.all')], ...['queued', 'processing', 'completed', 'failed', 'canceled'].map((v) => [v, t(`status.${v}`)])], params.get('status') || '');
  status.id = 'jobs-status';
  const by = select([['', t('jobs.anyone')], [ctx.me.userId, t('jobs.me')], ['schedule', t('job.schedule')]], '');
  const list = h('div', {});
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, t('rooms.more'));
  let cursor = null;
  let shown = [];
  const load = async (reset) => {
    if (reset) { cursor = null; shown = []; }
    const { data } = await api('GET', withQuery('/api/jobs', {
      type: type.value, status: status.value, startedBy: isAdmin(ctx) ? by.value : '', cursor, limit: 25,
    }));
    shown = shown.concat(data.items);
    fill(list, shown.length ? jobsTable(shown, isAdmin(ctx)) : h('p', { class: 'muted' }, t('jobs.none')));
    cursor = data.nextCursor;
    more.hidden = !cursor;
  };
  more.addEventListener('click', () => load(false).catch(ctx.fail));
  fill(ctx.main, h('h1', {}, t('jobs.title')),
    h('form', { class: 'card row', onsubmit: (e) => { e.preventDefault(); load(true).catch(ctx.fail); } },
      field(t('job.type'), type), field(t('job.status'), status), isAdmin(ctx) ? field(t('jobs.startedBy'), by) : null,
      h('button', { type: 'submit', id: 'jobs-filter' }, t('jobs.filter'))),
    list, h('div', { class: 'pager' }, more));
  await load(true);
}

function resultTables(job) {
  const r = job.result;
  if (!r) return null;
  if (job.type !== 'chatwork_messages_sync') return h('pre', { id: 'job-result' }, JSON.stringify(r, null, 2));
  const table = (caption, heads, rows) => rows.length ? [h('h2', {}, caption), h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, heads.map((x) => h('th', {}, x)))), h('tbody', {}, rows)))] : [];
  return h('div', { id: 'job-result' },
    table(t('job.errors'), [t('job.room'), t('job.message')], r.errors.map((e) => h('tr', { 'data-failed-room': e.roomId },
      h('td', {}, roomName(e.roomId)), h('td', { class: 'error-text' }, e.message)))),
    table(t('job.gaps'), [t('job.room'), t('job.missed')], r.gaps.map((g) => h('tr', {}, h('td', {}, roomName(g.roomId)), h('td', {}, number(g.missedEstimate))))),
    table(t('job.rooms'), [t('job.room'), t('job.status'), t('job.fetched')], r.rooms.map((x) => h('tr', {},
      h('td', {}, roomName(x.roomId)), h('td', {}, statusBadge(x.status)), h('td', {}, number(x.fetched))))));
}

async function jobPage(ctx, jobId) {
  const card = h('div', {});
  const details = h('div', {});
  const draw = (job) => {
    fill(details,
      h('dl', { class: 'facts card' },
        h('dt', {}, t('job.type')), h('dd', {}, typeLabel(job.type)),
        h('dt', {}, t('job.status')), h('dd', { id: 'job-status' }, t(`status.${job.status}`)),
        h('dt', {}, t('job.by')), h('dd', {}, job.userId || t('job.schedule')),
        h('dt', {}, t('job.created')), h('dd', {}, time(job.createdAt)),
        h('dt', {}, t('job.startedAt')), h('dd', {}, time(job.startedAt)),
        h('dt', {}, t('job.finished')), h('dd', {}, time(job.finishedAt)),
        h('dt', {}, t('job.duration')), h('dd', {}, duration(job.startedAt || job.createdAt, job.finishedAt)),
        h('dt', {}, t('job.items')), h('dd', {}, `${number(job.totalItems - job.openItems)} / ${number(job.totalItems)}`)),
      h('h2', {}, t('job.payload')), h('pre', { id: 'job-payload' }, JSON.stringify(job.payload, null, 2)),
      job.error ? [h('h2', {}, t('job.error')), h('p', { class: 'error-text' }, `${job.error.name}: ${job.error.message}`),
        job.error.stack ? h('pre', {}, job.error.stack) : null] : null,
      resultTables(job));
  };
  const refresh = async () => {
    const { data: job } = await api('GET', `/api/jobs/${encodeURIComponent(jobId)}`);
    fill(card, jobCard(ctx, job, () => refresh()));
    sizeBars(card);
    draw(job);
    return OPEN.includes(job.status);
  };
  fill(ctx.main, h('p', {}, h('a', { href: '#/jobs' }, t('back'))), h('h1', {}, t('jobs.detail')), card, details);
  const open = await refresh();
  if (open) {
    return poller(async () => {
      const stillOpen = await refresh();
      if (!stillOpen) ctx.notify(t('job.ended', t('jobs.detail'), t(`status.${card.firstChild.dataset.status}`)));
      return stillOpen;
    });
  }
  return null;
}

/**
 * The sync's health for operators (GET /api/chatwork/status), redrawn every 10 s: the
 * route reads every active room's rate, and the checks it shows come once a minute.
 */
async function statusPage(ctx) {
  const box = h('div', { id: 'status' });
  const facts = (...pairs) => h('dl', { class: 'facts card' }, pairs.filter(Boolean).map(([label, value, id]) =>
    [h('dt', {}, label), h('dd', id ? { id } : {}, value)]));
  const table = (id, caption, heads, rows, none) => [h('h2', {}, caption), rows.length
    ? h('div', { class: 'table-wrap' }, h('table', { id }, h('thead', {}, h('tr', {}, heads.map((x) => h('th', {}, x)))), h('tbody', {}, rows)))
    : h('p', { class: 'muted', id }, none)];
  const outcomeKind = { current: 'ok', fetching: 'info', deferred: 'warn', busy: 'warn', failed: 'bad' };
  // The charts' range: the last hour (by minute) or day (by 15 minutes).
  let range = 'hour';
  const rangeButton = (value, label) => h('button', {
    class: 'secondary', type: 'button', 'data-range': value, 'aria-pressed': String(range === value),
    onclick: () => { range = value; draw(); },
  }, label);
  const draw = async () => {
    const [{ data: s }, { data: history }] = await Promise.all([
      api('GET', '/api/chatwork/status'),
      api('GET', withQuery('/api/chatwork/status/history', { range })),
    ]);
    rememberRoomNames([...s.roomsAtRisk, ...s.gapsLast24h]);
    const c = s.lastCheck;
    const b = s.chatworkBreaker;
    fill(box,
      h('h2', {}, t('status.chatwork')),
      b && b.open
        ? h('p', { class: 'card error-text', id: 'breaker', 'data-breaker': 'open' },
          t('status.breakerOpen', time(b.openedAt), number(b.failures), time(b.nextProbeAt)))
        : h('p', { class: 'card', id: 'breaker', 'data-breaker': 'closed' },
          badge(t('status.up'), 'ok'), b && b.failures ? t('status.recentFailures', number(b.failures), time(b.lastFailureAt)) : null),
      h('h2', {}, t('status.lastCheck')),
      c ? facts(
        [t('status.checkedAt'), time(c.checkedAt)],
        [t('status.outcome'), badge(t(`check.${c.outcome}`), outcomeKind[c.outcome] || 'info'), 'check-outcome'],
        [t('status.trigger'), c.trigger === 'schedule' ? t('job.schedule') : t('status.bySync')],
        [t('status.rooms'), t('status.roomCounts', number(c.roomsListed), number(c.roomsChanged), number(c.roomsFetched), number(c.roomsDeferred)), 'check-rooms'],
        [t('status.unseenMax'), number(c.unseenMax)],
        c.jobId ? [t('status.fetchJob'), h('a', { href: `#/jobs/${encodeURIComponent(c.jobId)}`, 'data-action': 'fetch-job' }, t('job.open'))] : null,
        c.error ? [t('job.error'), h('span', { class: 'error-text' }, c.error)] : null,
        [t('status.cadence'), t('status.cadenceValue', number(s.checkCadenceSecs), number(s.checksLastHour))],
      ) : h('p', { class: 'muted', id: 'check-none' }, t('status.noCheck')),
      h('h2', {}, t('status.budget')),
      s.budget ? facts([t('status.remaining'), `${number(s.budget.remaining)} / ${number(s.budget.limit)}`, 'budget'],
        [t('status.resetAt'), time(s.budget.resetAt)], [t('status.seenAt'), time(s.budget.seenAt)])
        : h('p', { class: 'muted' }, t('status.noBudget')),
      facts([t('status.waiting'), s.roomsWaiting ? t('status.waitingSince', number(s.roomsWaiting), time(s.oldestWaitSince)) : number(0), 'rooms-waiting']),
      s.messageLimitation ? h('p', { class: 'card', id: 'limitation' }, badge(t('status.limitation'), 'warn'), ' ', s.messageLimitation.summary) : null,
      h('h2', { id: 'charts-title' }, t('charts.title')),
      h('div', { class: 'row chart-range', role: 'group', 'aria-labelledby': 'charts-title' },
        rangeButton('hour', t('charts.hour')), rangeButton('day', t('charts.day'))),
      h('div', { class: 'charts', id: 'charts', 'data-range': history.range }, statusCharts(history)),
      table('at-risk', t('status.atRisk'), [t('job.room'), t('status.perHour'), t('status.perCheck'), t('status.unseen'), t('status.webhook')],
        s.roomsAtRisk.map((r) => h('tr', { 'data-room': r.roomId },
          h('td', {}, h('a', { href: `#/room/${r.roomId}` }, r.name || `#${r.roomId}`)),
          h('td', {}, number(Math.round(r.messagesPerHour * 10) / 10)),
          h('td', {}, number(Math.round(r.expectedPerCheck * 10) / 10)),
          h('td', {}, number(r.unseenMessages)),
          h('td', {}, r.lastWebhookAt ? time(r.lastWebhookAt) : badge(t('status.noWebhook'), 'warn')))),
        t('status.noRisk')),
      table('gaps', t('status.gaps'), [t('job.room'), t('status.detectedAt'), t('job.missed')],
        s.gapsLast24h.map((g) => h('tr', { 'data-room': g.roomId },
          h('td', {}, h('a', { href: `#/room/${g.roomId}` }, g.name || `#${g.roomId}`)),
          h('td', {}, time(g.detectedAt)), h('td', {}, number(g.missedEstimate)))),
        t('status.noGaps')));
    return true;
  };
  fill(ctx.main, h('h1', {}, t('status.title')), h('p', { class: 'muted' }, t('status.intro')), box);
  await draw();
  return poller(draw, STATUS_POLL_MS);
}

const taskLabel = (task) => t(`task.${task}`);
const runBadge = (status) => badge(t(`run.${status}`),
  status === 'completed' ? 'ok' : status === 'failed' ? 'bad' : status === 'paused' || status === 'skipped_overlap' ? 'warn' : 'info');
const byWhom = (trigger) => (trigger === 'schedule' ? t('job.schedule') : trigger);

/** Seconds as `every 5 min` / `every 6 h`. */
function cadenceText(secs) {
  if (secs === null || secs === undefined) return t('schedules.unscheduled');
  if (secs % 3600 === 0) return t('schedules.everyHours', number(secs / 3600));
  if (secs % 60 === 0) return t('schedules.everyMinutes', number(secs / 60));
  return t('schedules.everySeconds', number(secs));
}

/**
 * The scheduled tasks (admins, GET /api/schedules): each task's cadence, pause, last run
 * and next start, with run now (and a dry run for retention and the sweep) and
 * pause/resume. A run now is only requested: the scheduler takes it within a minute, and
 * the list, redrawn every 2 s, shows it go from requested to running to its end.
 */
async function schedulesPage(ctx) {
  const reason = h('input', { type: 'text', id: 'pause-reason', maxlength: 500, size: 40 });
  const box = h('div', { id: 'schedules' });
  const act = async (task, action, body, done) => {
    try {
      await api('POST', `/api/schedules/${encodeURIComponent(task)}/${action}`, body);
      ctx.notify(done);
    } catch (error) {
      ctx.fail(error);
    }
    await draw();
  };
  let drawn = '';
  const draw = async () => {
    const { data } = await api('GET', '/api/schedules');
    // Redrawn only when something changed, so that a button is not replaced under a click.
    const text = JSON.stringify(data);
    if (text === drawn) return true;
    drawn = text;
    fill(box, h('div', { class: 'table-wrap' }, h('table', { id: 'schedule-list' },
      h('thead', {}, h('tr', {}, [t('schedules.task'), t('schedules.cadence'), t('schedules.state'),
        t('schedules.lastRun'), t('schedules.nextDue'), t('rooms.actions')].map((x) => h('th', {}, x)))),
      h('tbody', {}, data.items.map((s) => {
        const open = s.openRun;
        const last = s.lastRun;
        const label = taskLabel(s.task);
        return h('tr', { 'data-task': s.task },
          h('td', {}, h('a', { href: `#/schedules/${encodeURIComponent(s.task)}` }, label)),
          h('td', {}, cadenceText(s.cadenceSecs)),
          h('td', { 'data-state': s.paused ? 'paused' : open ? open.status : 'scheduled' },
            s.paused ? [badge(t('schedules.paused'), 'warn'), ' ', h('span', { class: 'muted' },
              t('schedules.pausedBy', s.paused.pausedBy, time(s.paused.pausedAt)), s.paused.reason ? ` — ${s.paused.reason}` : '')]
              : open ? runBadge(open.status)
                : s.cadenceSecs ? badge(t('schedules.active'), 'ok') : badge(t('schedules.onRequest'), 'info')),
          h('td', { 'data-last': last ? last.status : 'none' },
            last ? [runBadge(last.status), ' ', time(last.endedAt), last.dryRun ? ` (${t('schedules.dryRun')})` : ''] : t('schedules.neverRan')),
          h('td', {}, s.nextDueAt ? time(s.nextDueAt) : '—'),
          h('td', {}, h('div', { class: 'row' },
            h('button', { type: 'button', 'data-action': 'run', disabled: open || s.paused ? true : null,
              onclick: () => act(s.task, 'run', {}, t('schedules.requested', label)) }, t('schedules.runNow')),
            s.hasDryRun ? h('button', { type: 'button', class: 'secondary', 'data-action': 'dry-run', disabled: open ? true : null,
              onclick: () => act(s.task, 'run', { dryRun: true }, t('schedules.requestedDry', label)) }, t('schedules.dryRunNow')) : null,
            s.paused
              ? h('button', { type: 'button', 'data-action': 'resume', onclick: () => act(s.task, 'resume', undefined, t('schedules.resumed', label)) }, t('schedules.resume'))
              : h('button', { type: 'button', class: 'secondary', 'data-action': 'pause',
                onclick: () => act(s.task, 'pause', reason.value.trim() ? { reason: reason.value.trim() } : {}, t('schedules.pausedNow', label)) }, t('schedules.pause')))));
      })))));
    return true;
  };
  fill(ctx.main, h('h1', {}, t('schedules.title')), h('p', { class: 'muted' }, t('schedules.intro')),
    h('div', { class: 'card row' }, field(t('schedules.reason'), reason)), box);
  await draw();
  return poller(draw);
}

/** One task's runs, newest first (GET /api/schedules/{task}/runs), redrawn every 2 s. */
async function scheduleRunsPage(ctx, task) {
  const list = h('div', { id: 'schedule-runs' });
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, t('rooms.more'));
  const path = `/api/schedules/${encodeURIComponent(task)}/runs`;
  let cursor = null;
  let older = [];
  const table = (runs) => (runs.length ? h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, [t('job.status'), t('job.by'), t('schedules.requestedAt'), t('job.startedAt'),
      t('job.duration'), t('job.result')].map((x) => h('th', {}, x)))),
    h('tbody', {}, runs.map((r) => h('tr', { 'data-run': r.id, 'data-status': r.status },
      h('td', {}, runBadge(r.status), r.dryRun ? ` (${t('schedules.dryRun')})` : ''),
      h('td', {}, byWhom(r.trigger)),
      h('td', {}, time(r.requestedAt)),
      h('td', {}, time(r.startedAt)),
      h('td', {}, r.startedAt ? duration(r.startedAt, r.endedAt) : '—'),
      h('td', {}, r.error ? h('span', { class: 'error-text' }, r.error) : null,
        r.report ? h('details', {}, h('summary', {}, t('schedules.report')), h('pre', { 'data-report': r.id }, JSON.stringify(r.report, null, 2))) : null))))))
    : h('p', { class: 'muted' }, t('schedules.noRuns')));
  let first = [];
  let drawn = '';
  const draw = async () => {
    const { data } = await api('GET', withQuery(path, { limit: 20 }));
    const text = JSON.stringify(data.items);
    if (text === drawn) return true;
    drawn = text;
    first = data.items;
    if (!older.length) { cursor = data.nextCursor; more.hidden = !cursor; }
    fill(list, table(first.concat(older.filter((r) => !first.some((f) => f.id === r.id)))));
    return true;
  };
  more.addEventListener('click', async () => {
    try {
      const { data } = await api('GET', withQuery(path, { limit: 20, cursor }));
      older = older.concat(data.items);
      cursor = data.nextCursor;
      more.hidden = !cursor;
      fill(list, table(first.concat(older)));
    } catch (error) { ctx.fail(error); }
  });
  fill(ctx.main, h('p', {}, h('a', { href: '#/schedules' }, t('schedules.back'))),
    h('h1', {}, t('schedules.runsOf', taskLabel(task))), list, h('div', { class: 'pager' }, more));
  await draw();
  return poller(draw);
}

/** `#/<page>` and `#/<page>/<id>`. */
/** Where a *Connect with Chatwork* round trip waits between Chatwork's redirect and the
 * Connections page (this tab only). */
export const OAUTH_RETURN = 'cwsync.chatworkOAuthReturn';

const connectionKind = { active: 'ok', reauth_required: 'bad', revoked: 'bad', disabled: 'warn' };

async function connectionsPage(ctx) {
  const box = h('div', { id: 'connections' });
  const tokenInput = h('input', { type: 'password', autocomplete: 'off', id: 'connection-token', size: 40 });
  let listing = null;
  const change = async (id, body, method) => {
    try {
      await api(method || 'PATCH', `/api/chatwork/connections/${encodeURIComponent(id)}`, body);
      ctx.notify(t('connections.changed'));
    } catch (e) { ctx.fail(e); }
    await draw();
  };
  const connected = (data) => {
    ctx.notify(t(data.reconnected ? 'connections.reconnected' : 'connections.connected', data.connection.accountName || `#${data.connection.accountId}`));
  };
  const draw = async () => {
    const { data } = await api('GET', '/api/chatwork/connections');
    listing = data;
    const rows = data.items.map((c) => h('tr', { 'data-connection': c.id, 'data-status': c.status },
      h('td', {}, c.bootstrap ? t('connections.bootstrap') : (c.accountName || `#${c.accountId}`),
        c.organizationName ? h('div', { class: 'muted' }, c.organizationName) : null),
      h('td', {}, t(`connections.kind.${c.kind}`)),
      h('td', {}, badge(t(`connections.status.${c.status}`), connectionKind[c.status] || 'info'),
        c.lastError ? h('div', { class: 'error-text', 'data-error': '' }, c.lastError) : null,
        c.status === 'reauth_required' ? h('div', {}, t('connections.reauthWho', c.connectedBy)) : null),
      h('td', {}, number(c.rooms)),
      h('td', {}, c.listedAt ? time(c.listedAt) : '—', c.listError ? h('div', { class: 'error-text' }, c.listError) : null),
      h('td', {}, c.bootstrap ? '' : t('connections.by', c.connectedBy, time(c.connectedAt))),
      h('td', {},
        c.status === 'active' ? h('button', { type: 'button', class: 'secondary', 'data-action': 'disable', onclick: () => change(c.id, { status: 'disabled' }) }, t('connections.disable')) : null,
        c.status === 'disabled' ? h('button', { type: 'button', class: 'secondary', 'data-action': 'enable', onclick: () => change(c.id, { status: 'active' }) }, t('connections.enable')) : null,
        c.kind === 'oauth' && c.status !== 'active' && data.canConnectOauth ? h('button', { type: 'button', 'data-action': 'reconnect', onclick: startOAuth }, t('connections.reconnect')) : null,
        c.bootstrap ? null : h('button', {
          type: 'button', class: 'danger', 'data-action': 'delete',
          onclick: () => { if (confirm(t('connections.confirmDelete'))) change(c.id, undefined, 'DELETE'); },
        }, t('connections.delete')))));
    fill(box,
      h('div', { class: 'card' },
        h('p', {}, t('connections.intro')),
        data.canConnectOauth
          ? h('button', { type: 'button', id: 'connect-chatwork', onclick: startOAuth }, t('connections.oauth'))
          : h('p', { class: 'muted', id: 'oauth-off' }, t('connections.oauthOff')),
        data.canAdd ? h('form', {
          class: 'row', id: 'add-token',
          onsubmit: async (event) => {
            event.preventDefault();
            if (!tokenInput.value.trim()) return;
            try {
              const { data: made } = await api('POST', '/api/chatwork/connections', { token: tokenInput.value.trim() });
              tokenInput.value = '';
              connected(made);
            } catch (e) { ctx.fail(e); }
            await draw();
          },
        }, field(t('connections.token'), tokenInput), h('button', { type: 'submit', class: 'secondary', id: 'add-token-submit' }, t('connections.add'))) : null),
      rows.length
        ? h('div', { class: 'table-wrap' }, h('table', { id: 'connection-list' },
          h('caption', {}, t('connections.title')),
          h('thead', {}, h('tr', {}, [t('connections.account'), t('connections.kindHead'), t('job.status'), t('connections.rooms'), t('connections.listed'), t('connections.connectedBy'), ''].map((x) => h('th', {}, x)))),
          h('tbody', {}, rows)))
        : h('p', { class: 'muted', id: 'connection-list' }, t('connections.none')));
  };
  const startOAuth = async () => {
    try {
      const { data } = await api('POST', '/api/chatwork/connections/oauth');
      location.assign(data.authorizationUrl);
    } catch (e) { ctx.fail(e); }
  };
  fill(ctx.main, h('h1', {}, t('connections.title')), box);
  // Back from Chatwork's consent page: complete the round trip once.
  const pending = sessionStorage.getItem(OAUTH_RETURN);
  if (pending) {
    sessionStorage.removeItem(OAUTH_RETURN);
    try {
      const { data } = await api('POST', '/api/chatwork/connections/oauth/complete', JSON.parse(pending));
      connected(data);
    } catch (e) { ctx.fail(e); }
  }
  await draw();
  return poller(async () => { await draw(); return true; }, STATUS_POLL_MS);
}

export const pages = {
  sync: syncPage,
  status: statusPage,
  connections: connectionsPage,
  rooms: roomsPage,
  room: roomPage,
  companies: (ctx, id) => (id ? companyPage(ctx, id) : companiesPage(ctx)),
  jobs: (ctx, id) => (id ? jobPage(ctx, id) : jobsPage(ctx)),
  schedules: (ctx, task) => (task ? scheduleRunsPage(ctx, task) : schedulesPage(ctx)),
};
