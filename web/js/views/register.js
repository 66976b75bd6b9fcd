// Register a patient: a validated form; before saving, the appliance's $match
// shows who this might already be, and the clerk says "the same person" or
// "a new person". The answer shows the enterprise id (the golden record) and
// a printable card.

import { api } from '../api.js';
import { h, clear, formValues } from '../dom.js';
import { t, fmtDate, fmtNumber } from '../i18n.js';
import {
  patientFromForm, nameOf, summaryCells, gradeBadge, entryGrade, entryEvidence, entryGuard, whyLine, goldenOf,
  validBirthDate,
} from '../fhir.js';

const DEFAULT_REQUIRED = ['given', 'family', 'birthDate', 'gender'];
export const REQUIRABLE = ['given', 'family', 'birthDate', 'gender', 'idValue', 'phone', 'city'];

// Required fields are a desk setting (Admin screen), kept in this browser.
export function requiredFields() {
  try {
    const saved = JSON.parse(localStorage.getItem('rl.required') || 'null');
    if (Array.isArray(saved)) return saved.filter((f) => REQUIRABLE.includes(f));
  } catch {
    // A damaged setting falls back to the defaults.
  }
  return DEFAULT_REQUIRED;
}

const LIMITS = { given: 100, family: 100, idSystem: 255, idValue: 100, phone: 40, line: 200, city: 100, country: 60 };

function validate(v, required) {
  const errors = {};
  for (const f of required) if (!v[f]) errors[f] = t('validate.required');
  for (const [f, max] of Object.entries(LIMITS)) if (v[f] && v[f].length > max) errors[f] = t('validate.too_long', { max });
  if (v.birthDate && !validBirthDate(v.birthDate)) errors.birthDate = t('validate.birth_date');
  if (v.phone && !/^\+?[\d\s().-]{4,40}$/.test(v.phone)) errors.phone = t('validate.phone');
  if (v.idSystem && !v.idValue) errors.idValue = t('validate.id_value');
  return errors;
}

