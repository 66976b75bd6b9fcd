// Find a patient: by demographics ($match: ranked, graded, with the evidence
// per field), by identifier or phone (PDQm search), or by scanning a finger
// on an attached reader (1:N identification).

import { api } from '../api.js';
import { h, clear, formValues } from '../dom.js';
import { t, fmtNumber } from '../i18n.js';
import {
  patientFromForm, nameOf, summaryCells, gradeBadge, entryGrade, entryEvidence, entryGuard, entryFingerprint, whyLine,
  validBirthDate,
} from '../fhir.js';
import { readers, readerSelect, withLiveStatus, imageOf } from '../reader.js';

function field(label, input) {
  return h('label', { class: 'field' }, label, input);
}

function resultsTable(rows, head) {
  return h(
    'table',
    { id: 'results' },
    h('thead', {}, h('tr', {}, head.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows),
  );
}

function openRow(ctx, id, cells) {
  const link = h('a', { href: `#/patient/${id}` }, cells[0]);
  return h(
    'tr',
    { class: 'clickable', 'data-patient': id, onclick: (ev) => ev.target.tagName !== 'A' && ctx.go(`#/patient/${id}`) },
    h('td', {}, link),
    cells.slice(1).map((c) => h('td', {}, c)),
  );
}

async function byDemographics(ctx, v, out) {
  const patient = patientFromForm({ ...v, idValue: v.identifier.includes('|') ? v.identifier.split('|')[1] : v.identifier,
    idSystem: v.identifier.includes('|') ? v.identifier.split('|')[0] : '', city: v.place });
  const bundle = await api('/fhir/Patient/$match', {
    method: 'POST',
    body: { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: patient }, { name: 'count', valueInteger: 10 }] },
  });
  const entries = bundle.entry || [];
  if (!entries.length) {
    out.append(h('p', { id: 'no-results' }, t('find.none')));
    return;
  }
  const rows = entries.map((e) => {
    const p = e.resource;
    const [name, ...rest] = summaryCells(p);
    const tr = openRow(ctx, p.id, [name, ...rest]);
    tr.firstChild.append(whyLine(entryEvidence(e), entryFingerprint(e), entryGuard(e)));
    tr.prepend(h('td', {}, gradeBadge(entryGrade(e)), h('div', { class: 'small muted' }, fmtNumber(e.search.score, 2))));
    return tr;
  });
  out.append(
    h('p', { class: 'muted' }, t('find.count', { n: entries.length })),
    resultsTable(rows, [t('find.grade'), t('field.name'), t('field.birth_date'), t('field.gender'), t('field.identifier'), t('field.place')]),
  );
}

async function byIdentifier(ctx, v, out) {
  const bundle = await api('/fhir/Patient', { query: { identifier: v.identifier, telecom: v.phone, _count: 20 } });
  const entries = (bundle.entry || []).map((e) => e.resource);
  if (!entries.length) {
    out.append(h('p', { id: 'no-results' }, t('find.none')));
    return;
  }
  out.append(
    h('p', { class: 'muted' }, t('find.count', { n: bundle.total ?? entries.length })),
    resultsTable(entries.map((p) => openRow(ctx, p.id, summaryCells(p))),
      [t('field.name'), t('field.birth_date'), t('field.gender'), t('field.identifier'), t('field.place')]),
  );
}

async function scanPanel(ctx, out) {
  const panel = h('section', { class: 'panel', 'aria-labelledby': 'scan-title' }, h('h2', { id: 'scan-title' }, t('find.scan')));
  let r;
  try {
    r = await readers();
  } catch (e) {
    ctx.fail(e);
    return { panel, stop: () => {} };
  }
  if (!r.list.length) {
    panel.append(h('p', { class: 'muted', id: 'no-reader' }, r.available ? t('reader.none') : t('reader.unavailable', { why: r.error || '' })));
    return { panel, stop: () => {} };
  }
  const sel = readerSelect(r.list, 'scan-reader');
  const status = h('div', { class: 'status-line', id: 'scan-status', 'aria-live': 'polite' }, t('reader.ready'));
  const button = h('button', { type: 'button', class: 'primary', id: 'scan' }, t('find.scan_button'));
  let leaving = false;
  button.addEventListener('click', async () => {
    button.disabled = true;
    clear(out);
    const id = sel.value;
    try {
      const res = await withLiveStatus(r.list, id, status,
        () => api(`/devices/${encodeURIComponent(id)}/identify`, { method: 'POST', body: { top: 5, timeout_s: 60 } }));
      if (leaving) return;
      status.className = 'status-line done';
      status.textContent = t('find.scan_done', { q: res.capture?.quality ?? '?' });
      await showCandidates(ctx, res, out);
    } catch (e) {
      if (leaving) return;
      status.className = 'status-line retry';
      status.textContent = e.message;
      ctx.fail(e);
    } finally {
      button.disabled = false;
    }
  });
  panel.append(h('div', { class: 'actions' }, h('label', { class: 'field' }, t('reader.label'), sel), button), status);
  return {
    panel,
    stop: () => {
      leaving = true;
    },
  };
}

