// Shared by the admin portal (/admin) and the students' usage page (/usage): plain JavaScript, no
// dependencies, no build step. Formatting, the API client with the bearer token, tables built from
// text nodes (never HTML from data), progress bars and the daily trend chart drawn as SVG.
(() => {
  'use strict';

  const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const money = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 4, maximumFractionDigits: 4 });
  // Limits people type (a budget of $5 or of $0.0025) are shown as typed: cents at least, never rounded away.
  const moneyLimit = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 8 });
  const moneyShort = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 4 });
  const dateTime = new Intl.DateTimeFormat('en-US', { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZone: 'UTC', timeZoneName: 'short' });

  const fmtInt = (n) => integer.format(Number(n) || 0);
  // Under a cent, two significant digits: $0.0013, $0.00015, $0.0000021 (never a flat "$0.0001").
  const moneyTiny = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumSignificantDigits: 2, maximumSignificantDigits: 2 });
  const fmtMoney = (n) => {
    const value = Number(n) || 0;
    return value !== 0 && Math.abs(value) < 0.01 ? moneyTiny.format(value) : money.format(value);
  };
  const fmtMoneyShort = (n) => moneyShort.format(Number(n) || 0);
  const fmtLimit = (n) => moneyLimit.format(Number(n) || 0);
  const fmtDate = (iso) => (iso ? dateTime.format(new Date(iso)) : '–');

  /** An HTTP failure with the API's problem detail as its message. */
  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  /** The human sentence of an RFC 9457 problem response, or the status text. */
  async function problemDetail(response, fallback) {
    let detail = fallback || response.statusText || ('HTTP ' + response.status);
    try {
      const problem = await response.json();
      detail = problem.detail || problem.title || detail;
    } catch { /* not JSON */ }
    return detail;
  }

  /**
   * An API client that sends the token kept in sessionStorage under tokenKey. A 401 while signed in
   * calls onUnauthorized (the session ended) and rejects.
   */
  function createApi(tokenKey, onUnauthorized) {
    const token = () => sessionStorage.getItem(tokenKey);

    async function request(path, options = {}) {
      const headers = new Headers(options.headers || {});
      const t = token();
      if (t) headers.set('Authorization', 'Bearer ' + t);
      if (options.body && !headers.has('Content-Type')) headers.set('Content-Type', 'application/json');
      const response = await fetch(path, { ...options, headers });
      if (response.status === 401 && t) {
        onUnauthorized('Your session has ended; please sign in again.');
        throw new ApiError(401, 'Signed out.');
      }
      if (!response.ok) {
        throw new ApiError(response.status, await problemDetail(response));
      }
      return response;
    }

    return {
      token,
      request,
      getJson: async (path) => (await request(path)).json(),
      /** Sends a JSON text (already serialised) and returns the JSON answer, or null for 204. */
      send: async (method, path, jsonText) => {
        const response = await request(path, jsonText === undefined ? { method } : { method, body: jsonText });
        return response.status === 204 ? null : response.json();
      },
    };
  }

  /** POST /api/auth/login: the {token, expiresAt, user} answer, or an ApiError with the API's detail. */
  async function login(username, password) {
    const response = await fetch('/api/auth/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username, password }),
    });
    if (!response.ok) throw new ApiError(response.status, await problemDetail(response, 'Sign-in failed.'));
    return response.json();
  }

  function cell(content, className) {
    const td = document.createElement('td');
    if (content instanceof Node) {
      td.append(content);
    } else {
      td.textContent = content;
    }
    if (className) td.className = className;
    return td;
  }

  /** Replaces a table's body with rows of cells, or one row saying emptyText. */
  function fillTable(table, rows, columns, emptyText) {
    const body = (typeof table === 'string' ? document.getElementById(table) : table).tBodies[0];
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

  /** A progress bar for a fraction (1 = full); unless plain, it warns from 80% and turns red at 100%. */
  function meter(fraction, label, plain) {
    const percent = Math.max(0, Math.round(fraction * 100));
    const bar = document.createElement('div');
    bar.className = 'meter' + (plain ? '' : percent >= 100 ? ' over' : percent >= 80 ? ' warn' : '');
    bar.setAttribute('role', 'progressbar');
    bar.setAttribute('aria-valuemin', '0');
    bar.setAttribute('aria-valuemax', '100');
    bar.setAttribute('aria-valuenow', String(Math.min(percent, 100)));
    if (label) bar.setAttribute('aria-label', label);
    const fill = document.createElement('span');
    fill.style.width = Math.min(percent, 100) + '%';
    bar.append(fill);
    return bar;
  }

  /** The UTC date offsetDays before today, as YYYY-MM-DD. */
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

  /**
   * Round axis ticks for values up to max: `count` intervals of a step from 1, 2, 2.5 or 5 times a
   * power of ten (integers only: no 2.5 below 10), the smallest that reaches max.
   */
  function niceSteps(max, count, integers) {
    const target = Math.max(max, integers ? 1 : Number.MIN_VALUE) / count;
    let exp = Math.pow(10, Math.floor(Math.log10(target)));
    if (integers && exp < 1) exp = 1;
    for (;;) {
      for (const m of [1, 2, 2.5, 5]) {
        const step = Number((m * exp).toPrecision(12));
        if (integers && !Number.isInteger(step)) continue;
        if (step * count >= max - 1e-12 * max) return step;
      }
      exp *= 10;
    }
  }

  /** The intervals shared by both axes: the count (3 to 5) whose round call steps fit the data tightest. */
  function axisScale(maxCalls, maxCost) {
    let best = null;
    for (const count of [4, 5, 3]) {
      const callStep = niceSteps(maxCalls, count, true);
      if (!best || callStep * count < best.callStep * best.count) best = { count, callStep };
    }
    return { count: best.count, callStep: best.callStep, costStep: niceSteps(maxCost > 0 ? maxCost : 0.0001, best.count, false) };
  }

  /** A tick label with exactly the decimals its step needs (0.00025 → 5). */
  function stepDecimals(step) {
    let decimals = 0;
    while (decimals < 12 && Math.abs(Math.round(step * Math.pow(10, decimals)) - step * Math.pow(10, decimals)) > 1e-9) decimals++;
    return decimals;
  }

  /**
   * Draws calls (bars, left axis) and cost (line, right axis) per UTC day for the last `days` days
   * into container, at the container's own width (so text keeps its size) and a fixed aspect ratio.
   * Both axes share their gridlines: round steps, each label centred on its line.
   */
  function drawDailyChart(container, items, days) {
    const byDate = new Map(items.map((i) => [i.date, i]));
    const series = [];
    for (let i = days - 1; i >= 0; i--) {
      const date = utcDay(i);
      const item = byDate.get(date);
      series.push({ date, calls: item ? item.calls : 0, cost: item ? Number(item.costUsd) : 0 });
    }

    const width = Math.max(300, Math.round(container.clientWidth || 800));
    const height = Math.round(Math.min(280, Math.max(200, width * 0.3)));
    const pad = { left: 52, right: 72, top: 14, bottom: 28 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const scale = axisScale(Math.max(...series.map((s) => s.calls)), Math.max(...series.map((s) => s.cost)));
    const maxCalls = scale.callStep * scale.count;
    const maxCost = scale.costStep * scale.count;
    const costDecimals = Math.max(2, stepDecimals(scale.costStep));
    const costLabel = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: costDecimals, maximumFractionDigits: costDecimals });
    const step = plotW / series.length;

    const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'trend', role: 'img', 'aria-label': `Calls and cost per day, last ${days} days` });
    for (let g = 0; g <= scale.count; g++) {
      const y = pad.top + plotH - (plotH * g) / scale.count;
      root.append(svg('line', { class: 'grid', x1: pad.left, x2: width - pad.right, y1: y, y2: y, 'data-y': y }));
      root.append(svg('text', { class: 'axis tick-calls', x: pad.left - 6, y, 'text-anchor': 'end', 'dominant-baseline': 'middle', 'data-value': scale.callStep * g }, fmtInt(scale.callStep * g)));
      root.append(svg('text', { class: 'axis tick-cost', x: width - pad.right + 6, y, 'dominant-baseline': 'middle', 'data-value': (scale.costStep * g).toFixed(costDecimals) }, costLabel.format(scale.costStep * g)));
    }

    const points = [];
    const every = Math.max(1, Math.ceil(series.length / Math.max(2, Math.floor(plotW / 56))));
    series.forEach((s, i) => {
      const x = pad.left + i * step;
      const h = (plotH * s.calls) / maxCalls;
      const bar = svg('rect', { class: 'bar', x: x + step * 0.15, y: pad.top + plotH - h, width: Math.max(1, step * 0.7), height: h, 'data-date': s.date, 'data-calls': s.calls });
      bar.append(svg('title', {}, `${s.date}: ${fmtInt(s.calls)} calls, ${fmtMoney(s.cost)}`));
      root.append(bar);
      points.push([x + step / 2, pad.top + plotH - (plotH * s.cost) / maxCost]);
      if ((series.length - 1 - i) % every === 0) {
        root.append(svg('text', { class: 'axis', x: x + step / 2, y: height - 8, 'text-anchor': 'middle' }, s.date.slice(5)));
      }
    });
    root.append(svg('polyline', { class: 'cost-line', points: points.map((p) => p.map((n) => n.toFixed(1)).join(',')).join(' ') }));
    if (!series.some((s) => s.calls > 0)) {
      root.append(svg('text', { class: 'empty', x: pad.left + plotW / 2, y: pad.top + plotH / 2, 'text-anchor': 'middle' }, 'No calls in this period.'));
    }
    container.replaceChildren(root);

    // Drawn for this width: redraw when the container's width changes much (a rotated phone, a
    // resized window), so labels keep their size instead of being scaled.
    container.tokenMeterChart = { items, days, width };
    if (!container.tokenMeterResize && typeof ResizeObserver === 'function') {
      container.tokenMeterResize = new ResizeObserver(() => {
        const drawn = container.tokenMeterChart;
        if (drawn && Math.abs(Math.max(300, Math.round(container.clientWidth)) - drawn.width) > 24) {
          drawDailyChart(container, drawn.items, drawn.days);
        }
      });
      container.tokenMeterResize.observe(container);
    }
  }

  window.Portal = Object.freeze({
    fmtInt,
    fmtMoney,
    fmtMoneyShort,
    fmtLimit,
    fmtDate,
    ApiError,
    problemDetail,
    createApi,
    login,
    cell,
    fillTable,
    meter,
    utcDay,
    drawDailyChart,
  });
})();
