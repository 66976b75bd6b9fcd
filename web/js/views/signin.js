// Sign in with an API token; the role behind it decides what the desk shows.

import { api, setToken, ApiError } from '../api.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';

export function render(main, ctx, onSignedIn) {
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, size: 60 });
  const error = h('div', { class: 'field-error', id: 'token-error', role: 'alert' });
  const button = h('button', { type: 'submit', class: 'primary', id: 'signin' }, t('signin.submit'));
  const form = h(
    'form',
    { class: 'panel', novalidate: true },
    h('h1', {}, t('signin.title')),
    h('p', { class: 'muted' }, t('signin.help')),
    h('label', { class: 'field', for: 'token' }, t('signin.token'), input),
    error,
    h('div', { class: 'actions' }, button),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    const value = input.value.trim();
    if (!value) {
      error.textContent = t('signin.empty');
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    button.disabled = true;
    setToken(value);
    try {
      const user = await api('/whoami');
      input.value = '';
      onSignedIn(user);
    } catch (e) {
      setToken(null);
      error.textContent = e instanceof ApiError && e.status === 401 ? t('signin.invalid') : e.message;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  main.append(form);
  input.focus();
}
