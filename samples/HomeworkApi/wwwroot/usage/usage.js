// Homework Helper, the students' own usage page: plain JavaScript, no dependencies. Everything shown
// comes from GET /api/usage/me with the student's own bearer token, so the API decides whose data it
// is; the page never asks for anyone else's. Shared helpers come from /shared/portal.js.
(() => {
  'use strict';

  const P = window.Portal;
  const TOKEN_KEY = 'homework-usage-token';
  const USER_KEY = 'homework-usage-user';
  const EXPIRES_KEY = 'homework-usage-expires';
  const DAYS = 30;

  // Friendly names of the homework features (CONTRACT §3 usage labels).
  const FEATURES = {
    '/api/validate-image': 'Photo check',
    '/api/analyze': 'Step-by-step explanation',
    '/api/hint': 'Hints',
    '/api/verify': 'Answer check',
    '/api/chat': 'Tutor chat',
  };

  const $ = (id) => document.getElementById(id);
  const { fmtInt, fmtMoney, cell, fillTable, ApiError } = P;
  const api = P.createApi(TOKEN_KEY, (message) => signOut(message));
  const monthName = new Intl.DateTimeFormat('en-US', { month: 'long', year: 'numeric', timeZone: 'UTC' });

  function setText(id, text) { $(id).textContent = text; }

  function showError(id, message) {
    const el = $(id);
    el.textContent = message || '';
    el.hidden = !message;
  }

  // --- signing in, registering, signing out ------------------------------------------------------

  function show(section) {
    for (const id of ['sign-in', 'register', 'app']) $(id).hidden = id !== section;
    $('whoami').hidden = section !== 'app';
  }

  function signOut(message) {
    for (const key of [TOKEN_KEY, USER_KEY, EXPIRES_KEY]) sessionStorage.removeItem(key);
    clearFigures();
    show('sign-in');
    showError('sign-in-error', message);
  }

  function signedIn(body) {
    sessionStorage.setItem(TOKEN_KEY, body.token);
    sessionStorage.setItem(USER_KEY, JSON.stringify(body.user));
    sessionStorage.setItem(EXPIRES_KEY, body.expiresAt);
    for (const id of ['password', 'register-password']) $(id).value = '';
    enterApp(body.user);
  }

  function enterApp(user) {
    $('whoami-name').textContent = user ? user.username : '';
    show('app');
    load();
  }

  async function signIn(event) {
    event.preventDefault();
    showError('sign-in-error', '');
    const username = $('username').value.trim();
    const password = $('password').value;
    if (!username || !password) {
      showError('sign-in-error', 'Enter your username and password.');
      return;
    }
    $('sign-in-button').disabled = true;
    try {
      signedIn(await P.login(username, password));
    } catch (e) {
      showError('sign-in-error', e.message);
    } finally {
      $('sign-in-button').disabled = false;
    }
  }

  async function register(event) {
    event.preventDefault();
    showError('register-error', '');
    const username = $('register-username').value.trim();
    const email = $('register-email').value.trim();
    const password = $('register-password').value;
    if (!username || !email || !password) {
      showError('register-error', 'Enter a username, your email and a password.');
      return;
    }
    $('register-button').disabled = true;
    try {
      const response = await fetch('/api/auth/register', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ username, email, password }),
      });
      if (!response.ok) throw new ApiError(response.status, await P.problemDetail(response, 'The account could not be created.'));
      signedIn(await P.login(username, password));
    } catch (e) {
      showError('register-error', e.message);
    } finally {
      $('register-button').disabled = false;
    }
  }

  // --- the figures -------------------------------------------------------------------------------

  function clearFigures() {
    for (const id of ['me-calls', 'me-calls-total', 'me-tokens', 'me-tokens-total', 'me-cost', 'me-cost-total', 'me-remaining', 'me-budget']) setText(id, '–');
    setText('month', '');
    setText('status', '');
    $('me-budget-meter').replaceChildren();
    $('chart').replaceChildren();
    fillTable('features-table', [], 5, '');
    showError('usage-error', '');
  }

  async function load() {
    const expires = Date.parse(sessionStorage.getItem(EXPIRES_KEY) || '');
    if (!Number.isNaN(expires) && expires <= Date.now()) {
      signOut('Your session has ended; please sign in again.');
      return;
    }
    showError('usage-error', '');
    setText('status', 'Loading…');
    $('refresh').disabled = true;
    try {
      render(await api.getJson('/api/usage/me'));
      setText('status', 'Updated ' + new Date().toLocaleTimeString('en-US'));
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
      setText('status', '');
      showError('usage-error', 'Could not load your usage: ' + e.message);
    } finally {
      $('refresh').disabled = false;
    }
  }

  function render(me) {
    setText('month', '(' + monthName.format(new Date()) + ', UTC)');
    setText('me-calls', fmtInt(me.thisMonth.calls));
    setText('me-tokens', fmtInt(me.thisMonth.tokens));
    setText('me-cost', fmtMoney(me.thisMonth.costUsd));
    setText('me-calls-total', fmtInt(me.totalCalls));
    setText('me-tokens-total', fmtInt(me.totalTokens));
    setText('me-cost-total', fmtMoney(me.totalCostUsd));
    renderBudget(me.budget, me.thisMonth);
    P.drawDailyChart($('chart'), me.daily || [], DAYS);
    renderFeatures(me.byEndpoint || []);
  }

  function renderBudget(budget, month) {
    const meterBox = $('me-budget-meter');
    meterBox.replaceChildren();
    if (!budget || (budget.monthlyCostUsd == null && budget.monthlyTokens == null)) {
      setText('me-remaining', 'No limit');
      setText('me-budget', 'no monthly budget set');
      return;
    }
    let used;
    if (budget.monthlyCostUsd != null) {
      const remaining = budget.remainingUsd != null ? Number(budget.remainingUsd) : Math.max(0, budget.monthlyCostUsd - month.costUsd);
      setText('me-remaining', fmtMoney(remaining));
      setText('me-budget', 'left of ' + P.fmtLimit(budget.monthlyCostUsd) + ' this month');
      used = budget.monthlyCostUsd > 0 ? 1 - remaining / budget.monthlyCostUsd : 1;
    } else {
      const remaining = Math.max(0, budget.monthlyTokens - month.tokens);
      setText('me-remaining', fmtInt(remaining) + ' tokens');
      setText('me-budget', 'left of ' + fmtInt(budget.monthlyTokens) + ' tokens this month');
      used = budget.monthlyTokens > 0 ? month.tokens / budget.monthlyTokens : 1;
    }
    meterBox.append(P.meter(used, 'Budget used this month'));
  }

  function renderFeatures(items) {
    const totalCost = items.reduce((sum, e) => sum + (Number(e.totalCostUsd) || 0), 0);
    fillTable('features-table', items.map((e) => {
      const name = document.createElement('span');
      name.textContent = FEATURES[e.endpoint] || e.endpoint || 'Other';
      const feature = document.createElement('div');
      feature.append(name);
      if (e.endpoint && FEATURES[e.endpoint]) {
        const route = document.createElement('span');
        route.className = 'feature-endpoint';
        route.textContent = e.endpoint;
        feature.append(route);
      }
      const share = totalCost > 0 ? (Number(e.totalCostUsd) || 0) / totalCost : 0;
      return [
        cell(feature),
        cell(fmtInt(e.calls), 'num'),
        cell(fmtInt(e.totalTokens), 'num'),
        cell(fmtMoney(e.totalCostUsd), 'num'),
        cell(P.meter(share, 'Share of cost', true), 'share'),
      ];
    }), 5, 'No calls yet: ask for a hint or an explanation in the app and they show up here.');
  }

  // --- start -------------------------------------------------------------------------------------

  function start() {
    $('sign-in-form').addEventListener('submit', signIn);
    $('register-form').addEventListener('submit', register);
    $('show-register').addEventListener('click', () => { showError('register-error', ''); show('register'); $('register-username').focus(); });
    $('show-sign-in').addEventListener('click', () => { showError('sign-in-error', ''); show('sign-in'); $('username').focus(); });
    $('sign-out').addEventListener('click', () => signOut());
    $('refresh').addEventListener('click', load);

    if (api.token()) {
      let user = null;
      try { user = JSON.parse(sessionStorage.getItem(USER_KEY)); } catch { /* ignore */ }
      enterApp(user);
    } else {
      signOut();
    }
  }

  start();
})();
