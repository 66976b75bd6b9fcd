// The review queue (reviewers): possible duplicates side by side with the
// agreement and weight of each field, fingerprint evidence when there is
// some, a decision ("same person" / "not the same") and its undo.

import { api } from '../api.js';
import { h, clear } from '../dom.js';
import { t, fmtDate, fmtDateTime, fmtNumber } from '../i18n.js';
import { nameOf, identifiersOf, phoneOf, placeOf, genderText, gradeBadge } from '../fhir.js';

// Rows of the comparison: label, how to show a Patient's value, which model field(s) weigh it.
const ROWS = [
  { label: 'field.given', value: (p) => ((p.name || [])[0]?.given || []).join(' '), fields: ['given'] },
  { label: 'field.family', value: (p) => (p.name || [])[0]?.family || '', fields: ['family'] },
  { label: 'field.birth_date', value: (p) => fmtDate(p.birthDate), fields: ['birth_date'] },
  { label: 'field.gender', value: (p) => genderText(p.gender), fields: ['gender'] },
  { label: 'field.identifier', value: (p) => identifiersOf(p).join('; '), fields: ['identifier'] },
  { label: 'field.phone', value: phoneOf, fields: ['phone'] },
  { label: 'field.place', value: placeOf, fields: ['address', 'city', 'postcode', 'state'] },
];

function evidence(fields, names) {
  const found = names.map((n) => (fields[n] ? { n, ...fields[n] } : null)).filter(Boolean);
  if (!found.length) return h('span', { class: 'neutral' }, '—');
  return found.map((f) => h('div', { class: f.weight > 0.5 ? 'agree' : f.weight < -0.5 ? 'disagree' : 'neutral', 'data-field': f.n },
    `${t(`level.${f.level}`)} (${f.weight >= 0 ? '+' : ''}${fmtNumber(f.weight, 1)})`));
}

