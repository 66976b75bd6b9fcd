// The desk UI's shell: sign-in state, role-based navigation, hash routes,
// messages. Screens live in views/; each exports render(main, ctx, ...params)
// and talks to the appliance only through its public API (api.js).

import { api, setToken, token, whenUnauthorized, ApiError } from './api.js';
import { h, clear } from './dom.js';
import { initI18n, setLang, currentLang, t, translateStatic } from './i18n.js';
import * as signin from './views/signin.js';
import * as find from './views/find.js';
import * as register from './views/register.js';
import * as patient from './views/patient.js';
import * as enrol from './views/enrol.js';
import * as review from './views/review.js';
import * as admin from './views/admin.js';

const ROUTES = [
  { path: /^#\/find$/, view: find, nav: 'find', perm: 'read' },
  { path: /^#\/register$/, view: register, nav: 'register', perm: 'write' },
  { path: /^#\/patient\/([0-9a-f]+)$/, view: patient, nav: 'find', perm: 'read' },
  { path: /^#\/enrol\/([0-9a-f]+)$/, view: enrol, nav: 'register', perm: 'write' },
  { path: /^#\/review$/, view: review, nav: 'review', perm: 'review' },
  { path: /^#\/review\/([0-9a-f]+)$/, view: review, nav: 'review', perm: 'review' },
  { path: /^#\/admin$/, view: admin, nav: 'admin', perm: 'admin' },
];
const NAV = [
  { id: 'find', href: '#/find', perm: 'read' },
  { id: 'register', href: '#/register', perm: 'write' },
  { id: 'review', href: '#/review', perm: 'review' },
  { id: 'admin', href: '#/admin', perm: 'admin' },
];

const ctx = {
  user: null,
  can(perm) {
    return !!this.user && this.user.permissions.includes(perm);
  },
  notify,
  fail,
  go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
};

let renderSeq = 0;
let leave = null; // the current screen's cleanup (stops polling), if any

function notify(kind, text, { sticky = false } = {}) {
  const box = document.getElementById('messages');
  const msg = h(
    'div',
    { class: `msg msg-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('p', {}, text),
    h('button', { type: 'button', class: 'link', onclick: () => msg.remove() }, t('shell.dismiss')),
  );
  box.append(msg);
  while (box.children.length > 3) box.firstChild.remove();
  if (!sticky && kind !== 'error') setTimeout(() => msg.remove(), 6000);
  return msg;
}

// Every error reaches the user as a readable sentence, never only the console.
function fail(err) {
  if (err && err.name === 'AbortError') return;
  const text = err instanceof ApiError ? err.message : t('error.unexpected', { detail: String(err?.message || err) });
  notify('error', text);
}

function clearMessages() {
  clear(document.getElementById('messages'));
}

function renderNav(active) {
  const nav = document.getElementById('nav');
  clear(nav);
  for (const item of NAV) {
    if (!ctx.can(item.perm)) continue;
    nav.append(
      h('a', { href: item.href, 'aria-current': item.id === active ? 'page' : null, 'data-nav': item.id }, t(`nav.${item.id}`)),
    );
  }
  nav.hidden = false;
  const who = document.getElementById('who');
  who.textContent = t('shell.who', { name: ctx.user.name, role: t(`role.${ctx.user.role}`) });
  who.hidden = false;
  document.getElementById('signout').hidden = false;
}

function signedOutShell() {
  document.getElementById('nav').hidden = true;
  document.getElementById('who').hidden = true;
  document.getElementById('signout').hidden = true;
}

async function loadUser() {
  if (!token()) return null;
  try {
    return await api('/whoami');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

async function route() {
  const seq = ++renderSeq;
  if (leave) {
    leave();
    leave = null;
  }
  const main = document.getElementById('main');
  if (!ctx.user) {
    signedOutShell();
    clear(main);
    leave = signin.render(main, ctx, onSignedIn);
    return;
  }
  const hash = location.hash || '';
  let found = null;
  let params = [];
  for (const r of ROUTES) {
    const m = r.path.exec(hash);
    if (m) {
      found = r;
      params = m.slice(1);
      break;
    }
  }
  if (!found || !ctx.can(found.perm)) {
    const home = NAV.find((n) => ctx.can(n.perm));
    if (found && !ctx.can(found.perm)) notify('error', t('error.role'));
    location.replace(home ? home.href : '#/find');
    return;
  }
  renderNav(found.nav);
  clear(main);
  try {
    const cleanup = await found.view.render(main, ctx, ...params);
    if (seq === renderSeq) leave = typeof cleanup === 'function' ? cleanup : null;
    else if (typeof cleanup === 'function') cleanup();
  } catch (e) {
    if (seq === renderSeq) fail(e);
  }
  if (seq === renderSeq) main.focus({ preventScroll: true });
}

async function onSignedIn(user) {
  ctx.user = user;
  clearMessages();
  if (!location.hash || location.hash === '#/signin') location.hash = ctx.can('write') ? '#/register' : '#/find';
  else route();
}

function signOut(reason) {
  setToken(null);
  ctx.user = null;
  clearMessages();
  if (reason) notify('error', reason, { sticky: true });
  route();
}

async function start() {
  await initI18n();
  const select = document.getElementById('lang');
  select.value = currentLang();
  select.addEventListener('change', async () => {
    await setLang(select.value);
    translateStatic(document);
    route();
  });
  document.getElementById('signout').addEventListener('click', () => signOut(null));
  whenUnauthorized(() => {
    if (ctx.user) signOut(t('error.session'));
  });
  window.addEventListener('hashchange', route);
  window.addEventListener('unhandledrejection', (ev) => {
    ev.preventDefault();
    fail(ev.reason);
  });
  try {
    ctx.user = await loadUser();
  } catch (e) {
    fail(e);
  }
  if (!ctx.user) setToken(null);
  route();
}

start().catch((e) => {
  const main = document.getElementById('main');
  clear(main).append(h('p', { class: 'msg msg-error', role: 'alert' }, `Ridgeline could not start: ${e.message}`));
});
