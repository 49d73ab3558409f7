// Homework Helper admin portal: plain JavaScript, no dependencies. Talks to the app's own API with
// the bearer token kept in sessionStorage for this tab. Shared helpers come from /shared/portal.js.
(() => {
  'use strict';

  const P = window.Portal;
  const TOKEN_KEY = 'homework-admin-token';
  const USER_KEY = 'homework-admin-user';
  const USER_PAGE_SIZE = 10;
  const ACCOUNT_PAGE_SIZE = 20;
  // "Users nearest their limit" reads each candidate's month with one request; never more than this.
  const NEAREST_LOOKUPS = 25;
  const NEAREST_SHOWN = 10;
  const TABS = ['users', 'usage', 'budgets'];

  const state = {
    days: 30,
    userOffset: 0,
    userTotal: 0,
    accountOffset: 0,
    accountTotal: 0,
    accountSearch: '',
  };

  const $ = (id) => document.getElementById(id);
  const { fmtInt, fmtMoney, fmtDate, cell, fillTable, ApiError } = P;
  const api = P.createApi(TOKEN_KEY, (message) => signOut(message));
  const getJson = api.getJson;
  const token = api.token;

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
      const body = await P.login(username, password);
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
    for (const tab of TABS) {
      $('tab-' + tab).setAttribute('aria-selected', String(tab === name));
      $('panel-' + tab).hidden = tab !== name;
    }
    if (name === 'usage') {
      loadUsage();
    } else if (name === 'budgets') {
      loadBudgets();
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
      await Promise.all([loadStats(), loadForecast(), loadDaily(), loadEndpoints(), loadUserUsage()]);
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

  async function loadForecast() {
    const f = await getJson('/api/usage/forecast');
    setText('forecast-month', f.month);
    setText('forecast-projected', fmtMoney(f.projectedMonthCostUsd));
    setText('forecast-low', fmtMoney(f.projectedLowUsd));
    setText('forecast-high', fmtMoney(f.projectedHighUsd));
    setText('forecast-mtd', fmtMoney(f.monthToDateCostUsd));
    setText('forecast-method', 'Method: ' + f.method);
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

  async function loadDaily() {
    const data = await getJson('/api/usage/daily?days=' + state.days);
    P.drawDailyChart($('chart'), data.items, state.days);
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
      const response = await api.request(path);
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

  // --- budgets ---------------------------------------------------------------------------------

  /**
   * Reads a limit field: empty → null (no limit); otherwise the number as JSON text, kept exactly
   * as typed so a cost like 0.1 reaches the API's decimal unrounded. Returns { json } or { error }.
   */
  function readLimit(input, kind) {
    const text = input.value.trim();
    input.removeAttribute('aria-invalid');
    if (text === '') return { json: 'null' };
    if (kind === 'cost') {
      if (!/^(\d+(\.\d*)?|\.\d+)$/.test(text)) {
        input.setAttribute('aria-invalid', 'true');
        return { error: 'Enter the cost limit in US dollars, such as 5 or 2.50 (no minus sign), or leave it empty for no limit.' };
      }
      return { json: (text.startsWith('.') ? '0' : '') + text.replace(/\.$/, '') };
    }
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
      input.setAttribute('aria-invalid', 'true');
      return { error: 'Enter the token limit as a whole number, such as 100000, or leave it empty for no limit.' };
    }
    return { json: String(Number(text)) };
  }

  function readLimits(costInput, tokensInput) {
    const cost = readLimit(costInput, 'cost');
    const tokens = readLimit(tokensInput, 'tokens');
    const error = cost.error || tokens.error;
    return error ? { error } : { json: `{"monthlyCostUsd":${cost.json},"monthlyTokens":${tokens.json}}` };
  }

  function showMessage(id, text, isError) {
    const el = $(id);
    el.textContent = text || '';
    el.className = isError ? 'error' : 'ok';
    el.setAttribute('role', isError ? 'alert' : 'status');
    el.hidden = !text;
  }

  function describeLimit(limit) {
    if (!limit || (limit.monthlyCostUsd == null && limit.monthlyTokens == null)) return 'no limit';
    const parts = [];
    if (limit.monthlyCostUsd != null) parts.push(P.fmtLimit(limit.monthlyCostUsd));
    if (limit.monthlyTokens != null) parts.push(fmtInt(limit.monthlyTokens) + ' tokens');
    return parts.join(' and ') + ' a month';
  }

  function valueText(n) { return n == null ? '' : String(n); }

  async function loadBudgets() {
    $('budgets-error').hidden = true;
    try {
      const [budgets, forecasts, top] = await Promise.all([
        getJson('/api/usage/budgets'),
        getJson('/api/usage/forecast/users?limit=' + NEAREST_LOOKUPS),
        getJson('/api/usage/summary?limit=' + NEAREST_SHOWN + '&sort=cost&order=desc'),
      ]);

      // Candidates: users with their own limits, those forecast to reach theirs, the top spenders.
      const ids = [];
      const add = (id) => { if (id != null && !ids.includes(id) && ids.length < NEAREST_LOOKUPS) ids.push(id); };
      budgets.users.forEach((u) => add(u.userId));
      forecasts.items.forEach((f) => add(f.userId));
      if (budgets.default) top.items.forEach((u) => add(u.userId));
      const details = new Map();
      await Promise.all(ids.map(async (id) => {
        try {
          details.set(id, await getJson('/api/usage/user/' + encodeURIComponent(id)));
        } catch (e) {
          if (!(e instanceof ApiError && e.status === 404)) throw e;
        }
      }));

      renderDefault(budgets.default);
      renderOverrides(budgets.users, details);
      renderNearest(budgets, details, new Map(forecasts.items.map((f) => [f.userId, f])));
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
      const el = $('budgets-error');
      el.textContent = 'Could not load budgets: ' + e.message;
      el.hidden = false;
    }
  }

  function renderDefault(limit) {
    setText('default-budget-current', 'Now: ' + describeLimit(limit));
    $('default-cost').value = valueText(limit && limit.monthlyCostUsd);
    $('default-tokens').value = valueText(limit && limit.monthlyTokens);
  }

  function renderOverrides(users, details) {
    fillTable('user-budgets-table', users.map((u) => {
      const edit = document.createElement('button');
      edit.type = 'button';
      edit.textContent = 'Edit';
      edit.addEventListener('click', () => {
        $('budget-user').value = u.userId;
        $('budget-cost').value = valueText(u.monthlyCostUsd);
        $('budget-tokens').value = valueText(u.monthlyTokens);
        $('budget-cost').focus();
      });
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = 'Remove';
      remove.className = 'remove-budget';
      remove.addEventListener('click', () => removeUserBudget(u.userId, remove));
      const actions = document.createElement('div');
      actions.className = 'actions';
      actions.append(edit, remove);
      const detail = details.get(u.userId);
      return [
        cell(u.userId),
        cell((detail && detail.username) || '–'),
        cell(u.monthlyCostUsd == null ? 'No limit' : P.fmtLimit(u.monthlyCostUsd), 'num'),
        cell(u.monthlyTokens == null ? 'No limit' : fmtInt(u.monthlyTokens), 'num'),
        cell(actions, 'actions-cell'),
      ];
    }), 5, 'No user has limits of their own.');
  }

  function renderNearest(budgets, details, forecasts) {
    const overrides = new Map(budgets.users.map((u) => [u.userId, u]));
    const rows = [];
    for (const [id, d] of details) {
      const limit = overrides.get(id) || budgets.default;
      if (!limit) continue;
      const cost = Number(d.thisMonth.costUsd) || 0;
      const tokens = Number(d.thisMonth.tokens) || 0;
      const fractions = [];
      if (limit.monthlyCostUsd != null) fractions.push(limit.monthlyCostUsd > 0 ? cost / limit.monthlyCostUsd : 1);
      if (limit.monthlyTokens != null) fractions.push(limit.monthlyTokens > 0 ? tokens / limit.monthlyTokens : 1);
      if (fractions.length === 0) continue;
      rows.push({ id, d, limit, cost, tokens, used: Math.max(...fractions) });
    }
    rows.sort((a, b) => b.used - a.used || String(a.id).localeCompare(String(b.id)));

    fillTable('nearest-table', rows.slice(0, NEAREST_SHOWN).map((r) => {
      const name = r.d.username ? `${r.d.username} (${r.id})` : String(r.id);
      const used = document.createElement('div');
      const label = document.createElement('small');
      label.className = 'used-label';
      label.textContent = `${Math.round(r.used * 100)}% of ${describeLimit(r.limit)}`;
      used.append(P.meter(r.used, name + ': ' + label.textContent), label);
      const f = forecasts.get(r.id);
      return [
        cell(name),
        cell(used, 'meter-cell'),
        cell(fmtMoney(r.cost), 'num'),
        cell(fmtInt(r.tokens), 'num'),
        cell(f ? (f.projectedExhaustionDate || 'already reached') : '–'),
      ];
    }), 5, 'No user with a limit has spent anything this month.');
  }

  async function saveDefault(event) {
    event.preventDefault();
    showMessage('default-budget-message', '');
    const limits = readLimits($('default-cost'), $('default-tokens'));
    if (limits.error) {
      showMessage('default-budget-message', limits.error, true);
      return;
    }
    await putDefault(limits.json, $('default-save'));
  }

  async function putDefault(json, button) {
    button.disabled = true;
    try {
      const saved = await api.send('PUT', '/api/usage/budgets/default', json);
      await loadBudgets();
      const text = describeLimit(saved);
      showMessage('default-budget-message', text === 'no limit' ? 'Saved: no default limit.' : 'Saved: the default is now ' + text + '.');
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) showMessage('default-budget-message', 'Not saved: ' + e.message, true);
    } finally {
      button.disabled = false;
    }
  }

  async function saveUserBudget(event) {
    event.preventDefault();
    showMessage('user-budget-message', '');
    const userInput = $('budget-user');
    const userId = userInput.value.trim();
    userInput.removeAttribute('aria-invalid');
    if (!userId) {
      userInput.setAttribute('aria-invalid', 'true');
      showMessage('user-budget-message', 'Enter the id of the user to limit (the Users tab lists them).', true);
      return;
    }
    const limits = readLimits($('budget-cost'), $('budget-tokens'));
    if (limits.error) {
      showMessage('user-budget-message', limits.error, true);
      return;
    }
    const button = $('budget-save');
    button.disabled = true;
    try {
      const path = '/api/usage/budgets/' + encodeURIComponent(userId);
      // A limit for an id nobody has is almost always a typo: the user lookup answers 404 for it.
      try {
        await getJson('/api/usage/user/' + encodeURIComponent(userId));
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) {
          userInput.setAttribute('aria-invalid', 'true');
          throw new Error(`no account or usage has the user id '${userId}'.`);
        }
        throw e;
      }
      const saved = await api.send('PUT', path, limits.json);
      await loadBudgets();
      showMessage('user-budget-message', `Saved: user ${saved.userId} now has ${describeLimit(saved)}.`);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) showMessage('user-budget-message', 'Not saved: ' + e.message, true);
    } finally {
      button.disabled = false;
    }
  }

  async function removeUserBudget(userId, button) {
    button.disabled = true;
    showMessage('user-budget-message', '');
    try {
      await api.send('DELETE', '/api/usage/budgets/' + encodeURIComponent(userId));
      await loadBudgets();
      showMessage('user-budget-message', `Removed: the default applies to user ${userId} again.`);
    } catch (e) {
      button.disabled = false;
      if (!(e instanceof ApiError && e.status === 401)) showMessage('user-budget-message', 'Not removed: ' + e.message, true);
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
        roleCell(a),
        cell(fmtDate(a.createdAt)),
        deleteCell(a),
      ]), 6, 'No accounts match.');
      pager('accounts', state.accountOffset, ACCOUNT_PAGE_SIZE, data.total);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) {
        fillTable('accounts-table', [], 6, 'Could not load accounts: ' + e.message);
      }
    }
  }

  /** The account's role as a choice; changing it applies at once (PUT /api/users/{id}/role). */
  function roleCell(account) {
    const select = document.createElement('select');
    select.id = 'role-' + account.id;
    select.setAttribute('aria-label', `Role of ${account.username}`);
    for (const role of ['student', 'admin']) {
      const option = document.createElement('option');
      option.value = role;
      option.textContent = role;
      option.selected = role === account.role;
      select.append(option);
    }
    select.addEventListener('change', () => changeRole(account, select));
    const td = document.createElement('td');
    td.append(select);
    return td;
  }

  async function changeRole(account, select) {
    select.disabled = true;
    try {
      const updated = await api.send('PUT', `/api/users/${encodeURIComponent(account.id)}/role`, JSON.stringify({ role: select.value }));
      account.role = updated.role;
      showMessage('account-message', `${updated.username} is now ${updated.role === 'admin' ? 'an admin' : 'a student'}.`);
    } catch (e) {
      select.value = account.role;
      if (!(e instanceof ApiError && e.status === 401)) showMessage('account-message', 'Role not changed: ' + e.message, true);
    } finally {
      select.disabled = false;
    }
  }

  /** Delete asks once more on the same button (no dialog), then removes the account; its usage stays. */
  function deleteCell(account) {
    const button = document.createElement('button');
    button.type = 'button';
    button.id = 'delete-' + account.id;
    button.className = 'danger';
    button.textContent = 'Delete';
    button.setAttribute('aria-label', `Delete ${account.username}`);
    button.addEventListener('click', async () => {
      if (button.dataset.armed !== 'true') {
        button.dataset.armed = 'true';
        button.textContent = 'Really delete?';
        return;
      }
      button.disabled = true;
      try {
        await api.send('DELETE', '/api/users/' + encodeURIComponent(account.id));
        showMessage('account-message', `Deleted ${account.username}; their usage records keep the id ${account.id}.`);
        await loadAccounts();
      } catch (e) {
        button.disabled = false;
        if (!(e instanceof ApiError && e.status === 401)) showMessage('account-message', 'Not deleted: ' + e.message, true);
      }
    });
    const td = document.createElement('td');
    td.append(button);
    return td;
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
    for (const tab of TABS) $('tab-' + tab).addEventListener('click', () => selectTab(tab));
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
    $('export-detailed').addEventListener('click', (e) => download('/api/usage/export', `usage_detailed_${P.utcDay(0)}.csv`, e.currentTarget));
    $('export-summary').addEventListener('click', (e) => download('/api/usage/export/summary', `usage_summary_${P.utcDay(0)}.csv`, e.currentTarget));
    $('default-budget-form').addEventListener('submit', saveDefault);
    $('default-lift').addEventListener('click', (e) => {
      showMessage('default-budget-message', '');
      putDefault('{"monthlyCostUsd":null,"monthlyTokens":null}', e.currentTarget);
    });
    $('user-budget-form').addEventListener('submit', saveUserBudget);

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