async function list(main, ctx) {
  const q = await api('/admin/review', { query: { status: 'open', limit: 100 } });
  const items = q.items || [];
  main.append(h('h1', {}, t('review.title')), h('p', { class: 'muted', id: 'review-count' }, t('review.count', { n: q.open ?? items.length })));
  if (!items.length) {
    main.append(h('p', { id: 'review-empty' }, t('review.empty')));
    return;
  }
  const rows = [];
  for (const it of items) {
    const [a, b] = await Promise.all([api(`/fhir/Patient/${it.record}`), api(`/fhir/Patient/${it.candidate_record}`)]);
    rows.push(h('tr', { class: 'clickable', 'data-review': it.id, onclick: () => ctx.go(`#/review/${it.id}`) },
      h('td', {}, fmtDateTime(it.created)), h('td', {}, gradeBadge(it.grade), ' ', fmtNumber(it.score, 2)),
      h('td', {}, h('a', { href: `#/review/${it.id}` }, nameOf(a))), h('td', {}, nameOf(b)),
      h('td', {}, it.fields?.guard ? t('review.guard', { why: it.fields.guard }) : it.kind === 'biometric' ? t('review.biometric') : '')));
  }
  main.append(h('table', { id: 'review-list' },
    h('thead', {}, h('tr', {}, [t('review.created'), t('find.grade'), t('review.new_record'), t('review.candidate'), t('review.note')].map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows)));
}

async function fingersOf(id) {
  const f = await api(`/biometrics/${id}/fingers`);
  return (f.fingers || []).filter((x) => !x.record || x.record === id);
}

function fingerText(list) {
  return list.length ? list.map((x) => `${t(`finger.${x.position}`)} (${t('enrol.quality')} ${x.quality})`).join(', ') : t('review.no_prints');
}

// When both records have fingers, the same positions compared 1:1 by the appliance.
async function fingerEvidence(a, b, fa, fb, it) {
  if (fa.length && fb.length) {
    const c = await api('/biometrics/compare', { query: { a, b } });
    if (c.decision === 'no-common-finger') return h('span', { class: 'neutral', id: 'finger-compare' }, t('review.no_common'));
    return h('div', { id: 'finger-compare' }, (c.comparisons || []).map((x) =>
      h('div', { class: x.decision === 'match' ? 'agree' : 'disagree', 'data-field': 'fingerprint' },
        `${t(`finger.${x.position}`)}: ${t(x.decision === 'match' ? 'review.same_finger' : 'review.other_finger')} (${fmtNumber(x.score, 3)})`)));
  }
  const bio = it.details?.score ?? it.fields?.fingerprint?.score;
  return bio !== undefined ? h('span', { class: 'agree' }, fmtNumber(bio, 3)) : '—';
}

async function item(main, ctx, id) {
  const shown = await api(`/admin/review/${id}`);
  const it = shown.item;
  const a = shown.record;
  const b = shown.candidate;
  const fields = it.fields?.fields || {};
  const grid = h('div', { class: 'side', id: 'review-side' },
    h('div', { class: 'head' }, ''), h('div', { class: 'head' }, t('review.new_record')), h('div', { class: 'head' }, t('review.candidate')),
    h('div', { class: 'head' }, t('review.agreement')));
  for (const row of ROWS) {
    const va = row.value(a);
    const vb = row.value(b);
    if (!va && !vb) continue;
    grid.append(h('div', { class: 'head' }, t(row.label)), h('div', {}, va || '—'), h('div', {}, vb || '—'), h('div', {}, evidence(fields, row.fields)));
  }
  const [fa, fb] = await Promise.all([fingersOf(a.id), fingersOf(b.id)]);
  grid.append(h('div', { class: 'head' }, t('field.fingerprint')), h('div', {}, fingerText(fa)), h('div', {}, fingerText(fb)),
    h('div', {}, await fingerEvidence(a.id, b.id, fa, fb, it)));

  const decided = h('div', { id: 'review-decided', 'aria-live': 'polite' });
  const buttons = h('div', { class: 'actions' },
    h('button', { type: 'button', class: 'primary', id: 'decide-same', onclick: () => decide('link') }, t('review.same')),
    h('button', { type: 'button', class: 'danger', id: 'decide-different', onclick: () => decide('not-a-match') }, t('review.different')),
    h('a', { href: '#/review' }, t('review.back')));

  async function decide(decision) {
    for (const btn of buttons.querySelectorAll('button')) btn.disabled = true;
    try {
      const res = await api(`/admin/review/${id}/resolve`, { method: 'POST', body: { decision } });
      const event = res.event?.id || res.item?.resolution?.event;
      clear(decided).append(h('p', { class: 'status-line done' }, t(decision === 'link' ? 'review.done_same' : 'review.done_different')),
        h('div', { class: 'actions' },
          h('button', { type: 'button', id: 'undo', onclick: () => undo(event) }, t('review.undo')),
          h('a', { href: '#/review', id: 'next' }, t('review.back'))));
      decided.querySelector('#undo').focus();
    } catch (e) {
      ctx.fail(e);
      for (const btn of buttons.querySelectorAll('button')) btn.disabled = false;
    }
  }

  async function undo(event) {
    try {
      await api('/admin/undo', { method: 'POST', body: { event } });
      ctx.notify('ok', t('review.undone'));
      ctx.go(`#/review/${id}`);
    } catch (e) {
      ctx.fail(e);
    }
  }

  const open = it.status === 'open';
  main.append(
    h('h1', {}, t('review.item')),
    h('p', {}, gradeBadge(it.grade), ' ', t('review.score', { p: fmtNumber(it.score, 3), w: fmtNumber(it.fields?.weight ?? 0, 1) }),
      it.fields?.guard ? h('span', { class: 'warning', style: null }, ` ${t('review.guard', { why: it.fields.guard })}`) : null,
      it.fields?.guard_lifted
        ? h('span', { class: 'muted' }, ` ${t('why.guard_lifted', { why: `${it.fields.guard_lifted.guard}; ${it.fields.guard_lifted.why}` })}`)
        : null),
    h('section', { class: 'panel' }, grid),
    open ? buttons : h('p', { id: 'review-status' }, t('review.resolved', { decision: it.resolution?.decision || it.status, who: it.resolution?.who || '', when: fmtDateTime(it.resolution?.when) })),
    decided,
  );
  if (open) buttons.querySelector('button').focus();
}

export async function render(main, ctx, id) {
  if (id) await item(main, ctx, id);
  else await list(main, ctx);
}