async function showCandidates(ctx, res, out) {
  const img = imageOf(res.capture?.image);
  const cands = res.candidates || [];
  const above = cands.filter((c) => c.score >= res.threshold);
  const list = h('div', {});
  out.append(h('div', { class: 'with-image' }, list,
    img ? h('figure', {}, img, h('figcaption', { class: 'small muted' }, t('find.probe', { q: res.capture.quality }))) : null));
  if (!above.length) {
    list.append(h('p', { id: 'no-results' }, t('find.scan_none', { n: res.gallery_size ?? 0 })));
    return;
  }
  const rows = [];
  for (const c of above) {
    const p = await api(`/fhir/Patient/${c.golden || c.record}`);
    const tr = openRow(ctx, p.id, summaryCells(p));
    tr.firstChild.append(h('div', { class: 'why' }, h('span', { class: 'agree' },
      `${t('field.fingerprint')}: ${fmtNumber(c.score, 3)} (${t(`finger.${c.position}`)})`)));
    tr.prepend(h('td', {}, gradeBadge(c === cands[0] && res.decision === 'match' ? 'certain' : 'probable')));
    rows.push(tr);
  }
  list.append(resultsTable(rows, [t('find.grade'), t('field.name'), t('field.birth_date'), t('field.gender'), t('field.identifier'), t('field.place')]));
}

export async function render(main, ctx) {
  const out = h('div', { id: 'find-results', 'aria-live': 'polite' });
  const error = h('div', { class: 'field-error', role: 'alert' });
  const form = h(
    'form',
    { class: 'grid', id: 'find-form', novalidate: true },
    field(t('field.given'), h('input', { name: 'given', id: 'find-given', maxlength: 100 })),
    field(t('field.family'), h('input', { name: 'family', id: 'find-family', maxlength: 100 })),
    field(t('field.birth_date_hint'), h('input', { name: 'birthDate', id: 'find-birth', placeholder: t('field.date_placeholder'), maxlength: 10 })),
    field(t('field.gender'), h('select', { name: 'gender', id: 'find-gender' }, h('option', { value: '' }, '—'),
      ['female', 'male', 'other', 'unknown'].map((g) => h('option', { value: g }, t(`gender.${g}`))))),
    field(t('field.identifier_hint'), h('input', { name: 'identifier', id: 'find-identifier', maxlength: 255 })),
    field(t('field.phone'), h('input', { name: 'phone', id: 'find-phone', type: 'tel', maxlength: 40 })),
    field(t('field.place'), h('input', { name: 'place', id: 'find-place', maxlength: 100 })),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'find-submit' }, t('find.submit'))),
    h('div', { class: 'full' }, error),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    clear(out);
    const v = formValues(form);
    if (v.birthDate && !validBirthDate(v.birthDate)) {
      error.textContent = t('validate.birth_date');
      return;
    }
    const demographic = v.given || v.family || v.birthDate;
    if (!demographic && !v.identifier && !v.phone) {
      error.textContent = t('find.need');
      return;
    }
    try {
      if (demographic) await byDemographics(ctx, v, out);
      else await byIdentifier(ctx, v, out);
    } catch (e) {
      ctx.fail(e);
    }
  });
  main.append(h('h1', {}, t('find.title')), h('section', { class: 'panel' }, form));
  const scan = await scanPanel(ctx, out);
  main.append(scan.panel, out);
  return scan.stop;
}
