// Enrol fingerprints of a source record: pick the reader and the finger on a
// hand diagram, then three impressions with live prompts (place, lift,
// retry and why), the stored image and its quality, and a warning when the
// finger already belongs to someone else (the appliance's 1:N before storing).

import { api, ApiError } from '../api.js';
import { h, s, clear } from '../dom.js';
import { t, fmtNumber } from '../i18n.js';
import { nameOf, goldenOf } from '../fhir.js';
import { readers, readerSelect, withLiveStatus, imageOf, reasonText } from '../reader.js';

// Fingers as seen with the palms down: left hand (6-10) on the left, thumbs towards the middle.
const LEFT = [
  { pos: 10, x: 18, y: 62, rx: 11, ry: 26 },
  { pos: 9, x: 44, y: 36, rx: 12, ry: 31 },
  { pos: 8, x: 72, y: 26, rx: 12, ry: 34 },
  { pos: 7, x: 100, y: 34, rx: 12, ry: 32 },
  { pos: 6, x: 138, y: 104, rx: 13, ry: 24 },
];
const RIGHT = LEFT.map((f) => ({ ...f, pos: f.pos - 5, x: 230 - f.x }));

function hand(fingers, palmX, label, state, choose) {
  const svg = s('svg', { viewBox: '0 0 230 190', role: 'group', 'aria-label': label });
  svg.append(s('rect', { class: 'palm', x: palmX, y: 84, width: 110, height: 96, rx: 24 }));
  for (const f of fingers) {
    const name = t(`finger.${f.pos}`);
    const enrolled = state.enrolled.has(f.pos);
    const el = s('ellipse', {
      class: `finger${enrolled ? ' enrolled' : ''}`, cx: f.x, cy: f.y, rx: f.rx, ry: f.ry, tabindex: 0, role: 'button',
      'aria-pressed': String(state.position === f.pos), 'aria-label': enrolled ? `${name} (${t('enrol.enrolled')})` : name,
      'data-position': f.pos,
    });
    el.append(s('title', {}, document.createTextNode(name)));
    el.addEventListener('click', () => choose(f.pos));
    el.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        choose(f.pos);
      }
    });
    svg.append(el);
  }
  return svg;
}

