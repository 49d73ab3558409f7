// Homework Helper admin portal: plain JavaScript, no dependencies. Talks to the app's own API with
// the bearer token kept in sessionStorage for this tab.
(() => {
  'use strict';

  const TOKEN_KEY = 'homework-admin-token';
  const USER_KEY = 'homework-admin-user';
  const USER_PAGE_SIZE = 10;
  const ACCOUNT_PAGE_SIZE = 20;

  const state = {
    days: 30,
    userOffset: 0,
    userTotal: 0,
    accountOffset: 0,
    accountTotal: 0,
    accountSearch: '',
  };

  const $ = (id) => document.getElementById(id);
  const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const money = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 4, maximumFractionDigits: 4 });
  const moneyShort = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 4 });
  const dateTime = new Intl.DateTimeFormat('en-US', { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZone: 'UTC', timeZoneName: 'short' });

  const fmtInt = (n) => integer.format(Number(n) || 0);
  const fmtMoney = (n) => money.format(Number(n) || 0);
  const fmtDate = (iso) => (iso ? dateTime.format(new Date(iso)) : '–');

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    const t = token();
    if (t) headers.set('Authorization', 'Bearer ' + t);
    if (options.body && !headers.has('Content-Type')) headers.set('Content-Type', 'application/json');
    const response = await fetch(path, { ...options, headers });
    if (response.status === 401 && t) {
      signOut('Your session has ended; please sign in again.');
      throw new ApiError(401, 'Signed out.');
    }
    if (!response.ok) {
      let detail = response.statusText || ('HTTP ' + response.status);
      try {
        const problem = await response.json();
        detail = problem.detail || problem.title || detail;
      } catch { /* not JSON */ }
      throw new ApiError(response.status, detail);
    }
    return response;
  }

  const getJson = async (path) => (await api(path)).json();

  // --- sign-in ---------------------------------------------------------------------------------

  function showSignedIn(user) {
    $('sign-in').hidden = true;
    $('app').hidden = false;
    $('whoami').hidden = false;
    $('whoami-name').textContent = user ? user.username : '';
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(USER_KEY);
    $('app').hidden = true;
    $('whoami').hidden = true;
    $('sign-in').hidden = false;
    const error = $('sign-in-error');
    error.hidden = !message;
    error.textContent = message || '';
  }

  async function signIn(event) {
    event.preventDefault();
    const error = $('sign-in-error');
    error.hidden = true;
    const username = $('username').value.trim();
    const password = $('password').value;
    if (!username || !password) {
      error.textContent = 'Enter your username and password.';
      error.hidden = false;
      return;
    }
    $('sign-in-button').disabled = true;
    try {
      const response = await fetch('/api/auth/login', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ username, password }),
      });
      if (!response.ok) {
        let detail = 'Sign-in failed.';
        try { detail = (await response.json()).detail || detail; } catch { /* not JSON */ }
        throw new Error(detail);
      }
      const body = await response.json();
      if (body.user.role !== 'admin') {
        throw new Error('This portal is for admins; your account is a ' + body.user.role + ' account.');
      }
      sessionStorage.setItem(TOKEN_KEY, body.token);
      sessionStorage.setItem(USER_KEY, JSON.stringify(body.user));
      $('password').value = '';
      showSignedIn(body.user);
      selectTab('usage');
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    } finally {
      $('sign-in-button').disabled = false;
    }
  }

  // --- tabs ------------------------------------------------------------------------------------

  function selectTab(name) {
    const usage = name === 'usage';
    $('tab-usage').setAttribute('aria-selected', String(usage));
    $('tab-users').setAttribute('aria-selected', String(!usage));
    $('panel-usage').hidden = !usage;
    $('panel-users').hidden = usage;
    if (usage) {
      loadUsage();
    } else {
      loadAccounts();
    }
  }

  // --- API usage -------------------------------------------------------------------------------

  function setText(id, text) { $(id).textContent = text; }

  function showUsageError(e) {
    if (e instanceof ApiError && e.status === 401) return;
    const el = $('usage-error');
    el.textContent = 'Could not load usage: ' + e.message;
    el.hidden = false;
  }

  async function loadUsage() {
    $('usage-error').hidden = true;
    setText('usage-status', 'Loading…');
    $('refresh').disabled = true;
    try {
      await Promise.all([loadStats(), loadDaily(), loadEndpoints(), loadUserUsage()]);
      setText('usage-status', 'Updated ' + new Date().toLocaleTimeString('en-US'));
    } catch (e) {
      setText('usage-status', '');
      showUsageError(e);
    } finally {
      $('refresh').disabled = false;
    }
  }

  async function loadStats() {
    const s = await getJson('/api/usage/stats');
    setText('stat-calls', fmtInt(s.totalCalls));
    setText('stat-calls-today', fmtInt(s.today.calls));
    setText('stat-tokens', fmtInt(s.totalTokens));
    setText('stat-tokens-today', fmtInt(s.today.tokens));
    setText('stat-cost', fmtMoney(s.totalCostUsd));
    setText('stat-cost-today', fmtMoney(s.today.costUsd));
    setText('stat-users', fmtInt(s.activeUsers));
    setText('stat-users-month', fmtInt(s.thisMonth.activeUsers));
  }

  function cell(text, className) {
    const td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function fillTable(table, rows, columns, emptyText) {
    const body = $(table).tBodies[0];
    body.replaceChildren();
    if (rows.length === 0) {
      const tr = document.createElement('tr');
      const td = cell(emptyText, 'empty');
      td.colSpan = columns;
      tr.append(td);
      body.append(tr);
      return;
    }
    for (const cells of rows) {
      const tr = document.createElement('tr');
      tr.append(...cells);
      body.append(tr);
    }
  }

  async function loadEndpoints() {
    const data = await getJson('/api/usage/endpoint');
    fillTable('endpoint-table', data.items.map((e) => [
      cell(e.endpoint || '(none)'),
      cell(e.model || '–'),
      cell(fmtInt(e.calls), 'num'),
      cell(fmtInt(e.totalTokens), 'num'),
      cell(fmtInt(e.avgTokensPerCall), 'num'),
      cell(fmtMoney(e.totalCostUsd), 'num'),
      cell(fmtMoney(e.avgCostPerCall), 'num'),
    ]), 7, 'No calls yet.');
  }

  async function loadUserUsage() {
    const sort = $('user-sort').value;
    const order = sort === 'userId' ? 'asc' : 'desc';
    const data = await getJson(`/api/usage/summary?limit=${USER_PAGE_SIZE}&offset=${state.userOffset}&sort=${sort}&order=${order}`);
    state.userTotal = data.total;
    if (data.items.length === 0 && state.userOffset > 0) {
      state.userOffset = Math.max(0, state.userOffset - USER_PAGE_SIZE);
      return loadUserUsage();
    }
    fillTable('user-usage-table', data.items.map((u) => [
      cell(u.userId),
      cell(u.username || '–'),
      cell(u.email || '–'),
      cell(fmtInt(u.totalCalls), 'num'),
      cell(fmtInt(u.totalTokens), 'num'),
      cell(fmtMoney(u.totalCostUsd), 'num'),
      cell(fmtDate(u.lastCallAt)),
    ]), 7, 'No user has made a call yet.');
    pager('user-usage', state.userOffset, USER_PAGE_SIZE, data.total);
    return undefined;
  }

  function pager(prefix, offset, size, total) {
    const pages = Math.max(1, Math.ceil(total / size));
    const page = Math.floor(offset / size) + 1;
    setText(prefix + '-page', `Page ${fmtInt(page)} of ${fmtInt(pages)} · ${fmtInt(total)} in all`);
    $(prefix + '-prev').disabled = offset <= 0;
    $(prefix + '-next').disabled = offset + size >= total;
  }

  // --- daily trend chart (SVG drawn here) ------------------------------------------------------

  async function loadDaily() {
    const data = await getJson('/api/usage/daily?days=' + state.days);
    drawChart(data.items, state.days);
  }

  function utcDay(offsetDays) {
    const now = new Date();
    const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
    d.setUTCDate(d.getUTCDate() - offsetDays);
    return d.toISOString().slice(0, 10);
  }

  function svg(name, attrs, text) {
    const el = document.createElementNS('http://www.w3.org/2000/svg', name);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function niceMax(value) {
    if (value <= 0) return 1;
    const exp = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 2.5, 5, 10]) {
      if (value <= m * exp) return m * exp;
    }
    return 10 * exp;
  }

  function drawChart(items, days) {
    const byDate = new Map(items.map((i) => [i.date, i]));
    const series = [];
    for (let i = days - 1; i >= 0; i--) {
      const date = utcDay(i);
      const item = byDate.get(date);
      series.push({ date, calls: item ? item.calls : 0, cost: item ? Number(item.costUsd) : 0 });
    }

    const width = 800;
    const height = 240;
    const pad = { left: 48, right: 64, top: 12, bottom: 28 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const maxCalls = niceMax(Math.max(...series.map((s) => s.calls)));
    const maxCost = niceMax(Math.max(...series.map((s) => s.cost)));
    const step = plotW / series.length;

    const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': `Calls and cost per day, last ${days} days` });
    for (let g = 0; g <= 4; g++) {
      const y = pad.top + plotH - (plotH * g) / 4;
      root.append(svg('line', { class: 'grid', x1: pad.left, x2: width - pad.right, y1: y, y2: y }));
      root.append(svg('text', { class: 'axis', x: pad.left - 6, y: y + 4, 'text-anchor': 'end' }, fmtInt((maxCalls * g) / 4)));
      root.append(svg('text', { class: 'axis', x: width - pad.right + 6, y: y + 4 }, moneyShort.format((maxCost * g) / 4)));
    }

    const points = [];
    series.forEach((s, i) => {
      const x = pad.left + i * step;
      const h = (plotH * s.calls) / maxCalls;
      const bar = svg('rect', { class: 'bar', x: x + step * 0.15, y: pad.top + plotH - h, width: Math.max(1, step * 0.7), height: h });
      bar.append(svg('title', {}, `${s.date}: ${fmtInt(s.calls)} calls, ${fmtMoney(s.cost)}`));
      root.append(bar);
      points.push([x + step / 2, pad.top + plotH - (plotH * s.cost) / maxCost]);
      const every = days <= 30 ? 5 : 15;
      if ((series.length - 1 - i) % every === 0) {
        root.append(svg('text', { class: 'axis', x: x + step / 2, y: height - 8, 'text-anchor': 'middle' }, s.date.slice(5)));
      }
    });
    root.append(svg('polyline', { class: 'cost-line', points: points.map((p) => p.map((n) => n.toFixed(1)).join(',')).join(' ') }));
    if (!series.some((s) => s.calls > 0)) {
      root.append(svg('text', { class: 'empty', x: pad.left + plotW / 2, y: pad.top + plotH / 2, 'text-anchor': 'middle' }, 'No calls in this period.'));
    }
    $('chart').replaceChildren(root);
  }

  function setDays(days) {
    state.days = days;
    $('days-30').setAttribute('aria-pressed', String(days === 30));
    $('days-90').setAttribute('aria-pressed', String(days === 90));
    loadDaily().catch(showUsageError);
  }

  // --- CSV downloads (fetch + Blob, because they need the bearer token) -------------------------

  function filenameFrom(response, fallback) {
    const header = response.headers.get('Content-Disposition') || '';
    const star = /filename\*=UTF-8''([^;]+)/i.exec(header);
    if (star) return decodeURIComponent(star[1]);
    const plain = /filename="?([^";]+)"?/i.exec(header);
    return plain ? plain[1] : fallback;
  }

  async function download(path, fallbackName, button) {
    button.disabled = true;
    $('usage-error').hidden = true;
    try {
      const response = await api(path);
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = document.createElement('a');
      link.href = url;
      link.download = filenameFrom(response, fallbackName);
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      setText('usage-status', 'Downloaded ' + link.download);
    } catch (e) {
      showUsageError(e);
    } finally {
      button.disabled = false;
    }
  }

  // --- accounts --------------------------------------------------------------------------------

  async function loadAccounts() {
    try {
      const q = state.accountSearch ? '&search=' + encodeURIComponent(state.accountSearch) : '';
      const data = await getJson(`/api/users?limit=${ACCOUNT_PAGE_SIZE}&offset=${state.accountOffset}${q}`);
      state.accountTotal = data.total;
      fillTable('accounts-table', data.items.map((a) => [
        cell(a.id),
        cell(a.username),
        cell(a.email),
        cell(a.role),
        cell(fmtDate(a.createdAt)),
      ]), 5, 'No accounts match.');
      pager('accounts', state.accountOffset, ACCOUNT_PAGE_SIZE, data.total);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) {
        fillTable('accounts-table', [], 5, 'Could not load accounts: ' + e.message);
      }
    }
  }

  // --- start -----------------------------------------------------------------------------------

  async function loadInfo() {
    try {
      const info = await (await fetch('/api/info')).json();
      $('simulated-banner').hidden = !info.simulatedModel;
      $('memory-banner').hidden = info.storage !== 'memory';
    } catch { /* the banners stay hidden */ }
  }

  function start() {
    $('sign-in-form').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', () => signOut());
    $('tab-usage').addEventListener('click', () => selectTab('usage'));
    $('tab-users').addEventListener('click', () => selectTab('users'));
    $('refresh').addEventListener('click', loadUsage);
    $('days-30').addEventListener('click', () => setDays(30));
    $('days-90').addEventListener('click', () => setDays(90));
    $('user-sort').addEventListener('change', () => { state.userOffset = 0; loadUserUsage().catch(showUsageError); });
    $('user-usage-prev').addEventListener('click', () => { state.userOffset = Math.max(0, state.userOffset - USER_PAGE_SIZE); loadUserUsage().catch(showUsageError); });
    $('user-usage-next').addEventListener('click', () => { state.userOffset += USER_PAGE_SIZE; loadUserUsage().catch(showUsageError); });
    $('accounts-prev').addEventListener('click', () => { state.accountOffset = Math.max(0, state.accountOffset - ACCOUNT_PAGE_SIZE); loadAccounts(); });
    $('accounts-next').addEventListener('click', () => { state.accountOffset += ACCOUNT_PAGE_SIZE; loadAccounts(); });
    let searchTimer;
    $('account-search').addEventListener('input', (e) => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => { state.accountSearch = e.target.value.trim(); state.accountOffset = 0; loadAccounts(); }, 250);
    });
    $('export-detailed').addEventListener('click', (e) => download('/api/usage/export', `usage_detailed_${utcDay(0)}.csv`, e.currentTarget));
    $('export-summary').addEventListener('click', (e) => download('/api/usage/export/summary', `usage_summary_${utcDay(0)}.csv`, e.currentTarget));

    loadInfo();
    if (token()) {
      let user = null;
      try { user = JSON.parse(sessionStorage.getItem(USER_KEY)); } catch { /* ignore */ }
      showSignedIn(user);
      selectTab('usage');
    } else {
      signOut();
    }
  }

  start();
})();
