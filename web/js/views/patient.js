// A person: the golden record, the source records each clinic sent, the
// enrolled fingers, the history of links and merges, and (for admins) the
// audit trail of everyone who looked at or changed these records.

import { api } from '../api.js';
import { h } from '../dom.js';
import { t, fmtDate, fmtDateTime, fmtNumber } from '../i18n.js';
import { nameOf, identifiersOf, phoneOf, placeOf, genderText, goldenOf, isGolden, membersOf } from '../fhir.js';

const MAX_MEMBERS = 50;
// Audit actions that change who is linked to whom.
const LINK_ACTIONS = ['create', 'update', 'delete', 'link', 'unlink', 'merge', 'unmerge', 'review-decision', 'undo'];

function actionText(action) {
  const key = `action.${action}`;
  const text = t(key);
  return text === key ? action : text;
}

function eventDetail(e) {
  const d = e.detail || {};
  const parts = [];
  if (d.grade) parts.push(t(`grade.${d.grade}`));
  if (typeof d.score === 'number') parts.push(fmtNumber(d.score, 2));
  if (d.decision) parts.push(d.decision === 'link' ? t('review.same') : d.decision === 'not-a-match' ? t('review.different') : d.decision);
  if (d.reviews_queued) parts.push(t('patient.queued', { n: d.reviews_queued }));
  return parts.join(' · ');
}

function dl(pairs) {
  return h('dl', { class: 'cols3' }, pairs.filter(([, v]) => v).map(([k, v]) => h('div', {}, h('dt', { class: 'small muted' }, k), h('dd', {}, v))));
}

function table(id, head, rows, empty) {
  if (!rows.length) return h('p', { class: 'muted', id }, empty);
  return h('table', { id }, h('thead', {}, h('tr', {}, head.map((x) => h('th', { scope: 'col' }, x)))), h('tbody', {}, rows));
}