export async function render(main, ctx, recordId) {
  const p = await api(`/fhir/Patient/${recordId}`);
  const golden = goldenOf(p);
  if (!golden) throw new ApiError(400, t('enrol.not_source'));
  const state = { position: 2, enrolled: new Set() };
  const fingers = await api(`/biometrics/${recordId}/fingers`);
  for (const f of fingers.fingers || []) if (!f.record || f.record === recordId) state.enrolled.add(f.position);

  main.append(
    h('h1', {}, t('enrol.title', { name: nameOf(p) })),
    h('p', { class: 'muted' }, t('register.eid'), ' ', h('span', { class: 'eid' }, golden), ' ',
      h('a', { href: `#/patient/${recordId}` }, t('register.view'))),
  );
  const r = await readers();
  if (!r.list.length) {
    main.append(h('p', { class: 'warning', id: 'no-reader' }, r.available ? t('reader.none') : t('reader.unavailable', { why: r.error || '' })));
    return null;
  }
  const chosen = h('p', { id: 'chosen-finger', 'aria-live': 'polite' });
  const hands = h('div', { class: 'hands' });
  function draw() {
    clear(hands).append(
      h('figure', {}, hand(LEFT, 10, t('enrol.left'), state, choose), h('figcaption', {}, t('enrol.left'))),
      h('figure', {}, hand(RIGHT, 110, t('enrol.right'), state, choose), h('figcaption', {}, t('enrol.right'))),
    );
    chosen.textContent = t('enrol.chosen', { finger: t(`finger.${state.position}`) }) +
      (state.enrolled.has(state.position) ? ` ${t('enrol.replace')}` : '');
  }
  function choose(pos) {
    state.position = pos;
    draw();
    hands.querySelector(`[data-position="${pos}"]`).focus();
  }
  draw();

  const sel = readerSelect(r.list, 'enrol-reader');
  const status = h('div', { class: 'status-line', id: 'enrol-status', 'aria-live': 'polite' }, t('reader.ready'));
  const start = h('button', { type: 'button', class: 'primary', id: 'enrol-start' }, t('enrol.start'));
  const out = h('section', { id: 'enrol-result', 'aria-live': 'polite' });
  let leaving = false;

  start.addEventListener('click', async () => {
    start.disabled = true;
    clear(out);
    const id = sel.value;
    try {
      const res = await withLiveStatus(r.list, id, status, () => api(`/devices/${encodeURIComponent(id)}/enroll`, {
        method: 'POST',
        body: { patient: recordId, position: state.position, impressions: 3, timeout_s: 60 },
      }));
      if (leaving) return;
      status.className = 'status-line done';
      status.textContent = t('enrol.done', { finger: t(`finger.${state.position}`) });
      state.enrolled.add(state.position);
      draw();
      await showResult(res);
    } catch (e) {
      if (leaving) return;
      status.className = 'status-line retry';
      status.textContent = e.status === 422 ? t('enrol.recapture', { why: reasonText({ reason: e.reason, prompt: e.message }) }) : e.message;
      if (e.status !== 422) ctx.fail(e);
      showAttempts(e.outcome?.attempts);
      start.textContent = t('enrol.again');
    } finally {
      start.disabled = false;
    }
  });

  function showAttempts(attempts) {
    if (!Array.isArray(attempts) || !attempts.length) return;
    out.append(h('table', { class: 'small' },
      h('thead', {}, h('tr', {}, [t('enrol.attempt'), t('enrol.result'), t('enrol.quality'), t('enrol.why')].map((x) => h('th', {}, x)))),
      h('tbody', {}, attempts.map((a) => h('tr', {}, h('td', {}, a.attempt), h('td', {}, t(`enrol.${a.result}`)),
        h('td', {}, a.quality ?? ''), h('td', {}, a.prompt || ''))))));
  }

  async function showResult(res) {
    const dups = res.possible_duplicates || [];
    if (dups.length) {
      const items = [];
      for (const d of dups) {
        let who = d.record;
        try {
          who = nameOf(await api(`/fhir/Patient/${d.golden || d.record}`));
        } catch {
          // The warning stands even when the other record cannot be shown to this user.
        }
        items.push(h('li', {}, h('a', { href: `#/patient/${d.golden || d.record}` }, who), ` — ${t('field.fingerprint')} ${fmtNumber(d.score, 3)}`));
      }
      out.append(h('div', { class: 'warning', id: 'duplicate-warning', role: 'alert' },
        h('strong', {}, t('enrol.duplicate')), h('ul', {}, items),
        h('p', { class: 'small' }, t('enrol.duplicate_review', { n: res.review?.queued ?? 0 }))));
    }
    out.append(h('div', { class: 'panel cols' },
      h('div', {}, imageOf(res.image) || h('p', { class: 'muted' }, t('enrol.no_image'))),
      h('div', {},
        h('h2', {}, t('enrol.impressions')),
        h('table', { id: 'impressions' },
          h('thead', {}, h('tr', {}, [t('enrol.impression'), t('enrol.quality'), t('enrol.minutiae'), ''].map((x) => h('th', {}, x)))),
          h('tbody', {}, (res.impressions || []).map((i) => h('tr', {}, h('td', {}, i.impression), h('td', { class: 'quality' }, i.quality),
            h('td', {}, i.minutiae), h('td', {}, i.impression === res.best ? t('enrol.stored') : ''))))),
        h('p', { class: 'small muted' }, t('enrol.attempts', { n: (res.attempts || []).length })))));
    showAttempts((res.attempts || []).filter((a) => a.result !== 'kept'));
  }

  main.append(
    h('section', { class: 'panel' },
      h('h2', {}, t('enrol.finger')), hands, chosen,
      h('div', { class: 'actions' }, h('label', { class: 'field' }, t('reader.label'), sel), start),
      status),
    out,
  );
  return () => {
    leaving = true;
  };
}
