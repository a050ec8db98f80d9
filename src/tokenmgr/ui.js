// tokenmgr web page: refreshes the server-rendered page from the JSON API and runs the forms
// through it. Data from outside (labels, names, routes) only ever goes into textContent.
'use strict';
(() => {
  const doc = document;
  doc.documentElement.classList.add('js');
  const body = doc.body;
  const authOn = body.dataset.auth === 'on';
  const consoleOn = body.dataset.console === 'on';
  const $ = (id) => doc.getElementById(id);
  const TOKEN_KEY = 'tokenmgr.token';
  const LEASE_KEY = 'tokenmgr.lease';
  const REFRESH_MS = 2000;
  const DASH = '\u2014';

  let lock = null;       // last /api/token/status
  let lockAt = 0;        // performance.now() when it arrived
  let pool = null;       // last /api/licenses
  let sortKey = 'name';
  let sortDir = 1;
  let pending = null;    // action waiting for the access token
  let timer = 0;
  let refreshing = false;
  let expiryRefreshed = false;
  let marks = { cordoned: {}, disabled: {} };  // last /api/console/marks
  let refreshes = 0;

  function load(key) { try { return sessionStorage.getItem(key); } catch (e) { return null; } }
  function save(key, value) {
    try {
      if (value == null) sessionStorage.removeItem(key); else sessionStorage.setItem(key, value);
    } catch (e) { /* storage off: the token is asked again */ }
  }

  function el(tag, className, text) {
    const e = doc.createElement(tag);
    if (className) e.className = className;
    if (text != null) e.textContent = String(text);
    return e;
  }
  function setText(id, text) { const e = $(id); if (e) e.textContent = String(text); }
  // A table's only row when it has nothing to show.
  function emptyRow(text, columns) {
    const td = el('td', 'muted', text);
    td.colSpan = columns;
    const tr = el('tr');
    tr.append(td);
    return tr;
  }

  function human(ms) {
    if (ms == null || !isFinite(ms)) return DASH;
    ms = Math.max(0, Math.floor(ms));
    if (ms < 1000) return ms + ' ms';
    const s = Math.floor(ms / 1000);
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min' + (s % 60 ? ' ' + (s % 60) + ' s' : '');
    if (s < 86400) {
      const m = Math.floor((s % 3600) / 60);
      return Math.floor(s / 3600) + ' h' + (m ? ' ' + m + ' min' : '');
    }
    const h = Math.floor((s % 86400) / 3600);
    return Math.floor(s / 86400) + ' d' + (h ? ' ' + h + ' h' : '');
  }
  function utc(ms) {
    if (!ms || ms <= 0) return DASH;
    const d = new Date(ms);
    if (isNaN(d.getTime())) return DASH;
    return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }

  // Same wording as PlainWords() in ui.cc.
  function plainWords(status, error) {
    const e = error == null ? 'no details' : String(error);
    switch (status) {
      case 400: return 'Not accepted: ' + e;
      case 401: return 'The access token is missing or wrong.';
      case 403: return 'Refused: ' + e;
      case 404: return 'That lease id does not hold the lock (wrong id, already released, or the lease expired).';
      case 409: return 'Not granted: ' + e;
      case 503: return 'tokenmgr cannot do that right now: ' + e;
      default: return 'Failed (HTTP ' + status + '): ' + e;
    }
  }

  function flash(message, ok, id) {
    const f = $('flash');
    f.className = 'flash ' + (ok ? 'ok' : 'err');
    f.replaceChildren(doc.createTextNode(message));
    if (id) {
      f.append(' ');
      const c = el('code', null, id);
      c.id = 'flash-id';
      f.append(c);
    }
    f.hidden = false;
  }

  function setLive(ok) {
    const live = $('live');
    live.className = 'live ' + (ok ? 'on' : 'off');
    live.textContent = ok ? 'live' : 'tokenmgr unreachable, retrying';
  }

  // ---- lock ----------------------------------------------------------------------------------
  function renderLock() {
    const held = !!(lock && lock.held);
    const state = $('lock-state');
    state.className = 'badge ' + (held ? 'held' : 'free');
    state.textContent = held ? 'held' : 'free';
    setText('lock-holder', held && lock.holder ? lock.holder : DASH);
    setText('lock-ttl', held ? lock.ttl : '');
    $('lock-of').hidden = !held;
    setText('lock-token', held ? lock.token : DASH);
    setText('lock-acquired', held ? utc(lock.acquired_at_unix_ms) : DASH);
    setText('lock-waiters', lock ? lock.waiters : DASH);
    setText('lock-last', lock ? lock.last_token : DASH);
    tick();
  }

  function tick() {
    const bar = $('lock-bar');
    if (!lock || !lock.held) {
      setText('lock-left', 'No lease');
      bar.max = 1;
      bar.value = 0;
      return;
    }
    const left = lock.expires_in_ms - (performance.now() - lockAt);
    bar.max = Math.max(1, lock.ttl * 1000);
    bar.value = Math.max(0, Math.min(bar.max, left));
    if (left <= 0) {
      setText('lock-left', 'expiring\u2026');
      if (!expiryRefreshed) { expiryRefreshed = true; refresh(); }
      return;
    }
    setText('lock-left', (left / 1000).toFixed(1) + ' s');
  }

  // ---- stats ---------------------------------------------------------------------------------
  function renderStats(stats) {
    const rows = Object.keys(stats || {}).sort().map((route) => {
      const tr = el('tr');
      tr.append(el('td', 'route', route), el('td', 'num', stats[route]));
      return tr;
    });
    if (!rows.length) rows.push(emptyRow('No requests yet.', 2));
    $('stats-body').replaceChildren(...rows);
  }

  // ---- pool ----------------------------------------------------------------------------------
  const STATE_ORDER = { stale: 0, unreadable: 1, unusable: 2, held: 3, free: 4 };
  function naturalCompare(a, b) {
    return String(a).localeCompare(String(b), undefined, { numeric: true, sensitivity: 'base' });
  }
  function sortValue(l, key) {
    switch (key) {
      case 'state': return STATE_ORDER[l.state] ?? 9;
      case 'token': return l.token ?? -1;
      case 'claimed': return l.claimed_at_ms ?? -1;
      case 'age': return l.unchanged_for_ms ?? -1;
      default: return l[key] ?? '';
    }
  }
  function sorted(list) {
    return list.slice().sort((a, b) => {
      const va = sortValue(a, sortKey), vb = sortValue(b, sortKey);
      let c = typeof va === 'number' && typeof vb === 'number' ? va - vb : naturalCompare(va, vb);
      if (c === 0) c = naturalCompare(a.name, b.name);
      return c * sortDir;
    });
  }

  function renderPool(data) {
    pool = data;
    const card = $('pool-card');
    if (!data || !data.configured) { card.hidden = true; return; }
    card.hidden = false;
    const t = data.totals || {};
    for (const k of ['held', 'free', 'stale', 'unreadable', 'unusable', 'total']) setText('t-' + k, t[k] ?? 0);
    const err = $('pool-error');
    err.hidden = !data.error;
    err.textContent = data.error ? 'Cannot read the pool: ' + data.error : '';
    setText('pool-note', 'Stale: the claim has not changed for ' + data.claim_ttl_seconds +
        ' s as seen by this tokenmgr. Times in UTC.' +
        (data.omitted ? ' ' + data.omitted + ' more licenses not shown.' : ''));
    const rows = sorted(data.licenses || []).map((l) => {
      const tr = el('tr', l.state);
      tr.dataset.name = l.name;
      tr.append(el('td', 'name', l.name));
      const st = el('td');
      st.append(el('span', 'badge ' + l.state, l.state));
      const disabled = consoleOn && Object.hasOwn(marks.disabled || {}, l.name);
      if (disabled) st.append(' ', el('span', 'badge disabled', 'disabled'));
      tr.append(st);
      if (l.state === 'held' || l.state === 'stale') {
        tr.append(el('td', null, l.node || DASH), el('td', null, l.pod || DASH),
            el('td', 'num', l.seed_format ? DASH : l.token), el('td', null, utc(l.claimed_at_ms)));
      } else if (l.state === 'unreadable' || l.state === 'unusable') {
        const td = el('td', 'err', l.error || l.state);
        td.colSpan = 4;
        tr.append(td);
      } else {
        tr.append(el('td', null, DASH), el('td', null, DASH), el('td', 'num', DASH),
            el('td', null, DASH));
      }
      tr.append(el('td', 'num age', l.unchanged_for_ms == null ? DASH : human(l.unchanged_for_ms)));
      if (consoleOn) {
        const td = el('td', 'admin');
        td.append(adminForm(disabled ? 'enable' : 'disable', l.name));
        tr.append(td);
      }
      return tr;
    });
    if (!rows.length && !data.error) rows.push(emptyRow('No licenses in the pool directory.', consoleOn ? 8 : 7));
    $('pool-body').replaceChildren(...rows);
    for (const th of doc.querySelectorAll('#pool-table th[data-sort]')) {
      if (th.dataset.sort === sortKey) {
        th.setAttribute('aria-sort', sortDir > 0 ? 'ascending' : 'descending');
      } else {
        th.removeAttribute('aria-sort');
      }
    }
  }

  for (const th of doc.querySelectorAll('#pool-table th[data-sort]')) {
    th.tabIndex = 0;
    const sortBy = () => {
      if (sortKey === th.dataset.sort) sortDir = -sortDir; else { sortKey = th.dataset.sort; sortDir = 1; }
      if (pool) renderPool(pool);
    };
    th.addEventListener('click', sortBy);
    th.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sortBy(); } });
  }


  // ---- console: nodes, events, chart, admin buttons (issue 17) -------------------------------
  const LABEL = { cordon: 'Cordon', uncordon: 'Uncordon', disable: 'Disable', enable: 'Enable' };
  const DONE = { cordon: 'cordoned', uncordon: 'uncordoned', disable: 'disabled', enable: 'enabled' };
  const TARGET = { cordon: 'node', uncordon: 'node', disable: 'license', enable: 'license' };
  const csrfValue = () => { const i = doc.querySelector('input[name=csrf]'); return i ? i.value : ''; };
  // What happens, in the server's words (data-confirm-* on the nodes card).
  const consequence = (kind) => {
    const card = $('nodes-card');
    return (card && card.getAttribute('data-confirm-' + kind)) || '';
  };

  // The same form as AdminForm() in ui_console.cc: it also works with the script gone.
  function adminForm(kind, name) {
    const f = el('form', 'admin');
    f.method = 'post';
    f.action = '/html/tmpl/' + kind;
    f.dataset.admin = kind;
    f.dataset.name = name;
    const csrf = el('input');
    csrf.type = 'hidden';
    csrf.name = 'csrf';
    csrf.value = csrfValue();
    const target = el('input');
    target.type = 'hidden';
    target.name = TARGET[kind];
    target.value = name;
    const b = el('button', 'small' + (kind === 'cordon' || kind === 'disable' ? ' danger' : ''),
        LABEL[kind]);
    b.type = 'submit';
    b.setAttribute('aria-label', LABEL[kind] + ' ' + name);
    f.append(csrf, target, b);
    return f;
  }

  function cell(label, text, className) {
    const td = el('td', className || null, text);
    td.dataset.label = label;
    return td;
  }

  function renderNodes(data) {
    const nodes = (data && data.nodes) || [];
    const totals = (data && data.totals) || {};
    for (const k of ['waiting', 'held', 'cordoned', 'degraded', 'released', 'gone']) {
      setText('n-' + k, totals[k] ?? 0);
    }
    const now = Date.now();
    const rows = nodes.map((n) => {
      const tr = el('tr', n.state);
      tr.dataset.node = n.node;
      const cordoned = n.state === 'cordoned' || Object.hasOwn(marks.cordoned || {}, n.node);
      tr.append(cell('Node', n.node, 'name'));
      const st = cell('State');
      st.append(el('span', 'badge ' + n.state, n.state));
      if (cordoned && n.state !== 'cordoned') st.append(' ', el('span', 'badge cordoned', 'cordoned'));
      tr.append(st);
      const waiting = n.state === 'waiting';
      tr.append(cell(waiting ? 'Waiting for' : 'In state for', human(now - n.since_ms),
          waiting ? 'num for wait' : 'num for'));
      tr.append(cell('License', n.license || DASH), cell('Pod', n.pod || DASH),
          cell('Last seen', n.last_seen_ms ? human(now - n.last_seen_ms) + ' ago' : DASH),
          cell('Version', n.version || DASH));
      const admin = cell('Admin', null, 'admin');
      admin.append(adminForm(cordoned ? 'uncordon' : 'cordon', n.node));
      tr.append(admin);
      return tr;
    });
    if (!rows.length) rows.push(emptyRow('No agent has reported yet.', 8));
    $('nodes-body').replaceChildren(...rows);
  }

  // The timeline keeps the newest TIMELINE events, newest first; a refresh asks only for those
  // after the last one shown.
  const TIMELINE = 50;
  function eventItem(e) {
    const li = el('li', 'ev ' + e.kind);
    li.dataset.seq = e.seq;
    li.append(el('span', 'ev-time', utc(e.time_ms)), ' ', el('span', 'badge ev-kind ' + e.kind, e.kind));
    const part = (cls, label, value) => {
      if (value == null || value === '' || value === 0) return;
      const s = el('span', cls);
      s.append(el('span', 'muted', label), ' ' + value);
      li.append(' ', s);
    };
    part('ev-node', 'node', e.node);
    part('ev-license', 'license', e.license);
    part('ev-token', 'token', e.token);
    part('ev-actor', 'by', e.actor);
    if (e.detail) li.append(' ', el('q', 'ev-detail', e.detail));
    return li;
  }

  async function refreshEvents() {
    const list = $('events-list');
    let last = Number(list.dataset.lastSeq || 0);
    let data = await getJson('/api/events?after=' + last + '&limit=' + TIMELINE);
    let replace = false;
    if (data.last_seq < last || data.more) {
      // tokenmgr forgot its history (restart without a journal) or much happened: start over.
      replace = true;
      data = await getJson('/api/events?after=' + Math.max(0, data.last_seq - TIMELINE) +
          '&limit=' + TIMELINE);
    }
    const fresh = (data.events || []).map(eventItem).reverse();  // newest first
    if (replace) list.replaceChildren(...fresh); else list.prepend(...fresh);
    while (list.children.length > TIMELINE) list.lastElementChild.remove();
    if (data.events && data.events.length) {
      last = data.events[data.events.length - 1].seq;
    } else if (replace) {
      last = data.last_seq;
    }
    list.dataset.lastSeq = last;
    $('events-empty').hidden = list.children.length > 0;
  }

  // Draws the chart as RenderChart() in ui_console.cc does (same geometry).
  const SVG = 'http://www.w3.org/2000/svg';
  const W = 480, H = 170, LEFT = 34, RIGHT = 8, TOP = 10, BOTTOM = 22;
  function svg(tag, attrs, text) {
    const e = doc.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text != null) e.textContent = String(text);
    return e;
  }
  function niceCeil(v) {
    for (let step = 1; ; step *= 10) for (const m of [1, 2, 5]) if (m * step >= v) return m * step;
  }
  const clockUtc = (ms) => { const u = utc(ms); return u.length >= 20 ? u.slice(11, 16) + 'Z' : u; };
  function drawChart(data) {
    const chart = $('chart');
    if (!chart || !data) return;
    const now = data.now_ms;
    const inWindow = (data.samples || []).filter((s) => s.at_ms >= now - data.window_s * 1000 && s.at_ms <= now);
    let from = inWindow.length ? inWindow[0].at_ms : now - 600000;
    from = Math.min(from, now - 600000);
    const span = Math.max(1, now - from);
    let top = 1;
    for (const s of inWindow) top = Math.max(top, s.held, s.free, s.waiting);
    top = niceCeil(top);
    const pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM;
    const x = (t) => (LEFT + pw * (t - from) / span).toFixed(1);
    const y = (v) => (TOP + ph * (1 - v / top)).toFixed(1);
    const parts = [];
    parts.push(svg('title', { id: 'chart-title' }, 'Licenses held, free and nodes waiting, last ' + human(now - from)));
    let desc = 'No samples yet.';
    if (inWindow.length) {
      const last = inWindow[inWindow.length - 1];
      const peak = Math.max(...inWindow.map((s) => s.waiting));
      desc = 'Now ' + last.held + ' held, ' + last.free + ' free, ' + last.waiting +
          ' nodes waiting; at most ' + peak + ' waiting in this time.';
    }
    parts.push(svg('desc', { id: 'chart-desc' }, desc));
    parts.push(svg('line', { class: 'axis', x1: LEFT, y1: y(0), x2: W - RIGHT, y2: y(0) }));
    parts.push(svg('line', { class: 'grid', x1: LEFT, y1: y(top), x2: W - RIGHT, y2: y(top) }));
    parts.push(svg('text', { class: 'ylabel', x: LEFT - 4, y: (Number(y(top)) + 4).toFixed(1) }, top));
    parts.push(svg('text', { class: 'ylabel', x: LEFT - 4, y: (Number(y(0)) + 4).toFixed(1) }, 0));
    parts.push(svg('text', { class: 'xlabel start', x: LEFT, y: H - 6 }, clockUtc(from)));
    parts.push(svg('text', { class: 'xlabel end', x: W - RIGHT, y: H - 6 }, clockUtc(now)));
    if (!inWindow.length) parts.push(svg('text', { class: 'empty', x: LEFT + pw / 2, y: TOP + ph / 2 }, 'No samples yet'));
    for (const k of ['held', 'free', 'waiting']) {
      let pts = inWindow.map((s) => x(s.at_ms) + ',' + y(s[k]));
      if (inWindow.length === 1) {  // one point: a level line across the chart
        pts = [LEFT.toFixed(1) + ',' + y(inWindow[0][k]), (W - RIGHT).toFixed(1) + ',' + y(inWindow[0][k])];
      }
      parts.push(svg('polyline', { class: 'line ' + k, points: pts.join(' ') }));
    }
    chart.replaceChildren(...parts);
  }

  async function refreshConsole() {
    const [nodes, m] = await Promise.all([getJson('/api/nodes'), getJson('/api/console/marks')]);
    marks = m;
    renderNodes(nodes);
    await refreshEvents();
    if (refreshes++ % 5 === 0) drawChart(await getJson('/api/console/samples'));
  }

  async function adminGo(kind, name) {
    const url = (TARGET[kind] === 'node' ? '/api/nodes/' : '/api/licenses/') +
        encodeURIComponent(name) + '/' + kind;
    // Recorded as "web (token)" with auth on, else "web (<address>)": as the form does.
    const headers = { Accept: 'application/json', 'X-Actor': 'web' };
    const token = load(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    try {
      const r = await fetch(url, { method: 'POST', headers, cache: 'no-store' });
      let data = null;
      try { data = await r.json(); } catch (e) { /* not JSON */ }
      if (r.ok) {
        flash(name + ' is ' + DONE[kind] + '. ' + consequence(kind), true);
      } else {
        if (r.status === 401 && authOn) tokenRefused(() => adminGo(kind, name));
        const error = data && (data.Error || data.error);
        flash(r.status === 404 ? 'Not found: ' + error : plainWords(r.status, error), false);
      }
    } catch (e) {
      flash('tokenmgr did not answer (' + e.message + ').', false);
    } finally {
      refresh();
    }
  }

  // Asks first, naming the node or license and what happens; confirm() shows text only.
  function admin(form) {
    const kind = form.dataset.admin;
    const name = form.dataset.name;
    if (!LABEL[kind] || !window.confirm(LABEL[kind] + ' ' + name + '? ' + consequence(kind))) return;
    if (authOn && !load(TOKEN_KEY)) {
      pending = () => adminGo(kind, name);
      askToken('To ' + kind + ' ' + name + ', enter the access token (asked once per tab).');
      return;
    }
    adminGo(kind, name);
  }
  doc.addEventListener('submit', (e) => {
    const form = e.target.closest && e.target.closest('form[data-admin]');
    if (!form) return;
    e.preventDefault();
    admin(form);
  });

  // ---- refresh -------------------------------------------------------------------------------
  async function getJson(url) {
    const r = await fetch(url, { cache: 'no-store', headers: { Accept: 'application/json' } });
    if (!r.ok) throw new Error(url + ': HTTP ' + r.status);
    return r.json();
  }

  async function refresh() {
    if (refreshing) return;
    refreshing = true;
    try {
      const wantPool = body.dataset.pool === 'on';
      const [status, stats, licenses] = await Promise.all([
        getJson('/api/token/status'), getJson('/api/stats'),
        wantPool ? getJson('/api/licenses') : Promise.resolve({ configured: false }),
      ]);
      lock = status;
      lockAt = performance.now();
      expiryRefreshed = false;
      renderLock();
      renderStats(stats);
      if (consoleOn) await refreshConsole();
      renderPool(licenses);
      setText('updated', 'Updated ' + new Date().toLocaleTimeString());
      setLive(true);
    } catch (e) {
      setLive(false);
    } finally {
      refreshing = false;
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (!doc.hidden) await refresh();
      schedule();
    }, REFRESH_MS);
  }
  doc.addEventListener('visibilitychange', () => { if (!doc.hidden) refresh(); });

  // ---- access token --------------------------------------------------------------------------
  function renderAuthStatus() {
    const s = $('auth-status');
    if (!s) return;
    const b = el('button', 'link', load(TOKEN_KEY) ? 'Forget token' : 'Enter token');
    b.type = 'button';
    b.addEventListener('click', () => {
      if (load(TOKEN_KEY)) { save(TOKEN_KEY, null); renderAuthStatus(); } else askToken(null);
    });
    s.replaceChildren(doc.createTextNode(load(TOKEN_KEY) ? 'Token set for this tab \u00b7 ' :
        'Actions need the access token \u00b7 '), b);
  }

  // The stored token was refused: forget it, ask again, then `retry`.
  function tokenRefused(retry) {
    save(TOKEN_KEY, null);
    renderAuthStatus();
    pending = retry;
    askToken('The access token was refused. Enter it again.');
  }

  function askToken(message) {
    const f = $('auth-form');
    if (!f) return;
    if (message) setText('auth-msg', message);
    f.hidden = false;
    $('auth-input').value = '';
    $('auth-input').focus();
  }

  if (authOn && $('auth-form')) {
    $('auth-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const v = $('auth-input').value.trim();
      if (!v) return;
      save(TOKEN_KEY, v);
      $('auth-form').hidden = true;
      renderAuthStatus();
      const next = pending;
      pending = null;
      if (next) next();
    });
    $('auth-cancel').addEventListener('click', () => { $('auth-form').hidden = true; pending = null; });
    renderAuthStatus();
  }

  // ---- actions -------------------------------------------------------------------------------
  function setLeaseId(id) {
    save(LEASE_KEY, id);
    for (const f of ['form-renew', 'form-release']) {
      const input = $(f).elements.id;
      if (input) input.value = id || '';
    }
  }

  async function act(kind, form) {
    if (authOn && !load(TOKEN_KEY)) {
      pending = () => act(kind, form);
      askToken('Viewing is open. To ' + (kind === 'lock' ? 'request the lock' : kind) +
          ', enter the access token (asked once per tab).');
      return;
    }
    const v = (name) => (form.elements[name] ? String(form.elements[name].value).trim() : '');
    let url;
    let method = 'POST';
    if (kind === 'lock') {
      const q = new URLSearchParams();
      if (v('ttl')) q.set('ttl', v('ttl'));
      if (v('holder')) q.set('holder', v('holder'));
      const qs = q.toString();
      url = '/api/token/lock/' + encodeURIComponent(v('wait') || '0') + (qs ? '?' + qs : '');
      method = 'GET';
    } else {
      const id = v('id');
      if (!id) { flash('Enter the lease id you were granted.', false); return; }
      url = '/api/token/' + kind + '/' + encodeURIComponent(id);
      if (kind === 'renew' && v('ttl')) url += '?ttl=' + encodeURIComponent(v('ttl'));
    }
    const headers = { Accept: 'application/json' };
    const token = load(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    if (kind === 'lock' && Number(v('wait')) > 0) {
      flash('Waiting up to ' + Number(v('wait')) + ' s for the lock\u2026', true);
    }
    try {
      const r = await fetch(url, { method, headers, cache: 'no-store' });
      let data = null;
      try { data = await r.json(); } catch (e) { /* not JSON */ }
      if (r.ok) {
        if (kind === 'release') {
          setLeaseId(null);
          flash('Released. The lock is free for the next waiter.', true);
        } else {
          const what = kind === 'lock' ? 'Lock granted' : 'Lease renewed';
          const id = (data && data.id) || v('id');
          setLeaseId(id);
          flash(what + ': fencing token ' + (data && data.token) + ', lease ' + (data && data.ttl) +
              ' s. Your lease id (needed to renew or release):', true, id);
        }
      } else {
        if (r.status === 401 && authOn) tokenRefused(() => act(kind, form));
        flash(plainWords(r.status, data && data.Error), false);
      }
    } catch (e) {
      flash('tokenmgr did not answer (' + e.message + ').', false);
    } finally {
      button.disabled = false;
      refresh();
    }
  }

  for (const form of doc.querySelectorAll('form[data-action]')) {
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      act(form.dataset.action, form);
    });
  }

  // A field that breaks its pattern says what is allowed (its title), not only the browser's
  // generic "match the requested format".
  for (const input of doc.querySelectorAll('input[pattern][title]')) {
    const check = () => input.setCustomValidity(input.validity.patternMismatch ? input.title : '');
    input.addEventListener('input', check);
    input.addEventListener('invalid', check);
  }

  // The token fields are for JavaScript-off use; here the token comes from the tab's storage.
  for (const f of doc.querySelectorAll('.auth-field')) f.remove();

  const remembered = load(LEASE_KEY);
  if (remembered && !$('form-release').elements.id.value) setLeaseId(remembered);
  setInterval(tick, 200);
  refresh();
  schedule();
})();
