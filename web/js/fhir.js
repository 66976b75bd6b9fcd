// FHIR Patient helpers shared by the screens: reading a Patient for display,
// building one from the registration form, and showing match evidence.

import { h } from './dom.js';
import { t, fmtDate, fmtNumber } from './i18n.js';

export const GRADE_URL = 'http://hl7.org/fhir/StructureDefinition/match-grade';
export const EVIDENCE_URL = 'urn:ridgeline:fhir:match-evidence';
export const FINGERPRINT_URL = 'urn:ridgeline:fhir:fingerprint-match';

export function nameOf(p) {
  const n = (p && p.name && p.name[0]) || {};
  const given = (n.given || []).join(' ');
  return [given, n.family].filter(Boolean).join(' ') || n.text || t('patient.noname');
}

export function identifiersOf(p) {
  return (p.identifier || []).map((i) => `${i.system ? i.system + ' | ' : ''}${i.value}`);
}

export function phoneOf(p) {
  return (p.telecom || []).filter((c) => c.system === 'phone').map((c) => c.value).join(', ');
}

export function placeOf(p) {
  const a = (p.address || [])[0];
  if (!a) return '';
  return [...(a.line || []), a.city, a.district, a.state, a.postalCode, a.country].filter(Boolean).join(', ');
}

export function genderText(g) {
  return g ? t(`gender.${g}`) : '';
}

// A source record points at its person with link type "refer"; a golden record lists its members as "seealso".
export function goldenOf(p) {
  const l = (p.link || []).find((x) => x.type === 'refer' || x.type === 'replaced-by');
  return l ? l.other.reference.replace(/^Patient\//, '') : null;
}

export function isGolden(p) {
  return (p.meta?.tag || []).some((tag) => tag.code === 'golden-record');
}

export function membersOf(p) {
  return (p.link || []).filter((x) => x.type === 'seealso').map((x) => x.other.reference.replace(/^Patient\//, ''));
}

export function patientFromForm(v) {
  const p = { resourceType: 'Patient', active: true };
  const name = {};
  if (v.family) name.family = v.family;
  if (v.given) name.given = v.given.split(/\s+/).filter(Boolean);
  if (name.family || name.given) p.name = [name];
  if (v.gender) p.gender = v.gender;
  if (v.birthDate) p.birthDate = v.birthDate;
  if (v.idValue) {
    p.identifier = [{ value: v.idValue }];
    if (v.idSystem) p.identifier[0].system = v.idSystem;
  }
  if (v.phone) p.telecom = [{ system: 'phone', value: v.phone }];
  const addr = {};
  if (v.line) addr.line = [v.line];
  if (v.city) addr.city = v.city;
  if (v.country) addr.country = v.country;
  if (Object.keys(addr).length) p.address = [addr];
  return p;
}

export function gradeBadge(grade) {
  if (!grade) return null;
  return h('span', { class: `grade grade-${grade}` }, t(`grade.${grade}`));
}

function ext(list, url) {
  return (list || []).find((e) => e.url === url);
}

export function entryGrade(entry) {
  return ext(entry.search?.extension, GRADE_URL)?.valueCode || null;
}

// Field evidence of a $match entry: [{field, level, weight}].
export function entryEvidence(entry) {
  const e = ext(entry.search?.extension, EVIDENCE_URL);
  if (!e) return [];
  return (e.extension || [])
    .filter((f) => Array.isArray(f.extension))
    .map((f) => ({
      field: f.url,
      level: ext(f.extension, 'level')?.valueCode,
      weight: ext(f.extension, 'weight')?.valueDecimal,
    }));
}

// The rule that capped the score and a guard a learnt lift set aside, as the server words them.
export function entryGuard(entry) {
  const e = ext(entry.search?.extension, EVIDENCE_URL);
  const parts = e?.extension || [];
  return { held: ext(parts, 'guard')?.valueString, lifted: ext(parts, 'guard-lifted')?.valueString };
}

export function entryFingerprint(entry) {
  const e = ext(entry.search?.extension, FINGERPRINT_URL);
  if (!e) return null;
  const out = {};
  for (const part of e.extension || []) out[part.url] = part.valueCode ?? part.valueDecimal ?? part.valueInteger;
  return out;
}

// "why": one chip per field, green when it counts for the match, red against;
// then what held the score back for a human, or a guard set aside.
export function whyLine(fields, fingerprint, guard) {
  const chips = fields.map((f) =>
    h(
      'span',
      { class: f.weight > 0.5 ? 'agree' : f.weight < -0.5 ? 'disagree' : 'neutral' },
      `${t(`field.${f.field}`)}: ${t(`level.${f.level}`)} (${f.weight >= 0 ? '+' : ''}${fmtNumber(f.weight, 1)})`,
    ),
  );
  if (fingerprint && fingerprint.score !== undefined)
    chips.push(
      h(
        'span',
        { class: fingerprint.decision === 'match' ? 'agree' : 'neutral' },
        `${t('field.fingerprint')}: ${fmtNumber(fingerprint.score, 3)}`,
      ),
    );
  if (guard?.held) chips.push(h('span', { class: 'warning' }, t('why.guard', { why: guard.held })));
  if (guard?.lifted) chips.push(h('span', { class: 'neutral' }, t('why.guard_lifted', { why: guard.lifted })));
  return h('div', { class: 'why' }, chips);
}

export function summaryCells(p) {
  return [nameOf(p), fmtDate(p.birthDate), genderText(p.gender), identifiersOf(p).join('; '), placeOf(p)];
}

// ISO/IEC 19794-2 finger positions.
export const POSITIONS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
export function positionName(pos) {
  return t(`finger.${pos}`);
}

// Accepts YYYY, YYYY-MM and YYYY-MM-DD (as FHIR does), a real calendar date, not in the future.
export function validBirthDate(v) {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$/.exec(v);
  if (!m) return false;
  const [, y, mo, d] = m.map((x) => (x === undefined ? undefined : +x));
  if (y < 1880) return false;
  if (mo !== undefined && (mo < 1 || mo > 12)) return false;
  if (d !== undefined) {
    const date = new Date(Date.UTC(y, mo - 1, d));
    if (date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) return false;
  }
  const now = new Date();
  const start = new Date(Date.UTC(y, mo ? mo - 1 : 0, d || 1));
  return start <= now;
}