function input(name, label, required, attrs = {}) {
  const el = h('input', { name, id: `reg-${name}`, 'aria-describedby': `reg-${name}-error`, maxlength: LIMITS[name], ...attrs });
  return h(
    'label',
    { class: `field ${attrs.wide ? 'wide' : ''}` },
    h('span', {}, label, required ? h('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null),
    el,
    h('span', { class: 'field-error', id: `reg-${name}-error` }),
  );
}

function card(p, golden) {
  return h(
    'div',
    { class: 'card', 'aria-hidden': 'true' },
    h('strong', {}, 'Ridgeline'),
    h('div', {}, nameOf(p)),
    h('div', {}, fmtDate(p.birthDate)),
    h('div', { class: 'eid' }, golden),
  );
}

export async function render(main, ctx) {
  const required = requiredFields();
  const req = (f) => required.includes(f);
  const systemLocked = !!ctx.user.system;
  const genderSelect = h(
    'select',
    { name: 'gender', id: 'reg-gender', 'aria-describedby': 'reg-gender-error' },
    h('option', { value: '' }, '—'),
    ['female', 'male', 'other', 'unknown'].map((g) => h('option', { value: g }, t(`gender.${g}`))),
  );
  const form = h(
    'form',
    { class: 'grid', id: 'register-form', novalidate: true },
    input('given', t('field.given'), req('given')),
    input('family', t('field.family'), req('family')),
    input('birthDate', t('field.birth_date_hint'), req('birthDate'), { placeholder: t('field.date_placeholder'), maxlength: 10 }),
    h('label', { class: 'field' }, h('span', {}, t('field.gender'), req('gender') ? h('span', { class: 'req' }, ' *') : null),
      genderSelect, h('span', { class: 'field-error', id: 'reg-gender-error' })),
    input('idSystem', t('field.id_system'), false, { value: ctx.user.system || '', readonly: systemLocked, wide: true }),
    input('idValue', t('field.id_value'), req('idValue')),
    input('phone', t('field.phone'), req('phone'), { type: 'tel' }),
    input('line', t('field.line'), false, { wide: true }),
    input('city', t('field.city'), req('city')),
    input('country', t('field.country'), false),
    h('div', { class: 'actions full' },
      h('button', { type: 'submit', class: 'primary', id: 'register-check' }, t('register.check')),
      h('span', { class: 'small muted' }, t('register.required_note'))),
  );
  const matches = h('section', { id: 'register-matches', 'aria-live': 'polite' });
  const result = h('section', { id: 'register-result', 'aria-live': 'polite' });
  let pending = null; // the Patient checked, waiting for the clerk's choice

  function showErrors(errors) {
    for (const el of form.querySelectorAll('.field-error')) el.textContent = '';
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    let first = null;
    for (const [f, msg] of Object.entries(errors)) {
      const el = form.querySelector(`[name="${f}"]`);
      const err = form.querySelector(`#reg-${f}-error`);
      if (err) err.textContent = msg;
      if (el) {
        el.setAttribute('aria-invalid', 'true');
        first = first || el;
      }
    }
    if (first) first.focus();
  }

  async function save(choice) {
    for (const b of matches.querySelectorAll('button')) b.disabled = true;
    try {
      const created = await api('/fhir/Patient', { method: 'POST', body: pending });
      let golden = goldenOf(created);
      let note = null;
      if (choice !== 'new' && golden !== choice) {
        if (ctx.can('review')) {
          await api('/admin/link', { method: 'POST', body: { record: created.id, golden: choice } });
          golden = choice;
          note = t('register.linked_by_you');
        } else {
          note = t('register.to_review');
        }
      } else if (choice === 'new' && created.link && golden && pending.__candidates?.includes(golden)) {
        note = t('register.auto_linked');
      }
      clear(matches);
      showResult(created, golden, note);
      form.reset();
      if (ctx.user.system) form.querySelector('[name="idSystem"]').value = ctx.user.system;
      pending = null;
    } catch (e) {
      ctx.fail(e);
      for (const b of matches.querySelectorAll('button')) b.disabled = false;
    }
  }

  function showResult(p, golden, note) {
    clear(result).append(
      h('div', { class: 'panel' },
        h('h2', { id: 'registered' }, t('register.done', { name: nameOf(p) })),
        h('p', {}, t('register.eid'), ' ', h('span', { class: 'eid', id: 'enterprise-id' }, golden || '?')),
        h('p', { class: 'small muted' }, t('register.record'), ' ', h('span', { class: 'mono', id: 'record-id' }, p.id)),
        note ? h('p', { class: 'warning', id: 'register-note' }, note) : null,
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'primary', id: 'go-enrol', onclick: () => ctx.go(`#/enrol/${p.id}`) }, t('register.enrol')),
          h('a', { href: `#/patient/${p.id}`, id: 'go-patient' }, t('register.view')),
          h('button', { type: 'button', id: 'print-card', onclick: () => window.print() }, t('register.print'))),
        card(p, golden)),
    );
    result.querySelector('#go-enrol').focus();
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(result);
    const v = formValues(form);
    const errors = validate(v, required);
    showErrors(errors);
    if (Object.keys(errors).length) return;
    pending = patientFromForm(v);
    clear(matches);
    try {
      const bundle = await api('/fhir/Patient/$match', {
        method: 'POST',
        body: { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: pending }, { name: 'count', valueInteger: 5 }] },
      });
      const entries = (bundle.entry || []).filter((e) => entryGrade(e) !== 'certainly-not');
      Object.defineProperty(pending, '__candidates', { value: entries.map((e) => e.resource.id), enumerable: false });
      if (!entries.length) {
        await save('new');
        return;
      }
      const rows = entries.map((e) => {
        const p = e.resource;
        const [name, ...rest] = summaryCells(p);
        return h('tr', { 'data-candidate': p.id },
          h('td', {}, gradeBadge(entryGrade(e)), h('div', { class: 'small muted' }, fmtNumber(e.search.score, 2))),
          h('td', {}, h('a', { href: `#/patient/${p.id}`, target: '_blank', rel: 'noopener' }, name), whyLine(entryEvidence(e), null, entryGuard(e))),
          rest.map((c) => h('td', {}, c)),
          h('td', {}, h('button', { type: 'button', class: 'same', onclick: () => save(p.id) }, t('register.same'))));
      });
      matches.append(h('div', { class: 'panel' },
        h('h2', {}, t('register.candidates', { n: entries.length })),
        h('p', { class: 'muted' }, t('register.candidates_help')),
        h('table', {}, h('thead', {}, h('tr', {}, [t('find.grade'), t('field.name'), t('field.birth_date'), t('field.gender'),
          t('field.identifier'), t('field.place'), ''].map((x) => h('th', { scope: 'col' }, x)))), h('tbody', {}, rows)),
        h('div', { class: 'actions' }, h('button', { type: 'button', class: 'primary', id: 'register-new', onclick: () => save('new') }, t('register.new')))));
      matches.querySelector('button.same').focus();
    } catch (e) {
      ctx.fail(e);
    }
  });

  main.append(h('h1', {}, t('register.title')), h('section', { class: 'panel' }, form), matches, result);
  form.querySelector('input').focus();
}
