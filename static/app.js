// Instagift admin page: plain JavaScript, no build step, no outside files.
// The page talks JSON to /admin/api/… with the session cookie; every change
// carries X-Requested-With, which the server requires. The DOM is built
// from text nodes only (data is never parsed as HTML), so it cannot inject
// markup, and there are no inline handlers (the Content-Security-Policy
// forbids them).
'use strict';

(function () {
  // ---------------------------------------------------------------- DOM

  /** Builds an element: props are attributes, `class`, `text`, `value`,
   *  `checked`, or `on<event>` listeners; children are nodes or strings. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    let value;
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'value') value = v;
      else if (k === 'checked') el.checked = Boolean(v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
    append(el, children);
    if (value !== undefined) el.value = value;
    return el;
  }

  function append(el, ...children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  const $ = (selector, root) => (root || document).querySelector(selector);

  // -------------------------------------------------------------- money

  const MAX_CENTS = 10000000000;
  const SYMBOLS = { USD: '$', CAD: 'CA$', AUD: 'A$', EUR: '€', GBP: '£' };

  /** "1,234.5" or "$40" → cents, by exact string arithmetic (no floats). */
  function parseMoney(text) {
    const t = String(text).trim().replace(/^\$\s*/, '');
    const m = /^(?:(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{0,2}))?|\.(\d{1,2}))$/.exec(t);
    if (!m) throw new Error('Enter an amount like 40.00');
    const whole = (m[1] || '0').replace(/,/g, '').replace(/^0+(?=\d)/, '');
    const frac = (m[2] !== undefined ? m[2] : m[3] || '').padEnd(2, '0');
    if (whole.length > 9) throw new Error('That amount is too large');
    const cents = Number(whole) * 100 + Number(frac);
    if (cents > MAX_CENTS) throw new Error('That amount is too large');
    return cents;
  }

  function groupThousands(n) {
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }

  /** Cents → "$1,234.56" (or "12.50 SEK" for currencies without a symbol). */
  function money(cents, currency) {
    if (cents === null || cents === undefined) return '—';
    const code = currency || 'USD';
    const abs = Math.abs(cents);
    const text = groupThousands(Math.floor(abs / 100)) + '.' + String(abs % 100).padStart(2, '0');
    const shown = SYMBOLS[code] ? SYMBOLS[code] + text : text + ' ' + code;
    return cents < 0 ? '-' + shown : shown;
  }

  /** Cents → the plain form an input shows: 4000 → "40.00". */
  function moneyInput(cents) {
    if (cents === null || cents === undefined) return '';
    return Math.floor(cents / 100) + '.' + String(cents % 100).padStart(2, '0');
  }

  function when(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    return isNaN(d.getTime()) ? iso : d.toLocaleString();
  }

  function day(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    return isNaN(d.getTime()) ? iso : d.toLocaleDateString();
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  /** The errors[] of an answer in words: "Title: details" per problem. */
  function describe(body, status) {
    const errors = body && Array.isArray(body.errors) ? body.errors : [];
    if (errors.length === 0) return 'The server answered ' + status + '.';
    const title = errors[0].title;
    const details = errors.map((e) => e.details || e.title).filter(Boolean);
    return title + ': ' + details.join('; ');
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json', 'X-Requested-With': 'instagift-admin' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch('/admin/api' + path, init);
    } catch (e) {
      throw new ApiError('Could not reach the server. Check the connection and try again.', 0);
    }
    if (res.status === 204) return null;
    let data = null;
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
    if (res.status === 401 && path !== '/session') {
      showLogin('Your session has ended. Log in again.');
      throw new ApiError('Your session has ended. Log in again.', 401);
    }
    if (!res.ok) {
      let message = describe(data, res.status);
      const retry = res.headers.get('Retry-After');
      if (res.status === 429 && retry) message += ' (wait ' + retry + ' s)';
      throw new ApiError(message, res.status);
    }
    return data;
  }

  function qs(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== null && v !== undefined && v !== '') q.set(k, v);
    }
    const s = q.toString();
    return s ? '?' + s : '';
  }

  // -------------------------------------------------------------- flash

  let pendingFlash = null;

  function flash(message, kind) {
    const box = $('#flash');
    box.textContent = message;
    box.className = 'flash' + (kind === 'error' ? ' error' : '');
    box.hidden = false;
    if (kind === 'error') box.scrollIntoView({ block: 'nearest' });
  }

  function clearFlash() {
    const box = $('#flash');
    box.hidden = true;
    box.textContent = '';
  }

  /** Shows `message` after the next navigation has rendered. */
  function flashNext(message) {
    pendingFlash = message;
  }

  /** Runs an action from a button or form: disables it while it runs (no
   *  double submit), shows any error in words. */
  async function act(control, fn) {
    if (control) control.disabled = true;
    try {
      clearFlash();
      await fn();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) flash(e.message || String(e), 'error');
    } finally {
      if (control) control.disabled = false;
    }
  }

  // ------------------------------------------------------------- routes

  function route() {
    const raw = location.hash.replace(/^#\/?/, '');
    const cut = raw.indexOf('?');
    const path = cut < 0 ? raw : raw.slice(0, cut);
    const query = new URLSearchParams(cut < 0 ? '' : raw.slice(cut + 1));
    const parts = path.split('/').filter(Boolean).map((p) => {
      try {
        return decodeURIComponent(p);
      } catch (e) {
        return p;
      }
    });
    return { name: parts[0] || 'dashboard', args: parts.slice(1), query };
  }

  function href(name, args, query) {
    const path = [name].concat((args || []).map(encodeURIComponent)).join('/');
    return '#/' + path + (query ? qs(query) : '');
  }

  function go(name, args, query) {
    const target = href(name, args, query);
    if (location.hash === target) render();
    else location.hash = target;
  }

  function link(text, name, args, query) {
    return h('a', { href: href(name, args, query) }, text);
  }

  // ------------------------------------------------------- small widgets

  function badge(status) {
    return h('span', { class: 'badge ' + status }, status);
  }

  /** A table; `columns` are [title, row → cell, 'num'?]. */
  function table(columns, rows, empty) {
    if (!rows || rows.length === 0) return h('p', { class: 'muted' }, empty || 'Nothing here yet.');
    return h('div', { class: 'table-wrap' },
      h('table', {},
        h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c[2] || null }, c[0])))),
        h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => h('td', { class: c[2] || null }, c[1](r))))))));
  }

  function pager(meta, r) {
    if (!meta) return null;
    const to = (p) => {
      const q = Object.fromEntries(r.query.entries());
      q.page = p;
      return href(r.name, r.args, q);
    };
    return h('div', { class: 'pager' },
      meta.page > 1 ? h('a', { href: to(meta.page - 1) }, '← Previous') : null,
      h('span', { class: 'muted' }, 'Page ' + meta.page + ' of ' + meta.page_count + ' · ' + meta.total_count + ' in all'),
      meta.page < meta.page_count ? h('a', { href: to(meta.page + 1) }, 'Next →') : null);
  }

  function facts(pairs) {
    return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  }

  let fieldSeq = 0;

  /** A form field from a spec: {name, label, type, required, value,
   *  options: [[value, text]], help, placeholder}. Types: text, email, url,
   *  password, date, int, money, select, checkbox, textarea, lines, checks. */
  function field(spec) {
    const id = spec.id || 'f' + ++fieldSeq;
    const type = spec.type || 'text';
    let input;
    if (type === 'select') {
      input = h('select', { id, name: spec.name, required: spec.required },
        (spec.options || []).map(([v, t]) => h('option', { value: v }, t)));
      if (spec.value !== undefined && spec.value !== null) input.value = spec.value;
    } else if (type === 'checkbox') {
      return h('div', {}, h('label', { class: 'check' },
        h('input', { type: 'checkbox', id, name: spec.name, checked: spec.value }), spec.label));
    } else if (type === 'checks') {
      return h('div', { 'data-checks': spec.name },
        h('label', {}, spec.label),
        (spec.options || []).length === 0 ? h('p', { class: 'help' }, spec.empty || 'None yet.') : null,
        (spec.options || []).map(([v, t]) => h('label', { class: 'check' },
          h('input', { type: 'checkbox', name: spec.name, value: v, checked: (spec.value || []).includes(v) }), t)),
        spec.help ? h('div', { class: 'help' }, spec.help) : null);
    } else if (type === 'textarea' || type === 'lines') {
      const v = type === 'lines' && Array.isArray(spec.value) ? spec.value.join('\n') : spec.value;
      input = h('textarea', { id, name: spec.name, required: spec.required, placeholder: spec.placeholder, value: v || '' });
    } else {
      const html = { money: 'text', int: 'number', text: 'text' }[type] || type;
      input = h('input', {
        id,
        name: spec.name,
        type: html,
        required: spec.required,
        placeholder: spec.placeholder || (type === 'money' ? '0.00' : null),
        inputmode: type === 'money' ? 'decimal' : null,
        autocomplete: spec.autocomplete || 'off',
        min: spec.min,
        max: spec.max,
        value: spec.value === null || spec.value === undefined ? '' : String(spec.value),
      });
    }
    return h('div', {}, h('label', { for: id }, spec.label + (spec.required ? ' *' : '')), input,
      spec.help ? h('div', { class: 'help' }, spec.help) : null);
  }

  /** Reads `specs` back from a form: strings trimmed (empty → "" or null
   *  for numbers), money → cents, checkboxes → booleans, lines → arrays. */
  function readForm(form, specs) {
    const out = {};
    for (const spec of specs) {
      const type = spec.type || 'text';
      if (type === 'checks') {
        out[spec.name] = Array.from(form.querySelectorAll('input[name="' + spec.name + '"]'))
          .filter((i) => i.checked).map((i) => i.value);
        continue;
      }
      const el = form.elements[spec.name];
      if (!el) continue;
      if (type === 'checkbox') {
        out[spec.name] = el.checked;
      } else if (type === 'money') {
        const t = el.value.trim();
        if (t === '') out[spec.key || spec.name] = null;
        else {
          try {
            out[spec.key || spec.name] = parseMoney(t);
          } catch (e) {
            throw new Error(spec.label + ': ' + e.message);
          }
        }
      } else if (type === 'int') {
        const t = el.value.trim();
        if (t === '') out[spec.name] = null;
        else if (!/^\d+$/.test(t)) throw new Error(spec.label + ': enter a whole number');
        else out[spec.name] = Number(t);
      } else if (type === 'lines') {
        out[spec.name] = el.value.split('\n').map((s) => s.trim()).filter(Boolean);
      } else {
        out[spec.name] = el.value.trim();
      }
    }
    return out;
  }

  /** Drops empty values (for creates, where absent means default). */
  function compact(obj) {
    const out = {};
    for (const [k, v] of Object.entries(obj)) {
      if (v !== null && v !== '') out[k] = v;
    }
    return out;
  }

  /** A form of `specs`; `onSubmit(values, form)` runs with errors shown. */
  function form(specs, submitText, onSubmit, props) {
    const f = h('form', Object.assign({ class: 'stack', novalidate: true }, props || {}),
      h('div', { class: 'fields two' }, specs.map(field)),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, submitText)));
    f.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const button = f.querySelector('button[type="submit"]');
      act(button, async () => onSubmit(readForm(f, specs), f));
    });
    return f;
  }

  // ------------------------------------------------------ shared lookups

  let merchantCache = null;

  async function merchants() {
    if (!merchantCache) {
      const data = await api('GET', '/merchants?per_page=100');
      merchantCache = data.merchants;
    }
    return merchantCache;
  }

  function merchantName(id) {
    const m = (merchantCache || []).find((x) => x.id === id);
    return m ? m.name : id;
  }

  function merchantOptions(all, anyText) {
    return [['', anyText || 'All merchants']].concat(all.map((m) => [m.id, m.name]));
  }

  const STATUSES = ['pending', 'assigned', 'gifted', 'redeemed', 'cancelled', 'returned'];
  const OPEN = ['pending', 'assigned', 'gifted'];

  /** A filter bar; submitting it rewrites the hash query (page 1). */
  function filters(r, specs) {
    const f = h('form', { class: 'filters no-print' },
      specs.map((s) => field(Object.assign({}, s, { value: r.query.get(s.name) || '' }))),
      h('button', { type: 'submit' }, 'Show'));
    f.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = {};
      for (const s of specs) q[s.name] = f.elements[s.name].value.trim();
      go(r.name, r.args, q);
    });
    return f;
  }

  function listQuery(r, names) {
    const q = { page: r.query.get('page') || 1, per_page: 25 };
    for (const n of names) q[n] = r.query.get(n) || '';
    return qs(q);
  }

  // -------------------------------------------------------------- views

  async function viewDashboard(view) {
    const data = await api('GET', '/dashboard');
    const rows = data.merchant_summaries;
    const meta = data.meta;
    const totals = meta.totals || [];
    append(view,
      h('h1', {}, 'Dashboard'),
      h('div', { class: 'cards' },
        totals.map((t) => h('div', { class: 'card' },
          h('div', { class: 'muted' }, 'Outstanding (' + t.currency + ')'),
          h('div', { class: 'stat', 'data-total-open': t.currency }, money(t.open_face_value_cents, t.currency)),
          h('div', { class: 'small muted' }, 'paid value ' + money(t.open_paid_value_cents, t.currency) + ' · ' + t.open_count + ' open'))),
        h('div', { class: 'card' }, h('div', { class: 'muted' }, 'Open support tickets'),
          h('div', { class: 'stat' }, link(String(meta.open_support_tickets), 'tickets', [], { status: 'open' }))),
        h('div', { class: 'card' }, h('div', { class: 'muted' }, 'Mail waiting / failed'),
          h('div', { class: 'stat' }, link(meta.queued_mail + ' / ' + meta.failed_mail, 'outbox')))),
      h('h2', {}, 'Liability and activity per merchant'),
      table([
        ['Merchant', (x) => link(x.merchant_name, 'merchant', [x.merchant_id])],
        ['Open', (x) => String(x.open_count), 'num'],
        ['Outstanding', (x) => h('span', { 'data-open-face': x.merchant_id }, money(x.open_face_value_cents, x.currency)), 'num'],
        ['Outstanding paid', (x) => money(x.open_paid_value_cents, x.currency), 'num'],
        ['Issued today', (x) => money(x.today.issued_cents, x.currency) + ' (' + x.today.issued_count + ')', 'num'],
        ['Redeemed today', (x) => money(x.today.redeemed_cents, x.currency) + ' (' + x.today.redeemed_count + ')', 'num'],
        ['Issued this month', (x) => money(x.this_month.issued_cents, x.currency), 'num'],
        ['Redeemed this month', (x) => money(x.this_month.redeemed_cents, x.currency), 'num'],
      ], rows, 'No merchants yet: start with Merchants.'),
      h('p', { class: 'small muted' }, 'Today and this month are counted in each merchant\'s time zone. Figures as of ' + when(meta.generated_at) + '.'));
  }

  // Point of sale -------------------------------------------------------

  async function viewPos(view, r) {
    const code = h('input', {
      id: 'pos-code', name: 'code', type: 'text', autocomplete: 'off', autocapitalize: 'characters',
      spellcheck: 'false', placeholder: 'XXXX-XXXX-XXXX-XXXX', required: true, value: r.query.get('code') || '',
    });
    const result = h('div', { id: 'pos-result' });
    const lookup = h('form', { id: 'pos-form', class: 'card stack' },
      h('div', {}, h('label', { for: 'pos-code' }, 'Claim code'), code,
        h('div', { class: 'help' }, 'Type the code or scan it (a barcode scanner types it for you). Dashes and case do not matter.')),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', id: 'pos-lookup' }, 'Look up'),
        'BarcodeDetector' in window && navigator.mediaDevices
          ? h('button', { type: 'button', class: 'secondary', id: 'pos-scan', onclick: () => scan(code, () => lookup.requestSubmit()) }, 'Scan with camera')
          : null));
    lookup.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act(ev.submitter || lookup.querySelector('button[type="submit"]'), async () => showCertificateAtPos(result, code.value.trim()));
    });
    append(view, h('div', { class: 'pos' }, h('h1', {}, 'Point of sale'), lookup, result));
    // Once on the page: look a code from the address up at once, or wait for one.
    return () => {
      if (code.value) lookup.requestSubmit();
      else code.focus();
    };
  }

  async function showCertificateAtPos(result, code) {
    result.textContent = '';
    if (!code) throw new Error('Type or scan a claim code first.');
    const data = await api('GET', '/claim_codes/' + encodeURIComponent(code));
    const c = data.certificates[0];
    const locations = (c.merchant && c.merchant.locations) || [];
    const open = OPEN.includes(c.status);
    const panel = h('div', { class: 'card', id: 'pos-cert' },
      h('div', { class: 'muted' }, c.seller),
      h('h2', {}, c.title, ' ', badge(c.status)),
      h('div', { class: 'value', id: 'pos-value' }, money(c.face_value_cents, c.currency)),
      facts([
        ['Claim code', h('span', { class: 'mono' }, c.claim_code)],
        ['Paid value', money(c.price_cents, c.currency)],
        ['Owner', c.owner_email || 'nobody yet (whoever holds the code)'],
        ['Expires', c.expires_at ? day(c.expires_at) : 'never'],
        c.product && c.product.redemption_instructions ? ['Instructions', c.product.redemption_instructions] : null,
      ]),
      h('div', { class: 'actions' }, link('Details', 'certificate', [c.id])));
    append(result, panel);
    if (!open) {
      append(panel, h('p', { class: 'flash error' }, 'This certificate is ' + c.status + ': there is nothing to redeem.'));
      return;
    }
    const amount = h('input', { id: 'pos-amount', name: 'amount', type: 'text', inputmode: 'decimal', autocomplete: 'off', value: moneyInput(c.face_value_cents), required: true });
    const place = h('select', { id: 'pos-location', name: 'location' },
      locations.length > 1 ? h('option', { value: '' }, 'Choose the location…') : null,
      locations.map((l) => h('option', { value: l.id }, l.display || l.name)));
    const redeemForm = h('form', { class: 'stack', id: 'pos-redeem-form' },
      h('div', { class: 'fields two' },
        h('div', {}, h('label', { for: 'pos-amount' }, 'Amount to redeem (' + c.currency + ')'), amount,
          h('div', { class: 'help' }, c.can_split_value ? 'The rest stays on a new balance certificate.' : 'This certificate can only be redeemed whole.')),
        locations.length > 0 ? h('div', {}, h('label', { for: 'pos-location' }, 'Location'), place) : null),
      h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'pos-redeem' }, 'Redeem')));
    redeemForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act(redeemForm.querySelector('#pos-redeem'), async () => {
        let cents;
        try {
          cents = parseMoney(amount.value);
        } catch (e) {
          throw new Error('Amount: ' + e.message);
        }
        if (cents <= 0) throw new Error('Amount: enter more than zero.');
        const body = { amount_to_redeem_cents: cents };
        if (place.value) body.redemption_location_id = place.value;
        const answer = await api('POST', '/claim_codes/' + encodeURIComponent(c.claim_code) + '/redemptions', body);
        showReceipt(result, c, answer);
      });
    });
    append(panel, redeemForm);
    amount.focus();
    amount.select();
  }

  function showReceipt(result, c, answer) {
    const red = answer.redemptions[0];
    const balance = answer.linked && answer.linked.certificates ? answer.linked.certificates[0] : null;
    result.textContent = '';
    const receipt = h('div', { class: 'card receipt', id: 'pos-receipt' },
      h('h2', {}, 'Redeemed ', h('span', { id: 'pos-redeemed-amount' }, money(red.amount_cents, c.currency))),
      h('p', { class: 'muted' }, c.title + ' · ' + c.claim_code + ' · ' + when(red.created_at)));
    if (balance) {
      append(receipt,
        h('h3', {}, 'Balance certificate'),
        h('div', { class: 'value', id: 'pos-balance-amount' }, money(balance.face_value_cents, balance.currency)),
        facts([['Claim code', h('span', { class: 'mono code', id: 'pos-balance-code' }, balance.claim_code)]]),
        h('img', { class: 'qr', src: qrSrc(balance.claim_code), alt: 'QR code of ' + balance.claim_code, width: 160, height: 160 }),
        h('div', { class: 'actions' },
          h('a', { class: 'button', id: 'pos-print-balance', href: href('print', [balance.id]) }, 'Print balance certificate')));
    } else {
      append(receipt, h('p', {}, 'Nothing is left on this certificate.'));
    }
    append(receipt, h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'secondary', id: 'pos-next', onclick: () => go('pos') }, 'Next customer')));
    append(result, receipt);
  }

  function qrSrc(code) {
    return '/v2/claim_codes/' + encodeURIComponent(code) + '/qrcode';
  }

  /** Reads a QR code with the camera where the browser can (BarcodeDetector). */
  async function scan(input, done) {
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
    } catch (e) {
      flash('The camera is not available: ' + (e.message || e), 'error');
      return;
    }
    const detector = new window.BarcodeDetector({ formats: ['qr_code'] });
    const video = h('video', { playsinline: true, muted: true });
    video.srcObject = stream;
    let running = true;
    const stop = () => {
      running = false;
      stream.getTracks().forEach((t) => t.stop());
      box.remove();
    };
    const box = h('div', { class: 'card scanner' }, video,
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: stop }, 'Stop camera')));
    $('#pos-form').after(box);
    await video.play();
    const tick = async () => {
      if (!running) return;
      try {
        const found = await detector.detect(video);
        if (found.length > 0) {
          input.value = found[0].rawValue;
          stop();
          done();
          return;
        }
      } catch (e) {
        // A frame that cannot be read yet: try the next one.
      }
      setTimeout(tick, 250);
    };
    tick();
  }

  // Certificates ---------------------------------------------------------

  async function viewCertificates(view, r) {
    const all = await merchants();
    const data = await api('GET', '/certificates' + listQuery(r, ['merchant_id', 'status', 'q', 'user_id']));
    append(view,
      h('h1', {}, 'Certificates'),
      filters(r, [
        { name: 'merchant_id', label: 'Merchant', type: 'select', options: merchantOptions(all) },
        { name: 'status', label: 'Status', type: 'select', options: [['', 'Any status']].concat(STATUSES.map((s) => [s, s])) },
        { name: 'q', label: 'Claim code or owner email', type: 'search' },
      ]),
      r.query.get('user_id') ? h('p', {}, 'Showing one user\'s certificates. ', link('Show all', 'certificates')) : null,
      certificateTable(data.certificates),
      pager(data.meta, r),
      h('p', {}, h('a', {
        href: '/admin/api/exports/certificates.csv' + qs({ merchant_id: r.query.get('merchant_id'), status: r.query.get('status') }),
        download: true,
      }, 'Download these as CSV')));
  }

  function certificateTable(rows, empty) {
    return table([
      ['Claim code', (c) => h('a', { href: href('certificate', [c.id]), class: 'mono' }, c.claim_code)],
      ['Certificate', (c) => c.title],
      ['Status', (c) => badge(c.status)],
      ['Value', (c) => money(c.face_value_cents, c.currency), 'num'],
      ['Paid', (c) => money(c.price_cents, c.currency), 'num'],
      ['Owner', (c) => c.owner_email || '—'],
      ['Issued', (c) => day(c.created_at)],
    ], rows, empty || 'No certificates match.');
  }

  async function viewCertificate(view, r) {
    const id = r.args[0];
    const data = await api('GET', '/certificates/' + encodeURIComponent(id));
    const c = data.certificates[0];
    const linked = data.linked || {};
    const open = OPEN.includes(c.status);
    const voidIt = (kind, question) => (ev) => {
      if (!window.confirm(question)) return;
      act(ev.target, async () => {
        await api('POST', '/certificates/' + encodeURIComponent(c.id) + '/' + kind, {});
        flashNext(kind === 'cancellations' ? 'The certificate was cancelled.' : 'The certificate was returned to the customer.');
        go('certificate', [c.id]);
      });
    };
    append(view,
      h('div', { class: 'muted' }, c.seller),
      h('h1', {}, c.title, ' ', badge(c.status)),
      h('div', { class: 'actions no-print' },
        h('a', { class: 'button', href: href('print', [c.id]) }, 'Printable certificate'),
        open ? h('a', { class: 'button secondary', href: href('pos', [], { code: c.claim_code }) }, 'Redeem at point of sale') : null,
        open ? h('button', { type: 'button', class: 'danger', id: 'cert-cancel', onclick: voidIt('cancellations', 'Cancel (void) this certificate? Its whole open value is taken out.') }, 'Cancel certificate') : null,
        open ? h('button', { type: 'button', class: 'danger', id: 'cert-return', onclick: voidIt('returns', 'Return this certificate (refund it to the customer)?') }, 'Return (refund)') : null),
      h('div', { class: 'card' }, facts([
        ['Claim code', h('span', { class: 'mono' }, c.claim_code)],
        ['Value', money(c.face_value_cents, c.currency)],
        ['Paid value', money(c.price_cents, c.currency)],
        ['Owner', c.owner_email ? link(c.owner_email, 'certificates', [], { user_id: c.links.user }) : '—'],
        ['Merchant', link(c.seller, 'merchant', [c.links.merchant])],
        ['Product', c.product ? c.product.tagline + ' (' + c.product_type + ')' : c.product_type],
        ['Can be split', c.can_split_value ? 'yes' : 'no'],
        ['Expires', c.expires_at ? when(c.expires_at) : 'never'],
        ['Parent', c.parent_id ? link('the certificate it came from', 'certificate', [c.parent_id]) : '—'],
        ['Issued', when(c.created_at)],
        ['Updated', when(c.updated_at)],
      ])),
      h('h2', {}, 'Ledger history'),
      table([
        ['#', (e) => String(e.seq), 'num'],
        ['When', (e) => when(e.created_at)],
        ['Kind', (e) => e.kind],
        ['Value', (e) => money(e.face_delta_cents, c.currency), 'num'],
        ['Paid value', (e) => money(e.paid_delta_cents, c.currency), 'num'],
      ], linked.ledger_entries),
      h('h2', {}, 'Redemptions'),
      redemptionTable(linked.redemptions, c.currency),
      h('h2', {}, 'Certificates made from it'),
      certificateTable(linked.certificates, 'None: balances, splits and reversals would show here.'),
      h('h2', {}, 'Gifts'),
      giftTable(linked.gifts));
  }

  function redemptionTable(rows, currency) {
    const reverse = (x) => (ev) => {
      if (!window.confirm('Reverse this redemption? Its value comes back as a new certificate.')) return;
      act(ev.target, async () => {
        const answer = await api('POST', '/redemptions/' + encodeURIComponent(x.id) + '/reversals', {});
        const back = answer.linked.certificates[0];
        flashNext('Reversed: ' + money(back.face_value_cents, back.currency) + ' is back on certificate ' + back.claim_code + '.');
        go('certificate', [back.id]);
      });
    };
    return table([
      ['When', (x) => when(x.created_at)],
      ['Amount', (x) => money(x.amount_cents, currency), 'num'],
      ['Paid value', (x) => money(x.amount_paid_cents, currency), 'num'],
      ['Merchant', (x) => merchantName(x.links.merchant)],
      ['Source', (x) => x.source],
      ['Certificate', (x) => link('redeemed', 'certificate', [x.links.certificate])],
      ['Balance', (x) => (x.links.balance_certificate ? link('balance', 'certificate', [x.links.balance_certificate]) : '—')],
      ['Reversed', (x) => (x.reversed_at
        ? h('span', {}, when(x.reversed_at), ' ', x.links.reversal_certificate ? link('(new certificate)', 'certificate', [x.links.reversal_certificate]) : null)
        : h('button', { type: 'button', class: 'small secondary', onclick: reverse(x) }, 'Reverse'))],
    ], rows, 'No redemptions.');
  }

  function giftTable(rows) {
    return table([
      ['Created', (g) => day(g.created_at)],
      ['From', (g) => g.sender_name],
      ['To', (g) => (g.recipient_name ? g.recipient_name + ' <' + g.recipient_email + '>' : g.recipient_email)],
      ['Send date', (g) => g.send_date || 'at once'],
      ['Claimed', (g) => (g.claimed_at ? when(g.claimed_at) : '—')],
      ['Cancelled', (g) => (g.cancelled_at ? when(g.cancelled_at) : '—')],
      ['Mail', (g) => g.attempts + ' attempts, ' + g.failure_count + ' failed' + (g.last_sent_at ? ', sent ' + when(g.last_sent_at) : '')],
      ['Certificate', (g) => link('open', 'certificate', [g.links.certificate])],
    ], rows, 'No gifts.');
  }

  async function viewPrint(view, r) {
    const ids = (r.args[0] || '').split(',').filter(Boolean);
    if (ids.length === 0) throw new Error('No certificate to print.');
    const certs = [];
    for (const id of ids) {
      const data = await api('GET', '/certificates/' + encodeURIComponent(id));
      certs.push(data.certificates[0]);
    }
    append(view,
      h('div', { class: 'actions no-print' },
        h('button', { type: 'button', id: 'print-now', onclick: () => window.print() }, certs.length > 1 ? 'Print ' + certs.length + ' certificates' : 'Print'),
        ids.length === 1 ? link('Back to the certificate', 'certificate', [ids[0]]) : null),
      certs.map(printCard));
  }

  function printCard(c) {
    const p = c.product || {};
    const terms = (p.terms || []).filter(Boolean);
    return h('article', { class: 'cert-card' },
      h('div', {},
        h('div', { class: 'seller' }, c.seller),
        h('div', { class: 'amount' }, money(c.face_value_cents, c.currency)),
        h('div', {}, p.headline || p.tagline || c.title)),
      h('img', { class: 'qr', src: qrSrc(c.claim_code), alt: 'QR code of ' + c.claim_code, width: 160, height: 160 }),
      h('div', {}, h('div', { class: 'muted small' }, 'Claim code'), h('div', { class: 'code mono' }, c.claim_code)),
      h('div', { class: 'small' }, c.expires_at ? 'Valid until ' + day(c.expires_at) : 'No expiry date'),
      h('div', { class: 'terms' },
        p.redemption_instructions ? h('p', {}, p.redemption_instructions) : null,
        terms.length ? h('ul', {}, terms.map((t) => h('li', {}, t))) : null,
        h('div', {}, 'Status when printed: ' + c.status)));
  }

  // Issue ------------------------------------------------------------------

  async function viewIssue(view, r) {
    const all = await merchants();
    if (all.length === 0) {
      append(view, h('h1', {}, 'Issue certificates'), h('p', {}, 'Create a merchant with a product and an option first: ', link('Merchants', 'merchants')));
      return;
    }
    const chosen = r.query.get('merchant_id') || all[0].id;
    const products = (await api('GET', '/merchants/' + encodeURIComponent(chosen) + '/products?per_page=100')).products;
    const options = [];
    for (const p of products) {
      for (const o of p.product_options || []) {
        options.push([o.id, p.tagline + ' — ' + money(o.face_value_cents, o.currency) + ' (sold for ' + money(o.price_cents, o.currency) + ')' + (o.count === null ? '' : ', ' + o.count + ' left')]);
      }
    }
    const merchantSelect = field({ name: 'merchant_id', id: 'issue-merchant', label: 'Merchant', type: 'select', options: merchantOptions(all, null).slice(1), value: chosen });
    $('select', merchantSelect).addEventListener('change', (ev) => go('issue', [], { merchant_id: ev.target.value }));
    const specs = [
      { name: 'product_option_id', id: 'issue-option', label: 'Product option', type: 'select', required: true, options },
      { name: 'quantity', id: 'issue-quantity', label: 'How many', type: 'int', value: 1, min: 1, max: 100, help: '1 to 100 at once' },
      { name: 'recipient_email', id: 'issue-email', label: 'Send to email (optional)', type: 'email', help: 'A registered customer gets it in their account; anyone else gets a gift email. Empty: print it at the counter.' },
      { name: 'price', key: 'price_cents', id: 'issue-price', label: 'Price paid (optional)', type: 'money', help: 'Empty: the option\'s price' },
      { name: 'expires_on', id: 'issue-expires', label: 'Valid until (optional)', type: 'date', help: 'To the end of that day, in the merchant\'s time zone' },
    ];
    const result = h('div', { id: 'issue-result' });
    append(view, h('h1', {}, 'Issue certificates'), h('div', { class: 'card' }, merchantSelect,
      options.length === 0
        ? h('p', {}, 'This merchant has no product options yet: ', link('add one', 'merchant', [chosen]))
        : form(specs, 'Issue', async (values) => {
          const answer = await api('POST', '/certificates', { certificate: compact(values) });
          const issued = answer.certificates;
          result.textContent = '';
          append(result,
            h('h2', {}, 'Issued ' + issued.length + (issued.length === 1 ? ' certificate' : ' certificates')),
            h('div', { class: 'actions' }, h('a', { class: 'button', id: 'issue-print', href: href('print', [issued.map((c) => c.id).join(',')]) }, 'Print ' + (issued.length === 1 ? 'it' : 'them'))),
            certificateTable(issued));
        }, { id: 'issue-form' })),
    result);
  }

  // Merchants ----------------------------------------------------------------

  const TIME_ZONE = (() => {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    } catch (e) {
      return 'UTC';
    }
  })();

  function merchantSpecs(m) {
    return [
      { name: 'name', id: m ? 'merchant-edit-name' : 'merchant-name', label: 'Shop name', required: true, value: m && m.name },
      { name: 'time_zone', id: m ? 'merchant-edit-tz' : 'merchant-tz', label: 'Time zone', value: m ? m.time_zone : TIME_ZONE, help: 'IANA name, e.g. America/New_York' },
      { name: 'url', label: 'Website', type: 'url', value: m && m.url },
      { name: 'logo', label: 'Logo URL', type: 'url', value: m && m.logo },
    ];
  }

  async function viewMerchants(view, r) {
    const data = await api('GET', '/merchants' + listQuery(r, ['q']));
    append(view,
      h('h1', {}, 'Merchants'),
      filters(r, [{ name: 'q', label: 'Name', type: 'search' }]),
      table([
        ['Name', (m) => link(m.name, 'merchant', [m.id])],
        ['Time zone', (m) => m.time_zone],
        ['Locations', (m) => String(m.links.locations.length), 'num'],
        ['Since', (m) => day(m.created_at)],
      ], data.merchants, 'No merchants yet.'),
      pager(data.meta, r),
      h('h2', {}, 'New merchant'),
      h('div', { class: 'card' }, form(merchantSpecs(null), 'Create merchant', async (values) => {
        const answer = await api('POST', '/merchants', { merchant: compact(values) });
        merchantCache = null;
        const m = answer.merchants[0];
        flashNext('Merchant ' + m.name + ' created. Add its locations, products and options below.');
        go('merchant', [m.id]);
      }, { id: 'merchant-create' })));
  }

  const PRODUCT_TYPES = [['GiftCertificate', 'Gift certificate'], ['Deal', 'Deal'], ['Event', 'Event']];

  function locationSpecs(l, prefix) {
    return [
      { name: 'name', id: prefix + '-name', label: 'Name', value: l && l.name },
      { name: 'phone', id: prefix + '-phone', label: 'Phone', value: l && l.phone },
      { name: 'address1', id: prefix + '-address1', label: 'Address', required: true, value: l && l.address1 },
      { name: 'address2', id: prefix + '-address2', label: 'Address line 2', value: l && l.address2 },
      { name: 'city', id: prefix + '-city', label: 'City', required: true, value: l && l.city },
      { name: 'state', id: prefix + '-state', label: 'State', value: l && l.state },
      { name: 'zip', id: prefix + '-zip', label: 'ZIP', value: l && l.zip },
    ];
  }

  function productSpecs(p, locations, prefix) {
    return [
      { name: 'type', id: prefix + '-type', label: 'Type', type: 'select', options: PRODUCT_TYPES, value: p ? p.type : 'GiftCertificate' },
      { name: 'tagline', id: prefix + '-tagline', label: 'Tagline', required: true, value: p && p.tagline, placeholder: 'Dinner for two' },
      { name: 'headline', id: prefix + '-headline', label: 'Headline', value: p && p.headline },
      { name: 'redemption_instructions', label: 'Redemption instructions', type: 'textarea', value: p && p.redemption_instructions },
      { name: 'terms', label: 'Terms (one per line)', type: 'lines', value: p ? p.terms : [] },
      { name: 'can_split_value', label: 'Can be spent in parts (a balance certificate keeps the rest)', type: 'checkbox', value: p ? p.can_split_value : true },
      { name: 'is_print_only', label: 'Print only (customers cannot redeem it in the app)', type: 'checkbox', value: p && p.is_print_only },
      { name: 'is_giveaway', label: 'Giveaway', type: 'checkbox', value: p && p.is_giveaway },
      {
        name: 'redemption_location_ids', label: 'Redeemable at', type: 'checks',
        options: locations.map((l) => [l.id, l.display || l.name]),
        value: p ? p.links.redemption_locations : locations.map((l) => l.id),
        empty: 'No locations yet: add one above first.',
      },
    ];
  }

  function optionSpecs(o, prefix) {
    return [
      { name: 'face_value', key: 'face_value_cents', id: prefix + '-face', label: 'Face value', type: 'money', required: true, value: o ? moneyInput(o.face_value_cents) : '' },
      { name: 'price', key: 'price_cents', id: prefix + '-price', label: 'Price', type: 'money', required: true, value: o ? moneyInput(o.price_cents) : '', help: 'What the customer pays; at most the face value' },
      { name: 'currency', id: prefix + '-currency', label: 'Currency', value: o ? o.currency : 'USD' },
      { name: 'tagline', id: prefix + '-tagline', label: 'Tagline', value: o && o.tagline },
      { name: 'count', id: prefix + '-count', label: 'Stock', type: 'int', value: o ? o.count : '', help: 'Empty: unlimited' },
      { name: 'limit_per_order', label: 'Limit per order', type: 'int', value: o ? o.limit_per_order : '' },
    ];
  }

  /** A toggled edit form under `anchor`. */
  function editToggle(text, build) {
    const holder = h('div', {});
    const button = h('button', {
      type: 'button', class: 'small secondary', onclick: () => {
        if (holder.firstChild) holder.textContent = '';
        else holder.append(build());
      },
    }, text);
    return [button, holder];
  }

  async function viewMerchant(view, r) {
    const id = r.args[0];
    const path = '/merchants/' + encodeURIComponent(id);
    const [m, keys, locs, prods] = await Promise.all([
      api('GET', path).then((d) => d.merchants[0]),
      api('GET', path + '/keys').then((d) => d.merchant_keys),
      api('GET', path + '/locations?per_page=100').then((d) => d.locations),
      api('GET', path + '/products?per_page=100').then((d) => d.products),
    ]);
    const reload = (message) => {
      if (message) flashNext(message);
      merchantCache = null;
      go('merchant', [id]);
    };
    const secretBox = h('div', {});
    const [editButton, editHolder] = editToggle('Edit details', () => form(merchantSpecs(m), 'Save', async (values) => {
      await api('PUT', path, { merchant: values });
      reload('Saved.');
    }));
    append(view,
      h('h1', {}, m.name),
      h('div', { class: 'actions' }, editButton,
        link('Certificates', 'certificates', [], { merchant_id: id }),
        link('Issue certificates', 'issue', [], { merchant_id: id })),
      editHolder,
      h('div', { class: 'card' }, facts([
        ['Time zone', m.time_zone], ['Website', m.url || '—'], ['Merchant id', h('span', { class: 'mono' }, m.id)],
      ])),

      h('h2', {}, 'API keys'),
      h('p', { class: 'small muted' }, 'For the merchant\'s till or web shop (X-Merchant-Key and X-Merchant-Secret).'),
      h('div', { class: 'actions' }, h('button', {
        type: 'button', id: 'key-create', onclick: (ev) => act(ev.target, async () => {
          const k = (await api('POST', path + '/keys', {})).merchant_keys[0];
          secretBox.textContent = '';
          append(secretBox, h('div', { class: 'secret', id: 'key-secret' },
            h('strong', {}, 'Copy the secret now: it is stored only as a digest and will not be shown again.'),
            facts([['Key', h('span', { class: 'mono' }, k.key)], ['Secret', h('span', { class: 'mono', id: 'key-secret-value' }, k.secret)]])));
          keyList.replaceWith(keyList = keyTable((await api('GET', path + '/keys')).merchant_keys));
        }),
      }, 'Generate API key')),
      secretBox);
    const keyTable = (rows) => table([
      ['Key', (k) => h('span', { class: 'mono' }, k.key)],
      ['Created', (k) => when(k.created_at)],
      ['Status', (k) => (k.revoked_at ? 'revoked ' + when(k.revoked_at) : h('button', {
        type: 'button', class: 'small danger', onclick: (ev) => {
          if (!window.confirm('Revoke key ' + k.key + '? Tills using it stop working at once.')) return;
          act(ev.target, async () => {
            await api('DELETE', path + '/keys/' + encodeURIComponent(k.key));
            reload('Key revoked.');
          });
        },
      }, 'Revoke'))],
    ], rows, 'No API keys.');
    let keyList = keyTable(keys);
    append(view, keyList);

    append(view,
      h('h2', {}, 'Locations'),
      table([
        ['Location', (l) => l.display],
        ['Phone', (l) => l.phone || '—'],
        ['', (l) => editToggle('Edit', () => form(locationSpecs(l, 'location-edit'), 'Save location', async (values) => {
          await api('PUT', '/locations/' + encodeURIComponent(l.id), { location: values });
          reload('Location saved.');
        }))],
      ], locs, 'No locations yet.'),
      h('div', { class: 'card' }, h('h3', {}, 'Add a location'),
        form(locationSpecs(null, 'location'), 'Add location', async (values) => {
          await api('POST', path + '/locations', { location: compact(values) });
          reload('Location added.');
        }, { id: 'location-create' })),

      h('h2', {}, 'Products and options'),
      prods.length === 0 ? h('p', { class: 'muted' }, 'No products yet.') : null,
      prods.map((p, i) => h('div', { class: 'card product-card' },
        h('h3', {}, p.tagline, ' ', h('span', { class: 'badge' }, p.type)),
        p.headline ? h('p', {}, p.headline) : null,
        h('p', { class: 'small muted' },
          (p.can_split_value ? 'Can be spent in parts' : 'Redeemed whole') + (p.is_print_only ? ' · print only' : '') +
          ' · redeemable at ' + (p.links.redemption_locations.length || 'no') + ' location(s)'),
        editToggle('Edit product', () => form(productSpecs(p, locs, 'product-edit-' + i), 'Save product', async (values) => {
          await api('PUT', '/products/' + encodeURIComponent(p.id), { product: values });
          reload('Product saved.');
        })),
        table([
          ['Face value', (o) => money(o.face_value_cents, o.currency), 'num'],
          ['Price', (o) => money(o.price_cents, o.currency), 'num'],
          ['Tagline', (o) => o.tagline || '—'],
          ['Stock', (o) => (o.count === null ? 'unlimited' : String(o.count)), 'num'],
          ['', (o) => editToggle('Edit', () => form(optionSpecs(o, 'option-edit'), 'Save option', async (values) => {
            await api('PUT', '/product_options/' + encodeURIComponent(o.id), { product_option: values });
            reload('Option saved.');
          }))],
        ], p.product_options, 'No options yet: add one so certificates can be issued.'),
        h('h3', {}, 'Add an option'),
        form(optionSpecs(null, 'option-' + i), 'Add option', async (values) => {
          await api('POST', '/products/' + encodeURIComponent(p.id) + '/product_options', { product_option: compact(values) });
          reload('Option added.');
        }, { class: 'stack option-create' }))),
      h('div', { class: 'card' }, h('h3', {}, 'Add a product'),
        form(productSpecs(null, locs, 'product'), 'Add product', async (values) => {
          await api('POST', path + '/products', { product: compact(values) });
          reload('Product added.');
        }, { id: 'product-create' })));
  }

  // Lists ------------------------------------------------------------------

  async function viewRedemptions(view, r) {
    const all = await merchants();
    const data = await api('GET', '/redemptions' + listQuery(r, ['merchant_id']));
    append(view,
      h('h1', {}, 'Redemptions'),
      filters(r, [{ name: 'merchant_id', label: 'Merchant', type: 'select', options: merchantOptions(all) }]),
      redemptionTable(data.redemptions),
      pager(data.meta, r),
      h('p', {}, h('a', { href: '/admin/api/exports/redemptions.csv' + qs({ merchant_id: r.query.get('merchant_id') }), download: true }, 'Download as CSV')));
  }

  async function viewUsers(view, r) {
    const data = await api('GET', '/users' + listQuery(r, ['q']));
    append(view,
      h('h1', {}, 'Users'),
      filters(r, [{ name: 'q', label: 'Email or name', type: 'search' }]),
      table([
        ['Name', (u) => u.name || '—'],
        ['Email', (u) => u.email],
        ['Certificates', (u) => link(String(u.certificates_count), 'certificates', [], { user_id: u.id }), 'num'],
        ['Last login', (u) => when(u.last_login_at)],
        ['Joined', (u) => day(u.created_at)],
      ], data.users, 'No users.'),
      pager(data.meta, r));
  }

  async function viewGifts(view, r) {
    const all = await merchants();
    const data = await api('GET', '/gifts' + listQuery(r, ['merchant_id']));
    append(view,
      h('h1', {}, 'Gifts'),
      filters(r, [{ name: 'merchant_id', label: 'Merchant', type: 'select', options: merchantOptions(all) }]),
      giftTable(data.gifts),
      pager(data.meta, r));
  }

  async function viewTickets(view, r) {
    const status = r.query.get('status') || 'open';
    const data = await api('GET', '/support_tickets' + qs({ page: r.query.get('page') || 1, per_page: 25, status: status === 'all' ? '' : status }));
    const setStatus = (t, status) => (ev) => act(ev.target, async () => {
      await api('PUT', '/support_tickets/' + encodeURIComponent(t.id), { support_ticket: { status } });
      flashNext(status === 'closed' ? 'Ticket closed.' : 'Ticket reopened.');
      go('tickets', [], Object.fromEntries(r.query.entries()));
    });
    append(view,
      h('h1', {}, 'Support tickets'),
      filters(r, [{ name: 'status', label: 'Status', type: 'select', options: [['open', 'Open'], ['closed', 'Closed'], ['all', 'All']] }]),
      data.support_tickets.length === 0 ? h('p', { class: 'muted' }, 'No tickets.') : null,
      data.support_tickets.map((t) => h('div', { class: 'card' },
        h('div', {}, h('strong', {}, t.name), ' · ', h('a', { href: 'mailto:' + t.email }, t.email), ' · ', h('span', { class: 'muted' }, when(t.created_at)), ' ', badge(t.status)),
        h('p', { class: 'message' }, t.message),
        h('div', { class: 'actions' }, t.status === 'open'
          ? h('button', { type: 'button', class: 'small', onclick: setStatus(t, 'closed') }, 'Close')
          : h('button', { type: 'button', class: 'small secondary', onclick: setStatus(t, 'open') }, 'Reopen')))),
      pager(data.meta, r));
  }

  async function viewOutbox(view, r) {
    const data = await api('GET', '/outbox' + listQuery(r, ['status', 'kind']));
    const resend = (m) => (ev) => act(ev.target, async () => {
      await api('POST', '/outbox/' + encodeURIComponent(m.id) + '/resend', {});
      flashNext('Queued again: it goes out with the next delivery round.');
      go('outbox', [], Object.fromEntries(r.query.entries()));
    });
    append(view,
      h('h1', {}, 'Mail outbox'),
      h('p', { class: 'small muted' }, 'Every email the shop sends waits here until it is delivered. Without an SMTP server configured it stays queued, and you can read it here.'),
      filters(r, [
        { name: 'status', label: 'Status', type: 'select', options: [['', 'Any status'], ['queued', 'Queued'], ['sent', 'Sent'], ['failed', 'Failed'], ['cancelled', 'Withdrawn']] },
        { name: 'kind', label: 'Kind', type: 'select', options: [['', 'Any kind'], ['gift', 'Gift'], ['password_reset', 'Password reset'], ['support_ticket', 'Support ticket']] },
      ]),
      table([
        ['Created', (m) => when(m.created_at)],
        ['To', (m) => m.to],
        ['Email', (m) => h('details', {}, h('summary', {}, m.subject), h('pre', { class: 'mail' }, m.body_text))],
        ['Status', (m) => badge(m.status)],
        ['Attempts', (m) => m.attempts + (m.failure_count ? ' (' + m.failure_count + ' failed)' : ''), 'num'],
        ['Last error', (m) => m.last_error || '—'],
        ['', (m) => (m.status === 'cancelled' ? '—' : h('button', { type: 'button', class: 'small secondary', onclick: resend(m) }, m.status === 'sent' ? 'Send again' : 'Send now'))],
      ], data.outbox_messages, 'No mail.'),
      pager(data.meta, r));
  }

  async function viewExports(view) {
    const all = await merchants();
    const merchant = field({ name: 'merchant_id', id: 'export-merchant', label: 'Merchant', type: 'select', options: merchantOptions(all) });
    const status = field({ name: 'status', id: 'export-status', label: 'Certificate status', type: 'select', options: [['', 'Any status']].concat(STATUSES.map((s) => [s, s])) });
    const certLink = h('a', { class: 'button', id: 'export-certificates', download: true }, 'Certificates (CSV)');
    const redLink = h('a', { class: 'button', id: 'export-redemptions', download: true }, 'Redemptions (CSV)');
    const update = () => {
      const m = $('select', merchant).value;
      certLink.href = '/admin/api/exports/certificates.csv' + qs({ merchant_id: m, status: $('select', status).value });
      redLink.href = '/admin/api/exports/redemptions.csv' + qs({ merchant_id: m });
    };
    merchant.addEventListener('change', update);
    status.addEventListener('change', update);
    update();
    append(view,
      h('h1', {}, 'Export and backup'),
      h('div', { class: 'card' }, h('h2', {}, 'CSV for spreadsheets'),
        h('div', { class: 'fields two' }, merchant, status),
        h('div', { class: 'actions' }, certLink, redLink),
        h('p', { class: 'small muted' }, 'Amounts come both as decimals (40.00) and in cents (4000).')),
      h('div', { class: 'card' }, h('h2', {}, 'Backup'),
        h('p', {}, 'A consistent copy of the whole database as one SQLite file, taken while the shop keeps running. Keep it somewhere safe: it holds every record.'),
        h('div', { class: 'actions' }, h('a', { class: 'button', id: 'backup-link', href: '/admin/api/backup', download: true }, 'Download backup'))));
  }

  // ------------------------------------------------------------ frame

  const VIEWS = {
    dashboard: viewDashboard,
    pos: viewPos,
    certificates: viewCertificates,
    certificate: viewCertificate,
    print: viewPrint,
    issue: viewIssue,
    merchants: viewMerchants,
    merchant: viewMerchant,
    redemptions: viewRedemptions,
    users: viewUsers,
    gifts: viewGifts,
    tickets: viewTickets,
    outbox: viewOutbox,
    exports: viewExports,
  };

  // The nav entry a view belongs to.
  const SECTION = { certificate: 'certificates', print: 'certificates', merchant: 'merchants' };

  let loggedIn = false;
  let renderSeq = 0;

  async function render() {
    if (!loggedIn) return;
    const r = route();
    const viewFn = VIEWS[r.name] || viewDashboard;
    const seq = ++renderSeq;
    const section = SECTION[r.name] || r.name;
    document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('active', a.getAttribute('href') === '#/' + section));
    const fresh = h('main', { id: 'view' });
    const message = pendingFlash;
    pendingFlash = null;
    clearFlash();
    let after = null;
    try {
      after = await viewFn(fresh, r);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
      append(fresh, h('p', { class: 'muted' }, 'This page could not be shown.'));
      flash(e.message || String(e), 'error');
    }
    if (seq !== renderSeq || !loggedIn) return;
    $('#view').replaceWith(fresh);
    if (message) flash(message);
    if (typeof after === 'function') after();
    document.title = (fresh.querySelector('h1') ? fresh.querySelector('h1').textContent + ' · ' : '') + 'Instagift admin';
  }

  function showLogin(message) {
    loggedIn = false;
    merchantCache = null;
    $('#top').hidden = true;
    const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const f = h('form', { id: 'login-form', class: 'card stack' },
      h('h1', {}, 'Instagift admin'),
      h('div', {}, h('label', { for: 'login-password' }, 'Operator password'), password,
        h('div', { class: 'help' }, 'Printed when the server first started; set it with: instagift admin set-password')),
      h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'login-submit' }, 'Log in')));
    f.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act($('#login-submit'), async () => {
        await api('POST', '/session', { password: password.value });
        password.value = '';
        await enter();
      });
    });
    const fresh = h('main', { id: 'view' }, f);
    $('#view').replaceWith(fresh);
    if (message) flash(message, 'error');
    else clearFlash();
    password.focus();
  }

  async function enter() {
    loggedIn = true;
    $('#top').hidden = false;
    await render();
  }

  async function start() {
    $('#logout').addEventListener('click', (ev) => act(ev.target, async () => {
      await api('DELETE', '/session');
      showLogin();
    }));
    window.addEventListener('hashchange', render);
    try {
      const data = await api('GET', '/session');
      if (data.sessions[0].authenticated) await enter();
      else showLogin();
    } catch (e) {
      showLogin();
      flash(e.message || String(e), 'error');
    }
  }

  // Exposed for the browser test's checks of money handling.
  window.instagiftAdmin = { parseMoney, money };

  start();
})();