export async function render(main, ctx, id) {
  const p = await api(`/fhir/Patient/${id}`);
  let goldenId = isGolden(p) ? p.id : goldenOf(p);
  const person = goldenId && goldenId !== p.id ? await api(`/fhir/Patient/${goldenId}`) : p;
  goldenId = person.id;
  const replaced = (person.link || []).find((l) => l.type === 'replaced-by');

  main.append(...[
    h('h1', { id: 'patient-name' }, nameOf(person)),
    replaced ? h('p', { class: 'warning' }, t('patient.merged'), ' ', h('a', { href: `#/${replaced.other.reference.replace('Patient/', 'patient/')}` }, t('patient.merged_link'))) : null,
    h('section', { class: 'panel' },
      h('p', {}, t('register.eid'), ' ', h('span', { class: 'eid', id: 'patient-eid' }, goldenId)),
      dl([
        [t('field.birth_date'), fmtDate(person.birthDate)],
        [t('field.gender'), genderText(person.gender)],
        [t('field.phone'), phoneOf(person)],
        [t('field.place'), placeOf(person)],
        [t('field.identifier'), identifiersOf(person).join('; ')],
        [t('patient.status'), person.active === false ? t('patient.inactive') : t('patient.active')],
      ])),
  ].filter(Boolean));

  const members = membersOf(person).slice(0, MAX_MEMBERS);
  if (!members.length && !isGolden(p)) members.push(p.id);
  const records = await Promise.all(members.map((m) => (m === p.id ? p : api(`/fhir/Patient/${m}`))));
  main.append(h('h2', {}, t('patient.sources', { n: records.length })),
    table('sources', [t('field.identifier'), t('field.name'), t('field.birth_date'), t('field.gender'), t('patient.updated'), ''],
      records.map((r) => h('tr', { 'data-record': r.id },
        h('td', {}, identifiersOf(r).join('; ') || h('span', { class: 'mono' }, r.id)),
        h('td', {}, nameOf(r)), h('td', {}, fmtDate(r.birthDate)), h('td', {}, genderText(r.gender)),
        h('td', {}, fmtDateTime(r.meta?.lastUpdated)),
        h('td', {}, ctx.can('write') ? h('a', { href: `#/enrol/${r.id}`, class: 'enrol-link' }, t('patient.enrol')) : null))),
      t('patient.no_sources')));

  const fingers = await api(`/biometrics/${goldenId}/fingers`);
  main.append(h('h2', {}, t('patient.fingers')),
    table('fingers', [t('enrol.finger'), t('enrol.quality'), t('enrol.minutiae'), t('patient.record')],
      (fingers.fingers || []).map((f) => h('tr', {}, h('td', {}, t(`finger.${f.position}`)), h('td', { class: 'quality' }, f.quality),
        h('td', {}, f.minutiae), h('td', { class: 'mono small' }, f.record || ''))),
      t('patient.no_fingers')));

  // Links and merges. Admins: every identity event from the audit trail. Reviewers: how each record
  // is linked now (method, grade, who, when). Others: each record's versions and the person they point at.
  let audit = [];
  if (ctx.can('admin')) {
    const seen = new Map();
    for (const subject of [goldenId, ...members]) {
      const a = await api('/admin/audit', { query: { record: subject, limit: 200 } });
      for (const e of a.entries || []) seen.set(e.id, e);
    }
    audit = [...seen.values()].sort((a, b) => String(b.when).localeCompare(String(a.when)));
  }
  const idOf = (rid) => identifiersOf(records.find((r) => r.id === rid) || { identifier: [] })[0] || rid;
  let history;
  if (ctx.can('admin')) {
    const events = audit.filter((e) => LINK_ACTIONS.includes(e.action));
    history = table('history', [t('patient.when'), t('patient.action'), t('patient.who'), t('patient.detail')],
      events.map((e) => h('tr', { 'data-action': e.action }, h('td', {}, fmtDateTime(e.when)), h('td', {}, actionText(e.action)),
        h('td', {}, e.who), h('td', { class: 'small' }, eventDetail(e)))),
      t('patient.no_history'));
  } else if (ctx.can('review')) {
    const links = await Promise.all(records.map((r) => api(`/admin/records/${r.id}`)));
    history = table('history', [t('field.identifier'), t('patient.linked_to'), t('patient.how'), t('patient.who'), t('patient.when')],
      links.map((l) => h('tr', {}, h('td', {}, idOf(l.id)), h('td', { class: 'mono small' }, l.link?.golden || ''),
        h('td', {}, `${l.link?.method || ''} ${l.link?.grade ? t(`grade.${l.link.grade}`) : ''}`), h('td', {}, l.link?.who || ''),
        h('td', {}, fmtDateTime(l.link?.when)))),
      t('patient.no_history'));
  } else {
    const versions = [];
    for (const r of records) {
      const hist = await api(`/fhir/Patient/${r.id}/_history`);
      const list = Array.isArray(hist) ? hist : (hist.entry || []).map((e) => e.resource);
      for (const v of list) versions.push({ record: r, v });
    }
    versions.sort((a, b) => String(b.v.meta?.lastUpdated).localeCompare(String(a.v.meta?.lastUpdated)));
    history = table('history', [t('patient.when'), t('field.identifier'), t('patient.version'), t('patient.linked_to')],
      versions.map(({ record, v }) => h('tr', {}, h('td', {}, fmtDateTime(v.meta?.lastUpdated)),
        h('td', {}, identifiersOf(record)[0] || record.id), h('td', {}, v.meta?.versionId),
        h('td', { class: 'mono small' }, goldenOf(v) || ''))),
      t('patient.no_history'));
  }
  main.append(h('h2', {}, t('patient.history')), history);

  if (ctx.can('admin')) {
    main.append(h('h2', {}, t('patient.audit')),
      table('audit', [t('patient.when'), t('patient.who'), t('patient.action'), t('patient.outcome')],
        audit.map((e) => h('tr', { 'data-action': e.action }, h('td', {}, fmtDateTime(e.when)), h('td', {}, e.who),
          h('td', {}, actionText(e.action)), h('td', {}, e.outcome))),
        t('patient.no_audit')));
  }
}
