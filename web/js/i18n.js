// The message catalogue (i18n/<lang>.json, flat "area.key" names) and
// locale-aware dates. English is the fallback for a key a catalogue lacks,
// so a missing translation shows English, never a raw key.

const LANGS = ['en', 'fr'];
let lang = 'en';
let messages = {};
let fallback = {};

async function load(code) {
  const r = await fetch(`i18n/${code}.json`, { cache: 'no-cache' });
  if (!r.ok) throw new Error(`message catalogue ${code}: HTTP ${r.status}`);
  return r.json();
}

export function languages() {
  return LANGS;
}

export function currentLang() {
  return lang;
}

function preferred() {
  const saved = localStorage.getItem('rl.lang');
  if (LANGS.includes(saved)) return saved;
  for (const l of navigator.languages || [navigator.language || 'en']) {
    const code = String(l).slice(0, 2).toLowerCase();
    if (LANGS.includes(code)) return code;
  }
  return 'en';
}

export async function initI18n() {
  fallback = await load('en');
  await setLang(preferred());
}

export async function setLang(code) {
  if (!LANGS.includes(code)) code = 'en';
  messages = code === 'en' ? fallback : await load(code);
  lang = code;
  localStorage.setItem('rl.lang', code);
  document.documentElement.lang = code;
  translateStatic(document);
}

// t('find.results', {n: 3}) -> "3 results"; {n} placeholders, plural forms as "one|other" keyed by n.
export function t(key, vars) {
  let text = messages[key] ?? fallback[key] ?? key;
  if (vars && typeof vars.n === 'number' && text.includes('|')) {
    const [one, other] = text.split('|');
    text = new Intl.PluralRules(lang).select(vars.n) === 'one' ? one : other;
  }
  return text.replace(/\{(\w+)\}/g, (m, name) => (vars && name in vars ? String(vars[name]) : m));
}

export function translateStatic(root) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
}

// FHIR dates may be partial: "1990", "1990-04", "1990-04-12". Shown in the user's locale, never shifted by time zone.
export function fmtDate(value) {
  if (!value) return '';
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?/.exec(value);
  if (!m) return value;
  const [, y, mo, d] = m;
  const date = new Date(Date.UTC(+y, mo ? +mo - 1 : 0, d ? +d : 1));
  const opts = { timeZone: 'UTC', year: 'numeric' };
  if (mo) opts.month = d ? 'short' : 'long';
  if (d) opts.day = 'numeric';
  return new Intl.DateTimeFormat(lang, opts).format(date);
}

export function fmtDateTime(value) {
  if (!value) return '';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return value;
  return new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'medium' }).format(date);
}

export function fmtNumber(value, digits = 0) {
  return new Intl.NumberFormat(lang, { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(value);
}
